"""The backend registry: lazy imports, missing or broken frameworks, our own bugs, devices.

No framework is needed: the backends here are fakes written into a temporary folder.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import subprocess
import sys
import textwrap

import pytest

from multistyle import backend as registry
from multistyle.backend import loader
from multistyle.errors import BackendBug, BackendUnavailable, MultistyleError
from support.needs import FRAMEWORKS, required


def test_importing_multistyle_and_the_cli_loads_no_framework():
    code = textwrap.dedent("""
        import sys, contextlib, io
        import multistyle, multistyle.cli
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                multistyle.cli.main(["--help"])
            except SystemExit:
                pass
        print(",".join(m for m in ("torch", "torchvision", "mxnet", "paddle") if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def _fake_backend(monkeypatch, tmp_path, module_source, modules=("fakefw",)):
    (tmp_path / "fakebackend.py").write_text(textwrap.dedent(module_source))
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    monkeypatch.delitem(sys.modules, "fakebackend", raising=False)
    spec = registry.BackendSpec("fake", "fakebackend:Fake", modules, "fake", "pin fakefw<2")
    monkeypatch.setitem(registry.BUILTIN_BACKENDS, "fake", spec)


def test_missing_framework_names_the_pip_extra(monkeypatch, tmp_path):
    _fake_backend(monkeypatch, tmp_path, "import fakefw\n")
    with pytest.raises(BackendUnavailable, match=r"backend 'fake' is not installed: fakefw is missing; "
                                                 r"install it with pip install 'multistyle\[fake\]'"):
        registry.load_backend_class("fake")


def test_broken_framework_is_reported_as_broken_with_the_fix(monkeypatch, tmp_path):
    (tmp_path / "fakefw.py").write_text("raise AttributeError(\"module 'numpy' has no attribute 'bool'\")\n")
    _fake_backend(monkeypatch, tmp_path, "import fakefw\n")
    monkeypatch.delitem(sys.modules, "fakefw", raising=False)
    with pytest.raises(BackendUnavailable, match=r"installed but broken: .*AttributeError: module 'numpy' has no "
                                                 r"attribute 'bool'; pin fakefw<2"):
        registry.load_backend_class("fake")
    rows = {row["name"]: row for row in registry.describe_backends(["fake"])}
    assert rows["fake"]["usable"] is False and "broken" in rows["fake"]["reason"]


def test_incomplete_backend_fails_at_construction(monkeypatch, tmp_path):
    _fake_backend(monkeypatch, tmp_path, """
        from multistyle.backend import Backend
        class Fake(Backend):
            name = "fake"
    """)
    cls = registry.load_backend_class("fake")
    with pytest.raises(TypeError, match="abstract"):
        cls()


def test_third_party_backends_register_through_entry_points(monkeypatch, tmp_path):
    (tmp_path / "thirdparty.py").write_text("from multistyle.backend import Backend\nclass MLX(Backend):\n    name = 'mlx'\n")
    info = tmp_path / "multistyle_mlx-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: multistyle-mlx\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[multistyle.backends]\nmlx = thirdparty:MLX\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    assert "mlx" in registry.backend_names()
    assert registry.load_backend_class("mlx").__name__ == "MLX"


def test_unknown_backend_lists_the_known_ones():
    with pytest.raises(MultistyleError, match=r"--backend: unknown backend 'caffe'; choose from torch, mxnet, paddle, "
                                              r"jax, tensorflow"):
        registry.load_backend_class("caffe")


@pytest.mark.parametrize("device, expected", [("auto", "gpu:0"), ("cpu", "cpu"), ("gpu", "gpu:0"), ("gpu:1", "gpu:1")])
def test_device_resolution(device, expected):
    assert registry.resolve_device(device, ["cpu", "gpu:0", "gpu:1"], "x") == expected


def test_device_errors():
    assert registry.resolve_device("auto", ["cpu"], "x") == "cpu"
    with pytest.raises(MultistyleError, match="--device: x cannot use gpu:0; it sees cpu"):
        registry.resolve_device("gpu", ["cpu"], "x")
    for bad in ("cuda", "cpu:1", "gpu:a"):
        with pytest.raises(MultistyleError, match="--device: expected auto, cpu, gpu or gpu:N"):
            registry.resolve_device(bad, ["cpu"], "x")


@pytest.mark.parametrize("source, kind", [
    ("import os\nVALUE = 1 / 0\n", "ZeroDivisionError"),
    ("import json\njson.loads('{')\n", "JSONDecodeError"),  # a bad call into a library at import time
    ("def broken(:\n    pass\n", "SyntaxError"),
])
def test_an_exception_in_our_backend_module_is_a_bug_with_a_traceback(monkeypatch, tmp_path, capsys, source, kind):
    _fake_backend(monkeypatch, tmp_path, source)
    with pytest.raises(BackendBug, match=rf"bug in multistyle: importing fakebackend raised {kind}") as info:
        registry.load_backend_class("fake")
    assert not isinstance(info.value, MultistyleError)  # so the CLI shows the traceback
    assert isinstance(info.value.__cause__, Exception)
    row = registry.describe_backends(["fake"])[0]
    assert row["usable"] is False and "bug in multistyle" in row["reason"] and kind in row["traceback"]
    assert "Traceback" in row["traceback"]


def test_a_framework_failing_its_own_import_is_still_broken_not_a_bug(monkeypatch, tmp_path):
    (tmp_path / "fakefw.py").write_text("import json\njson.loads('{')\n")  # fails inside the framework
    _fake_backend(monkeypatch, tmp_path, "import fakefw\n")
    monkeypatch.delitem(sys.modules, "fakefw", raising=False)
    with pytest.raises(registry.BackendUnavailable, match="installed but broken"):
        registry.load_backend_class("fake")




@pytest.mark.skipif("no-framework" not in required(),
                    reason="only in the core env (MULTISTYLE_TEST_REQUIRE=no-framework)")
def test_the_core_env_has_no_framework():
    found = [name for name in FRAMEWORKS if importlib.util.find_spec(name) is not None]
    assert found == [], f"the core env must have no framework, but finds {found}"


_CPUINFO = "processor\t: {n}\nvendor_id\t: {vendor}\nflags\t\t: fpu sse2 {simd} fma\n\n"


@pytest.mark.parametrize("vendor, simd, expected", [("AuthenticAMD", "avx avx2 avx512f", "5"),
                                                    ("AuthenticAMD", "avx", None),
                                                    ("GenuineIntel", "avx avx2 avx512f amx_tile", None)])
def test_mkl_takes_its_avx2_code_on_amd_only(monkeypatch, vendor, simd, expected):
    """Paddle's MKL runs its generic code on AMD (a VGG-19 step 6.7 times as long): AVX2 is asked for there, and
    nowhere else (on Intel the variable would hold MKL to AVX2, below its AVX-512 code)."""
    monkeypatch.setenv("MKL_DEBUG_CPU_TYPE", "")  # recorded as unset, so put back so after the test
    monkeypatch.delenv("MKL_DEBUG_CPU_TYPE")
    text = _CPUINFO.format(n=0, vendor=vendor, simd=simd) + _CPUINFO.format(n=1, vendor="GenuineIntel", simd="")
    assert registry.mkl_avx2_on_amd(text) == expected
    assert os.environ.get("MKL_DEBUG_CPU_TYPE") == expected


def test_mkl_cpu_type_the_user_set_is_kept(monkeypatch):
    monkeypatch.setenv("MKL_DEBUG_CPU_TYPE", "4")
    assert registry.mkl_avx2_on_amd(_CPUINFO.format(n=0, vendor="AuthenticAMD", simd="avx2")) == "4"
    assert os.environ["MKL_DEBUG_CPU_TYPE"] == "4"


def test_paddle_alone_asks_mkl_for_avx2_on_amd_before_its_import(monkeypatch, tmp_path):
    assert [name for name in registry.BUILTIN_BACKENDS if registry.spec_of(name).mkl_avx2_on_amd] == ["paddle"]
    _fake_backend(monkeypatch, tmp_path, """
        import os
        SEEN = os.environ.get("MKL_DEBUG_CPU_TYPE")  # what the framework's MKL would read as it starts
        from multistyle.backend import Backend
        class Fake(Backend):
            name = "fake"
    """)
    spec = dataclasses.replace(registry.BUILTIN_BACKENDS["fake"], mkl_avx2_on_amd=True)
    monkeypatch.setitem(registry.BUILTIN_BACKENDS, "fake", spec)
    monkeypatch.setenv("MKL_DEBUG_CPU_TYPE", "")
    monkeypatch.delenv("MKL_DEBUG_CPU_TYPE")
    monkeypatch.setattr(loader, "mkl_avx2_on_amd", lambda: os.environ.setdefault("MKL_DEBUG_CPU_TYPE", "5"))
    registry.load_backend_class("fake")
    assert sys.modules["fakebackend"].SEEN == "5"
