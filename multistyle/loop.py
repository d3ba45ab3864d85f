"""The optimisation loop: epochs, scales from coarse to fine, stop rules, and the per-epoch record.

One epoch is one optimizer iteration, whatever the optimizer; its record
counts the loss evaluations it took (L-BFGS with line search may take several)
and reports the losses at the point the iteration started from.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from . import images, interrupts, memory
from .backend import Backend
from .errors import MultistyleError
from .objective import StyleLoss
from .settings import ResolvedSettings

Callback = Callable[[Dict[str, float], Callable[[], np.ndarray]], None]

#: On an asynchronous device (MXNet's engine, CUDA) losses are read back at most this many epochs at a time.
READ_BATCH = 8


def plan_memory(backend: str, device: str, shape: Tuple[int, int], settings: ResolvedSettings) -> memory.Prediction:
    """Predicted peak memory of a job whose full size is ``shape``."""
    final_epochs = scale_epochs(settings.scales, settings.epochs, settings.final_share)[-1]
    regions = len(settings.content_masks) if settings.content_masks else 0
    styles = len(settings.style_blend) if settings.style_blend else 1
    extra = memory.style_loss_bytes(shape, settings.style_layers, settings.style_loss, regions, styles,
                                    settings.style_scale)
    return memory.predict(backend, device, shape, list(settings.layers), settings.optimizer, final_epochs, extra)


class Scale(NamedTuple):
    """Where one scale's epochs stand: its number (``None`` when there is one scale) and whether it is the last."""

    number: Optional[int]
    final: bool


def optimise(B: Backend, objective: StyleLoss, optimizer: Any, settings: ResolvedSettings, epochs: int,
             bounds: Tuple[Any, Any], history: List[Dict[str, float]], callback: Optional[Callback],
             scale: Scale, snapshot_every: int = 0) -> str:
    """Run ``epochs`` iterations, appending to ``history``; return why it stopped early, or ``""``.

    The stop rules judge only the final (full-size) scale: losses at other sizes are not comparable.

    Each epoch's losses stay on the device, packed in one small tensor; they are
    read in one transfer per batch of epochs.  A synchronous device, or a run
    with a stop rule (which needs each loss as it comes), reads every epoch; an
    asynchronous one reads up to :data:`READ_BATCH` epochs at a time, and at
    every ``snapshot_every``-th epoch, so the device is not kept waiting for the
    host.  An epoch's ``seconds`` is the wall time of its batch shared out.
    """
    low, high = bounds
    first_epoch = len(history)
    evaluations: List[Dict[str, Any]] = []
    stop_rules = settings.until_loss is not None or settings.tol is not None
    batch = READ_BATCH if B.asynchronous and not stop_rules else 1
    pending: List[Tuple[Dict[str, Any], Any, bool]] = []  # (record so far, packed losses, has tv) per unread epoch
    final = scale.final
    loss_terms = B.compile_objective(objective.terms)  # once per scale: its image size is fixed
    # --tv-smoothing's width follows the step size: times the rate over this scale's first rate.
    first_lr, tv_scale = optimizer.lr, [1.0]

    def closure(x: Any) -> Any:
        if settings.clamp == "closure":  # the tutorial: clamp the image itself, then evaluate
            B.clip_(x, low, high)
        evaluations.append(B.keep(loss_terms(x, tv_scale[0]) if settings.tv_smoothing else loss_terms(x)))
        return evaluations[-1]["total"]

    def image() -> np.ndarray:
        return images.postprocess(B.to_numpy(optimizer.image), normalized=not settings.pixel_domain)

    since = time.perf_counter()
    with interrupts.deferred():  # Ctrl-C stops the run between two epochs, never inside one
        for index in range(epochs):
            interrupts.check()
            lr = optimizer.lr
            tv_scale[0] = lr / first_lr if first_lr else 1.0
            evaluations.clear()
            optimizer.step(closure)
            if settings.clamp == "step":
                B.clip_(optimizer.image, low, high)
            optimizer.epoch_end()
            first = evaluations[0]  # the losses at the point this iteration started from
            has_tv = first["tv"] is not None
            terms = [first["content"], first["style"], first["total"]] + ([first["tv"]] if has_tv else [])
            epoch = len(history) + len(pending) + 1
            pending.append(({"epoch": epoch, "lr": lr, "evaluations": len(evaluations)}, B.pack(terms), has_tv))
            # The first epoch (warm-up, slow) is read alone, so that its time is not shared with others.
            if (len(pending) < batch and 0 < index < epochs - 1
                    and not (snapshot_every and epoch % snapshot_every == 0)):
                continue
            values = B.to_numpy(B.pack([packed for _, packed, _ in pending])).astype(float).tolist()
            for record in _records(pending, values, (time.perf_counter() - since) / len(pending), scale, settings):
                history.append(record)
                if callback is not None:
                    callback(record, image)
                stopped = stop_reason(settings, history[first_epoch:]) if final else ""
                if stopped:  # only with batches of one epoch: the image is this epoch's
                    return stopped
            pending.clear()
            since = time.perf_counter()
    return ""


def _records(pending: Sequence[Tuple[Dict[str, Any], Any, bool]], values: List[float], seconds: float,
             scale: Scale, settings: ResolvedSettings) -> Iterator[Dict[str, Any]]:
    """The full records of a batch of epochs read back as one flat list of ``values``."""
    offset = 0
    for partial, _, has_tv in pending:
        content, style, total = values[offset:offset + 3]
        tv = values[offset + 3] if has_tv else 0.0
        offset += 4 if has_tv else 3
        record = {"epoch": partial["epoch"], "lr": partial["lr"], "content": content, "style": style, "tv": tv,
                  "total": total, "evaluations": partial["evaluations"], "seconds": seconds}
        if scale.number is not None:
            record["scale"] = scale.number
        if not math.isfinite(total):
            raise MultistyleError(f"the loss became {total} at epoch {record['epoch']}; lower --lr (now "
                                  f"{settings.lr}) or the loss weights, or check the weights file")
        yield record


def scale_plan(shape: Tuple[int, int], scales: int, epochs: int,
               final_share: Optional[float] = None) -> List[Tuple[Tuple[int, int], int]]:
    """``[(size, epochs), ...]`` from coarse to fine for ``--scales``: each size half the next one."""
    height, width = shape
    sizes = [(max(1, round(height / 2 ** k)), max(1, round(width / 2 ** k))) for k in range(scales - 1, -1, -1)]
    if min(sizes[0]) < 16:
        raise MultistyleError(f"--scales: {scales} scales of {height}x{width} make the coarsest "
                              f"{sizes[0][0]}x{sizes[0][1]}, smaller than 16 pixels; use fewer scales or a larger size")
    return list(zip(sizes, scale_epochs(scales, epochs, final_share)))


def scale_epochs(scales: int, epochs: int, final_share: Optional[float] = None) -> List[int]:
    """Epochs per scale, coarse to fine, at least one each.

    Without ``final_share``, weighted 2**(scales - 1 - k) toward the coarse scales, where an epoch costs
    less (a quarter per halving in arithmetic).  With it, that share of the epochs (rounded) goes to the
    full size and the rest to the smaller scales, weighted so among them.
    """
    if final_share is not None and scales > 1:
        final = min(epochs - (scales - 1), max(1, round(epochs * final_share)))
        return scale_epochs(scales - 1, epochs - final) + [final]
    weights = [2 ** (scales - 1 - k) for k in range(scales)]
    counts = [max(1, int(epochs * w / sum(weights))) for w in weights]
    counts[0] += epochs - sum(counts)  # what rounding left goes to the coarsest scale
    return counts


#: Epochs over which --tol measures the improvement.
TOL_WINDOW = 20


def stop_reason(settings: ResolvedSettings, history: Sequence[Dict[str, float]]) -> str:
    """Why to stop after the last epoch of ``history`` (``--until-loss``, ``--tol``), or ``""`` to go on.

    ``--tol`` compares the best loss of the last 20 epochs with the best one
    before them, so a single spike (L-BFGS) neither stops a run nor hides progress.
    """
    epoch, total = int(history[-1]["epoch"]), history[-1]["total"]
    if settings.until_loss is not None and total <= settings.until_loss:
        return f"the loss reached {total:.6g} <= --until-loss {settings.until_loss:g} at epoch {epoch}"
    if settings.tol is not None and len(history) > TOL_WINDOW:
        before = min(row["total"] for row in history[:-TOL_WINDOW])
        recent = min(row["total"] for row in history[-TOL_WINDOW:])
        if recent > before * (1 - settings.tol):
            gain = (before - recent) / before
            return (f"the loss improved by {max(gain, 0):.2g} (< --tol {settings.tol:g}) over the "
                    f"{TOL_WINDOW} epochs to epoch {epoch}")
    return ""


def write_log(history: Sequence[Dict[str, float]], path: str, meta: Optional[Dict[str, Any]] = None) -> None:
    """Write per-epoch losses and timings as CSV or JSON (by extension), atomically."""
    extension = os.path.splitext(path)[1].lower()
    if extension == ".json":
        text = json.dumps({"meta": meta or {}, "epochs": list(history)}, indent=2)
    else:
        buffer = io.StringIO()
        columns = ["epoch", "lr", "content", "style", "tv", "total", "evaluations", "seconds"]
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in history:
            writer.writerow({key: row[key] for key in columns})
        text = buffer.getvalue()
    with images.atomic_write(path) as handle:
        handle.write(text.encode("utf-8"))
