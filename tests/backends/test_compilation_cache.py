"""JAX keeps its compiled programs between processes: a second ``multistyle run`` skips the compile.

Each run is a fresh process, as a user runs it.  JAX writes one cache entry per program it compiled for longer
than ``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS``: 1 s by JAX's default, 0 by multistyle's where the user has
not set it, so that the tiny programs of these runs (none takes a second) are kept.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from support.needs import require

pytestmark = pytest.mark.backend("jax")


def _run(image_files, folder, **environment):
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("JAX_COMPILATION_CACHE", "JAX_PERSISTENT_CACHE"))}
    env.update(environment)
    argv = [sys.executable, "-m", "multistyle", "run", "--backend", "jax", "--content", image_files["content"],
            "--style", image_files["style"], "--output", str(folder / "out.png"), "--size", "16x24",
            "--epochs", "2", "--weights", "random:1", "--device", "cpu"]
    done = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stderr


def _entries(folder):
    return sorted(path.name for path in folder.iterdir()) if folder.is_dir() else []


def test_compiled_programs_are_kept_in_the_users_cache_folder(image_files, tmp_path):
    require("jax")
    cache = tmp_path / "cache" / "multistyle" / "jax"
    _run(image_files, tmp_path, XDG_CACHE_HOME=str(tmp_path / "cache"))
    first = _entries(cache)
    assert any(name.startswith("jit_") for name in first), first  # the objective's program among them
    _run(image_files, tmp_path, XDG_CACHE_HOME=str(tmp_path / "cache"))
    assert _entries(cache) == first  # the second process found every program it needed


def test_the_users_own_minimum_compile_time_is_kept(image_files, tmp_path):
    require("jax")
    _run(image_files, tmp_path, XDG_CACHE_HOME=str(tmp_path / "cache"), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="60")
    assert _entries(tmp_path / "cache" / "multistyle" / "jax") == []  # no program took a minute


def test_jax_own_setting_names_the_folder_and_an_unusable_one_is_no_error(image_files, tmp_path):
    require("jax")
    own = tmp_path / "own"
    # JAX's own folder comes with JAX's own settings: its minimum compile time given here, as a user would.
    _run(image_files, tmp_path, XDG_CACHE_HOME=str(tmp_path / "cache"), JAX_COMPILATION_CACHE_DIR=str(own),
         JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    assert _entries(own) and not (tmp_path / "cache").exists()
    # A cache folder that cannot be made (here: below a file): the run compiles as JAX does by default, and
    # says nothing about it.
    (tmp_path / "file").write_text("")
    stderr = _run(image_files, tmp_path, XDG_CACHE_HOME=str(tmp_path / "file" / "below"))
    assert [line for line in stderr.splitlines() if "warning: VGG-19 has random weights" not in line] == []
