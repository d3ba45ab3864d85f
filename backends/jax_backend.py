"""JAX backend: immutable ``jax.Array``s, ``jax.value_and_grad``, the core's optimizers.

JAX is functional: an array never changes.  The protocol's in-place contract
(``clip_`` on the image an optimizer is updating, or on the image a closure
receives) is met by the core's :class:`~multistyle.backend.Holder`, whose value
is replaced where the other frameworks change a tensor in place
(:class:`~multistyle.backend.HeldImages` does the bookkeeping).  Everything
else stays a native array.

* Gradients at kinks are the other frameworks': ``|x|`` has derivative
  ``sign(x)`` (0 at 0, where ``jnp.abs`` gives 1) and the ReLU is
  ``jax.nn.relu`` (0 at 0, where ``jnp.maximum(x, 0)`` gives 0.5).
* The layers work in NHWC, XLA's CPU layout (:meth:`JaxBackend.into_layers`):
  a convolution's input gradient is a forward convolution with a kernel flipped
  once, and max-pooling reduces reshaped 2x2 windows, its gradient going to
  each window's first maximum, as torch's does.
* Loss terms that the core keeps from inside a differentiated closure
  (:meth:`keep`) come out of ``value_and_grad`` as its auxiliary output, so they
  are concrete arrays, never escaped tracers.
* No model zoo and no native checkpoint format: weights come from ``.npz``
  files (``multistyle weights convert`` writes one from another framework's).
* Compiled programs are kept between processes, in JAX's persistent
  compilation cache: ``$XDG_CACHE_HOME/multistyle/jax`` (``~/.cache/...``)
  unless JAX's own setting names a folder (``JAX_COMPILATION_CACHE_DIR``);
  ``JAX_ENABLE_COMPILATION_CACHE=false`` turns it off.  Every program is kept,
  however fast it compiled (JAX keeps only those that took a second, which at
  96x144 is none); ``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS`` sets JAX's
  rule back.  A scale's targets are one program (:meth:`JaxBackend.compile_forward`).
  A second ``multistyle run --preset fast`` at a size it has run before spent
  2.75 s on 8 epochs at 96x144 against 4.79 s before
  (``benchmarks/studies/jax_cache.py``, jax 0.4.30, 2 cores).
* Optimizers are :mod:`multistyle.optim`'s (torch's Adam, RMSprop and L-BFGS):
  optax, JAX's optimizer library, does not import beside ``numpy<1.24``.  Their
  image reaches the core in a holder (``HeldImages.image_of``).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import jaxlib
import numpy as np
from jax import lax

from multistyle.backend import Backend, HeldImages
from multistyle.backend import unwrap as _value
from multistyle.errors import WeightsError
from multistyle.vgg import Weights


def _keep_compiled_programs() -> None:
    """JAX's persistent compilation cache in the user's cache folder, unless JAX's own setting names one.
    Where that folder cannot be made, JAX compiles in every process, as it does by default (with the folder
    set but unwritable, it would warn at every compile)."""
    if jax.config.jax_compilation_cache_dir:
        return
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    folder = os.path.join(base, "multistyle", "jax")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        return
    if os.access(folder, os.W_OK):
        jax.config.update("jax_compilation_cache_dir", folder)
        # JAX keeps only programs that took a second or more to compile; multistyle's that take less (the
        # targets', the eager operations' at each size) add up to more than a second of every run.
        if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


_keep_compiled_programs()


@jax.custom_jvp
def _abs(x: jax.Array) -> jax.Array:
    return jnp.abs(x)


_abs.defjvps(lambda g, ans, x: g * jnp.sign(x))  # torch, MXNet and Paddle: d|x|/dx = 0 at 0


@jax.custom_vjp
def _gram_product(x: jax.Array) -> jax.Array:
    return x @ x.T


# Differentiated in one product, (G' + G'ᵀ)·X, where autodiff computes two (G'·X and G'ᵀ·X).
_gram_product.defvjp(lambda x: (x @ x.T, x), lambda x, grad: ((grad + grad.T) @ x,))


_NHWC = ("NHWC", "HWIO", "NHWC")


def _conv_nhwc(x: jax.Array, kernel: jax.Array) -> jax.Array:
    return lax.conv_general_dilated(x, kernel, (1, 1), ((1, 1), (1, 1)), dimension_numbers=_NHWC)


@jax.custom_vjp
def _conv(x: jax.Array, kernel: jax.Array, back: jax.Array) -> jax.Array:
    """A 3x3 convolution, padding 1, of an NHWC image with an HWIO kernel; ``back`` is the same kernel flipped
    in space with its in and out channels swapped, made once: the gradient with respect to the image is the
    forward convolution of the gradient with it.  Autodiff would flip and swap the kernel at every step
    (and XLA's CPU convolution is slower on the transposed form it emits)."""
    return _conv_nhwc(x, kernel)


# The weights are constants of the network: no gradient for them (None: zero, never computed).
_conv.defvjp(lambda x, kernel, back: (_conv_nhwc(x, kernel), back),
             lambda back, grad: (_conv_nhwc(grad, back), None, None))


def _windows(x: jax.Array) -> jax.Array:
    """An NHWC tensor's 2x2 windows, stride 2, odd last rows and columns dropped: ``(N, H/2, 2, W/2, 2, C)``."""
    n, h, w, c = x.shape
    return x[:, : h // 2 * 2, : w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c)


@jax.custom_vjp
def _max_pool(x: jax.Array) -> jax.Array:
    """2x2 max-pooling, stride 2, NHWC, as a reduction over reshaped windows (``lax.reduce_window``'s
    gradient, a select-and-scatter, is the slowest operation of the step on XLA's CPU)."""
    return _windows(x).max(axis=(2, 4))


def _max_pool_back(saved: Tuple[jax.Array, jax.Array], grad: jax.Array) -> Tuple[jax.Array]:
    """The gradient goes to the first maximum of each window in row-major order, as torch's does
    (``jnp.max`` would share it among tied elements)."""
    x, y = saved
    windows = _windows(x)
    taken = jnp.zeros(y.shape, bool)
    rows = []
    for i in (0, 1):
        row = []
        for j in (0, 1):
            first = (windows[:, :, i, :, j] == y) & ~taken
            taken = taken | first
            row.append(jnp.where(first, grad, 0.0))
        rows.append(jnp.stack(row, axis=3))
    n, h, w, c = x.shape
    spread = jnp.stack(rows, axis=2).reshape(n, h // 2 * 2, w // 2 * 2, c)
    return (jnp.pad(spread, ((0, 0), (0, h % 2), (0, w % 2), (0, 0))),)


def _max_pool_ahead(x: jax.Array) -> Tuple[jax.Array, Tuple[jax.Array, jax.Array]]:
    y = _windows(x).max(axis=(2, 4))
    return y, (x, y)


_max_pool.defvjp(_max_pool_ahead, _max_pool_back)


def _jit_per_shape(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` of arrays, ``jax.jit``-compiled once per argument shape, with the arrays it closes over (the
    network's weights, the targets) traced out (``jax.make_jaxpr``) and passed as arguments: left in the
    closure, ``jax.jit`` would bake them into the program as constants (see :meth:`JaxBackend.compile_objective`)."""
    programs: Dict[Any, Callable[..., Any]] = {}

    def call(*args: Any) -> Any:
        leaves, tree = jax.tree_util.tree_flatten(args)  # arrays, or mappings of them (a network's parameters)
        key = (tree, tuple((tuple(a.shape), a.dtype) for a in leaves))
        if key not in programs:
            closed, shapes = jax.make_jaxpr(fn, return_shape=True)(*args)
            structure, constants = jax.tree_util.tree_structure(shapes), list(closed.consts)
            run = jax.jit(lambda consts, *a: jax.core.eval_jaxpr(closed.jaxpr, consts, *a))
            programs[key] = lambda *a: jax.tree_util.tree_unflatten(structure, run(constants, *a))
        return programs[key](*leaves)

    return call


def _with_total(terms: Dict[str, Any]) -> Tuple[jax.Array, Dict[str, Any]]:
    return terms["total"], terms


def _terms_and_grads(out: Tuple[Tuple[jax.Array, Dict[str, Any]], Dict[str, Any]]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    (_, terms), grads = out
    return terms, grads


class JaxBackend(HeldImages, Backend):
    """JAX (``jax.numpy`` and ``jax.lax``), eager, with ``jax.value_and_grad``; the objective jitted per scale."""

    name = "jax"
    framework = "JAX"
    #: Compile each scale's objective (:meth:`compile_objective`); False runs it eagerly.
    jit = True

    def __init__(self, device: str = "auto") -> None:
        super().__init__(device)
        self._kept: Optional[List[Dict[str, Any]]] = None

    @classmethod
    def framework_version(cls) -> str:
        return f"jax {jax.__version__}, jaxlib {jaxlib.__version__}"

    def place(self, gpu: Optional[int]) -> Any:
        return jax.devices("cpu")[0] if gpu is None else jax.devices("gpu")[gpu]

    @classmethod
    def gpu_count(cls) -> int:
        try:
            return len(jax.devices("gpu"))
        except RuntimeError:  # no GPU platform in this jaxlib
            return 0

    def seed(self, seed: int) -> None:
        """JAX has no global random state; multistyle draws its noise with NumPy."""

    def asarray(self, array: np.ndarray) -> jax.Array:
        return jax.device_put(np.array(array, dtype=np.float32), self.native_device)

    def to_numpy(self, tensor: Any) -> np.ndarray:
        return np.array(_value(tensor))

    def pack(self, tensors: Sequence[Any]) -> jax.Array:
        return jnp.concatenate([jnp.ravel(lax.stop_gradient(_value(t))) for t in tensors])

    clip_values = staticmethod(jnp.clip)
    stop_gradient = staticmethod(lax.stop_gradient)

    def square(self, tensor: Any) -> jax.Array:
        return jnp.square(_value(tensor))

    def abs(self, tensor: Any) -> jax.Array:
        return _abs(_value(tensor))

    def sqrt(self, tensor: Any) -> jax.Array:
        return jnp.sqrt(_value(tensor))

    def gram_product(self, features: Any) -> jax.Array:
        return _gram_product(_value(features))

    # The layers work in NHWC, the layout of XLA's CPU convolutions: measured at 96x144 (2 cores, jax 0.4.30),
    # the network's forward and input gradient take 92 ms, against 151 ms in NCHW with autodiff's
    # convolution gradient and lax.reduce_window's max-pooling (benchmarks/studies/layer_layout.py).
    def into_layers(self, x: Any) -> jax.Array:
        return jnp.transpose(_value(x), (0, 2, 3, 1))

    def out_of_layers(self, t: Any) -> jax.Array:
        return jnp.transpose(t, (0, 3, 1, 2))

    def conv(self, weight: np.ndarray, bias: np.ndarray) -> Callable[[Any], jax.Array]:
        hwio = np.transpose(weight, (2, 3, 1, 0))
        kernel, back, b = (self.asarray(hwio), self.asarray(np.transpose(hwio[::-1, ::-1], (0, 1, 3, 2))),
                           self.asarray(bias))
        return lambda x: _conv(x, kernel, back) + b

    def relu(self) -> Callable[[Any], jax.Array]:
        return lambda x: jax.nn.relu(_value(x))

    def pool(self, kind: str, ceil: bool = False) -> Callable[[Any], jax.Array]:
        if kind == "max" and ceil:  # an odd last row or column repeated: its window's maximum is its own
            return lambda x: _max_pool(jnp.pad(_value(x), ((0, 0), (0, x.shape[1] % 2), (0, x.shape[2] % 2),
                                                            (0, 0)), mode="edge"))
        if kind == "max":
            return _max_pool
        return lambda x: _windows(x).mean(axis=(2, 4))

    def freeze(self, layers: List[Callable[[Any], jax.Array]]) -> List[Callable[[Any], jax.Array]]:
        return layers  # the weights are constants of the layers: value_and_grad never differentiates them

    def keep(self, terms: Dict[str, Any]) -> Dict[str, Any]:
        if self._kept is not None:  # inside loss_and_grad: filled with concrete values when it returns
            self._kept.append(terms)
        return terms

    def loss_and_grad(self, fn: Callable[[Any], Any], x: Any) -> Tuple[jax.Array, jax.Array]:
        kept: List[Dict[str, Any]] = []
        image = self.traced_image(None)

        def traced(v: jax.Array) -> Tuple[jax.Array, Any]:
            image.value, image.clips = v, []
            self._kept, outer = kept, self._kept
            try:
                loss = fn(image)
            finally:
                self._kept = outer
            return _value(loss), [dict(terms) for terms in kept]

        value = _value(x)
        (loss, concrete), grad = jax.value_and_grad(traced, has_aux=True)(value)
        for terms, values in zip(kept, concrete):
            terms.update(values)
        self.persist_clips(image, value)
        return loss, grad

    def compile_objective(self, terms: Callable[..., Dict[str, Any]]) -> Callable[..., Dict[str, Any]]:
        """``terms`` whose value and gradient are one compiled XLA call (``jax.jit``), compiled per image shape.

        A ``jax.custom_vjp``: the forward pass computes the terms and the gradient of their total at once,
        and the backward pass scales that gradient by the total's cotangent.  The loop's closure around it
        stays eager, so its clip and :meth:`keep` run at every call, not only at trace time.

        The network's weights and the style and content targets are arrays the objective closes over.
        Left in the closure, ``jax.jit`` bakes them into the program as constants; here they are traced
        out (``jax.make_jaxpr``) and passed as arguments.  Measured at 150x225 (2 cores, jax 0.4.30):
        baked in, 0.39 s/it after a 5 s compile at 1.32 GiB peak, and XLA spends seconds constant-folding
        convolutions of them; passed, 0.49 s/it after 1.5 s at 0.45 GiB; eager, 0.66 s/it at 0.62 GiB.
        Numbers after the image (``tv_scale``) are float32 arguments of the program, not constants: a
        new value reuses it.
        """
        if not self.jit:
            return terms
        value_and_grad = _jit_per_shape(jax.value_and_grad(lambda u, *e: _with_total(terms(u, *e)), has_aux=True))

        @jax.custom_vjp
        def compiled(v: jax.Array, *extra: jax.Array) -> Dict[str, Any]:
            return value_and_grad(v, *extra)[0][1]

        def ahead(v: jax.Array, *extra: jax.Array) -> Tuple[Dict[str, Any], Tuple[jax.Array, ...]]:
            (_, out), grad = value_and_grad(v, *extra)
            return out, (grad,) + extra

        def back(saved: Tuple[jax.Array, ...], cotangent: Dict[str, Any]) -> Tuple[jax.Array, ...]:
            grad, extra = saved[0], saved[1:]
            return (cotangent["total"] * grad,) + tuple(jnp.zeros_like(e) for e in extra)  # numbers: no gradient

        compiled.defvjp(ahead, back)
        return lambda x, *extra: compiled(_value(x), *(jnp.asarray(e, jnp.float32) for e in extra))

    def compile_forward(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` as one XLA program per set of image shapes, the weights passed in as in :meth:`compile_objective`.

        Eagerly, every operation is compiled on its own at each new shape: a first run of ``--preset fast``
        at 96x144 made 118 compilations in all, and computed its targets in 2.2 s; with the targets compiled,
        29 and 1.1 s (jax 0.10.2, 2 cores; jax 0.4.30 compiles small programs faster: 1.6 s against 1.4).
        The content's and the styles' targets are one call, so one program per scale: a fresh run's
        start-up went from 1.66 to 1.41 s with the network also built once (``benchmarks``' 2026-12-03 page).
        """
        if not self.jit:
            return fn
        return _jit_per_shape(fn)

    def argmax_one_hot(self, scores: Any) -> jax.Array:
        scores = lax.stop_gradient(_value(scores))
        return jax.nn.one_hot(jnp.argmax(scores, axis=0), scores.shape[0], dtype=scores.dtype, axis=0)

    def conv2d(self, x: Any, weight: Any, bias: Any, stride: int = 1, reflect: int = 0) -> jax.Array:
        x = _value(x)
        if reflect:
            x = jnp.pad(x, ((0, 0), (reflect, reflect), (reflect, reflect), (0, 0)), mode="reflect")
        kernel = jnp.transpose(weight, (2, 3, 1, 0))  # OIHW -> HWIO, the layers' layout
        return lax.conv_general_dilated(x, kernel, (stride, stride), "VALID", dimension_numbers=_NHWC) + bias

    def instance_norm(self, x: Any, weight: Any, bias: Any, eps: float) -> jax.Array:
        x = _value(x)
        mean = x.mean(axis=(1, 2), keepdims=True)
        centred = x - mean
        variance = jnp.square(centred).mean(axis=(1, 2), keepdims=True)
        return centred * lax.rsqrt(variance + eps) * weight + bias

    def upsample_nearest(self, x: Any, factor: int) -> jax.Array:
        return jnp.repeat(jnp.repeat(_value(x), factor, axis=1), factor, axis=2)

    def loss_and_grads(self, fn: Callable[[Dict[str, Any]], Any],
                       params: Dict[str, Any]) -> Tuple[jax.Array, Dict[str, jax.Array]]:
        return jax.value_and_grad(lambda p: _value(fn(p)))(params)

    def compile_gradients(self, terms: Callable[..., Dict[str, Any]]
                          ) -> Callable[..., Tuple[Dict[str, Any], Dict[str, Any]]]:
        """The terms and the parameters' gradient as one XLA program per input shape (``jax.jit``), the loss
        network's weights and the style targets passed in as arguments, as :meth:`compile_objective` does."""
        step = jax.value_and_grad(lambda p, *inputs: _with_total(terms(p, *inputs)), has_aux=True)
        if not self.jit:
            return lambda params, *inputs: _terms_and_grads(step(params, *inputs))
        compiled = _jit_per_shape(step)
        return lambda params, *inputs: _terms_and_grads(compiled(params, *inputs))

    def load_zoo_weights(self) -> Dict[str, np.ndarray]:
        raise WeightsError("--weights imagenet: JAX has no model zoo; convert another framework's with "
                           "multistyle weights convert (for example from torchvision's vgg19 .pth) to an .npz "
                           "file and pass --weights FILE.npz")

    def load_native_weights(self, path: str) -> Dict[str, np.ndarray]:
        raise WeightsError(f"weights {path}: JAX has no native checkpoint format; use an .npz file")

    def save_native_weights(self, weights: Weights, path: str) -> None:
        raise WeightsError(f"weights {path}: JAX has no native checkpoint format; use an .npz file")
