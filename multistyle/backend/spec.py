"""Every per-backend fact that is known before the framework is imported: :class:`BackendSpec`.

The built-in backends' specs are the table :data:`BUILTIN_BACKENDS`.  A
third-party package declares the same fields: its entry point in the group
``multistyle.backends`` names a ``BackendSpec`` in a module that imports no
framework (``jax = "multistyle_jax:SPEC"``), so listing backends, matching a
weights file to its format or predicting memory never imports a framework.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Tuple

from ..errors import MultistyleError


class MemoryModel(NamedTuple):
    """Host memory of a run on the CPU: the process at rest (bytes), copies of the weights, copies of one pass's
    activations.  Fitted by ``benchmarks/memory_report.py`` (peak resident set of a fresh ``multistyle run``).
    ``train_base`` (bytes: the process, the loss network, the style network and Adam) and ``train_activations``
    (copies of a training step's activations) are ``multistyle train``'s, fitted by
    ``benchmarks/train_memory.py``; 0 for ``train_base`` means unmeasured."""

    base: float
    weights: float
    activations: float
    train_base: float = 0.0
    train_activations: float = 2.0


@dataclass(frozen=True)
class BackendSpec:
    """Where a backend lives and what it needs, known before importing it."""

    name: str
    target: str  # "module:Class"
    modules: Tuple[str, ...]  # top-level framework modules it imports
    extra: str  # pip extra that installs them (or, for a third-party backend, the package to install)
    fix_hint: str = ""  # how to repair a framework that is installed but broken
    weight_suffixes: Tuple[str, ...] = ()  # native checkpoint extensions, lower case
    memory: Optional[MemoryModel] = None  # measured host memory model; None: the largest measured one is assumed
    #: For ``multistyle explain``: each protocol operation -> the functions of the backend module that do it.
    explain: Mapping[str, List[str]] = field(default_factory=dict, hash=False)
    #: Optimizers the framework itself computes, by name, with the framework's class that does it (the
    #: backend class's ``native_optimizers``); the others are :mod:`multistyle.optim`'s.
    native_optimizers: Mapping[str, str] = field(default_factory=dict, hash=False)
    #: Set ``OMP_NUM_THREADS`` to the usable cores before importing (frameworks that would use fewer).
    all_cores: bool = False
    #: Set ``MKL_DEBUG_CPU_TYPE`` for AVX2 on AMD before importing (a framework that ships an MKL that
    #: would run its generic code there: :func:`multistyle.backend.devices.mkl_avx2_on_amd`).
    mkl_avx2_on_amd: bool = False


def _explain(cls: str, optimizer: str, schedule: List[str], step: str = "",
             builder: str = "native_optimizer", compiled: bool = False) -> Dict[str, List[str]]:
    """The explain table of a built-in backend whose class is ``cls``: the same methods in each.

    ``module:qualname`` names code outside the backend's module (the core's optimizers)."""
    return {
        "tensor from NumPy": [f"{cls}.asarray"],
        "the VGG-19 layers": [f"{cls}.conv", f"{cls}.relu", f"{cls}.pool"],
        "freezing the network": [f"{cls}.freeze"],
        "recording gradients": [f"{cls}.loss_and_grad"],
        "the optimizer step": [f"{cls}.{builder}"] + ([step] if step else [f"{optimizer}.step"]),
        "the learning-rate schedule": schedule,
        "device placement": [f"{cls}.place", f"{cls}.gpu_count"],
        "seeding": [f"{cls}.seed"],
        "the style network's layers": [f"{cls}.conv2d", f"{cls}.instance_norm", f"{cls}.upsample_nearest"],
        "a training step": [f"{cls}.loss_and_grads", f"{cls}.compile_gradients" if compiled else
                            "multistyle.backend.protocol:Backend.compile_gradients"],
        "the training optimizer": ["multistyle.optim:ParameterAdam.step"],
    }


def _explain_held(cls: str) -> Dict[str, List[str]]:
    """The explain table of a backend whose arrays never change and whose optimizers are :mod:`multistyle.optim`'s."""
    table = _explain(cls, "", ["multistyle.optim:CoreOptimizer.epoch_end"], compiled=True)
    table["the optimizer step"] = ["multistyle.optim:Adam.step", "multistyle.backend.holder:HeldImages.persist_clips"]
    return table


BUILTIN_BACKENDS: Dict[str, BackendSpec] = {
    "torch": BackendSpec(
        "torch", "multistyle.backends.torch_backend:TorchBackend", ("torch", "torchvision"), "torch",
        weight_suffixes=(".pth", ".pt"),
        native_optimizers={"adam": "torch.optim.Adam", "lbfgs": "torch.optim.LBFGS", "rmsprop": "torch.optim.RMSprop"},
        memory=MemoryModel(base=763e6, weights=2.0, activations=1.57, train_base=1132e6, train_activations=0.88),
        explain=_explain("TorchBackend", "TorchOptimizer", ["TorchBackend.native_optimizer"])),
    "mxnet": BackendSpec(
        "mxnet", "multistyle.backends.mxnet_backend:MXNetBackend", ("mxnet",), "mxnet",
        "MXNet 1.9.1 needs numpy<1.24 (pip install 'numpy<1.24')", weight_suffixes=(".params",),
        # MXNet has no L-BFGS, and its RMSProp divides by sqrt(v + epsilon): both come from the core.
        native_optimizers={"adam": "gluon.Trainer('adam')"},
        memory=MemoryModel(base=368e6, weights=2.0, activations=2.40, train_base=432e6, train_activations=1.77),
        all_cores=True,
        explain=_explain("MXNetBackend", "GluonOptimizer", ["GluonOptimizer.epoch_end"])),
    "paddle": BackendSpec(
        "paddle", "multistyle.backends.paddle_backend:PaddleBackend", ("paddle",), "paddle",
        weight_suffixes=(".pdparams",),
        # paddle.optimizer.RMSProp divides by sqrt(v + epsilon): the core's RMSprop computes torch's formula.
        native_optimizers={"adam": "paddle.optimizer.Adam", "lbfgs": "paddle.optimizer.LBFGS"},
        memory=MemoryModel(base=308e6, weights=2.0, activations=3.12, train_base=580e6, train_activations=1.26),
        all_cores=True, mkl_avx2_on_amd=True,
        explain=_explain("PaddleBackend", "PaddleOptimizer", ["_step_decay", "PaddleLBFGS.epoch_end"])),
    "jax": BackendSpec(
        "jax", "multistyle.backends.jax_backend:JaxBackend", ("jax", "jaxlib"), "jax",
        # refitted 2026-12-05 (benchmarks/memory_report.py --fit, AMD EPYC, jax 0.4.30): the 2026-11-24 constants
        # predicted 1.07x, 1.45x and 1.86x the measured peaks at 150x225, 300x450 and 600x900
        memory=MemoryModel(base=245e6, weights=2.0, activations=0.686, train_base=574e6, train_activations=0.49),
        explain=_explain_held("JaxBackend")),
    "tensorflow": BackendSpec(
        "tensorflow", "multistyle.backends.tensorflow_backend:TensorFlowBackend", ("tensorflow",), "tensorflow",
        weight_suffixes=(".h5", ".keras"),
        # refitted 2026-12-05 (benchmarks/memory_report.py --fit, AMD EPYC, TensorFlow 2.15.1): the 2026-11-24
        # constants predicted 1.35x, 1.91x and 2.71x the measured peaks at 150x225, 300x450 and 600x900
        memory=MemoryModel(base=563e6, weights=2.0, activations=1.04, train_base=843e6, train_activations=0.80),
        explain=_explain_held("TensorFlowBackend")),
}


# -- the registry of specs: built-in ones first, then entry points ---------------------------

ENTRY_POINT_GROUP = "multistyle.backends"


def _entry_points() -> Dict[str, Any]:
    from importlib import metadata

    try:
        points = metadata.entry_points(group=ENTRY_POINT_GROUP)
    except TypeError:  # Python < 3.10
        points = metadata.entry_points().get(ENTRY_POINT_GROUP, [])  # type: ignore[attr-defined]
    return {point.name: point for point in points}


def registry() -> Dict[str, BackendSpec]:
    """Every known backend by name: built-in ones first, then entry points (not loaded: named by their value)."""
    specs = dict(BUILTIN_BACKENDS)
    for name, point in _entry_points().items():
        specs.setdefault(name, BackendSpec(name, point.value, (), f"the package that provides {name}"))
    return specs


_LOADED: Dict[str, BackendSpec] = {}


def spec_of(name: str) -> BackendSpec:
    """The full spec of backend ``name``.

    A third-party backend's entry point names its :class:`BackendSpec`
    (loaded here, from a module that imports no framework) or, more simply,
    its class: the spec then holds only where the class is.
    """
    specs = registry()
    if name not in specs:
        raise MultistyleError(f"--backend: unknown backend {name!r}; choose from {', '.join(specs)}")
    if name in BUILTIN_BACKENDS or name in _LOADED:
        return _LOADED.get(name, specs[name])
    try:
        loaded = _entry_points()[name].load()
    except Exception:  # reported, with its cause, when the backend itself is loaded
        return specs[name]
    if isinstance(loaded, BackendSpec):
        _LOADED[name] = loaded if loaded.name == name else dataclasses.replace(loaded, name=name)
        return _LOADED[name]
    return specs[name]
