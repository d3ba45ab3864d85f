"""Optimizers written once over the backend protocol, for frameworks that lack one.

multistyle's optimizers have one semantics on every backend; a framework's own
optimizer is used where it computes exactly that (see each backend's
``native_optimizers``), and these where it does not:

* :class:`LBFGS` -- MXNet has no L-BFGS.  This is the algorithm of
  ``torch.optim.LBFGS`` (torch/optim/lbfgs.py, which ``paddle.optimizer.LBFGS``
  ports line for line): the two-loop recursion with initial Hessian
  ``H_diag = y.s / y.y``, a curvature pair kept only when ``y.s > 1e-10``, a
  history of 100 pairs, a first step of ``min(1, 1/|g|_1) * lr``, and the same
  termination tests (``max|g| <= tolerance_grad`` skips the update,
  ``g.d > -tolerance_change`` stops before it).  One :meth:`LBFGS.step` is one
  iteration, as ``torch.optim.LBFGS(max_iter=1)``: without line search it
  evaluates the loss once.  The optional line search is the strong-Wolfe
  search of Nocedal & Wright, *Numerical Optimization* (2nd ed.), algorithms
  3.5 and 3.6, with cubic interpolation (their eq. 3.59), ``c1 = 1e-4``,
  ``c2 = 0.9`` and at most 25 evaluations, the constants torch uses.
* :class:`Adam` -- torch's formula, for a framework without an Adam of its own
  (the three built-in backends use their framework's: Gluon's with its
  epsilon rescaled, see the MXNet backend).
* :class:`RMSprop` -- torch's formula ``x -= lr * g / (sqrt(v) + eps)`` with
  ``v = alpha * v + (1 - alpha) * g**2``, alpha 0.99, eps 1e-8 (no momentum,
  not centred).  Paddle's ``RMSProp`` and MXNet's ``RMSProp`` divide by
  ``sqrt(v + eps)``, epsilon *inside* the root, which cannot be configured
  away: where gradients are tiny that changes the step by orders of magnitude.

Scalars (dot products, norms) are read to the host as Python floats: the
control flow needs them there, and each is one small reduction next to a
VGG-19 forward and backward pass.
"""

from __future__ import annotations

import abc
import math
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Type

import numpy as np

Tensor = Any  # a native tensor of the backend's framework
Backend = Any  # a multistyle.backend.Backend (which imports this module, so not imported here)


class Optimizer(abc.ABC):
    """Updates one image tensor in place, the framework's own way.

    ``step(closure)`` evaluates ``closure(image)`` with gradients recorded,
    back-propagates and applies one update; it returns the loss tensor.
    ``epoch_end()`` advances the learning-rate schedule by one epoch.
    """

    @abc.abstractmethod
    def step(self, closure: Callable[[Tensor], Tensor]) -> Tensor:
        """Run one optimisation step and return the loss the closure computed."""

    @abc.abstractmethod
    def epoch_end(self) -> None:
        """Advance the learning-rate schedule by one epoch."""

    @property
    @abc.abstractmethod
    def lr(self) -> float:
        """The learning rate the next step will use."""

    @property
    @abc.abstractmethod
    def image(self) -> Tensor:
        """The image being optimised, as a native tensor."""


class ScheduledOptimizer(Optimizer):
    """A framework's own optimizer and learning-rate scheduler over one image tensor (torch, Paddle).

    Subclasses say how the framework steps (:meth:`step`) and where it keeps
    the current rate (:attr:`lr`); the schedule advances once per epoch.
    """

    def __init__(self, image: Tensor, optimizer: Any, scheduler: Any) -> None:
        self._image = image
        self._optimizer = optimizer
        self._scheduler = scheduler

    def epoch_end(self) -> None:
        self._scheduler.step()

    @property
    def image(self) -> Tensor:
        return self._image.detach()  # shares storage with the parameter


#: The learning rate each optimizer uses when neither ``--lr`` nor the preset gives one.
DEFAULT_LR = {"lbfgs": 1.0, "rmsprop": 0.01}


def step_decay(lr: float, decay: float, every: int, epoch: int) -> float:
    """The rate after ``epoch`` finished epochs: ``lr * decay ** (epoch // every)`` (torch's ``StepLR``)."""
    return lr * decay ** (epoch // every)


class CoreOptimizer(Optimizer):
    """Holds the image as a native tensor and applies the step decay by epoch."""

    def __init__(self, backend: Backend, image: np.ndarray, lr: float, lr_decay: float, lr_decay_every: int) -> None:
        self.B = backend
        self.x = backend.asarray(image)
        self._lr0, self._decay, self._every = lr, lr_decay, lr_decay_every
        self._epoch = 0

    def epoch_end(self) -> None:
        self._epoch += 1

    @property
    def lr(self) -> float:
        return step_decay(self._lr0, self._decay, self._every, self._epoch)

    @property
    def image(self) -> Tensor:
        return self.B.image_of(self)

    def dot(self, a: Tensor, b: Tensor) -> float:
        return self.B.item(self.B.sum(a * b))

    def max_abs(self, a: Tensor) -> float:
        return self.B.item(self.B.max(self.B.abs(a)))


class Adam(CoreOptimizer):
    """``torch.optim.Adam`` with its defaults (betas 0.9, 0.999; eps 1e-8 after the bias correction).

    For a backend whose framework has no Adam that computes this (it declares
    none in ``native_optimizers``).  In torch's order (torch/optim/adam.py,
    ``_single_tensor_adam``): ``denom = sqrt(v) / sqrt(1 - beta2**t) + eps``,
    ``x -= lr / (1 - beta1**t) * m / denom``.
    """

    def __init__(self, backend: Backend, image: np.ndarray, lr: float, lr_decay: float, lr_decay_every: int,
                 betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        super().__init__(backend, image, lr, lr_decay, lr_decay_every)
        (self.beta1, self.beta2), self.eps = betas, eps
        self.m = backend.asarray(np.zeros_like(image, dtype=np.float32))
        self.v = backend.asarray(np.zeros_like(image, dtype=np.float32))
        self.t = 0

    def step(self, closure: Callable[[Tensor], Tensor]) -> Tensor:
        loss, g = self.B.loss_and_grad(closure, self.x)
        self.t += 1
        self.m = self.m * self.beta1 + g * (1.0 - self.beta1)
        self.v = self.v * self.beta2 + g * g * (1.0 - self.beta2)
        denom = self.B.sqrt(self.v) / math.sqrt(1.0 - self.beta2 ** self.t) + self.eps
        self.x = self.x - (self.m / denom) * (self.lr / (1.0 - self.beta1 ** self.t))
        return loss


class ParameterAdam:
    """:class:`Adam`'s formula (torch's) over a mapping of parameter tensors: a style network's training.

    Functional: :meth:`step` takes the parameters and their gradients and returns new parameters, so that
    frameworks whose arrays never change (JAX, TensorFlow) need nothing of their own.  The state (``m``,
    ``v`` and the step count ``t``) is exported and restored as NumPy arrays, so that a checkpoint resumes
    to the same parameters as an uninterrupted run.
    """

    def __init__(self, backend: Backend, lr: float, betas: Tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.B, self.lr, (self.beta1, self.beta2), self.eps = backend, lr, betas, eps
        self.m: Dict[str, Tensor] = {}
        self.v: Dict[str, Tensor] = {}
        self.t = 0

    def step(self, params: Mapping[str, Tensor], grads: Mapping[str, Tensor]) -> Dict[str, Tensor]:
        self.t += 1
        correction1, correction2 = 1.0 - self.beta1 ** self.t, math.sqrt(1.0 - self.beta2 ** self.t)
        out: Dict[str, Tensor] = {}
        for name, x in params.items():
            g = grads[name]
            m = g * (1.0 - self.beta1) if name not in self.m else self.m[name] * self.beta1 + g * (1.0 - self.beta1)
            v = g * g * (1.0 - self.beta2) if name not in self.v else \
                self.v[name] * self.beta2 + g * g * (1.0 - self.beta2)
            self.m[name], self.v[name] = m, v
            out[name] = x - (m / (self.B.sqrt(v) / correction2 + self.eps)) * (self.lr / correction1)
        return out

    def state(self) -> Dict[str, np.ndarray]:
        """``m.NAME``, ``v.NAME`` and ``t`` as NumPy arrays (a checkpoint's optimizer entries)."""
        out = {f"m.{name}": self.B.to_numpy(value) for name, value in self.m.items()}
        out.update({f"v.{name}": self.B.to_numpy(value) for name, value in self.v.items()})
        out["t"] = np.array([self.t], np.float32)
        return out

    def restore(self, state: Mapping[str, np.ndarray]) -> None:
        """Continue from :meth:`state`'s arrays."""
        self.t = int(np.asarray(state["t"]).reshape(-1)[0]) if "t" in state else 0
        self.m = {name[2:]: self.B.asarray(value) for name, value in state.items() if name.startswith("m.")}
        self.v = {name[2:]: self.B.asarray(value) for name, value in state.items() if name.startswith("v.")}


class RMSprop(CoreOptimizer):
    """``torch.optim.RMSprop`` with its defaults (alpha 0.99, eps 1e-8 outside the root), over the protocol."""

    def __init__(self, backend: Backend, image: np.ndarray, lr: float, lr_decay: float, lr_decay_every: int,
                 alpha: float = 0.99, eps: float = 1e-8) -> None:
        super().__init__(backend, image, lr, lr_decay, lr_decay_every)
        self.alpha, self.eps = alpha, eps
        self.v = backend.asarray(np.zeros_like(image, dtype=np.float32))

    def step(self, closure: Callable[[Tensor], Tensor]) -> Tensor:
        loss, g = self.B.loss_and_grad(closure, self.x)
        # In torch's order: square_avg.mul_(alpha).addcmul_(g, g, 1 - alpha); param.addcdiv_(g, sqrt + eps, -lr).
        self.v = self.v * self.alpha + g * g * (1.0 - self.alpha)
        self.x = self.x - (g / (self.B.sqrt(self.v) + self.eps)) * self.lr
        return loss


class LBFGS(CoreOptimizer):
    """L-BFGS as ``torch.optim.LBFGS(lr, max_iter=1, history_size=100)``, over the protocol."""

    def __init__(self, backend: Backend, image: np.ndarray, lr: float, lr_decay: float, lr_decay_every: int,
                 line_search: bool = False, history_size: int = 100, tolerance_grad: float = 1e-7,
                 tolerance_change: float = 1e-9) -> None:
        super().__init__(backend, image, lr, lr_decay, lr_decay_every)
        self.line_search = line_search
        self.history_size = history_size
        self.tolerance_grad, self.tolerance_change = tolerance_grad, tolerance_change
        self.n_iter = 0
        self.old_s: List[Tensor] = []
        self.old_y: List[Tensor] = []
        self.rho: List[float] = []
        self.h_diag = 1.0
        self.d: Optional[Tensor] = None
        self.t = 0.0
        self.prev_g: Optional[Tensor] = None

    def step(self, closure: Callable[[Tensor], Tensor]) -> Tensor:
        B = self.B
        loss, g = B.loss_and_grad(closure, self.x)
        if self.max_abs(g) <= self.tolerance_grad:  # optimal already: no update
            return loss
        self.n_iter += 1
        if self.n_iter == 1:
            d = -g
        else:
            y, s = g - self.prev_g, self.d * self.t
            ys = self.dot(y, s)
            if ys > 1e-10:  # keep the pair only where the curvature is positive
                if len(self.old_y) == self.history_size:  # forget the oldest pair
                    del self.old_y[0], self.old_s[0], self.rho[0]
                self.old_y.append(y)
                self.old_s.append(s)
                self.rho.append(1.0 / ys)
                self.h_diag = ys / self.dot(y, y)
            d = self.two_loop(g)
        self.prev_g = g
        self.t = min(1.0, 1.0 / B.item(B.sum(B.abs(g)))) * self.lr if self.n_iter == 1 else self.lr
        self.d = d
        gtd = self.dot(g, d)
        if gtd > -self.tolerance_change:  # not a descent direction any more
            return loss
        if self.line_search:
            self.t = strong_wolfe(self, closure, B.item(loss), g, d, self.t, gtd)
        self.x = self.x + d * self.t
        return loss

    def two_loop(self, g: Tensor) -> Tensor:
        """``-H g`` for the L-BFGS inverse-Hessian approximation ``H`` (Nocedal & Wright, algorithm 7.4)."""
        q = -g
        alphas = [0.0] * len(self.old_y)
        for i in range(len(self.old_y) - 1, -1, -1):
            alphas[i] = self.dot(self.old_s[i], q) * self.rho[i]
            q = q - self.old_y[i] * alphas[i]
        r = q * self.h_diag
        for i in range(len(self.old_y)):
            beta = self.dot(self.old_y[i], r) * self.rho[i]
            r = r + self.old_s[i] * (alphas[i] - beta)
        return r


def _cubic_minimum(x1: float, f1: float, g1: float, x2: float, f2: float, g2: float,
                   low: float, high: float) -> float:
    """The minimiser in ``[low, high]`` of the cubic through two points with slopes (N&W eq. 3.59); else the middle."""
    d1 = g1 + g2 - 3.0 * (f1 - f2) / (x1 - x2)
    square = d1 * d1 - g1 * g2
    if square < 0:
        return (low + high) / 2.0
    d2 = math.copysign(math.sqrt(square), x2 - x1)
    denominator = g2 - g1 + 2.0 * d2
    if denominator == 0:
        return (low + high) / 2.0
    return min(max(x2 - (x2 - x1) * (g2 + d2 - d1) / denominator, low), high)


def strong_wolfe(opt: LBFGS, closure: Callable[[Tensor], Tensor], f0: float, g0: Tensor, d: Tensor, t: float,
                 gtd0: float, c1: float = 1e-4, c2: float = 0.9, max_evals: int = 25) -> float:
    """A step length along ``d`` from ``opt.x`` meeting the strong Wolfe conditions (N&W algorithms 3.5, 3.6)."""
    B = opt.B
    d_max = opt.max_abs(d)

    def phi(step: float) -> Tuple[float, float]:
        loss, grad = B.loss_and_grad(closure, opt.x + d * step)
        return B.item(loss), opt.dot(grad, d)

    evals = 0
    t_prev, f_prev, gtd_prev = 0.0, f0, gtd0
    bracket: Optional[List[Tuple[float, float, float]]] = None
    while evals < max_evals:  # algorithm 3.5: grow the step until a bracket or an acceptable point
        f, gtd = phi(t)
        evals += 1
        if f > f0 + c1 * t * gtd0 or (evals > 1 and f >= f_prev):
            bracket = [(t_prev, f_prev, gtd_prev), (t, f, gtd)]
            break
        if abs(gtd) <= -c2 * gtd0:
            return t
        if gtd >= 0:
            bracket = [(t, f, gtd), (t_prev, f_prev, gtd_prev)]
            break
        step = _cubic_minimum(t_prev, f_prev, gtd_prev, t, f, gtd, t + 0.01 * (t - t_prev), t * 10)
        t_prev, f_prev, gtd_prev, t = t, f, gtd, step
    if bracket is None:
        return t
    low, high = bracket  # algorithm 3.6 (zoom): `low` has the lower loss and satisfies the sufficient decrease
    while evals < max_evals and abs(high[0] - low[0]) * d_max >= opt.tolerance_change:
        left, right = sorted((low[0], high[0]))
        t = _cubic_minimum(*low, *high, left, right)
        margin = 0.1 * (right - left)
        if min(t - left, right - t) < margin:  # too close to an end: step back from it
            t = left + margin if t - left < right - t else right - margin
        f, gtd = phi(t)
        evals += 1
        if f > f0 + c1 * t * gtd0 or f >= low[1]:
            high = (t, f, gtd)
        else:
            if abs(gtd) <= -c2 * gtd0:
                return t
            if gtd * (high[0] - low[0]) >= 0:
                high = low
            low = (t, f, gtd)
    return low[0]


#: Optimizers by name: the core class, or ``None`` where only frameworks supply one.
OPTIMIZERS: Dict[str, Type[CoreOptimizer]] = {"adam": Adam, "lbfgs": LBFGS, "rmsprop": RMSprop}


def offered(native: Mapping[str, str]) -> Dict[str, str]:
    """Every optimizer a backend offers, with whose code computes it: the framework's class named in
    ``native`` (its ``native_optimizers``), else this module's (``multistyle.optim.LBFGS``)."""
    return {name: native.get(name, f"multistyle.optim.{core.__name__}") for name, core in OPTIMIZERS.items()}
