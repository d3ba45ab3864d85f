"""Make a release's files and check them as a user meets them: every step of a release but the upload.

    python3 -m tox -e package            # what CI runs
    python tools/release.py [--work DIR] [--extras mxnet,jax,...] [--tag]

1. builds the sdist, and a wheel from it (``python -m build``), and a second wheel from the source tree
   (``--wheel``); the two wheels must hold the same files;
2. ``twine check --strict`` on the sdist and the wheel;
3. checks the wheel: the version in its name and metadata is ``multistyle.__version__``, CHANGELOG.md has a
   section for it, its long description has no relative link or image, it holds the backends, the references
   and the example pictures and no tests;
4. installs the wheel into a fresh virtual environment with its core dependencies only, and runs
   ``multistyle --version`` and ``multistyle backends`` there, from outside the checkout;
5. installs the first framework extra of ``--extras`` that installs (the smallest downloads first: MXNet's
   wheel is 50 MB, torch's several GB) and runs ``multistyle run --weights random`` with it on the packaged
   example pictures: a 32x48 picture must come out;
6. with ``--tag``, and the work tree clean, tags the commit ``v<version>`` (annotated).  Upload by hand:
   ``twine upload DIR/dist/*``.

Each step prints one line; the first failure stops the script with a one-line reason and exit status 1.
"""

from __future__ import annotations

import argparse
import email
import functools
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import List, Optional, Sequence

REPOSITORY = Path(__file__).resolve().parent.parent
#: Framework extras to try in turn, the smallest downloads first.
EXTRAS = ("mxnet", "jax", "paddle", "tensorflow", "torch")
#: Files the wheel must hold (the backends, the references, the example pictures) and must not (tests).
MUST_HOLD = ("multistyle/backends/torch_backend.py", "multistyle/backends/mxnet_backend.py",
             "multistyle/backends/paddle_backend.py", "multistyle/backends/jax_backend.py",
             "multistyle/backends/tensorflow_backend.py", "multistyle/references/d2l_chapter.py",
             "multistyle/examples/content.jpg", "multistyle/examples/style.jpg", "multistyle/serve/app.js")
TESTS = re.compile(r"(^|/)(tests?|conftest\.py$)")


def core_modules() -> tuple:
    """Every module of the core package in the tree (``multistyle/**/*.py``), as the wheel names them: a package
    left out of ``pyproject.toml``'s list would be missing from the wheel, and from every install."""
    root = REPOSITORY / "multistyle"
    return tuple(str(path.relative_to(REPOSITORY)).replace("\\", "/") for path in sorted(root.rglob("*.py"))
                 if "__pycache__" not in path.parts)


class ReleaseError(Exception):
    """A step failed: its message is the one line the script prints."""


@functools.lru_cache(maxsize=None)
def setup_module():
    """setup.py as a module (``version``, ``long_description``, ``relative_targets``), without running setup()."""
    spec = importlib.util.spec_from_file_location("multistyle_setup", REPOSITORY / "setup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def source_version() -> str:
    try:
        return setup_module().version(REPOSITORY)
    except ValueError as exc:
        raise ReleaseError(str(exc)) from None


def changelog_versions(text: str) -> List[str]:
    """The section headings of a Keep a Changelog file, in order: "Unreleased", then each release's version."""
    return re.findall(r"^## \[([^\]]+)\]", text, re.M)


def wheel_metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n))
        return email.message_from_bytes(archive.read(name))


def wheel_problems(wheel: Path, version: str, changelog: str) -> List[str]:
    """What is wrong with a built wheel, as lines; empty where nothing is."""
    problems = []
    metadata = wheel_metadata(wheel)
    if metadata["Version"] != version or f"-{version}-" not in wheel.name:
        problems.append(f"{wheel.name}: version {metadata['Version']}, but multistyle.__version__ is {version}")
    versions = changelog_versions(changelog)
    if not versions or versions[0] != "Unreleased":
        problems.append("CHANGELOG.md: its first section is not ## [Unreleased]")
    if version not in versions:
        problems.append(f"CHANGELOG.md: no section ## [{version}] for this release")
    description = metadata.get_payload()
    relative = setup_module().relative_targets(description)
    if relative:
        problems.append(f"{wheel.name}: the long description links to {', '.join(relative)}, which break on a "
                        "package index (setup.py rewrites README.md's links: see URL_BASE)")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    missing = [name for name in MUST_HOLD + core_modules() if name not in names]
    if missing:
        problems.append(f"{wheel.name}: lacks {', '.join(missing)}")
    tests = [name for name in names if TESTS.search(name)]
    if tests:
        problems.append(f"{wheel.name}: holds tests: {', '.join(tests[:5])}")
    return problems


def _run(argv: Sequence[str], what: str, cwd: Optional[Path] = None, env: Optional[dict] = None) -> str:
    done = subprocess.run(list(argv), cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or ["(no output)"]
        raise ReleaseError(f"{what} failed (exit {done.returncode}): {tail[0]}")
    return done.stdout


def _step(message: str) -> None:
    print(f"release: {message}", flush=True)


def build(work: Path) -> Path:
    """The sdist and its wheel in work/dist, a wheel from the tree in work/tree; the wheel, once both agree."""
    dist, tree = work / "dist", work / "tree"
    for folder in (dist, tree):
        shutil.rmtree(folder, ignore_errors=True)
    _run([sys.executable, "-m", "build", "--outdir", str(dist), str(REPOSITORY)], "python -m build (sdist, wheel)")
    _run([sys.executable, "-m", "build", "--wheel", "--outdir", str(tree), str(REPOSITORY)],
         "python -m build --wheel")
    from_sdist, from_tree = next(dist.glob("*.whl")), next(tree.glob("*.whl"))
    with zipfile.ZipFile(from_sdist) as a, zipfile.ZipFile(from_tree) as b:
        left, right = set(a.namelist()), set(b.namelist())
    if left != right:
        raise ReleaseError(f"the wheel built from the sdist differs from the one built from the tree: only from the "
                           f"sdist {sorted(left - right)}, only from the tree {sorted(right - left)} (MANIFEST.in?)")
    _step(f"built {', '.join(p.name for p in sorted(dist.iterdir()))}; the wheel from the sdist holds the same "
          f"{len(left)} files as the wheel from the tree")
    return from_sdist


def _fresh_venv(work: Path) -> Path:
    venv = work / "fresh"
    shutil.rmtree(venv, ignore_errors=True)
    _run([sys.executable, "-m", "venv", str(venv)], "python -m venv")
    return venv / "bin"


def try_as_a_user(wheel: Path, version: str, work: Path, extras: Sequence[str]) -> None:
    bin_ = _fresh_venv(work)
    outside = work / "user"  # not the checkout: the installed package answers, not the source tree
    outside.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    pip = [str(bin_ / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    _run([*pip, str(wheel)], f"pip install {wheel.name}", cwd=outside, env=env)
    said = _run([str(bin_ / "multistyle"), "--version"], "multistyle --version", cwd=outside, env=env).strip()
    if said != f"multistyle {version}":
        raise ReleaseError(f"multistyle --version says {said!r}, expected 'multistyle {version}'")
    installed = _run([str(bin_ / "python"), "-c", "import importlib.metadata as m, multistyle; "
                      "print(m.version('multistyle'), multistyle.__version__)"], "import multistyle", cwd=outside,
                     env=env).split()
    if installed != [version, version]:
        raise ReleaseError(f"installed metadata and multistyle.__version__ say {installed}, expected {version}")
    _run([str(bin_ / "multistyle"), "backends"], "multistyle backends (core only)", cwd=outside, env=env)
    _step(f"installed the wheel alone in a fresh venv: {said}; multistyle backends answers")
    for extra in extras:
        try:
            _run([*pip, f"{wheel}[{extra}]"], f"pip install [{extra}]", cwd=outside, env=env)
        except ReleaseError as exc:
            _step(f"{exc}; trying the next extra")
            continue
        listed = _run([str(bin_ / "multistyle"), "backends"], "multistyle backends", cwd=outside, env=env)
        if not re.search(rf"^{extra}\s+usable", listed, re.M):
            raise ReleaseError(f"after pip install [{extra}], multistyle backends does not list {extra} as usable")
        examples = _run([str(bin_ / "python"), "-c", "import importlib.resources as r; "
                         "print(r.files('multistyle.examples'))"], "locate the example pictures", cwd=outside,
                        env=env).strip()
        output = outside / f"{extra}.png"
        _run([str(bin_ / "multistyle"), "run", "--backend", extra, "--weights", "random", "--size", "32x48",
              "--epochs", "3", "--quiet", "--content", f"{examples}/content.jpg", "--style",
              f"{examples}/style.jpg", "--output", str(output)], f"multistyle run --backend {extra}",
             cwd=outside, env=env)
        size = _run([str(bin_ / "python"), "-c", f"from PIL import Image; print(*Image.open({str(output)!r}).size)"],
                    "open the result", cwd=outside, env=env).split()
        if size != ["48", "32"]:
            raise ReleaseError(f"multistyle run wrote a {'x'.join(size)} picture, expected 48x32 (width x height)")
        _step(f"pip install [{extra}], then multistyle run --backend {extra} --weights random: a 32x48 picture")
        return
    raise ReleaseError(f"none of the extras {', '.join(extras)} installed")


def tag(version: str) -> None:
    if _run(["git", "status", "--porcelain"], "git status", cwd=REPOSITORY).strip():
        raise ReleaseError("the work tree has changes: commit them before tagging")
    name = f"v{version}"
    if _run(["git", "tag", "--list", name], "git tag --list", cwd=REPOSITORY).strip():
        raise ReleaseError(f"tag {name} exists already: raise multistyle.__version__ first")
    _run(["git", "tag", "-a", name, "-m", f"multistyle {version}"], "git tag", cwd=REPOSITORY)
    _step(f"tagged {name}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, help="folder for the files and the fresh venv (default: a temporary one)")
    parser.add_argument("--extras", default=",".join(EXTRAS),
                        help="framework extras to try in turn for the run (default: %(default)s)")
    parser.add_argument("--tag", action="store_true", help="tag the commit v<version> once every check passed")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="multistyle-release-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        version = source_version()
        wheel = build(work)
        _run([sys.executable, "-m", "twine", "check", "--strict", *map(str, sorted((work / "dist").iterdir()))],
             "twine check --strict")
        _step("twine check --strict: passed")
        problems = wheel_problems(wheel, version, (REPOSITORY / "CHANGELOG.md").read_text(encoding="utf-8"))
        if problems:
            raise ReleaseError("; ".join(problems))
        _step(f"the wheel is {version}, CHANGELOG.md has its section, no relative link in its description, "
              "the backends, references and example pictures in it, no tests")
        try_as_a_user(wheel, version, work, [e.strip() for e in args.extras.split(",") if e.strip()])
        if args.tag:
            tag(version)
    except ReleaseError as exc:
        print(f"release: {exc}", file=sys.stderr)
        return 1
    print(f"release: multistyle {version} is ready in {work / 'dist'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
