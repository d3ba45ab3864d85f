"""Side-by-side runs: ``multistyle compare`` (an offline HTML report) and ``multistyle bench``.

Each backend runs in its own child process (``spawn``), so that its peak
memory is its own, a framework's import-time settings cannot leak into
another's, and a crash in one framework does not take the others down.
The children run :func:`run_job`; the parent only imports NumPy, Pillow and
(for the report's plots) matplotlib.
"""

from __future__ import annotations

import concurrent.futures
import html
import itertools
import json
import multiprocessing
import os
import shlex
import statistics
import sys
import time
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import explain, images
from .backend import describe_backends, get_backend
from .errors import MultistyleError, first_line
from .progress import ProgressBar
from .transfer import Settings, UntrainedWeightsWarning, load_weights, transfer
from .vgg import deepest_index

TERMS = ("content", "style", "tv", "total")
DIFF_GAIN = 8  # difference images show |a - b| x 8 (in 0..255 levels), clipped


def run_job(job: Dict[str, Any]) -> Dict[str, Any]:
    """Run one backend's job in this process and measure it.  Runs in a child process."""
    settings = Settings(**job["settings"])
    every = max(1, int(job.get("snapshot_every", 1)))
    snapshots: Dict[int, np.ndarray] = {}
    label = job.get("label", job["backend"])
    bar = ProgressBar(settings.epochs, sys.stderr, enabled=sys.stderr.isatty(), label=label)

    def on_epoch(record: Dict[str, float], current: Any) -> None:
        bar.update(record)
        epoch = int(record["epoch"])
        if job.get("snapshots") and (epoch % every == 0 or epoch == settings.epochs):
            snapshots[epoch] = current()

    started = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UntrainedWeightsWarning)
            result = transfer(job["content"], job["style"], backend=job["backend"], device=job["device"],
                              weights=job["weights"], size=tuple(job["size"]), settings=settings,
                              max_pixels=job.get("max_pixels", images.DEFAULT_MAX_PIXELS), callback=on_epoch,
                              deterministic=job.get("deterministic", False),
                              snapshot_every=every if job.get("snapshots") else 0)
    finally:
        bar.close()
    seconds = time.perf_counter() - started
    rss = peak_rss()  # the run's own, before the floor (below) allocates a network of its own
    floor = floor_times(job, settings.resolved(), int(job["floor"])) if job.get("floor") else None
    return {"backend": result.backend, "label": label, "optimizer": settings.optimizer, "floor": floor,
            "device": result.device, "framework": result.framework_version,
            "weights": result.weights, "untrained": result.untrained, "size": list(result.size),
            "history": result.history, "image": result.image, "snapshots": snapshots, "seconds": seconds,
            "peak_rss_bytes": rss,
            "device_memory_bytes": result.peak_device_memory}


def floor_times(job: Dict[str, Any], settings: Settings, iterations: int) -> List[float]:
    """Seconds per iteration of the backend's bare floor for this job: its VGG-19 up to the deepest layer in
    use, frozen, forward and the gradient with respect to the input only; no losses, no optimizer."""
    B = get_backend(job["backend"], job["device"])
    layers = list(settings.content_layers) + list(settings.style_layers)  # type: ignore[arg-type]
    weights, _, _ = load_weights(job["weights"], B, deepest_index(layers))
    net = B.vgg19_layers(weights, deepest_index(layers))
    height, width = job["size"]
    x = B.asarray(np.random.default_rng(0).standard_normal((1, 3, height, width), dtype=np.float32))

    def forward(t: Any) -> Any:
        for layer in net:
            t = layer(t)
        return B.mean(t)

    times = []
    for _ in range(iterations):
        started = time.perf_counter()
        loss, grad = B.loss_and_grad(forward, x)
        B.to_numpy(B.pack([loss, B.mean(grad)]))  # waits for both, on an asynchronous device too
        times.append(time.perf_counter() - started)
    return times


def peak_rss() -> int:
    """Peak resident memory of this process, in bytes.

    ``VmHWM`` where Linux has it: ``ru_maxrss`` would also count the parent's
    peak, which Linux carries across ``exec`` into a spawned child.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def call_isolated(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a fresh child process (``spawn``); its exceptions are raised here."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(fn, *args).result()


def run_isolated(job: Dict[str, Any]) -> Dict[str, Any]:
    """:func:`run_job` in a fresh child process; any failure comes back as ``{"error": "one line"}``."""
    failed = {"backend": job["backend"], "label": job.get("label", job["backend"])}
    try:
        return call_isolated(run_job, job)
    except MultistyleError as exc:
        return dict(failed, error=str(exc))
    except concurrent.futures.process.BrokenProcessPool:
        return dict(failed, error="the worker process died (out of memory, or a crash in the framework)")
    except Exception as exc:  # anything else in the worker (CUDA out of memory, a framework bug): this run failed
        return dict(failed, error=f"{type(exc).__name__}: {first_line(exc)}".rstrip(": "))


def usable_backends(names: Sequence[str]) -> Tuple[List[str], Dict[str, str]]:
    """Split ``names`` into usable backends and ``{name: reason}`` for the others."""
    rows = {row["name"]: row for row in describe_backends(list(names))}
    usable = [name for name in names if rows[name]["usable"]]
    return usable, {name: rows[name]["reason"] for name in names if not rows[name]["usable"]}


def median_step(history: Sequence[Dict[str, float]]) -> Tuple[float, float, float]:
    """Median, and 10th/90th percentile, of seconds per iteration, warm-up excluded.

    Warm-up: the first 10 % of iterations, at least one and never all of them.
    """
    times = [row["seconds"] for row in history]
    warmup = min(max(1, len(times) // 10), len(times) - 1)
    steady = sorted(times[warmup:])
    pick = lambda q: steady[min(len(steady) - 1, int(q * len(steady)))]  # noqa: E731
    return statistics.median(steady), pick(0.1), pick(0.9)


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


def _mb(value: Optional[int]) -> str:
    return "n/a" if value is None else f"{value / 2 ** 20:.0f} MB"


def render_html(data: Dict[str, Any]) -> str:
    """The report page: self-contained HTML, no scripts, fonts or remote resources."""
    e = html.escape
    meta = data["meta"]
    code, css = explain.code_section(meta.get("explained_backends") or [r["backend"] for r in data["backends"]])
    parts = ["<!doctype html><html lang='en'><head><meta charset='utf-8'>",
             "<title>multistyle compare</title><style>",
             "body{font-family:sans-serif;margin:24px;max-width:1200px;color:#222}"
             "figure{display:inline-block;margin:6px;text-align:center;vertical-align:top}"
             "figure img{width:300px;image-rendering:pixelated;border:1px solid #ccc}figcaption{font-size:13px}"
             "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
             "th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}"
             ".note{background:#fff7e0;border-left:4px solid #e0b000;padding:8px 12px}pre{background:#f6f6f6;padding:8px;white-space:pre-wrap}",
             explain.STYLE + css,
             "</style></head><body>",
             "<h1>multistyle compare</h1>",
             f"<p>The same job on {len(data['backends'])} backend(s): same weights, preprocessing, initial image "
             f"and hyper-parameters. Size {meta['size'][0]}×{meta['size'][1]} (H×W), {meta['settings']['epochs']} epochs, "
             f"weights <code>{e(str(meta['weights']))}</code>.</p>"]
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
    files = data["files"]
    parts.append("<h2>Images</h2><div>")
    parts.append(f"<figure><img src='{files['content']}' alt='content'><figcaption>content</figcaption></figure>")
    parts.append(f"<figure><img src='{files['style']}' alt='style'><figcaption>style</figcaption></figure>")
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
    parts.append("<h2>Losses</h2><div>")
    for key, name in data["plots"].items():
        parts.append(f"<figure><img src='{name}' alt='plot {key}'></figure>")
    parts.append("</div>")
    if data["pairs"]:
        parts.append("<p>Why pixels drift apart while losses agree: the frameworks compute the same losses and "
                     "gradients up to float32 rounding, but ReLU, max-pooling and |x| have kinks, and Adam moves "
                     "every pixel by about the learning rate at every step whatever the size of its gradient. A "
                     "rounding difference in a tiny gradient can flip the direction of a whole step, so after a "
                     "few steps the images differ visibly, while each one is an equally good minimiser of the same "
                     "loss: the curves above stay together.</p>")
    parts.append("<h2>Per run</h2><table><tr><th>backend</th><th>optimizer</th><th>framework</th><th>device</th>"
                 "<th>s/iteration (median, p10–p90)</th><th>total s</th><th>peak RSS</th><th>device memory</th>"
                 + "".join(f"<th>final {t}</th>" for t in TERMS) + "<th>pixel difference (max / mean)</th></tr>")
    for row in data["backends"]:
        diffs = "<br>".join(f"{e(k)}: {v['max']:.0f} / {v['mean']:.2f}" for k, v in row["pixel_difference"].items())
        parts.append(f"<tr><td>{e(row['label'])}</td><td>{e(row['optimizer'])}</td><td>{e(row['framework'])}</td>"
                     f"<td>{e(row['device'])}</td>"
                     f"<td>{row['seconds_per_iteration']:.4f} ({row['seconds_p10']:.4f}–{row['seconds_p90']:.4f})</td>"
                     f"<td>{row['total_seconds']:.1f}</td><td>{_mb(row['peak_rss_bytes'])}</td>"
                     f"<td>{_mb(row['device_memory_bytes'])}</td>"
                     + "".join(f"<td>{row['final'][t]:.5g}</td>" for t in TERMS) + f"<td>{diffs or '–'}</td></tr>")
    parts.append("</table>")
    parts.append(code)
    parts.append(explain.maths_section(meta.get("maths")))
    parts.append(f"<h2>Reproduce</h2><pre>{e(meta['command'])}</pre><pre>{e(json.dumps(meta['settings'], indent=2))}</pre>")
    parts.append("<p>All figures are also in <a href='report.json'>report.json</a>.</p></body></html>")
    return "\n".join(parts)


def compare(backends: Sequence[str], folder: str, job: Dict[str, Any], command: str,
            variants: Optional[Dict[str, Dict[str, Any]]] = None, explain_maths: bool = True) -> Dict[str, Any]:
    """Run ``job`` on each usable backend and write the report into ``folder``.

    ``variants`` maps optimizer names to settings (each with that optimizer's
    own rate unless one was given): every backend then runs each, labelled
    ``backend_optimizer``.  ``explain_maths`` measures the "same name,
    different maths" table on the job (:func:`multistyle.explain.measure`).
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
    maths = None
    if explain_maths:
        print("compare: measuring where the frameworks' maths differ ...", file=sys.stderr, flush=True)
        style_list = list(job["style"]) if isinstance(job["style"], (list, tuple)) else [job["style"]]
        maths = explain.measure(dict(job, size=list(size), style=style_list), usable, call_isolated)
    meta = {"command": command, "settings": job["settings"], "size": list(size), "weights": job["weights"],
            "optimizers": {optimizer: settings for optimizer, settings in variants.items()},
            "untrained": first["untrained"], "zoo_weights": job["weights"] == "imagenet" and len(ok) > 1,
            "backends_requested": list(backends), "explained_backends": usable, "maths": maths}
    return build_report(folder, results, unusable, meta, inputs)


def command_line(argv: Sequence[str]) -> str:
    """The command as typed, quoted for a shell."""
    return "multistyle " + " ".join(shlex.quote(a) for a in argv)


def bench(backends: Sequence[str], sizes: Sequence[Tuple[int, int]], job: Dict[str, Any]
          ) -> Tuple[List[Dict[str, Any]], Dict[str, str]]:
    """Time ``job`` for every usable backend at every size, each in a fresh process."""
    usable, unusable = usable_backends(backends)
    if not usable:
        raise MultistyleError("--backends: none of " + ", ".join(backends) + " is usable: "
                              + "; ".join(unusable.values()))
    rows = []
    for name in usable:
        for size in sizes:
            label = f"{name} {size[0]}x{size[1]}"
            print(f"bench: {label}, {job['settings']['epochs']} iterations ...", file=sys.stderr, flush=True)
            r = run_isolated(dict(job, backend=name, size=list(size), label=label))
            row: Dict[str, Any] = {"backend": name, "size": list(size)}
            if "error" in r:
                row["error"] = r["error"]
            else:
                median, low, high = median_step(r["history"])
                if r.get("floor"):
                    floor = statistics.median(r["floor"][1:])  # the first is warm-up
                    row.update({"floor_seconds_per_iteration": floor, "over_floor": median / floor})
                row.update({"framework": r["framework"], "device": r["device"], "iterations": len(r["history"]),
                            "seconds_per_iteration": median, "seconds_p10": low, "seconds_p90": high,
                            "iterations_per_second": 1.0 / median, "peak_rss_bytes": r["peak_rss_bytes"],
                            "device_memory_bytes": r["device_memory_bytes"]})
            rows.append(row)
    return rows, unusable


def bench_table(rows: Sequence[Dict[str, Any]]) -> List[str]:
    """The lines ``multistyle bench`` prints."""
    lines = [f"{'backend':8} {'size':>9} {'s/it':>8} {'p10-p90':>15} {'it/s':>6} {'floor s/it':>10} {'÷floor':>6} "
             f"{'peak RSS':>9} {'device mem':>10}  framework, device"]
    for row in rows:
        size = f"{row['size'][0]}x{row['size'][1]}"
        if "error" in row:
            lines.append(f"{row['backend']:8} {size:>9} failed: {row['error']}")
            continue
        spread = f"{row['seconds_p10']:.3f}-{row['seconds_p90']:.3f}"
        floor = (f"{row['floor_seconds_per_iteration']:10.4f} {row['over_floor']:6.2f}"
                 if "floor_seconds_per_iteration" in row else f"{'-':>10} {'-':>6}")
        lines.append(f"{row['backend']:8} {size:>9} {row['seconds_per_iteration']:8.4f} {spread:>15} "
                     f"{row['iterations_per_second']:6.2f} {floor} {_mb(row['peak_rss_bytes']):>9} "
                     f"{_mb(row['device_memory_bytes']):>10}  {row['framework']}, {row['device']}")
    return lines
