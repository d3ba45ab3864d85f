"""The backend protocol and the registry of backends.

The core computes with native tensors of one framework through the small
protocol :class:`Backend`: creating tensors from NumPy and reading them back,
the few maths operations the losses need, a frozen VGG-19 feature network,
optimizers and seeding.  Arithmetic and slicing are native in every framework,
so the core uses ``+``, ``-``, ``*``, ``/`` and ``x[:, :, 1:, :]`` directly.

Gradients live inside the backend: an :class:`Optimizer` takes a closure
``loss = closure(image)`` and records, differentiates and updates in the
framework's own way, so a closure-driven optimizer such as L-BFGS fits the
same interface.  Where a framework has no optimizer that computes what the
others compute (MXNet has no L-BFGS; Paddle's and MXNet's RMSprop put epsilon
inside the square root), the core supplies one written once over this
protocol (:mod:`multistyle.optim`), using :meth:`Backend.loss_and_grad`.

Backends are looked up lazily by name.  The built-in ones are listed in
:data:`BUILTIN_BACKENDS`; third-party packages add theirs through the entry
point group ``multistyle.backends``.  Importing this module imports no
framework.
"""

from __future__ import annotations

import abc
import importlib
import importlib.util
import os
import re
import traceback
import warnings
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple, Type

import numpy as np

from .errors import BackendBug, BackendUnavailable, MultistyleError, first_line
from .optim import OPTIMIZERS, Optimizer
from .vgg import Weights

Tensor = Any  # a native tensor of the backend's framework


class Backend(abc.ABC):
    """One deep-learning framework behind a fixed set of operations.

    Instances own their device: tensors they create live there.  Subclasses
    set :attr:`name`, :attr:`framework` and :attr:`weight_suffixes` and
    implement every abstract method; an incomplete one fails at construction.
    """

    name: ClassVar[str]
    framework: ClassVar[str]
    #: File extensions of the framework's native checkpoints.
    weight_suffixes: ClassVar[Tuple[str, ...]] = ()
    #: Optimizers the framework itself computes, by name (a method of that
    #: name each), with the framework's class that does it; the others in
    #: :data:`multistyle.optim.OPTIMIZERS` are written once in the core.
    native_optimizers: ClassVar[Dict[str, str]] = {}

    def __init__(self, device: str = "auto") -> None:
        self.device = resolve_device(device, self.available_devices(), self.name)

    # -- identity and devices --------------------------------------------------
    @classmethod
    @abc.abstractmethod
    def framework_version(cls) -> str:
        """The framework's name and version, e.g. ``torch 2.3.0``."""

    @classmethod
    @abc.abstractmethod
    def available_devices(cls) -> List[str]:
        """Canonical devices the framework can use here: ``cpu``, ``gpu:0``, ..."""

    def peak_device_memory(self) -> Optional[int]:
        """Peak bytes allocated on this backend's GPU, where the framework reports it; else ``None``."""
        return None

    @abc.abstractmethod
    def seed(self, seed: int) -> None:
        """Seed the framework's random number generators."""

    @abc.abstractmethod
    def set_deterministic(self) -> None:
        """Turn on the framework's deterministic switches (GPU convolutions), for this process."""

    # -- tensors ---------------------------------------------------------------
    @abc.abstractmethod
    def asarray(self, array: np.ndarray) -> Tensor:
        """A float32 tensor on this backend's device, copied from ``array``."""

    @abc.abstractmethod
    def to_numpy(self, tensor: Tensor) -> np.ndarray:
        """A NumPy copy of ``tensor`` (waits for asynchronous frameworks)."""

    def item(self, tensor: Tensor) -> float:
        """A one-element tensor as a Python float."""
        return float(np.asarray(self.to_numpy(tensor)).reshape(()))

    @abc.abstractmethod
    def pack(self, tensors: Sequence[Tensor]) -> Tensor:
        """One 1-D tensor on the device: ``tensors`` (one-element or 1-D) flattened and joined, detached.

        Loss values are packed so that a run reads them back in one transfer,
        a few epochs at a time, instead of waiting for the device per value.
        """

    @property
    def asynchronous(self) -> bool:
        """Whether the framework queues work and returns before it is done (MXNet's engine, CUDA)."""
        return False

    @abc.abstractmethod
    def shape(self, tensor: Tensor) -> Tuple[int, ...]:
        """The shape as a tuple of Python ints."""

    # -- maths the losses need -------------------------------------------------
    @abc.abstractmethod
    def square(self, tensor: Tensor) -> Tensor:
        """Element-wise square."""

    @abc.abstractmethod
    def abs(self, tensor: Tensor) -> Tensor:
        """Element-wise absolute value."""

    @abc.abstractmethod
    def mean(self, tensor: Tensor) -> Tensor:
        """Mean of all elements, as a one-element tensor."""

    @abc.abstractmethod
    def sum(self, tensor: Tensor) -> Tensor:
        """Sum of all elements, as a one-element tensor."""

    @abc.abstractmethod
    def max(self, tensor: Tensor) -> Tensor:
        """Largest element, as a one-element tensor."""

    @abc.abstractmethod
    def sqrt(self, tensor: Tensor) -> Tensor:
        """Element-wise square root."""

    @abc.abstractmethod
    def clip_(self, tensor: Tensor, low: Tensor, high: Tensor) -> None:
        """Clip ``tensor`` in place to ``[low, high]`` (tensors that broadcast to it), unrecorded.

        ``tensor`` may be the parameter an optimizer is updating: the clip
        changes it for the optimizer too, as ``x.clamp_()`` does in torch.
        """

    @abc.abstractmethod
    def matmul(self, a: Tensor, b: Tensor) -> Tensor:
        """Matrix product of two 2-D tensors."""

    @abc.abstractmethod
    def transpose(self, tensor: Tensor) -> Tensor:
        """Transpose of a 2-D tensor."""

    @abc.abstractmethod
    def reshape(self, tensor: Tensor, shape: Sequence[int]) -> Tensor:
        """The same elements in a new shape."""

    # -- VGG-19 ----------------------------------------------------------------
    @abc.abstractmethod
    def vgg19_layers(self, weights: Weights, last: int, pooling: str = "max") -> List[Callable[[Tensor], Tensor]]:
        """Native layers ``0..last`` of VGG-19 ``features``, frozen, on the device.

        ``weights`` maps convolution indices to OIHW ``(weight, bias)`` arrays.
        ``pooling`` is ``max`` (VGG's own) or ``avg``: 2x2, stride 2, either way.
        ReLUs must not work in place: the core keeps layer outputs for the
        losses, and an in-place ReLU would overwrite a stored conv output.
        """

    @abc.abstractmethod
    def load_zoo_weights(self) -> Dict[str, np.ndarray]:
        """The framework's pretrained ImageNet VGG-19 as a state dict of arrays.

        Downloads into the framework's cache when needed; raises
        :class:`~multistyle.errors.WeightsError` saying where the file is
        expected when it cannot.
        """

    @abc.abstractmethod
    def load_native_weights(self, path: str) -> Dict[str, np.ndarray]:
        """Read a native checkpoint (one of :attr:`weight_suffixes`) as arrays."""

    @abc.abstractmethod
    def save_native_weights(self, weights: Weights, path: str) -> None:
        """Write ``features.{i}.weight|bias`` in the framework's native format to the file ``path``."""

    # -- optimisation ----------------------------------------------------------
    @classmethod
    def optimizers(cls) -> Dict[str, str]:
        """Every optimizer this backend offers, with whose code computes it (``torch.optim.LBFGS``, ``multistyle.optim``)."""
        return {name: cls.native_optimizers.get(name, f"multistyle.optim.{core.__name__}" if core else "")
                for name, core in OPTIMIZERS.items() if name in cls.native_optimizers or core is not None}

    def optimizer(self, name: str, image: np.ndarray, lr: float, lr_decay: float,
                  lr_decay_every: int, line_search: bool = False) -> Optimizer:
        """An optimizer called ``name`` (one of :meth:`optimizers`) over a trainable copy of ``image``.

        The learning rate is multiplied by ``lr_decay`` after every
        ``lr_decay_every`` epochs (the framework's own scheduler where the
        framework's optimizer is used).  ``line_search`` (L-BFGS only) turns
        on the strong-Wolfe line search.
        """
        self.check_optimizer(name, line_search)
        options = {"line_search": line_search} if name == "lbfgs" else {}
        if name in self.native_optimizers:
            make: Callable[..., Optimizer] = getattr(self, name)
            return make(image, lr, lr_decay, lr_decay_every, **options)
        return OPTIMIZERS[name](self, image, lr, lr_decay, lr_decay_every, **options)  # type: ignore[misc]

    @abc.abstractmethod
    def loss_and_grad(self, fn: Callable[[Tensor], Tensor], x: Tensor) -> Tuple[Tensor, Tensor]:
        """``fn(x)`` and its gradient with respect to the tensor ``x``, both native; ``x`` is left as it was."""

    def value_and_grad(self, fn: Callable[[Tensor], Tensor], image: np.ndarray) -> Tuple[float, np.ndarray]:
        """``fn(x)`` and its gradient with respect to ``x``, at ``x = image``, on the host."""
        loss, grad = self.loss_and_grad(fn, self.asarray(image))
        return self.item(loss), self.to_numpy(grad)

    def check_optimizer(self, name: str, line_search: bool = False) -> None:
        """Refuse an optimizer this backend does not offer, naming those it does."""
        offered = self.optimizers()
        if name not in offered:
            raise MultistyleError(f"--optimizer: the {self.name} backend offers {', '.join(offered)}, not {name!r}")
        if line_search and name != "lbfgs":
            raise MultistyleError(f"--line-search: only L-BFGS has a line search, not {name}; "
                                  f"use --optimizer lbfgs or drop --line-search")

    @abc.abstractmethod
    def adam(self, image: np.ndarray, lr: float, lr_decay: float, lr_decay_every: int) -> Optimizer:
        """The framework's Adam (epsilon 1e-8, added after the bias correction) with a step decay."""


def use_all_cores() -> None:
    """Set ``OMP_NUM_THREADS`` to the usable cores before a framework's import, unless the user has set it.

    Called by backends whose framework picks fewer OpenMP threads than there
    are usable cores when the variable is unset: Paddle sets it to 1 at
    import (``paddle/base/__init__.py``), and MXNet uses half the logical
    processors on x86, assuming hyper-threads (``src/engine/openmp.cc``,
    ``OpenMP::OpenMP``): one thread on a 2-core machine.  Both read the
    variable only at import, so this must run first; a value the user set is
    kept.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    os.environ.setdefault("OMP_NUM_THREADS", str(cores))


_DEVICE = re.compile(r"^(auto|cpu|gpu)(?::(\d+))?$")


def parse_device(device: str) -> Tuple[str, Optional[int]]:
    """Check a device string: ``("auto"|"cpu"|"gpu", N or None)``."""
    match = _DEVICE.match(str(device).strip().lower())
    if not match or (match.group(1) != "gpu" and match.group(2) is not None):
        raise MultistyleError(f"--device: expected auto, cpu, gpu or gpu:N, got {device!r}")
    return match.group(1), None if match.group(2) is None else int(match.group(2))


def resolve_device(device: str, available: Sequence[str], backend: str) -> str:
    """Map ``auto``, ``cpu``, ``gpu`` or ``gpu:N`` to one of ``available``."""
    kind, number = parse_device(device)
    gpus = [d for d in available if d.startswith("gpu")]
    if kind == "auto":
        return gpus[0] if gpus else "cpu"
    if kind == "cpu":
        return "cpu"
    wanted = f"gpu:{number or 0}"
    if wanted not in available:
        seen = ", ".join(available)
        raise MultistyleError(f"--device: {backend} cannot use {wanted}; it sees {seen}")
    return wanted


# -- the registry ----------------------------------------------------------------

@dataclass(frozen=True)
class BackendSpec:
    """Where a backend lives and what it needs, known before importing it."""

    name: str
    target: str  # "module:Class"
    modules: Tuple[str, ...]  # top-level framework modules it imports
    extra: str  # pip extra that installs them
    fix_hint: str = ""  # how to repair a framework that is installed but broken
    weight_suffixes: Tuple[str, ...] = ()  # native checkpoint extensions, as on the class


BUILTIN_BACKENDS: Dict[str, BackendSpec] = {
    "torch": BackendSpec("torch", "multistyle.backends.torch_backend:TorchBackend",
                         ("torch", "torchvision"), "torch", weight_suffixes=(".pth", ".pt")),
    "mxnet": BackendSpec("mxnet", "multistyle.backends.mxnet_backend:MXNetBackend",
                         ("mxnet",), "mxnet",
                         "MXNet 1.9.1 needs numpy<1.24 (pip install 'numpy<1.24')", weight_suffixes=(".params",)),
    "paddle": BackendSpec("paddle", "multistyle.backends.paddle_backend:PaddleBackend",
                          ("paddle",), "paddle", weight_suffixes=(".pdparams",)),
}

ENTRY_POINT_GROUP = "multistyle.backends"


def _entry_point_specs() -> Dict[str, BackendSpec]:
    from importlib import metadata

    try:
        points = metadata.entry_points(group=ENTRY_POINT_GROUP)
    except TypeError:  # Python < 3.10
        points = metadata.entry_points().get(ENTRY_POINT_GROUP, [])  # type: ignore[attr-defined]
    specs = {}
    for point in points:
        specs[point.name] = BackendSpec(point.name, point.value, (), f"the package that provides {point.name}")
    return specs


def registry() -> Dict[str, BackendSpec]:
    """Every known backend by name: built-in ones first, then entry points."""
    specs = dict(BUILTIN_BACKENDS)
    for name, spec in _entry_point_specs().items():
        specs.setdefault(name, spec)
    return specs


def backend_names() -> List[str]:
    """Names of every known backend, installed or not."""
    return list(registry())


def load_backend_class(name: str) -> Type[Backend]:
    """Import the backend called ``name`` and return its class.

    Raises :class:`BackendUnavailable` with a one-line reason when the
    framework is missing (naming the pip extra) or installed but broken.
    """
    specs = registry()
    if name not in specs:
        raise MultistyleError(f"--backend: unknown backend {name!r}; choose from {', '.join(specs)}")
    spec = specs[name]
    module_name, _, class_name = spec.target.partition(":")
    try:
        with warnings.catch_warnings():
            # Frameworks warn at import about their own deprecations (MXNet under newer NumPy).
            warnings.simplefilter("ignore")
            module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing in spec.modules or not spec.modules:
            raise BackendUnavailable(
                f"backend {name!r} is not installed: {missing or exc} is missing; "
                f"install it with pip install 'multistyle[{spec.extra}]'") from None
        raise BackendUnavailable(_broken(spec, exc)) from None
    except Exception as exc:
        if _fault_in_own_code(exc, module_name):
            owner = "multistyle" if name in BUILTIN_BACKENDS else f"the package that provides backend {name!r}"
            raise BackendBug(f"bug in {owner}: importing {module_name} raised {type(exc).__name__}: "
                             f"{first_line(exc)}; "
                             f"please report it with the traceback above") from exc
        raise BackendUnavailable(_broken(spec, exc)) from None  # an installed framework that fails to import
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise BackendUnavailable(f"backend {name!r}: {spec.target} is not a multistyle Backend class")
    return cls


def _fault_in_own_code(exc: BaseException, module_name: str) -> bool:
    """Whether importing the backend module failed in its own code rather than in a framework it imports.

    The deepest frame of the traceback (importlib's own frames aside) tells:
    inside the backend module or the multistyle package, the code is ours
    (a syntax error, a bad name, a wrong call).  Deeper, in third-party code,
    it is the framework's fault only when the backend module's line is an
    ``import``: a framework whose own import fails (MXNet under NumPy >= 1.24)
    is broken, while a framework call that fails at import time is our misuse.
    """
    try:
        spec = importlib.util.find_spec(module_name)
    except Exception:  # the backend's package itself cannot be found or imported
        return True
    origin = os.path.abspath(spec.origin) if spec is not None and spec.origin else ""
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep

    def is_ours(filename: str) -> bool:
        path = os.path.abspath(filename)
        return path == origin or path.startswith(package)

    if isinstance(exc, SyntaxError) and exc.filename:
        return is_ours(exc.filename)
    frames = [frame for frame in traceback.extract_tb(exc.__traceback__) if not frame.filename.startswith("<frozen")]
    if not frames:
        return False
    if is_ours(frames[-1].filename):
        return True
    own = [frame for frame in frames if os.path.abspath(frame.filename) == origin]
    return not own or not (own[-1].line or "").lstrip().startswith(("import ", "from "))


def _broken(spec: BackendSpec, exc: BaseException) -> str:
    reason = first_line(exc).rstrip(".")
    hint = spec.fix_hint or f"reinstall it with pip install --force-reinstall 'multistyle[{spec.extra}]'"
    return (f"backend {spec.name!r} is installed but broken: importing it raised "
            f"{type(exc).__name__}: {reason}; {hint}")


def backend_for_weights(path: str) -> str:
    """The backend that reads and writes the native checkpoint ``path``, by its extension."""
    suffix = os.path.splitext(path)[1].lower()
    for name, spec in registry().items():
        if suffix in spec.weight_suffixes:
            return name
    known = sorted(s for spec in registry().values() for s in spec.weight_suffixes)
    raise MultistyleError(f"weights {path}: unknown format {suffix or 'without extension'!r}; "
                          f"use .npz or a native checkpoint ({', '.join(known)})")


def get_backend(name: str, device: str = "auto") -> Backend:
    """An instance of the backend ``name`` on ``device``."""
    return load_backend_class(name)(device=device)


def describe_backends(names: Optional[Sequence[str]] = None) -> List[Mapping[str, Any]]:
    """Status of each backend: usable or not, version and devices, or why not."""
    rows = []
    for name in names or backend_names():
        try:
            cls = load_backend_class(name)
            rows.append({"name": name, "usable": True, "version": cls.framework_version(),
                         "devices": cls.available_devices(), "optimizers": cls.optimizers(), "reason": ""})
        except (BackendUnavailable, BackendBug) as exc:
            rows.append({"name": name, "usable": False, "version": "", "devices": [], "optimizers": [],
                         "reason": str(exc), "traceback": "" if isinstance(exc, BackendUnavailable)
                         else "".join(traceback.format_exception(type(exc.__cause__), exc.__cause__,
                                                                 exc.__cause__.__traceback__))})
    return rows
