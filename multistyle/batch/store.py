"""A batch's folder: job keys and output names, sidecars, and the results files (JSON, CSV, the gallery).

Each job's output name comes from what it computes: its inputs' bytes, its
backend, weights, size and settings, hashed (:func:`job_key`), behind a
readable stem.  The image and a JSON sidecar are written atomically, image
first, so a job counts as done only once both exist and the sidecar names the
image's checksum.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import platform
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from .. import __version__, gallery, images
from ..settings import DEFAULT_SIZE, settings_dict
from ..vgg import parse_weights_spec
from .jobs import BatchJob

RESULTS_COLUMNS = ("index", "status", "content", "style", "backend", "output", "sidecar", "reason", "attempts",
                   "seconds", "epochs", "final_loss", "device", "key")

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


#: Settings that 0.1.0 did not have, each with the value at which a job computes what 0.1.0 computed: left out of
#: the key at that value, so that a batch run by 0.1.0 skips what it finished after an upgrade.
NEWER_SETTINGS = {"style_loss": "gram", "content_masks": None}


def job_key(job: BatchJob) -> str:
    """What the job computes, hashed: its inputs' bytes, backend, weights, size and (resolved) settings.

    The device is left out on purpose: the same job on another GPU or on the
    CPU is the same job (its result differs only by float rounding), so a
    batch moved between machines still skips what is done.
    """
    content = clip_sha256(job.content) if job.clip else file_sha256(job.content)
    if job.model:  # one pass of a network: the file (the style entry), the backend and the size are all it reads
        identity = {"content": content, "model": file_sha256(job.style[0]), "backend": job.backend,
                    "size": "content" if job.size is None else _size_text(job.size), "version": 1}
    elif job.network:  # one pass of an AdaIN network: its file (and a decoder's encoder), the styles, the controls
        resolved = job.settings.resolved()
        masks = resolved.content_masks
        identity = {"content": content, "style": [file_sha256(path) for path in job.style],
                    "network": file_sha256(job.network), "backend": job.backend, "alpha": job.alpha,
                    "encoder": "" if job.network.lower().endswith(".safetensors") else _weights_identity(job.weights),
                    "size": "content" if job.size is None else _size_text(job.size),
                    "controls": {"style_blend": resolved.style_blend, "style_scale": resolved.style_scale,
                                 "preserve_color": resolved.preserve_color,
                                 "content_masks": masks and [file_sha256(path) for path in masks]},
                    "version": 1}
    else:
        settings = settings_dict(job.settings.resolved())
        for name, before in NEWER_SETTINGS.items():
            if settings[name] == before:
                del settings[name]
        if settings.get("content_masks"):  # the masks' bytes, not where they are
            settings["content_masks"] = [file_sha256(path) for path in settings["content_masks"]]
        identity = {"content": content, "style": [file_sha256(path) for path in job.style],
                    "backend": job.backend, "weights": _weights_identity(job.weights), "size": _size_text(job.size),
                    "settings": settings, "version": 1}
    if job.clip:  # a clip's job: its frames' job, and what holds them together
        identity["clip"] = job.video_options
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode("utf-8")).hexdigest()


def clip_sha256(path: str) -> str:
    """SHA-256 of a clip: a video file's bytes, or a folder's frames (their names, in order, and bytes)."""
    if not os.path.isdir(path):
        return file_sha256(path)
    from ..video.frames import Clip

    digest = hashlib.sha256()
    for frame in Clip(path, "--contents").files or []:
        digest.update(f"{os.path.basename(frame)}\0{file_sha256(frame)}\n".encode("utf-8"))
    return digest.hexdigest()


def _slug(text: str, limit: int = 40) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", text).strip("-.")[:limit] or "image"


def stem(path: str) -> str:
    return os.path.splitext(os.path.basename(os.path.normpath(path)))[0]


def style_label(job: BatchJob) -> str:
    return "+".join(stem(path) for path in job.style)


def output_name(job: BatchJob, key: str) -> str:
    """``content__style__backend_0123456789.png``: readable, and unique to what the job computes.  A clip's is a
    video: its own extension where multistyle writes it, else ``.mp4`` (a folder of frames, say)."""
    extension = ".png"
    if job.clip:
        from ..video.frames import CODECS

        extension = os.path.splitext(os.path.normpath(job.content))[1].lower()
        extension = extension if extension in CODECS else ".mp4"
    return f"{_slug(stem(job.content))}__{_slug(style_label(job), 60)}__{job.backend}_{key[:10]}{extension}"


def sidecar_path(folder: str, name: str) -> str:
    return os.path.join(folder, os.path.splitext(name)[0] + ".json")


def finished_sidecar(folder: str, name: str, key: str) -> Optional[Dict[str, Any]]:
    """The sidecar of a finished job: the image and its sidecar exist, the sidecar is this job's (its key)
    and the image is the one it describes (its checksum); else ``None``."""
    image, sidecar = os.path.join(folder, name), sidecar_path(folder, name)
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


@dataclass
class Entry:
    index: int
    job: BatchJob
    key: str = ""
    name: str = ""
    status: str = "pending"  # pending, done, skipped, failed, interrupted
    reason: str = ""
    attempts: Optional[int] = None
    sidecar: Optional[Dict[str, Any]] = None


def _versions(framework: str) -> Dict[str, str]:
    from PIL import __version__ as pillow

    return {"multistyle": __version__, "framework": framework, "python": platform.python_version(),
            "numpy": np.__version__, "pillow": pillow}


def write_result(folder: str, entry: Entry, result: Dict[str, Any]) -> Dict[str, Any]:
    """The image, then its sidecar, each atomically: a sidecar exists only beside a complete image.  A clip's
    video is on disk already (its worker assembled it there), or comes as bytes (``result["video"]``, from a
    Ray node) and is written here."""
    image_path = os.path.join(folder, entry.name)
    job, history = entry.job, result["history"]
    if not job.clip:
        images.save_image(result["image"], image_path)
    elif result.get("video") is not None:
        with images.atomic_write(image_path) as handle:
            handle.write(result["video"])
    seconds = [row["seconds"] for row in history]
    sidecar = {
        "key": entry.key,
        "output": {"file": entry.name, "sha256": file_sha256(image_path)},
        "job": {"content": job.content, "style": list(job.style), "backend": job.backend, "device": job.device,
                "weights": job.weights, "size": _size_text(job.size), "source": job.source,
                "settings": settings_dict(job.settings.resolved())},
        "inputs": {"content_sha256": clip_sha256(job.content) if job.clip else file_sha256(job.content),
                   "style_sha256": [file_sha256(p) for p in job.style]},
        "result": {"backend": result["backend"], "device": result["device"], "weights": result["weights"],
                   "untrained": result["untrained"], "size": result["size"], "epochs": len(history),
                   "stopped": result["stopped"],
                   "final": {k: history[-1][k] for k in ("content", "style", "tv", "total")}
                   if history and not job.clip else {}},
        "timings": {"seconds": result["seconds"], "optimisation_seconds": sum(seconds),
                    "median_seconds_per_iteration": float(np.median(seconds[1:] or seconds)) if history else None,
                    "host": result["host"], "pid": result["pid"], "weights_reused": result["weights_reused"]},
        "versions": _versions(result["framework"]),
        "history": history,
    }
    if job.clip:  # a row of history is a frame: its seconds (this attempt's frames; a resumed clip has fewer)
        sidecar["job"]["video"] = job.video_options
        sidecar["result"] = {key: result[key] for key in ("backend", "device", "weights", "untrained", "size",
                                                          "frames", "fps", "resumed_from")}
        sidecar["timings"] = {"seconds": result["seconds"],
                              "median_seconds_per_frame": float(np.median(seconds)) if seconds else None,
                              "host": result["host"], "pid": result["pid"]}
    with images.atomic_write(sidecar_path(folder, entry.name)) as handle:
        handle.write(json.dumps(sidecar, indent=2).encode("utf-8"))
    return sidecar


def _row(entry: Entry) -> Dict[str, Any]:
    job, sidecar = entry.job, entry.sidecar or {}
    finished = entry.status in ("done", "skipped")
    result = sidecar.get("result", {})
    return {"index": entry.index, "status": entry.status, "content": job.content, "style": ",".join(job.style),
            "backend": job.backend, "output": entry.name if finished else "",
            "sidecar": os.path.basename(sidecar_path("", entry.name)) if finished else "",
            "reason": entry.reason, "attempts": entry.attempts,
            "seconds": sidecar.get("timings", {}).get("seconds") if finished else None,
            "epochs": result.get("epochs"), "final_loss": result.get("final", {}).get("total"),
            "device": result.get("device", ""), "key": entry.key}


def finish(folder: str, entries: List[Entry], engine: str, used: str, seconds: float,
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
