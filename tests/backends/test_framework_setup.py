"""What each framework is told: strict deterministic modes, every core, and the real GPU path."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from multistyle import backend as registry
from multistyle.errors import MultistyleError
from support.needs import require


def test_torch_deterministic_mode_is_strict(monkeypatch):
    require("torch")
    import torch
    from torch._prims_common import (
        alert_not_deterministic,  # torch's own alert, as its ops raise it
    )

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    backend = registry.get_backend("torch", "cpu")
    try:
        backend.set_deterministic()
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        assert torch.are_deterministic_algorithms_enabled()
        assert not torch.is_deterministic_algorithms_warn_only_enabled()
        optimizer = backend.optimizer("adam", np.zeros((1, 3, 4, 4), np.float32), 0.1, 1.0, 1)

        def closure(x):
            alert_not_deterministic("scatter_add_cuda_kernel")
            return backend.mean(backend.square(x))

        with pytest.raises(MultistyleError, match=r"^--deterministic: scatter_add_cuda_kernel has no deterministic "
                                                  r"implementation on cpu in torch .*; run without --deterministic$"):
            optimizer.step(closure)
    finally:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic = False


@pytest.mark.gpu
def test_the_gpu_path_where_there_is_a_gpu(backend_name, image_files, npz_weights):
    """Runs only on a machine with a GPU the framework sees: auto picks it, and it agrees with the CPU."""
    from multistyle import transfer

    cls = registry.load_backend_class(backend_name)
    if "gpu:0" not in cls.available_devices():
        pytest.skip(f"{backend_name} sees no GPU here")
    runs = {device: transfer(image_files["content"], image_files["style"], backend=backend_name, device=device,
                             weights=npz_weights, size=(24, 32), epochs=2) for device in ("auto", "cpu")}
    assert runs["auto"].device == "gpu:0" and runs["cpu"].device == "cpu"
    assert runs["auto"].peak_device_memory is None or runs["auto"].peak_device_memory > 0
    # TF32 convolutions and other kernels: the first loss agrees to 1e-2, not to float32 rounding.
    assert runs["auto"].history[0]["total"] == pytest.approx(runs["cpu"].history[0]["total"], rel=1e-2)


@pytest.mark.parametrize("name", ["mxnet", "paddle"])
def test_backends_use_every_core_unless_the_user_says_otherwise(name, tmp_path):
    """MXNet would run half the logical processors' worth of OpenMP threads, Paddle one."""
    require(name)
    code = ("import os, warnings; warnings.simplefilter('ignore');"
            f"from multistyle.backend import load_backend_class; load_backend_class({name!r});"
            "print(os.environ['OMP_NUM_THREADS'])")
    env = {key: value for key, value in os.environ.items() if key != "OMP_NUM_THREADS"}
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    for preset, expected in ((None, str(cores)), ("1", "1")):
        if preset is not None:
            env["OMP_NUM_THREADS"] = preset
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip().splitlines()[-1] == expected, (preset, out.stdout)


def test_tensorflow_is_imported_without_jax_and_jax_imports_afterwards(tmp_path):
    """TensorFlow 2.15's ``import tensorflow`` imports JAX wherever it is installed (for TFLite's JAX converter:
    0.4 s of every start-up); the backend refuses it while TensorFlow imports, and JAX imports as usual after."""
    require("tensorflow")
    fake = tmp_path / "site" / "jax"  # a JAX of the test's own, so that the test needs no JAX installed
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("xla_computation = None  # all that TensorFlow's TFLite imports\n")
    code = ("import sys; sys.path.insert(0, sys.argv[1]);"
            "from multistyle.backend import load_backend_class; load_backend_class('tensorflow');"
            "print('jax' in sys.modules); import jax; print(jax.__file__)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "site")], capture_output=True, text=True,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    imported_with_tensorflow, jax_file = out.stdout.strip().splitlines()[-2:]
    assert imported_with_tensorflow == "False"
    assert jax_file == str(fake / "__init__.py")
