"""A mutable holder for frameworks whose arrays never change (JAX; TensorFlow's tensors).

The protocol's in-place contract (:meth:`~multistyle.backend.Backend.clip_` on
the image an optimizer is updating, or on the image a differentiated closure
receives) is met by replacing the holder's ``value`` where torch, MXNet and
Paddle change a tensor in place.  Everything else stays a native array: the
holder hands out its value for indexing, attributes and arithmetic.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Tuple

Clip = Callable[[Any, Any, Any], Any]


class Holder:
    """One array, replaceable: an optimizer's image (``owner.x``) or the image a traced closure receives.

    ``clip(low, high)`` replaces the value with the framework's ``clip``.  With
    ``stop_gradient`` (inside a trace) the clip passes the gradient straight
    through, as torch's in-place ``clamp_`` under ``no_grad`` does, and is
    recorded in :attr:`clips` so that the backend can apply it to the concrete image.
    """

    def __init__(self, clip: Clip, value: Any = None, owner: Any = None,
                 stop_gradient: Optional[Callable[[Any], Any]] = None) -> None:
        self._clip, self._stop_gradient = clip, stop_gradient
        self._value, self.owner = value, owner
        self.clips: List[Tuple[Any, Any]] = []

    @property
    def value(self) -> Any:
        return self.owner.x if self.owner is not None else self._value

    @value.setter
    def value(self, new: Any) -> None:
        if self.owner is not None:
            self.owner.x = new
        else:
            self._value = new

    def clip(self, low: Any, high: Any) -> None:
        v = self.value
        if self._stop_gradient is None:
            self.value = self._clip(v, low, high)
        else:
            self.value = v + self._stop_gradient(self._clip(v, low, high) - v)
            self.clips.append((low, high))

    @property
    def shape(self) -> Tuple[int, ...]:
        return tuple(self.value.shape)

    def __getitem__(self, index: Any) -> Any:
        return self.value[index]

    def __getattr__(self, name: str) -> Any:  # .mean(), .T, .reshape(): the array's own
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.value, name)

    def __jax_array__(self) -> Any:
        return self.value


def unwrap(x: Any) -> Any:
    """The array of a :class:`Holder`; anything else as it is."""
    return x.value if isinstance(x, Holder) else x


def _delegate(operator: str) -> Callable[..., Any]:
    return lambda self, *other: getattr(self.value, operator)(*(unwrap(o) for o in other))


for _operator in ("add", "sub", "mul", "truediv", "matmul", "pow"):
    setattr(Holder, f"__{_operator}__", _delegate(f"__{_operator}__"))
    setattr(Holder, f"__r{_operator}__", _delegate(f"__r{_operator}__"))
setattr(Holder, "__neg__", _delegate("__neg__"))
