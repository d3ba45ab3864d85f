"""The protocol: what a framework must supply, and what the core builds from it.

:class:`Backend` keeps abstract only what only a framework can do (20
methods): its version and GPU count, its device object, seeding, moving
arrays in and out, packing loss values, an unrecorded in-place clip, the four
layer factories of VGG-19 (``conv``, ``relu``, ``pool``, ``freeze``),
gradients, and its weight files; and for the style networks that train
(:mod:`multistyle.nets`), the three operations VGG-19 does not have (a strided
convolution with reflection padding over parameter tensors, instance
normalisation, nearest upsampling) and gradients with respect to a mapping of
parameters.  Everything else is a concrete default
written with tensor methods that the three frameworks share (``t.mean()``,
``t.T``, ``a @ b``), which a backend overrides only where its framework
differs (MXNet's ``NDArray`` has no ``@``).  The core walks VGG-19's layer
table once (:meth:`Backend.vgg19_layers`) and asks the backend for each layer;
the layers may work in another layout than NCHW (:meth:`Backend.into_layers`).

Gradients live inside the backend: an :class:`~multistyle.optim.Optimizer`
takes a closure ``loss = closure(image)`` and records, differentiates and
updates in the framework's own way.  A framework's own optimizer is declared
in :attr:`Backend.native_optimizers` and built by :meth:`Backend.native_optimizer`;
the others come from :mod:`multistyle.optim`, written once over this protocol.
"""

from __future__ import annotations

import abc
from typing import Any, Callable, ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..errors import MultistyleError, WeightsError
from ..optim import OPTIMIZERS, Optimizer, offered
from ..vgg import LAYERS, Weights
from .devices import resolve_device
from .spec import spec_of

Tensor = Any  # a native tensor of the backend's framework
Layer = Callable[[Tensor], Tensor]


class Backend(abc.ABC):
    """One deep-learning framework behind a fixed set of operations.

    Instances own their device: tensors they create live there.  Subclasses
    set :attr:`name` and :attr:`framework` and implement every abstract
    method; an incomplete one fails at construction.  Facts known before the
    framework is imported (pip extra, weight formats, memory model, the
    ``explain`` table) live on the backend's :class:`~multistyle.backend.BackendSpec`.
    """

    name: ClassVar[str]
    framework: ClassVar[str]
    #: Optimizers the framework itself computes, by name, with the framework's class that does it;
    #: :meth:`native_optimizer` builds them.  The others in :data:`multistyle.optim.OPTIMIZERS` are the core's.
    native_optimizers: ClassVar[Dict[str, str]] = {}

    def __init__(self, device: str = "auto") -> None:
        #: The canonical device: ``cpu`` or ``gpu:N``.
        self.device = resolve_device(device, self.available_devices(), self.name)
        #: The GPU's number, or ``None`` on the CPU.
        self.gpu: Optional[int] = None if self.device == "cpu" else int(self.device.split(":")[1])
        #: The framework's own device object for :attr:`device`.
        self.native_device = self.place(self.gpu)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.native_optimizers and cls.native_optimizer is Backend.native_optimizer:
            raise TypeError(f"{cls.__name__} declares native optimizers {sorted(cls.native_optimizers)} "
                            f"but does not define native_optimizer()")

    @property
    def weight_suffixes(self) -> Tuple[str, ...]:
        """File extensions of the framework's native checkpoints (from the backend's spec)."""
        try:
            return spec_of(self.name).weight_suffixes
        except MultistyleError:  # a class used without registering it
            return ()

    # -- identity and devices (abstract) ----------------------------------------------------------
    @classmethod
    @abc.abstractmethod
    def framework_version(cls) -> str:
        """The framework's name and version, e.g. ``torch 2.3.0``."""

    @classmethod
    @abc.abstractmethod
    def gpu_count(cls) -> int:
        """How many GPUs the framework can use here (0 where it has no GPU support)."""

    @abc.abstractmethod
    def place(self, gpu: Optional[int]) -> Any:
        """The framework's device object for GPU number ``gpu``, or for the CPU when ``None``."""

    @abc.abstractmethod
    def seed(self, seed: int) -> None:
        """Seed the framework's random number generators."""

    # -- tensors (abstract) --------------------------------------------------------------------
    @abc.abstractmethod
    def asarray(self, array: np.ndarray) -> Tensor:
        """A float32 tensor on this backend's device, copied from ``array``."""

    @abc.abstractmethod
    def to_numpy(self, tensor: Tensor) -> np.ndarray:
        """A NumPy copy of ``tensor`` (waits for asynchronous frameworks)."""

    @abc.abstractmethod
    def pack(self, tensors: Sequence[Tensor]) -> Tensor:
        """One 1-D tensor on the device: ``tensors`` (one-element or 1-D) flattened and joined, detached.

        Loss values are packed so that a run reads them back in one transfer,
        a few epochs at a time, instead of waiting for the device per value.
        """

    @abc.abstractmethod
    def clip_(self, tensor: Tensor, low: Tensor, high: Tensor) -> None:
        """Clip ``tensor`` in place to ``[low, high]`` (tensors that broadcast to it), unrecorded.

        ``tensor`` may be the parameter an optimizer is updating: the clip
        changes it for the optimizer too, as ``x.clamp_()`` does in torch.
        """

    # -- VGG-19's layers (abstract factories; the core walks the table) ---------------------------
    @abc.abstractmethod
    def conv(self, weight: np.ndarray, bias: np.ndarray) -> Layer:
        """A 3x3 convolution, padding 1, stride 1, with these OIHW weights and bias, on the device, of tensors in
        the layers' layout (:meth:`into_layers`)."""

    @abc.abstractmethod
    def relu(self) -> Layer:
        """A ReLU that does not work in place: the core keeps layer outputs for the losses."""

    @abc.abstractmethod
    def pool(self, kind: str, ceil: bool = False) -> Layer:
        """A 2x2 pooling with stride 2: ``max`` (VGG's own) or ``avg``.  An odd last row or column is dropped,
        or with ``ceil`` (``max`` only) pooled alone, as the normalised VGG-19 of AdaIN's files does
        (:mod:`multistyle.nets.adain`)."""

    @abc.abstractmethod
    def freeze(self, layers: List[Layer]) -> List[Layer]:
        """The layers, with no gradient kept or computed for their weights (inference mode)."""

    # -- gradients and weight files (abstract) --------------------------------------------------
    @abc.abstractmethod
    def loss_and_grad(self, fn: Callable[[Tensor], Tensor], x: Tensor) -> Tuple[Tensor, Tensor]:
        """``fn(x)`` and its gradient with respect to the tensor ``x``, both native; ``x`` is left as it was."""

    # -- networks that train (abstract): the style networks of multistyle.nets ------------------------
    @abc.abstractmethod
    def conv2d(self, x: Tensor, weight: Tensor, bias: Tensor, stride: int = 1, reflect: int = 0) -> Tensor:
        """A convolution of ``x`` (in the layers' layout) with native OIHW ``weight`` and ``bias`` tensors that
        gradients may flow to: ``reflect`` pixels of reflection padding on each side first, then no padding."""

    @abc.abstractmethod
    def instance_norm(self, x: Tensor, weight: Tensor, bias: Tensor, eps: float) -> Tensor:
        """Affine instance normalisation of ``x`` (layers' layout): per image and channel, minus the mean,
        over ``sqrt(biased variance + eps)``, times ``weight`` plus ``bias`` (one per channel)."""

    @abc.abstractmethod
    def upsample_nearest(self, x: Tensor, factor: int) -> Tensor:
        """``x`` (layers' layout) with each pixel repeated ``factor`` times down and across."""

    @abc.abstractmethod
    def loss_and_grads(self, fn: Callable[[Dict[str, Tensor]], Tensor],
                       params: Dict[str, Tensor]) -> Tuple[Tensor, Dict[str, Tensor]]:
        """``fn(params)`` and its gradient with respect to every tensor of the mapping ``params``, both native.

        Unlike :meth:`loss_and_grad`, nothing is clipped in place: the parameters are inputs, and
        the optimizer (:class:`multistyle.optim.ParameterAdam`) returns new ones."""

    def compile_gradients(self, terms: Callable[..., Dict[str, Tensor]]
                          ) -> Callable[..., Tuple[Dict[str, Tensor], Dict[str, Tensor]]]:
        """``terms(params, *inputs)`` (a dict of scalar tensors with ``total``) as a function that returns the
        terms, detached, and the gradient of ``total`` with respect to ``params``: one training step's work.

        Eager by default (:meth:`loss_and_grads`); a framework that gains by compiling the whole step
        overrides it (JAX: one XLA program per input shape)."""
        def run(params: Dict[str, Tensor], *inputs: Tensor) -> Tuple[Dict[str, Tensor], Dict[str, Tensor]]:
            kept: Dict[str, Tensor] = {}

            def total(p: Dict[str, Tensor]) -> Tensor:
                kept.update(terms(p, *inputs))
                return kept["total"]

            _, grads = self.loss_and_grads(total, params)
            return {key: self.stop_gradient(value) for key, value in kept.items()}, grads
        return run

    def compile_pass(self, fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
        """A network's pass (``fn(params, x)``, only evaluated), called many times at one picture size: compiled
        where the framework gains by it.  :meth:`compile_forward` by default (JAX: one XLA program per shape);
        TensorFlow traces a graph, which :meth:`compile_forward` does not (its targets are evaluated once)."""
        return self.compile_forward(fn)

    def parameters(self, arrays: Mapping[str, np.ndarray]) -> Dict[str, Tensor]:
        """A mapping of NumPy arrays as native tensors on the device (a network's parameters)."""
        return {name: self.asarray(value) for name, value in arrays.items()}

    @abc.abstractmethod
    def load_zoo_weights(self) -> Dict[str, np.ndarray]:
        """The framework's pretrained ImageNet VGG-19 as a state dict of arrays.

        Downloads into the framework's cache when needed; raises the error of
        :func:`~multistyle.backend.zoo_error` when it cannot.
        """

    @abc.abstractmethod
    def load_native_weights(self, path: str) -> Dict[str, np.ndarray]:
        """Read a native checkpoint (one of :attr:`weight_suffixes`) as arrays."""

    @abc.abstractmethod
    def save_native_weights(self, weights: Weights, path: str) -> None:
        """Write ``features.{i}.weight|bias`` in the framework's native format to the file ``path``."""

    # -- concrete defaults ---------------------------------------------------------------------
    @classmethod
    def available_devices(cls) -> List[str]:
        """Canonical devices the framework can use here: ``cpu``, ``gpu:0``, ..."""
        return ["cpu"] + [f"gpu:{i}" for i in range(cls.gpu_count())]

    def peak_device_memory(self) -> Optional[int]:
        """Peak bytes allocated on this backend's GPU, where the framework reports it; else ``None``."""
        return None

    def set_deterministic(self) -> None:
        """Turn on the framework's deterministic switches (GPU convolutions), for this process."""

    @property
    def asynchronous(self) -> bool:
        """Whether the framework returns before work is done (CUDA streams; MXNet's engine everywhere)."""
        return self.device != "cpu"

    def keep(self, terms: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """Loss terms the core keeps from inside a closure that :meth:`loss_and_grad` differentiates.

        The same dict, returned: a framework that traces the closure (JAX) fills it with concrete
        values once the gradient is computed, so that no traced value escapes.
        """
        return terms

    def compile_objective(self, terms: Callable[..., Dict[str, Tensor]]) -> Callable[..., Dict[str, Tensor]]:
        """The loss terms of one scale (``StyleLoss.terms``), compiled where the framework gains by it.

        Called once per scale by the loop, whose closure then calls the result in place of ``terms``:
        the closure's side effects (clipping, :meth:`keep`) stay outside what is compiled.  Only the
        ``total`` term is differentiated through the result.  The result takes the image and, as
        ``terms`` does, optional Python-number arguments after it (``StyleLoss.terms``'s ``tv_scale``),
        which may change from call to call without a new compilation.  Identity by default (eager
        frameworks).
        """
        return terms

    def compile_forward(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """A function of images that is only evaluated, never differentiated, compiled where the framework
        gains by it: a scale's targets (``StyleLoss``: the content's features and each style's Gram matrices,
        one call).

        ``fn`` takes one or more images and returns (nested) lists of tensors.  The result is called once per
        scale, so compiling pays only where it replaces many small eager compilations (JAX compiles every
        eager operation at each new shape).  Identity by default.
        """
        return fn

    def image_of(self, optimizer: Any) -> Tensor:
        """The image of one of :mod:`multistyle.optim`'s optimizers, as the core reads and clips it: its ``x``.

        A framework whose arrays are immutable (JAX) returns a holder that :meth:`clip_` can change.
        """
        return optimizer.x

    def item(self, tensor: Tensor) -> float:
        """A one-element tensor as a Python float."""
        return float(np.asarray(self.to_numpy(tensor)).reshape(()))

    def shape(self, tensor: Tensor) -> Tuple[int, ...]:
        """The shape as a tuple of Python ints."""
        return tuple(int(d) for d in tensor.shape)

    def square(self, tensor: Tensor) -> Tensor:
        """Element-wise square."""
        return tensor.square()

    def abs(self, tensor: Tensor) -> Tensor:
        """Element-wise absolute value."""
        return tensor.abs()

    def mean(self, tensor: Tensor) -> Tensor:
        """Mean of all elements, as a one-element tensor."""
        return tensor.mean()

    def sum(self, tensor: Tensor) -> Tensor:
        """Sum of all elements, as a one-element tensor."""
        return tensor.sum()

    def max(self, tensor: Tensor) -> Tensor:
        """Largest element, as a one-element tensor."""
        return tensor.max()

    def sqrt(self, tensor: Tensor) -> Tensor:
        """Element-wise square root."""
        return tensor.sqrt()

    def stop_gradient(self, tensor: Tensor) -> Tensor:
        """``tensor``'s values, seen by the gradients as a constant (out of place)."""
        return tensor.detach()

    def argmax_one_hot(self, scores: Tensor) -> Tensor:
        """A constant of ``scores``' shape (a 2-D tensor) that is 1 where a column has its largest value (one of
        them on a tie, as each framework picks it) and 0 elsewhere: the MRF loss's nearest patches.  No gradient
        flows through it.

        This default reads the scores back to the host, which an eager backend can afford; a backend that
        compiles its step (JAX, TensorFlow) must override it with its framework's argmax, which the compiled
        program can hold."""
        values = np.asarray(self.to_numpy(scores))
        one_hot = np.zeros(values.shape, np.float32)
        one_hot[values.argmax(axis=0), np.arange(values.shape[1])] = 1.0
        return self.asarray(one_hot)

    def matmul(self, a: Tensor, b: Tensor) -> Tensor:
        """Matrix product of two 2-D tensors."""
        return a @ b

    def transpose(self, tensor: Tensor) -> Tensor:
        """Transpose of a 2-D tensor."""
        return tensor.T

    def gram_product(self, features: Tensor) -> Tensor:
        """``X Xᵀ`` of a 2-D tensor ``X`` (channels by positions), differentiable: the Gram matrix before scaling.

        Override where the framework has a cheaper exact form of this one
        product (a symmetric rank-k update, or a product that reads ``X`` as
        transposed instead of copying it); ``benchmarks/studies/gram_product.py``
        measures each form.
        """
        return self.matmul(features, self.transpose(features))

    def gram_product_columns(self, features: Tensor) -> Tensor:
        """``Xᵀ X`` of a 2-D tensor ``X`` (positions by channels), differentiable: the Gram matrix before scaling
        of a channels-last feature map (:attr:`features_channels_last`).  Override as :meth:`gram_product`."""
        return self.matmul(self.transpose(features), features)

    def reshape(self, tensor: Tensor, shape: Sequence[int]) -> Tensor:
        """The same elements in a new shape."""
        return tensor.reshape(tuple(shape))

    def vgg19_layers(self, weights: Weights, last: int, pooling: str = "max") -> List[Layer]:
        """Native layers ``0..last`` of VGG-19 ``features``, frozen, on the device, built from the layer table.

        ``weights`` maps convolution indices to OIHW ``(weight, bias)`` arrays.
        """
        layers: List[Layer] = []
        for spec in LAYERS[: last + 1]:
            if spec.kind == "conv":
                layers.append(self.conv(*weights[spec.index]))
            elif spec.kind == "relu":
                layers.append(self.relu())
            else:
                layers.append(self.pool(pooling))
        return self.freeze(layers)

    def into_layers(self, x: Tensor) -> Tensor:
        """An NCHW image in the layout the backend's layers take and give: NCHW, unless the framework's
        convolutions are faster in another (JAX's and TensorFlow's CPU kernels are NHWC)."""
        return x

    def out_of_layers(self, t: Tensor) -> Tensor:
        """A layer's output back in NCHW, the layout the losses read (unless :attr:`features_channels_last`)."""
        return t

    #: Whether the losses read the layers' outputs as the layers give them, channels last (NHWC), without
    #: :meth:`out_of_layers`: a backend whose layers work in NHWC (:meth:`into_layers`) saves a transpose of
    #: every layer the losses read, forward and backward.  A Gram matrix is then ``Xᵀ X`` of the positions
    #: by channels (:meth:`gram_product_columns`), and the content loss compares two maps in one layout.
    features_channels_last = False

    # -- optimisation --------------------------------------------------------------------------
    @classmethod
    def optimizers(cls) -> Dict[str, str]:
        """Every optimizer this backend offers, with whose code computes it (``torch.optim.LBFGS``, ``multistyle.optim``)."""
        return offered(cls.native_optimizers)

    def optimizer(self, name: str, image: np.ndarray, lr: float, lr_decay: float,
                  lr_decay_every: int, line_search: bool = False) -> Optimizer:
        """An optimizer called ``name`` (one of :meth:`optimizers`) over a trainable copy of ``image``.

        The learning rate is multiplied by ``lr_decay`` after every
        ``lr_decay_every`` epochs (the framework's own scheduler where the
        framework's optimizer is used).  ``line_search`` (L-BFGS only) turns
        on the strong-Wolfe line search.
        """
        self.check_optimizer(name, line_search)
        options = {"line_search": line_search} if name == "lbfgs" else {}
        if name in self.native_optimizers:
            return self.native_optimizer(name, image, lr, lr_decay, lr_decay_every, **options)
        return OPTIMIZERS[name](self, image, lr, lr_decay, lr_decay_every, **options)

    def native_optimizer(self, name: str, image: np.ndarray, lr: float, lr_decay: float, lr_decay_every: int,
                         **options: Any) -> Optimizer:
        """The framework's optimizer ``name`` (a key of :attr:`native_optimizers`) with a step decay.

        ``options`` is ``line_search`` for L-BFGS.  Adam is epsilon 1e-8,
        added after the bias correction; RMSprop is torch's formula.
        """
        raise MultistyleError(f"--optimizer: the {self.name} backend has no native {name}")

    def value_and_grad(self, fn: Callable[[Tensor], Tensor], image: np.ndarray) -> Tuple[float, np.ndarray]:
        """``fn(x)`` and its gradient with respect to ``x``, at ``x = image``, on the host."""
        loss, grad = self.loss_and_grad(fn, self.asarray(image))
        return self.item(loss), self.to_numpy(grad)

    def check_optimizer(self, name: str, line_search: bool = False) -> None:
        """Refuse an optimizer this backend does not offer, naming those it does."""
        offered = self.optimizers()
        if name not in offered:
            raise MultistyleError(f"--optimizer: the {self.name} backend offers {', '.join(offered)}, not {name!r}")
        if line_search and name != "lbfgs":
            raise MultistyleError(f"--line-search: only L-BFGS has a line search, not {name}; "
                                  f"use --optimizer lbfgs or drop --line-search")


def zoo_error(backend: Backend, zoo: str, exc: BaseException, path: str, url: str = "") -> WeightsError:
    """The one-line error of a model zoo that could not give its VGG-19: what failed, and where to put the file."""
    where = f"download {url} to {path}" if url else f"put the file at {path}"
    formats = " or ".join((backend.weight_suffixes[0], ".npz")) if backend.weight_suffixes else ".npz"
    return WeightsError(f"--weights imagenet: could not get {zoo}'s VGG-19 weights ({type(exc).__name__}: "
                        f"{str(exc).strip()[:120]}); {where}, or pass --weights FILE ({formats})")
