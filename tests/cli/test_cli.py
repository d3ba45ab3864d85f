"""The command line end to end: a run on every backend, and every bad input."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from multistyle.backend import BUILTIN_BACKENDS
from multistyle.cli import main
from multistyle.vgg import random_weights, save_npz


def run_cli(capsys, *args):
    code = main(["run", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def job(image_files, output, *extra):
    return ["--content", image_files["content"], "--style", image_files["style"], "--output", str(output),
            "--size", "24x32", "--epochs", "3", "--weights", "random:2", "--device", "cpu", "--quiet", *extra]


def test_run_end_to_end(backend_name, image_files, npz_weights, tmp_path, capsys):
    out = tmp_path / "out.png"
    log = tmp_path / "log.json"
    args = job(image_files, out, "--backend", backend_name, "--log", str(log), "--save-every", "2",
               "--epochs", "4", "--lr-decay-every", "2", "--lr-decay", "0.5")
    args[args.index("random:2")] = npz_weights
    code, stdout, stderr = run_cli(capsys, *args)
    assert code == 0, stderr
    assert f"wrote {out}" in stdout and f"{backend_name} on cpu" in stdout
    assert Image.open(out).size == (32, 24)
    assert Image.open(tmp_path / "out.epoch00002.png").size == (32, 24)
    assert not (tmp_path / "out.epoch00004.png").exists()  # the final image is the output itself
    data = json.loads(log.read_text())
    assert [row["epoch"] for row in data["epochs"]] == [1, 2, 3, 4]
    assert [row["lr"] for row in data["epochs"]] == pytest.approx([0.3, 0.3, 0.15, 0.15])
    assert data["meta"]["backend"] == backend_name and data["meta"]["size"] == [24, 32]
    assert data["epochs"][-1]["total"] < data["epochs"][0]["total"]
    # Started from the content image: the first content loss is zero up to rounding.  The target and
    # the first image's features come from two forward passes, which need not be bit-identical (MXNet
    # gave 4.8e-12), so compare with the scale the content loss reaches once the image has moved.
    first, moved = data["epochs"][0]["content"], data["epochs"][-1]["content"]
    assert moved > 0 and abs(first) <= 1e-6 * moved, (first, moved)
    content = np.asarray(Image.open(image_files["content"]).resize((32, 24), Image.BILINEAR), dtype=float)
    assert np.abs(np.asarray(Image.open(out), dtype=float) - content).mean() > 1.0


def test_run_with_csv_log_long_edge_size_and_random_weights_warns(backend_name, image_files, tmp_path, capsys):
    out = tmp_path / "out.jpg"
    args = job(image_files, out, "--backend", backend_name, "--log", str(tmp_path / "log.csv"))
    args[args.index("24x32")] = "32"
    code, stdout, stderr = run_cli(capsys, *args)
    assert code == 0, stderr
    assert "random weights (untrained)" in stderr
    assert Image.open(out).size == (32, 24)  # content is 64x48: long edge 32 keeps 4:3
    lines = (tmp_path / "log.csv").read_text().splitlines()
    assert lines[0] == "epoch,lr,content,style,tv,total,evaluations,seconds" and len(lines) == 4
    assert [line.split(",")[6] for line in lines[1:]] == ["1", "1", "1"]  # Adam: one evaluation an epoch


def _errors(capsys, code, tmp_path, message):
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.splitlines() if not line.startswith("multistyle: warning:")]
    assert len(lines) == 1 and lines[0].startswith("multistyle: error: "), err
    assert message in lines[0]
    assert not [name for name in os.listdir(tmp_path) if name.startswith(("out", ".out"))]


@pytest.mark.parametrize("change, message", [
    (lambda a, p: a.__setitem__(1, str(p / "missing.png")), "--content: file"),
    (lambda a, p: a.__setitem__(3, str(p)), "--style: "),
    (lambda a, p: a.extend(["--backend", "caffe"]), "--backend: unknown backend 'caffe'"),
    (lambda a, p: a.extend(["--size", "30by40"]), "--size: expected HxW"),
    (lambda a, p: a.extend(["--size", "0x40"]), "--size: sizes must be positive"),
    (lambda a, p: a.extend(["--epochs", "0"]), "--epochs: expected a positive integer, got 0"),
    (lambda a, p: a.extend(["--epochs", "-2"]), "--epochs: expected a positive integer, got -2"),
    (lambda a, p: a.extend(["--style-layers", "conv1_1,conv9_9"]), "unknown VGG-19 layer 'conv9_9'"),
    (lambda a, p: a.extend(["--weights", str(p / "vgg.npz")]), "does not exist"),
    (lambda a, p: a.extend(["--log", str(p / "out.txt")]), "--log: expected a .csv or .json"),
    (lambda a, p: a.extend(["--device", "tpu"]), "--device: expected auto, cpu, gpu or gpu:N"),
    (lambda a, p: a.extend(["--max-pixels", "100"]), "raise --max-pixels"),
    (lambda a, p: a.__setitem__(5, str(p / "out.gif2")), "cannot tell the image format"),
    (lambda a, p: a.__setitem__(5, str(p / "nodir" / "out.png")), "does not exist; create it first"),
    (lambda a, p: a.extend(["--line-search"]), "--line-search: only L-BFGS has a line search, not adam"),
    (lambda a, p: a.extend(["--preset", "viblo", "--line-search"]), "--line-search: only L-BFGS has a line search"),
    (lambda a, p: a.extend(["--optimizer", "lbfgs", "--lr", "0"]), "--lr: expected a positive number, got 0.0"),
    (lambda a, p: a.extend(["--optimizer", "rmsprop", "--lr", "-1"]), "--lr: expected a positive number"),
    (lambda a, p: a.extend(["--tol", "0"]), "--tol: expected a relative improvement between 0 and 1"),
    (lambda a, p: a.extend(["--tol", "1.5"]), "--tol: expected a relative improvement between 0 and 1"),
    (lambda a, p: a.extend(["--until-loss", "-3"]), "--until-loss: expected a positive number"),
    (lambda a, p: a.extend(["--until-loss", "nan"]), "--until-loss: expected a positive number"),
], ids=["missing", "directory", "backend", "size", "zero-size", "zero-epochs", "negative-epochs", "layer",
        "weights-file", "log", "device", "max-pixels", "format", "folder", "line-search-adam", "line-search-rmsprop",
        "zero-lr", "negative-lr", "zero-tol", "big-tol", "negative-until-loss", "nan-until-loss"])
def test_bad_input_one_line_error_and_nothing_written(image_files, tmp_path, capsys, change, message):
    args = job(image_files, tmp_path / "out.png")
    change(args, tmp_path)
    _errors(capsys, main(["run", *args]), tmp_path, message)


@pytest.mark.parametrize("kind", ["not-an-image", "empty"])
def test_non_image_inputs(image_files, tmp_path, capsys, kind):
    bad = tmp_path / "in.png"
    bad.write_bytes(b"" if kind == "empty" else b"GIF89a nonsense")
    args = job(image_files, tmp_path / "out.png")
    args[1] = str(bad)
    _errors(capsys, main(["run", *args]), tmp_path, "empty file" if kind == "empty" else "is not an image")


def test_refuses_to_overwrite_an_input(image_files, tmp_path, capsys):
    args = job(image_files, image_files["content"])
    code = main(["run", *args])
    err = capsys.readouterr().err
    assert code == 2 and "refusing to overwrite an input" in err
    assert Image.open(image_files["content"]).size == (64, 48)


def test_user_errors_print_no_traceback(tmp_path):
    out = subprocess.run([sys.executable, "-m", "multistyle", "run", "--content", str(tmp_path / "nope.png"),
                          "--style", str(tmp_path / "nope.png"), "--output", str(tmp_path / "o.png")],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [f"multistyle: error: --content: file '{tmp_path / 'nope.png'}' does not exist"]


def test_weights_with_wrong_shapes(backend_name, image_files, tmp_path, capsys):
    weights = random_weights(0, last=30)
    weights[10] = (np.zeros((256, 64, 3, 3), np.float32), weights[10][1])
    path = tmp_path / "bad.npz"
    save_npz(weights, str(path))
    args = job(image_files, tmp_path / "out.png", "--backend", backend_name)
    args[args.index("random:2")] = str(path)
    _errors(capsys, main(["run", *args]), tmp_path, "conv3_1 (features.10) has weight (256, 64, 3, 3)")


def test_weights_of_another_framework(backend_name, image_files, tmp_path, capsys):
    other = {"torch": "vgg.pdparams", "mxnet": "vgg.pth", "paddle": "vgg.params", "jax": "vgg.pth",
             "tensorflow": "vgg.pth"}[backend_name]
    (tmp_path / other).write_bytes(b"x")
    args = job(image_files, tmp_path / "out.png", "--backend", backend_name)
    args[args.index("random:2")] = str(tmp_path / other)
    _errors(capsys, main(["run", *args]), tmp_path, f"the {backend_name} backend reads .npz")


def test_corrupt_native_checkpoint(backend_name, image_files, tmp_path, capsys):
    own = {"torch": "vgg.pth", "mxnet": "vgg.params", "paddle": "vgg.pdparams", "tensorflow": "vgg.h5"}.get(backend_name)
    if own is None:
        pytest.skip(f"{backend_name} has no native checkpoint format")
    (tmp_path / own).write_bytes(b"definitely not a checkpoint")
    args = job(image_files, tmp_path / "out.png", "--backend", backend_name)
    args[args.index("random:2")] = str(tmp_path / own)
    _errors(capsys, main(["run", *args]), tmp_path, "not a readable")


def test_nan_loss_stops_with_an_error(backend_name, image_files, tmp_path, capsys):
    args = job(image_files, tmp_path / "out.png", "--backend", backend_name, "--lr", "1e30", "--epochs", "5")
    _errors(capsys, main(["run", *args]), tmp_path, "lower --lr")


def _redirect_caches(name, monkeypatch, folder):
    if name == "torch":
        monkeypatch.setenv("TORCH_HOME", str(folder))
    elif name == "mxnet":
        monkeypatch.setenv("MXNET_HOME", str(folder))
    elif name == "tensorflow":
        monkeypatch.setenv("KERAS_HOME", str(folder))
    else:
        import paddle.utils.download

        monkeypatch.setattr(paddle.utils.download, "WEIGHTS_HOME", str(folder))


def test_imagenet_without_network_says_where_the_file_goes(backend_name, image_files, tmp_path, capsys, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network is off in this test")

    if backend_name == "jax":
        pytest.skip("JAX has no model zoo: test_imagenet_on_jax_says_how_to_convert")
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    cache = tmp_path / "cache"
    _redirect_caches(backend_name, monkeypatch, cache)
    args = job(image_files, tmp_path / "out.png", "--backend", backend_name)
    args[args.index("random:2")] = "imagenet"
    code = main(["run", *args])
    err = capsys.readouterr().err
    assert code == 2
    assert "--weights imagenet: could not get" in err and str(cache) in err and "--weights FILE" in err
    assert not (tmp_path / "out.png").exists()


@pytest.mark.backend("jax")
def test_imagenet_on_jax_says_how_to_convert(image_files, tmp_path, capsys):
    args = job(image_files, tmp_path / "out.png", "--backend", "jax")
    args[args.index("random:2")] = "imagenet"
    code = main(["run", *args])
    err = capsys.readouterr().err
    assert code == 2
    assert "JAX has no model zoo" in err and "multistyle weights convert" in err and "--weights FILE.npz" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "out.png").exists()


def test_backends_command_lists_every_backend(capsys):
    assert main(["backends"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == list(BUILTIN_BACKENDS) == ["torch", "mxnet", "paddle", "jax",
                                                                          "tensorflow"]
    for line in out:
        assert " usable " in line and "devices: cpu" in line or " unusable " in line and "pip install" in line


@pytest.mark.parametrize("name", sorted(BUILTIN_BACKENDS))
def test_missing_framework_error_names_the_extra(name, image_files, tmp_path, capsys):
    if all(importlib.util.find_spec(module) is not None for module in BUILTIN_BACKENDS[name].modules):
        pytest.skip(f"{name} is installed here")
    args = job(image_files, tmp_path / "out.png", "--backend", name)
    _errors(capsys, main(["run", *args]), tmp_path, f"install it with pip install 'multistyle[{name}]'")


def test_same_seed_gives_identical_files(backend_name, image_files, tmp_path, capsys):
    outputs = []
    for number, seed in enumerate((5, 5, 6)):
        out = tmp_path / f"out{number}.png"
        args = job(image_files, out, "--backend", backend_name, "--init", "noise", "--seed", str(seed),
                   "--deterministic")
        assert main(["run", *args]) == 0, capsys.readouterr().err
        outputs.append(np.asarray(Image.open(out), dtype=np.int16))
    # The same seed repeats the run: the saved pixels agree (to one 8-bit level, not bit for bit: a
    # rounding difference may tip a value across a level); another seed gives another picture.
    assert np.abs(outputs[0] - outputs[1]).max() <= 1
    assert np.abs(outputs[0] - outputs[2]).mean() > 1.0


def test_until_loss_and_tol_stop_early_and_say_why(backend_name, image_files, tmp_path, capsys):
    # A first run tells the losses; the loss after epoch 3 becomes the target of the second.
    log = tmp_path / "log.json"
    assert main(["run", *job(image_files, tmp_path / "a.png", "--backend", backend_name, "--epochs", "8", "--log",
                    str(log))]) == 0
    totals = [row["total"] for row in json.loads(log.read_text())["epochs"]]
    target = totals[3] * (1 + 1e-4)
    first_below = next(i for i, total in enumerate(totals) if total <= target)
    assert main(["run", *job(image_files, tmp_path / "b.png", "--backend", backend_name, "--epochs", "8", "--log",
                             str(log), "--until-loss", repr(target))]) == 0
    out = capsys.readouterr().out
    data = json.loads(log.read_text())
    assert len(data["epochs"]) == first_below + 1 < 8
    assert data["meta"]["stopped"].startswith("the loss reached") and "stopped early: the loss reached" in out
    # --tol 0.999: no 20 epochs improve the loss by 99.9 %, so the run stops right after the first window.
    assert main(["run", *job(image_files, tmp_path / "c.png", "--backend", backend_name, "--epochs", "40", "--size",
                             "16x16", "--log", str(log), "--tol", "0.999")]) == 0
    data = json.loads(log.read_text())
    assert len(data["epochs"]) == 21 and "(< --tol 0.999) over the 20 epochs to epoch 21" in data["meta"]["stopped"]


def test_scales_run_coarse_to_fine_and_deliver_the_size_asked_for(backend_name, image_files, tmp_path, capsys):
    log, out = tmp_path / "log.json", tmp_path / "out.png"
    assert main(["run", *job(image_files, out, "--backend", backend_name, "--size", "32x48", "--epochs", "7",
                             "--scales", "2", "--log", str(log))]) == 0, capsys.readouterr().err
    rows = json.loads(log.read_text())["epochs"]
    assert [row["epoch"] for row in rows] == list(range(1, 8))
    assert [row["scale"] for row in rows] == [0] * 5 + [1] * 2  # weights 2:1, the remainder to the coarse scale
    assert Image.open(out).size == (48, 32)
    assert rows[4]["total"] < rows[0]["total"]  # the coarse scale made progress that the fine one starts from
    # ... and the fine one does start from it: the content image (where the coarse scale started) has a content
    # loss of 0; the coarse result, upsampled, does not.
    assert rows[0]["content"] <= 1e-6 * rows[0]["total"] < rows[5]["content"]


def test_stop_rules_judge_only_the_final_scale(backend_name, image_files, tmp_path, capsys):
    # A target every epoch meets: the run still does every coarse epoch, then stops at the first fine one.
    log, out = tmp_path / "log.json", tmp_path / "out.png"
    assert main(["run", *job(image_files, out, "--backend", backend_name, "--size", "32x48", "--epochs", "7",
                             "--scales", "2", "--until-loss", "1e30", "--log", str(log))]) == 0, capsys.readouterr().err
    data = json.loads(log.read_text())
    assert [row["scale"] for row in data["epochs"]] == [0] * 5 + [1]
    assert data["meta"]["stopped"].startswith("the loss reached") and "at epoch 6" in data["meta"]["stopped"]
    assert Image.open(out).size == (48, 32)


def test_presets_prints_every_presets_settings(capsys):
    from multistyle.settings import PRESETS

    assert main(["presets", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(PRESETS))
    assert main(["presets"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert rows[0] == ["setting"] + list(PRESETS)
    table = {row[0]: row[1:] for row in rows[1:]}
    assert set(table) == {key for preset in PRESETS.values() for key in preset}
    for column, name in enumerate(PRESETS):
        assert int(table["epochs"][column]) == PRESETS[name]["epochs"]
        assert float(table["style_weight"][column]) == pytest.approx(PRESETS[name]["style_weight"])
        assert table["style_layers"][column].split(",") == list(PRESETS[name]["style_layers"])
        assert table["optimizer"][column] == PRESETS[name]["optimizer"]
