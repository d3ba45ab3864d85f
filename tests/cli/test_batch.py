"""``multistyle batch``: grids and jobs files, resuming, failures, retries, the gallery, and the Ray engine.

Jobs run at a tiny size with synthetic weights.  The local engine's tests use
one installed backend (torch where it is); the Ray tests run where Ray is
installed (the tox env ``all``, where ``MULTISTYLE_TEST_REQUIRE=...,ray`` makes its
absence a failure) on a local Ray started by the test with two CPUs.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from multistyle import batch, gallery
from multistyle.cli import main
from multistyle.settings import Settings
from multistyle.transfer import transfer
from support import REPOSITORY, browser
from support.cli import ctrl_c_reaches_it
from support.needs import INSTALLED, needs_a_backend, require

BACKEND = "torch" if "torch" in INSTALLED else (INSTALLED[0] if INSTALLED else "torch")
JOB_ARGS = ["--size", "16x24", "--epochs", "3", "--device", "cpu", "--backend", BACKEND]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Two contents and two styles, in their own folders."""
    root = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(11)
    yy, xx = np.mgrid[0:24, 0:32]
    for folder, names in (("contents", ("ann", "bob")), ("styles", ("wave", "dots"))):
        (root / folder).mkdir()
        for k, name in enumerate(names):
            pattern = np.stack([yy * (4 + k), xx * (3 + 2 * k), (yy + xx) * 2], axis=-1) % 256
            noisy = pattern + rng.normal(0, 25 if folder == "styles" else 5, pattern.shape)
            extension = "jpg" if folder == "styles" else "png"
            Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(root / folder / f"{name}.{extension}")
    return root


def grid_argv(inputs, output, weights, *extra):
    return ["batch", "--contents", str(inputs / "contents"), "--styles", str(inputs / "styles"),
            "--output", str(output), "--weights", weights, *JOB_ARGS, *extra]


def finished_sidecars(folder):
    return [path for path in folder.glob("*.json") if not path.name.startswith(".")] if folder.is_dir() else []


def results(folder):
    return json.loads((folder / "results.json").read_text())


def by_name(data):
    return {os.path.basename(row["content"]) + "|" + os.path.basename(row["style"]): row for row in data["jobs"]}


def assert_same_job(a, b, history_a, history_b):
    """Two runs of one job.  Torch on several CPU threads is not bitwise repeatable here (a 1e-7 change in
    the second loss becomes 1e-3 by the third as Adam steps by about lr whatever the gradient's size), so:
    the first loss (before any step) to float rounding, the others to 1 %, the pixels to 1 level on average.
    A different job (another style, other settings) misses all three by far."""
    assert history_a[0]["total"] == pytest.approx(history_b[0]["total"], rel=1e-5)
    np.testing.assert_allclose([h["total"] for h in history_a], [h["total"] for h in history_b], rtol=1e-2)
    assert np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float)).mean() <= 1.0


def sidecar_history(folder, row):
    return json.loads((folder / row["sidecar"]).read_text())["history"]


@pytest.fixture(scope="module")
def first_run(inputs, npz_weights, tmp_path_factory):
    output = tmp_path_factory.mktemp("batch") / "out"
    code = main(grid_argv(inputs, output, npz_weights))
    return output, code, results(output)


@needs_a_backend
def test_grid_runs_every_pair_with_an_image_and_a_sidecar(first_run, inputs):
    output, code, data = first_run
    assert code == 0
    assert data["summary"]["jobs"] == 4 and data["summary"]["done"] == 4 and data["summary"]["failed"] == 0
    assert data["summary"]["ran_on"] == "local, 1 worker"
    names = [row["output"] for row in data["jobs"]]
    assert len(set(names)) == 4
    for row in data["jobs"]:
        assert row["status"] == "done" and row["attempts"] == 1
        # readable stem + a hash of what the job computes
        content, style = (os.path.splitext(os.path.basename(p))[0] for p in (row["content"], row["style"]))
        assert re.fullmatch(rf"{content}__{style}__{BACKEND}_[0-9a-f]{{10}}\.png", row["output"])
        assert Image.open(output / row["output"]).size == (24, 16)
        sidecar = json.loads((output / row["sidecar"]).read_text())
        assert sidecar["key"] == row["key"] and sidecar["key"].startswith(row["output"][-14:-4])
        assert sidecar["output"]["sha256"] == batch.file_sha256(str(output / row["output"]))
        assert sidecar["job"]["settings"]["epochs"] == 3 and len(sidecar["history"]) == 3
        assert sidecar["result"]["backend"] == BACKEND and sidecar["result"]["device"] == "cpu"
        assert sidecar["result"]["final"]["total"] == pytest.approx(row["final_loss"])
        assert sidecar["result"]["final"]["total"] == pytest.approx(sidecar["history"][-1]["total"])
        assert {"multistyle", "framework", "python", "numpy", "pillow"} <= set(sidecar["versions"])
        assert sidecar["timings"]["seconds"] >= sidecar["timings"]["optimisation_seconds"] > 0
    # content-major order: the gallery's rows
    assert [os.path.basename(row["content"]) for row in data["jobs"]] == ["ann.png"] * 2 + ["bob.png"] * 2
    # One worker ran every job, reading the weights once and reusing them.
    sidecars = [json.loads((output / row["sidecar"]).read_text())["timings"] for row in data["jobs"]]
    assert len({s["pid"] for s in sidecars}) == 1
    assert [s["weights_reused"] for s in sidecars] == [False, True, True, True]
    rows = (output / "results.csv").read_text().splitlines()
    assert rows[0].startswith("index,status,content,style,backend,output") and len(rows) == 5
    assert all(",done," in line for line in rows[1:])


@needs_a_backend
def test_a_batch_job_computes_what_transfer_computes(first_run, inputs, npz_weights):
    output, _, data = first_run
    row = by_name(data)["ann.png|wave.jpg"]
    direct = transfer(str(inputs / "contents" / "ann.png"), str(inputs / "styles" / "wave.jpg"), backend=BACKEND,
                      device="cpu", weights=npz_weights, size=(16, 24), epochs=3)
    assert_same_job(Image.open(output / row["output"]), direct.image, sidecar_history(output, row), direct.history)
    other = by_name(data)["ann.png|dots.jpg"]  # and the assertion tells jobs apart
    with pytest.raises(AssertionError):
        assert_same_job(Image.open(output / other["output"]), direct.image, sidecar_history(output, other),
                        direct.history)


@needs_a_backend
def test_rerun_skips_every_done_job_and_runs_only_what_is_missing(first_run, inputs, npz_weights, tmp_path, capsys):
    source, _, before = first_run
    output = tmp_path / "out"
    shutil.copytree(source, output)
    stamps = {row["output"]: os.stat(output / row["output"]).st_mtime_ns for row in before["jobs"]}
    assert main(grid_argv(inputs, output, npz_weights)) == 0
    again = results(output)
    assert [row["status"] for row in again["jobs"]] == ["skipped"] * 4
    assert {name: os.stat(output / name).st_mtime_ns for name in stamps} == stamps
    assert "0 done, 4 skipped" in capsys.readouterr().out

    deleted = by_name(before)["bob.png|dots.jpg"]["output"]
    old_pixels = np.asarray(Image.open(output / deleted), dtype=int)
    old_history = sidecar_history(output, by_name(before)["bob.png|dots.jpg"])
    os.unlink(output / deleted)
    # An image that is not the one its sidecar describes (replaced by hand) is not done either.
    replaced = by_name(before)["ann.png|wave.jpg"]["output"]
    Image.new("RGB", (24, 16), (9, 9, 9)).save(output / replaced)
    assert main(grid_argv(inputs, output, npz_weights)) == 0
    third = by_name(results(output))
    assert {key for key, row in third.items() if row["status"] == "done"} == {"bob.png|dots.jpg", "ann.png|wave.jpg"}
    assert [row["status"] for key, row in third.items() if key not in ("bob.png|dots.jpg", "ann.png|wave.jpg")] \
        == ["skipped", "skipped"]
    assert_same_job(Image.open(output / deleted), old_pixels, sidecar_history(output, third["bob.png|dots.jpg"]),
                    old_history)
    assert np.asarray(Image.open(output / replaced)).std() > 0  # recomputed, not the grey square


@needs_a_backend
def test_changed_settings_or_inputs_are_new_jobs(first_run, inputs, npz_weights, tmp_path):
    source, _, before = first_run
    output = tmp_path / "out"
    shutil.copytree(source, output)
    assert main(grid_argv(inputs, output, npz_weights, "--lr", "0.2")) == 0
    rows = results(output)["jobs"]
    assert [row["status"] for row in rows] == ["done"] * 4
    assert not {row["output"] for row in rows} & {row["output"] for row in before["jobs"]}


# -- the job key: what a job computes, and nothing else ----------------------------------------------------

def _touch(path, data):
    """Rewrite a file with new bytes, and a modification time of its own (the checksum cache keys on it)."""
    stat = os.stat(path)
    path.write_bytes(data)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 7_000_000_000))


def _flip_a_pixel(path):
    """The same image file with one pixel changed (the same name, size and format)."""
    pixels = np.asarray(Image.open(path)).copy()
    pixels[0, 0] = 255 - pixels[0, 0]
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=Image.open(path).format)
    _touch(path, buffer.getvalue())


def _other_weights(path):
    """The same .npz file name holding other weights (the same size: only the bytes tell)."""
    from multistyle.vgg import random_weights, save_npz

    save_npz(random_weights(seed=8), str(path))
    _touch(path, path.read_bytes())


@pytest.fixture
def key_job(inputs, npz_weights, tmp_path):
    """A job whose inputs (content, style, weights file) are copies of their own in ``tmp_path/a``."""
    folder = tmp_path / "a"
    folder.mkdir()
    for source in (inputs / "contents" / "ann.png", inputs / "styles" / "wave.jpg", npz_weights):
        shutil.copy2(source, folder)
    job = batch.BatchJob(content=str(folder / "ann.png"), style=[str(folder / "wave.jpg")], backend="torch",
                         device="cpu", weights=str(folder / os.path.basename(npz_weights)), size=(16, 24),
                         settings=Settings(epochs=3))
    return job, folder


def _changed(job, folder, what):
    """``job`` with one thing changed; files are changed in place (same path, other bytes)."""
    if what == "content bytes":
        _flip_a_pixel(folder / "ann.png")
    elif what == "style bytes":
        _flip_a_pixel(folder / "wave.jpg")
    elif what == "a second style":
        return dataclasses.replace(job, style=[*job.style, job.style[0]])
    elif what == "weights bytes":
        _other_weights(Path(job.weights))
    elif what == "random weights":
        return dataclasses.replace(job, weights="random:0")
    elif what == "size":
        return dataclasses.replace(job, size=(24, 32))
    elif what == "backend":
        return dataclasses.replace(job, backend="mxnet")
    else:  # a setting, "name=value"
        name, value = what.split("=")
        return dataclasses.replace(job, settings=dataclasses.replace(job.settings, **{name: json.loads(value)}))
    return job


@pytest.mark.parametrize("what", ["content bytes", "style bytes", "a second style", "weights bytes",
                                  "random weights", "size", "backend", "lr=0.2", "epochs=4", 'preset="fast"',
                                  'pooling="avg"', "seed=1", 'init="noise"', "style_weight=1.0",
                                  "tv_smoothing=0.02", "final_share=0.5", 'style_loss="w2"'])
def test_job_key_changes_with_each_thing_the_job_computes(key_job, what):
    job, folder = key_job
    before = batch.job_key(job)
    after = batch.job_key(_changed(job, folder, what))
    assert after != before, f"{what}: the job key did not change"
    assert batch.output_name(job, after) != batch.output_name(job, before)  # the name carries the key


def test_a_job_keeps_the_key_0_1_0_gave_it(tmp_path):
    """Settings added since 0.1.0 (--style-loss, --content-masks) leave the key alone at the values that compute
    what 0.1.0 did, so that an upgrade does not rerun a finished batch.  The key is what 0.1.0's job_key gives
    for these bytes and settings."""
    (tmp_path / "a.png").write_bytes(b"content bytes")
    (tmp_path / "b.jpg").write_bytes(b"style bytes")
    job = batch.BatchJob(content=str(tmp_path / "a.png"), style=[str(tmp_path / "b.jpg")], backend="torch",
                         weights="random:0", size=(24, 32), settings=Settings(epochs=3))
    assert batch.job_key(job) == "76e50b8d3eaf8ac808b9bfa3a0df0cb61a6b25c3579d77c8129022e9d894fbc1"
    assert batch.job_key(dataclasses.replace(job, settings=Settings(epochs=3, style_loss="gram"))) == batch.job_key(job)


def test_job_key_ignores_the_device_and_a_moved_folder(key_job, tmp_path):
    job, folder = key_job
    moved = tmp_path / "elsewhere" / "deeper"
    shutil.copytree(folder, moved)
    relocated = dataclasses.replace(job, content=str(moved / "ann.png"), style=[str(moved / "wave.jpg")],
                                    weights=str(moved / os.path.basename(job.weights)))
    key = batch.job_key(job)
    assert batch.job_key(relocated) == key
    for device in ("auto", "gpu", "gpu:1"):
        assert batch.job_key(dataclasses.replace(job, device=device)) == key, device
    # A setting written differently but resolving to the same value is the same job.
    assert batch.job_key(dataclasses.replace(job, settings=Settings(epochs=3, lr=0.3))) == key


@needs_a_backend
@pytest.mark.parametrize("what", ["content bytes", "weights bytes", "size", "moved folder and device"])
def test_a_rerun_after_one_change_runs_that_job_again(inputs, npz_weights, tmp_path, what):
    folder = tmp_path / "in"
    (folder / "contents").mkdir(parents=True)
    (folder / "styles").mkdir()
    shutil.copy2(inputs / "contents" / "ann.png", folder / "contents")
    shutil.copy2(inputs / "styles" / "wave.jpg", folder / "styles")
    weights = folder / "weights.npz"
    shutil.copy2(npz_weights, weights)
    output = tmp_path / "out"

    def argv(root, size="16x24", device="cpu"):
        args = ["batch", "--contents", str(root / "contents"), "--styles", str(root / "styles"), "--output",
                str(output), "--weights", str(root / "weights.npz"), *JOB_ARGS]
        args[args.index("--size") + 1], args[args.index("--device") + 1] = size, device
        return args

    assert main(argv(folder)) == 0
    first = results(output)["jobs"][0]
    assert first["status"] == "done"
    options = {}
    if what == "content bytes":
        _flip_a_pixel(folder / "contents" / "ann.png")
    elif what == "weights bytes":
        _other_weights(weights)
    elif what == "size":
        options["size"] = "24x32"
    else:
        moved = tmp_path / "moved"
        shutil.move(str(folder), str(moved))
        folder = moved
        options["device"] = "auto"  # this machine has no GPU: auto is the CPU, and the device is no part of a job
    assert main(argv(folder, **options)) == 0
    second = results(output)["jobs"][0]
    if what == "moved folder and device":
        assert second["status"] == "skipped" and second["output"] == first["output"]
    else:
        assert second["status"] == "done" and second["output"] != first["output"], what


@needs_a_backend
def test_a_corrupt_content_fails_its_jobs_and_the_batch_goes_on(first_run, inputs, npz_weights, tmp_path, capsys):
    source, _, _ = first_run
    output = tmp_path / "out"
    shutil.copytree(source, output)
    contents = tmp_path / "contents"
    shutil.copytree(inputs / "contents", contents)
    (contents / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a picture")
    argv = grid_argv(inputs, output, npz_weights)
    argv[argv.index("--contents") + 1] = str(contents)
    assert main(argv) == 1
    data = results(output)
    assert data["summary"]["failed"] == 2 and data["summary"]["skipped"] == 4
    for row in data["jobs"]:
        if row["content"].endswith("broken.png"):
            assert row["status"] == "failed" and row["output"] == ""
            assert "--content:" in row["reason"] and "broken.png" in row["reason"]
            assert "\n" not in row["reason"]
        else:
            assert row["status"] == "skipped"
    assert not [name for name in os.listdir(output) if name.startswith("broken")]
    captured = capsys.readouterr()
    assert captured.err.count("batch: failed: broken x ") == 2
    assert "4 skipped (done before), 2 failed" in captured.out
    assert "failed: --content:" in (output / "index.html").read_text()


@needs_a_backend
def test_jobs_file_with_per_job_overrides(inputs, npz_weights, tmp_path):
    jobs = tmp_path / "jobs.csv"
    contents, styles = os.path.relpath(inputs / "contents", tmp_path), os.path.relpath(inputs / "styles", tmp_path)
    jobs.write_text("content,style,epochs,lr,style-blend,init\n"
                    f"{contents}/ann.png,{styles}/wave.jpg,2,,,\n"
                    f"{contents}/ann.png,\"{styles}/wave.jpg,{styles}/dots.jpg\",2,0.1,\"0.7,0.3\",noise\n")
    output = tmp_path / "out"
    assert main(["batch", str(jobs), "--output", str(output), "--weights", npz_weights, *JOB_ARGS]) == 0
    rows = results(output)["jobs"]
    assert [row["status"] for row in rows] == ["done", "done"]
    first, second = (json.loads((output / row["sidecar"]).read_text()) for row in rows)
    assert len(first["history"]) == 2 and first["job"]["settings"]["lr"] == pytest.approx(0.3)
    assert second["job"]["settings"]["lr"] == pytest.approx(0.1) and second["history"][0]["lr"] == pytest.approx(0.1)
    assert second["job"]["settings"]["style_blend"] == pytest.approx([0.7, 0.3])
    assert second["job"]["settings"]["init"] == "noise"
    assert second["job"]["source"] == "jobs.csv row 3" and rows[1]["output"].startswith("ann__wave+dots__")
    # The same jobs from JSON are the same jobs: a rerun from it skips both.
    as_json = tmp_path / "jobs.json"
    as_json.write_text(json.dumps({"jobs": [
        {"content": f"{contents}/ann.png", "style": f"{styles}/wave.jpg", "epochs": 2},
        {"content": f"{contents}/ann.png", "style": [f"{styles}/wave.jpg", f"{styles}/dots.jpg"], "epochs": 2,
         "lr": 0.1, "style_blend": [0.7, 0.3], "init": "noise"}]}))
    assert main(["batch", str(as_json), "--output", str(output), "--weights", npz_weights, *JOB_ARGS]) == 0
    assert [row["status"] for row in results(output)["jobs"]] == ["skipped", "skipped"]


@pytest.mark.cross_backend
@needs_a_backend
def test_jobs_file_backend_grid_has_backends_as_gallery_columns(inputs, npz_weights, tmp_path):
    jobs = tmp_path / "jobs.json"
    jobs.write_text(json.dumps([{"content": str(inputs / "contents" / "ann.png"),
                                 "style": str(inputs / "styles" / "wave.jpg"), "backend": name}
                                for name in INSTALLED]))
    output = tmp_path / "out"
    assert main(["batch", str(jobs), "--output", str(output), "--weights", npz_weights, *JOB_ARGS]) == 0
    rows = results(output)["jobs"]
    assert [row["backend"] for row in rows] == INSTALLED and {row["status"] for row in rows} == {"done"}
    page = (output / "index.html").read_text()
    headers = re.findall(r"<th>(?:<img[^>]*> )*<div>([^<]*)</div></th>", page)
    assert headers == (INSTALLED if len(INSTALLED) > 1 else ["wave"])


@needs_a_backend
def test_jobs_file_with_content_masks(inputs, npz_weights, tmp_path):
    """Each job its own masks, relative to the jobs file; the masks' bytes are part of the job's key."""
    left = np.zeros((24, 32), np.uint8)
    left[:, :16] = 255
    Image.fromarray(left).save(tmp_path / "left.png")
    Image.fromarray(255 - left).save(tmp_path / "right.png")
    contents, styles = os.path.relpath(inputs / "contents", tmp_path), os.path.relpath(inputs / "styles", tmp_path)
    pair = f"{styles}/wave.jpg,{styles}/dots.jpg"
    jobs = write_jobs(tmp_path, "content,style,content_masks,epochs\n"
                                f"{contents}/ann.png,\"{pair}\",\"left.png,right.png\",2\n"
                                f"{contents}/ann.png,\"{pair}\",\"right.png,left.png\",2\n")
    output = tmp_path / "out"
    assert main(["batch", jobs, "--output", str(output), "--weights", npz_weights, *JOB_ARGS]) == 0
    rows = results(output)["jobs"]
    assert [row["status"] for row in rows] == ["done", "done"] and rows[0]["key"] != rows[1]["key"]
    first, second = (json.loads((output / row["sidecar"]).read_text()) for row in rows)
    assert first["job"]["settings"]["content_masks"] == [str(tmp_path / "left.png"), str(tmp_path / "right.png")]
    assert first["history"][0]["style"] != pytest.approx(second["history"][0]["style"], rel=1e-4)  # swapped halves
    # a mask's bytes changed (its path the same): both jobs read it, so both run again
    Image.fromarray(np.roll(left, 4, axis=1)).save(tmp_path / "left.png")
    assert main(["batch", jobs, "--output", str(output), "--weights", npz_weights, *JOB_ARGS]) == 0
    assert [row["status"] for row in results(output)["jobs"]] == ["done", "done"]
    assert main(["batch", jobs, "--output", str(output), "--weights", npz_weights, *JOB_ARGS]) == 0
    assert [row["status"] for row in results(output)["jobs"]] == ["skipped", "skipped"]


def write_jobs(tmp_path, text, name="jobs.csv"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("text, name, message", [
    ("content,style,colour\na.png,b.png,red\n", "jobs.csv", "jobs.csv row 2: unknown option 'colour'"),
    ("content,style,lr\na.png,b.png,fast\n", "jobs.csv", "jobs.csv row 2: --lr: invalid value 'fast'"),
    ("content,style,optimizer\na.png,b.png,sgd\n", "jobs.csv", "jobs.csv row 2: --optimizer: expected one of"),
    ("content,lr\na.png,0.1\n", "jobs.csv", "jobs.csv row 2: no 'style'"),
    ("content,style,backend\na.png,b.png,caffe\n", "jobs.csv", "jobs.csv row 2: --backend: unknown backend"),
    ("content,style,style_blend\na.png,b.png,\"1,2\"\n", "jobs.csv", "jobs.csv row 2: --style-blend: 2 weights"),
    ("content,style,deterministic\na.png,b.png,maybe\n", "jobs.csv", "--deterministic: expected true or false"),
    ('[{"content": "a.png", "style": "b.png", "epochs": 0}]', "jobs.json", "jobs.json job 1: --epochs"),
    ('{"jobs": 3}', "jobs.json", "jobs.json: expected a list of job objects"),
    ("[{", "jobs.json", "jobs.json: not valid JSON"),
    ("content,style\n", "jobs.csv", "jobs.csv: no jobs in the file"),
    ("content,style,content_masks\na.png,b.png,\"m.png,n.png\"\n", "jobs.csv",
     "jobs.csv row 2: --content-masks: 2 masks for 1 style image"),
])
def test_jobs_file_mistakes_are_one_line_errors_before_any_work(tmp_path, capsys, text, name, message):
    output = tmp_path / "out"
    code = main(["batch", write_jobs(tmp_path, text, name), "--output", str(output)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("multistyle: error: ") and message in err, err
    assert err.count("\n") == 1 and not output.exists()


@pytest.mark.parametrize("extra, message", [
    ([], "give --contents and --styles"),
    (["--contents", "x"], "give --contents and --styles"),
    (["jobs.csv", "--contents", "a", "--styles", "b"], "give either a JOBS file or --contents and --styles"),
    (["--contents", "nothing-*.png", "--styles", "nothing.png"], "--contents: no file matches 'nothing-*.png'"),
    (["--contents", "missing.png", "--styles", "x"], "--contents: 'missing.png' is neither a folder"),
    (["--contents", "c", "--styles", "c", "--workers", "0"], "--workers: expected 1 or more"),
    (["--contents", "c", "--styles", "c", "--retries", "-1"], "--retries: expected 0 or more"),
    (["--contents", "c", "--styles", "c", "--backend", "torch,caffe"], "--backend: unknown backend 'caffe'"),
    (["--contents", "c", "--styles", "c", "--engine", "ray", "--ray-address", "127.0.0.1:1"],
     "--ray-address: nothing answers at '127.0.0.1:1'"),
])
def test_batch_option_mistakes(tmp_path, capsys, monkeypatch, extra, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "c" / "one.png")
    if "--ray-address" in extra and not _ray_installed():
        message = "--engine ray needs Ray: pip install 'multistyle[ray]'"
    code = main(["batch", "--output", "out", "--weights", "random:0", *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_output_that_is_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "out").write_text("x")
    (tmp_path / "c").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "c" / "one.png")
    code = main(["batch", "--contents", str(tmp_path / "c"), "--styles", str(tmp_path / "c"), "--output",
                 str(tmp_path / "out")])
    assert code == 2 and "is a file; batch writes a folder" in capsys.readouterr().err


def _grid_jobs(inputs, weights, **settings):
    contents = batch.expand_images(str(inputs / "contents"), "--contents")
    styles = batch.expand_images(str(inputs / "styles"), "--styles")
    return batch.grid(contents, [[s] for s in styles], [BACKEND], device="cpu", weights=weights, size="16x24",
                      settings=Settings(epochs=3, **settings))


@needs_a_backend
def test_a_killed_worker_is_retried_and_its_job_completes(inputs, npz_weights, tmp_path):
    jobs = _grid_jobs(inputs, npz_weights)[:2]
    marker = tmp_path / "killed"
    data = batch.run_batch(jobs, str(tmp_path / "out"), retries=2, _kill_once={0: str(marker)})
    assert marker.exists()  # the worker really was killed
    first, second = data["jobs"]
    assert first["status"] == "done" and first["attempts"] == 2
    assert second["status"] == "done" and second["attempts"] == 1
    # No retries left: the job fails with why, and the next job runs on a fresh worker.
    data = batch.run_batch(jobs, str(tmp_path / "out2"), retries=0, _kill_once={0: str(tmp_path / "again")})
    first, second = data["jobs"]
    assert first["status"] == "failed" and "died 1 times (killed by SIGKILL)" in first["reason"]
    assert first["output"] == "" and second["status"] == "done"


@needs_a_backend
def test_two_local_workers_share_the_jobs(first_run, inputs, npz_weights, tmp_path):
    source, _, before = first_run
    data = batch.run_batch(_grid_jobs(inputs, npz_weights), str(tmp_path / "out"), workers=2)
    assert data["summary"]["ran_on"] == "local, 2 workers"
    pids = {json.loads((tmp_path / "out" / row["sidecar"]).read_text())["timings"]["pid"] for row in data["jobs"]}
    assert len(pids) == 2
    # Same jobs, same names as the CLI's grid, and the same pixels.
    assert {row["output"] for row in data["jobs"]} == {row["output"] for row in before["jobs"]}
    for row in data["jobs"]:
        assert_same_job(Image.open(tmp_path / "out" / row["output"]), Image.open(source / row["output"]),
                        sidecar_history(tmp_path / "out", row), sidecar_history(source, row))


@needs_a_backend
def test_gallery_has_contents_as_rows_and_styles_as_columns(first_run):
    output, _, data = first_run
    page = (output / "index.html").read_text()
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert page.count("<tr>") == 3  # the header and one row per content
    assert re.findall(r"<th>(?:<img[^>]*> )*<div>([^<]*)</div></th>", page) == ["dots", "wave"]
    assert [m for m in re.findall(r"<div>([^<]*)</div></th>", page)][2:] == ["ann", "bob"]
    for row in data["jobs"]:
        assert f"<a href='{row['output']}'><img class='result' src='{row['output']}'" in page
        assert f"<a href='{row['sidecar']}'>sidecar</a>" in page
    for source in re.findall(r"src='([^']+)'", page):
        Image.open(output / source).verify()


@pytest.mark.browser
@needs_a_backend
def test_the_gallery_renders_in_chromium_with_every_image_loaded(first_run, tmp_path):
    output, _, _ = first_run
    loaded, total, pixels = browser.render(output / "index.html", tmp_path)
    assert loaded == total == 4 + 2 + 2  # results, content and style thumbnails
    assert pixels.std() > 10


class _Job:
    def __init__(self, style, backend="torch", lr=None):
        self.content, self.style, self.backend = "c/a.png", [f"s/{style}.jpg"], backend
        self.device, self.weights, self.size = "cpu", "random:0", "16x24"
        self.settings = Settings(lr=lr)


def test_gallery_columns_follow_what_varies():
    assert gallery.columns([_Job("x"), _Job("y")]) == ["x", "y"]
    assert gallery.columns([_Job("x", "torch"), _Job("x", "mxnet"), _Job("x", "paddle")]) == ["torch", "mxnet",
                                                                                              "paddle"]
    assert gallery.columns([_Job("x", "torch"), _Job("y", "mxnet")]) == ["x · torch", "y · mxnet"]
    assert gallery.columns([_Job("x", lr=0.1), _Job("x", lr=0.2)]) == ["lr=0.1", "lr=0.2"]


def test_worker_plan(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert batch.worker_plan(None, gpus=0, cores=2) == (1, [None], None)
    assert batch.worker_plan(None, gpus=2, cores=16) == (2, ["gpu:0", "gpu:1"], None)
    assert batch.worker_plan(3, gpus=2, cores=16) == (3, ["gpu:0", "gpu:1", "gpu:0"], None)
    assert batch.worker_plan(2, gpus=0, cores=8) == (2, [None, None], 4)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert batch.worker_plan(2, gpus=0, cores=8) == (2, [None, None], None)


# ---------------------------------------------------------------------------
# Ray

def _ray_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("ray") is not None


@pytest.fixture(scope="module")
def ray_cluster():
    require("ray")  # the tests are marked ray, which checks first; this fixture must not run without it
    if not INSTALLED:
        pytest.skip("no framework installed")
    import ray

    # One OpenMP thread per task, as Ray gives a one-CPU task: importing Paddle (for the list of installed
    # backends) set OMP_NUM_THREADS in this process, and Ray's workers would inherit it.
    batch.ray_init(ray, num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
                   runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    yield ray
    ray.shutdown()


@pytest.mark.ray
def test_ray_grid_gives_the_local_engines_outputs(ray_cluster, inputs, npz_weights, tmp_path, monkeypatch):
    # A Ray task here runs one OpenMP thread (see ray_cluster): so does the local worker.  On one thread the
    # frameworks repeat themselves bit for bit, so the tolerances are float rounding and one level.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    local = batch.run_batch(_grid_jobs(inputs, npz_weights), str(tmp_path / "local"))
    remote = batch.run_batch(_grid_jobs(inputs, npz_weights), str(tmp_path / "ray"), engine="ray")
    assert remote["summary"]["ran_on"].startswith("ray: Ray ") and "2 CPUs" in remote["summary"]["ran_on"]
    assert [row["status"] for row in remote["jobs"]] == ["done"] * 4
    assert [row["output"] for row in remote["jobs"]] == [row["output"] for row in local["jobs"]]
    for a, b in zip(local["jobs"], remote["jobs"]):
        pixels = [np.asarray(Image.open(tmp_path / where / a["output"]), dtype=int) for where in ("local", "ray")]
        assert np.abs(pixels[0] - pixels[1]).max() <= 1
        histories = [json.loads((tmp_path / where / a["sidecar"]).read_text())["history"] for where in ("local", "ray")]
        np.testing.assert_allclose([h["total"] for h in histories[0]], [h["total"] for h in histories[1]], rtol=1e-5)
    # The Ray run resumes like the local one: a rerun skips all four.
    again = batch.run_batch(_grid_jobs(inputs, npz_weights), str(tmp_path / "ray"), engine="ray")
    assert [row["status"] for row in again["jobs"]] == ["skipped"] * 4


@pytest.mark.ray
def test_ray_runs_an_adain_network_as_the_local_engine_does(ray_cluster, inputs, tmp_path, monkeypatch):
    """``batch --model`` with an AdaIN network on Ray: the network is read once by the driver and sent through the
    object store (the workers read no file of it); every content x style job gives the local engine's picture."""
    from multistyle.nets import ArbitraryNetwork, adain

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    model = str(tmp_path / "adain.safetensors")
    ArbitraryNetwork.fresh(adain.random_encoder(1), "random:1", seed=2).save(model)
    contents = batch.expand_images(str(inputs / "contents"), "--contents")
    styles = batch.expand_images(str(inputs / "styles"), "--styles")
    jobs = [batch.BatchJob(content=c, style=[s], backend=BACKEND, device="cpu", size=None, network=model, alpha=0.7)
            for c in contents for s in styles]
    local = batch.run_batch(jobs, str(tmp_path / "local"))
    remote = batch.run_batch(jobs, str(tmp_path / "ray"), engine="ray")
    assert [row["status"] for row in remote["jobs"]] == ["done"] * len(jobs)
    assert [row["output"] for row in remote["jobs"]] == [row["output"] for row in local["jobs"]]
    for row in local["jobs"]:
        pixels = [np.asarray(Image.open(tmp_path / where / row["output"]), dtype=int) for where in ("local", "ray")]
        assert np.abs(pixels[0] - pixels[1]).max() <= 1


@pytest.mark.ray
def test_ray_retries_a_job_whose_worker_was_killed(ray_cluster, inputs, npz_weights, tmp_path):
    marker = tmp_path / "killed"
    data = batch.run_batch(_grid_jobs(inputs, npz_weights)[:2], str(tmp_path / "out"), engine="ray", retries=2,
                           _kill_once={0: str(marker)})
    assert marker.exists()
    assert [row["status"] for row in data["jobs"]] == ["done", "done"]
    # Without retries Ray gives up on it, and says so in one line.
    data = batch.run_batch(_grid_jobs(inputs, npz_weights, lr=0.2)[:2], str(tmp_path / "out2"), engine="ray",
                           retries=0, _kill_once={0: str(tmp_path / "again")})
    first, second = data["jobs"]
    assert first["status"] == "failed" and "Ray worker died" in first["reason"] and "\n" not in first["reason"]
    assert second["status"] == "done"


@pytest.mark.ray
def test_ray_cli_connects_to_a_running_cluster(ray_cluster, inputs, npz_weights, tmp_path):
    address = ray_cluster.get_runtime_context().gcs_address
    argv = grid_argv(inputs, tmp_path / "out", npz_weights, "--engine", "ray", "--ray-address", address)
    # The console script, from the repository's root: there ./multistyle (without multistyle.backends) must not
    # shadow the installed package in Ray's workers, which get the driver's directory on their sys.path.
    root = str(REPOSITORY)
    script = os.path.join(os.path.dirname(sys.executable), "multistyle")
    run = subprocess.run([script, *argv], capture_output=True, text=True, cwd=root, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "4 done" in run.stdout and "ray: Ray" in run.stdout and "2 CPUs" in run.stdout
    assert [row["status"] for row in results(tmp_path / "out")["jobs"]] == ["done"] * 4


@needs_a_backend
def test_ctrl_c_keeps_the_finished_jobs_and_a_rerun_resumes(inputs, npz_weights, tmp_path):
    output = tmp_path / "out"
    argv = [sys.executable, "-m", "multistyle", *grid_argv(inputs, output, npz_weights)]
    argv[argv.index("--epochs") + 1] = "40"
    process = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=ctrl_c_reaches_it)
    try:
        deadline = time.monotonic() + 300
        # A finished job's sidecar; not a temporary file being written (pathlib's glob matches hidden names).
        while not finished_sidecars(output) and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)  # after the first job, before the last
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("multistyle: interrupted before the batch ended; the jobs that "
                                                   "finished are kept in")
    data = results(output)
    statuses = [row["status"] for row in data["jobs"]]
    assert 1 <= statuses.count("done") < 4 and statuses.count("done") + statuses.count("interrupted") == 4
    assert not [name for name in os.listdir(output) if name.startswith(".")]  # no temporary file left
    done = {row["output"] for row in data["jobs"] if row["status"] == "done"}
    rerun = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    after = results(output)["jobs"]
    assert {row["output"] for row in after if row["status"] == "skipped"} == done
    assert [row["status"] for row in after].count("done") == 4 - len(done)


@needs_a_backend
def test_an_interrupt_right_after_a_job_is_written_keeps_that_job_done(inputs, npz_weights, tmp_path, monkeypatch):
    # The window the Ctrl-C test above hit under load: a job's image and sidecar are on disk, and the interrupt
    # comes before the batch marks it done.  That job is done (a rerun skips it), not "interrupted".
    from multistyle.batch import runner

    real_write_result = runner.write_result

    def write_then_interrupt(*args, **kwargs):
        real_write_result(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "write_result", write_then_interrupt)
    output = tmp_path / "out"
    assert main(grid_argv(inputs, output, npz_weights, "--workers", "1")) == 130
    rows = results(output)["jobs"]
    assert [row["status"] for row in rows].count("done") == 1
    assert {row["status"] for row in rows} == {"done", "interrupted"}
    (written,) = [row for row in rows if row["status"] == "done"]
    assert (output / written["output"]).is_file() and (output / written["sidecar"]).is_file()
    monkeypatch.setattr(runner, "write_result", real_write_result)
    assert main(grid_argv(inputs, output, npz_weights, "--workers", "1")) == 0
    assert [row["status"] for row in results(output)["jobs"]].count("skipped") == 1
