"""``multistyle compare`` (the HTML report) and ``multistyle bench``, end to end.

Backends run in child processes, so these tests use tiny sizes.  The page is
checked in headless Chromium where it is installed (Debian: ``apt-get install
chromium``); elsewhere that one test skips.
"""

from __future__ import annotations

import html
import importlib
import json
import re
import textwrap

import numpy as np
import pytest
from PIL import Image

from multistyle import backend as registry
from multistyle import images
from multistyle.backend import BUILTIN_BACKENDS
from multistyle.cli import main
from support import browser
from support.needs import INSTALLED, needs_a_backend


def every_installed_backend(test):
    """Runs on every framework installed (the report's columns)."""
    return pytest.mark.cross_backend(needs_a_backend(test))



@pytest.fixture(scope="module")
def report(image_files, npz_weights, tmp_path_factory):
    folder = tmp_path_factory.mktemp("report") / "report"
    argv = ["compare", "--backends", ",".join(BUILTIN_BACKENDS), "--content", image_files["content"],
            "--style", image_files["style"], "--output", str(folder), "--size", "24x32", "--epochs", "6",
            "--weights", npz_weights, "--device", "cpu"]
    assert main(argv) == 0
    return folder, json.loads((folder / "report.json").read_text())


@every_installed_backend
def test_report_lists_every_backend_and_why_some_did_not_run(report):
    folder, data = report
    assert [row["backend"] for row in data["backends"]] == [n for n in BUILTIN_BACKENDS if n in INSTALLED]
    assert set(data["unusable"]) == set(BUILTIN_BACKENDS) - set(INSTALLED)
    for name, reason in data["unusable"].items():
        assert f"multistyle[{name}]" in reason
    html = (folder / "index.html").read_text()
    for name in data["unusable"]:
        assert f"Backend <b>{name}</b> did not run" in html


@every_installed_backend
def test_report_figures(report):
    folder, data = report
    for row in data["backends"]:
        assert 0 < row["seconds_p10"] <= row["seconds_per_iteration"] <= row["seconds_p90"]
        assert row["total_seconds"] >= row["seconds_per_iteration"] * 5
        assert row["peak_rss_bytes"] > 50 * 2 ** 20
        assert row["device"] == "cpu" and row["device_memory_bytes"] is None
        assert row["final"]["total"] == pytest.approx(data["history"][row["backend"]][-1]["total"])
        assert Image.open(folder / f"result_{row['backend']}.png").size == (32, 24)
    for pair in data["pairs"]:
        a, b = pair["pair"].split("-")
        pa, pb = (np.asarray(Image.open(folder / f"result_{n}.png"), dtype=int) for n in (a, b))
        assert pair["max_pixel_difference"] == np.abs(pa - pb).max()
        assert pair["steps"] == list(range(1, 7))
    assert data["meta"]["command"].startswith("multistyle compare --backends torch,mxnet,paddle")
    assert data["meta"]["settings"]["epochs"] == 6
    # Every setting is recorded, the controls of neural-style included.
    assert {"style_blend", "style_scale", "preserve_color", "pooling", "init", "content_layer_weights",
            "style_layer_weights"} <= set(data["meta"]["settings"])
    assert data["meta"]["settings"]["style_layer_weights"] == [1.0] * 5


@every_installed_backend
def test_report_page_is_self_contained(report):
    folder, _ = report
    html = (folder / "index.html").read_text()
    assert "<script" not in html and "http://" not in html and "https://" not in html and "@font-face" not in html
    sources = re.findall(r"<img src='([^']+)'", html)
    assert len(sources) >= 2 + 4  # inputs and the four loss plots at least
    for source in sources:
        assert (folder / source).is_file(), source
        Image.open(folder / source).verify()


@every_installed_backend
def test_report_explains_the_code_and_measures_where_the_maths_differs(report):
    folder, data = report
    page = (folder / "index.html").read_text()
    assert "<h2 id='how'>How each framework says it</h2>" in page and "class=\"hl\"" in page
    for name in INSTALLED:
        assert f"multistyle/backends/{name}_backend.py:" in page
    rows = {row["key"]: row for row in data["meta"]["maths"]}
    assert list(rows) == ["gluon_adam_epsilon", "keras_adam_epsilon", "kink_gradients", "rmsprop_epsilon",
                          "inplace_relu", "mxnet_lbfgs", "paddle_numel", "paddle_threads", "w2_square_root",
                          "mrf_argmax", "adain_statistics"]
    for key, row in rows.items():
        assert row["effect"] in page.replace("&#x27;", "'") or html.escape(row["effect"]) in page
    # Measured on this job with the first installed backend (torch where it is).
    for key in ("gluon_adam_epsilon", "keras_adam_epsilon", "kink_gradients", "rmsprop_epsilon", "inplace_relu",
                "w2_square_root", "mrf_argmax"):
        assert not rows[key]["effect"].startswith("not measured"), rows[key]
    # W2's shifted root counts each eigenvalue as √(λ + ε) ≥ √λ: the term is at most the exact one, and near it
    w2 = rows["w2_square_root"]["figures"]
    assert len(w2["layers"]) == 5 and all(a <= b * (1 + 1e-4) for a, b in zip(w2["shifted"], w2["float64"]))
    assert w2["shifted_error"] < 0.1
    # MRF at 24x32: relu3_1 is 6x8 (2x3 patches), relu4_1 3x4 (one patch)
    # AdaIN's unbiased std at 24x32: relu1_1 has 768 positions (+0.065 %), relu4_1 3x4 = 12 (+4.4 %).
    adain = rows["adain_statistics"]["figures"]
    assert adain["layers"] == ["relu1_1 24x32", "relu2_1 12x16", "relu3_1 6x8", "relu4_1 3x4"]
    assert adain["ratios"][-1] == pytest.approx(np.sqrt(12 / 11))
    assert adain["ratios"][0] == pytest.approx(np.sqrt(768 / 767))
    mrf = rows["mrf_argmax"]["figures"]
    assert (mrf["layers"], mrf["patches"]) == (["relu3_1", "relu4_1"], [6, 1])
    assert all(0 <= ties <= patches for ties, patches in zip(mrf["near_ties"], mrf["patches"]))
    # Gluon's epsilon (3.2e-7 at the first step, torch's 1e-8) changes every step a little: the difference is
    # there, and no larger than one Adam step (at most lr per value: lr x std x 255 levels per channel).
    adam = rows["gluon_adam_epsilon"]["figures"]
    assert 0 < adam["mean"] <= adam["max"] <= 0.3 * 255 * max(images.RGB_STD) + 1e-6
    assert rows["keras_adam_epsilon"]["figures"]["mean"] > adam["mean"]  # Keras's 1e-7 is ten times Gluon's 1e-8
    # The content image starts the run, and its flat block has equal neighbours: jnp.abs would move them.
    kinks = rows["kink_gradients"]["figures"]
    assert kinks["equal_neighbours_percent"] > 1 and kinks["max"] > 0.5
    assert rows["rmsprop_epsilon"]["figures"]["mean"] > 0  # epsilon inside the root changes every step
    relu = rows["inplace_relu"]["figures"]
    assert relu["style_loss"][0] != pytest.approx(relu["style_loss"][1], rel=1e-3)  # conv vs ReLU outputs
    if {"torch", "mxnet"} <= set(INSTALLED):
        assert rows["mxnet_lbfgs"]["figures"]["relative_difference"] < 1e-3
    else:
        assert rows["mxnet_lbfgs"]["effect"].startswith("not measured: needs the")
    if "paddle" in INSTALLED:
        numel = rows["paddle_numel"]["figures"]
        assert numel["numel_type"].startswith("paddle.")
        assert "error" in numel or numel["max_relative_difference"] < 1e-5
        threads = rows["paddle_threads"]["figures"]
        assert threads["one_thread"] > 0 and threads["all_cores"] > 0
    else:
        assert rows["paddle_numel"]["effect"] == "not measured: needs the paddle backend"


@pytest.mark.browser
@every_installed_backend
def test_report_renders_in_headless_chromium_with_every_image_loaded(report, tmp_path):
    folder, _ = report
    loaded, total, pixels = browser.render(folder / "index.html", tmp_path)
    assert loaded == total and total >= 6
    assert pixels.std() > 10  # a page, not a blank


@needs_a_backend
def test_compare_optimizers_plots_loss_against_iterations_and_seconds(image_files, npz_weights, tmp_path, capsys):
    folder = tmp_path / "report"
    name = INSTALLED[0]
    assert main(["compare", "--no-maths", "--backends", name, "--optimizers", "adam,lbfgs,rmsprop", "--content",
                 image_files["content"], "--style", image_files["style"], "--output", str(folder), "--size", "16x24",
                 "--epochs", "3", "--weights", npz_weights, "--device", "cpu"]) == 0
    data = json.loads((folder / "report.json").read_text())
    labels = [f"{name}_{optimizer}" for optimizer in ("adam", "lbfgs", "rmsprop")]
    assert [row["label"] for row in data["backends"]] == labels
    assert [row["optimizer"] for row in data["backends"]] == ["adam", "lbfgs", "rmsprop"]
    # Each optimizer ran with its own default rate: the d2l preset's 0.3 for Adam, 1 for L-BFGS, 0.01 for RMSprop.
    assert [data["history"][label][0]["lr"] for label in labels] == pytest.approx([0.3, 1.0, 0.01])
    assert data["pairs"] == []  # pixels are compared between backends, never across optimizers
    assert "total_vs_seconds" in data["plots"] and (folder / data["plots"]["total_vs_seconds"]).is_file()
    printed = capsys.readouterr().out
    assert all(label in printed for label in labels)


def test_compare_refuses_unknown_optimizers(image_files, tmp_path, capsys):
    code = main(["compare", "--content", image_files["content"], "--style", image_files["style"],
                 "--output", str(tmp_path / "r"), "--optimizers", "adam,sgd"])
    assert code == 2 and "--optimizers: expected a comma-separated list of adam, lbfgs, rmsprop" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.skipif(bool(INSTALLED), reason="a framework is installed")
def test_compare_with_no_usable_backend_says_so(image_files, tmp_path, capsys):
    code = main(["compare", "--content", image_files["content"], "--style", image_files["style"],
                 "--output", str(tmp_path / "r"), "--weights", "random", "--epochs", "2"])
    assert code == 2 and f"none of {', '.join(BUILTIN_BACKENDS)} is usable" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("args, message", [
    (["--backends", "torch,caffe"], "--backends: unknown backend 'caffe'"),
    (["--epochs", "0"], "--epochs"),
    (["--device", "tpu"], "--device"),
])
def test_compare_bad_options(image_files, tmp_path, capsys, args, message):
    code = main(["compare", "--content", image_files["content"], "--style", image_files["style"],
                 "--output", str(tmp_path / "r"), "--weights", "random", *args])
    assert code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@needs_a_backend
def test_bench_prints_and_writes_figures(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--backends", ",".join(INSTALLED), "--sizes", "16x16,24x32", "--epochs", "4",
                 "--floor", "3", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    data = json.loads(out.read_text())
    assert [(r["backend"], r["size"]) for r in data["results"]] == [(n, s) for n in INSTALLED for s in ([16, 16], [24, 32])]
    lines = printed.split("\n")
    assert lines[0].split()[:7] == ["backend", "size", "s/it", "p10-p90", "it/s", "floor", "s/it"]
    for number, row in enumerate(data["results"], start=1):
        assert row["iterations"] == 4  # --epochs, each one timed
        assert row["seconds_p10"] <= row["seconds_per_iteration"] <= row["seconds_p90"]
        assert row["peak_rss_bytes"] > 50 * 2 ** 20
        assert row["floor_seconds_per_iteration"] > 0  # the floor ran (its speed is for benchmarks to judge)
        # The printed line says what the file says, column by column (times are not compared: benchmarks do).
        columns = lines[number].split()
        assert columns[:2] == [row["backend"], f"{row['size'][0]}x{row['size'][1]}"]
        s_it, spread, it_s, floor, ratio = columns[2:7]
        assert float(s_it) == pytest.approx(row["seconds_per_iteration"], abs=5e-5)
        assert [float(v) for v in spread.split("-")] == pytest.approx([row["seconds_p10"], row["seconds_p90"]], abs=5e-4)
        assert float(it_s) == pytest.approx(1 / row["seconds_per_iteration"], abs=5e-3)
        assert float(floor) == pytest.approx(row["floor_seconds_per_iteration"], abs=5e-5)
        assert row["floor_p10"] <= row["floor_seconds_per_iteration"] <= row["floor_p90"]
        if row["floor_seconds_per_iteration"] > row["seconds_per_iteration"]:  # tiny sizes: it can happen
            assert ratio == "fault" and row["over_floor"] is None and "slower than the step" in row["floor_fault"]
        else:
            assert float(ratio) == pytest.approx(row["seconds_per_iteration"] / row["floor_seconds_per_iteration"],
                                                 abs=5e-3)


def test_bench_flags_a_floor_slower_than_the_step_instead_of_a_ratio_below_one():
    from multistyle.bench import bench_table, floor_figures

    # The floor's first iteration is warm-up; the rest give its median and spread.
    fine = floor_figures([9.0, 0.20, 0.22, 0.21], step=0.30)
    assert fine["floor_seconds_per_iteration"] == pytest.approx(0.21)
    assert (fine["floor_p10"], fine["floor_p90"]) == pytest.approx((0.20, 0.22))
    assert fine["over_floor"] == pytest.approx(0.30 / 0.21) and "floor_fault" not in fine
    slow = floor_figures([9.0, 0.40, 0.41, 0.42], step=0.30)
    assert slow["over_floor"] is None and "0.41 s/it, slower than the step it bounds (0.3 s/it)" in slow["floor_fault"]
    common = {"framework": "torch 2", "device": "cpu", "seconds_per_iteration": 0.30, "seconds_p10": 0.29,
              "seconds_p90": 0.31, "iterations_per_second": 1 / 0.30, "peak_rss_bytes": 2 ** 30,
              "device_memory_bytes": None}
    lines = bench_table([dict(common, backend="torch", size=[8, 8], **fine),
                         dict(common, backend="mxnet", size=[8, 8], **slow)])
    assert lines[1].split()[5:7] == ["0.2100", "1.43"]
    assert lines[2].split()[5:7] == ["0.4100", "fault"]
    assert lines[3].startswith("fault: mxnet 8x8: the floor measured 0.41 s/it")
    assert len(lines) == 4


@needs_a_backend
def test_bench_alternates_the_floor_with_the_run(image_files, npz_weights):
    from multistyle.batch import BatchJob
    from multistyle.measure import run_job
    from multistyle.settings import Settings

    job = BatchJob(image_files["content"], [image_files["style"]], device="cpu", weights=npz_weights,
                   size=(16, 24), settings=Settings(epochs=4).resolved()).to_payload()
    result = run_job(dict(job, backend=INSTALLED[0], floor=3))
    # One floor iteration after each of the run's first three epochs: interleaved, not all after the run.
    assert result["floor_after_epoch"] == [1, 2, 3] and len(result["floor"]) == 3
    assert len(result["history"]) == 4
    # A run shorter than N epochs times the rest of the floor after it.
    result = run_job(dict(job, backend=INSTALLED[0], floor=6))
    assert result["floor_after_epoch"] == [1, 2, 3, 4, 4, 4]


@pytest.mark.parametrize("args, message", [
    (["--sizes", "16"], "--sizes: expected HxW"),
    (["--output", "bench.txt"], "--output: expected a .json"),
    (["--floor", "-1"], "--floor: expected 0 (off)"),
])
def test_bench_bad_options(capsys, args, message):
    assert main(["bench", *args]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.any_backend
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
