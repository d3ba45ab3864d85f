"""MXNet Gluon backend: NDArrays, the Gluon model zoo's VGG-19, ``gluon.Trainer``.

MXNet 1.9.1 is the last release; it imports only under ``numpy<1.24``.
Devices map ``cpu`` to ``mx.cpu()`` and ``gpu:N`` to ``mx.gpu(N)``.
MXNet runs asynchronously: :meth:`MXNetBackend.to_numpy` waits for results.

Threads: without ``OMP_NUM_THREADS``, MXNet runs half as many OpenMP threads
as there are logical processors on x86 (``src/engine/openmp.cc``), assuming
hyper-threading: one thread on a 2-core machine, where a 150x225 step then
took 0.51 s instead of 0.285 s in a fresh ``multistyle run``.  This module sets
the variable to the usable cores before importing MXNet, unless it is set.

Gluon's Adam adds epsilon to ``sqrt(v)`` *before* the bias correction, while
PyTorch and Paddle add it after.  To compute the same update, the trainer's
epsilon is scaled by ``sqrt(1 - beta2**t)`` before step ``t``, which is
exactly the after-correction form.
"""

from __future__ import annotations

import math
import os
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np

from multistyle.backend import Backend, Optimizer, use_all_cores

use_all_cores()  # before the import: MXNet would use half the logical processors (one, on two cores)

import mxnet as mx  # noqa: E402
from mxnet import autograd, gluon, nd  # noqa: E402

from multistyle.errors import WeightsError  # noqa: E402
from multistyle.vgg import LAYERS, Weights, state_dict  # noqa: E402

_EPSILON = 1e-8  # Adam's epsilon in torch and Paddle (Gluon's default too)


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
    weight_suffixes = (".params",)
    # MXNet has no L-BFGS, and its RMSProp divides by sqrt(v + epsilon): both come from the core.
    native_optimizers = {"adam": "gluon.Trainer('adam')"}

    def __init__(self, device: str = "auto") -> None:
        super().__init__(device)
        self._ctx = mx.cpu() if self.device == "cpu" else mx.gpu(int(self.device.split(":")[1]))

    @classmethod
    def framework_version(cls) -> str:
        return f"mxnet {mx.__version__}"

    @classmethod
    def available_devices(cls) -> List[str]:
        try:
            count = mx.context.num_gpus()
        except mx.base.MXNetError:
            count = 0
        return ["cpu"] + [f"gpu:{i}" for i in range(count)]

    def seed(self, seed: int) -> None:
        mx.random.seed(seed)

    def set_deterministic(self) -> None:
        # Read by MXNet's cuDNN operators when they run; CPU kernels are deterministic already.
        os.environ["MXNET_ENFORCE_DETERMINISM"] = "1"

    def asarray(self, array: np.ndarray) -> nd.NDArray:
        return nd.array(np.asarray(array, dtype=np.float32), ctx=self._ctx, dtype="float32")

    def sum(self, tensor: nd.NDArray) -> nd.NDArray:
        return nd.sum(tensor)

    def max(self, tensor: nd.NDArray) -> nd.NDArray:
        return nd.max(tensor)

    def sqrt(self, tensor: nd.NDArray) -> nd.NDArray:
        return nd.sqrt(tensor)

    def clip_(self, tensor: nd.NDArray, low: nd.NDArray, high: nd.NDArray) -> None:
        with autograd.pause():  # not part of the recorded graph, even inside a closure being recorded
            tensor[:] = nd.broadcast_minimum(nd.broadcast_maximum(tensor, low), high)

    def to_numpy(self, tensor: nd.NDArray) -> np.ndarray:
        return tensor.asnumpy()

    def pack(self, tensors: Sequence[nd.NDArray]) -> nd.NDArray:
        return nd.concat(*[t.detach().reshape((-1,)) for t in tensors], dim=0)

    @property
    def asynchronous(self) -> bool:
        return True  # the engine queues every operation, on the CPU too

    def shape(self, tensor: nd.NDArray) -> Tuple[int, ...]:
        return tuple(int(d) for d in tensor.shape)

    def square(self, tensor: nd.NDArray) -> nd.NDArray:
        return nd.square(tensor)

    def abs(self, tensor: nd.NDArray) -> nd.NDArray:
        return nd.abs(tensor)

    def mean(self, tensor: nd.NDArray) -> nd.NDArray:
        return nd.mean(tensor)

    def matmul(self, a: nd.NDArray, b: nd.NDArray) -> nd.NDArray:
        return nd.dot(a, b)

    def transpose(self, tensor: nd.NDArray) -> nd.NDArray:
        return tensor.T

    def reshape(self, tensor: nd.NDArray, shape: Sequence[int]) -> nd.NDArray:
        return tensor.reshape(tuple(shape))

    def vgg19_layers(self, weights: Weights, last: int,
                     pooling: str = "max") -> List[Callable[[nd.NDArray], nd.NDArray]]:
        net = gluon.nn.Sequential()
        convs = []
        for spec in LAYERS[: last + 1]:
            if spec.kind == "conv":
                conv = gluon.nn.Conv2D(spec.out_channels, kernel_size=3, padding=1, in_channels=spec.in_channels)
                convs.append((spec.index, conv))
                net.add(conv)
            elif spec.kind == "relu":
                net.add(gluon.nn.Activation("relu"))
            else:
                pool = gluon.nn.MaxPool2D if pooling == "max" else gluon.nn.AvgPool2D
                net.add(pool(pool_size=2, strides=2))
        net.initialize(ctx=self._ctx)
        for index, conv in convs:
            weight, bias = weights[index]
            conv.weight.set_data(nd.array(weight, ctx=self._ctx))
            conv.bias.set_data(nd.array(bias, ctx=self._ctx))
        self._freeze(net)
        return [net[i] for i in range(len(net))]

    @staticmethod
    def _freeze(net: gluon.nn.Sequential) -> None:
        # No gradient buffers, no gradient computation for the weights.
        net.collect_params().setattr("grad_req", "null")

    def load_zoo_weights(self) -> Dict[str, np.ndarray]:
        from mxnet.gluon.model_zoo import model_store, vision

        root = os.path.join(mx.base.data_dir(), "models")
        path = os.path.join(root, f"vgg19-{model_store.short_hash('vgg19')}.params")
        try:
            net = vision.vgg19(pretrained=True, root=root, ctx=mx.cpu())
        except Exception as exc:  # no network, bad download
            raise WeightsError(
                f"--weights imagenet: could not get the Gluon model zoo's VGG-19 weights ({type(exc).__name__}: "
                f"{str(exc).strip()[:120]}); put the file at {path}, or pass --weights FILE (.params or .npz)") from None
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

    def adam(self, image: np.ndarray, lr: float, lr_decay: float, lr_decay_every: int) -> GluonOptimizer:
        param = gluon.Parameter("image", shape=image.shape, dtype="float32")
        param.initialize(init=mx.init.Zero(), ctx=self._ctx)
        param.set_data(self.asarray(image))
        trainer = gluon.Trainer([param], "adam", {"learning_rate": lr, "epsilon": _EPSILON})
        return GluonOptimizer(param, trainer, lr_decay, lr_decay_every)


#: Where each operation of the backend protocol lives in this module, for ``multistyle explain`` (which
#: reads this file's source without importing it).
EXPLAIN = {
    "tensor from NumPy": ["MXNetBackend.asarray"],
    "the VGG-19 layers": ["MXNetBackend.vgg19_layers"],
    "freezing the network": ["MXNetBackend._freeze"],
    "recording gradients": ["MXNetBackend.loss_and_grad"],
    "the optimizer step": ["MXNetBackend.adam", "GluonOptimizer.step"],
    "the learning-rate schedule": ["GluonOptimizer.epoch_end"],
    "device placement": ["MXNetBackend.__init__", "MXNetBackend.available_devices"],
    "seeding": ["MXNetBackend.seed"],
}
