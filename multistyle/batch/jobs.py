"""Batch jobs: what one job computes, where a batch's jobs come from (a grid, a JOBS file, folders).

:class:`BatchJob` is also the job of ``compare``, ``bench`` and ``explain``:
:meth:`BatchJob.to_payload` gives the plain, picklable values a worker process
needs and :meth:`BatchJob.from_payload` reads them back.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from .. import images
from ..errors import MultistyleError, first_line
from ..settings import DEFAULT_SIZE, INITS, ResolvedSettings, Settings, settings_dict
from ..vgg import deepest_index
from ..video.frames import VIDEO_SUFFIXES

#: File extensions taken from a folder given to ``--contents`` / ``--styles``.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")
#: Video files, taken from a folder given to ``--contents`` as clips (a job of ``multistyle video``'s).
CLIP_EXTENSIONS = VIDEO_SUFFIXES


def is_clip(path: str) -> bool:
    """A content that is a clip: a video file, or a folder (of frames)."""
    return os.path.isdir(path) or path.lower().endswith(CLIP_EXTENSIONS)


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
    settings: Union[Settings, ResolvedSettings] = field(default_factory=Settings)
    #: Where the job came from, for messages ("jobs.csv row 3"); empty for a grid.
    source: str = ""
    #: The style entry is a trained style network (``batch --model``): one pass, no VGG-19, no optimisation.
    model: bool = False
    #: An AdaIN network's file (``batch --model`` with any style): one pass with the style images; ``weights``
    #: is then a published decoder's encoder.
    network: str = ""
    #: AdaIN's content-style trade-off (``--alpha``).
    alpha: float = 1.0
    #: The content is a clip (a video file or a folder of frames): ``multistyle video``'s job, its frames in
    #: order on one worker; the options below are that command's (``--temporal-weight`` ... ``--fps``).
    clip: bool = False
    temporal_weight: Optional[float] = None
    start: str = "previous"
    temporal: float = 0.0
    flow_preset: str = "medium"
    fps: Optional[float] = None
    long_term: Optional[List[int]] = None

    @property
    def video_options(self) -> Dict[str, Any]:
        """What a clip job does besides its frames' job: its method's options (defaults filled in)."""
        from ..video.coherent import TEMPORAL_WEIGHT

        if self.model or self.network:
            return {"method": "network", "temporal": self.temporal, "flow_preset": self.flow_preset, "fps": self.fps}
        return {"method": "optimise", "flow_preset": self.flow_preset, "fps": self.fps, "start": self.start,
                "temporal_weight": TEMPORAL_WEIGHT if self.temporal_weight is None else self.temporal_weight,
                "long_term": sorted(self.long_term or [])}

    def to_payload(self) -> Dict[str, Any]:
        """What a worker process needs to run this job: plain values, picklable, no framework objects;
        ``settings`` resolved, and ``last`` the deepest VGG-19 layer it uses."""
        resolved = self.settings.resolved()
        return {"content": self.content, "style": list(self.style), "backend": self.backend, "device": self.device,
                "weights": self.weights, "size": self.size, "max_pixels": self.max_pixels,
                "deterministic": self.deterministic, "settings": settings_dict(resolved),
                "last": deepest_index(resolved.layers), "model": self.model, "network": self.network,
                "alpha": self.alpha, "clip": self.clip, "temporal_weight": self.temporal_weight,
                "start": self.start, "temporal": self.temporal, "flow_preset": self.flow_preset, "fps": self.fps,
                "long_term": self.long_term}

    @classmethod
    def from_payload(cls, payload: Dict[str, Any]) -> "BatchJob":
        """The job of a payload (extra keys, such as a run's label, are ignored)."""
        known = {f.name for f in fields(cls)} - {"settings", "style"}
        style = payload["style"]
        return cls(style=list(style) if isinstance(style, (list, tuple)) else [style],
                   settings=Settings(**payload["settings"]), **{k: v for k, v in payload.items() if k in known})


def expand_images(spec: str, option: str, clips: bool = False) -> List[str]:
    """The image files a ``--contents``/``--styles`` argument names: a folder (its images, sorted), a glob
    pattern (its matches, sorted) or one file.  With ``clips``, a folder's video files are taken too."""
    if os.path.isdir(spec):
        wanted = IMAGE_EXTENSIONS + (CLIP_EXTENSIONS if clips else ())
        found = sorted(os.path.join(spec, name) for name in os.listdir(spec)
                       if name.lower().endswith(wanted) and os.path.isfile(os.path.join(spec, name)))
        if not found:
            raise MultistyleError(f"{option}: folder {spec!r} has no image files ({', '.join(IMAGE_EXTENSIONS)})"
                                  + (f" or clips ({', '.join(CLIP_EXTENSIONS)})" if clips else ""))
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
    rows = _csv_rows(text, name) if extension == ".csv" else _json_rows(text, name)
    if not rows:
        raise MultistyleError(f"{name}: no jobs in the file")
    folder = os.path.dirname(os.path.abspath(path))
    return [_job_row(source, row, folder) for source, row in rows]




def _csv_rows(text: str, name: str) -> List[Tuple[str, Dict[str, Any]]]:
    """``(source, row)`` per CSV row: a header row; an empty cell means "not overridden"."""
    rows = []
    reader = csv.DictReader(io.StringIO(text))
    for number, row in enumerate(reader, start=2):
        if None in row:
            raise MultistyleError(f"{name} row {number}: more cells than the header has columns")
        rows.append((f"{name} row {number}", {key.strip(): value.strip() for key, value in row.items()
                                              if key and value is not None and value.strip() != ""}))
    return rows


def _json_rows(text: str, name: str) -> List[Tuple[str, Dict[str, Any]]]:
    """``(source, row)`` per job of a JSON list, or of ``{"jobs": [...]}``."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MultistyleError(f"{name}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    entries = data.get("jobs") if isinstance(data, dict) else data
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise MultistyleError(f"{name}: expected a list of job objects, or {{\"jobs\": [...]}}")
    return [(f"{name} job {number}", dict(entry)) for number, entry in enumerate(entries, start=1)]


def _job_row(source: str, row: Dict[str, Any], folder: str) -> Dict[str, Any]:
    """One row checked, its paths made relative to the jobs file's ``folder``."""
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
    # Other files a job may name are relative to the jobs file too: masks, a start image, a weights file.
    masks = row.get("content_masks")
    if isinstance(masks, str):
        masks = [masks] if os.path.exists(os.path.join(folder, masks)) else [part.strip() for part in masks.split(",")]
    if masks is not None:
        if not isinstance(masks, list) or not all(isinstance(m, str) and m for m in masks):
            raise MultistyleError(f"{source}: 'content_masks' must be an image path or a list of paths")
        row["content_masks"] = [os.path.join(folder, m) for m in masks]
    if isinstance(row.get("init"), str) and row["init"] not in INITS:
        row["init"] = os.path.join(folder, row["init"])
    weights = row.get("weights")
    if isinstance(weights, str) and weights.strip() != "imagenet" and not weights.strip().startswith("random"):
        row["weights"] = os.path.join(folder, weights)
    row["source"] = source
    return row
