"""The live state of ``multistyle serve``: the run, its workers, and the pages that watch it.

Each backend runs in its own worker process (``spawn``, as ``compare``'s do), which sends its epochs and
images over a :class:`multiprocessing.Queue`: ``put`` never waits for a reader, so a worker never waits
for the server.  A driver thread per run reads the queues and updates :class:`Live`, which holds the one
state every page sees and pushes each change to every watcher's own bounded queue.  A watcher that falls
behind (a slow or closed browser) is dropped, never waited for; its page reconnects and gets the whole
state again.
"""

from __future__ import annotations

import io
import itertools
import json
import multiprocessing
import queue
import signal
import statistics
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

from .. import images
from ..errors import MultistyleError, first_line

#: Events a watcher may fall behind by before it is dropped (a page reconnects and gets the whole state).
BACKLOG = 512
#: How many images a pane receives over a run, about: one every ``epochs // FRAMES`` epochs, and the last.
FRAMES = 20


def frame_every(epochs: int) -> int:
    return max(1, epochs // FRAMES)


def png_bytes(pixels: Any) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def pane_of(job: Dict[str, Any]) -> str:
    """The pane a job's worker fills: its backend's, or ``network`` for the trained network's pass."""
    return str(job.get("pane", job["backend"]))


def _one_pass(job: Dict[str, Any], events: Any, kept: Dict[tuple, Any]) -> None:
    """The trained network's job (``serve --model``): one pass over the content, then ``("done", png, summary)``.
    ``kept`` holds what the worker has read and placed (the backend, the network) for its next job."""
    from ..backend import get_backend
    from ..nets.arbitrary import encoder_spec
    from ..nets.stylize import load_model, stylize
    from ..transfer import target_size

    received = time.perf_counter()
    content = images.load_image(job["content"], "--content", job["max_pixels"])
    arbitrary = {}
    weights = encoder_spec(job["model"], job["weights"]) if job.get("arbitrary") else "imagenet"
    if job.get("arbitrary"):  # an AdaIN network: the job's style (and mask), encoded in the same pass
        arbitrary = {"style": job["style"], "alpha": job["alpha"],
                     "content_masks": job["settings"].get("content_masks")}
    backend_key, model_key = ("backend", job["backend"], job["device"]), ("model", job["model"], weights)
    if backend_key not in kept:
        kept[backend_key] = get_backend(job["backend"], job["device"])
    if model_key not in kept:
        kept[model_key] = load_model(job["model"], weights, backend=kept[backend_key])
    result = stylize(kept[model_key], content, backend=kept[backend_key], size=target_size(content, job["size"]),
                     max_pixels=job["max_pixels"], **arbitrary)
    events.put(("done", png_bytes(result.image), {
        "framework": job["backend"], "device": result.device, "size": list(result.size), "untrained": False,
        "stopped": "", "pass_seconds": result.seconds, "backend": job["backend"],
        "job_seconds": time.perf_counter() - received}))


def _failed(exc: Exception) -> tuple:
    if isinstance(exc, MultistyleError):
        return ("error", str(exc))
    return ("error", f"{type(exc).__name__}: {first_line(exc)}".rstrip(": "))  # the framework's own failure


def serve_passes(inbox: Any, events: Any) -> None:
    """A backend's warm worker for the trained network's passes: job after job from ``inbox`` (None ends it),
    each answered on ``events`` as :func:`work` answers.  The framework is imported, and the network read and
    placed on the backend, once: later passes cost only the pass."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    kept: Dict[tuple, Any] = {}
    while True:
        job = inbox.get()
        if job is None:
            return
        try:
            _one_pass(job, events, kept)
        except Exception as exc:
            events.put(_failed(exc))


def work(job: Dict[str, Any], events: Any) -> None:
    """One backend's run, in a worker process: ``("epoch", record)``, ``("frame", epoch, png)``, then
    ``("done", png, summary)`` or ``("error", one line)`` on ``events``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the terminal is the server's to handle
    import warnings

    from ..settings import Settings
    from ..transfer import UntrainedWeightsWarning, transfer

    settings = Settings(**job["settings"])
    every = job["frame_every"]

    def on_epoch(record: Dict[str, float], current: Callable[[], Any]) -> None:
        events.put(("epoch", {k: float(v) for k, v in record.items()}))
        epoch = int(record["epoch"])
        if epoch % every == 0 and epoch < job["epochs"]:
            events.put(("frame", epoch, png_bytes(current())))

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UntrainedWeightsWarning)
            result = transfer(job["content"], job["style"], backend=job["backend"], device=job["device"],
                              weights=job["weights"], size=job["size"], settings=settings,
                              max_pixels=job["max_pixels"], callback=on_epoch, snapshot_every=every)
        events.put(("done", png_bytes(result.image), {
            "framework": result.framework_version, "device": result.device, "size": list(result.size),
            "untrained": result.untrained, "stopped": result.stopped}))
    except Exception as exc:  # the pane shows it, the other panes go on
        events.put(_failed(exc))


class Busy(MultistyleError):
    """A run is going: a second one is refused, with this message."""


class Live:
    """The run every page watches, and the pages watching it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watchers: List["queue.Queue[Optional[tuple]]"] = []
        self._ids = itertools.count(1)
        self.run: Optional[Dict[str, Any]] = None
        self._images: Dict[str, Dict[str, bytes]] = {}
        self._stop = threading.Event()
        self._processes: Dict[str, Any] = {}
        #: The trained network's warm workers, one per backend and device: ``(process, inbox, events)``.
        self._warm: Dict[tuple, tuple] = {}
        self._driver: Optional[threading.Thread] = None

    # -- watchers --------------------------------------------------------------------------------------------
    def watch(self) -> "queue.Queue[Optional[tuple]]":
        """A new watcher's queue, which starts with the whole state (so nothing is missed or doubled)."""
        watcher: "queue.Queue[Optional[tuple]]" = queue.Queue(BACKLOG)
        with self._lock:
            watcher.put_nowait(("state", json.dumps(self._state())))
            self._watchers.append(watcher)
        return watcher

    def unwatch(self, watcher: "queue.Queue[Optional[tuple]]") -> None:
        with self._lock:
            if watcher in self._watchers:
                self._watchers.remove(watcher)

    def watchers(self) -> int:
        with self._lock:
            return len(self._watchers)

    def _publish(self, event: str, data: Dict[str, Any]) -> None:
        """Send to every watcher; one that is full is dropped and told to go (called with the lock held)."""
        text = json.dumps(data)
        for watcher in list(self._watchers):
            try:
                watcher.put_nowait((event, text))
            except queue.Full:
                self._watchers.remove(watcher)
                _drain(watcher)
                watcher.put_nowait(None)

    def close(self) -> None:
        """Stop the run, end the warm workers and every watcher's stream."""
        self.stop()
        with self._lock:
            warm, self._warm = list(self._warm.values()), {}
        for process, _, _ in warm:
            _end(process)
        with self._lock:
            for watcher in self._watchers:
                _drain(watcher)
                watcher.put_nowait(None)
            self._watchers.clear()

    # -- state ---------------------------------------------------------------------------------------------
    def _state(self) -> Dict[str, Any]:
        return {"run": self.run}

    def state(self) -> Dict[str, Any]:
        with self._lock:
            return json.loads(json.dumps(self._state()))

    def image(self, backend: str, kind: str) -> Optional[bytes]:
        """The latest or final PNG of ``backend`` in the current run, or None."""
        with self._lock:
            return self._images.get(backend, {}).get(kind)

    def worker_pids(self) -> List[int]:
        with self._lock:
            return [p.pid for p in self._processes.values() if p.pid is not None]

    def warm_pids(self) -> Dict[str, int]:
        """The trained network's warm workers, waiting for the next run: ``{backend: pid}``."""
        with self._lock:
            return {key[0]: process.pid for key, (process, _, _) in self._warm.items()
                    if process.pid is not None and process.is_alive()}

    # -- runs ----------------------------------------------------------------------------------------------
    def start(self, jobs: Sequence[Dict[str, Any]], settings: Dict[str, Any], parallel: bool) -> Dict[str, Any]:
        """Start a run of ``jobs`` (one per backend); :class:`Busy` while one is going."""
        with self._lock:
            if self.run is not None and self.run["status"] == "running":
                raise Busy(f"run {self.run['id']} is still going (started {self.run['started']}); "
                           "press Stop, or wait for it to finish")
            self._stop = threading.Event()
            self._images = {}
            self.run = {"id": next(self._ids), "status": "running", "parallel": parallel,
                        "started": time.strftime("%H:%M:%S"), "settings": settings,
                        "order": [pane_of(job) for job in jobs],
                        "panes": {pane_of(job): {"status": "waiting", "history": [], "frames": 0, "error": "",
                                                 "summary": {}, "seconds_per_iteration": None}
                                  for job in jobs}}
            self._publish("run", self.run)
            run = self.run
        self._driver = threading.Thread(target=self._drive, args=(run, list(jobs)), daemon=True)
        self._driver.start()
        return run

    def stop(self) -> None:
        """Stop the run: its workers are ended now, not at their next epoch (a warm worker in the middle of a
        pass too: the next run starts a new one)."""
        self._stop.set()
        with self._lock:
            processes = list(self._processes.values())
            busy = set(map(id, processes))
            self._warm = {key: value for key, value in self._warm.items() if id(value[0]) not in busy}
        for process in processes:
            _end(process)
        if self._driver is not None and self._driver is not threading.current_thread():
            self._driver.join(timeout=10)

    def _drive(self, run: Dict[str, Any], jobs: List[Dict[str, Any]]) -> None:
        quiet_children()
        context = multiprocessing.get_context("spawn")
        groups = [jobs] if run["parallel"] else [[job] for job in jobs]
        for group in groups:
            if self._stop.is_set():
                break
            started = {}
            for job in group:
                name = pane_of(job)
                if job.get("model"):  # one pass: the backend's warm worker takes it
                    process, events = self._warm_worker(context, job)
                else:
                    events = context.Queue()
                    process = context.Process(target=work, args=(job, events), daemon=True,
                                              name=f"multistyle-serve-{name}")
                    process.start()
                with self._lock:
                    self._processes[name] = process
                started[name] = (process, events)
                self._pane(run, name, "status", {"status": "running"})
            self._pump(run, started)
        with self._lock:
            for name, pane in run["panes"].items():
                if pane["status"] in ("waiting", "running"):
                    pane["status"] = "stopped"
                    self._publish("pane", {"run": run["id"], "backend": name, "status": "stopped"})
            run["status"] = "stopped" if self._stop.is_set() else "finished"
            self._publish("finished", {"run": run["id"], "status": run["status"]})

    def _warm_worker(self, context: Any, job: Dict[str, Any]) -> tuple:
        """The warm worker of the job's backend (started now if there is none, or it died), the job handed to it:
        ``(process, events)``."""
        key = (job["backend"], job["device"])
        with self._lock:
            found = self._warm.get(key)
        if found is None or not found[0].is_alive():
            if found is not None:
                _end(found[0])  # reaped
            inbox, events = context.Queue(), context.Queue()
            process = context.Process(target=serve_passes, args=(inbox, events), daemon=True,
                                      name=f"multistyle-serve-{job['backend']}-passes")
            process.start()
            found = (process, inbox, events)
            with self._lock:
                self._warm[key] = found
        found[1].put(job)
        return found[0], found[2]

    def _pump(self, run: Dict[str, Any], started: Dict[str, Any]) -> None:
        """Read the workers' queues until each has ended (or the run is stopped)."""
        live = dict(started)
        while live:
            if self._stop.is_set():
                for process, _ in live.values():
                    _end(process)
                break
            idle = True
            for name, (process, events) in list(live.items()):
                try:
                    message = events.get(timeout=0.05)
                except queue.Empty:
                    if process.is_alive() or self._stop.is_set():  # stopped: ended by stop(), not crashed
                        continue
                    try:  # what it sent just before it exited
                        message = events.get(timeout=0.5)
                    except queue.Empty:
                        code = process.exitcode
                        self._pane(run, name, "failed", {"error": f"the worker process died (exit code {code}: "
                                                                  "out of memory, or a crash in the framework)"})
                        del live[name]
                        continue
                idle = False
                if self._handle(run, name, message):
                    if not self._is_warm(process):  # a warm worker waits for the next run's pass
                        process.join(timeout=10)
                        _end(process)
                    del live[name]
            if idle:
                time.sleep(0.02)
        with self._lock:
            for name in started:
                self._processes.pop(name, None)

    def _is_warm(self, process: Any) -> bool:
        with self._lock:
            return any(found[0] is process for found in self._warm.values())

    def _handle(self, run: Dict[str, Any], name: str, message: tuple) -> bool:
        """Apply one worker message; True when the worker has finished."""
        kind = message[0]
        if kind == "epoch":
            self._pane(run, name, "epoch", {"record": message[1]})
            return False
        if kind == "frame":
            self._pane(run, name, "frame", {"epoch": message[1]}, image=("latest", message[2]))
            return False
        if kind == "done":
            self._pane(run, name, "done", {"summary": message[2]}, image=("final", message[1]))
            return True
        self._pane(run, name, "failed", {"error": message[1]})
        return True

    def _pane(self, run: Dict[str, Any], name: str, event: str, data: Dict[str, Any],
              image: Optional[tuple] = None) -> None:
        with self._lock:
            pane = run["panes"][name]
            if image is not None:
                self._images.setdefault(name, {})[image[0]] = image[1]
                if image[0] == "final":
                    self._images[name]["latest"] = image[1]
                pane["frames"] += 1
                data["frames"] = pane["frames"]
            if event == "epoch":
                pane["history"].append(data["record"])
                steps = [row["seconds"] for row in pane["history"][1:]]  # the first epoch warms up
                pane["seconds_per_iteration"] = statistics.median(steps) if steps else None
                data["seconds_per_iteration"] = pane["seconds_per_iteration"]
            elif event == "done":
                pane["status"], pane["summary"] = "done", data["summary"]
            elif event == "failed":
                pane["status"], pane["error"] = "failed", data["error"]
            elif event == "status":
                pane["status"] = data["status"]
            data.update(run=run["id"], backend=name, status=pane["status"])
            self._publish(event, data)


def quiet_children() -> None:
    """Block SIGINT in this thread, so that the processes it starts inherit the blocked signal.

    Ctrl-C in a terminal signals the whole process group; a worker still importing its framework would
    print a KeyboardInterrupt traceback.  The server ends its workers itself."""
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})


def _end(process: Any) -> None:
    """End a worker process and reap it: terminate, then kill."""
    if process.pid is None:
        return
    if process.is_alive():
        process.terminate()
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
    process.join(timeout=5)


def _drain(watcher: "queue.Queue[Optional[tuple]]") -> None:
    while True:
        try:
            watcher.get_nowait()
        except queue.Empty:
            return
