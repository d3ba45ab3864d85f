"""``multistyle bench``: seconds per iteration of every usable backend at every size, each in a fresh process,
against the backend's own floor measured in the same process."""

from __future__ import annotations

import sys
from typing import Any, Dict, List, Sequence, Tuple

from .errors import MultistyleError
from .measure import median_step, run_isolated, usable_backends
from .pages import megabytes


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
                    row.update(floor_figures(r["floor"], median))
                row.update({"framework": r["framework"], "device": r["device"], "iterations": len(r["history"]),
                            "seconds_per_iteration": median, "seconds_p10": low, "seconds_p90": high,
                            "iterations_per_second": 1.0 / median, "peak_rss_bytes": r["peak_rss_bytes"],
                            "device_memory_bytes": r["device_memory_bytes"]})
            rows.append(row)
    return rows, unusable


#: What the ratio column says when the floor measured slower than the step it bounds.
FAULT = "fault"


def floor_figures(floor: Sequence[float], step: float) -> Dict[str, Any]:
    """The floor's median s/it and p10/p90 (its first iteration is warm-up), and the step's ratio to it.

    The floor is the step without its losses and optimizer, so it cannot be slower: a floor that measures
    slower is a measurement fault (a busy machine, a noisy floor), reported as such, never as a ratio below 1.
    """
    median, low, high = median_step([{"seconds": t} for t in floor])  # as the step's: warm-up excluded
    figures: Dict[str, Any] = {"floor_seconds_per_iteration": median, "floor_p10": low, "floor_p90": high}
    if median > step:
        figures["over_floor"] = None
        figures["floor_fault"] = (f"the floor measured {median:.4g} s/it, slower than the step it bounds "
                                  f"({step:.4g} s/it): the machine was busy or the floor noisy; run it again")
    else:
        figures["over_floor"] = step / median
    return figures


def bench_table(rows: Sequence[Dict[str, Any]]) -> List[str]:
    """The lines ``multistyle bench`` prints."""
    lines = [f"{'backend':10} {'size':>9} {'s/it':>8} {'p10-p90':>15} {'it/s':>6} {'floor s/it':>10} {'÷floor':>6} "
             f"{'peak RSS':>9} {'device mem':>10}  framework, device"]
    for row in rows:
        size = f"{row['size'][0]}x{row['size'][1]}"
        if "error" in row:
            lines.append(f"{row['backend']:10} {size:>9} failed: {row['error']}")
            continue
        spread = f"{row['seconds_p10']:.3f}-{row['seconds_p90']:.3f}"
        if "floor_seconds_per_iteration" not in row:
            floor = f"{'-':>10} {'-':>6}"
        else:
            ratio = FAULT if row.get("floor_fault") else f"{row['over_floor']:.2f}"
            floor = f"{row['floor_seconds_per_iteration']:10.4f} {ratio:>6}"
        lines.append(f"{row['backend']:10} {size:>9} {row['seconds_per_iteration']:8.4f} {spread:>15} "
                     f"{row['iterations_per_second']:6.2f} {floor} {megabytes(row['peak_rss_bytes']):>9} "
                     f"{megabytes(row['device_memory_bytes']):>10}  {row['framework']}, {row['device']}")
    faults = [row for row in rows if row.get("floor_fault")]
    for row in faults:
        lines.append(f"{FAULT}: {row['backend']} {row['size'][0]}x{row['size'][1]}: {row['floor_fault']}")
    return lines
