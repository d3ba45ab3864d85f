"""MXNet Gluon backend: NDArrays, the Gluon model zoo's VGG-19, ``gluon.Trainer``.

MXNet 1.9.1 is the last release; it imports only under ``numpy<1.24``.
Devices map ``cpu`` to ``mx.cpu()`` and ``gpu:N`` to ``mx.gpu(N)``.
MXNet runs asynchronously: :meth:`MXNetBackend.to_numpy` waits for results.

Threads: without ``OMP_NUM_THREADS``, MXNet runs half as many OpenMP threads
as there are logical processors on x86 (``src/engine/openmp.cc``), assuming
hyper-threading: one thread on a 2-core machine, where a 150x225 step then
took 0.51 s instead of 0.285 s in a fresh ``multistyle run``.  This module sets
the variable to the usable cores before importing MXNet, unless it is set (the spec's ``all_cores``).

Gluon's Adam adds epsilon to ``sqrt(v)`` *before* the bias correction, while
PyTorch and Paddle add it after.  To compute the same update, the trainer's
epsilon is scaled by ``sqrt(1 - beta2**t)`` before step ``t``, which is
exactly the after-correction form.
"""

from __future__ import annotations

import math
import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

import mxnet as mx
from mxnet import autograd, gluon, nd

from multistyle.backend import BUILTIN_BACKENDS, Backend, Optimizer, zoo_error
from multistyle.errors import WeightsError
from multistyle.vgg import Weights, state_dict

_EPSILON = 1e-8  # Adam's epsilon in torch and Paddle (Gluon's default too)
_FEW_FILTERS = 16  # a convolution with fewer output channels runs with this many: see MXNetBackend.conv2d


class GluonOptimizer(Optimizer):
    """A ``gluon.Trainer`` over one image parameter, with the chapter's step decay."""

    def __init__(self, param: gluon.Parameter, trainer: gluon.Trainer, lr_decay: float, every: int) -> None:
        self._param = param
        self._trainer = trainer
        self._decay = lr_decay
        self._every = every
        self._epoch = 0
        self._steps = 0

    def step(self, closure: Callable[[nd.NDArray], nd.NDArray]) -> nd.NDArray:
        x = self._param.data()
        with autograd.record():
            loss = closure(x)
        loss.backward()
        self._steps += 1
        beta2 = self._trainer.optimizer.beta2
        self._trainer.optimizer.epsilon = _EPSILON * math.sqrt(1.0 - beta2 ** self._steps)
        self._trainer.step(1)
        return loss

    def epoch_end(self) -> None:
        self._epoch += 1
        if self._epoch % self._every == 0:
            self._trainer.set_learning_rate(self._trainer.learning_rate * self._decay)

    @property
    def lr(self) -> float:
        return float(self._trainer.learning_rate)

    @property
    def image(self) -> nd.NDArray:
        return self._param.data()


class MXNetBackend(Backend):
    """MXNet 1.x with the Gluon API."""

    name = "mxnet"
    framework = "MXNet Gluon"
    native_optimizers = dict(BUILTIN_BACKENDS["mxnet"].native_optimizers)  # declared in the spec, read by the docs

    @classmethod
    def framework_version(cls) -> str:
        return f"mxnet {mx.__version__}"

    @classmethod
    def gpu_count(cls) -> int:
        try:
            return int(mx.context.num_gpus())
        except mx.base.MXNetError:
            return 0

    def place(self, gpu: Optional[int]) -> mx.Context:
        return mx.cpu() if gpu is None else mx.gpu(gpu)

    def seed(self, seed: int) -> None:
        mx.random.seed(seed)

    def set_deterministic(self) -> None:
        # Read by MXNet's cuDNN operators when they run; CPU kernels are deterministic already.
        os.environ["MXNET_ENFORCE_DETERMINISM"] = "1"

    @property
    def asynchronous(self) -> bool:
        return True  # the engine queues every operation, on the CPU too

    def asarray(self, array: np.ndarray) -> nd.NDArray:
        return nd.array(np.asarray(array, dtype=np.float32), ctx=self.native_device, dtype="float32")

    def to_numpy(self, tensor: nd.NDArray) -> np.ndarray:
        return tensor.asnumpy()

    def pack(self, tensors: Sequence[nd.NDArray]) -> nd.NDArray:
        return nd.concat(*[t.detach().reshape((-1,)) for t in tensors], dim=0)

    def clip_(self, tensor: nd.NDArray, low: nd.NDArray, high: nd.NDArray) -> None:
        with autograd.pause():  # not part of the recorded graph, even inside a closure being recorded
            tensor[:] = nd.broadcast_minimum(nd.broadcast_maximum(tensor, low), high)

    def matmul(self, a: nd.NDArray, b: nd.NDArray) -> nd.NDArray:
        return nd.dot(a, b)  # NDArray has no @

    def gram_product(self, features: nd.NDArray) -> nd.NDArray:
        # oneDNN's inner product, data·weightᵀ with both the features: MXNet's convolutions run on oneDNN, its
        # BLAS products (dot, linalg.syrk, linalg.gemm2) on the OpenBLAS it bundles, which is slower for these
        # shapes (few rows, a long inner dimension).  It multiplies both triangles and is differentiated as two
        # products, and still beats syrk's half: benchmarks/studies/gram_product.py, forward and backward,
        # about 2x faster than syrk on an Intel Xeon (AVX-512), 4-8 % on an AMD EPYC (docs/benchmarks).
        return nd.FullyConnected(features, features, no_bias=True, num_hidden=features.shape[0])

    def conv(self, weight: np.ndarray, bias: np.ndarray) -> gluon.nn.Conv2D:
        conv = gluon.nn.Conv2D(weight.shape[0], kernel_size=3, padding=1, in_channels=weight.shape[1])
        conv.initialize(ctx=self.native_device)
        conv.weight.set_data(nd.array(weight, ctx=self.native_device))
        conv.bias.set_data(nd.array(bias, ctx=self.native_device))
        return conv

    def relu(self) -> gluon.nn.Activation:
        return gluon.nn.Activation("relu")

    def pool(self, kind: str, ceil: bool = False) -> gluon.nn.HybridBlock:
        if kind == "max":
            return gluon.nn.MaxPool2D(pool_size=2, strides=2, ceil_mode=ceil)
        return gluon.nn.AvgPool2D(pool_size=2, strides=2)

    def freeze(self, layers: List[gluon.nn.HybridBlock]) -> List[gluon.nn.HybridBlock]:
        for layer in layers:  # no gradient buffers, no gradient computation for the weights
            layer.collect_params().setattr("grad_req", "null")
        return layers

    def load_zoo_weights(self) -> Dict[str, np.ndarray]:
        from mxnet.gluon.model_zoo import model_store, vision

        root = os.path.join(mx.base.data_dir(), "models")
        path = os.path.join(root, f"vgg19-{model_store.short_hash('vgg19')}.params")
        try:
            net = vision.vgg19(pretrained=True, root=root, ctx=mx.cpu())
        except Exception as exc:  # no network, bad download
            raise zoo_error(self, "the Gluon model zoo", exc, path) from None
        return {f"features.{i}.{kind}": getattr(layer, kind).data().asnumpy()
                for i, layer in enumerate(net.features) if isinstance(layer, gluon.nn.Conv2D)
                for kind in ("weight", "bias")}

    def load_native_weights(self, path: str) -> Dict[str, np.ndarray]:
        loaded = nd.load(path)
        if not isinstance(loaded, dict):
            raise WeightsError(f"weights {path}: expected named parameters, found a list of {len(loaded)} arrays")
        return {str(key).split(":", 1)[-1]: value.asnumpy() for key, value in loaded.items()}

    def save_native_weights(self, weights: Weights, path: str) -> None:
        # The names and format of Gluon's save_parameters.
        nd.save(path, {key: nd.array(value) for key, value in state_dict(weights).items()})

    def loss_and_grad(self, fn: Callable[[nd.NDArray], nd.NDArray], x: nd.NDArray) -> Tuple[nd.NDArray, nd.NDArray]:
        x.attach_grad()  # a fresh gradient buffer each call: earlier gradients stay valid
        with autograd.record():
            loss = fn(x)
        loss.backward()
        return loss.detach(), x.grad

    def argmax_one_hot(self, scores: nd.NDArray) -> nd.NDArray:
        scores = scores.detach()
        return nd.one_hot(nd.argmax(scores, axis=0), depth=scores.shape[0], dtype=scores.dtype).T

    def conv2d(self, x: nd.NDArray, weight: nd.NDArray, bias: nd.NDArray, stride: int = 1,
               reflect: int = 0) -> nd.NDArray:
        if reflect:
            x = nd.pad(x, mode="reflect", pad_width=(0, 0, 0, 0) + (reflect,) * 4)
        kernel, filters = tuple(weight.shape[2:]), weight.shape[0]
        if filters < _FEW_FILTERS:  # the network's last layer: 3 filters
            # oneDNN's kernel is slow for a few output channels: measured (AMD EPYC, 2 cores), the 9x9
            # convolution from 32 channels to 3 at 520x520 took 397 ms, and 214 ms with 16 (13 of them zero).
            zeros = nd.zeros((_FEW_FILTERS - filters,) + weight.shape[1:], ctx=weight.context)
            weight = nd.concat(weight, zeros, dim=0)
            bias = nd.concat(bias, nd.zeros(_FEW_FILTERS - filters, ctx=bias.context), dim=0)
            y = nd.Convolution(x, weight, bias, kernel=kernel, stride=(stride, stride), num_filter=_FEW_FILTERS)
            return nd.slice_axis(y, axis=1, begin=0, end=filters)
        return nd.Convolution(x, weight, bias, kernel=kernel, stride=(stride, stride), num_filter=filters)

    def instance_norm(self, x: nd.NDArray, weight: nd.NDArray, bias: nd.NDArray, eps: float) -> nd.NDArray:
        # Written as BatchNorm over one sample of N*C channels, with the batch's statistics (train mode): the same
        # normalisation, by oneDNN's kernel.  ``nd.InstanceNorm`` is MXNet's own loop: measured at 512x512 (AMD
        # EPYC, 2 cores), 216 ms on 32 channels against 43 ms, and the network's pass 2.73 s against 1.51 s.
        n, c = x.shape[:2]
        if n > 1:
            weight, bias = nd.tile(weight, n), nd.tile(bias, n)
        unused = nd.zeros(n * c, ctx=x.context), nd.ones(n * c, ctx=x.context)  # running statistics, never read
        with autograd.train_mode():
            y = nd.BatchNorm(x.reshape((1, n * c) + x.shape[2:]), weight, bias, *unused, eps=eps, fix_gamma=False,
                             momentum=1.0)
        return y.reshape(x.shape)

    def upsample_nearest(self, x: nd.NDArray, factor: int) -> nd.NDArray:
        return nd.UpSampling(x, scale=factor, sample_type="nearest")

    def loss_and_grads(self, fn: Callable[[Dict[str, nd.NDArray]], nd.NDArray],
                       params: Dict[str, nd.NDArray]) -> Tuple[nd.NDArray, Dict[str, nd.NDArray]]:
        for value in params.values():
            value.attach_grad()  # a fresh gradient buffer each call: earlier gradients stay valid
        with autograd.record():
            loss = fn(params)
        loss.backward()
        return loss.detach(), {name: value.grad for name, value in params.items()}

    def native_optimizer(self, name: str, image: np.ndarray, lr: float, lr_decay: float, lr_decay_every: int,
                         **options: object) -> GluonOptimizer:
        param = gluon.Parameter("image", shape=image.shape, dtype="float32")
        param.initialize(init=mx.init.Zero(), ctx=self.native_device)
        param.set_data(self.asarray(image))
        trainer = gluon.Trainer([param], "adam", {"learning_rate": lr, "epsilon": _EPSILON})
        return GluonOptimizer(param, trainer, lr_decay, lr_decay_every)
