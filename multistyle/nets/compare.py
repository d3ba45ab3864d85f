"""``multistyle compare --model``: one trained network on every framework, side by side, each with its time.

Each backend runs in its own child process (as ``compare`` runs its jobs): it reads the file, stylises the
content once (the first pass, which includes the framework's one-time work: JAX's and TensorFlow's
compilation, oneDNN's kernel choice) and then ``repeats`` more times; the report gives the first pass and the
median of the others, the picture, and each picture's difference from the first backend's, in 0..255 levels.
"""

from __future__ import annotations

import html
import json
import os
import statistics
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .. import images, pages
from ..errors import MultistyleError
from ..measure import call_isolated, usable_backends


def time_model(backend: str, device: str, model: str, pixels: np.ndarray, repeats: int, weights: str = "imagenet",
               arbitrary: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """In a child process: the picture of ``model`` on ``backend`` and the seconds of each pass.  An AdaIN
    network takes ``arbitrary`` (its runner's keywords: the styles' pixels, blend, masks, alpha; content pixels
    in [0, 1]), and each pass encodes the styles again."""
    from ..backend import get_backend
    from .arbitrary import ArbitraryRunner
    from .stylize import Runner, load_model

    B = get_backend(backend, device)
    network = load_model(model, weights)
    if arbitrary is None:
        run = Runner(B, network)
    else:
        runner = ArbitraryRunner(B, network)

        def run(content: np.ndarray) -> np.ndarray:
            return runner(content, **arbitrary) * 255.0
    seconds: List[float] = []
    out = None
    for _ in range(1 + repeats):
        started = time.perf_counter()
        out = run(pixels)
        seconds.append(time.perf_counter() - started)
    image = np.clip(np.rint(out), 0, 255).astype(np.uint8)  # type: ignore[arg-type]
    return {"backend": backend, "framework": B.framework_version(), "device": B.device, "image": image,
            "first": seconds[0], "warm": statistics.median(seconds[1:]) if repeats else seconds[0]}


def compare_model(backends: Sequence[str], folder: str, model: str, content: str, size: Optional[Tuple[int, int]],
                  device: str = "auto", repeats: int = 3, max_pixels: int = images.DEFAULT_MAX_PIXELS,
                  command: str = "", weights: str = "imagenet", styles: Sequence[str] = (), alpha: float = 1.0,
                  settings: Any = None) -> Dict[str, Any]:
    """Run ``model`` on each usable backend and write ``index.html`` and ``report.json`` into ``folder``.  An
    AdaIN network also takes ``styles`` (paths), ``alpha`` and ``settings`` (their blend, masks, scale and
    colour; :class:`~multistyle.settings.Settings`), as ``run --model`` does."""
    from .arbitrary import ArbitraryNetwork, style_inputs
    from .stylize import load_model

    network = load_model(model, weights)
    image = images.load_image(content, "--content", max_pixels)
    shape = size or (image.size[1], image.size[0])
    pixels = images.resize_pixels(image, shape)
    arbitrary = None
    if isinstance(network, ArbitraryNetwork):
        from ..transfer import _masks, read_masks
        from .adain import check_alpha

        if not styles:
            raise MultistyleError(f"--style: {model} is an AdaIN network, which stylises with any style image; give "
                                  f"one with --style")
        resolved = settings.resolved()
        style_images = [images.load_image(path, "--style", max_pixels) for path in styles]
        arbitrary = {"styles": style_inputs(style_images, shape, resolved, pixels), "blend": resolved.style_blend,
                     "masks": _masks(read_masks(resolved, len(styles), max_pixels), shape),
                     "alpha": check_alpha(alpha)}
    else:
        pixels = pixels * np.float32(255.0)
    usable, unusable = usable_backends(backends)
    if not usable:
        raise MultistyleError("--backends: none of " + ", ".join(backends) + " is usable: " + "; ".join(unusable.values()))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise MultistyleError(f"--output: cannot create folder {folder!r} ({exc.strerror or exc})") from None
    images.check_writable(os.path.join(folder, "index.html"), "--output")
    rows: List[Dict[str, Any]] = []
    failed: Dict[str, str] = {}
    for name in usable:
        print(f"compare: running {name} ...", file=sys.stderr, flush=True)
        try:
            rows.append(call_isolated(time_model, name, device, model, pixels, repeats, weights, arbitrary))
        except MultistyleError as exc:
            failed[name] = str(exc)
    if not rows:
        raise MultistyleError("every backend failed: " + "; ".join(f"{k}: {v}" for k, v in failed.items()))
    reference = rows[0]["image"].astype(np.int16)
    for row in rows:
        diff = np.abs(row["image"].astype(np.int16) - reference)
        row["max_diff"], row["mean_diff"] = int(diff.max()), float(diff.mean())
        images.save_image(row["image"], os.path.join(folder, f"{row['backend']}.png"))
    content_pixels = pixels * 255.0 if arbitrary else pixels
    images.save_image(np.clip(np.rint(content_pixels), 0, 255).astype(np.uint8), os.path.join(folder, "content.png"))
    data = {"command": command, "model": model, "network": network.describe(), "size": list(shape),
            "styles": [os.path.basename(path) for path in styles] if arbitrary else [],
            "alpha": arbitrary["alpha"] if arbitrary else None,
            "repeats": repeats, "unusable": unusable, "failed": failed,
            "backends": [{k: v for k, v in row.items() if k != "image"} for row in rows]}
    with images.atomic_write(os.path.join(folder, "report.json")) as handle:
        handle.write(json.dumps(data, indent=2).encode())
    with images.atomic_write(os.path.join(folder, "index.html")) as handle:
        handle.write(_render(data).encode())
    return data


def _render(data: Dict[str, Any]) -> str:
    first = data["backends"][0]["backend"]
    figures = ["<figure><img src='content.png' alt='content'><figcaption>content</figcaption></figure>"]
    figures += [f"<figure><img src='{html.escape(row['backend'])}.png' alt='{html.escape(row['backend'])}'>"
                f"<figcaption>{html.escape(row['backend'])}: {row['warm']:.3f} s</figcaption></figure>"
                for row in data["backends"]]
    table = ["<table class='numbers'><tr><th>backend</th><th>framework</th><th>first pass (s)</th>"
             f"<th>warm, median of {data['repeats']} (s)</th><th>max diff vs {html.escape(first)}</th>"
             "<th>mean diff</th></tr>"]
    for row in data["backends"]:
        table.append(f"<tr><td>{html.escape(row['backend'])}</td><td>{html.escape(row['framework'])}</td>"
                     f"<td>{row['first']:.3f}</td><td>{row['warm']:.3f}</td><td>{row['max_diff']}</td>"
                     f"<td>{row['mean_diff']:.3f}</td></tr>")
    table.append("</table>")
    styled = (f" with {html.escape(', '.join(data['styles']))}, alpha {data['alpha']:g} (each pass encodes the "
              f"style again)" if data.get("styles") else "")
    notes = [f"<p>{html.escape(data['network'])}{styled}, at {data['size'][0]}x{data['size'][1]}. Differences are in "
             "0..255 levels. The first pass includes each framework's one-time work (compilation, kernel choice).</p>"]
    notes += [f"<p class='failed'>{html.escape(name)} did not run: {html.escape(reason)}</p>"
              for name, reason in {**data["unusable"], **data["failed"]}.items()]
    if data["command"]:
        notes.append(f"<pre>{html.escape(data['command'])}</pre>")
    return pages.page("One style network on every framework", [*notes, "".join(figures), "".join(table)])
