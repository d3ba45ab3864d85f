"""PaddlePaddle backend: Paddle tensors, ``paddle.vision``'s VGG-19, ``paddle.optimizer``.

Devices map ``cpu`` to ``paddle.CPUPlace()`` and ``gpu:N`` to
``paddle.CUDAPlace(N)``; tensors and layers are placed explicitly, never
through the global ``paddle.set_device``.

Threads: importing Paddle sets ``OMP_NUM_THREADS=1`` when it is unset, which
makes Paddle (and any framework imported after it) run on one core; measured
here, a VGG-19 step then takes about 1.6 times as long on two cores.  So this
module sets ``OMP_NUM_THREADS`` to the number of usable cores before the
import (the spec's ``all_cores``), unless the user has set it, and this module silences the warning
Paddle prints about it (it concerns data-parallel training).
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import threading
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from multistyle.backend import BUILTIN_BACKENDS, Backend, ScheduledOptimizer, zoo_error

with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
    # Paddle warns that ccache (a C++ build cache) is missing, and prints a
    # data-parallel warning when OMP_NUM_THREADS > 1; neither applies here.
    warnings.filterwarnings("ignore", message=".*ccache.*")
    import paddle
from paddle import nn  # noqa: E402
from paddle.nn import functional as F  # noqa: E402

from multistyle.safe_pickle import load_state_dict  # noqa: E402
from multistyle.vgg import Weights, state_dict  # noqa: E402


def _interruptible(run: Callable[[], Any]) -> Any:
    """Runs a backward pass, and lets Ctrl-C out as ``KeyboardInterrupt`` once it has finished.

    Paddle runs a ``PyLayer``'s backward (``_GramProduct`` below) from C++, and
    wraps any Python exception raised there, a ``KeyboardInterrupt`` included,
    in its own error (paddle/fluid/eager/pylayer/py_layer_node.cc), logging a
    line to the terminal as it does (``While running Node ... raises an
    EnforceNotMet exception``, paddle/fluid/eager/backward.cc).  So, where
    Ctrl-C would raise ``KeyboardInterrupt`` (Python's own SIGINT handler, in
    the main thread), the signal is held while the backward runs and raised
    after it; a backward pass takes milliseconds.  Elsewhere (another handler,
    another thread), a wrapped interrupt is still unwrapped.
    """
    held: List[int] = []
    hold = (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler)
    if hold:
        signal.signal(signal.SIGINT, lambda number, frame: held.append(number))
    try:
        result = run()
    except KeyboardInterrupt:
        raise
    except Exception as error:  # noqa: BLE001 - re-raised below unless it is a wrapped interrupt
        if "KeyboardInterrupt" in str(error):
            raise KeyboardInterrupt from None
        raise
    finally:
        if hold:
            signal.signal(signal.SIGINT, signal.default_int_handler)
    if held:
        raise KeyboardInterrupt
    return result


class PaddleOptimizer(ScheduledOptimizer):
    """A ``paddle.optimizer`` optimizer and its ``lr.StepDecay`` schedule over one image tensor."""

    def step(self, closure: Callable[[paddle.Tensor], paddle.Tensor]) -> paddle.Tensor:
        loss = closure(self._image)
        _interruptible(loss.backward)
        self._optimizer.step()
        self._optimizer.clear_grad()
        return loss

    @property
    def lr(self) -> float:
        return float(self._optimizer.get_lr())


class PaddleLBFGS(PaddleOptimizer):
    """``paddle.optimizer.LBFGS``: it calls the closure itself, and keeps its rate in a plain attribute.

    ``paddle.optimizer.LBFGS.step`` reads ``self.learning_rate`` on every call
    (paddle/optimizer/lbfgs.py), and it takes no ``LRScheduler``; so the
    schedule's rate is copied into it after every epoch.
    """

    def step(self, closure: Callable[[paddle.Tensor], paddle.Tensor]) -> paddle.Tensor:
        def evaluate() -> paddle.Tensor:
            self._optimizer.clear_grad()
            loss = closure(self._image)
            _interruptible(loss.backward)
            return loss

        with warnings.catch_warnings():
            # LBFGS.step calls paddle.to_tensor on a tensor (its step length), which warns every time.
            warnings.filterwarnings("ignore", message="To copy construct from a tensor")
            return self._optimizer.step(evaluate)

    def epoch_end(self) -> None:
        self._scheduler.step()
        self._optimizer.learning_rate = float(self._scheduler.get_lr())

    @property
    def lr(self) -> float:
        return float(self._optimizer.learning_rate)


def _step_decay(lr: float, decay: float, every: int) -> paddle.optimizer.lr.LRScheduler:
    if decay < 1.0:
        return paddle.optimizer.lr.StepDecay(learning_rate=lr, step_size=every, gamma=decay)
    return paddle.optimizer.lr.LambdaDecay(learning_rate=lr, lr_lambda=lambda epoch: 1.0)  # StepDecay refuses 1


class _GramProduct(paddle.autograd.PyLayer):
    """X·Xᵀ, differentiated in one product, (G' + G'ᵀ)·X, where autograd computes two (G'·X and G'ᵀ·X).
    The product reads X as transposed itself: ``x.T`` would be a transpose kernel and a copy."""

    @staticmethod
    def forward(ctx: Any, x: paddle.Tensor) -> paddle.Tensor:
        ctx.save_for_backward(x)
        return paddle.matmul(x, x, transpose_y=True)

    @staticmethod
    def backward(ctx: Any, grad: paddle.Tensor) -> paddle.Tensor:
        (x,) = ctx.saved_tensor()
        return paddle.matmul(grad + grad.T, x)


class PaddleBackend(Backend):
    """PaddlePaddle 2.6 or newer (dynamic graph mode)."""

    name = "paddle"
    framework = "PaddlePaddle"
    native_optimizers = dict(BUILTIN_BACKENDS["paddle"].native_optimizers)  # declared in the spec, read by the docs

    @classmethod
    def framework_version(cls) -> str:
        return f"paddlepaddle {paddle.__version__}"

    @classmethod
    def gpu_count(cls) -> int:
        return paddle.device.cuda.device_count() if paddle.is_compiled_with_cuda() else 0

    def place(self, gpu: Optional[int]) -> paddle.CPUPlace:
        return paddle.CPUPlace() if gpu is None else paddle.CUDAPlace(gpu)

    def seed(self, seed: int) -> None:
        paddle.seed(seed)

    def peak_device_memory(self) -> Optional[int]:
        return None if self.gpu is None else int(paddle.device.cuda.max_memory_allocated(self.gpu))

    def set_deterministic(self) -> None:
        if paddle.is_compiled_with_cuda():  # CPU builds lack the flag, and are deterministic
            paddle.set_flags({"FLAGS_cudnn_deterministic": True})

    def asarray(self, array: np.ndarray) -> paddle.Tensor:
        return paddle.to_tensor(np.asarray(array, dtype=np.float32), dtype="float32", place=self.native_device)

    def to_numpy(self, tensor: paddle.Tensor) -> np.ndarray:
        return tensor.numpy()

    def pack(self, tensors: Sequence[paddle.Tensor]) -> paddle.Tensor:
        return paddle.concat([t.detach().reshape([-1]) for t in tensors])

    def clip_(self, tensor: paddle.Tensor, low: paddle.Tensor, high: paddle.Tensor) -> None:
        with paddle.no_grad():  # assign works in place on a trainable leaf; the other in-place ops refuse
            paddle.assign(paddle.minimum(paddle.maximum(tensor, low), high), output=tensor)

    def gram_product(self, features: paddle.Tensor) -> paddle.Tensor:
        return _GramProduct.apply(features)

    def conv(self, weight: np.ndarray, bias: np.ndarray) -> nn.Conv2D:
        conv = nn.Conv2D(weight.shape[1], weight.shape[0], kernel_size=3, padding=1)
        conv.weight.set_value(weight)
        conv.bias.set_value(bias)
        conv.to(device=self.native_device)
        return conv

    def relu(self) -> nn.ReLU:
        return nn.ReLU()

    def pool(self, kind: str, ceil: bool = False) -> nn.Layer:
        if kind == "max":
            return nn.MaxPool2D(kernel_size=2, stride=2, ceil_mode=ceil)
        return nn.AvgPool2D(kernel_size=2, stride=2)

    def freeze(self, layers: List[nn.Layer]) -> List[nn.Layer]:
        for layer in layers:
            layer.eval()
            for param in layer.parameters():
                param.stop_gradient = True  # Paddle's requires_grad=False
        return layers

    def load_zoo_weights(self) -> Dict[str, np.ndarray]:
        from paddle.utils.download import WEIGHTS_HOME
        from paddle.vision.models.vgg import model_urls

        url = model_urls["vgg19"][0]
        path = os.path.join(WEIGHTS_HOME, os.path.basename(url))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                net = paddle.vision.models.vgg19(pretrained=True)
        except Exception as exc:  # no network, bad download
            raise zoo_error(self, "paddle.vision", exc, path, url) from None
        return {key: value.numpy() for key, value in net.state_dict().items()}

    def load_native_weights(self, path: str) -> Dict[str, np.ndarray]:
        # Not paddle.load: it calls pickle.load(f, encoding='latin1') on the file
        # (paddle/framework/io.py, load()), so an untrusted .pdparams could run code.
        # paddle.save writes a pickled dict of NumPy arrays, which the restricted reader admits.
        return load_state_dict(path)

    def save_native_weights(self, weights: Weights, path: str) -> None:
        paddle.save({key: paddle.to_tensor(value, place=paddle.CPUPlace())
                     for key, value in state_dict(weights).items()}, path)

    def loss_and_grad(self, fn: Callable[[paddle.Tensor], paddle.Tensor],
                      x: paddle.Tensor) -> Tuple[paddle.Tensor, paddle.Tensor]:
        x = x.detach()  # shares storage: an in-place clip by fn reaches the caller's x
        x.stop_gradient = False
        loss = fn(x)
        (grad,) = _interruptible(lambda: paddle.grad(loss, x))
        return loss.detach(), grad

    def argmax_one_hot(self, scores: paddle.Tensor) -> paddle.Tensor:
        scores = scores.detach()
        return F.one_hot(paddle.argmax(scores, axis=0), scores.shape[0]).astype(scores.dtype).T

    def conv2d(self, x: paddle.Tensor, weight: paddle.Tensor, bias: paddle.Tensor, stride: int = 1,
               reflect: int = 0) -> paddle.Tensor:
        if reflect:
            x = F.pad(x, [reflect] * 4, mode="reflect")
        return F.conv2d(x, weight, bias, stride=stride)

    def instance_norm(self, x: paddle.Tensor, weight: paddle.Tensor, bias: paddle.Tensor,
                      eps: float) -> paddle.Tensor:
        return F.instance_norm(x, weight=weight, bias=bias, eps=eps)

    def upsample_nearest(self, x: paddle.Tensor, factor: int) -> paddle.Tensor:
        return F.interpolate(x, scale_factor=factor, mode="nearest")

    def loss_and_grads(self, fn: Callable[[Dict[str, paddle.Tensor]], paddle.Tensor],
                       params: Dict[str, paddle.Tensor]) -> Tuple[paddle.Tensor, Dict[str, paddle.Tensor]]:
        leaves = {}
        for name, value in params.items():
            leaves[name] = value.detach()
            leaves[name].stop_gradient = False
        loss = fn(leaves)
        grads = _interruptible(lambda: paddle.grad(loss, list(leaves.values())))
        return loss.detach(), dict(zip(leaves, grads))

    def native_optimizer(self, name: str, image: np.ndarray, lr: float, lr_decay: float, lr_decay_every: int,
                         line_search: bool = False) -> PaddleOptimizer:
        x = self.asarray(image)
        x.stop_gradient = False
        scheduler = _step_decay(lr, lr_decay, lr_decay_every)
        if name == "adam":
            return PaddleOptimizer(x, paddle.optimizer.Adam(learning_rate=scheduler, parameters=[x], epsilon=1e-8),
                                   scheduler)
        # A port of torch.optim.LBFGS with torch's defaults in its signature (its docstring says
        # tolerance_grad 1e-5 and strong-Wolfe by default; the code has 1e-7 and None, so every value is
        # passed here); dynamic mode only; `parameters` must be a list.  max_iter=1: one epoch is one
        # iteration, the history carried across step() calls in the optimizer's state.
        optimizer = paddle.optimizer.LBFGS(
            learning_rate=lr, max_iter=1, history_size=100, tolerance_grad=1e-7, tolerance_change=1e-9,
            line_search_fn="strong_wolfe" if line_search else None, parameters=[x])
        return PaddleLBFGS(x, optimizer, scheduler)
