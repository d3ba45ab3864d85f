"""PyTorch backend: torch tensors, torchvision's VGG-19 zoo, ``torch.optim``.

Devices map ``cpu`` to ``torch.device("cpu")`` and ``gpu:N`` to ``cuda:N``.
The feature network uses out-of-place ReLUs (torchvision's VGG uses
``inplace=True``, which would overwrite stored conv outputs) and its
parameters never require gradients.
"""

from __future__ import annotations

import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from multistyle.backend import BUILTIN_BACKENDS, Backend, ScheduledOptimizer, zoo_error
from multistyle.errors import MultistyleError, WeightsError
from multistyle.vgg import Weights, state_dict


def _torchvision_version() -> str:
    """torchvision's version without importing it: the import takes 1.25 s (torch 2.14, 2 cores), a third of a
    fresh ``run --model``'s time, and only the model zoo (:meth:`TorchBackend.load_zoo_weights`) needs it."""
    from importlib import metadata

    try:
        return metadata.version("torchvision")
    except metadata.PackageNotFoundError:
        return "not installed"


def _deterministic_error(exc: RuntimeError, device: torch.device) -> Optional[MultistyleError]:
    """torch's error for an op without a deterministic kernel, as a one-line user error naming the op."""
    text = str(exc)
    marker = " does not have a deterministic implementation"
    if marker not in text:
        return None
    op = text.split(marker)[0].strip().splitlines()[-1]
    return MultistyleError(f"--deterministic: {op} has no deterministic implementation on {device} in "
                           f"torch {torch.__version__}; run without --deterministic")


class TorchOptimizer(ScheduledOptimizer):
    """A ``torch.optim`` optimizer and a ``StepLR`` schedule over one image tensor."""

    def step(self, closure: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        def evaluate() -> torch.Tensor:
            self._optimizer.zero_grad(set_to_none=True)
            loss = closure(self._image)
            loss.backward()
            return loss

        # Adam calls the closure once; L-BFGS may call it several times.
        try:
            return self._optimizer.step(evaluate)
        except RuntimeError as exc:
            error = _deterministic_error(exc, self._image.device)
            if error is None:
                raise
            raise error from None

    @property
    def lr(self) -> float:
        return float(self._optimizer.param_groups[0]["lr"])


class _GramProduct(torch.autograd.Function):
    """X·Xᵀ, differentiated in one product, (G' + G'ᵀ)·X, where autograd computes two (G'·X and G'ᵀ·X)."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return x @ x.T

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors  # type: ignore[attr-defined]
        return (grad + grad.T) @ x


class TorchBackend(Backend):
    """PyTorch (with torchvision for the model zoo)."""

    name = "torch"
    framework = "PyTorch"
    native_optimizers = dict(BUILTIN_BACKENDS["torch"].native_optimizers)  # declared in the spec, read by the docs

    @classmethod
    def framework_version(cls) -> str:
        return f"torch {torch.__version__}, torchvision {_torchvision_version()}"

    @classmethod
    def gpu_count(cls) -> int:
        return torch.cuda.device_count() if torch.cuda.is_available() else 0

    def place(self, gpu: Optional[int]) -> torch.device:
        return torch.device("cpu" if gpu is None else f"cuda:{gpu}")

    def seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def peak_device_memory(self) -> Optional[int]:
        return int(torch.cuda.max_memory_allocated(self.native_device)) if self.gpu is not None else None

    def set_deterministic(self) -> None:
        # cuBLAS is deterministic only with a fixed workspace; it reads this
        # variable when its handle is created, which is after this point (no
        # tensor is on the GPU yet).  torch raises for it otherwise:
        # https://docs.nvidia.com/cuda/cublas/#results-reproducibility
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        # Not warn_only: an op without a deterministic kernel is an error
        # (turned into a one-line message by TorchOptimizer.step), not a warning
        # that leaves the run silently non-deterministic.
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False

    def asarray(self, array: np.ndarray) -> torch.Tensor:
        return torch.tensor(np.asarray(array, dtype=np.float32), device=self.native_device)

    def to_numpy(self, tensor: torch.Tensor) -> np.ndarray:
        return tensor.detach().cpu().numpy()

    def pack(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.cat([t.detach().reshape(-1) for t in tensors])

    def clip_(self, tensor: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> None:
        with torch.no_grad():
            tensor.clamp_(low, high)

    def gram_product(self, features: torch.Tensor) -> torch.Tensor:
        return _GramProduct.apply(features)

    def conv(self, weight: np.ndarray, bias: np.ndarray) -> nn.Conv2d:
        conv = nn.Conv2d(weight.shape[1], weight.shape[0], kernel_size=3, padding=1)
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(weight))
            conv.bias.copy_(torch.from_numpy(bias))
        return conv.to(self.native_device)

    def relu(self) -> nn.ReLU:
        return nn.ReLU(inplace=False)

    def pool(self, kind: str, ceil: bool = False) -> nn.Module:
        if kind == "max":
            return nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=ceil)
        return nn.AvgPool2d(kernel_size=2, stride=2)

    def freeze(self, layers: List[nn.Module]) -> List[nn.Module]:
        # eval(): no layer here changes with it, but it is the convention; no gradients for the weights.
        return [layer.eval().requires_grad_(False) for layer in layers]

    def load_zoo_weights(self) -> Dict[str, np.ndarray]:
        from torchvision.models import VGG19_Weights

        spec = VGG19_Weights.IMAGENET1K_V1
        path = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(spec.url))
        try:
            state = spec.get_state_dict(progress=False, check_hash=True)
        except Exception as exc:  # URLError, hash mismatch, truncated file
            raise zoo_error(self, "torchvision", exc, path, spec.url) from None
        return {key: value.numpy() for key, value in state.items()}

    def load_native_weights(self, path: str) -> Dict[str, np.ndarray]:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        if not isinstance(state, dict):
            raise WeightsError(f"weights {path}: expected a state dict, found a {type(state).__name__}")
        return {str(key): value.numpy() for key, value in state.items() if isinstance(value, torch.Tensor)}

    def save_native_weights(self, weights: Weights, path: str) -> None:
        torch.save({key: torch.from_numpy(value) for key, value in state_dict(weights).items()}, path)

    def loss_and_grad(self, fn: Callable[[torch.Tensor], torch.Tensor],
                      x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        x = x.detach().requires_grad_(True)  # shares storage: an in-place clip by fn reaches the caller's x
        loss = fn(x)
        (grad,) = torch.autograd.grad(loss, x)
        return loss.detach(), grad

    def argmax_one_hot(self, scores: torch.Tensor) -> torch.Tensor:
        scores = scores.detach()
        return torch.zeros_like(scores).scatter_(0, scores.argmax(dim=0, keepdim=True), 1.0)

    def conv2d(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, stride: int = 1,
               reflect: int = 0) -> torch.Tensor:
        if reflect:
            x = F.pad(x, (reflect,) * 4, mode="reflect")
        return F.conv2d(x, weight, bias, stride=stride)

    def instance_norm(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
        return F.instance_norm(x, weight=weight, bias=bias, eps=eps)

    def upsample_nearest(self, x: torch.Tensor, factor: int) -> torch.Tensor:
        return F.interpolate(x, scale_factor=factor, mode="nearest")

    def loss_and_grads(self, fn: Callable[[Dict[str, torch.Tensor]], torch.Tensor],
                       params: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        leaves = {name: value.detach().requires_grad_(True) for name, value in params.items()}
        loss = fn(leaves)
        grads = torch.autograd.grad(loss, list(leaves.values()))
        return loss.detach(), dict(zip(leaves, grads))

    def native_optimizer(self, name: str, image: np.ndarray, lr: float, lr_decay: float, lr_decay_every: int,
                         line_search: bool = False) -> TorchOptimizer:
        x = self.asarray(image).requires_grad_(True)
        if name == "adam":
            optimizer: torch.optim.Optimizer = torch.optim.Adam([x], lr=lr)
        elif name == "rmsprop":
            optimizer = torch.optim.RMSprop([x], lr=lr, alpha=0.99, eps=1e-8)
        else:
            # max_iter=1: one multistyle epoch is one L-BFGS iteration (torch's default of 20 would make
            # one step() twenty iterations).  The history and the first-step scaling live in the
            # optimizer's state across step() calls, so the iterates are those of one long run.
            # max_eval: torch gives the line search max_ls = max_eval - evaluations so far, and max_eval
            # defaults to max_iter * 5 // 4 = 1, which leaves it no evaluation at all: it then returns a
            # step of 0 whenever its first trial fails the Armijo test, and L-BFGS stalls for good.  1 + 25
            # restores the 25 evaluations the search has by default (and Paddle's port always has).
            optimizer = torch.optim.LBFGS(
                [x], lr=lr, max_iter=1, max_eval=1 + 25, history_size=100, tolerance_grad=1e-7,
                tolerance_change=1e-9, line_search_fn="strong_wolfe" if line_search else None)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=lr_decay_every, gamma=lr_decay)
        return TorchOptimizer(x, optimizer, scheduler)
