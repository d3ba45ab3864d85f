"""The ``index.html`` gallery of a batch: content images as rows, styles (or backends) as columns.

Offline and self-contained: no scripts, no fonts, no remote resources; the
inputs are shown as small thumbnails written into ``thumbs/`` beside the
page, and every cell links to its full image and its JSON sidecar.
"""

from __future__ import annotations

import html
import json
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple


from . import images, pages
from .settings import settings_dict

THUMB_EDGE = 160


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def _identity(job: Any) -> Dict[str, Any]:
    """The fields that may tell two jobs of a row apart, besides their style."""
    fields = {"backend": job.backend, "device": job.device, "weights": job.weights, "size": str(job.size)}
    fields.update({key: json.dumps(value) for key, value in settings_dict(job.settings.resolved()).items()})
    return fields


def columns(jobs: Sequence[Any]) -> List[str]:
    """Each job's column label: its style, then whatever else varies in the batch (the backend first).

    A grid of styles on one backend has the styles as columns; one style on
    several backends has the backends; a jobs file that also varies, say,
    ``lr`` adds ``lr=...`` to the label.
    """
    styles = ["+".join(_stem(path) for path in job.style) for job in jobs]
    identities = [_identity(job) for job in jobs]
    varying = [key for key in identities[0] if len({identity[key] for identity in identities}) > 1]
    labels = []
    for style, identity in zip(styles, identities):
        parts = [style] if len(set(styles)) > 1 or not varying else []
        parts += [identity[key] if key == "backend" else f"{key}={identity[key]}" for key in varying]
        labels.append(" · ".join(parts))
    return labels


def _thumbnail(folder: str, path: str, made: Dict[str, Optional[str]]) -> Optional[str]:
    """A small PNG of an input in ``thumbs/``, named by the input's path hash; ``None`` if unreadable."""
    if path in made:
        return made[path]
    import hashlib

    name = "thumbs/" + hashlib.sha256(os.path.abspath(path).encode("utf-8")).hexdigest()[:16] + ".png"
    try:
        picture = _first_frame(path) if _is_clip(path) else images.load_image(path, "input")
        picture.thumbnail((THUMB_EDGE, THUMB_EDGE))
        os.makedirs(os.path.join(folder, "thumbs"), exist_ok=True)
        with images.atomic_write(os.path.join(folder, name)) as handle:
            picture.save(handle, format="PNG")
        made[path] = name
    except Exception:  # an unreadable input (its jobs failed and say why): no thumbnail
        made[path] = None
    return made[path]


def _is_clip(path: str) -> bool:
    from .batch.jobs import is_clip

    return is_clip(path)


def _first_frame(path: str) -> Any:
    """A clip's first frame, as a PIL image."""
    from PIL import Image

    from .video.frames import Clip

    return Image.fromarray(next(Clip(path, "input").frames()))


def write(folder: str, cells: Sequence[Tuple[Any, Dict[str, Any]]], summary: Dict[str, Any]) -> None:
    """Write ``index.html`` into ``folder`` for ``cells``: ``(job, results row)`` pairs."""
    with images.atomic_write(os.path.join(folder, "index.html")) as handle:
        handle.write(render(folder, cells, summary).encode("utf-8"))


def render(folder: str, cells: Sequence[Tuple[Any, Dict[str, Any]]], summary: Dict[str, Any]) -> str:
    e = html.escape
    jobs = [job for job, _ in cells]
    labels = columns(jobs)
    column_order = list(dict.fromkeys(labels))
    row_order = list(dict.fromkeys(job.content for job in jobs))
    table: Dict[Tuple[str, str], List[Tuple[Any, Dict[str, Any]]]] = {}
    for (job, row), label in zip(cells, labels):
        table.setdefault((job.content, label), []).append((job, row))
    thumbs: Dict[str, Optional[str]] = {}
    column_styles = {label: {tuple(job.style) for job, label2 in zip(jobs, labels) if label2 == label}
                     for label in column_order}
    stem_counts: Dict[str, int] = {}
    for path in row_order:
        stem_counts[_stem(path)] = stem_counts.get(_stem(path), 0) + 1

    parts = [
             f"<p>{summary['jobs']} jobs: {summary['done']} done, {summary['skipped']} skipped (done before), "
             f"{summary['failed']} failed" + (f", {summary['interrupted']} interrupted" if summary['interrupted'] else "")
             + f". Engine: {e(summary['ran_on'] or summary['engine'])}. Each image links to the full picture; "
             "each <i>sidecar</i> to its settings, losses, timings and versions. All rows are also in "
             "<a href='results.json'>results.json</a> and <a href='results.csv'>results.csv</a>.</p>",
             "<table class='gallery'><tr><th>content</th>"]
    for label in column_order:
        header = ""
        styles = column_styles[label]
        if len(styles) == 1:
            for path in next(iter(styles)):
                thumb = _thumbnail(folder, path, thumbs)
                if thumb:
                    header += f"<img class='thumb' src='{e(thumb)}' alt='style {e(_stem(path))}'> "
        parts.append(f"<th>{header}<div>{e(label)}</div></th>")
    parts.append("</tr>")
    for content in row_order:
        thumb = _thumbnail(folder, content, thumbs)
        name = _stem(content) if stem_counts[_stem(content)] == 1 else content
        image = f"<img class='thumb' src='{e(thumb)}' alt='content {e(name)}'>" if thumb else "<div class='muted'>unreadable</div>"
        parts.append(f"<tr><th>{image}<div>{e(name)}</div></th>")
        for label in column_order:
            parts.append("<td>" + "<hr>".join(_cell(job, row) for job, row in table.get((content, label), []))
                         + "</td>")
        parts.append("</tr>")
    parts.append("</table>")
    if summary.get("command"):
        parts.append(f"<h2>Reproduce</h2><pre>{e(summary['command'])}</pre>")
    return pages.page("multistyle batch", parts)


def _cell(job: Any, row: Dict[str, Any]) -> str:
    e = html.escape
    if row["status"] in ("done", "skipped"):
        loss = f"loss {row['final_loss']:.4g}" if row.get("final_loss") is not None else ""
        picture = (f"<video class='result' src='{e(row['output'])}' controls muted loop preload='metadata'>"
                   f"<a href='{e(row['output'])}'>{e(row['output'])}</a></video>" if getattr(job, "clip", False) else
                   f"<a href='{e(row['output'])}'><img class='result' src='{e(row['output'])}' "
                   f"alt='{e(row['output'])}'></a>")
        return (f"{picture}<div>{loss} · <a href='{e(row['sidecar'])}'>sidecar</a>"
                + (" · <span class='muted'>skipped: done before</span>" if row["status"] == "skipped" else "")
                + "</div>")
    return f"<div class='failed'>{e(row['status'])}: {e(row['reason'])}</div>"
