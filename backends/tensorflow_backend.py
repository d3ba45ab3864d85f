"""TensorFlow backend: ``tf.Tensor``s, ``tf.GradientTape``, a graph per scale, Keras's VGG-19 zoo, the core's optimizers.

* Images are tensors, which never change: the protocol's in-place clip is met
  by the core's :class:`~multistyle.backend.Holder`, as for JAX
  (:class:`~multistyle.backend.HeldImages`).
* Layouts: multistyle's tensors are NCHW.  TensorFlow's CPU kernels are
  NHWC (its max-pooling gradient refuses NCHW on the CPU, and its NCHW
  convolution is slower there than two transposes), so the layers work in
  NHWC: the image is transposed once on its way in (:meth:`into_layers`),
  and the losses read the layers' outputs in NHWC as they are
  (:attr:`features_channels_last`: a Gram matrix is ``Xᵀ X`` of the positions
  by channels); only features handed out of the objective go back to NCHW.
* Gradients come from ``tf.GradientTape`` with respect to the image alone:
  the network's weights are constants, never watched.  ``tf.abs`` and
  ``tf.nn.relu`` have derivative 0 at 0, as in torch.
* Optimizers are :mod:`multistyle.optim`'s (torch's formulas).  Keras's Adam
  adds its epsilon to √v before the bias correction (Kingma & Ba's ε̂), so it is
  not torch's Adam: ``multistyle explain`` measures the difference.
* Weights: Keras's VGG-19 zoo (``tf.keras.applications.VGG19``), whose weights
  expect Caffe's input (BGR, 0..255, mean subtracted): its first convolution is
  folded to multistyle's input (RGB, normalised by the ImageNet mean and std).
  Native files are HDF5 (``.h5``, ``.weights.h5``) and ``.keras`` archives, read
  without TensorFlow by :mod:`multistyle.keras_weights` (no Keras code runs,
  nothing is unpickled).  Files that multistyle writes are marked as holding
  multistyle's input convention; any other VGG-19 file is taken to be in Keras's
  own (Caffe's) and folded like the zoo's.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import os
import sys
import threading
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np


@contextlib.contextmanager
def _c_stderr_silenced() -> Iterator[None]:
    """File descriptor 2 pointed at /dev/null for the block: TensorFlow's C++ start-up lines (oneDNN, CUDA
    drivers, cuInit) go there.  From TensorFlow 2.16 absl writes them before any log level applies, so
    ``TF_CPP_MIN_LOG_LEVEL`` (set too, for older releases) does not hide them.  Python exceptions still rise."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to redirect
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def _jax_left_out() -> Iterator[None]:
    """``import jax`` refused, in this thread, for the block.  TensorFlow 2.15's TFLite imports JAX, where it is
    installed, at every ``import tensorflow`` (``tensorflow/lite/python/util.py``: ``from jax import
    xla_computation`` for its JAX-model converter, an ImportError caught): 0.4 s of every start-up with jax
    0.4.30, for a converter multistyle never runs.  A JAX imported before, after or by another thread is
    untouched."""
    if "jax" in sys.modules:
        yield
        return
    thread = threading.get_ident()

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
            if name == "jax" and threading.get_ident() == thread:
                raise ModuleNotFoundError("jax is not imported while TensorFlow is", name=name)
            return None

    finder = Refuse()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


with _c_stderr_silenced(), _jax_left_out():
    import tensorflow as tf

from multistyle.backend import Backend, HeldImages, zoo_error  # noqa: E402
from multistyle.backend import unwrap as _value  # noqa: E402
from multistyle.errors import WeightsError  # noqa: E402
from multistyle.keras_weights import mark, read, write_h5  # noqa: E402
from multistyle.vgg import CONV_INDICES, Weights  # noqa: E402

#: Keras applications' VGG-19 without its classifier, and its MD5 (keras/src/applications/vgg19.py).
ZOO_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/vgg19/"
           "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5")
ZOO_MD5 = "253f8cb515780f3b799900260a226db6"

_TO_NHWC, _TO_NCHW = (0, 2, 3, 1), (0, 3, 1, 2)


@tf.custom_gradient
def _gram_product(x: tf.Tensor) -> Tuple[tf.Tensor, Callable[[tf.Tensor], tf.Tensor]]:
    """X·Xᵀ, read as transposed by the product (no transpose kernel), differentiated in one product,
    (G' + G'ᵀ)·X, where the tape computes two (G'·X and G'ᵀ·X)."""
    return tf.matmul(x, x, transpose_b=True), lambda grad: tf.matmul(grad + tf.transpose(grad), x)


@tf.custom_gradient
def _gram_product_columns(x: tf.Tensor) -> Tuple[tf.Tensor, Callable[[tf.Tensor], tf.Tensor]]:
    """Xᵀ·X of a channels-last map's positions by channels, read as transposed by the product; differentiated
    in one product, X·(G' + G'ᵀ)."""
    return tf.matmul(x, x, transpose_a=True), lambda grad: tf.matmul(x, grad + tf.transpose(grad))


def _keras_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("keras")
    except PackageNotFoundError:
        return "unknown"


class TensorFlowBackend(HeldImages, Backend):
    """TensorFlow 2 with ``tf.GradientTape``: eager, the objective a ``tf.function`` graph (Keras for the model zoo)."""

    name = "tensorflow"
    framework = "TensorFlow"
    #: Run each scale's objective as a graph (:meth:`compile_objective`); False runs it eagerly.
    graph = True
    #: The losses read the layers' NHWC outputs as they are (no transpose back to NCHW): the objective's
    #: step 4 % shorter at 48x72 and 96x144 (docs/benchmarks/2026-12-03.md, "TensorFlow's losses read NHWC").
    features_channels_last = True
    #: Compile that graph with XLA (``tf.function(jit_compile=True)``): slower on the CPU (measured below).
    jit_compile = False

    clip_values = staticmethod(tf.clip_by_value)
    stop_gradient = staticmethod(tf.stop_gradient)

    @classmethod
    def framework_version(cls) -> str:
        return f"tensorflow {tf.__version__}, keras {_keras_version()}"

    @classmethod
    def gpu_count(cls) -> int:
        with _c_stderr_silenced():  # where CUDA is in the wheel but no driver is, TensorFlow logs cuInit's error
            return len(tf.config.list_physical_devices("GPU"))

    def place(self, gpu: Optional[int]) -> str:
        return "/CPU:0" if gpu is None else f"/GPU:{gpu}"

    def seed(self, seed: int) -> None:
        tf.random.set_seed(seed)

    def set_deterministic(self) -> None:
        tf.config.experimental.enable_op_determinism()

    def asarray(self, array: np.ndarray) -> tf.Tensor:
        with tf.device(self.native_device):
            return tf.constant(np.asarray(array, dtype=np.float32))

    def to_numpy(self, tensor: Any) -> np.ndarray:
        return np.array(_value(tensor))

    def pack(self, tensors: Sequence[Any]) -> tf.Tensor:
        return tf.concat([tf.reshape(tf.stop_gradient(_value(t)), [-1]) for t in tensors], axis=0)

    def square(self, tensor: Any) -> tf.Tensor:
        return tf.square(_value(tensor))

    def abs(self, tensor: Any) -> tf.Tensor:
        return tf.abs(_value(tensor))

    def sqrt(self, tensor: Any) -> tf.Tensor:
        return tf.sqrt(_value(tensor))

    def mean(self, tensor: Any) -> tf.Tensor:
        return tf.reduce_mean(_value(tensor))

    def sum(self, tensor: Any) -> tf.Tensor:
        return tf.reduce_sum(_value(tensor))

    def max(self, tensor: Any) -> tf.Tensor:
        return tf.reduce_max(_value(tensor))

    def matmul(self, a: Any, b: Any) -> tf.Tensor:
        return tf.matmul(_value(a), _value(b))

    def transpose(self, tensor: Any) -> tf.Tensor:
        return tf.transpose(_value(tensor))

    def gram_product(self, features: Any) -> tf.Tensor:
        return _gram_product(_value(features))

    def gram_product_columns(self, features: Any) -> tf.Tensor:
        return _gram_product_columns(_value(features))

    def reshape(self, tensor: Any, shape: Sequence[int]) -> tf.Tensor:
        return tf.reshape(_value(tensor), tuple(shape))

    def into_layers(self, x: Any) -> tf.Tensor:
        return tf.transpose(_value(x), _TO_NHWC)

    def out_of_layers(self, t: Any) -> tf.Tensor:
        return tf.transpose(t, _TO_NCHW)

    def conv(self, weight: np.ndarray, bias: np.ndarray) -> Callable[[Any], tf.Tensor]:
        kernel, b = self.asarray(np.transpose(weight, (2, 3, 1, 0))), self.asarray(bias)  # OIHW -> HWIO
        return lambda x: tf.nn.bias_add(tf.nn.conv2d(x, kernel, 1, "SAME"), b)

    def relu(self) -> Callable[[Any], tf.Tensor]:
        return lambda x: tf.nn.relu(_value(x))

    def pool(self, kind: str, ceil: bool = False) -> Callable[[Any], tf.Tensor]:
        if kind == "max":  # "SAME" pads an odd last row and column for a window of 2: ceil mode
            return lambda x: tf.nn.max_pool2d(x, 2, 2, "SAME" if ceil else "VALID")
        return lambda x: tf.nn.avg_pool2d(x, 2, 2, "VALID")

    def freeze(self, layers: List[Callable[[Any], tf.Tensor]]) -> List[Callable[[Any], tf.Tensor]]:
        return layers  # the weights are constants, never watched by a tape: no gradient is computed for them

    def loss_and_grad(self, fn: Callable[[Any], Any], x: Any) -> Tuple[tf.Tensor, tf.Tensor]:
        value = _value(x)
        image = self.traced_image(value)
        with tf.device(self.native_device), tf.GradientTape() as tape:
            tape.watch(value)
            loss = _value(fn(image))
        grad = tape.gradient(loss, value)
        self.persist_clips(image, value)
        return tf.stop_gradient(loss), grad

    def compile_objective(self, terms: Callable[..., Dict[str, Any]]) -> Callable[..., Dict[str, Any]]:
        """``terms`` whose value and gradient are one TensorFlow graph (``tf.function``), traced per image shape.

        The graph computes the terms and the gradient of their total with respect to the image at once (a
        tape inside it); a ``tf.custom_gradient`` hands that gradient, scaled by the total's upstream
        gradient, to the loop's tape, whose closure stays eager (its clip and :meth:`keep` run at every
        call).  Grappler fuses what eager mode runs op by op (a convolution with its bias and ReLU, on
        oneDNN): measured at 96x144 (2 cores, TensorFlow 2.15.1), the network's forward and input gradient
        take 76 ms in a graph against 133 ms eager, and 131 ms compiled by XLA (``jit_compile``;
        ``benchmarks/studies/layer_layout.py``).
        Numbers after the image (``tv_scale``) are float32 tensors of the graph: a new value reuses it.

        Two things keep the trace short (measured at 96x144, TensorFlow 2.15.1: 0.3 s a scale, against 1.1 s
        and 0.6 s): the graph is called on an image the loop's tape does not record (``tf.stop_gradient``;
        recorded, TensorFlow would build and record the graph's own gradient, a second-order graph the custom
        gradient never uses), and AutoGraph does not convert the objective (``autograph=False``: it has no
        tensor-dependent Python control flow to convert).
        """
        if not self.graph:
            return terms
        keys: List[str] = []  # the terms' names, and which hold a tensor (a term may be None), as traced
        present: List[str] = []

        @tf.function(jit_compile=self.jit_compile, autograph=False)
        def value_and_grad(v: tf.Tensor, *extra: tf.Tensor) -> Tuple[List[tf.Tensor], tf.Tensor]:
            with tf.GradientTape() as tape:
                tape.watch(v)
                out = terms(v, *extra)
            keys[:], present[:] = list(out), [key for key, value in out.items() if value is not None]
            return [out[key] for key in present], tape.gradient(out["total"], v)

        def compiled(x: Any, *extra: Any) -> Dict[str, Any]:
            numbers = [tf.constant(e, tf.float32) for e in extra]

            @tf.custom_gradient
            def run(v: tf.Tensor) -> Tuple[List[tf.Tensor], Callable[..., tf.Tensor]]:
                values, grad = value_and_grad(tf.stop_gradient(v), *numbers)
                return values, lambda *upstream: upstream[present.index("total")] * grad

            found = dict(zip(present, run(_value(x))))
            return {key: found.get(key) for key in keys}
        return compiled

    def argmax_one_hot(self, scores: Any) -> tf.Tensor:
        scores = tf.stop_gradient(_value(scores))
        return tf.one_hot(tf.argmax(scores, axis=0), tf.shape(scores)[0], axis=0, dtype=scores.dtype)

    def conv2d(self, x: Any, weight: Any, bias: Any, stride: int = 1, reflect: int = 0) -> tf.Tensor:
        x = _value(x)
        if reflect:
            x = tf.pad(x, [[0, 0], [reflect, reflect], [reflect, reflect], [0, 0]], mode="REFLECT")
        kernel = tf.transpose(weight, (2, 3, 1, 0))  # OIHW -> HWIO, the layers' layout
        return tf.nn.bias_add(tf.nn.conv2d(x, kernel, stride, "VALID"), bias)

    def instance_norm(self, x: Any, weight: Any, bias: Any, eps: float) -> tf.Tensor:
        mean, variance = tf.nn.moments(_value(x), axes=[1, 2], keepdims=True)
        return tf.nn.batch_normalization(_value(x), mean, variance, bias, weight, eps)

    def upsample_nearest(self, x: Any, factor: int) -> tf.Tensor:
        return tf.repeat(tf.repeat(_value(x), factor, axis=1), factor, axis=2)

    def loss_and_grads(self, fn: Callable[[Dict[str, Any]], Any],
                       params: Dict[str, Any]) -> Tuple[tf.Tensor, Dict[str, tf.Tensor]]:
        with tf.device(self.native_device), tf.GradientTape() as tape:
            tape.watch(list(params.values()))
            loss = _value(fn(params))
        return tf.stop_gradient(loss), tape.gradient(loss, params)

    def compile_gradients(self, terms: Callable[..., Dict[str, Any]]
                          ) -> Callable[..., Tuple[Dict[str, Any], Dict[str, Any]]]:
        """The terms and the parameters' gradient as one graph (``tf.function``), traced per input shape:
        Grappler fuses what eager mode runs op by op, as for :meth:`compile_objective`."""
        eager = super().compile_gradients(terms)
        if not self.graph:
            return eager
        return tf.function(eager, jit_compile=self.jit_compile, autograph=False)

    def compile_pass(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """A graph (``tf.function``) per picture size: measured at 512x512 (width 32, 2 cores, TensorFlow 2.15.1),
        0.58 s a pass against 0.67 s eager, and the first call (the trace) no slower than an eager one."""
        return tf.function(fn, autograph=False) if self.graph else fn

    # -- weights ---------------------------------------------------------------------------------
    def load_zoo_weights(self) -> Dict[str, np.ndarray]:
        # What tf.keras.applications.VGG19(weights="imagenet", include_top=False) fetches, into Keras's cache
        # (KERAS_HOME, else ~/.keras, as Keras 3 has it), then read without Keras: no model is built.
        cache = os.path.expanduser(os.environ.get("KERAS_HOME") or os.path.join("~", ".keras"))
        path = os.path.join(cache, "models", os.path.basename(ZOO_URL))
        try:
            path = tf.keras.utils.get_file(os.path.basename(ZOO_URL), ZOO_URL, cache_subdir="models",
                                           file_hash=ZOO_MD5, cache_dir=cache)
            return read(path)  # unmarked: in Keras's (Caffe's) input convention, folded
        except Exception as exc:  # no network, bad download
            raise zoo_error(self, "Keras applications", exc, path, ZOO_URL) from None

    def load_native_weights(self, path: str) -> Dict[str, np.ndarray]:
        return read(path)

    def save_native_weights(self, weights: Weights, path: str) -> None:
        """``.h5``: Keras 2's layout, written with h5py (both Keras 2 and 3 load it); ``.weights.h5`` and
        ``.keras``: Keras's own writer, for the Keras installed.  Each marked (:func:`multistyle.keras_weights.mark`)."""
        pairs = [(np.transpose(w, (2, 3, 1, 0)), b) for _, (w, b) in sorted(weights.items())]
        lower = path.lower()
        if lower.endswith(".h5") and not lower.endswith(".weights.h5"):
            write_h5(pairs, path, _keras_version())
            return
        if len(pairs) != len(CONV_INDICES):
            raise WeightsError(f"weights {path}: Keras's writer needs all 16 convolutions, not {len(pairs)}; "
                               f"write an .h5 or .npz file")
        model = tf.keras.applications.VGG19(weights=None, include_top=False)
        for layer, pair in zip([layer for layer in model.layers if layer.get_weights()], pairs):
            layer.set_weights(list(pair))
        if lower.endswith(".keras"):
            model.save(path)
        else:
            model.save_weights(path)
        mark(path)
