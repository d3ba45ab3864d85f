"""``multistyle explain``: each backend's code side by side, and the formulas of the maths table.

The code is read from the backend modules' source without importing them, so
the page works in the core env; where a framework is installed, each snippet
must be exactly the source of the object that runs.  The maths table's
formulas are checked against the frameworks' own optimizers where installed.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from multistyle import explain, maths
from multistyle.backend import BUILTIN_BACKENDS, load_backend_class
from multistyle.cli import main
from multistyle.errors import BackendUnavailable
from support import browser

OPERATIONS = [name for name, _ in explain.OPERATIONS]


@pytest.mark.parametrize("name", sorted(BUILTIN_BACKENDS))
def test_every_operation_has_code_in_every_builtin_backend(name):
    code = explain.backend_code(name)
    assert list(code) == OPERATIONS
    for operation, snippets in code.items():
        for snippet in snippets:
            ast.parse(snippet["code"])  # a whole definition, dedented
            # The backend's own module, or the core's (a backend that uses multistyle.optim shows that code)
            assert snippet["file"] == f"multistyle/backends/{name}_backend.py" or (
                snippet["file"].startswith("multistyle/") and "/backends/" not in snippet["file"]), snippet["file"]
            assert snippet["line"] > 0
            assert snippet["code"].lstrip().startswith(("def ", "@", "class "))


@pytest.mark.parametrize("name", sorted(BUILTIN_BACKENDS))
def test_snippets_are_the_source_of_what_runs(name):
    try:
        load_backend_class(name)
    except BackendUnavailable as exc:
        pytest.skip(str(exc))
    for snippets in explain.backend_code(name).values():
        for snippet in snippets:
            target = importlib.import_module(snippet["file"][:-len(".py")].replace("/", "."))
            for part in snippet["qualname"].split("."):
                target = getattr(target, part)
            target = getattr(target, "__func__", target)
            assert textwrap.dedent(inspect.getsource(target)).rstrip() == snippet["code"].rstrip()
            assert inspect.getsourcelines(target)[1] == snippet["line"]

@pytest.fixture(scope="module")
def explain_page(tmp_path_factory):
    """The explain page of every built-in backend (five columns), written by a fresh process that must import
    no framework to write it."""
    folder = tmp_path_factory.mktemp("explain")
    script = ("import sys; from multistyle import explain; from multistyle.backend import BUILTIN_BACKENDS; "
              "explain.write_page(sys.argv[1], list(BUILTIN_BACKENDS)); "
              "loaded = {'torch', 'mxnet', 'paddle', 'jax', 'tensorflow'} & set(sys.modules); assert not loaded, loaded")
    subprocess.run([sys.executable, "-c", script, str(folder / "page")], check=True, cwd=folder, timeout=120)
    return folder / "page" / "index.html"


def test_explain_page_imports_no_framework(explain_page):
    page = explain_page.read_text()
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert page.count("class=\"hl\"") == sum(len(s) for n in BUILTIN_BACKENDS for s in explain.backend_code(n).values())
    assert "".join(f"<th>{n}</th>" for n in BUILTIN_BACKENDS) in page  # a column each, five in all
    assert len(BUILTIN_BACKENDS) == 5
    for key, title, _, _ in maths.MATHS:
        assert title in page


@pytest.mark.browser
def test_the_explain_page_renders_in_chromium(explain_page, tmp_path):
    loaded, total, pixels = browser.render(explain_page, tmp_path)
    assert loaded == total == 0 and pixels.std() > 10


def test_explain_command(tmp_path, capsys):
    assert main(["explain", "--output", str(tmp_path / "e"), "--backends", "paddle"]) == 0
    assert "wrote" in capsys.readouterr().out
    page = (tmp_path / "e" / "index.html").read_text()
    assert "PaddleBackend.asarray" in page and "TorchBackend" not in page
    (tmp_path / "file").write_text("x")
    assert main(["explain", "--output", str(tmp_path / "file")]) == 2
    assert main(["explain", "--output", str(tmp_path / "x"), "--backends", "caffe"]) == 2
    err = capsys.readouterr().err
    assert "is a file; explain writes a folder" in err and "--backends: unknown backend 'caffe'" in err


def test_first_step_formulas_by_hand():
    g = np.array([1.0, 1e-7, -1e-9, 0.0])
    ours, gluon = maths.adam_first_steps(g, lr=0.3)
    np.testing.assert_allclose(ours, 0.3 * g / (np.abs(g) + 1e-8))
    np.testing.assert_allclose(gluon, 0.3 * g / (np.abs(g) + 1e-8 / np.sqrt(0.001)))
    assert ours[0] == pytest.approx(gluon[0], rel=1e-6)  # large gradients: the same step
    assert ours[1] == pytest.approx(0.3 / 1.1, rel=1e-6) and gluon[1] < ours[1] / 3  # tiny ones: not
    outside, inside = maths.rmsprop_first_steps(g, lr=0.01)
    np.testing.assert_allclose(outside, 0.01 * g / (np.sqrt(0.01) * np.abs(g) + 1e-8))
    np.testing.assert_allclose(inside, 0.01 * g / np.sqrt(0.01 * g * g + 1e-8))


def _gradient():
    return np.array([[0.5, -2e-3], [3e-6, -1e-8]], dtype=np.float32)


def test_gluon_adam_formula_is_what_gluon_computes():
    try:
        load_backend_class("mxnet")
    except BackendUnavailable as exc:
        pytest.skip(str(exc))
    import mxnet as mx
    from mxnet import autograd, gluon, nd

    g = _gradient()
    param = gluon.Parameter("x", shape=g.shape, dtype="float32")
    param.initialize(init=mx.init.Zero())
    trainer = gluon.Trainer([param], "adam", {"learning_rate": 0.3})  # the chapter's call: Gluon's epsilon
    with autograd.record():
        loss = (param.data() * nd.array(g)).sum()
    loss.backward()
    trainer.step(1)
    _, gluon_step = maths.adam_first_steps(g.astype(np.float64), lr=0.3)
    np.testing.assert_allclose(-param.data().asnumpy(), gluon_step, rtol=1e-4)


def test_rmsprop_formulas_are_what_torch_and_paddle_compute():
    g = _gradient()
    outside, inside = maths.rmsprop_first_steps(g.astype(np.float64), lr=0.01)
    checked = 0
    try:
        load_backend_class("torch")
        import torch

        x = torch.zeros(g.shape, requires_grad=True)
        optimizer = torch.optim.RMSprop([x], lr=0.01, alpha=0.99, eps=1e-8)
        x.grad = torch.tensor(g)
        optimizer.step()
        np.testing.assert_allclose(-x.detach().numpy(), outside, rtol=1e-4)
        checked += 1
    except BackendUnavailable:
        pass
    try:
        load_backend_class("paddle")
        import paddle

        x = paddle.zeros(g.shape)
        x.stop_gradient = False
        optimizer = paddle.optimizer.RMSProp(learning_rate=0.01, rho=0.99, epsilon=1e-8, parameters=[x])
        (x * paddle.to_tensor(g)).sum().backward()
        optimizer.step()
        np.testing.assert_allclose(-x.numpy(), inside, rtol=1e-4)
        checked += 1
    except BackendUnavailable:
        pass
    if not checked:
        pytest.skip("neither torch nor paddle is installed")


def test_the_kink_gradient_is_what_jnp_abs_adds():
    """explain's NumPy account of JAX's |0|' = 1, against JAX itself: the TV gradient with ``jnp.abs`` minus
    the JAX backend's (0 at 0), on an image with runs of equal neighbours."""
    from support.needs import require

    require("jax")
    import jax
    import jax.numpy as jnp

    from multistyle import losses
    from multistyle.backend import get_backend

    B = get_backend("jax", device="cpu")
    x = np.random.default_rng(3).integers(0, 3, (1, 3, 6, 7)).astype(np.float32)  # many equal neighbours

    def tv(y):  # losses.tv_loss, written with jnp.abs
        return 5.0 * 0.5 * (jnp.mean(jnp.abs(y[:, :, 1:, :] - y[:, :, :-1, :]))
                            + jnp.mean(jnp.abs(y[:, :, :, 1:] - y[:, :, :, :-1])))

    ours = B.value_and_grad(lambda y: 5.0 * losses.tv_loss(B, y), x)[1]
    plain = np.asarray(jax.grad(tv)(jnp.asarray(x)))
    assert np.abs(plain - ours).max() > 0
    np.testing.assert_allclose(plain - ours, maths.tv_kink_gradient(x, 5.0), atol=1e-6)
