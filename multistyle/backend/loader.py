"""The registry: backends looked up lazily by name, built-in ones first, then entry points.

Importing this module imports no framework.  :func:`load_backend_class`
imports a backend's module only when it is asked for, and tells a missing
framework (naming the pip extra) from a broken one (with the fix) from a bug
in the backend's own code (with the traceback).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import traceback
import warnings
from typing import Any, List, Mapping, Optional, Sequence, Type

from ..errors import BackendBug, BackendUnavailable, MultistyleError, first_line
from ..heap import keep_freed_buffers
from .devices import mkl_avx2_on_amd, use_all_cores
from .protocol import Backend
from .spec import BUILTIN_BACKENDS, BackendSpec, registry, spec_of


def backend_names() -> List[str]:
    """Names of every known backend, installed or not."""
    return list(registry())


def load_backend_class(name: str) -> Type[Backend]:
    """Import the backend called ``name`` and return its class.

    Raises :class:`BackendUnavailable` with a one-line reason when the
    framework is missing (naming the pip extra) or installed but broken.
    """
    spec = spec_of(name)
    module_name, _, class_name = spec.target.partition(":")
    if spec.all_cores:
        use_all_cores()
    if spec.mkl_avx2_on_amd:
        mkl_avx2_on_amd()
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
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep  # multistyle/

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
    specs = [spec_of(name) for name in registry()]
    for spec in specs:
        if suffix in spec.weight_suffixes:
            return spec.name
    known = sorted(s for spec in specs for s in spec.weight_suffixes)
    raise MultistyleError(f"weights {path}: unknown format {suffix or 'without extension'!r}; "
                          f"use .npz or a native checkpoint ({', '.join(known)})")


def get_backend(name: str, device: str = "auto") -> Backend:
    """An instance of the backend ``name`` on ``device``.

    Its process keeps the buffers each iteration frees for the next (:func:`multistyle.heap.keep_freed_buffers`).
    """
    keep_freed_buffers()
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
