"""Time to a finished image: wall time to reach the loss the chapter's loop reaches after 500 epochs.

The target is the final loss of multistyle's own 500-epoch ``d2l`` run (the
chapter's maths, as the parity tests show), measured here in a fresh process
on the same images, size and synthetic weights.  The chapter's time is 500 x
its seconds per iteration (``chapter_vs_multistyle.py`` measures it; given
here with ``--chapter-seconds``, or measured in this run), so its long loop
need not run.  Each candidate (``--preset fast`` by default) runs in a fresh
process with ``--until-loss`` set to the target; its time is the sum of its
iterations' seconds, as the chapter's is.

    python benchmarks/time_to_loss.py --backends torch --size 150x225
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from typing import Any, Dict, List, Optional

from multistyle.compare import median_step, run_isolated
from multistyle.transfer import Settings, settings_dict

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "examples")
#: Candidates tried against the target: the fast preset first.
CANDIDATES: Dict[str, Dict[str, Any]] = {"fast": {"preset": "fast"}}


def run(backend: str, size: List[int], weights: str, **settings: Any) -> Dict[str, Any]:
    job = {"content": os.path.join(EXAMPLES, "content.jpg"), "style": os.path.join(EXAMPLES, "style.jpg"),
           "weights": weights, "device": "cpu", "size": size,
           "settings": settings_dict(Settings(**settings).resolved()), "backend": backend,
           "label": f"{backend} {settings.get('preset', 'd2l')}"}
    return run_isolated(job)


def chapter_seconds(backend: str, size: List[int], iterations: int = 8) -> float:
    """Median seconds per iteration of the chapter's own loop (after two warm-up iterations)."""
    import d2l_chapter
    from multistyle import images
    from multistyle.vgg import random_weights

    content = images.preprocess(images.load_image(os.path.join(EXAMPLES, "content.jpg")), tuple(size))
    style = images.preprocess(images.load_image(os.path.join(EXAMPLES, "style.jpg")), tuple(size))
    _, _, times = d2l_chapter.LOOPS[backend](content, style, random_weights(0, last=28), iterations)
    return statistics.median(times[2:])


def measure(backend: str, size: List[int], chapter: Optional[float], weights: str = "random:0",
            candidates: Optional[Dict[str, Dict[str, Any]]] = None) -> List[Dict[str, Any]]:
    """Rows: the d2l 500-epoch baseline, then each candidate, with times and the ratio to the chapter's."""
    baseline = run(backend, size, weights, preset="d2l", epochs=500)
    if "error" in baseline:
        return [{"backend": backend, "size": size, "name": "d2l 500", "error": baseline["error"]}]
    history = baseline["history"]
    target = history[-1]["total"]
    chapter = chapter if chapter is not None else chapter_seconds(backend, size)
    chapter_time = 500 * chapter
    rows = [{"backend": backend, "size": size, "name": "chapter loop, 500 epochs (500 x s/it)", "target": target,
             "seconds": chapter_time, "epochs": 500, "loss": target, "ratio": 1.0},
            {"backend": backend, "size": size, "name": "multistyle d2l, 500 epochs", "target": target,
             "seconds": sum(r["seconds"] for r in history), "epochs": 500, "loss": target,
             "s_per_it": median_step(history)[0]}]
    rows[-1]["ratio"] = chapter_time / rows[-1]["seconds"]
    for name, settings in (candidates or CANDIDATES).items():
        result = run(backend, size, weights, until_loss=target, **settings)
        if "error" in result:
            rows.append({"backend": backend, "size": size, "name": name, "error": result["error"]})
            continue
        h = result["history"]
        seconds = sum(r["seconds"] for r in h)
        reached = h[-1]["total"] <= target
        rows.append({"backend": backend, "size": size, "name": name, "target": target, "seconds": seconds,
                     "epochs": len(h), "loss": h[-1]["total"], "reached": reached,
                     "ratio": chapter_time / seconds if reached else None})
    return rows


def table(rows: List[Dict[str, Any]]) -> List[str]:
    lines = [f"{'backend':8} {'size':>8} {'run':40} {'epochs':>6} {'loss':>8} {'seconds':>8} {'chapter/run':>11}"]
    for row in rows:
        size = f"{row['size'][0]}x{row['size'][1]}"
        if "error" in row:
            lines.append(f"{row['backend']:8} {size:>8} {row['name']:40} failed: {row['error']}")
            continue
        ratio = f"{row['ratio']:.2f}" if row.get("ratio") else "not reached"
        lines.append(f"{row['backend']:8} {size:>8} {row['name']:40} {row['epochs']:6d} {row['loss']:8.4f} "
                     f"{row['seconds']:8.1f} {ratio:>11}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="torch,mxnet,paddle")
    parser.add_argument("--sizes", default="150x225,300x450")
    parser.add_argument("--candidates", default=None, help="JSON {name: settings} (default: the fast preset)")
    args = parser.parse_args()
    candidates = json.loads(args.candidates) if args.candidates else None
    print(f"time to the chapter's 500-epoch loss, synthetic weights, CPU; {os.cpu_count()} CPUs", flush=True)
    for backend in args.backends.split(","):
        for text in args.sizes.split(","):
            size = [int(v) for v in text.split("x")]
            print("\n".join(table(measure(backend, size, None, candidates=candidates))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
