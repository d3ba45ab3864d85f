"""``multistyle batch``: many jobs, on this machine or on a Ray cluster, resumable.

A batch is a list of :class:`BatchJob` (a content, one or more styles, the
backend and the settings).  Each job's output name comes from what it
computes: its inputs' bytes, its backend, weights, size and settings, hashed
(:func:`job_key`), behind a readable stem.  The image and a JSON sidecar are
written atomically by the parent process, image first, so a job counts as
done only once both exist and the sidecar names the image's checksum; a
rerun skips such jobs, so an interrupted batch resumes where it stopped.

Two engines run the jobs:

- ``local``: a pool of worker processes (``spawn``), each keeping its
  backends and weights across jobs.  The parent knows which job each worker
  holds, so a worker that dies (killed, out of memory) costs exactly that job
  one attempt: it is retried on a fresh worker up to ``retries`` times.
- ``ray``: each job a Ray task; weights (and input images) go into Ray's
  object store once.  Ray itself retries a task whose worker process or node
  died (``max_retries``).

A job that fails because of its input (an unreadable image, a loss that
became NaN) is not retried: it is recorded as failed, with its one-line
reason, and the batch goes on.  This module imports no framework, and Ray
only when the Ray engine is used.
"""

from __future__ import annotations

import contextlib
import csv
import glob
import hashlib
import io
import json
import multiprocessing
import os
import platform
import re
import signal
import sys
import time
import warnings
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import wait as wait_for
from typing import Any, Callable, Deque, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import __version__, gallery, images
from .backend import Backend, get_backend
from .errors import MultistyleError, first_line
from .transfer import (DEFAULT_SIZE, LoadedWeights, Settings, UntrainedWeightsWarning, load_weights, settings_dict,
                       transfer)
from .vgg import deepest_index, parse_weights_spec

ENGINES = ("local", "ray")
#: File extensions taken from a folder given to ``--contents`` / ``--styles``.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")
RESULTS_COLUMNS = ("index", "status", "content", "style", "backend", "output", "sidecar", "reason", "attempts",
                   "seconds", "epochs", "final_loss", "device", "key")


@dataclass
class BatchJob:
    """One job of a batch: what ``multistyle run`` would do with these options."""

    content: str
    style: List[str]
    backend: str = "torch"
    device: str = "auto"
    weights: str = "imagenet"
    size: Union[None, int, str, Tuple[int, int]] = DEFAULT_SIZE
    max_pixels: int = images.DEFAULT_MAX_PIXELS
    deterministic: bool = False
    settings: Settings = field(default_factory=Settings)
    #: Where the job came from, for messages ("jobs.csv row 3"); empty for a grid.
    source: str = ""


def expand_images(spec: str, option: str) -> List[str]:
    """The image files a ``--contents``/``--styles`` argument names: a folder (its images, sorted), a glob
    pattern (its matches, sorted) or one file."""
    if os.path.isdir(spec):
        found = sorted(os.path.join(spec, name) for name in os.listdir(spec)
                       if name.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(spec, name)))
        if not found:
            raise MultistyleError(f"{option}: folder {spec!r} has no image files ({', '.join(IMAGE_EXTENSIONS)})")
        return found
    if os.path.isfile(spec):
        return [spec]
    if glob.has_magic(spec):
        found = sorted(path for path in glob.glob(spec) if os.path.isfile(path))
        if not found:
            raise MultistyleError(f"{option}: no file matches {spec!r}")
        return found
    raise MultistyleError(f"{option}: {spec!r} is neither a folder, a file nor a glob pattern that matches files")


def grid(contents: Sequence[str], styles: Sequence[Sequence[str]], backends: Sequence[str],
         **options: Any) -> List[BatchJob]:
    """Every content x style x backend, content-major (the gallery's rows)."""
    return [BatchJob(content=content, style=list(style), backend=backend, **options)
            for content in contents for style in styles for backend in backends]


def read_jobs_file(path: str) -> List[Dict[str, Any]]:
    """The rows of a ``JOBS.csv`` or ``JOBS.json``, each a dict with ``content``, ``style`` (a list of paths)
    and the other columns or keys as given, plus ``source``.  Paths (``content``, ``style``, an ``init``
    image, a ``weights`` file) are relative to the jobs file's folder.

    CSV: a header row; ``style`` may name several images, comma-separated
    (quote the cell); an empty cell means "not overridden".  JSON: a list of
    objects, or ``{"jobs": [...]}``; ``style`` a path or a list of paths.
    """
    extension = os.path.splitext(path)[1].lower()
    if extension not in (".csv", ".json"):
        raise MultistyleError(f"JOBS: expected a .csv or .json file, got {path!r}")
    if not os.path.isfile(path):
        raise MultistyleError(f"JOBS: file {path!r} does not exist")
    name = os.path.basename(path)
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise MultistyleError(f"JOBS: cannot read {path!r} ({first_line(exc)})") from None
    rows: List[Tuple[str, Dict[str, Any]]] = []
    if extension == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        for number, row in enumerate(reader, start=2):
            if None in row:
                raise MultistyleError(f"{name} row {number}: more cells than the header has columns")
            rows.append((f"{name} row {number}", {key.strip(): value.strip() for key, value in row.items()
                                                  if key and value is not None and value.strip() != ""}))
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MultistyleError(f"{name}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        entries = data.get("jobs") if isinstance(data, dict) else data
        if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
            raise MultistyleError(f"{name}: expected a list of job objects, or {{\"jobs\": [...]}}")
        rows = [(f"{name} job {number}", dict(entry)) for number, entry in enumerate(entries, start=1)]
    if not rows:
        raise MultistyleError(f"{name}: no jobs in the file")
    folder = os.path.dirname(os.path.abspath(path))
    out = []
    for source, row in rows:
        row = {key.replace("-", "_"): value for key, value in row.items()}
        for key in ("content", "style"):
            if not row.get(key):
                raise MultistyleError(f"{source}: no {key!r}; every job names a content and a style image")
        style = row["style"]
        if isinstance(style, str):
            style = [part.strip() for part in style.split(",")] if not os.path.exists(
                os.path.join(folder, style)) else [style]
        if not isinstance(style, list) or not all(isinstance(s, str) and s for s in style):
            raise MultistyleError(f"{source}: 'style' must be an image path or a list of paths")
        if not isinstance(row["content"], str):
            raise MultistyleError(f"{source}: 'content' must be an image path")
        row["content"] = os.path.join(folder, row["content"])
        row["style"] = [os.path.join(folder, s) for s in style]
        # Other files a job may name are relative to the jobs file too: a start image, a weights file.
        if isinstance(row.get("init"), str) and row["init"] not in ("content", "noise", "style"):
            row["init"] = os.path.join(folder, row["init"])
        weights = row.get("weights")
        if isinstance(weights, str) and weights.strip() != "imagenet" and not weights.strip().startswith("random"):
            row["weights"] = os.path.join(folder, weights)
        row["source"] = source
        out.append(row)
    return out


# ---------------------------------------------------------------------------
# Names, keys, sidecars

_hash_cache: Dict[Tuple[str, int, int], str] = {}


def file_sha256(path: str) -> str:
    """SHA-256 of a file's bytes (cached by path, size and modification time)."""
    stat = os.stat(path)
    cache_key = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
    if cache_key not in _hash_cache:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        _hash_cache[cache_key] = digest.hexdigest()
    return _hash_cache[cache_key]


def _size_text(size: Union[None, int, str, Tuple[int, int]]) -> str:
    if size is None:
        size = DEFAULT_SIZE
    if isinstance(size, (tuple, list)):
        return f"{int(size[0])}x{int(size[1])}"
    return str(size).strip().lower()


def _weights_identity(spec: str) -> str:
    kind, value = parse_weights_spec(spec)
    if kind == "file":
        return "file:" + file_sha256(str(value))
    return spec if kind == "imagenet" else f"random:{value}"


def job_key(job: BatchJob) -> str:
    """What the job computes, hashed: its inputs' bytes, backend, weights, size and (resolved) settings.

    The device is left out on purpose: the same job on another GPU or on the
    CPU is the same job (its result differs only by float rounding), so a
    batch moved between machines still skips what is done.
    """
    identity = {"content": file_sha256(job.content), "style": [file_sha256(path) for path in job.style],
                "backend": job.backend, "weights": _weights_identity(job.weights), "size": _size_text(job.size),
                "settings": settings_dict(job.settings.resolved()), "version": 1}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode("utf-8")).hexdigest()


def _slug(text: str, limit: int = 40) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", text).strip("-.")[:limit] or "image"


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def style_label(job: BatchJob) -> str:
    return "+".join(_stem(path) for path in job.style)


def output_name(job: BatchJob, key: str) -> str:
    """``content__style__backend_0123456789.png``: readable, and unique to what the job computes."""
    return f"{_slug(_stem(job.content))}__{_slug(style_label(job), 60)}__{job.backend}_{key[:10]}.png"


def _sidecar_path(folder: str, name: str) -> str:
    return os.path.join(folder, os.path.splitext(name)[0] + ".json")


def finished_sidecar(folder: str, name: str, key: str) -> Optional[Dict[str, Any]]:
    """The sidecar of a finished job: the image and its sidecar exist, the sidecar is this job's (its key)
    and the image is the one it describes (its checksum); else ``None``."""
    image, sidecar = os.path.join(folder, name), _sidecar_path(folder, name)
    if not (os.path.isfile(image) and os.path.isfile(sidecar)):
        return None
    try:
        with open(sidecar, encoding="utf-8") as handle:
            data = json.load(handle)
        if data.get("key") == key and data.get("output", {}).get("sha256") == file_sha256(image):
            return data
    except (OSError, ValueError, AttributeError):
        pass
    return None


# ---------------------------------------------------------------------------
# The job itself: runs in a worker (a local worker process, or a Ray worker)

_backends: Dict[Tuple[str, str], Backend] = {}
_weights: Dict[Tuple[str, str, int], LoadedWeights] = {}


def deepest_layer(settings: Settings) -> int:
    resolved = settings.resolved()
    return deepest_index(list(resolved.content_layers) + list(resolved.style_layers))  # type: ignore[arg-type]


def job_payload(job: BatchJob) -> Dict[str, Any]:
    """What a worker needs to run ``job``: plain values, picklable, no framework objects."""
    return {"content": job.content, "style": list(job.style), "backend": job.backend, "device": job.device,
            "weights": job.weights, "size": job.size, "max_pixels": job.max_pixels,
            "deterministic": job.deterministic, "settings": settings_dict(job.settings.resolved()),
            "last": deepest_layer(job.settings)}


def _cached_backend(name: str, device: str) -> Backend:
    if (name, device) not in _backends:
        _backends[name, device] = get_backend(name, device)
    return _backends[name, device]


def _cached_weights(backend: Backend, spec: str, last: int) -> Tuple[LoadedWeights, bool]:
    """``(weights, reused)``: read once per worker and reused; a deeper job reads them again, deeper."""
    owner = _weights_owner({"backend": backend.name, "weights": spec})[0]
    for (cached_owner, cached_spec, cached_last), loaded in _weights.items():
        if (cached_owner, cached_spec) == (owner, spec) and cached_last >= last:
            return loaded, True
    loaded = _weights[owner, spec, last] = load_weights(spec, backend, last)
    return loaded, False


def execute(payload: Dict[str, Any], loaded: Union[None, str, LoadedWeights] = None,
            content_data: Optional[bytes] = None, *style_data: bytes) -> Dict[str, Any]:
    """Run one job in this process; return ``{"status": "done", "image": ..., ...}`` or
    ``{"status": "failed", "reason": "one line"}``.

    ``loaded``: weights read elsewhere (Ray's object store), or an error
    message from reading them.  ``content_data``/``style_data``: the images'
    bytes where the files are not on this machine.
    """
    started = time.perf_counter()
    try:
        if isinstance(loaded, str):
            raise MultistyleError(loaded)
        limit = payload["max_pixels"]
        content = images.load_image(payload["content"], "--content", limit, data=content_data)
        datas = list(style_data) or [None] * len(payload["style"])
        styles = [images.load_image(path, "--style", limit, data=data) for path, data in zip(payload["style"], datas)]
        backend = _cached_backend(payload["backend"], payload["device"])
        reused = loaded is not None  # read elsewhere (Ray's object store)
        if loaded is None:
            loaded, reused = _cached_weights(backend, payload["weights"], payload["last"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UntrainedWeightsWarning)
            result = transfer(content, styles, backend=backend, weights=loaded, size=payload["size"],
                              settings=Settings(**payload["settings"]), max_pixels=limit,
                              deterministic=payload["deterministic"], callback=_fault_injection(payload))
    except MultistyleError as exc:
        return {"status": "failed", "reason": str(exc)}
    except Exception as exc:  # the framework failed on this job (out of device memory, ...): the batch goes on
        return {"status": "failed", "reason": f"{type(exc).__name__}: {first_line(exc)}".rstrip(": ")}
    return {"status": "done", "image": result.image, "history": result.history, "backend": result.backend,
            "device": result.device, "framework": result.framework_version, "weights": result.weights,
            "untrained": result.untrained, "size": list(result.size), "stopped": result.stopped,
            "seconds": time.perf_counter() - started, "host": platform.node(), "pid": os.getpid(),
            "weights_reused": reused}


def _fault_injection(payload: Dict[str, Any]) -> Optional[Callable[..., None]]:
    """For the tests of retries: ``payload["kill_once"]`` names a marker file; the first worker to run
    an epoch of this job creates it and kills its own process with SIGKILL, as an out-of-memory kill
    would; the retry finds the marker and runs to the end."""
    marker = payload.get("kill_once")
    if not marker:
        return None

    def callback(record: Dict[str, float], image: Callable[[], np.ndarray]) -> None:
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
        os.kill(os.getpid(), signal.SIGKILL)

    return callback


# ---------------------------------------------------------------------------
# The local engine: a pool of worker processes

def _worker_main(connection: Any, device: Optional[str], threads: Optional[int]) -> None:
    """A local worker: runs jobs sent over ``connection`` until it receives ``None``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if threads:  # before any framework import: they read it once
        os.environ["OMP_NUM_THREADS"] = str(threads)
    while True:
        try:
            payload = connection.recv()
        except EOFError:
            return
        if payload is None:
            return
        if device and payload["device"] in ("auto", "gpu"):
            payload = dict(payload, device=device)
        connection.send(execute(payload))


class _Worker:
    def __init__(self, context: Any, device: Optional[str], threads: Optional[int]) -> None:
        self.connection, child = context.Pipe()
        self.process = context.Process(target=_worker_main, args=(child, device, threads), daemon=True)
        self.process.start()
        child.close()
        self.index: Optional[int] = None  # the job it holds


def gpu_count() -> int:
    """NVIDIA GPUs on this machine, without importing a framework (``nvidia-smi -L``); 0 without one."""
    import shutil
    import subprocess

    tool = shutil.which("nvidia-smi")
    if tool is None:
        return 0
    try:
        listed = subprocess.run([tool, "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in listed.splitlines() if line.startswith("GPU "))


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def worker_plan(workers: Optional[int], gpus: int, cores: int) -> Tuple[int, List[Optional[str]], Optional[int]]:
    """``(workers, device of each worker, OpenMP threads per worker)``.

    Default: one worker per GPU, each pinned to its GPU (jobs asking for
    ``auto`` or ``gpu``); on a CPU-only machine one worker, since a job
    already uses every core.  Several CPU workers share the cores evenly,
    unless ``OMP_NUM_THREADS`` is set.
    """
    count = workers if workers is not None else max(1, gpus)
    devices: List[Optional[str]] = [f"gpu:{i % gpus}" if gpus else None for i in range(count)]
    threads = None
    if not gpus and count > 1 and "OMP_NUM_THREADS" not in os.environ:
        threads = max(1, cores // count)
    return count, devices, threads


Done = Callable[[int, Dict[str, Any], Optional[int]], None]


def run_local(payloads: Dict[int, Dict[str, Any]], plan: Tuple[int, List[Optional[str]], Optional[int]],
              retries: int, on_done: Done) -> None:
    """Run the jobs on a pool of worker processes (``plan``: :func:`worker_plan`); call ``on_done(index,
    result, attempts)`` as each ends."""
    count, devices, threads = plan
    context = multiprocessing.get_context("spawn")
    pending: Deque[int] = deque(payloads)
    deaths: Dict[int, int] = {index: 0 for index in payloads}
    pool: List[_Worker] = []
    try:
        while pending or any(worker.index is not None for worker in pool):
            for slot in range(count):
                if not pending:
                    break
                if slot == len(pool):
                    pool.append(_Worker(context, devices[slot], threads))
                worker = pool[slot]
                if worker.index is None:
                    worker.index = pending.popleft()
                    worker.connection.send(payloads[worker.index])
            busy = [worker for worker in pool if worker.index is not None]
            ready = set(wait_for([w.connection for w in busy] + [w.process.sentinel for w in busy]))
            for slot, worker in enumerate(pool):
                if worker.index is None or not ({worker.connection, worker.process.sentinel} & ready):
                    continue
                index, result = worker.index, None
                try:
                    if worker.connection.poll():
                        result = worker.connection.recv()
                except (EOFError, OSError):
                    result = None
                if result is not None:
                    worker.index = None
                    on_done(index, result, deaths[index] + 1)
                    continue
                if worker.process.is_alive():
                    continue  # woken by something else; the worker is still on its job
                worker.process.join()
                code = worker.process.exitcode
                deaths[index] += 1
                worker.connection.close()
                pool[slot] = _Worker(context, devices[slot], threads)
                if deaths[index] <= retries:
                    pending.appendleft(index)
                else:
                    on_done(index, {"status": "failed", "reason": f"its worker process died {deaths[index]} "
                                    f"times ({_exit_text(code)}); the last of {retries + 1} attempts"},
                            deaths[index])
    except BaseException:  # Ctrl-C, or a bug here: the workers stop now, mid-job
        for worker in pool:
            worker.process.kill()
        for worker in pool:
            worker.process.join()
        raise
    for worker in pool:
        try:
            worker.connection.send(None)
        except OSError:
            pass
    for worker in pool:
        worker.process.join(timeout=30)
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join()


def _exit_text(code: Optional[int]) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


# ---------------------------------------------------------------------------
# The Ray engine

def _load_remote(backend: str, spec: str, last: int) -> Union[str, LoadedWeights]:
    """A Ray task: read the weights that need a framework (model zoo, native checkpoint) once, on the cluster."""
    try:
        return load_weights(spec, get_backend(backend, "cpu"), last)
    except MultistyleError as exc:
        return str(exc)


def _ray_error(exc: BaseException, retries: int) -> str:
    name = type(exc).__name__
    if "Crashed" in name or "Died" in name or "NodeDied" in name or "Unavailable" in name:
        return f"its Ray worker died ({name}) on each of {retries + 1} attempts"
    return f"Ray: {name}: {first_line(exc)}".rstrip(": ")


@contextlib.contextmanager
def ray_connection(address: Optional[str], num_cpus: Optional[float], num_gpus: Optional[float]
                   ) -> Iterator[Tuple[Any, float, float, str]]:
    """Connect to ``address`` (or use the Ray this process already runs, or start a local one) and check
    the resources each job asks for; yields ``(ray, cpus, gpus, description)``.  Disconnects at the end
    from a Ray it connected to or started (a cluster keeps running)."""
    try:
        import ray
    except ImportError:
        raise MultistyleError("--engine ray needs Ray: pip install 'multistyle[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        _probe(address)
        try:
            with _quiet_stderr():  # Ray's C++ client prints a line per failed attempt while it connects
                ray_init(ray, address=address, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        except Exception as exc:  # Ray raises ConnectionError, RuntimeError or ValueError for a bad address
            where = f"the Ray cluster at {address!r}" if address else "a local Ray"
            hint = ""
            if address and address != "auto" and not os.environ.get("RAY_AUTH_MODE"):
                # Ray turns token authentication on by default, but never for an explicit address.
                hint = ("; if the cluster uses token authentication (Ray's default), export RAY_AUTH_MODE=token "
                        "with its token in ~/.ray/auth_token or RAY_AUTH_TOKEN")
            raise MultistyleError(f"--ray-address: cannot connect to {where} ({first_line(exc)}){hint}") from None
    try:
        resources = ray.cluster_resources()
        gpus = num_gpus if num_gpus is not None else (1 if resources.get("GPU", 0) >= 1 else 0)
        cpus = num_cpus if num_cpus is not None else 1
        for option, asked, kind in (("--num-cpus", cpus, "CPU"), ("--num-gpus", gpus, "GPU")):
            if asked < 0 or asked > resources.get(kind, 0):
                raise MultistyleError(f"{option}: each job asks for {asked:g} {kind}s but the Ray cluster has "
                                      f"{resources.get(kind, 0):g}; give a number from 0 to that")
        yield ray, cpus, gpus, (f"Ray {ray.__version__}, {resources.get('CPU', 0):g} CPUs, "
                                f"{resources.get('GPU', 0):g} GPUs; {cpus:g} CPU and {gpus:g} GPU per job")
    finally:
        if started_here:
            ray.shutdown()


def ray_init(ray: Any, **options: Any) -> None:
    """``ray.init(**options)`` from the folder that holds this installed ``multistyle`` package.

    Ray puts the driver's current directory first on every worker's
    ``sys.path``.  Run from a source checkout, that directory's
    ``multistyle/`` (the core without ``multistyle.backends``, which the
    install maps from ``backends/``) would shadow the installed package in
    the workers; from the installed package's own parent folder it is the
    installed package itself.
    """
    here = os.getcwd()
    os.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        ray.init(**options)
    finally:
        os.chdir(here)


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Send file descriptor 2 (where C++ libraries log) to a temporary file for the block."""
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def _probe(address: Optional[str]) -> None:
    """Refuse at once an address where nothing listens: Ray itself retries for minutes."""
    if not address or address == "auto":
        return
    match = re.match(r"^(?:ray://)?\[?([^\]/]+?)\]?:(\d+)$", address)
    if not match:
        raise MultistyleError(f"--ray-address: expected HOST:PORT, ray://HOST:PORT or auto, got {address!r}")
    import socket

    try:
        socket.create_connection((match.group(1), int(match.group(2))), timeout=10).close()
    except OSError as exc:
        raise MultistyleError(f"--ray-address: nothing answers at {address!r} ({exc.strerror or exc}); is the "
                              f"cluster up (ray start --head)?") from None


def run_ray(ray: Any, payloads: Dict[int, Dict[str, Any]], cpus: float, gpus: float, retries: int,
            on_done: Done) -> None:
    """Run each job as a Ray task on the connected cluster; call ``on_done`` as each ends."""
    run = ray.remote(execute).options(num_cpus=cpus, num_gpus=gpus, max_retries=retries, retry_exceptions=False)
    load = ray.remote(_load_remote).options(num_cpus=min(1, cpus), num_gpus=0, max_retries=retries)
    # Weights and images go into the object store once; every job gets references, not copies.
    deepest: Dict[Tuple[str, str], int] = {}
    for payload in payloads.values():
        owner = _weights_owner(payload)
        deepest[owner] = max(deepest.get(owner, 0), payload["last"])
    weights = {}
    for (backend, spec), last in deepest.items():
        if backend:  # the model zoo or a native checkpoint: read by the framework, on the cluster
            weights[backend, spec] = load.remote(backend, spec, last)
        else:  # random or .npz: read here, no framework needed
            try:
                weights[backend, spec] = ray.put(load_weights(spec, None, last))
            except MultistyleError as exc:
                weights[backend, spec] = ray.put(str(exc))
    files: Dict[str, Any] = {}

    def image_ref(path: str) -> Any:
        if path not in files:
            try:
                with open(path, "rb") as handle:
                    files[path] = ray.put(handle.read())
            except OSError:
                files[path] = ray.put(b"")  # the worker reports it, as it would any unreadable image
        return files[path]

    futures = {}
    for index, payload in payloads.items():
        futures[run.remote(payload, weights[_weights_owner(payload)], image_ref(payload["content"]),
                           *[image_ref(path) for path in payload["style"]])] = index
    try:
        while futures:
            finished, _ = ray.wait(list(futures), num_returns=1)
            for ref in finished:
                index = futures.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as exc:  # the task could not complete: its workers died on every attempt
                    result = {"status": "failed", "reason": _ray_error(exc, retries)}
                on_done(index, result, None)
    except BaseException:  # Ctrl-C: the cluster stops this batch's tasks
        for ref in futures:
            ray.cancel(ref, force=True)
        raise


def _weights_owner(payload: Dict[str, Any]) -> Tuple[str, str]:
    """``(backend, spec)`` for weights only that backend's framework can read; ``("", spec)`` otherwise."""
    spec = payload["weights"]
    kind, _ = parse_weights_spec(spec)
    native = kind == "imagenet" or (kind == "file" and not spec.lower().endswith(".npz"))
    return (payload["backend"] if native else "", spec)


# ---------------------------------------------------------------------------
# The batch: plan, skip, run, record

@dataclass
class _Entry:
    index: int
    job: BatchJob
    key: str = ""
    name: str = ""
    status: str = "pending"  # pending, done, skipped, failed, interrupted
    reason: str = ""
    attempts: Optional[int] = None
    sidecar: Optional[Dict[str, Any]] = None


def run_batch(jobs: Sequence[BatchJob], output: str, *, engine: str = "local", workers: Optional[int] = None,
              retries: int = 2, ray_address: Optional[str] = None, num_cpus: Optional[float] = None,
              num_gpus: Optional[float] = None, progress: bool = False, command: str = "",
              notice: str = "", _kill_once: Optional[Dict[int, str]] = None) -> Dict[str, Any]:
    """Run ``jobs`` into the folder ``output``; return the summary and one row per job (``results.json``).

    Skips the jobs already done there; writes each result and its sidecar as
    it finishes, then ``results.json``, ``results.csv`` and ``index.html``.
    ``notice`` is printed to stderr once every check has passed (the CLI's
    warning about untrained weights: a mistake stays the only line printed).
    ``_kill_once`` (tests only) maps job indexes to marker files: see
    :func:`_fault_injection`.
    """
    if engine not in ENGINES:
        raise MultistyleError(f"--engine: expected one of {', '.join(ENGINES)}, got {engine!r}")
    if retries < 0:
        raise MultistyleError(f"--retries: expected 0 or more, got {retries}")
    if workers is not None and workers < 1:
        raise MultistyleError(f"--workers: expected 1 or more, got {workers}")
    if not jobs:
        raise MultistyleError("no jobs to run")
    if os.path.exists(output) and not os.path.isdir(output):
        raise MultistyleError(f"--output: {output!r} is a file; batch writes a folder")
    started = time.perf_counter()
    entries = [_Entry(index, job) for index, job in enumerate(jobs)]
    payloads: Dict[int, Dict[str, Any]] = {}
    for entry in entries:
        try:
            entry.key = job_key(entry.job)
        except OSError as exc:  # an input that cannot be read at all: this job fails, the others go on
            entry.status, entry.reason = "failed", _unreadable(entry.job, exc)
            continue
        entry.name = output_name(entry.job, entry.key)
        entry.sidecar = finished_sidecar(output, entry.name, entry.key)
        if entry.sidecar is not None:
            entry.status = "skipped"
            continue
        payloads[entry.index] = job_payload(entry.job)
        if _kill_once and entry.index in _kill_once:
            payloads[entry.index]["kill_once"] = _kill_once[entry.index]
    used = ""  # what ran the jobs, for the summary
    with contextlib.ExitStack() as stack:
        if engine == "ray" and payloads:  # connect (or fail) before anything is written
            ray, cpus, gpus, cluster = stack.enter_context(ray_connection(ray_address, num_cpus, num_gpus))
        try:
            os.makedirs(output, exist_ok=True)
        except OSError as exc:
            raise MultistyleError(f"--output: cannot create folder {output!r} ({exc.strerror or exc})") from None
        images.check_writable(os.path.join(output, "results.json"), "--output")
        if notice:
            print(notice, file=sys.stderr, flush=True)
        bar = _JobsBar(len(entries), entries, enabled=progress)

        def on_done(index: int, result: Dict[str, Any], attempts: Optional[int]) -> None:
            entry = entries[index]
            entry.attempts = attempts
            if result["status"] == "done":
                entry.sidecar = _write_result(output, entry, result)
                entry.status = "done"
            else:
                entry.status, entry.reason = "failed", result["reason"]
                bar.write(f"batch: failed: {_describe(entry.job)}: {entry.reason}")
            bar.advance()

        try:
            if payloads and engine == "local":
                gpus, cores = gpu_count(), usable_cores()  # nvidia-smi runs once
                plan = worker_plan(min(worker_plan(workers, gpus, cores)[0], len(payloads)), gpus, cores)
                used = f"local, {plan[0]} worker{'s' if plan[0] > 1 else ''}"
                run_local(payloads, plan, retries, on_done)
            elif payloads:
                used = "ray: " + cluster
                run_ray(ray, payloads, cpus, gpus, retries, on_done)
        except BaseException:
            for entry in entries:
                if entry.status == "pending":
                    entry.status, entry.reason = "interrupted", "the batch stopped before this job ended"
            raise
        finally:
            bar.close()
            summary = _finish(output, entries, engine, used, time.perf_counter() - started, command)
    return summary


def _unreadable(job: BatchJob, exc: OSError) -> str:
    path = exc.filename or job.content
    option = "--content" if path == job.content else ("--style" if path in job.style else "--weights")
    if isinstance(exc, FileNotFoundError):
        return f"{option}: file {path!r} does not exist"
    return f"{option}: cannot read {path!r} ({exc.strerror or exc})"


def _describe(job: BatchJob) -> str:
    return f"{_stem(job.content)} x {style_label(job)} on {job.backend}" + (f" ({job.source})" if job.source else "")


def _versions(framework: str) -> Dict[str, str]:
    from PIL import __version__ as pillow

    return {"multistyle": __version__, "framework": framework, "python": platform.python_version(),
            "numpy": np.__version__, "pillow": pillow}


def _write_result(folder: str, entry: _Entry, result: Dict[str, Any]) -> Dict[str, Any]:
    """The image, then its sidecar, each atomically: a sidecar exists only beside a complete image."""
    image_path = os.path.join(folder, entry.name)
    images.save_image(result["image"], image_path)
    job, history = entry.job, result["history"]
    seconds = [row["seconds"] for row in history]
    sidecar = {
        "key": entry.key,
        "output": {"file": entry.name, "sha256": file_sha256(image_path)},
        "job": {"content": job.content, "style": list(job.style), "backend": job.backend, "device": job.device,
                "weights": job.weights, "size": _size_text(job.size), "source": job.source,
                "settings": settings_dict(job.settings.resolved())},
        "inputs": {"content_sha256": file_sha256(job.content), "style_sha256": [file_sha256(p) for p in job.style]},
        "result": {"backend": result["backend"], "device": result["device"], "weights": result["weights"],
                   "untrained": result["untrained"], "size": result["size"], "epochs": len(history),
                   "stopped": result["stopped"], "final": {k: history[-1][k] for k in ("content", "style", "tv", "total")}},
        "timings": {"seconds": result["seconds"], "optimisation_seconds": sum(seconds),
                    "median_seconds_per_iteration": float(np.median(seconds[1:] or seconds)),
                    "host": result["host"], "pid": result["pid"], "weights_reused": result["weights_reused"]},
        "versions": _versions(result["framework"]),
        "history": history,
    }
    with images.atomic_write(_sidecar_path(folder, entry.name)) as handle:
        handle.write(json.dumps(sidecar, indent=2).encode("utf-8"))
    return sidecar


def _row(entry: _Entry) -> Dict[str, Any]:
    job, sidecar = entry.job, entry.sidecar or {}
    finished = entry.status in ("done", "skipped")
    result = sidecar.get("result", {})
    return {"index": entry.index, "status": entry.status, "content": job.content, "style": ",".join(job.style),
            "backend": job.backend, "output": entry.name if finished else "",
            "sidecar": os.path.basename(_sidecar_path("", entry.name)) if finished else "",
            "reason": entry.reason, "attempts": entry.attempts,
            "seconds": sidecar.get("timings", {}).get("seconds") if finished else None,
            "epochs": result.get("epochs"), "final_loss": result.get("final", {}).get("total"),
            "device": result.get("device", ""), "key": entry.key}


class _JobsBar:
    """A progress bar over jobs (tqdm): done, failed and skipped counts, and the ETA of what is left."""

    def __init__(self, total: int, entries: List[_Entry], enabled: bool) -> None:
        self.entries, self.bar = entries, None
        if enabled:
            from tqdm import tqdm

            skipped = sum(entry.status in ("skipped", "failed") for entry in entries)
            self.bar = tqdm(total=total, initial=skipped, desc="batch", unit="job", file=sys.stderr,
                            dynamic_ncols=True, leave=True)
            self._postfix()

    def _postfix(self) -> None:
        counts = {status: sum(entry.status == status for entry in self.entries)
                  for status in ("done", "failed", "skipped")}
        self.bar.set_postfix(counts, refresh=True)  # type: ignore[union-attr]

    def advance(self) -> None:
        if self.bar is not None:
            self._postfix()
            self.bar.update(1)

    def write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _finish(folder: str, entries: List[_Entry], engine: str, used: str, seconds: float,
            command: str) -> Dict[str, Any]:
    rows = [_row(entry) for entry in entries]
    counts = {status: sum(row["status"] == status for row in rows)
              for status in ("done", "skipped", "failed", "interrupted")}
    summary = {"jobs": len(rows), **counts, "seconds": seconds, "engine": engine, "ran_on": used,
               "command": command, "multistyle": __version__}
    with images.atomic_write(os.path.join(folder, "results.json")) as handle:
        handle.write(json.dumps({"summary": summary, "jobs": rows}, indent=2).encode("utf-8"))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(RESULTS_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if row[key] is None else row[key] for key in RESULTS_COLUMNS})
    with images.atomic_write(os.path.join(folder, "results.csv")) as handle:
        handle.write(buffer.getvalue().encode("utf-8"))
    gallery.write(folder, [(entry.job, row) for entry, row in zip(entries, rows)], summary)
    return {"summary": summary, "jobs": rows}
