"""Every shell example of the documentation marked ``<!-- runnable -->`` runs, as a reader would type it,
at a tiny size with random weights (options appended to each line; the last of an option wins)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from multistyle.backend import BUILTIN_BACKENDS
from multistyle.vgg import random_weights, save_npz
from support import REPOSITORY
from support.needs import CHECKS, require

MARK = re.compile(r"<!-- runnable -->\n```sh\n(.*?)```", re.S)
#: What each command gets appended, so that it runs in seconds.
TINY = {"run": ["--size", "24x32", "--epochs", "2", "--weights", "random:1"],
        "compare": ["--size", "24x32", "--epochs", "2", "--weights", "random:1", "--no-maths"],
        "batch": ["--size", "24x32", "--epochs", "2", "--weights", "random:1"],
        "bench": ["--sizes", "24x32", "--epochs", "2"], "weights": [],
        "train": ["--size", "16", "--iterations", "1", "--batch-size", "1", "--weights", "random:1", "--quiet"]}


def examples():
    found = []
    for page in sorted((REPOSITORY / "docs").rglob("*.md")):
        for block in MARK.findall(page.read_text(encoding="utf-8")):
            lines = block.replace("\\\n", " ").splitlines()
            found += [pytest.param(line.split("#")[0].strip(), id=f"{page.stem}:{index}")
                      for index, line in enumerate(lines) if line.strip().startswith("multistyle ")]
    return found


EXAMPLES = examples()


def test_the_docs_mark_examples_as_runnable():
    assert len(EXAMPLES) >= 8, EXAMPLES


@pytest.mark.parametrize("line", EXAMPLES)
def test_a_runnable_example_runs(line, tmp_path):
    argv = shlex.split(line)
    named = {name for name in BUILTIN_BACKENDS if re.search(rf"\b{name}\b", line)}
    if "pth" in line:
        named.add("torch")
    if "pdparams" in line:
        named.add("paddle")
    if argv[1] in ("run", "batch", "train") and not named:
        named.add("torch")  # the default backend
    for name in sorted(named):
        require(name)
    shutil.copytree(REPOSITORY / "examples", tmp_path / "examples")
    for folder, source in (("photos", "content.jpg"), ("paintings", "style.jpg")):
        (tmp_path / folder).mkdir()
        shutil.copy(REPOSITORY / "examples" / source, tmp_path / folder / source)
    (tmp_path / "jobs.csv").write_text("content,style\nphotos/content.jpg,paintings/style.jpg\n")
    save_npz(random_weights(3), str(tmp_path / "vgg19.npz"))
    if "dcbb9e9d.pth" in line:
        subprocess.run([sys.executable, "-m", "multistyle", "weights", "convert", "vgg19.npz", "vgg19-dcbb9e9d.pth"],
                       cwd=tmp_path, check=True, capture_output=True, timeout=300)
    if argv[1] == "bench":
        argv[argv.index("--backends") + 1] = ",".join(n for n in argv[argv.index("--backends") + 1].split(",")
                                                     if CHECKS[n]() is None)
    done = subprocess.run([sys.executable, "-m", *argv, *TINY[argv[1]]], cwd=tmp_path, capture_output=True,
                          text=True, timeout=900, env={**os.environ, "COLUMNS": "100"})
    assert done.returncode == 0, f"{line}\n{done.stderr[-3000:]}"
