"""Time to a finished image, as a user lives it: fresh processes, imports and weight loading included.

For each backend and size this measures, each side in a fresh process of its own:

* **the chapter's loss** after 300 and after 500 epochs: a fresh ``multistyle run
  --preset d2l --epochs 500`` (the chapter's maths, as the parity tests show), whose
  ``--log`` gives the loss at every epoch and the epoch at which it first comes within
  1 % of each;
* **the chapter's script**: the chapter's own loop (``references/d2l_chapter.py``) run as
  a script in a fresh process for ``--chapter-epochs`` epochs.  Its time to a loss is its
  start-up (the process's wall time less its epochs: imports, weights, images) plus the
  epochs the d2l run needed to reach that loss times the script's median seconds per
  epoch.  JAX and TensorFlow have no chapter code: their yardstick is the chapter's
  PyTorch script (the textbook loop a reader of the chapter runs), on the epochs the
  backend's own d2l run needed; each candidate is also set against that d2l run (the same
  maths, faster per epoch than a chapter loop), printed below the table;
* **each candidate** (``--preset fast`` by default): one fresh ``multistyle run`` of all
  its epochs.  Its time to a loss is its start-up (the wall time less its epochs) plus
  its epochs' seconds until the loss at the full size first reaches it.  A candidate that
  ends above a target "never" reaches it: a run with ``--until-loss`` would run out of
  epochs first.

The targets are the chapter's loss after 300 and after 500 epochs, each within 1 %
(``NEAR``), and the 500-epoch loss itself.  A single fresh run's time moves by about 10 %
on a small machine: ``--repeats N`` runs the chapter's script and each candidate N times,
one after the other in each round, and reports the medians.

    python benchmarks/time_to_loss.py --backends torch --sizes 96x144,150x225,300x450 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

os.environ.setdefault("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0))))

from multistyle.backend.devices import mkl_avx2_on_amd  # noqa: E402

# Both sides on the same MKL code: the chapter's Paddle script gets what multistyle's Paddle backend sets.
MKL_CPU_TYPE = mkl_avx2_on_amd()

from multistyle.references.d2l_chapter import LOOPS  # noqa: E402

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "examples")
#: Candidates tried against the targets: the fast preset first.
CANDIDATES: Dict[str, List[str]] = {"multistyle --preset fast": ["--preset", "fast"]}
#: "Near" a target: within 1 % of it, a difference no one sees in the picture.
NEAR = 1.01
#: The chapter's two lengths: a shorter run, and its own 500 epochs.
LENGTHS = (300, 500)

CHAPTER_SCRIPT = """
import json, sys, time
from multistyle import images
from multistyle.references.d2l_chapter import LOOPS
from multistyle.vgg import random_weights
backend, height, width, epochs, examples = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
content = images.preprocess(images.load_image(examples + "/content.jpg"), (height, width))
style = images.preprocess(images.load_image(examples + "/style.jpg"), (height, width))
_, losses, times = LOOPS[backend](content, style, random_weights(0, last=28), epochs)
print(json.dumps({"times": times}))
"""


def cli(backend: str, size: Sequence[int], arguments: Sequence[str]) -> Dict[str, Any]:
    """A fresh ``multistyle run`` process: its wall time, its start-up (wall less epochs) and its epochs."""
    with tempfile.TemporaryDirectory() as folder:
        log = os.path.join(folder, "log.json")
        command = [sys.executable, "-m", "multistyle", "run", "--backend", backend, "--device", "cpu",
                   "--content", os.path.join(EXAMPLES, "content.jpg"), "--style", os.path.join(EXAMPLES, "style.jpg"),
                   "--output", os.path.join(folder, "out.png"), "--size", f"{size[0]}x{size[1]}",
                   "--weights", "random:0", "--quiet", "--log", log, *arguments]
        start = time.perf_counter()
        done = subprocess.run(command, cwd=folder, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if done.returncode:
            return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
        with open(log) as handle:
            epochs = json.load(handle)["epochs"]
    return {"wall": wall, "startup": wall - sum(row["seconds"] for row in epochs), "epochs": epochs}


def chapter_script(backend: str, size: Sequence[int], epochs: int, python: str = sys.executable) -> Dict[str, float]:
    """The chapter's loop as a script in a fresh ``python`` process: its start-up and median seconds per epoch."""
    start = time.perf_counter()
    done = subprocess.run([python, "-c", CHAPTER_SCRIPT, backend, str(size[0]), str(size[1]), str(epochs),
                           os.path.abspath(EXAMPLES)], cwd=tempfile.gettempdir(), capture_output=True, text=True,
                          check=True)
    wall = time.perf_counter() - start
    times = json.loads(done.stdout.strip().splitlines()[-1])["times"]
    return {"startup": wall - sum(times), "per_epoch": statistics.median(times[2:] if len(times) > 3 else times)}


def reached(epochs: List[Dict[str, Any]], target: float) -> Tuple[Optional[int], Optional[float]]:
    """(epoch, seconds of epochs) when the loss at the final scale first reached ``target``, or (None, None)."""
    final_scale = epochs[-1].get("scale", 0)
    seconds = 0.0
    for row in epochs:
        seconds += row["seconds"]
        if row.get("scale", 0) == final_scale and row["total"] <= target:
            return int(row["epoch"]), seconds
    return None, None


def targets(d2l: List[Dict[str, Any]]) -> List[Tuple[str, float]]:
    """(name, loss) of every target: the chapter's loss after each length within 1 %, and after 500 exactly."""
    out = [(f"{length} +1%", NEAR * d2l[length - 1]["total"]) for length in LENGTHS]
    return out + [(f"{LENGTHS[-1]} exact", d2l[LENGTHS[-1] - 1]["total"])]


def measure(backend: str, size: Sequence[int], chapter_epochs: int = 6,
            candidates: Optional[Dict[str, List[str]]] = None, repeats: int = 1,
            chapter_python: str = sys.executable) -> List[Dict[str, Any]]:
    """Rows: the yardstick (the chapter's script, or multistyle's d2l), multistyle's d2l, then each candidate.

    Each row has ``seconds``: per target name, the fresh-process seconds to reach it (None: never).  With
    ``repeats`` above 1 the chapter's script and each candidate run that many times, one after the other in
    each round, and each target's seconds are the median of the rounds (None if any round never reached it);
    ``rounds`` keeps every round's.  The d2l run, which sets the targets, runs once.
    """
    d2l = cli(backend, size, ["--preset", "d2l", "--epochs", str(LENGTHS[-1])])
    common = {"backend": backend, "size": list(size)}
    if "error" in d2l:
        return [dict(common, name="d2l", error=d2l["error"])]
    goals = targets(d2l["epochs"])
    chapter_backend = backend if backend in LOOPS else "torch" if "torch" in LOOPS else None
    chapters: List[Dict[str, float]] = []
    tried: Dict[str, List[Dict[str, Any]]] = {name: [] for name in (candidates or CANDIDATES)}
    for _ in range(repeats):
        if chapter_backend:
            chapters.append(chapter_script(chapter_backend, size, chapter_epochs, chapter_python))
        for name, arguments in (candidates or CANDIDATES).items():
            tried[name].append(cli(backend, size, arguments))
    rows = []
    if chapter_backend:
        name = "chapter's script" if chapter_backend == backend else f"chapter's script ({chapter_backend})"
        rounds = [{goal: chapter["startup"] + reached(d2l["epochs"], loss)[0] * chapter["per_epoch"]  # type: ignore[operator]
                   for goal, loss in goals} for chapter in chapters]
        rows.append(dict(common, name=name, startup=statistics.median(c["startup"] for c in chapters),
                         seconds=_medians(rounds), rounds=rounds))
    for name, runs in [("multistyle d2l", [d2l])] + list(tried.items()):
        failed = next((run for run in runs if "error" in run), None)
        if failed:
            rows.append(dict(common, name=name, error=failed["error"]))
            continue
        rounds = []
        for run in runs:
            seconds: Dict[str, Optional[float]] = {}
            for goal, loss in goals:
                epoch_seconds = reached(run["epochs"], loss)[1]
                seconds[goal] = None if epoch_seconds is None else run["startup"] + epoch_seconds
            rounds.append(seconds)
        rows.append(dict(common, name=name, startup=statistics.median(run["startup"] for run in runs),
                         end=statistics.median(run["epochs"][-1]["total"] for run in runs),
                         seconds=_medians(rounds), rounds=rounds))
    yardstick, own = rows[0]["seconds"], next(row["seconds"] for row in rows if row["name"] == "multistyle d2l")
    for row in rows:
        if "error" not in row:
            row["ratio"] = {goal: (yardstick[goal] / value if value else None) for goal, value in row["seconds"].items()}
            row["ratio_to_d2l"] = {goal: (own[goal] / value if value else None) for goal, value in row["seconds"].items()}
    for row in rows:
        row["targets"] = dict(goals)
    return rows


def _medians(rounds: List[Dict[str, Optional[float]]]) -> Dict[str, Optional[float]]:
    """Per target, the median seconds of the rounds, or None where any round never reached it."""
    return {goal: None if any(r[goal] is None for r in rounds) else statistics.median(r[goal] for r in rounds)  # type: ignore[misc]
            for goal in rounds[0]}


def table(rows: List[Dict[str, Any]]) -> List[str]:
    goals = list(rows[0]["targets"]) if rows and "targets" in rows[0] else []
    lines = [f"{'backend':10} {'size':>8} {'run':26} {'start-up':>8} " + " ".join(f"{g + ' s (x)':>20}" for g in goals)]
    for row in rows:
        size = f"{row['size'][0]}x{row['size'][1]}"
        if "error" in row:
            lines.append(f"{row['backend']:10} {size:>8} {row['name']:26} failed: {row['error']}")
            continue
        cells = []
        for goal in goals:
            value, ratio = row["seconds"][goal], row["ratio"][goal]
            cells.append(f"{'never':>20}" if value is None else f"{value:9.1f} ({ratio:5.2f}x)".rjust(20))
        lines.append(f"{row['backend']:10} {size:>8} {row['name']:26} {row['startup']:8.1f} " + " ".join(cells))
    if rows and "targets" in rows[0] and rows[0]["name"] != "chapter's script":
        for row in rows:
            if "error" not in row and not row["name"].startswith(("chapter's", "multistyle d2l")):
                lines.append(f"  {row['name']} against multistyle's own d2l run: " + " / ".join(
                    "never" if value is None else f"{value:.2f}x" for value in row["ratio_to_d2l"].values()))
    if rows and "targets" in rows[0]:
        lines.append("  targets: " + ", ".join(f"{g} = {v:.4f}" for g, v in rows[0]["targets"].items()))
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="torch,mxnet,paddle,jax,tensorflow")
    parser.add_argument("--sizes", default="96x144,150x225,300x450")
    parser.add_argument("--chapter-epochs", type=int, default=6, help="epochs of the chapter's script (default 6)")
    parser.add_argument("--candidates", default=None,
                        help='JSON {name: [multistyle run arguments]} (default: {"...fast": ["--preset", "fast"]})')
    parser.add_argument("--repeats", type=int, default=1,
                        help="rounds of the chapter's script and each candidate, medians reported (default 1)")
    parser.add_argument("--output", default=None, help="also write the rows as JSON")
    parser.add_argument("--chapter-python", default=sys.executable,
                        help="the Python that runs the chapter's script (default: this one); for a backend measured "
                             "in an environment of its own, without the chapter's framework")
    args = parser.parse_args()
    candidates = json.loads(args.candidates) if args.candidates else None
    print(f"time to the chapter's loss, fresh processes, synthetic weights, CPU; {os.cpu_count()} CPUs; "
          f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}; MKL_DEBUG_CPU_TYPE={MKL_CPU_TYPE or 'unset'}; "
          f"medians of {args.repeats} round(s)", flush=True)
    every: List[Dict[str, Any]] = []
    for backend in args.backends.split(","):
        for text in args.sizes.split(","):
            rows = measure(backend, [int(v) for v in text.split("x")], args.chapter_epochs, candidates, args.repeats,
                           args.chapter_python)
            every.extend(rows)
            print("\n".join(table(rows)), flush=True)
            if args.output:
                with open(args.output, "w") as handle:
                    json.dump(every, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
