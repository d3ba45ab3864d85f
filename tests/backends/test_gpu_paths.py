"""The GPU branches, run without a GPU: fakes stand in at the framework boundary.

CI has no GPU, so the code that only runs on one (device mapping, ``--device
auto`` picking a GPU, peak device memory, the deterministic switches, the
batch's GPU count and worker pinning, the ``--plan`` GPU figure) is driven
here through fakes of what the framework or ``nvidia-smi`` would answer.
``test_reliability.py::test_the_gpu_path_where_there_is_a_gpu`` still runs
the real thing where a GPU is present.
"""

from __future__ import annotations

import os
import re
import stat

import pytest

from multistyle import batch
from multistyle.backend import get_backend, load_backend_class
from multistyle.cli import main
from support.needs import require

FAKE_GPUS = ["cpu", "gpu:0", "gpu:1"]


# -- nvidia-smi, and one batch worker per GPU ------------------------------------------------------------------

def _fake_tool(folder, name, text, code=0):
    tool = folder / name
    tool.write_text(f"#!/bin/sh\ncat <<'EOF'\n{text}\nEOF\nexit {code}\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    return tool


@pytest.mark.parametrize("listing, code, count", [
    ("GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-1b2c)\nGPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-3d4e)", 0, 2),
    # With MIG on, nvidia-smi -L lists each GPU's instances below it: still two GPUs.
    ("GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-5f6a)\n  MIG 3g.20gb     Device  0: (UUID: MIG-7b8c)\n"
     "  MIG 3g.20gb     Device  1: (UUID: MIG-9d0e)\nGPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-1f2a)", 0, 2),
    ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.", 9, 0),
    ("No devices were found", 6, 0),
], ids=["two-gpus", "mig", "no-driver", "no-devices"])
def test_gpu_count_reads_nvidia_smi(tmp_path, monkeypatch, listing, code, count):
    _fake_tool(tmp_path, "nvidia-smi", listing, code)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    assert batch.gpu_count() == count


def test_gpu_count_without_nvidia_smi_is_0(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no nvidia-smi anywhere
    assert batch.gpu_count() == 0


def test_a_worker_runs_auto_and_gpu_jobs_on_its_own_gpu(monkeypatch):
    """What a worker pinned to gpu:1 (one worker per GPU) does with each job's --device."""
    class Connection:
        def __init__(self, payloads):
            self.payloads, self.sent = list(payloads) + [None], []

        def recv(self):
            return self.payloads.pop(0)

        def send(self, value):
            self.sent.append(value)

    from multistyle.batch import local

    monkeypatch.setattr(local.signal, "signal", lambda *args: None)  # the worker ignores Ctrl-C; not this process
    monkeypatch.setattr(local, "execute", lambda payload: payload["device"])
    connection = Connection({"device": device} for device in ("auto", "gpu", "cpu", "gpu:0"))
    local._worker_main(connection, "gpu:1", None)
    assert connection.sent == ["gpu:1", "gpu:1", "cpu", "gpu:0"]  # an explicit device is the user's choice
    connection = Connection([{"device": "auto"}])
    local._worker_main(connection, None, None)  # a CPU worker leaves auto to the backend
    assert connection.sent == ["auto"]


# -- device strings, per framework -------------------------------------------------------------------------------

def _with_fake_gpus(monkeypatch, name):
    require(name)
    cls = load_backend_class(name)
    monkeypatch.setattr(cls, "available_devices", classmethod(lambda cls: list(FAKE_GPUS)))
    return cls


def _native_device(backend):
    """Where the backend puts tensors, as the framework names it."""
    return backend.native_device if backend.name == "paddle" else str(backend.native_device)


@pytest.mark.parametrize("name", ["torch", "mxnet", "paddle"])
def test_device_strings_map_to_the_frameworks_devices(monkeypatch, name):
    _with_fake_gpus(monkeypatch, name)
    if name == "paddle":  # a CPU build of Paddle refuses to make a CUDAPlace; record what would be made
        import paddle

        monkeypatch.setattr(paddle, "CUDAPlace", lambda number: f"CUDAPlace({number})")
    expected = {"torch": ["cuda:0", "cuda:1", "cpu"], "mxnet": ["gpu(0)", "gpu(1)", "cpu(0)"],
                "paddle": ["CUDAPlace(0)", "CUDAPlace(1)", None]}[name]
    for device, native in zip(("auto", "gpu:1", "cpu"), expected):
        backend = get_backend(name, device)
        assert backend.device == {"auto": "gpu:0"}.get(device, device)  # auto picks the first GPU
        if native is not None:
            assert _native_device(backend) == native, device
    assert get_backend(name, "gpu").device == "gpu:0"


def test_peak_device_memory_asks_the_framework_for_that_gpu(monkeypatch):
    _with_fake_gpus(monkeypatch, "torch")
    import torch

    asked = []
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device: asked.append(str(device)) or 123456)
    assert get_backend("torch", "gpu:1").peak_device_memory() == 123456 and asked == ["cuda:1"]
    assert get_backend("torch", "cpu").peak_device_memory() is None


def test_paddle_peak_device_memory(monkeypatch):
    _with_fake_gpus(monkeypatch, "paddle")
    import paddle

    monkeypatch.setattr(paddle, "CUDAPlace", lambda number: f"CUDAPlace({number})")
    asked = []
    monkeypatch.setattr(paddle.device.cuda, "max_memory_allocated", lambda number: asked.append(number) or 654321)
    assert get_backend("paddle", "gpu:1").peak_device_memory() == 654321 and asked == [1]
    assert get_backend("paddle", "cpu").peak_device_memory() is None


# -- the deterministic switches ----------------------------------------------------------------------------------

def test_torch_deterministic_switches_cudnn(monkeypatch):
    require("torch")
    import torch

    monkeypatch.setattr(torch.backends.cudnn, "deterministic", False)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")  # a value the user set is kept
    try:
        get_backend("torch", "cpu").set_deterministic()
        assert torch.backends.cudnn.deterministic is True and torch.backends.cudnn.benchmark is False
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"
    finally:
        torch.use_deterministic_algorithms(False)


def test_mxnet_deterministic_sets_its_variable(monkeypatch):
    require("mxnet")
    monkeypatch.delenv("MXNET_ENFORCE_DETERMINISM", raising=False)
    get_backend("mxnet", "cpu").set_deterministic()
    assert os.environ["MXNET_ENFORCE_DETERMINISM"] == "1"


def test_paddle_deterministic_sets_the_cudnn_flag_on_a_cuda_build(monkeypatch):
    require("paddle")
    import paddle

    flags = []
    monkeypatch.setattr(paddle, "set_flags", lambda value: flags.append(value))
    monkeypatch.setattr(paddle, "is_compiled_with_cuda", lambda: False)
    get_backend("paddle", "cpu").set_deterministic()
    assert flags == []  # a CPU build has no such flag, and is deterministic
    monkeypatch.setattr(paddle, "is_compiled_with_cuda", lambda: True)
    get_backend("paddle", "cpu").set_deterministic()
    assert flags == [{"FLAGS_cudnn_deterministic": True}]


# -- run --plan on a GPU -------------------------------------------------------------------------------------------

def _plan(image_files, tmp_path, capsys, *extra):
    assert main(["run", "--content", image_files["content"], "--style", image_files["style"], "--output",
                 str(tmp_path / "out.png"), "--plan", "--size", "300x450", "--backend", "torch", *extra]) == 0
    return capsys.readouterr().out


def _mib(text):
    number, unit = text.split()
    return float(number) * {"GiB": 1024, "MiB": 1, "KiB": 1 / 1024}[unit]


def test_plan_for_a_gpu_predicts_its_memory(image_files, tmp_path, capsys):
    cpu = _plan(image_files, tmp_path, capsys, "--device", "cpu")
    gpu = _plan(image_files, tmp_path, capsys, "--device", "gpu:1")
    assert "plan: torch on gpu:1, 300x450" in gpu and "GPU" not in cpu.split("predicted peak memory:")[1]
    found = re.search(r"predicted peak memory: host ([0-9.]+ [KMG]iB), GPU ([0-9.]+ [KMG]iB) "
                      r"\(not yet checked against a GPU\) \(.*activations ([0-9.]+ [KMG]iB)", gpu)
    assert found, gpu
    host, device, activations = (_mib(found.group(k)) for k in (1, 2, 3))
    assert device >= activations > 50  # VGG-19's activations at 300x450 live on the GPU
    cpu_host = _mib(re.search(r"predicted peak memory: host ([0-9.]+ [KMG]iB)", cpu).group(1))
    assert host < cpu_host  # ... and not in the host's memory
