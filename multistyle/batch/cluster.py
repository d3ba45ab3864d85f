"""The Ray engine: each job a Ray task; weights and images go into Ray's object store once.

Ray is imported only here, and only when this engine is used.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from typing import Any, Dict, Iterator, Optional, Tuple, Union

from ..backend import get_backend
from ..errors import MultistyleError, first_line
from ..weightfiles import LoadedWeights, load_weights
from .local import Done
from .worker import execute, weights_owner

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
    os.chdir(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
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
    networks: Dict[Tuple[str, str], Any] = {}
    for payload in payloads.values():
        if payload.get("network"):  # an AdaIN network: read here once, sent through the object store
            key = (payload["network"], payload["weights"])
            if key not in networks:
                from ..nets.stylize import load_model

                try:
                    networks[key] = ray.put(load_model(*key))
                except MultistyleError as exc:
                    networks[key] = ray.put(str(exc))
            continue
        if payload.get("model"):  # a style network's pass reads no VGG-19
            continue
        owner = weights_owner(payload)
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
        if payload.get("clip"):  # a node may not share the batch's folder: the video comes back as bytes
            payload = dict(payload, return_video=True)
        loaded = (networks[payload["network"], payload["weights"]] if payload.get("network") else
                  weights.get(weights_owner(payload)))
        futures[run.remote(payload, loaded, image_ref(payload["content"]),
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


