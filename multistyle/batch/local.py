"""The local engine: a pool of worker processes (``spawn``), one job each at a time, retried when one dies."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections import deque
from multiprocessing.connection import wait as wait_for
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

from .worker import execute

Done = Callable[[int, Dict[str, Any], Optional[int]], None]


def _worker_main(connection: Any, device: Optional[str], threads: Optional[int]) -> None:
    """A local worker: runs jobs sent over ``connection`` until it receives ``None``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if threads:  # before any framework import: they read it once
        os.environ["OMP_NUM_THREADS"] = str(threads)
    while True:
        try:
            payload = connection.recv()
        except EOFError:
            return
        if payload is None:
            return
        if device and payload["device"] in ("auto", "gpu"):
            payload = dict(payload, device=device)
        connection.send(execute(payload))


class _Worker:
    def __init__(self, context: Any, device: Optional[str], threads: Optional[int]) -> None:
        self.connection, child = context.Pipe()
        self.process = context.Process(target=_worker_main, args=(child, device, threads), daemon=True)
        self.process.start()
        child.close()
        self.index: Optional[int] = None  # the job it holds


def gpu_count() -> int:
    """NVIDIA GPUs on this machine, without importing a framework (``nvidia-smi -L``); 0 without one."""
    import shutil
    import subprocess

    tool = shutil.which("nvidia-smi")
    if tool is None:
        return 0
    try:
        listed = subprocess.run([tool, "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in listed.splitlines() if line.startswith("GPU "))


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def worker_plan(workers: Optional[int], gpus: int, cores: int) -> Tuple[int, List[Optional[str]], Optional[int]]:
    """``(workers, device of each worker, OpenMP threads per worker)``.

    Default: one worker per GPU, each pinned to its GPU (jobs asking for
    ``auto`` or ``gpu``); on a CPU-only machine one worker, since a job
    already uses every core.  Several CPU workers share the cores evenly,
    unless ``OMP_NUM_THREADS`` is set.
    """
    count = workers if workers is not None else max(1, gpus)
    devices: List[Optional[str]] = [f"gpu:{i % gpus}" if gpus else None for i in range(count)]
    threads = None
    if not gpus and count > 1 and "OMP_NUM_THREADS" not in os.environ:
        threads = max(1, cores // count)
    return count, devices, threads


def run_local(payloads: Dict[int, Dict[str, Any]], plan: Tuple[int, List[Optional[str]], Optional[int]],
              retries: int, on_done: Done) -> None:
    """Run the jobs on a pool of worker processes (``plan``: :func:`worker_plan`); call ``on_done(index,
    result, attempts)`` as each ends."""
    count, devices, threads = plan
    context = multiprocessing.get_context("spawn")
    pending: Deque[int] = deque(payloads)
    deaths: Dict[int, int] = {index: 0 for index in payloads}
    pool: List[_Worker] = []
    try:
        while pending or any(worker.index is not None for worker in pool):
            for slot in range(count):
                if not pending:
                    break
                if slot == len(pool):
                    pool.append(_Worker(context, devices[slot], threads))
                worker = pool[slot]
                if worker.index is None:
                    worker.index = pending.popleft()
                    worker.connection.send(payloads[worker.index])
            busy = [worker for worker in pool if worker.index is not None]
            ready = set(wait_for([w.connection for w in busy] + [w.process.sentinel for w in busy]))
            for slot, worker in enumerate(pool):
                if worker.index is None or not ({worker.connection, worker.process.sentinel} & ready):
                    continue
                index, result = worker.index, None
                try:
                    if worker.connection.poll():
                        result = worker.connection.recv()
                except (EOFError, OSError):
                    result = None
                if result is not None:
                    worker.index = None
                    on_done(index, result, deaths[index] + 1)
                    continue
                if worker.process.is_alive():
                    continue  # woken by something else; the worker is still on its job
                worker.process.join()
                code = worker.process.exitcode
                deaths[index] += 1
                worker.connection.close()
                pool[slot] = _Worker(context, devices[slot], threads)
                if deaths[index] <= retries:
                    pending.appendleft(index)
                else:
                    on_done(index, {"status": "failed", "reason": f"its worker process died {deaths[index]} "
                                    f"times ({_exit_text(code)}); the last of {retries + 1} attempts"},
                            deaths[index])
    except BaseException:  # Ctrl-C, or a bug here: the workers stop now, mid-job
        for worker in pool:
            worker.process.kill()
        for worker in pool:
            worker.process.join()
        raise
    _stop(pool)


def _stop(pool: List[_Worker]) -> None:
    """Ask each worker to end, and wait for it (30 s, then it is killed)."""
    for worker in pool:
        try:
            worker.connection.send(None)
        except OSError:
            pass
    for worker in pool:
        worker.process.join(timeout=30)
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join()


def _exit_text(code: Optional[int]) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


