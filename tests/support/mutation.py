"""The project's mutation check: does the test suite catch a broken promise?

Each entry of :data:`MUTATIONS` (in ``mutations.py`` beside this file) names a
promise the README makes, one small deliberate bug that breaks it (an exact
snippet of the code, which must occur exactly once, and what replaces it) and
the tests that should catch it.  For each mutation this script

1. copies the tree into a temporary folder, laid out as it is installed
   (``backends/`` becomes ``multistyle/backends/``), and runs the tests from
   there with ``PYTHONPATH`` pointing at the copy, so the mutated code is what
   the tests, and the processes they start, import;
2. applies the one mutation, runs its tests, and restores the file.

Mutations run ``--jobs`` at a time (default: the usable cores), each worker
in its own copy of the tree, since most of a mutation's seconds are spent
starting Python and importing the framework, on one core.

It prints which mutations were caught and by which test, and exits 1 if any
survived, if a snippet is no longer in the code (code moved: move its
mutation with it), or if the unmutated tests do not pass.

Usage::

    python tests/support/mutation.py            # every mutation
    python tests/support/mutation.py -k batch   # the mutations whose name contains "batch"
    python tests/support/mutation.py --list     # the list, with each promise
    python tests/support/mutation.py -j 1       # one at a time
    python tests/support/mutation.py --passed report.xml   # trust the suite's own run for the baseline

The baseline (the named tests must pass on the unmutated code, or a "caught" means nothing) is the costliest
single step.  ``--passed FILE`` takes it from a JUnit XML report of the suite run just before in the same
environment on the same code (``pytest --junitxml``, as ``tox -e torch`` writes one): a selection that this
report shows passing is not run again; one it shows failing stops the check; one it lacks (the run was
filtered) runs as before.

Plain patches rather than a generic mutation tool: each one is a bug a
reviewer can read, aimed at one promise, with the tests that hold it; a tool
that flips every operator finds many equivalent mutants and takes hours on a
suite that trains networks.  ``python3 -m tox -e torch`` runs it in CI, after that env's tests.
"""

from __future__ import annotations

import argparse
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from mutations import MUTATIONS, Mutation  # beside this script, so on its sys.path

ROOT = Path(__file__).resolve().parents[2]
#: What the copy holds: source folder -> folder in the copy (the package layout of pyproject.toml).
LAYOUT = {"multistyle": "multistyle", "backends": "multistyle/backends", "references": "multistyle/references",
          "tests": "tests",
          "benchmarks": "benchmarks", "examples": "examples", "docs": "docs", "tools": "tools"}
#: Folders installed inside the package as well, which the copy also holds where the tests read them.
ALSO = {"examples": "multistyle/examples"}
FILES = ("pyproject.toml", "README.md", "setup.py", "CHANGELOG.md")
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")


def copy_tree(destination: Path) -> None:
    for source, target in [*LAYOUT.items(), *ALSO.items()]:
        if (ROOT / source).is_dir():
            shutil.copytree(ROOT / source, destination / target, ignore=IGNORE, dirs_exist_ok=True)
    for name in FILES:
        shutil.copy2(ROOT / name, destination / name)


def copy_path(relative: str) -> str:
    """Where a repository path lives in the copy."""
    head, _, rest = relative.partition("/")
    return f"{LAYOUT.get(head, head)}/{rest}" if rest else LAYOUT.get(head, head)


def environment(copy: Path) -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(copy)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # a mutated file must never be shadowed by a cached one
    return env


def check_import_location(copy: Path) -> None:
    """The tests must import the copy, not an installed multistyle."""
    probe = "import multistyle, multistyle.backends; print(multistyle.__file__); print(multistyle.backends.__file__)"
    out = subprocess.run([sys.executable, "-c", probe], cwd=copy, env=environment(copy), capture_output=True,
                         text=True, check=True).stdout.split()
    for path in out:
        if not Path(path).resolve().is_relative_to(copy.resolve()):
            sys.exit(f"mutation: the tests would import {path}, not the copy in {copy}")


def _test_id(case: ElementTree.Element) -> str:
    """A JUnit test case's pytest node id (``tests/core/test_x.py::test_y[param]``)."""
    return f"{case.get('classname', '').replace('.', '/')}.py::{case.get('name')}"


def outcomes_of(report: Path) -> Dict[str, str]:
    """node id -> "passed", "failed" or "skipped", from a JUnit XML report of pytest."""
    found = {}
    for case in ElementTree.parse(report).iter("testcase"):
        failed = case.find("failure") is not None or case.find("error") is not None
        found[_test_id(case)] = "failed" if failed else "skipped" if case.find("skipped") is not None else "passed"
    return found


def covered(selection: str, outcomes: Dict[str, str]) -> List[str]:
    """The outcomes of the test cases a selection (a file, a test, or a test with its parameters) names."""
    return [outcome for test, outcome in outcomes.items()
            if test == selection or test.startswith(selection + "[") or test.startswith(selection + "::")]


def run_tests(copy: Path, tests: Sequence[str]) -> Tuple[int, List[str], str]:
    """``(pytest's exit code, the failing tests, the output's tail)``."""
    report = copy.parent / f"{copy.name}-report.xml"
    if report.exists():
        report.unlink()
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-o", "addopts=",
               f"--junitxml={report}", *tests]
    done = subprocess.run(command, cwd=copy, env=environment(copy), capture_output=True, text=True)
    failed = []
    if report.exists():
        failed = [test for test, outcome in outcomes_of(report).items() if outcome == "failed"]
    return done.returncode, failed, "\n".join((done.stdout + done.stderr).splitlines()[-15:])


def locate(copy: Path, mutation: Mutation) -> Tuple[Path, str]:
    path = copy / copy_path(mutation.path)
    text = path.read_text()
    count = text.count(mutation.find)
    if count != 1:
        raise LookupError(f"{mutation.path}: the snippet occurs {count} times, not once: the code moved or "
                          f"changed; move the mutation with it (tests/support/mutations.py): {mutation.find!r}")
    return path, text


def main(argv: Sequence[str] = ()) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", dest="keyword", default="", help="only the mutations whose name contains this")
    parser.add_argument("--list", action="store_true", help="list the mutations and their promises, and stop")
    parser.add_argument("--passed", type=Path, metavar="FILE",
                        help="a JUnit XML report of the suite just run on this code in this environment: the "
                             "selections it shows passing are not run again as the baseline")
    parser.add_argument("-j", "--jobs", type=int, default=len(os.sched_getaffinity(0)),
                        help="mutations tested at once, each in its own copy of the tree (default: the usable "
                             "cores; most of a mutation's time is starting Python and importing the framework)")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS if args.keyword in m.name]
    if args.list:
        for m in chosen:
            print(f"{m.name:34} {m.promise}\n{'':34} tests: {' '.join(m.tests)}")
        return 0
    if not chosen:
        print(f"mutation: no mutation name contains {args.keyword!r}", file=sys.stderr)
        return 2
    jobs = max(1, min(args.jobs, len(chosen)))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="multistyle-mutation-") as folder:
        # One copy per worker: a worker mutates its own copy, never one another worker's tests are reading.
        copies = [Path(folder) / f"tree{k}" for k in range(jobs)]
        for copy in copies:
            copy_tree(copy)
            check_import_location(copy)
        problems = []
        for m in chosen:  # every snippet is where its mutation says, before anything runs
            try:
                locate(copies[0], m)
            except LookupError as exc:
                problems.append(str(exc))
        if problems:
            print("\n".join(f"mutation: {p}" for p in problems), file=sys.stderr)
            return 1
        free: "queue.Queue[Path]" = queue.Queue()
        for copy in copies:
            free.put(copy)

        def in_a_copy(work):
            copy = free.get()
            try:
                return work(copy)
            finally:
                free.put(copy)

        # The tests must pass on the code as it is, or a "caught" would mean nothing.
        baseline = sorted({t for m in chosen for t in m.tests})
        trusted = 0
        if args.passed:
            outcomes = outcomes_of(args.passed)
            failing = [t for t in baseline if "failed" in covered(t, outcomes)]
            if failing:
                print(f"mutation: the unmutated tests fail in {args.passed}: {', '.join(failing)}", file=sys.stderr)
                return 1
            untrusted = [t for t in baseline if "passed" not in covered(t, outcomes)]
            trusted, baseline = len(baseline) - len(untrusted), untrusted
        shares = [share for share in (baseline[k::jobs] for k in range(jobs)) if share]  # none: nothing to run
        with ThreadPoolExecutor(jobs) as pool:
            runs = list(pool.map(lambda share: in_a_copy(lambda copy: run_tests(copy, share)), shares))
        for code, failed, tail in runs:
            if code != 0:
                print(f"mutation: the unmutated tests fail ({', '.join(failed) or 'exit ' + str(code)}):\n{tail}",
                      file=sys.stderr)
                return 1
        print(f"baseline: {len(baseline)} test selections pass on the unmutated code "
              f"({time.perf_counter() - started:.0f} s, {jobs} at a time)"
              + (f"; {trusted} more passed in {args.passed}" if args.passed else ""), flush=True)

        def mutate_and_test(copy: Path, m: Mutation) -> Tuple[int, List[str], str, float]:
            path, original = locate(copy, m)
            path.write_text(original.replace(m.find, m.replace))
            begun = time.perf_counter()
            try:
                code, failed, tail = run_tests(copy, m.tests)
            finally:
                path.write_text(original)
            return code, failed, tail, time.perf_counter() - begun

        survivors = []
        with ThreadPoolExecutor(jobs) as pool:
            futures = {pool.submit(in_a_copy, lambda copy, m=m: mutate_and_test(copy, m)): m for m in chosen}
            for number, future in enumerate(as_completed(futures), start=1):
                m = futures[future]
                code, failed, tail, seconds = future.result()
                if code == 0:
                    survivors.append(m.name)
                    verdict = "SURVIVED"
                elif failed:
                    verdict = "caught by " + failed[0] + (f" (+{len(failed) - 1} more)" if len(failed) > 1 else "")
                else:  # collection or usage error: the mutant broke the import, which is caught too, but say so
                    verdict = f"caught (pytest exit {code}, no test reached: {tail.splitlines()[-1] if tail else ''})"
                print(f"[{number:2}/{len(chosen)}] {m.name:34} {verdict}  ({seconds:.0f} s)", flush=True)
    total = time.perf_counter() - started
    print(f"{len(chosen) - len(survivors)} of {len(chosen)} mutations caught in {total:.0f} s")
    if survivors:
        print(f"mutation: survived: {', '.join(survivors)}; add a test that fails on each", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
