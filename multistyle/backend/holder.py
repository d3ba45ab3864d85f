"""A mutable holder for frameworks whose arrays never change (JAX; TensorFlow's tensors).

The protocol's in-place contract (:meth:`~multistyle.backend.Backend.clip_` on
the image an optimizer is updating, or on the image a differentiated closure
receives) is met by replacing the holder's ``value`` where torch, MXNet and
Paddle change a tensor in place.  Everything else stays a native array: the
holder hands out its value for indexing, attributes and arithmetic.
"""

from __future__ import annotations

import weakref
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


class HeldImages:
    """What a backend whose arrays never change adds to :class:`~multistyle.backend.Backend` (JAX, TensorFlow).

    Mixed in before ``Backend``.  The subclass supplies :meth:`clip_values` and
    :meth:`stop_gradient` in its framework, and in its ``loss_and_grad`` wraps
    the image in :meth:`traced_image` and calls :meth:`persist_clips` once the
    gradient is computed.  Optimizers are :mod:`multistyle.optim`'s: they hold
    their image as ``x``, which the core reads and clips through a holder.
    """

    def __init__(self, device: str = "auto") -> None:
        super().__init__(device)  # type: ignore[call-arg]
        self._optimizers: "weakref.WeakSet[Any]" = weakref.WeakSet()  # whose image a closure's clip persists on

    @staticmethod
    def clip_values(x: Any, low: Any, high: Any) -> Any:
        """The framework's element-wise clip, out of place."""
        raise NotImplementedError

    @staticmethod
    def stop_gradient(x: Any) -> Any:
        """``x``, seen by the framework's gradients as a constant."""
        raise NotImplementedError

    def clip_(self, tensor: Any, low: Any, high: Any) -> None:
        if not isinstance(tensor, Holder):
            raise TypeError(f"{type(self).__name__}: arrays are immutable; clip_ needs the optimizer's or the "
                            f"closure's Holder, not a {type(tensor).__name__}")
        tensor.clip(low, high)

    def traced_image(self, value: Any) -> Holder:
        """The holder a differentiated closure receives: a clip in it passes the gradient straight through."""
        return Holder(self.clip_values, value, stop_gradient=self.stop_gradient)

    def persist_clips(self, image: Holder, value: Any) -> None:
        """The closure clipped ``image``, made of an optimizer's ``value``: clip that optimizer's image too,
        as torch's in-place ``clamp_`` in the closure changes the parameter."""
        for owner in [o for o in self._optimizers if image.clips and o.x is value]:
            for low, high in image.clips:
                owner.x = self.clip_values(owner.x, low, high)

    def optimizer(self, name: str, image: Any, lr: float, lr_decay: float, lr_decay_every: int,
                  line_search: bool = False) -> Any:
        optimizer = super().optimizer(name, image, lr, lr_decay, lr_decay_every, line_search)  # type: ignore[misc]
        self._optimizers.add(optimizer)
        return optimizer

    def image_of(self, optimizer: Any) -> Holder:
        return Holder(self.clip_values, owner=optimizer)
