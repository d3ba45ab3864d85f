"""The batch: plan the jobs, skip what is done, run the rest on an engine, record every result."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

from .. import images
from ..errors import MultistyleError
from .jobs import BatchJob
from .local import gpu_count, run_local, usable_cores, worker_plan
from .store import Entry, finish, finished_sidecar, job_key, output_name, stem, style_label, write_result

ENGINES = ("local", "ray")


def run_batch(jobs: Sequence[BatchJob], output: str, *, engine: str = "local", workers: Optional[int] = None,
              retries: int = 2, ray_address: Optional[str] = None, num_cpus: Optional[float] = None,
              num_gpus: Optional[float] = None, progress: bool = False, command: str = "",
              notice: str = "", _kill_once: Optional[Dict[int, str]] = None) -> Dict[str, Any]:
    """Run ``jobs`` into the folder ``output``; return the summary and one row per job (``results.json``).

    Skips the jobs already done there; writes each result and its sidecar as it finishes, then ``results.json``,
    ``results.csv`` and ``index.html``.  ``notice`` is printed to stderr once every check has passed (the CLI's
    warning about untrained weights: a mistake stays the only line printed).  ``_kill_once`` (tests only) maps
    job indexes to marker files: see :func:`multistyle.batch.worker.fault_injection`.
    """
    _check_options(engine, retries, workers, jobs, output)
    started = time.perf_counter()
    entries = [Entry(index, job) for index, job in enumerate(jobs)]
    payloads = _plan(entries, output, _kill_once or {})
    used = ""  # what ran the jobs, for the summary
    with contextlib.ExitStack() as stack:
        if engine == "ray" and payloads:  # connect (or fail) before anything is written
            from .cluster import ray_connection, run_ray

            ray, cpus, gpus, cluster = stack.enter_context(ray_connection(ray_address, num_cpus, num_gpus))
        try:
            os.makedirs(output, exist_ok=True)
        except OSError as exc:
            raise MultistyleError(f"--output: cannot create folder {output!r} ({exc.strerror or exc})") from None
        images.check_writable(os.path.join(output, "results.json"), "--output")
        if notice:
            print(notice, file=sys.stderr, flush=True)
        bar = _JobsBar(len(entries), entries, enabled=progress)

        def on_done(index: int, result: Dict[str, Any], attempts: Optional[int]) -> None:
            entry = entries[index]
            entry.attempts = attempts
            if result["status"] == "done":
                entry.sidecar = write_result(output, entry, result)
                entry.status = "done"
            else:
                entry.status, entry.reason = "failed", result["reason"]
                bar.write(f"batch: failed: {_describe(entry.job)}: {entry.reason}")
            bar.advance()

        try:
            if payloads and engine == "local":
                gpus, cores = gpu_count(), usable_cores()  # nvidia-smi runs once
                plan = worker_plan(min(worker_plan(workers, gpus, cores)[0], len(payloads)), gpus, cores)
                used = f"local, {plan[0]} worker{'s' if plan[0] > 1 else ''}"
                run_local(payloads, plan, retries, on_done)
            elif payloads:
                used = "ray: " + cluster
                run_ray(ray, payloads, cpus, gpus, retries, on_done)
        except BaseException:
            for entry in entries:
                if entry.status != "pending":
                    continue
                # An interrupt between writing a job's sidecar and marking it done leaves a finished job on disk.
                entry.sidecar = finished_sidecar(output, entry.name, entry.key)
                if entry.sidecar is not None:
                    entry.status = "done"
                else:
                    entry.status, entry.reason = "interrupted", "the batch stopped before this job ended"
            raise
        finally:
            bar.close()
            summary = finish(output, entries, engine, used, time.perf_counter() - started, command)
    return summary


def _check_options(engine: str, retries: int, workers: Optional[int], jobs: Sequence[BatchJob], output: str) -> None:
    if engine not in ENGINES:
        raise MultistyleError(f"--engine: expected one of {', '.join(ENGINES)}, got {engine!r}")
    if retries < 0:
        raise MultistyleError(f"--retries: expected 0 or more, got {retries}")
    if workers is not None and workers < 1:
        raise MultistyleError(f"--workers: expected 1 or more, got {workers}")
    if not jobs:
        raise MultistyleError("no jobs to run")
    if os.path.exists(output) and not os.path.isdir(output):
        raise MultistyleError(f"--output: {output!r} is a file; batch writes a folder")


def _plan(entries: List[Entry], output: str, kill_once: Dict[int, str]) -> Dict[int, Dict[str, Any]]:
    """Key and name each job; mark the finished ones skipped and the unreadable ones failed; return the
    payloads of the jobs to run."""
    payloads: Dict[int, Dict[str, Any]] = {}
    for entry in entries:
        try:
            entry.key = job_key(entry.job)
        except OSError as exc:  # an input that cannot be read at all: this job fails, the others go on
            entry.status, entry.reason = "failed", _unreadable(entry.job, exc)
            continue
        except MultistyleError as exc:  # a clip's folder without frames, say
            entry.status, entry.reason = "failed", str(exc)
            continue
        entry.name = output_name(entry.job, entry.key)
        entry.sidecar = finished_sidecar(output, entry.name, entry.key)
        if entry.sidecar is not None:
            entry.status = "skipped"
            continue
        payloads[entry.index] = entry.job.to_payload()
        if entry.job.clip:  # the worker writes the clip's frames beside it, and then the video, into the batch folder
            payloads[entry.index]["output"] = os.path.abspath(os.path.join(output, entry.name))
            payloads[entry.index]["content"] = os.path.abspath(entry.job.content)  # a Ray worker has its own cwd
        if entry.index in kill_once:
            payloads[entry.index]["kill_once"] = kill_once[entry.index]
    return payloads


def _unreadable(job: BatchJob, exc: OSError) -> str:
    path = exc.filename or job.content
    option = "--content" if path == job.content else ("--style" if path in job.style else "--weights")
    if isinstance(exc, FileNotFoundError):
        return f"{option}: file {path!r} does not exist"
    return f"{option}: cannot read {path!r} ({exc.strerror or exc})"


def _describe(job: BatchJob) -> str:
    return f"{stem(job.content)} x {style_label(job)} on {job.backend}" + (f" ({job.source})" if job.source else "")


class _JobsBar:
    """A progress bar over jobs (tqdm): done, failed and skipped counts, and the ETA of what is left."""

    def __init__(self, total: int, entries: List[Entry], enabled: bool) -> None:
        self.entries, self.bar = entries, None
        if enabled:
            from tqdm import tqdm

            skipped = sum(entry.status in ("skipped", "failed") for entry in entries)
            self.bar = tqdm(total=total, initial=skipped, desc="batch", unit="job", file=sys.stderr,
                            dynamic_ncols=True, leave=True)
            self._postfix()

    def _postfix(self) -> None:
        counts = {status: sum(entry.status == status for entry in self.entries)
                  for status in ("done", "failed", "skipped")}
        self.bar.set_postfix(counts, refresh=True)  # type: ignore[union-attr]

    def advance(self) -> None:
        if self.bar is not None:
            self._postfix()
            self.bar.update(1)

    def write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


