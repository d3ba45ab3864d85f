"""What a test needs that a machine may lack, and the one switch that turns its absence into a failure.

A test that needs a framework, Ray, Jupyter, Chromium or a GPU carries a marker (``backend``, ``ray``,
``notebook``, ``browser``, ``gpu``: registered in ``pyproject.toml``) and skips where the thing is missing,
unless ``MULTISTYLE_TEST_REQUIRE`` names it: then the test fails, so an env whose framework (or Ray, Jupyter,
Chromium) failed to install cannot pass by testing nothing.  tox sets it per env (``torch``, ``ray,notebook``
...), and ``.ci/run`` adds ``browser`` after installing Chromium and its driver.

Names: the backends' (``torch``, ``mxnet``, ``paddle``, ``jax``, ``tensorflow``), ``ray``, ``notebook``, ``browser``, ``gpu``,
``onnx`` (the ``onnx`` package and onnxruntime, for ``export --onnx``), ``video`` (OpenCV and imageio-ffmpeg:
``multistyle.video``), and
``no-framework``, which the core env sets: it asserts that no framework is importable there, and ``package``:
the wheel tox built for the env (``TOX_PACKAGE``), whose contents and description a test checks.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from typing import Callable, Dict, FrozenSet, Optional

import pytest

from multistyle.backend import BUILTIN_BACKENDS, describe_backends, load_backend_class
from multistyle.batch.local import gpu_count
from multistyle.errors import BackendUnavailable

SWITCH = "MULTISTYLE_TEST_REQUIRE"
#: The frameworks that the core env must not have.
FRAMEWORKS = ("torch", "torchvision", "mxnet", "paddle", "jax", "tensorflow")


#: The built-in backends whose framework imports here, in the registry's order.
INSTALLED = [row["name"] for row in describe_backends(sorted(BUILTIN_BACKENDS)) if row["usable"]]


def needs_a_backend(test: Callable) -> Callable:
    """A test that runs on one framework installed (``any_backend``) and checks nothing that depends on which."""
    return pytest.mark.any_backend(pytest.mark.skipif(not INSTALLED, reason="no framework installed")(test))


def chromium() -> Optional[str]:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def chromedriver() -> Optional[str]:
    return shutil.which("chromedriver")


def _browser() -> Optional[str]:
    """Chromium, its driver (Debian's chromium-driver, the same version) and Selenium, or what is missing."""
    if not chromium():
        return "Chromium is not installed (Debian: apt-get install chromium)"
    if not chromedriver():
        return "chromedriver is not installed (Debian: apt-get install chromium-driver)"
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (pip install 'multistyle[test]')"
    return None


def _modules(names, extra) -> Callable[[], Optional[str]]:
    def missing() -> Optional[str]:
        absent = [name for name in names if importlib.util.find_spec(name) is None]
        return f"{', '.join(absent)} not installed (pip install 'multistyle[{extra}]')" if absent else None
    return missing


def _backend(name: str) -> Callable[[], Optional[str]]:
    def missing() -> Optional[str]:
        try:
            load_backend_class(name)
        except BackendUnavailable as exc:
            return str(exc)
        return None
    return missing


#: need -> a function giving why it is missing here, or None where it is present.
CHECKS: Dict[str, Callable[[], Optional[str]]] = {
    **{name: _backend(name) for name in sorted(BUILTIN_BACKENDS)},
    "ray": _modules(("ray",), "ray"),
    "notebook": _modules(("nbclient", "nbformat", "ipykernel"), "notebook"),
    "browser": _browser,
    "gpu": lambda: None if gpu_count() > 0 else "no NVIDIA GPU here (nvidia-smi lists none)",
    "docs": _modules(("mkdocs", "material", "mkdocstrings", "mkdocs_jupyter"), "docs"),
    "onnx": _modules(("onnx", "onnxruntime"), "onnx"),
    "video": _modules(("cv2", "imageio", "imageio_ffmpeg"), "video"),
    "no-framework": lambda: None,
    "package": lambda: None if os.environ.get("TOX_PACKAGE", "").split(os.pathsep)[0].endswith(".whl") else
    "TOX_PACKAGE names no wheel (tox sets it to the wheel it built and installed: run under tox)",
}


def required() -> FrozenSet[str]:
    """The needs that ``MULTISTYLE_TEST_REQUIRE`` names; an unknown name stops the run."""
    names = frozenset(n.strip() for n in os.environ.get(SWITCH, "").split(",") if n.strip())
    unknown = sorted(names - set(CHECKS))
    if unknown:
        raise pytest.UsageError(f"{SWITCH} names {unknown}, which are not needs; known: {', '.join(CHECKS)}")
    return names


def require(need: str) -> None:
    """Skip the test where ``need`` is missing here, or fail it where ``MULTISTYLE_TEST_REQUIRE`` names it."""
    why = CHECKS[need]()
    if why is None:
        return
    if need in required():
        pytest.fail(f"{need} is required by {SWITCH} but missing: {why}")
    pytest.skip(why)
