"""Outputs: permissions, every location checked before the work, one-line write errors, Ctrl-C.

Nothing partial is ever left behind: outputs are written to a temporary file and renamed.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from multistyle import images
from multistyle.cli import main
from support.cli import ctrl_c_reaches_it, one_error_line, run_args


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


def test_ctrl_c_keeps_the_last_snapshot_and_no_temporary_file(backend_name, image_files, tmp_path):
    out = tmp_path / "out.png"
    argv = run_args(image_files, out, "--backend", backend_name, "--save-every", "1", "--epochs", "100000")
    # From the user's folder, not the repository's: there `python -m multistyle` would find the source
    # folder ./multistyle, which lacks multistyle.backends (mapped from ./backends at install time).
    process = subprocess.Popen([sys.executable, "-m", "multistyle", *argv], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=tmp_path, preexec_fn=ctrl_c_reaches_it)
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob("out.epoch*.png")) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # a few more epochs, so the interrupt may land inside a snapshot write
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()  # never left running 100000 epochs after a failure
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
