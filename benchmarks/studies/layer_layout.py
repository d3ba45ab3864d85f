"""JAX's and TensorFlow's VGG-19 in NHWC (the layers' own layout) against NCHW layer by layer; TensorFlow's graph.

multistyle's tensors are NCHW.  XLA's and TensorFlow's CPU convolutions are
NHWC.  Two ways to run the network there:

* **NCHW, layer by layer** (multistyle before): every layer takes and gives
  NCHW.  TensorFlow transposes in and out of each convolution and pooling;
  JAX hands XLA NCHW convolutions, differentiated by autodiff (which flips and
  swaps the kernel at every step), and ``lax.reduce_window`` max-pooling,
  whose gradient is a select-and-scatter.
* **NHWC inside** (multistyle now, :meth:`Backend.into_layers`): the image is
  transposed once on its way in, the outputs the losses read once on their
  way out.  JAX's convolution carries its input gradient as a forward
  convolution with a kernel flipped once, and its max-pooling is a reduction
  over reshaped 2x2 windows with torch's tie rule in its gradient.

TensorFlow's objective is also timed three ways in NHWC: eager (as it was),
a ``tf.function`` graph (now, :meth:`TensorFlowBackend.compile_objective`) and
that graph compiled by XLA (``jit_compile=True``).

Each form is timed as the run's floor is (``multistyle.measure.Floor``): the
network up to conv5_1, forward and the gradient with respect to the image,
through the backend's ``compile_objective`` (jitted on JAX); the forms
alternate within each round, each backend in a fresh process; medians of the
rounds.  Every form's output and gradient are checked against the first's.

    python benchmarks/studies/layer_layout.py --sizes 48x72,96x144,150x225 --rounds 15
"""

from __future__ import annotations

import argparse
import os
from typing import Any, Callable, Dict, List, Sequence, Tuple

os.environ.setdefault("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0))))

import numpy as np  # noqa: E402

from multistyle.measure import alternate, call_isolated, median_lines  # noqa: E402


def _forms(name: str) -> Dict[str, Any]:
    """The backends to compare, by label: the first is the baseline."""
    from multistyle.backend import load_backend_class

    base = load_backend_class(name)
    if name == "jax":
        return {"NCHW, layer by layer": _nchw_backend(name), "NHWC inside (now)": base("cpu")}

    def tf(graph: bool, jit_compile: bool) -> Any:
        backend = base("cpu")
        backend.graph, backend.jit_compile = graph, jit_compile
        return backend

    eager = _nchw_backend(name)
    eager.graph = False
    return {"NCHW by layer, eager": eager, "NHWC, eager": tf(False, False),
            "NHWC, graph (now)": tf(True, False), "NHWC, graph with XLA": tf(True, True)}


def _nchw_backend(name: str) -> Any:
    """The backend with NCHW layers, layer by layer, as multistyle had them."""
    from multistyle.backend import load_backend_class, unwrap

    base = load_backend_class(name)
    if name == "jax":
        import jax.numpy as jnp
        from jax import lax

        class Nchw(base):  # type: ignore[misc, valid-type]
            def into_layers(self, x: Any) -> Any:
                return unwrap(x)

            def out_of_layers(self, t: Any) -> Any:
                return t

            def conv(self, weight: np.ndarray, bias: np.ndarray) -> Callable[[Any], Any]:
                w, b = self.asarray(weight), self.asarray(bias).reshape(1, -1, 1, 1)
                return lambda x: lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)),
                                                          dimension_numbers=("NCHW", "OIHW", "NCHW")) + b

            def pool(self, kind: str) -> Callable[[Any], Any]:
                window = (1, 1, 2, 2)
                return lambda x: lax.reduce_window(x, -jnp.inf, lax.max, window, window, "VALID")
        return Nchw("cpu")
    import tensorflow as tf

    class NchwTf(base):  # type: ignore[misc, valid-type]
        def into_layers(self, x: Any) -> Any:
            return unwrap(x)

        def out_of_layers(self, t: Any) -> Any:
            return t

        def conv(self, weight: np.ndarray, bias: np.ndarray) -> Callable[[Any], Any]:
            kernel, b = self.asarray(np.transpose(weight, (2, 3, 1, 0))), self.asarray(bias)
            return lambda x: tf.transpose(tf.nn.bias_add(tf.nn.conv2d(tf.transpose(x, (0, 2, 3, 1)), kernel, 1,
                                                                      "SAME"), b), (0, 3, 1, 2))

        def pool(self, kind: str) -> Callable[[Any], Any]:
            return lambda x: tf.transpose(tf.nn.max_pool2d(tf.transpose(x, (0, 2, 3, 1)), 2, 2, "VALID"),
                                          (0, 3, 1, 2))
    return NchwTf("cpu")


def _floor(B: Any, weights: Any, last: int) -> Callable[[Any], Tuple[Any, Any]]:
    """x -> (loss, gradient) of the network's mean output, compiled as a run's objective is."""
    net = B.vgg19_layers(weights, last)

    def forward(t: Any) -> Dict[str, Any]:
        t = B.into_layers(t)
        for layer in net:
            t = layer(t)
        return {"total": B.mean(B.out_of_layers(t))}

    compiled = B.compile_objective(forward)
    return lambda x: B.loss_and_grad(lambda t: compiled(t)["total"], x)


def _measure(name: str, sizes: Sequence[Tuple[int, int]], rounds: int) -> List[str]:
    from multistyle.vgg import LAYER_BY_NAME, random_weights

    last = LAYER_BY_NAME["conv5_1"].index
    weights = random_weights(0, last=last)
    backends = _forms(name)
    floors = {label: _floor(B, weights, last) for label, B in backends.items()}
    baseline = next(iter(backends))
    lines = [f"{name} ({backends[baseline].framework_version()})"]
    rng = np.random.default_rng(0)
    for height, width in sizes:
        image = rng.standard_normal((1, 3, height, width), dtype=np.float32)
        inputs = {label: B.asarray(image) for label, B in backends.items()}

        def once(label: str) -> Tuple[float, np.ndarray]:
            B = backends[label]
            loss, grad = floors[label](inputs[label])
            return B.item(loss), B.to_numpy(grad)

        want_loss, want_grad = once(baseline)
        for label in backends:  # a warm-up (the compile), and the same numbers
            got_loss, got_grad = once(label)
            np.testing.assert_allclose(got_loss, want_loss, rtol=1e-4, err_msg=label)
            # Relative to the gradient's norm: XLA sums the convolutions in another order, and its pooling
            # gradient may break ties otherwise (2 % of the largest element in a few places at 96x144); a
            # wrong layout or gradient is off by the gradient's own size.
            error = float(np.linalg.norm(got_grad - want_grad) / np.linalg.norm(want_grad))
            assert error < 1e-2, f"{label}: gradient off by {error:.1%} of its norm"
        times = alternate({label: (lambda label=label: once(label)) for label in backends}, rounds)
        lines += median_lines(f"{height}x{width}", times, 22)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="jax,tensorflow")
    parser.add_argument("--sizes", default="48x72,96x144,150x225,300x450")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    sizes = [tuple(int(v) for v in size.split("x")) for size in args.sizes.split(",")]
    print(f"{os.cpu_count()} CPUs, OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}; ms per iteration of the floor "
          f"(VGG-19 to conv5_1, forward and input gradient), median of {args.rounds} rounds, forms alternating")
    for name in args.backends.split(","):
        try:
            print("\n".join(call_isolated(_measure, name, sizes, args.rounds)), flush=True)
        except Exception as exc:  # a framework that is not installed, or failed: say so, go on
            print(f"{name}: not measured: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")


if __name__ == "__main__":
    main()
