"""``multistyle batch`` with clips as contents: each clip one job, its frames in order on one worker, giving what
``multistyle video`` gives; a worker killed mid-clip is retried and continues from the first missing frame; a
rerun skips finished clips; clips on Ray.  Tiny clips, synthetic weights, one framework."""

from __future__ import annotations

import json
import os
from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from multistyle import batch, images
from multistyle.cli import main
from multistyle.nets import StyleNetwork
from multistyle.video.frames import Clip, write_video
from support.cli import one_error_line
from support.clips import Shape, clip, texture
from support.needs import INSTALLED, needs_a_backend

pytestmark = [pytest.mark.video]
ONE = INSTALLED[0] if INSTALLED else "torch"
OPTIMISE = ["--size", "24x36", "--epochs", "2", "--weights", "random:1", "--backend", ONE, "--device", "cpu",
            "--quiet"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Two clips (a video file at 10 fps and a folder of frames) and a still, in one folder; a style; a network."""
    root = tmp_path_factory.mktemp("batch-clips")
    (root / "contents").mkdir()
    (root / "frames").mkdir()
    moving = clip(3, 32, 48, shapes=[Shape(3, (12, 16), (8, 10), (1, 2))], seed=1)
    write_video(iter(moving), str(root / "contents" / "walk.mp4"), Fraction(10))
    Image.fromarray(moving[0]).save(root / "contents" / "still.png")
    for index, frame in enumerate(clip(4, 32, 48, shapes=[Shape(4, (10, 10), (4, 30), (2, -3))], seed=2)):
        Image.fromarray(frame).save(root / "frames" / f"f{index}.png")
    Image.fromarray(texture(9, 32, 48, blur=0.5)).save(root / "style.png")
    StyleNetwork.fresh(4, seed=5).save(str(root / "net.safetensors"))
    return root


def _results(folder):
    return json.loads((folder / "results.json").read_text())["jobs"]


def _frames(path):
    return np.stack([frame.astype(int) for frame in Clip(str(path)).frames()])


@needs_a_backend
def test_each_clip_is_one_job_and_gives_what_the_video_command_gives(files, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["batch", "--contents", str(files / "contents"), "--styles", str(files / "style.png"),
                 "--output", str(out), "--temporal-weight", "500", *OPTIMISE]) == 0
    rows = _results(out)
    assert [row["status"] for row in rows] == ["done", "done"]
    assert [os.path.splitext(row["output"])[1] for row in rows] == [".png", ".mp4"]  # the still, the clip
    written = Clip(str(out / rows[1]["output"]))
    assert (written.count, written.fps, written.size) == (3, 10, (32, 48))
    sidecar = json.loads((out / rows[1]["sidecar"]).read_text())
    assert sidecar["job"]["video"]["temporal_weight"] == 500 and sidecar["result"]["frames"] == 3
    assert len(sidecar["history"]) == 3  # a row per frame
    assert not os.path.exists(str(out / rows[1]["output"]) + ".frames")
    assert "<video class='result'" in (out / "index.html").read_text()
    # multistyle video with the same options: the same frames (both encoded by the same ffmpeg: within a level)
    alone = tmp_path / "alone.mp4"
    assert main(["video", str(files / "contents" / "walk.mp4"), "--style", str(files / "style.png"),
                 "--output", str(alone), "--temporal-weight", "500", *OPTIMISE]) == 0
    assert np.abs(_frames(alone) - _frames(out / rows[1]["output"])).max() <= 1
    # A rerun skips the finished clip; a changed clip option is a new job.
    capsys.readouterr()
    assert main(["batch", "--contents", str(files / "contents"), "--styles", str(files / "style.png"),
                 "--output", str(out), "--temporal-weight", "500", *OPTIMISE]) == 0
    assert "2 skipped" in capsys.readouterr().out
    assert main(["batch", "--contents", str(files / "contents" / "walk.mp4"), "--styles", str(files / "style.png"),
                 "--output", str(out), "--temporal-weight", "0", *OPTIMISE]) == 0
    assert [row["status"] for row in _results(out)] == ["done"]


@needs_a_backend
def test_a_jobs_file_runs_a_folder_of_frames_with_a_network_and_its_own_options(files, tmp_path):
    jobs = tmp_path / "jobs.json"
    jobs.write_text(json.dumps([{"content": str(files / "frames"), "style": str(files / "style.png"),
                                 "fps": 8, "start": "init"}]))
    out = tmp_path / "out"
    assert main(["batch", str(jobs), "--output", str(out), *OPTIMISE]) == 0
    row = _results(out)[0]
    assert row["status"] == "done" and row["output"].startswith("frames__style__") and row["output"].endswith(".mp4")
    written = Clip(str(out / row["output"]))
    assert (written.count, written.fps, written.size) == (4, 8, (32, 48))
    # --model: each clip's frames through the network, blended by --temporal, as multistyle video does it
    net = tmp_path / "net"
    assert main(["batch", "--contents", str(files / "contents" / "walk.mp4"), "--model", str(files / "net.safetensors"),
                 "--output", str(net), "--temporal", "0.5", "--backend", ONE, "--device", "cpu", "--quiet"]) == 0
    alone = tmp_path / "alone.mp4"
    assert main(["video", str(files / "contents" / "walk.mp4"), "--model", str(files / "net.safetensors"),
                 "--output", str(alone), "--temporal", "0.5", "--backend", ONE, "--device", "cpu", "--quiet"]) == 0
    assert np.abs(_frames(alone) - _frames(net / _results(net)[0]["output"])).max() <= 1


@needs_a_backend
def test_a_worker_killed_mid_clip_is_retried_and_continues_from_the_first_missing_frame(files, tmp_path):
    from multistyle.settings import Settings

    job = batch.BatchJob(content=str(files / "contents" / "walk.mp4"), style=[str(files / "style.png")], backend=ONE,
                         device="cpu", weights="random:1", size="24x36", settings=Settings(epochs=2), clip=True)
    marker = tmp_path / "killed"
    data = batch.run_batch([job], str(tmp_path / "out"), retries=1, _kill_once={0: str(marker)})
    assert marker.exists()
    row = data["jobs"][0]
    assert row["status"] == "done" and row["attempts"] == 2
    sidecar = json.loads((tmp_path / "out" / row["sidecar"]).read_text())
    assert sidecar["result"]["resumed_from"] == 1  # the first frame was on disk when the worker died
    whole = batch.run_batch([job], str(tmp_path / "whole"))
    assert np.abs(_frames(tmp_path / "out" / row["output"]) - _frames(tmp_path / "whole" / row["output"])).max() <= 1


@needs_a_backend
@pytest.mark.parametrize("extra, message", [
    (["--temporal", "0.5"], "--temporal: a network's blend"),
    (["--model", "NET", "--temporal-weight", "5"], "--temporal-weight: the optimisation's"),
    (["--model", "NET", "--temporal", "2"], "--temporal: expected a weight from 0 to 1"),
    (["--fps", "0"], "--fps: expected a frame rate > 0"),
])
def test_clip_option_mistakes_are_one_line_before_any_job(files, tmp_path, capsys, extra, message):
    extra = [str(files / "net.safetensors") if part == "NET" else part for part in extra]
    styles = [] if "--model" in extra else ["--styles", str(files / "style.png")]
    out = tmp_path / "out"
    assert main(["batch", "--contents", str(files / "contents"), *styles, "--output", str(out), *extra,
                 "--backend", ONE, "--quiet"]) == 2
    one_error_line(capsys.readouterr().err, message)
    assert not out.exists()


@pytest.mark.ray
def test_clips_on_ray_give_the_local_engines_videos(files, tmp_path, monkeypatch):
    """Two clips as Ray tasks: each video comes back to the driver as bytes (a node need not share the folder)
    and equals the local engine's."""
    import ray

    from multistyle.settings import Settings

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    jobs = [batch.BatchJob(content=str(path), style=[str(files / "style.png")], backend=ONE, device="cpu",
                           weights="random:1", size="24x36", settings=Settings(epochs=2), clip=True)
            for path in (files / "contents" / "walk.mp4", files / "frames")]
    local = batch.run_batch(jobs, str(tmp_path / "local"))
    written = []
    atomic_write = images.atomic_write

    def recording(path, *args, **kwargs):
        written.append(os.path.basename(path))
        return atomic_write(path, *args, **kwargs)

    monkeypatch.setattr(images, "atomic_write", recording)
    batch.ray_init(ray, num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
                   runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    try:
        remote = batch.run_batch(jobs, str(tmp_path / "ray"), engine="ray")
    finally:
        ray.shutdown()
    assert [row["status"] for row in remote["jobs"]] == ["done", "done"]
    assert {row["output"] for row in remote["jobs"]} <= set(written)  # the driver wrote the bytes that came back
    for row in local["jobs"]:
        assert np.abs(_frames(tmp_path / "local" / row["output"]) - _frames(tmp_path / "ray" / row["output"])).max() <= 1
