"""The job itself, run in a worker (a local worker process, or a Ray task); backends and weights kept per process."""

from __future__ import annotations

import os
import platform
import signal
import tempfile
import time
import warnings
from typing import Any, Callable, Dict, Optional, Tuple, Union

import numpy as np

from .. import images
from ..backend import Backend, get_backend
from ..errors import MultistyleError, first_line
from ..settings import Settings
from ..transfer import UntrainedWeightsWarning, transfer
from ..vgg import parse_weights_spec
from ..weightfiles import LoadedWeights, load_weights

_backends: Dict[Tuple[str, str], Backend] = {}
_weights: Dict[Tuple[str, str, int], LoadedWeights] = {}


def _cached_backend(name: str, device: str) -> Backend:
    if (name, device) not in _backends:
        _backends[name, device] = get_backend(name, device)
    return _backends[name, device]


def _cached_weights(backend: Backend, spec: str, last: int) -> Tuple[LoadedWeights, bool]:
    """``(weights, reused)``: read once per worker and reused; a deeper job reads them again, deeper."""
    owner = weights_owner({"backend": backend.name, "weights": spec})[0]
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
        if payload.get("clip"):
            return _clip_job(payload, loaded, content_data, style_data, started)
        content = images.load_image(payload["content"], "--content", limit, data=content_data)
        if payload.get("model"):
            return _one_pass(payload, content, style_data[0] if style_data else None, started)
        if payload.get("network"):
            return _adain_pass(payload, content, loaded, style_data, started)
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
                              deterministic=payload["deterministic"], callback=fault_injection(payload))
    except MultistyleError as exc:
        return {"status": "failed", "reason": str(exc)}
    except Exception as exc:  # the framework failed on this job (out of device memory, ...): the batch goes on
        return {"status": "failed", "reason": f"{type(exc).__name__}: {first_line(exc)}".rstrip(": ")}
    return {"status": "done", "image": result.image, "history": result.history, "backend": result.backend,
            "device": result.device, "framework": result.framework_version, "weights": result.weights,
            "untrained": result.untrained, "size": list(result.size), "stopped": result.stopped,
            "seconds": time.perf_counter() - started, "host": platform.node(), "pid": os.getpid(),
            "weights_reused": reused}


def _one_pass(payload: Dict[str, Any], content: Any, data: Optional[bytes], started: float) -> Dict[str, Any]:
    """A ``batch --model`` job: the network (the job's style entry, or its bytes from Ray's object store) on the
    content, in one pass."""
    from ..nets.files import StyleNetwork
    from ..nets.stylize import stylize

    with tempfile.TemporaryDirectory() as folder:
        network = StyleNetwork.load(_local_file(payload["style"][0], data, folder), "--model")
    backend = _cached_backend(payload["backend"], payload["device"])
    result = stylize(network, content, backend=backend, size=payload["size"], max_pixels=payload["max_pixels"],
                     preserve_color=payload["settings"].get("preserve_color", "none"))
    return {"status": "done", "image": result.image, "history": [], "backend": result.backend,
            "device": result.device, "framework": backend.framework_version(), "weights": "",
            "untrained": False, "size": list(result.size), "stopped": "", "seconds": time.perf_counter() - started,
            "host": platform.node(), "pid": os.getpid(), "weights_reused": False}


def _local_file(path: str, data: Optional[bytes], folder: str) -> str:
    """``path`` where it is on this machine; else ``data`` (its bytes, from Ray's object store) written into
    ``folder`` under the same name."""
    if data is None or os.path.exists(path):
        return path
    local = os.path.join(folder, os.path.basename(os.path.normpath(path)))
    with open(local, "wb") as handle:
        handle.write(data)
    return local


def _clip_job(payload: Dict[str, Any], loaded: Any, content_data: Optional[bytes], style_data: Tuple[bytes, ...],
              started: float) -> Dict[str, Any]:
    """A clip's job (``multistyle video``'s, from a batch): every frame, in order, into ``payload["output"]``,
    each frame on disk as it ends (a retry continues from the first missing one), then the video.  Its bytes
    are sent back as well when the batch asks (``return_video``: a Ray node may not share the batch's folder)."""
    from ..video.frames import Clip

    frames: list = []
    kill = fault_injection(payload)

    def on_frame(record: Dict[str, float]) -> None:
        frames.append(dict(record))
        if kill is not None:
            kill(record, lambda: np.zeros(0))

    backend = _cached_backend(payload["backend"], payload["device"])
    limit, settings = payload["max_pixels"], payload["settings"]
    common = dict(backend=backend, flow_preset=payload["flow_preset"], callback=on_frame)
    with tempfile.TemporaryDirectory() as folder:
        clip = Clip(_local_file(payload["content"], content_data or None, folder), "--contents", payload["fps"])
        datas = list(style_data) or [None] * len(payload["style"])
        if payload.get("model"):
            from ..video.fast import stylize_clip

            done = stylize_clip(_local_file(payload["style"][0], datas[0], folder), clip, payload["output"],
                                temporal=payload["temporal"], preserve_color=settings["preserve_color"], **common)
            weights, untrained = "", False
        else:
            styles = [images.load_image(path, "--style", limit, data=data)
                      for path, data in zip(payload["style"], datas)]
            if payload.get("network"):
                from ..video.fast import stylize_clip

                network = loaded if loaded is not None else _adain_network(payload)
                done = stylize_clip(network, clip, payload["output"], style=styles, alpha=payload["alpha"],
                                    temporal=payload["temporal"], preserve_color=settings["preserve_color"],
                                    content_masks=settings["content_masks"], **common)
                weights, untrained = network.metadata["encoder"], network.untrained
            else:
                from ..video.coherent import stylize_clip_coherent

                if loaded is None:
                    loaded, _ = _cached_weights(backend, payload["weights"], payload["last"])
                done = stylize_clip_coherent(clip, styles, payload["output"], weights=loaded, size=payload["size"],
                                             settings=Settings(**settings),
                                             start_from_previous=payload["start"] == "previous",
                                             temporal_weight=payload["temporal_weight"],
                                             long_term=payload.get("long_term"), **common)
                weights, untrained = loaded.label, loaded.untrained
    video = None
    if payload.get("return_video"):
        with open(payload["output"], "rb") as handle:
            video = handle.read()
    return {"status": "done", "image": None, "video": video, "history": frames, "backend": backend.name,
            "device": backend.device, "framework": backend.framework_version(), "weights": weights,
            "untrained": untrained, "size": list(done["size"]), "frames": done["frames"], "fps": str(done["fps"]),
            "resumed_from": done["resumed_from"], "stopped": "", "seconds": time.perf_counter() - started,
            "host": platform.node(), "pid": os.getpid(), "weights_reused": False}


_networks: Dict[Tuple[str, str], Any] = {}


def _adain_pass(payload: Dict[str, Any], content: Any, network: Any, style_data: Tuple[bytes, ...],
                started: float) -> Dict[str, Any]:
    """A ``batch --model`` job of an AdaIN network: the network (read here once per worker, or sent by Ray's
    object store) with the job's style images, in one pass."""
    from ..nets.stylize import stylize

    if network is None:
        network = _adain_network(payload)
    limit = payload["max_pixels"]
    datas = list(style_data) or [None] * len(payload["style"])
    styles = [images.load_image(path, "--style", limit, data=data) for path, data in zip(payload["style"], datas)]
    settings = payload["settings"]
    backend = _cached_backend(payload["backend"], payload["device"])
    result = stylize(network, content, style=styles, backend=backend, size=payload["size"], max_pixels=limit,
                     preserve_color=settings["preserve_color"], alpha=payload["alpha"],
                     style_blend=settings["style_blend"], content_masks=settings["content_masks"],
                     style_scale=settings["style_scale"])
    return {"status": "done", "image": result.image, "history": [], "backend": result.backend,
            "device": result.device, "framework": backend.framework_version(),
            "weights": network.metadata["encoder"], "untrained": network.untrained, "size": list(result.size),
            "stopped": "", "seconds": time.perf_counter() - started, "host": platform.node(), "pid": os.getpid(),
            "weights_reused": False}


def _adain_network(payload: Dict[str, Any]) -> Any:
    """The job's AdaIN network, read once per worker."""
    from ..nets.stylize import load_model

    key = (payload["network"], payload["weights"])
    if key not in _networks:
        _networks[key] = load_model(payload["network"], payload["weights"])
    return _networks[key]


def fault_injection(payload: Dict[str, Any]) -> Optional[Callable[..., None]]:
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


def weights_owner(payload: Dict[str, Any]) -> Tuple[str, str]:
    """``(backend, spec)`` for weights only that backend's framework can read; ``("", spec)`` otherwise."""
    spec = payload["weights"]
    kind, _ = parse_weights_spec(spec)
    native = kind == "imagenet" or (kind == "file" and not spec.lower().endswith(".npz"))
    return (payload["backend"] if native else "", spec)


