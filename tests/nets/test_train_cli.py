"""``multistyle train``, ``run --model`` and ``export --onnx`` as a user runs them, on one framework (the property
does not depend on which: the backends' agreement is tested in test_style_network_backends.py)."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from PIL import Image

from multistyle import images
from multistyle.cli import main
from multistyle.nets import StyleNetwork
from multistyle.training import checkpoint_path, train
from support.cli import one_error_line
from support.needs import INSTALLED, needs_a_backend, require

BACKEND = "torch" if "torch" in INSTALLED else (INSTALLED[0] if INSTALLED else "torch")
TINY = ["--size", "32", "--batch-size", "2", "--width", "4", "--weights", "random:1", "--device", "cpu",
        "--backend", BACKEND, "--preset", "fast", "--quiet"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(3):
        images.save_image(rng.integers(0, 256, (36 + 6 * i, 40, 3)).astype(np.uint8), str(folder / f"p{i}.jpg"))
    return str(folder)


def _train(image_files, photos, output, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return train(image_files["style"], photos, output=str(output), backend=BACKEND, device="cpu",
                     weights="random:1", size=32, batch_size=2, width=4, preset="fast", **options)


@needs_a_backend
def test_train_then_run_then_export(image_files, photos, tmp_path, capsys):
    model = tmp_path / "style.safetensors"
    assert main(["train", "--style", image_files["style"], "--contents", photos, "--output", str(model),
                 "--iterations", "3", *TINY]) == 0
    assert "wrote" in capsys.readouterr().out
    network = StyleNetwork.load(str(model))
    assert network.iterations == 3 and network.width == 4 and network.metadata["backend"] == BACKEND
    assert network.metadata["loss_network"].startswith("VGG-19 random:1 sha256:")
    assert os.path.exists(checkpoint_path(str(model)))
    # One pass, the content's own size (64x48 here), no VGG-19.
    out = tmp_path / "out.png"
    assert main(["run", "--model", str(model), "--content", image_files["content"], "--output", str(out),
                 "--backend", BACKEND, "--device", "cpu"]) == 0
    picture = np.asarray(Image.open(out))
    assert picture.shape == np.asarray(Image.open(image_files["content"])).shape
    # --weights with --model: one warning line naming the loss network the network was trained against.
    assert main(["run", "--model", str(model), "--content", image_files["content"], "--output", str(out),
                 "--backend", BACKEND, "--device", "cpu", "--weights", "random:3"]) == 0
    warning = [line for line in capsys.readouterr().err.splitlines() if line.startswith("multistyle: warning:")]
    assert len(warning) == 1 and "trained against VGG-19 random:1" in warning[0], warning
    # The ONNX graph, run by onnxruntime, gives the backend's picture within one level.
    require("onnx")
    import onnxruntime

    graph = tmp_path / "style.onnx"
    assert main(["export", str(model), "--onnx", str(graph)]) == 0
    session = onnxruntime.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    content = np.asarray(Image.open(image_files["content"]).convert("RGB"), np.float32)
    for crop in (content, content[:37, :45]):  # and a size the strides do not divide
        x = (crop / 255.0).transpose(2, 0, 1)[None].astype(np.float32)
        (y,) = session.run(["stylized"], {"image": x})
        assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1
        onnx_picture = np.rint(y[0].transpose(1, 2, 0) * 255).astype(int)
        from multistyle.nets.stylize import stylize

        ours = stylize(str(model), crop.astype(np.uint8), backend=BACKEND, device="cpu").image.astype(int)
        assert np.abs(onnx_picture - ours).max() <= 1


@needs_a_backend
def test_resume_equals_an_uninterrupted_run(image_files, photos, tmp_path):
    straight = _train(image_files, photos, tmp_path / "a.safetensors", iterations=4, checkpoint_every=0)
    first = _train(image_files, photos, tmp_path / "b.safetensors", iterations=2)
    resumed = _train(image_files, photos, tmp_path / "b.safetensors", iterations=4, resume=True)
    assert first.iterations == 2 and resumed.iterations == 4
    moved = max(float(np.abs(straight.params[k] - first.params[k]).max()) for k in straight.params)
    assert moved > 1e-4  # the last two iterations changed something, so equality below means something
    for name in straight.params:
        np.testing.assert_allclose(resumed.params[name], straight.params[name], rtol=1e-6, atol=1e-7, err_msg=name)


@needs_a_backend
def test_training_lowers_the_loss_on_a_fixed_set(image_files, tmp_path):
    folder = tmp_path / "one"
    folder.mkdir()
    images.save_image(np.asarray(Image.open(image_files["content"]).convert("RGB").resize((32, 32))),
                      str(folder / "c.png"))  # one photo the size of the crop: the same batch every iteration
    losses = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train(image_files["style"], str(folder), backend=BACKEND, device="cpu", weights="random:1", size=32,
              batch_size=1, width=4, iterations=15, lr=1e-2, preset="fast", callback=lambda r: losses.append(r["total"]))
    assert losses[-1] < 0.8 * losses[0], losses


@needs_a_backend
@pytest.mark.parametrize("case, message", [
    ("empty", "--contents: no photos in"),
    ("small", "smaller than the 32x32 crop"),
    ("style", "--style:"),
    ("extension", "--output: a style network is saved as .safetensors"),
    ("resume-none", "--resume: no checkpoint at"),
    ("resume-other", "was made with other training options or photos"),
    ("resume-weights", "was made with another loss network"),
])
def test_bad_training_input_is_one_line_and_writes_nothing(image_files, photos, tmp_path, capsys, case, message):
    style, contents, output, extra = image_files["style"], photos, tmp_path / "net.safetensors", []
    if case == "empty":
        contents = str(tmp_path / "empty")
        os.mkdir(contents)
    elif case == "small":
        contents = str(tmp_path / "small")
        os.mkdir(contents)
        images.save_image(np.zeros((20, 50, 3), np.uint8), os.path.join(contents, "tiny.png"))
    elif case == "style":
        style = str(tmp_path / "nostyle.jpg")
        with open(style, "wb") as handle:
            handle.write(b"not an image")
    elif case == "extension":
        output = tmp_path / "net.pth"
    elif case == "resume-none":
        extra = ["--resume"]
    elif case == "resume-other":  # a checkpoint made with another width
        _train(image_files, photos, output, iterations=1)
        os.unlink(output)
        extra = ["--resume", "--width", "8"]
    elif case == "resume-weights":  # a checkpoint trained against another VGG-19
        _train(image_files, photos, output, iterations=1)
        os.unlink(output)
        extra = ["--resume", "--weights", "random:2"]
    before = set(os.listdir(tmp_path))
    code = main(["train", "--style", style, "--contents", contents, "--output", str(output), "--iterations", "2",
                 *TINY, *extra])
    assert code == 2
    one_error_line(capsys.readouterr().err, message)
    assert not output.exists()
    assert set(os.listdir(tmp_path)) == before


@needs_a_backend
@pytest.mark.parametrize("case, message", [
    ("not-a-model", "is not a readable safetensors file"),
    ("with-style", "--style: a trained network (--model) has its style built in"),
    ("histogram", "--preserve-color histogram: a trained network has no style image"),
    ("no-style", "--style: required"),
])
def test_bad_run_model_input_is_one_line(image_files, tmp_path, capsys, case, message):
    model = tmp_path / "m.safetensors"
    StyleNetwork.fresh(4).save(str(model))
    extra = {"with-style": ["--style", image_files["style"]], "histogram": ["--preserve-color", "histogram"]}.get(case, [])
    if case == "not-a-model":
        model.write_bytes(b"\x00" * 40)
    args = ["run", "--content", image_files["content"], "--output", str(tmp_path / "o.png"), *extra]
    if case != "no-style":
        args += ["--model", str(model)]
    assert main(args) == 2
    one_error_line(capsys.readouterr().err, message)
    assert not (tmp_path / "o.png").exists()


@needs_a_backend
def test_preserve_color_keeps_the_contents_colours(image_files, tmp_path):
    from multistyle.nets.stylize import stylize

    network = StyleNetwork.fresh(4, seed=3)
    plain = stylize(network, image_files["content"], backend=BACKEND, device="cpu").image.astype(float)
    kept = stylize(network, image_files["content"], backend=BACKEND, device="cpu",
                   preserve_color="luminance").image.astype(float)
    content = np.asarray(Image.open(image_files["content"]).convert("RGB"), float)

    def chroma(rgb):
        return rgb - rgb.mean(axis=2, keepdims=True)

    assert np.abs(chroma(kept) - chroma(content)).mean() < 0.5 * np.abs(chroma(plain) - chroma(content)).mean()


@needs_a_backend
def test_ctrl_c_keeps_the_last_checkpoint_and_resume_goes_on(image_files, photos, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from support.cli import ctrl_c_reaches_it

    model = tmp_path / "net.safetensors"
    ckpt = checkpoint_path(str(model))
    process = subprocess.Popen(
        [sys.executable, "-m", "multistyle", "train", "--style", image_files["style"], "--contents", photos,
         "--output", str(model), "--iterations", "100000", "--checkpoint-every", "1", *TINY],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, preexec_fn=ctrl_c_reaches_it)
    deadline = time.monotonic() + 120
    while not os.path.exists(ckpt) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    lines = [line for line in stderr.splitlines() if not line.startswith("multistyle: warning:")]
    assert len(lines) == 1 and "the last checkpoint is" in lines[0] and "--resume" in lines[0], stderr
    assert not model.exists()
    done = StyleNetwork.load(ckpt).iterations
    assert done >= 1
    assert main(["train", "--style", image_files["style"], "--contents", photos, "--output", str(model),
                 "--iterations", str(done + 1), "--resume", *TINY]) == 0
    assert StyleNetwork.load(str(model)).iterations == done + 1


def test_plan_predicts_and_max_memory_refuses_before_any_work(image_files, photos, tmp_path, capsys):
    """No framework is needed: the plan comes from the options and the photos' headers."""
    args = ["train", "--style", image_files["style"], "--contents", photos, "--output",
            str(tmp_path / "net.safetensors"), "--size", "32", "--backend", "torch", "--device", "cpu"]
    assert main([*args, "--plan"]) == 0
    out = capsys.readouterr().out
    assert "3 photos" in out and "predicted peak memory: host" in out
    crowded = [*args, "--backend", "mxnet", "--batch-size", "400", "--plan", "--max-memory", "5G"]
    assert main(crowded) == 2
    line = one_error_line(capsys.readouterr().err, "--max-memory: training needs about")
    smaller = int(line.split("use --size ")[1].split()[0])
    assert 16 <= smaller < 32
    assert main([*crowded, "--size", str(smaller)]) == 0
    assert not os.listdir(tmp_path)


@needs_a_backend
def test_compare_model_reports_each_frameworks_picture_and_time(image_files, tmp_path, capsys):
    import json

    model = tmp_path / "m.safetensors"
    StyleNetwork.fresh(4, seed=8).save(str(model))
    report = tmp_path / "report"
    # --weights names a file that does not exist: a network's pass reads no VGG-19.
    assert main(["compare", "--model", str(model), "--content", image_files["content"], "--output", str(report),
                 "--backends", BACKEND, "--size", "24", "--weights", str(tmp_path / "absent.npz")]) == 0
    data = json.loads((report / "report.json").read_text())
    row, = data["backends"]
    assert row["backend"] == BACKEND and row["max_diff"] == 0 and row["warm"] > 0 and row["first"] > 0
    assert data["size"] == [18, 24]
    picture = np.asarray(Image.open(report / f"{BACKEND}.png"))
    from multistyle.nets.stylize import stylize

    expected = stylize(str(model), image_files["content"], backend=BACKEND, device="cpu", size=24).image
    assert np.abs(picture.astype(int) - expected.astype(int)).max() <= 1
    page = (report / "index.html").read_text()
    assert f"src='{BACKEND}.png'" in page and "first pass" in page


@needs_a_backend
def test_batch_model_stylises_every_content_and_a_rerun_skips_them(image_files, photos, tmp_path, capsys):
    import json

    model = tmp_path / "m.safetensors"
    StyleNetwork.fresh(4, seed=9).save(str(model))
    out = tmp_path / "gallery"
    args = ["batch", "--model", str(model), "--contents", photos, "--output", str(out), "--backend", BACKEND,
            "--device", "cpu", "--quiet"]
    assert main(args) == 0
    rows = json.loads((out / "results.json").read_text())["jobs"]
    assert [row["status"] for row in rows] == ["done"] * 3 and all(row["final_loss"] is None for row in rows)
    from multistyle.nets.stylize import stylize

    for row in rows:  # each content at its own size, the picture run --model gives
        expected = stylize(str(model), row["content"], backend=BACKEND, device="cpu").image
        got = np.asarray(Image.open(out / row["output"]))
        assert got.shape == expected.shape and np.abs(got.astype(int) - expected.astype(int)).max() <= 1
    capsys.readouterr()
    assert main(args) == 0
    assert "0 done, 3 skipped" in capsys.readouterr().out
    assert main([*args[:-1], "--styles", photos]) == 2
    one_error_line(capsys.readouterr().err, "--model: the network is every job's style")
