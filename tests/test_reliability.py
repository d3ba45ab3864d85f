"""Reliability and security: untrusted files, outputs checked before the work, Ctrl-C, one-line errors.

Most of these run in every tox env (no framework needed: the checks happen
before a backend is loaded); those that need a framework take the
``backend_name`` fixture or :func:`conftest.require`.
"""

from __future__ import annotations

import errno
import importlib
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections import OrderedDict

import numpy as np
import pytest
from PIL import Image

from conftest import require
from multistyle import backend as registry
from multistyle import images
from multistyle.cli import main
from multistyle.errors import BackendBug, MultistyleError, WeightsError
from multistyle.safe_pickle import UnsafePickle, load_state_dict
from multistyle.vgg import random_weights, state_dict

FRAMEWORKS = ("torch", "torchvision", "mxnet", "paddle")


def one_error_line(stderr: str, message: str) -> str:
    lines = [line for line in stderr.splitlines() if not line.startswith("multistyle: warning:")]
    assert len(lines) == 1 and lines[0].startswith("multistyle: error: "), stderr
    assert message in lines[0], lines[0]
    return lines[0]


def run_args(image_files, output, *extra):
    return ["run", "--content", image_files["content"], "--style", image_files["style"], "--output", str(output),
            "--size", "24x32", "--epochs", "3", "--weights", "random:2", "--device", "cpu", "--quiet", *extra]


# -- weight files never run code ---------------------------------------------------

class _Payload:
    """Unpickling this creates a file: what a malicious .pdparams would do."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return open, (self.target, "w")


def _evil_pdparams(folder, target) -> str:
    path = folder / "evil.pdparams"
    weights = state_dict(random_weights(0, last=0))
    weights["features.0.weight"] = _Payload(str(target))
    path.write_bytes(pickle.dumps(weights, protocol=4))
    return str(path)


def test_a_pickle_that_would_run_code_is_refused_before_anything_runs(tmp_path):
    target = tmp_path / "pwned.txt"
    path = _evil_pdparams(tmp_path, target)
    with pytest.raises(UnsafePickle, match=r"refused to load: the file asks to run io\.open, which") as info:
        load_state_dict(path)
    assert "\n" not in str(info.value)
    assert not target.exists()


def test_state_dicts_of_arrays_load_through_the_restricted_reader(tmp_path):
    # What paddle.save writes: a pickled dict (or OrderedDict) of NumPy arrays; NumPy's own reduce.
    arrays = state_dict(random_weights(1, last=2))
    for number, container in enumerate((dict, OrderedDict)):
        path = tmp_path / f"ok{number}.pdparams"
        path.write_bytes(pickle.dumps(container(arrays, extra=np.float32(2.0), note="text"), protocol=number + 2))
        loaded = load_state_dict(str(path))
        assert sorted(loaded) == sorted(arrays)
        for key, value in arrays.items():
            assert loaded[key].dtype == value.dtype
            np.testing.assert_array_equal(loaded[key], value)


@pytest.mark.parametrize("content, message", [
    (b"", "not a readable Paddle checkpoint (EOFError"),
    (b"\x80\x04\x95 truncated", "not a readable Paddle checkpoint"),
    (pickle.dumps([1, 2, 3]), "expected a state dict, found a list"),
], ids=["empty", "truncated", "a-list"])
def test_damaged_pickles_give_one_line(tmp_path, content, message):
    path = tmp_path / "bad.pdparams"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match=re.escape(message)) as info:
        load_state_dict(str(path))
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("command", ["run", "info", "convert"])
def test_malicious_pdparams_through_the_cli(command, image_files, tmp_path, capsys):
    require("paddle")
    target = tmp_path / "pwned.txt"
    path = _evil_pdparams(tmp_path, target)
    if command == "run":
        argv = run_args(image_files, tmp_path / "out.png", "--backend", "paddle")
        argv[argv.index("random:2")] = path
    elif command == "info":
        argv = ["weights", "info", path]
    else:
        argv = ["weights", "convert", path, str(tmp_path / "out.npz")]
    assert main(argv) == 2
    one_error_line(capsys.readouterr().err, "refused to load")
    assert not target.exists()
    assert not [name for name in os.listdir(tmp_path) if name.startswith(("out", ".out"))]


# -- input images: a fixed list of raster formats ---------------------------------------

def test_postscript_never_reaches_ghostscript(tmp_path, monkeypatch):
    from PIL import EpsImagePlugin

    calls = []
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", lambda *a, **k: calls.append(a) or (_ for _ in ()).throw(
        AssertionError("Ghostscript was called")))
    eps = tmp_path / "image.png"  # the extension does not matter: Pillow sniffs the content
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\nnewpath 0 0 moveto 8 8 lineto stroke\n"
                    b"showpage\n%%EOF\n")
    with pytest.raises(MultistyleError, match=r"is not an image in a supported format \(PNG, JPEG, WEBP, TIFF"):
        images.load_image(str(eps), "--style")
    assert calls == []


def test_every_listed_format_loads(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    for extension, fmt in ((".png", "PNG"), (".jpg", "JPEG"), (".webp", "WEBP"), (".tif", "TIFF"), (".bmp", "BMP"),
                           (".gif", "GIF")):
        path = tmp_path / f"in{extension}"
        Image.fromarray(pixels).save(path, format=fmt)
        loaded = images.load_image(str(path))
        assert loaded.mode == "RGB" and loaded.size == (16, 12), fmt


def test_decompression_bomb_limit_holds(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", (200, 100)).save(path)
    with pytest.raises(MultistyleError, match="has more than 19999 pixels; raise --max-pixels"):
        images.load_image(str(path), "--content", max_pixels=19_999)
    assert images.load_image(str(path), "--content", max_pixels=20_000).size == (200, 100)


# -- outputs: permissions, checked before the work, OSError as one line -------------------

@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_outputs_get_the_permissions_of_a_new_file(tmp_path, umask):
    previous = os.umask(umask)
    try:
        images.save_image(np.zeros((4, 4, 3), np.uint8), str(tmp_path / "out.png"))
        with images.atomic_write(str(tmp_path / "log.json")) as handle:
            handle.write(b"{}")
    finally:
        os.umask(previous)
    for name in ("out.png", "log.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


def _unwritable_folder(tmp_path):
    """A folder that exists but refuses new files, also for root (who ignores permission bits)."""
    if os.geteuid() != 0:
        folder = tmp_path / "locked"
        folder.mkdir()
        folder.chmod(0o500)
        return folder
    if os.path.isdir("/proc"):  # Linux: exists, and no one can create a file in it
        return "/proc"
    pytest.skip("no folder here refuses root")


@pytest.mark.parametrize("where", ["log-missing-folder", "log-under-a-file", "log-unwritable", "output-unwritable",
                                   "output-is-a-folder"])
def test_every_output_location_is_checked_before_the_work(image_files, tmp_path, capsys, where):
    # No framework is needed to reach these errors: they come before any backend is loaded.
    out = tmp_path / "out.png"
    (tmp_path / "file.txt").write_text("x")
    extra, message = {
        "log-missing-folder": (["--log", str(tmp_path / "nodir" / "log.json")], "--log: folder"),
        "log-under-a-file": (["--log", str(tmp_path / "file.txt" / "log.csv")], "--log: folder"),
        "log-unwritable": (["--log", os.path.join(str(_unwritable_folder(tmp_path)), "log.json")],
                           "--log: cannot write in folder"),
        "output-unwritable": ([], "--output: cannot write in folder"),
        "output-is-a-folder": ([], "is a directory"),
    }[where]
    argv = run_args(image_files, out, *extra)
    if where == "output-unwritable":
        argv[argv.index(str(out))] = os.path.join(str(_unwritable_folder(tmp_path)), "out.png")
    elif where == "output-is-a-folder":
        (tmp_path / "dir.png").mkdir()
        argv[argv.index(str(out))] = str(tmp_path / "dir.png")
    started = time.perf_counter()
    assert main(argv) == 2
    one_error_line(capsys.readouterr().err, message)
    assert time.perf_counter() - started < 5  # refused up front, not after a run
    assert not out.exists()


def test_a_failing_write_is_one_line_and_leaves_nothing(backend_name, image_files, tmp_path, capsys, monkeypatch):
    def disk_full(self, fp, *args, **kwargs):
        fp.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", disk_full)
    out = tmp_path / "out.png"
    code = main(run_args(image_files, out, "--backend", backend_name, "--save-every", "1"))
    line = one_error_line(capsys.readouterr().err, "No space left on device")
    assert code == 2 and "out.epoch00001.png" in line  # the first snapshot was the first write
    assert os.listdir(tmp_path) == []


def test_option_type_errors_are_one_line(capsys):
    for argv, message in ((["run", "--epochs", "x"], "argument --epochs: invalid int value: 'x'"),
                          (["run", "--content", "a.png"], "the following arguments are required"),
                          (["frobnicate"], "invalid choice: 'frobnicate'"),
                          (["run", "--optimizer", "sgd"], "argument --optimizer: invalid choice: 'sgd'"),
                          (["run", "--clamp", "often"], "argument --clamp: invalid choice: 'often'")):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        line = one_error_line(capsys.readouterr().err, message)
        assert "--help" in line


# -- Ctrl-C -------------------------------------------------------------------------------

def test_ctrl_c_keeps_the_last_snapshot_and_no_temporary_file(backend_name, image_files, tmp_path):
    out = tmp_path / "out.png"
    argv = run_args(image_files, out, "--backend", backend_name, "--save-every", "1", "--epochs", "100000")
    # From the user's folder, not the repository's: there `python -m multistyle` would find the source
    # folder ./multistyle, which lacks multistyle.backends (mapped from ./backends at install time).
    process = subprocess.Popen([sys.executable, "-m", "multistyle", *argv], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob("out.epoch*.png")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # a few more epochs, so the interrupt may land inside a snapshot write
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("multistyle: warning:"), stderr  # untrained-weights warning
    assert lines[1].startswith("multistyle: interrupted after epoch ") and "the last snapshot is " in lines[1]
    named = lines[1].split("the last snapshot is ")[1].split(";")[0]
    snapshots = sorted(tmp_path.glob("out.epoch*.png"))
    assert named == str(snapshots[-1])
    assert Image.open(named).size == (32, 24)
    assert not out.exists()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


# -- backends: bugs of ours vs broken frameworks, determinism, GPUs -------------------------

def _fake_backend(monkeypatch, tmp_path, source):
    (tmp_path / "fakebackend.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    monkeypatch.delitem(sys.modules, "fakebackend", raising=False)
    monkeypatch.setitem(registry.BUILTIN_BACKENDS, "fake",
                        registry.BackendSpec("fake", "fakebackend:Fake", ("fakefw",), "fake"))


@pytest.mark.parametrize("source, kind", [
    ("import os\nVALUE = 1 / 0\n", "ZeroDivisionError"),
    ("import json\njson.loads('{')\n", "JSONDecodeError"),  # a bad call into a library at import time
    ("def broken(:\n    pass\n", "SyntaxError"),
])
def test_an_exception_in_our_backend_module_is_a_bug_with_a_traceback(monkeypatch, tmp_path, capsys, source, kind):
    _fake_backend(monkeypatch, tmp_path, source)
    with pytest.raises(BackendBug, match=rf"bug in multistyle: importing fakebackend raised {kind}") as info:
        registry.load_backend_class("fake")
    assert not isinstance(info.value, MultistyleError)  # so the CLI shows the traceback
    assert isinstance(info.value.__cause__, Exception)
    row = registry.describe_backends(["fake"])[0]
    assert row["usable"] is False and "bug in multistyle" in row["reason"] and kind in row["traceback"]
    assert "Traceback" in row["traceback"]


def test_a_framework_failing_its_own_import_is_still_broken_not_a_bug(monkeypatch, tmp_path):
    (tmp_path / "fakefw.py").write_text("import json\njson.loads('{')\n")  # fails inside the framework
    _fake_backend(monkeypatch, tmp_path, "import fakefw\n")
    monkeypatch.delitem(sys.modules, "fakefw", raising=False)
    with pytest.raises(registry.BackendUnavailable, match="installed but broken"):
        registry.load_backend_class("fake")


def test_torch_deterministic_mode_is_strict(monkeypatch):
    require("torch")
    import torch
    from torch._prims_common import alert_not_deterministic  # torch's own alert, as its ops raise it

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


# -- the tox envs test what they say -------------------------------------------------------

@pytest.mark.skipif(os.environ.get("MULTISTYLE_TEST_NO_FRAMEWORKS") != "1",
                    reason="only in the core env (MULTISTYLE_TEST_NO_FRAMEWORKS=1)")
def test_the_core_env_has_no_framework():
    found = [name for name in FRAMEWORKS if importlib.util.find_spec(name) is not None]
    assert found == [], f"the core env must have no framework, but finds {found}"


# -- compare: one backend failing does not sink the others -----------------------------------

def test_compare_reports_a_backend_that_raised_and_runs_the_others(image_files, npz_weights, tmp_path, monkeypatch,
                                                                   capsys):
    installed = [row["name"] for row in registry.describe_backends(sorted(registry.BUILTIN_BACKENDS))
                 if row["usable"]]
    if not installed:
        pytest.skip("no framework installed")
    # A third-party backend (an entry point) that fails in the worker the way a GPU out of memory does.
    (tmp_path / "oombackend.py").write_text(textwrap.dedent("""
        import os
        from multistyle.backend import load_backend_class

        class OOM(load_backend_class(os.environ["MULTISTYLE_TEST_OOM_BASE"])):
            name = "oom"

            def vgg19_layers(self, weights, last, pooling="max"):
                raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB\\nmore detail")
    """))
    info = tmp_path / "multistyle_oom-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: multistyle-oom\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[multistyle.backends]\noom = oombackend:OOM\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # spawned workers inherit sys.path and the environment
    monkeypatch.setenv("MULTISTYLE_TEST_OOM_BASE", installed[0])
    importlib.invalidate_caches()
    folder = tmp_path / "report"
    code = main(["compare", "--no-maths", "--backends", f"oom,{installed[0]}", "--content", image_files["content"],
                 "--style", image_files["style"], "--output", str(folder), "--size", "16x16", "--epochs", "2",
                 "--weights", npz_weights, "--device", "cpu"])
    assert code == 0
    assert f"{'oom':14} did not run: RuntimeError: CUDA out of memory. Tried to allocate 20.00 GiB" in capsys.readouterr().out
    data = json.loads((folder / "report.json").read_text())
    assert data["failed"] == {"oom": "RuntimeError: CUDA out of memory. Tried to allocate 20.00 GiB"}
    assert [row["backend"] for row in data["backends"]] == [installed[0]]
    assert "Backend <b>oom</b> did not run: RuntimeError: CUDA out of memory" in (folder / "index.html").read_text()


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


def test_ctrl_c_right_after_the_temporary_file_is_created_leaves_nothing(tmp_path, monkeypatch):
    # The window CI found: the temporary file exists, but its creation has not returned its name yet.
    from multistyle import images

    real_close = os.close

    def close_then_interrupt(fd):
        real_close(fd)
        monkeypatch.setattr(os, "close", real_close)
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "close", close_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        with images.atomic_write(str(tmp_path / "out.png")) as handle:
            handle.write(b"never")
    assert list(tmp_path.iterdir()) == []
