"""The Gram product X·Xᵀ on every backend, each framework's candidate forms, forward and backward.

The protocol's default is ``matmul(x, transpose(x))``, which autograd
differentiates as two products (x appears twice: ``G'·X`` and ``G'ᵀ·X``).
Each backend's ``gram_product`` is timed beside it, and beside the framework's
other exact forms:

* torch, JAX: a custom gradient (``autograd.Function``, ``jax.custom_vjp``),
  ``(G' + G'ᵀ)·X`` in one product.
* Paddle, TensorFlow: the same custom gradient (``PyLayer``,
  ``tf.custom_gradient``) around a product that reads X as transposed; that
  read alone (``transpose_y`` / ``transpose_b``) is timed too, since ``x.T``
  is a transpose kernel and a copy there.
* MXNet: ``nd.FullyConnected(x, x)``, oneDNN's inner product (the library
  MXNet's convolutions run on; both triangles, and its backward computes both
  operands' gradients), beside the products of the OpenBLAS MXNet bundles:
  ``nd.linalg.syrk(x)``, the symmetric rank-k product (one triangle of the
  multiplications, one product in its gradient), ``nd.dot(x, x,
  transpose_b=True)`` (``x.T`` is a copy) and ``nd.linalg.gemm2``.

Each form is timed on the feature matrices of the five style layers (conv1_1
to conv5_1) of a 150×225 and a 300×450 image, the loss ``mean(G²)``
differentiated with respect to X through the backend's ``loss_and_grad``
(jitted on JAX, as in a run), the forms alternating within each round, each
backend in a fresh process; medians of the rounds.  Every form's gradient is
checked against the default's first.

    python benchmarks/studies/gram_product.py --backends mxnet,paddle,tensorflow --rounds 15
"""

from __future__ import annotations

import argparse
import os
from typing import Any, Callable, Dict, List

os.environ.setdefault("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0))))

import numpy as np  # noqa: E402

from multistyle.measure import alternate, call_isolated, median_lines  # noqa: E402

# (channels, downsampling) of conv1_1, conv2_1, conv3_1, conv4_1, conv5_1
LAYERS = ((64, 1), (128, 2), (256, 4), (512, 8), (512, 16))
SIZES = ((150, 225), (300, 450))


def _forms(B: Any) -> Dict[str, Callable[[Any], Any]]:
    """The candidate forms on backend ``B``: the protocol's default, the backend's own, the framework's others."""
    from multistyle.backend import Backend

    forms = {"default matmul(x, transpose(x))": lambda x: Backend.gram_product(B, x),
             "backend's gram_product": B.gram_product}
    if B.name == "mxnet":
        from mxnet import nd

        forms["nd.linalg.syrk(x), symmetric rank-k"] = nd.linalg.syrk
        forms["nd.dot(x, x, transpose_b=True)"] = lambda x: nd.dot(x, x, transpose_b=True)
        forms["nd.linalg.gemm2(x, x, transpose_b=True)"] = lambda x: nd.linalg.gemm2(x, x, transpose_b=True)
    elif B.name == "paddle":
        import paddle

        forms["paddle.matmul(x, x, transpose_y=True)"] = lambda x: paddle.matmul(x, x, transpose_y=True)
    elif B.name == "tensorflow":
        import tensorflow as tf

        from multistyle.backend import unwrap  # the image tensor inside the core's Holder

        forms["tf.matmul(x, x, transpose_b=True)"] = lambda x: tf.matmul(unwrap(x), unwrap(x), transpose_b=True)
    return forms


def _gradient(B: Any, form: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """x -> d mean((form(x))²) / dx, as a run computes it: jitted on JAX (its objective is), eager elsewhere."""
    if B.name == "jax":
        import jax
        import jax.numpy as jnp

        return jax.jit(jax.grad(lambda x: jnp.mean(jnp.square(form(x)))))
    return lambda x: B.loss_and_grad(lambda t: B.mean(B.square(form(t))), x)[1]


def _measure(name: str, rounds: int) -> List[str]:
    from multistyle.backend import get_backend

    B = get_backend(name, "cpu")
    forms = _forms(B)
    gradients = {form: _gradient(B, form) for form in forms.values()}
    rng = np.random.default_rng(0)
    lines = [f"{name} ({B.framework_version()})"]
    for height, width in SIZES:
        matrices = [B.asarray(rng.standard_normal((c, (height // d) * (width // d)), dtype=np.float32) / 8)
                    for c, d in LAYERS]

        def once(form: Callable[[Any], Any]) -> List[np.ndarray]:
            grads = [gradients[form](x) for x in matrices]
            return [B.to_numpy(g) for g in grads]  # waits for all (MXNet is asynchronous)

        reference = once(forms["default matmul(x, transpose(x))"])
        for label, form in forms.items():  # the same gradient, and a warm-up
            for want, got in zip(reference, once(form)):
                np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * float(np.abs(want).max()), err_msg=label)
        times = alternate({label: (lambda form=form: once(form)) for label, form in forms.items()}, rounds)
        lines += median_lines(f"{height}x{width}", times, 40)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="torch,mxnet,paddle,jax,tensorflow")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}; ms per step's five Grams, "
          f"forward and backward (median of {args.rounds} rounds; gradients checked against the default first)")
    for name in args.backends.split(","):
        try:
            print("\n".join(call_isolated(_measure, name, args.rounds)), flush=True)
        except Exception as exc:  # a framework that is not installed, or failed: say so, go on
            print(f"{name}: not measured: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")


if __name__ == "__main__":
    main()
