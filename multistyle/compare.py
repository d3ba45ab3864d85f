"""``multistyle compare``: one job on several backends, each in its own child process, and an offline HTML report.

The children run :func:`multistyle.measure.run_job`; the parent only imports
NumPy, Pillow and (for the report's plots) matplotlib.
"""

from __future__ import annotations

import html
import itertools
import json
import os
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import explain, images, maths, pages
from .errors import MultistyleError
from .measure import call_isolated, median_step, run_isolated, usable_backends
from .settings import Settings

TERMS = ("content", "style", "tv", "total")
DIFF_GAIN = 8  # difference images show |a - b| x 8 (in 0..255 levels), clipped


def pixel_difference(a: np.ndarray, b: np.ndarray) -> Tuple[float, float]:
    """Max and mean absolute difference of two uint8 images, in 0..255 levels."""
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return float(diff.max()), float(diff.mean())


def _plot(path: str, title: str, series: Dict[str, Tuple[Sequence[float], Sequence[float]]], ylabel: str,
          log: bool, xlabel: str = "epoch") -> None:
    import matplotlib  # checked by compare() before any backend runs

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(5.2, 3.4), dpi=100)
    for name, (x, y) in series.items():
        axes.plot(x, y, label=name, linewidth=1.4)
    if log and all(v > 0 for _, y in series.values() for v in y):
        axes.set_yscale("log")
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    with images.atomic_write(path) as handle:
        figure.savefig(handle, format="png")
    plt.close(figure)


def _save_png(pixels: np.ndarray, folder: str, name: str) -> str:
    images.save_image(pixels, os.path.join(folder, name))
    return name


def build_report(folder: str, results: List[Dict[str, Any]], unusable: Dict[str, str], meta: Dict[str, Any],
                 inputs: Dict[str, np.ndarray]) -> Dict[str, Any]:
    """Write images, plots, ``report.json`` and ``index.html`` into ``folder``; return the JSON data."""
    ok = [r for r in results if "error" not in r]
    failed = {r["label"]: r["error"] for r in results if "error" in r}
    files = {"content": _save_png(inputs["content"], folder, "content.png"),
             "style": _save_png(inputs["style"], folder, "style.png")}
    for r in ok:
        files[f"result_{r['label']}"] = _save_png(r["image"], folder, f"result_{r['label']}.png")
    pairs = []
    # Pixels are compared between backends running the same optimizer; across optimizers only losses are.
    for a, b in ((a, b) for a, b in itertools.combinations(ok, 2) if a["optimizer"] == b["optimizer"]):
        name = f"{a['label']}-{b['label']}"
        diff = np.abs(a["image"].astype(np.int16) - b["image"].astype(np.int16))
        files[f"diff_{name}"] = _save_png(np.clip(diff * DIFF_GAIN, 0, 255).astype(np.uint8), folder, f"diff_{name}.png")
        steps = sorted(set(a["snapshots"]) & set(b["snapshots"]))
        drift = [pixel_difference(a["snapshots"][s], b["snapshots"][s]) for s in steps]
        max_diff, mean_diff = pixel_difference(a["image"], b["image"])
        pairs.append({"pair": name, "max_pixel_difference": max_diff, "mean_pixel_difference": mean_diff,
                      "steps": steps, "mean_difference_by_step": [d[1] for d in drift],
                      "max_difference_by_step": [d[0] for d in drift]})
    plots = {}
    if ok:
        for term in TERMS:
            series = {r["label"]: ([h["epoch"] for h in r["history"]], [h[term] for h in r["history"]]) for r in ok}
            plots[term] = f"loss_{term}.png"
            _plot(os.path.join(folder, plots[term]), f"{term} loss", series, "loss", log=True)
        # Against wall-clock time: what an iteration costs differs by framework and optimizer.
        series = {r["label"]: (list(itertools.accumulate(h["seconds"] for h in r["history"])),
                               [h["total"] for h in r["history"]]) for r in ok}
        plots["total_vs_seconds"] = "loss_total_vs_seconds.png"
        _plot(os.path.join(folder, plots["total_vs_seconds"]), "total loss against time", series, "loss", log=True,
              xlabel="seconds")
    if pairs:
        plots["drift"] = "pixel_drift.png"
        _plot(os.path.join(folder, plots["drift"]), "mean pixel difference between backends",
              {p["pair"]: (p["steps"], p["mean_difference_by_step"]) for p in pairs}, "0..255 levels", log=False)
    rows = []
    for r in ok:
        median, low, high = median_step(r["history"])
        others = {p["pair"]: {"max": p["max_pixel_difference"], "mean": p["mean_pixel_difference"]}
                  for p in pairs if r["label"] in p["pair"].split("-")}
        rows.append({"label": r["label"], "backend": r["backend"], "optimizer": r["optimizer"],
                     "framework": r["framework"], "device": r["device"],
                     "weights": r["weights"], "seconds_per_iteration": median, "seconds_p10": low, "seconds_p90": high,
                     "total_seconds": r["seconds"], "peak_rss_bytes": r["peak_rss_bytes"],
                     "device_memory_bytes": r["device_memory_bytes"],
                     "final": {term: r["history"][-1][term] for term in TERMS}, "pixel_difference": others})
    data = {"meta": meta, "backends": rows, "pairs": pairs, "unusable": unusable, "failed": failed,
            "files": files, "plots": plots,
            "history": {r["label"]: r["history"] for r in ok}}
    with images.atomic_write(os.path.join(folder, "report.json")) as handle:
        handle.write(json.dumps(data, indent=2).encode("utf-8"))
    with images.atomic_write(os.path.join(folder, "index.html")) as handle:
        handle.write(render_html(data).encode("utf-8"))
    return data


def render_html(data: Dict[str, Any]) -> str:
    """The report page, from the one page renderer (:mod:`multistyle.pages`)."""
    e = html.escape
    meta = data["meta"]
    code, css = explain.code_section(meta.get("explained_backends") or [r["backend"] for r in data["backends"]])
    parts = [f"<p>The same job on {len(data['backends'])} backend(s): same weights, preprocessing, initial image "
             f"and hyper-parameters. Size {meta['size'][0]}×{meta['size'][1]} (H×W), {meta['settings']['epochs']} "
             f"epochs, weights <code>{e(str(meta['weights']))}</code>.</p>"]
    parts += _notes(data)
    parts += _images(data)
    parts.append("<h2>Losses</h2><div>")
    for key, name in data["plots"].items():
        parts.append(f"<figure><img src='{name}' alt='plot {key}'></figure>")
    parts.append("</div>")
    if data["pairs"]:
        parts.append("<p>" + maths.WHY_PIXELS_DRIFT + "</p>")
    parts += _runs_table(data)
    parts.append(code)
    parts.append(maths.maths_section(meta.get("maths")))
    parts.append(f"<h2>Reproduce</h2><pre>{e(meta['command'])}</pre><pre>{e(json.dumps(meta['settings'], indent=2))}</pre>")
    parts.append("<p>All figures are also in <a href='report.json'>report.json</a>.</p>")
    return pages.page("multistyle compare", parts, css)


def _notes(data: Dict[str, Any]) -> List[str]:
    e, meta, parts = html.escape, data["meta"], []
    if meta.get("untrained"):
        parts.append("<p class='note'>The VGG-19 weights are random (untrained): the pictures are not stylised. "
                     "The comparison of the frameworks is still exact.</p>")
    if meta.get("zoo_weights"):
        parts.append("<p class='note'>Each framework used its own model zoo's VGG-19. The three zoos ship "
                     "<b>different</b> weights (each trained separately), so the networks differ and so do the "
                     "pictures. For a fair comparison convert one file with <code>multistyle weights convert</code> "
                     "and pass it with <code>--weights</code>.</p>")
    for name, reason in {**data["unusable"], **data["failed"]}.items():
        parts.append(f"<p class='note'>Backend <b>{e(name)}</b> did not run: {e(reason)}</p>")
    return parts


def _images(data: Dict[str, Any]) -> List[str]:
    e, files = html.escape, data["files"]
    parts = ["<h2>Images</h2><div>",
             f"<figure><img src='{files['content']}' alt='content'><figcaption>content</figcaption></figure>",
             f"<figure><img src='{files['style']}' alt='style'><figcaption>style</figcaption></figure>"]
    for row in data["backends"]:
        key = f"result_{row['label']}"
        parts.append(f"<figure><img src='{files[key]}' alt='{key}'><figcaption>{e(row['label'])} "
                     f"({e(row['framework'])}, {e(row['device'])})</figcaption></figure>")
    parts.append("</div>")
    if data["pairs"]:
        parts.append(f"<h3>Differences between backends</h3><p>Each image shows |a − b| per pixel and channel, "
                     f"amplified ×{DIFF_GAIN} (so 32 of 255 levels appear as white); black means equal.</p><div>")
        for pair in data["pairs"]:
            key = f"diff_{pair['pair']}"
            parts.append(f"<figure><img src='{files[key]}' alt='{key}'><figcaption>{e(pair['pair'])}: max "
                         f"{pair['max_pixel_difference']:.0f}, mean {pair['mean_pixel_difference']:.2f} levels"
                         f"</figcaption></figure>")
        parts.append("</div>")
    return parts


def _runs_table(data: Dict[str, Any]) -> List[str]:
    e, mb = html.escape, pages.megabytes
    parts = ["<h2>Per run</h2><table class='numbers'><tr><th>backend</th><th>optimizer</th><th>framework</th>"
             "<th>device</th><th>s/iteration (median, p10–p90)</th><th>total s</th><th>peak RSS</th>"
             "<th>device memory</th>" + "".join(f"<th>final {t}</th>" for t in TERMS)
             + "<th>pixel difference (max / mean)</th></tr>"]
    for row in data["backends"]:
        diffs = "<br>".join(f"{e(k)}: {v['max']:.0f} / {v['mean']:.2f}" for k, v in row["pixel_difference"].items())
        parts.append(f"<tr><td>{e(row['label'])}</td><td>{e(row['optimizer'])}</td><td>{e(row['framework'])}</td>"
                     f"<td>{e(row['device'])}</td>"
                     f"<td>{row['seconds_per_iteration']:.4f} ({row['seconds_p10']:.4f}–{row['seconds_p90']:.4f})</td>"
                     f"<td>{row['total_seconds']:.1f}</td><td>{mb(row['peak_rss_bytes'])}</td>"
                     f"<td>{mb(row['device_memory_bytes'])}</td>"
                     + "".join(f"<td>{row['final'][t]:.5g}</td>" for t in TERMS) + f"<td>{diffs or '–'}</td></tr>")
    parts.append("</table>")
    return parts


def compare(backends: Sequence[str], folder: str, job: Dict[str, Any], command: str,
            variants: Optional[Dict[str, Dict[str, Any]]] = None, explain_maths: bool = True) -> Dict[str, Any]:
    """Run ``job`` on each usable backend and write the report into ``folder``.

    ``variants`` maps optimizer names to settings (each with that optimizer's
    own rate unless one was given): every backend then runs each, labelled
    ``backend_optimizer``.  ``explain_maths`` measures the "same name,
    different maths" table on the job (:func:`multistyle.maths.measure`).
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise MultistyleError("compare draws its plots with matplotlib: pip install 'multistyle[report]'") from None
    explain.code_section([])  # Pygments is there, before any backend runs
    usable, unusable = usable_backends(backends)
    if not usable:
        raise MultistyleError("--backends: none of " + ", ".join(backends) + " is usable: "
                              + "; ".join(unusable.values()))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise MultistyleError(f"--output: cannot create folder {folder!r} ({exc.strerror or exc})") from None
    images.check_writable(os.path.join(folder, "index.html"), "--output")  # before any backend runs
    epochs = Settings(**job["settings"]).epochs
    job = dict(job, snapshots=True, snapshot_every=max(1, epochs // 50))
    variants = variants or {job["settings"]["optimizer"]: job["settings"]}
    results = []
    for name in usable:
        for optimizer, settings in variants.items():
            label = name if len(variants) == 1 else f"{name}_{optimizer}"
            print(f"compare: running {label} ...", file=sys.stderr, flush=True)
            results.append(run_isolated(dict(job, backend=name, label=label, settings=settings)))
    ok = [r for r in results if "error" not in r]
    if not ok:
        raise MultistyleError("every run failed: " + "; ".join(f"{r['label']}: {r['error']}" for r in results))
    first = ok[0]
    content = images.load_image(job["content"], "--content", job.get("max_pixels", images.DEFAULT_MAX_PIXELS))
    first_style = job["style"][0] if isinstance(job["style"], (list, tuple)) else job["style"]
    style = images.load_image(first_style, "--style", job.get("max_pixels", images.DEFAULT_MAX_PIXELS))
    size = tuple(first["size"])
    inputs = {name: images.postprocess(images.preprocess(image, size)) for name, image in (("content", content), ("style", style))}
    measured = None
    if explain_maths:
        print("compare: measuring where the frameworks' maths differ ...", file=sys.stderr, flush=True)
        style_list = list(job["style"]) if isinstance(job["style"], (list, tuple)) else [job["style"]]
        measured = maths.measure(dict(job, size=list(size), style=style_list), usable, call_isolated)
    meta = {"command": command, "settings": job["settings"], "size": list(size), "weights": job["weights"],
            "optimizers": {optimizer: settings for optimizer, settings in variants.items()},
            "untrained": first["untrained"], "zoo_weights": job["weights"] == "imagenet" and len(ok) > 1,
            "backends_requested": list(backends), "explained_backends": usable, "maths": measured}
    return build_report(folder, results, unusable, meta, inputs)
