"""``multistyle serve``: the server (its address, limits and refusals), the live run, and the page in Chromium.

The server runs as a user runs it, ``python -m multistyle serve`` in its own process (:mod:`support.serving`),
stopped with SIGINT as Ctrl-C stops it.  Runs use seeded random weights at tiny sizes.
"""

from __future__ import annotations

import html
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

import multistyle
from multistyle.backend import BUILTIN_BACKENDS
from support import REPOSITORY, browser
from support.cli import one_error_line
from support.needs import CHECKS
from support.serving import Served, alive

#: Every test runs on the cheapest framework(s) installed; what it checks does not depend on which.
pytestmark = pytest.mark.any_backend
#: Cheapest first: the backends a test runs on, of those installed here.
PREFERENCE = ("torch", "mxnet", "paddle", "tensorflow", "jax")
EXAMPLES = {kind: str(REPOSITORY / "examples" / f"{kind}.jpg") for kind in ("content", "style")}
WEIGHTS = "random:2"


def usable(count: int):
    """The first ``count`` usable backends, or skip: these tests need that many frameworks installed."""
    names = [name for name in PREFERENCE if name in BUILTIN_BACKENDS and CHECKS[name]() is None]
    if len(names) < count:
        pytest.skip(f"needs {count} installed backend(s); here: {names or 'none'}")
    return names[:count]


def png(width: int, height: int, flat: bool = False) -> bytes:
    """A noise PNG (large on disk), or a flat one (a few kilobytes whatever its size)."""
    pixels = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels * 0 if flat else pixels).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server with small limits, offering every registered backend (usable here or not)."""
    served = Served(["--weights", WEIGHTS, "--max-upload-mb", "0.05", "--max-pixels", "200000"],
                    tmp_path_factory.mktemp("serve"))
    yield served
    served.stop()


# -- the command ---------------------------------------------------------------------------------------------
def test_a_busy_port_is_one_line_naming_it(server):
    done = subprocess.run([sys.executable, "-m", "multistyle", "serve", "--port", str(server.port)],
                          capture_output=True, text=True, timeout=120, cwd=server.scratch)
    assert done.returncode == 2
    one_error_line(done.stderr, f"port {server.port} on 127.0.0.1 is already in use; choose another with --port")


def test_another_host_warns_and_ctrl_c_stops_cleanly(tmp_path):
    served = Served(["--host", "0.0.0.0", "--backends", "torch"], tmp_path)
    status, _ = served.request("GET", "/")
    code, err = served.stop()
    assert status == 200
    assert code == 0, err
    assert "--host 0.0.0.0: anyone who can reach this machine on that network can use the page" in err
    assert "Traceback" not in err and err.rstrip().endswith("multistyle serve: stopped; uploads deleted"), err


def test_the_default_address_is_loopback_and_answers_only_its_own_name(server):
    listening = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    listening.close()
    # DNS rebinding: a page from elsewhere that resolves its own name to 127.0.0.1 is refused.
    status, body = server.request("GET", "/api/state", headers={"Host": f"attacker.example:{server.port}"})
    assert status == 421, body
    assert server.request("GET", "/api/state", headers={"Host": f"localhost:{server.port}"})[0] == 200


# -- watchers -----------------------------------------------------------------------------------------------
def test_a_watcher_that_never_reads_is_dropped_not_waited_for():
    import threading

    from multistyle.serve.live import BACKLOG, Live

    live = Live()
    stalled, reader = live.watch(), live.watch()
    assert stalled.get_nowait()[0] == "state" and reader.get_nowait()[0] == "state"  # the whole state first
    received = []

    def publish():
        for index in range(BACKLOG * 3):
            with live._lock:
                live._publish("epoch", {"index": index})
            received.append(reader.get_nowait())  # the other page keeps up

    worker = threading.Thread(target=publish, daemon=True)
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), "publishing waited for a page that does not read"
    assert len(received) == BACKLOG * 3 and live.watchers() == 1
    assert stalled.get_nowait() is None  # told to go: its page reconnects and gets the whole state again


# -- refusals -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", [
    "/../pyproject.toml", "/app.js/../../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/..%2f..%2fetc%2fpasswd",
    "//etc/passwd", "/etc/passwd", "/api/example/..%2Fcontent", "/api/example/%2Fetc%2Fpasswd",
    "/api/image/..%2F..%2Fetc/final.png", "/api/image/torch/..%2F..%2Fpasswd.png", "/api/example/content/../../x",
    "/multistyle/serve/server.py", "/app.js%00.png",
])
def test_no_request_path_reaches_the_file_system(server, path):
    status, body = server.request("GET", path)
    assert status == 404, (path, status, body[:200])
    assert b"root:" not in body and b"import" not in body


def test_oversized_and_malformed_requests_get_4xx_and_the_server_stays_up(server):
    big = png(400, 400)  # > --max-upload-mb 0.05
    status, body = server.request("POST", "/api/upload/content", big)
    assert status == 413 and b"--max-upload-mb" in body, body
    assert server.request("POST", "/api/run", b"{not json", {"Content-Type": "application/json"})[0] == 400
    assert server.request("POST", "/api/run", b"[1, 2]")[0] == 400
    assert server.json("POST", "/api/run", {"backends": ["torch"], "size": 10 ** 9, "epochs": 3})[0] == 400
    assert server.json("POST", "/api/run", {"backends": ["nonesuch"], "size": 32, "epochs": 3})[0] == 400
    assert server.request("POST", "/api/upload/content", b"x", {"Content-Length": "-5"})[0] == 400
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:  # no Content-Length at all
        raw.sendall(b"POST /api/upload/style HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % server.port)
        assert raw.recv(100).split(b" ")[1] == b"411"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:  # not HTTP
        raw.sendall(b"\x16\x03\x01 garbage that is not a request line\r\n\r\n")
        assert b"Error code: 400" in raw.recv(2000)
    assert server.request("GET", "/")[0] == 200


def test_a_bad_upload_is_refused_in_one_line(server):
    status, body = server.request("POST", "/api/upload/content", b"#!/bin/sh\necho not an image\n",
                                  {"X-Filename": "evil.sh"})
    assert status == 400
    assert body.decode().count("\n") == 0 and "content image: 'evil.sh' is not an image in a supported format" in \
        body.decode(), body
    status, body = server.request("POST", "/api/upload/style", png(1000, 1000, flat=True), {"X-Filename": "large.png"})
    assert status == 400 and b"has more than 200000 pixels; raise --max-pixels" in body, body
    status, body = server.request("POST", "/api/upload/style", png(40, 30), {"X-Filename": "..%2F..%2Fok.png"})
    assert status == 200 and b'"name": "ok.png"' in body, body


def test_uploads_live_in_the_servers_folder_and_are_deleted_when_it_stops(tmp_path):
    served = Served(["--backends", "torch"], tmp_path)
    try:
        status, body = served.request("POST", "/api/upload/content", png(40, 30))
        assert status == 200, body
        stored = [p for p in served.tmp.glob("multistyle-serve-*/*") if p.is_file()]
        assert len(stored) == 1 and stored[0].read_bytes() == png(40, 30)
    finally:
        code, err = served.stop()
    assert code == 0, err
    assert not list(served.tmp.glob("multistyle-serve-*")), list(served.tmp.rglob("*"))


# -- runs -------------------------------------------------------------------------------------------------------
def _run(server, backends, epochs, parallel=False, size=32, **more):
    status, body = server.json("POST", "/api/run", {"backends": backends, "size": size, "epochs": epochs,
                                                    "preset": "d2l", "parallel": parallel, **more})
    assert status == 202, body
    return body["run"]


def test_the_style_loss_chosen_on_the_page_is_the_runs(server):
    name, = usable(1)
    status, body = server.json("POST", "/api/run", {"backends": [name], "size": 32, "epochs": 2, "style_loss": "l1"})
    assert status == 400 and body["error"].startswith("style_loss: choose one of gram, mean-std, w2"), body
    # 24 pixels on the long edge (16x24): relu4_1 is 2x3, too small for MRF's 3x3 patch; the request says so
    status, body = server.json("POST", "/api/run", {"backends": [name], "size": 24, "epochs": 2, "style_loss": "mrf"})
    assert status == 400 and "too small for a 3x3 patch" in body["error"], body
    _run(server, [name], 2, style_loss="w2")
    state = server.wait(lambda s: s["run"]["status"] != "running", 120, "the run to end")
    pane = state["run"]["panes"][name]
    assert pane["status"] == "done", pane
    want = multistyle.transfer(EXAMPLES["content"], EXAMPLES["style"], backend=name, weights=WEIGHTS, size=32,
                               epochs=2, preset="d2l", style_loss="w2").history
    assert [r["style"] for r in pane["history"]] == pytest.approx([r["style"] for r in want], rel=1e-4)


def test_a_mask_chosen_on_the_page_is_the_runs_region_of_the_style(server):
    """The bundled mask (the left half) or an upload; a black one is a 400 that names no server path."""
    name, = usable(1)
    black = io.BytesIO()
    Image.new("L", (40, 30)).save(black, format="PNG")
    status, body = server.request("POST", "/api/upload/mask", black.getvalue(), {"X-Filename": "black.png"})
    assert status == 200, body
    token = json.loads(body)["token"]
    status, body = server.json("POST", "/api/run", {"backends": [name], "size": 32, "epochs": 2, "mask": token})
    assert status == 400 and body["error"] == ("mask: black everywhere, so its style applies nowhere; white marks "
                                               "where it applies"), body
    assert server.request("GET", "/api/example/mask")[0] == 200
    _run(server, [name], 2, mask="example")
    state = server.wait(lambda s: s["run"]["status"] != "running", 120, "the run to end")
    pane = state["run"]["panes"][name]
    assert pane["status"] == "done", pane
    mask = str(REPOSITORY / "examples" / "mask-left.png")
    want = multistyle.transfer(EXAMPLES["content"], EXAMPLES["style"], backend=name, weights=WEIGHTS, size=32,
                               epochs=2, preset="d2l", content_masks=[mask]).history
    unmasked = multistyle.transfer(EXAMPLES["content"], EXAMPLES["style"], backend=name, weights=WEIGHTS, size=32,
                                   epochs=2, preset="d2l").history
    assert [r["style"] for r in pane["history"]] == pytest.approx([r["style"] for r in want], rel=1e-4)
    assert pane["history"][0]["style"] != pytest.approx(unmasked[0]["style"], rel=1e-3)


def test_a_second_run_is_refused_and_stop_ends_the_workers(server):
    name, = usable(1)
    _run(server, [name], 5000)
    state = server.wait(lambda s: s["workers"] and s["run"]["panes"][name]["history"], what="a running worker")
    pids = state["workers"]
    assert all(alive(pid) for pid in pids)
    status, body = server.json("POST", "/api/run", {"backends": [name], "size": 32, "epochs": 3})
    assert status == 409 and "is still going" in body["error"] and "press Stop" in body["error"], body
    assert server.json("POST", "/api/stop", {})[0] == 200
    state = server.wait(lambda s: s["run"]["status"] == "stopped", 30, "the run to stop")
    assert state["run"]["panes"][name]["status"] == "stopped" and state["workers"] == []
    assert not [pid for pid in pids if alive(pid)], "a stopped run left its worker running"


def _first_event(served, name: str) -> dict:
    """Open an event stream and read it until its first ``name`` event."""
    import http.client
    import json

    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=60)
    connection.request("GET", "/api/events")
    stream = connection.getresponse()
    assert stream.headers["Content-Type"] == "text/event-stream"
    return stream, connection, lambda: _read_event(stream, name, json)


def _read_event(stream, name, json, seconds=60):
    """The data of the stream's next ``name`` event, within ``seconds``: the stream's keep-alive comments would
    otherwise keep a reader of an event that never comes waiting for ever (as a CI run did)."""
    import time

    event, deadline = None, time.monotonic() + seconds
    while True:
        assert time.monotonic() < deadline, f"no {name!r} event in {seconds} s"
        line = stream.readline().decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: ") and event == name:
            return json.loads(line[6:])


@pytest.mark.cross_backend
def test_at_once_runs_every_worker_together_and_two_pages_watch_it(server):
    first, second = usable(2)
    watchers = [_first_event(server, "run") for _ in range(2)]
    _run(server, [first, second], 2000, parallel=True)
    for stream, connection, read in watchers:  # both pages are told, as it happens
        run = read()
        assert run["parallel"] is True and run["order"] == [first, second]
        connection.close()
    state = server.wait(lambda s: len(s["workers"]) == 2 and all(p["history"] for p in s["run"]["panes"].values()),
                        what="both workers running at once")
    assert server.json("POST", "/api/stop", {})[0] == 200
    server.wait(lambda s: s["run"]["status"] == "stopped", 30, "the run to stop")
    assert not [pid for pid in state["workers"] if alive(pid)]


def test_an_unusable_backend_is_shown_with_its_install_hint(server):
    unusable = {name: row for name, row in server.state()["backends"].items() if not row["usable"]}
    if not unusable:
        pytest.skip("every backend is usable here")
    page = server.request("GET", "/")[1].decode()
    for name, row in unusable.items():
        assert f"id='backend-{name}' value='{name}' disabled" in page
        assert "pip install" in row["reason"] and html.escape(row["reason"]) in page
    status, body = server.json("POST", "/api/run", {"backends": [next(iter(unusable))], "size": 32, "epochs": 3})
    assert status == 400 and "is not usable here" in body["error"]


@pytest.mark.cross_backend
def test_a_crashed_worker_shows_why_and_the_other_backends_go_on(server):
    first, second = usable(2)
    _run(server, [first, second], 400)
    state = server.wait(lambda s: s["workers"] and s["run"]["panes"][first]["history"], what=f"{first} running")
    os.kill(state["workers"][0], signal.SIGKILL)  # as the kernel's out-of-memory killer would
    state = server.wait(lambda s: s["run"]["status"] != "running", 300, "the run to end")
    panes = state["run"]["panes"]
    assert panes[first]["status"] == "failed"
    assert panes[first]["error"] == ("the worker process died (exit code -9: out of memory, or a crash in the "
                                     "framework)")
    assert panes[second]["status"] == "done" and len(panes[second]["history"]) == 400


@pytest.mark.cross_backend
def test_ctrl_c_during_a_run_stops_server_and_workers_without_a_traceback(tmp_path):
    first, second = usable(2)
    served = Served(["--weights", WEIGHTS, "--backends", f"{first},{second}"], tmp_path)
    try:
        _run(served, [first, second], 3000, parallel=True)
        pids = served.wait(lambda s: len(s["workers"]) == 2, what="two workers")["workers"]
    finally:
        code, err = served.stop(group=True)  # the workers are still importing their frameworks
    assert code == 0, err
    assert err.splitlines() == ["multistyle serve: checking which backends are installed ...",
                                "multistyle serve: stopped; uploads deleted"], err
    time.sleep(0.5)
    assert not [pid for pid in pids if alive(pid)]


def test_a_worker_error_is_its_panes_one_line(tmp_path):
    name, = usable(1)
    damaged = tmp_path / "damaged.npz"
    damaged.write_bytes(b"not a zip archive")
    served = Served(["--weights", str(damaged), "--backends", name], tmp_path)
    try:
        _run(served, [name], 3)
        state = served.wait(lambda s: s["run"]["status"] != "running", 120, "the run to end")
    finally:
        served.stop()
    pane = state["run"]["panes"][name]
    assert pane["status"] == "failed" and "damaged.npz" in pane["error"] and "\n" not in pane["error"], pane


# -- the page, in Chromium --------------------------------------------------------------------------------------
def _cli_image(tmp_path, name, size, epochs):
    output = tmp_path / f"run-{name}.png"
    done = subprocess.run([sys.executable, "-m", "multistyle", "run", "--backend", name, "--weights", WEIGHTS,
                           "--content", EXAMPLES["content"], "--style", EXAMPLES["style"], "--size", str(size),
                           "--epochs", str(epochs), "--preset", "d2l", "--output", str(output), "--quiet"],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return np.asarray(Image.open(output).convert("RGB")).astype(np.int16)


#: Records every distinct src each pane's image takes, from the page's side.
WATCH_IMAGES = """
window.seen = {};
for (const pane of document.querySelectorAll('.pane')) {
  const img = pane.querySelector('img'), name = pane.dataset.backend;
  window.seen[name] = [];
  new MutationObserver(() => { if (img.src) window.seen[name].push(img.src); })
    .observe(img, {attributes: true, attributeFilter: ['src']});
}
"""


@pytest.mark.browser
@pytest.mark.cross_backend
def test_the_page_runs_two_backends_live_and_ends_with_what_run_gives(tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    names = usable(2)
    size, epochs = 32, 30
    served = Served(["--weights", WEIGHTS, "--backends", ",".join(names)], tmp_path)
    session = browser.driver(tmp_path)
    try:
        session.get(served.url)
        wait = WebDriverWait(session, 300, poll_frequency=0.2)
        wait.until(lambda s: s.find_element(By.ID, "status").text == "ready")
        session.execute_script(WATCH_IMAGES)
        for element_id, value in (("size", size), ("epochs", epochs)):
            field = session.find_element(By.ID, element_id)
            field.clear()
            field.send_keys(str(value))
        session.find_element(By.ID, "run").click()
        wait.until(lambda s: s.find_element(By.ID, "status").text.endswith("finished"))
        seen = session.execute_script("return window.seen")
        for name in names:
            pane = session.find_element(By.ID, f"pane-{name}")
            intermediate = [src for src in seen[name] if "/latest.png" in src]
            assert len(set(intermediate)) >= 3, seen[name]  # several images arrived before the end ...
            assert "/final.png" in seen[name][-1]  # ... and the final one last
            assert pane.find_element(By.CLASS_NAME, "pane-status").text == f"done: {epochs} epochs"
            assert pane.find_element(By.CLASS_NAME, "speed").text.endswith(" s/it")
            assert session.execute_script("return arguments[0].naturalWidth", pane.find_element(By.TAG_NAME, "img")) > 0
            link = session.find_element(By.ID, f"download-{name}").get_attribute("href")
            status, data = served.request("GET", link.replace(served.url.rstrip("/"), ""))
            assert status == 200
            final = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(np.int16)
            expected = _cli_image(tmp_path, name, size, epochs)
            assert final.shape == expected.shape
            assert np.abs(final - expected).max() <= 1, f"{name}: the page's image is not run's"
        lines = session.find_elements(By.CSS_SELECTOR, "#chart-epochs polyline")
        assert len(lines) == 2 and len(session.find_elements(By.CSS_SELECTOR, "#chart-seconds polyline")) == 2
        assert len(session.find_elements(By.CSS_SELECTOR, "table.code tr")) > 5  # the code side by side
        assert session.find_element(By.ID, "maths").text == "Same name, different maths"
        requested = browser.requested_urls(session, served.url)
        assert any(url.endswith("/api/events") for url in requested) and len(requested) > 5, requested
        outside = [url for url in requested if not url.startswith((served.url, "data:", "blob:"))]
        assert outside == [], "the page made requests outside 127.0.0.1"
        errors = [entry for entry in session.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == [], errors
        shot = tmp_path / "serve.png"
        session.save_screenshot(str(shot))
        if os.environ.get("MULTISTYLE_SCREENSHOTS"):  # how the README's picture is made
            shutil.copy(shot, os.path.join(os.environ["MULTISTYLE_SCREENSHOTS"], "serve.png"))
    finally:
        session.quit()
        served.stop()


@pytest.mark.browser
def test_a_bad_upload_shows_its_line_and_stop_from_the_page_ends_the_workers(tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    name, = usable(1)
    served = Served(["--weights", WEIGHTS, "--backends", name], tmp_path)
    session = browser.driver(tmp_path)
    try:
        session.get(served.url)
        wait = WebDriverWait(session, 120, poll_frequency=0.2)
        status = session.find_element(By.ID, "status")
        wait.until(lambda s: status.text == "ready")
        bad = tmp_path / "notes.png"
        bad.write_text("not a picture")
        session.find_element(By.ID, "content-file").send_keys(str(bad))
        wait.until(lambda s: "error" in status.get_attribute("class"))
        assert status.text == "content image: 'notes.png' is not an image in a supported format " \
                              "(PNG, JPEG, WEBP, TIFF, BMP, GIF)"
        good = tmp_path / "good.png"
        good.write_bytes(png(48, 40))
        session.find_element(By.ID, "content-file").send_keys(str(good))  # the page still works
        wait.until(lambda s: status.text == "content image: good.png is ready")
        assert session.find_element(By.ID, "content-name").text == "good.png (48×40)"
        session.find_element(By.ID, "mask-example").click()  # the style on the left half only
        assert session.find_element(By.ID, "mask-name").text == "example"
        wait.until(lambda s: s.execute_script("return $('mask-preview').naturalWidth") > 0)
        epochs = session.find_element(By.ID, "epochs")
        epochs.clear()
        epochs.send_keys("5000")
        session.find_element(By.ID, "run").click()
        state = served.wait(lambda s: s["workers"] and s["run"]["panes"][name]["history"], what="a running worker")
        assert state["run"]["settings"]["content"] == "upload"
        assert state["run"]["settings"]["content_masks"] == ["example"]
        session.find_element(By.ID, "stop").click()
        wait.until(lambda s: status.text.endswith("stopped"))
        assert session.find_element(By.CSS_SELECTOR, f"#pane-{name} .pane-status").text == "stopped"
        time.sleep(0.5)
        assert not [pid for pid in state["workers"] if alive(pid)], "Stop left a worker running"
    finally:
        session.quit()
        served.stop()


def test_a_trained_network_races_the_optimisation_and_gives_runs_picture(tmp_path):
    """``serve --model``: the page offers the network beside the backends; a run with it checked fills the
    ``network`` pane with one pass, the picture ``run --model`` gives, before the optimisation's panes."""
    from multistyle.nets import StyleNetwork
    from multistyle.nets.stylize import stylize

    name, = usable(1)
    model = tmp_path / "net.safetensors"
    StyleNetwork.fresh(4, seed=5).save(str(model))
    served = Served(["--weights", WEIGHTS, "--model", str(model)], tmp_path / "serve")
    try:
        page = served.request("GET", "/")[1].decode()
        assert "id='network' checked" in page and "id='pane-network'" in page
        status, body = served.json("POST", "/api/run", {"backends": [name], "size": 40, "epochs": 2,
                                                        "preset": "d2l", "network": True})
        assert status == 202, body
        state = served.wait(lambda s: s["run"]["status"] == "finished", 120, "the run to finish")
        assert state["run"]["order"] == ["network", name]
        pane = state["run"]["panes"]["network"]
        assert pane["status"] == "done" and pane["summary"]["pass_seconds"] > 0 and pane["history"] == []
        got = np.asarray(Image.open(io.BytesIO(served.request("GET", "/api/image/network/final.png")[1])))
        expected = stylize(str(model), EXAMPLES["content"], backend=name, device="cpu", size=40).image
        assert got.shape == expected.shape and np.abs(got.astype(int) - expected.astype(int)).max() <= 1
    finally:
        served.stop()


def test_an_adain_network_stylises_the_picked_style_on_every_backend_chosen(tmp_path):
    """``serve --model`` with an AdaIN network: the page offers it with an alpha; a run with it checked fills each
    chosen backend's pane with one pass of the picked style, the picture ``run --model`` gives; alpha outside
    [0, 1] is a 400."""
    from multistyle.nets.arbitrary import ArbitraryNetwork
    from multistyle.nets import adain
    from multistyle.nets.stylize import stylize

    names = usable(2)[:2] if len([n for n in PREFERENCE if CHECKS[n]() is None]) > 1 else usable(1)
    model = tmp_path / "adain.safetensors"
    ArbitraryNetwork.fresh(adain.random_encoder(3), "random:3", seed=4).save(str(model))
    served = Served(["--weights", WEIGHTS, "--model", str(model)], tmp_path / "serve")
    try:
        page = served.request("GET", "/")[1].decode()
        assert "AdaIN network (any style)" in page and "id='alpha'" in page and "id='pane-network'" not in page
        request = {"backends": names, "size": 40, "epochs": 2, "preset": "d2l", "network": True, "alpha": 0.5}
        status, body = served.json("POST", "/api/run", dict(request, alpha=1.5))
        assert status == 400 and "alpha: expected a number from 0 to 1" in body["error"], body
        status, body = served.json("POST", "/api/run", request)
        assert status == 202, body
        state = served.wait(lambda s: s["run"]["status"] == "finished", 120, "the run to finish")
        assert state["run"]["order"] == names and state["run"]["settings"]["alpha"] == 0.5
        for name in names:
            pane = state["run"]["panes"][name]
            assert pane["status"] == "done" and pane["summary"]["pass_seconds"] > 0 and pane["history"] == []
            got = np.asarray(Image.open(io.BytesIO(served.request("GET", f"/api/image/{name}/final.png")[1])))
            expected = stylize(str(model), EXAMPLES["content"], style=EXAMPLES["style"], backend=name, device="cpu",
                               size=40, alpha=0.5).image
            assert got.shape == expected.shape and np.abs(got.astype(int) - expected.astype(int)).max() <= 1, name
        # Each backend's worker stays warm (framework imported, network placed) and takes the next run's pass.
        warm = state["warm"]
        assert sorted(warm) == sorted(names) and all(alive(pid) for pid in warm.values())
        status, body = served.json("POST", "/api/run", dict(request, alpha=0.25))
        assert status == 202, body
        state = served.wait(lambda s: s["run"]["status"] == "finished", 120, "the second run to finish")
        assert state["warm"] == warm, "the second run started new workers"
        for name in names:
            got = np.asarray(Image.open(io.BytesIO(served.request("GET", f"/api/image/{name}/final.png")[1])))
            expected = stylize(str(model), EXAMPLES["content"], style=EXAMPLES["style"], backend=name, device="cpu",
                               size=40, alpha=0.25).image
            assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1, name
    finally:
        served.stop()
    assert not [pid for pid in warm.values() if alive(pid)], "the server's end left a warm worker running"
