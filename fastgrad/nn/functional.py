"""Functions on tensors, named as in ``torch.nn.functional`` (same signatures, defaults and
error types).

The plain common cases go through the fused core ops (one tape node each, which keeps the
per-step overhead of small models low): ``linear``, ``cross_entropy`` of (N, C) logits and
class indices with the default options, ``mse_loss`` and ``binary_cross_entropy`` of
equal-shaped inputs with ``reduction='mean'``. Every other case is composed from Tensor
operations, so its gradient comes from theirs; where PyTorch's derivative at a boundary point
differs from the plain composition (relu6 at 6, hardswish at +-3, softplus's threshold) the
composition is arranged with ``where`` so the gradients agree there too.

>>> import fastgrad
>>> import fastgrad.nn.functional as F
>>> logits = fastgrad.tensor([[2.0, 0.0], [0.0, 2.0]], requires_grad=True)
>>> loss = F.cross_entropy(logits, fastgrad.tensor([0, 1]))
>>> round(loss.item(), 6)
0.126928
>>> loss.backward()
>>> [[round(g, 6) for g in row] for row in logits.grad.tolist()]
[[-0.059601, 0.059601], [0.059601, -0.059601]]
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from fastgrad._tensor import Tensor, binary_cross_entropy as _fused_bce, cat
from fastgrad._tensor import cross_entropy as _fused_cross_entropy, linear as _fused_linear
from fastgrad._tensor import mse_loss as _fused_mse, no_grad, where
from fastgrad._random import numpy_generator
from fastgrad.nn._conv_functional import conv1d, conv2d, conv_transpose2d, fold, unfold
from fastgrad.nn._interpolate import interpolate
from fastgrad.nn._pool_functional import (adaptive_avg_pool2d, adaptive_max_pool2d,
                                          avg_pool2d, max_pool2d)

__all__ = [
    # activations
    "relu", "relu6", "leaky_relu", "elu", "gelu", "silu", "mish", "softplus", "hardswish",
    "tanh", "sigmoid", "softmax", "log_softmax",
    # layers
    "linear", "dropout", "embedding", "one_hot", "pad", "normalize", "layer_norm",
    "batch_norm",
    # convolution, pooling, resampling (_conv_functional, _pool_functional, _interpolate)
    "conv1d", "conv2d", "conv_transpose2d", "unfold", "fold", "max_pool2d", "avg_pool2d",
    "adaptive_avg_pool2d", "adaptive_max_pool2d", "dropout2d", "interpolate",
    # losses
    "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "cross_entropy", "nll_loss",
    "binary_cross_entropy", "binary_cross_entropy_with_logits",
]


# -- helpers ---------------------------------------------------------------------------------

def _tensor_arg(x: object, name: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}(): argument 'input' must be a fastgrad.Tensor, not "
                        f"{type(x).__name__}")
    return x


def _as_tensor(x: Any) -> Tensor:
    """A Tensor for a target given as a Tensor or (fastgrad's extension) a numpy array."""
    return x if isinstance(x, Tensor) else Tensor(np.asarray(x))


def _constant(values: Any, like: Tensor) -> Tensor:
    """A Tensor of ``values`` in ``like``'s dtype, outside the graph."""
    return Tensor(np.asarray(values, dtype=np.dtype(like.dtype)))


def _reduction(size_average: bool | None, reduce: bool | None, reduction: str) -> str:
    """The reduction string, from PyTorch's deprecated ``size_average``/``reduce`` if given."""
    if size_average is not None or reduce is not None:
        warnings.warn("size_average and reduce args will be deprecated, please use "
                      "reduction instead.", UserWarning, stacklevel=3)
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        return "none" if not reduce else ("mean" if size_average else "sum")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    return reduction


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _shape_text(shape: Sequence[int]) -> str:
    return "fastgrad.Size([" + ", ".join(str(n) for n in shape) + "])"


def _warn_if_broadcast(input: Tensor, target: Tensor) -> None:
    if tuple(target.shape) != tuple(input.shape):
        warnings.warn(f"Using a target size ({_shape_text(target.shape)}) that is different to "
                      f"the input size ({_shape_text(input.shape)}). This will likely lead to "
                      "incorrect results due to broadcasting. Please ensure they have the "
                      "same size.", UserWarning, stacklevel=3)


# -- activations -----------------------------------------------------------------------------
# ``inplace=True`` is accepted and computed out of place: the result (values and gradients)
# is PyTorch's, but the input tensor is left as it was.

def relu(input: Tensor, inplace: bool = False) -> Tensor:
    """max(x, 0) elementwise.

    >>> import fastgrad
    >>> relu(fastgrad.tensor([-1.0, 0.5])).tolist()
    [0.0, 0.5]
    """
    return _tensor_arg(input, "relu").relu()


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    """min(max(x, 0), 6); the gradient is 0 at 0 and at 6, as PyTorch's (hardtanh's).

    >>> import fastgrad
    >>> relu6(fastgrad.tensor([-1.0, 3.0, 9.0])).tolist()
    [0.0, 3.0, 6.0]
    """
    x = _tensor_arg(input, "relu6")
    return where(x >= 6, _constant(6, x), x.relu())


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """x for x > 0, else negative_slope * x.

    >>> import fastgrad
    >>> leaky_relu(fastgrad.tensor([-2.0, 3.0]), 0.5).tolist()
    [-1.0, 3.0]
    """
    x = _tensor_arg(input, "leaky_relu")
    return where(x > 0, x, x * negative_slope)


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x for x > 0, else alpha * (exp(x) - 1).

    >>> import fastgrad
    >>> elu(fastgrad.tensor([0.0, 2.0])).tolist()
    [0.0, 2.0]
    """
    x = _tensor_arg(input, "elu")
    # exp of the clamped value: the unused branch stays finite, so no inf * 0 in backward
    return where(x > 0, x, x.clamp(max=0).expm1() * alpha)


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """x * Phi(x) (Phi the standard normal CDF); ``approximate='tanh'`` uses PyTorch's tanh
    formula.

    >>> import fastgrad
    >>> round(gelu(fastgrad.tensor([1.0])).item(), 6)
    0.841345
    """
    x = _tensor_arg(input, "gelu")
    if approximate == "none":
        return x * 0.5 * (1 + (x * (1 / math.sqrt(2))).erf())
    if approximate == "tanh":
        inner = (x + x * x * x * 0.044715) * math.sqrt(2 / math.pi)
        return x * 0.5 * (1 + inner.tanh())
    raise RuntimeError("approximate argument must be either none or tanh.")


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    """x * sigmoid(x).

    >>> import fastgrad
    >>> silu(fastgrad.tensor([0.0])).item()
    0.0
    """
    x = _tensor_arg(input, "silu")
    return x * x.sigmoid()


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta * x)) / beta, and x itself where beta * x > threshold.

    >>> import fastgrad
    >>> round(softplus(fastgrad.tensor([0.0])).item(), 6)
    0.693147
    """
    x = _tensor_arg(input, "softplus")
    bx = x * beta
    # clamped before exp so that the branch not taken stays finite (no inf * 0 in backward)
    soft = bx.clamp(max=threshold).exp().log1p() / beta
    return where(bx > threshold, x, soft)


def mish(input: Tensor, inplace: bool = False) -> Tensor:
    """x * tanh(softplus(x)).

    >>> import fastgrad
    >>> mish(fastgrad.tensor([0.0])).item()
    0.0
    """
    x = _tensor_arg(input, "mish")
    return x * softplus(x).tanh()


def hardswish(input: Tensor, inplace: bool = False) -> Tensor:
    """0 for x <= -3, x for x >= 3, x * (x + 3) / 6 between; the gradient at -3 is 0 and at 3
    is 1, as PyTorch's.

    >>> import fastgrad
    >>> hardswish(fastgrad.tensor([-4.0, 0.0, 4.0])).tolist()
    [0.0, 0.0, 4.0]
    """
    x = _tensor_arg(input, "hardswish")
    middle = x * (x + 3) / 6
    return where(x <= -3, _constant(0, x), where(x < 3, middle, x))


def tanh(input: Tensor) -> Tensor:
    """Hyperbolic tangent elementwise.

    >>> import fastgrad
    >>> tanh(fastgrad.tensor([0.0])).item()
    0.0
    """
    return _tensor_arg(input, "tanh").tanh()


def sigmoid(input: Tensor) -> Tensor:
    """1 / (1 + exp(-x)) elementwise.

    >>> import fastgrad
    >>> sigmoid(fastgrad.tensor([0.0])).item()
    0.5
    """
    return _tensor_arg(input, "sigmoid").sigmoid()


def _softmax_dim(name: str, ndim: int) -> int:
    """PyTorch's implicit choice (deprecated, with a warning) when no dim is given."""
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call "
                  "to include dim=X as an argument.", UserWarning, stacklevel=3)
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3,
            dtype: Any = None, *, axis: int | None = None) -> Tensor:
    """exp(x) normalised to sum to 1 along ``dim`` (computed from x - max: no overflow);
    numpy's ``axis=`` is accepted for ``dim``.

    >>> import fastgrad
    >>> softmax(fastgrad.tensor([0.0, 0.0, 1000.0]), dim=0).tolist()
    [0.0, 0.0, 1.0]
    """
    x = _tensor_arg(input, "softmax")
    if dim is None:
        dim = axis if axis is not None else _softmax_dim("softmax", x.ndim)
    if dtype is not None:
        x = x.to(dtype)
    return x.softmax(dim)


def log_softmax(input: Tensor, dim: int | None = None, _stacklevel: int = 3,
                dtype: Any = None, *, axis: int | None = None) -> Tensor:
    """log(softmax(x)) along ``dim``, computed stably (``axis=`` accepted for ``dim``).

    >>> import fastgrad
    >>> [round(v, 6) for v in log_softmax(fastgrad.tensor([0.0, 0.0]), dim=0).tolist()]
    [-0.693147, -0.693147]
    """
    x = _tensor_arg(input, "log_softmax")
    if dim is None:
        dim = axis if axis is not None else _softmax_dim("log_softmax", x.ndim)
    if dtype is not None:
        x = x.to(dtype)
    return x.log_softmax(dim)


# -- layers ----------------------------------------------------------------------------------

def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``input @ weight.T + bias`` as one tape node.

    >>> import fastgrad
    >>> linear(fastgrad.tensor([[1.0, 1.0]]), fastgrad.tensor([[1.0, 2.0]])).tolist()
    [[3.0]]
    """
    return _fused_linear(input, weight, bias)


def dropout(input: Tensor, p: float = 0.5, training: bool = True,
            inplace: bool = False) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by 1 / (1 - p), when
    ``training``; otherwise (or with p = 0) the input itself. The mask is drawn from the
    default generator (``fastgrad.manual_seed``).

    >>> import fastgrad
    >>> x = fastgrad.tensor([1.0, 1.0, 1.0, 1.0])
    >>> dropout(x, 0.5, training=False) is x
    True
    >>> sorted(set(dropout(x, 0.5).tolist()) - {0.0, 2.0})
    []
    """
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    x = _tensor_arg(input, "dropout")
    if not training or p == 0.0 or x.numel() == 0:
        return x
    if p == 1.0:
        return x * 0
    dt = np.dtype(x.dtype)
    keep = numpy_generator().random(tuple(x.shape)) >= p   # kept with probability 1 - p
    noise = keep.astype(dt)
    noise /= dt.type(1 - p)   # PyTorch scales the mask in the input's dtype, then multiplies
    return x * Tensor(noise)


def dropout2d(input: Tensor, p: float = 0.5, training: bool = True,
              inplace: bool = False) -> Tensor:
    """Zero whole channels: each (sample, channel) plane of (N, C, H, W) input is zeroed with
    probability ``p``, the others scaled by 1 / (1 - p), when ``training``. As PyTorch does
    today, 3-D input is read as (N, C, L) (channel-wise 1-D dropout, with its warning), and
    other ranks warn and drop along dimensions 0 and 1.

    >>> import fastgrad
    >>> x = fastgrad.ones(2, 3, 4, 4)
    >>> dropout2d(x, training=False) is x
    True
    >>> y = dropout2d(x, 0.5).numpy()
    >>> bool(((y == 0) | (y == 2)).all() and (y == y[:, :, :1, :1]).all())
    True
    """
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    x = _tensor_arg(input, "dropout2d")
    if x.ndim not in (3, 4):
        warnings.warn(f"dropout2d: Received a {x.ndim}-D input to dropout2d, which is "
                      "deprecated and will result in an error in a future release. To retain "
                      "the behavior and silence this warning, please use dropout instead. Note "
                      "that dropout2d exists to provide channel-wise dropout on inputs with 2 "
                      "spatial dimensions, a channel dimension, and an optional batch "
                      "dimension (i.e. 3D or 4D inputs).", UserWarning, stacklevel=2)
    if x.ndim == 3:
        warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that "
                      "channel-wise 1D dropout behavior is desired - input is interpreted as "
                      "shape (N, C, L), where C is the channel dim. This behavior will change "
                      "in a future release to interpret the input as one without a batch "
                      "dimension, i.e. shape (C, H, W). To maintain the 1D channel-wise dropout "
                      "behavior, please switch to using dropout1d instead.", UserWarning,
                      stacklevel=2)
    if x.ndim < 2:
        raise RuntimeError("Feature dropout requires at least 2 dimensions in the input")
    if not training or p == 0.0 or x.numel() == 0:
        return x
    if p == 1.0:
        return x * 0
    dt = np.dtype(x.dtype)
    # one draw per (sample, channel), broadcast over the remaining dimensions
    keep = numpy_generator().random(tuple(x.shape[:2])) >= p
    noise = keep.astype(dt).reshape(tuple(x.shape[:2]) + (1,) * (x.ndim - 2))
    noise /= dt.type(1 - p)
    return x * Tensor(noise)


def embedding(input: Tensor, weight: Tensor, padding_idx: int | None = None,
              max_norm: float | None = None, norm_type: float = 2.0,
              scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
    """Rows of ``weight`` picked by the integer ``input``; the ``padding_idx`` row gets no
    gradient.

    >>> import fastgrad
    >>> w = fastgrad.tensor([[0.0, 0.0], [1.0, 2.0]])
    >>> embedding(fastgrad.tensor([[1, 0]]), w).tolist()
    [[[1.0, 2.0], [0.0, 0.0]]]
    """
    if max_norm is not None or scale_grad_by_freq or sparse:
        raise NotImplementedError("embedding: max_norm, scale_grad_by_freq and sparse are not "
                                  "supported")
    index = _as_tensor(input)
    if np.dtype(index.dtype).kind not in "iu":
        raise RuntimeError("Expected tensor for argument #1 'indices' to have one of the "
                           "following scalar types: Long, Int; but got "
                           f"{index.dtype} instead")
    n = weight.shape[0]
    if padding_idx is not None:
        if not -n <= padding_idx < n:
            raise AssertionError("Padding_idx must be within num_embeddings")
        padding_idx %= n
    raw = index.numpy()
    if raw.size and (raw.min() < 0 or raw.max() >= n):
        raise IndexError("index out of range in self")
    rows = weight[index]
    if padding_idx is None:
        return rows
    # same values, but the rows read at padding_idx send nothing back to the weight
    keep = Tensor(np.expand_dims(raw != padding_idx, -1))
    return where(keep, rows, rows.detach())


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """An int64 tensor with a trailing dimension of ``num_classes`` (max + 1 when -1) holding 1
    at each value's position.

    >>> import fastgrad
    >>> one_hot(fastgrad.tensor([0, 2])).tolist()
    [[1, 0, 0], [0, 0, 1]]
    """
    index = _as_tensor(tensor)
    raw = index.numpy()
    if raw.dtype != np.int64:
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    if num_classes == -1:
        if raw.size == 0:
            raise RuntimeError("Can not infer total number of classes from empty tensor.")
        num_classes = int(raw.max()) + 1
    if raw.size:
        if raw.min() < 0:
            raise RuntimeError("Class values must be non-negative.")
        if raw.max() >= num_classes:
            raise RuntimeError("Class values must be smaller than num_classes.")
    return Tensor((raw[..., None] == np.arange(num_classes)).astype(np.int64))


def pad(input: Tensor, pad: Sequence[int], mode: str = "constant",
        value: float | None = None) -> Tensor:
    """Pad (or, with negative sizes, crop) the last dimensions: ``pad`` is (left, right) of
    the last dimension, then of the one before, ... (PyTorch's order). Modes: 'constant'
    (``value``, default 0), 'reflect', 'replicate', 'circular'.

    >>> import fastgrad
    >>> pad(fastgrad.tensor([[1.0, 2.0]]), (1, 2)).tolist()
    [[0.0, 1.0, 2.0, 0.0, 0.0]]
    >>> pad(fastgrad.tensor([[1.0, 2.0, 3.0]]), (2, 1), mode="reflect").tolist()
    [[3.0, 2.0, 1.0, 2.0, 3.0, 2.0]]
    """
    x = _tensor_arg(input, "pad")
    pad = [int(p) for p in pad]
    if len(pad) % 2:
        raise RuntimeError("Padding length must be divisible by 2")
    if len(pad) // 2 > x.ndim:
        raise RuntimeError("Padding length should be less than or equal to two times the "
                           f"input dimension but got padding length {len(pad)} and input of "
                           f"dimension {x.ndim}")
    if mode not in ("constant", "reflect", "replicate", "circular"):
        raise NotImplementedError(f"Unrecognised padding mode {mode}")
    if mode != "constant" and value:
        raise RuntimeError(f"Padding mode \"{mode}\" doesn't take in value argument")
    for i in range(len(pad) // 2):
        dim = x.ndim - 1 - i
        left, right = pad[2 * i], pad[2 * i + 1]
        x = _pad_constant(x, dim, left, right, value or 0) if mode == "constant" else \
            _pad_by_index(x, dim, left, right, mode)
    return x


def _crop(x: Tensor, dim: int, start: int, stop: int) -> Tensor:
    index: list[Any] = [slice(None)] * x.ndim
    index[dim] = slice(start, stop)
    return x[tuple(index)]


def _pad_constant(x: Tensor, dim: int, left: int, right: int, value: float) -> Tensor:
    """Negative sizes crop; positive ones add blocks of ``value``."""
    n = x.shape[dim]
    if left < 0 or right < 0:
        x = _crop(x, dim, max(-left, 0), n - max(-right, 0))
    parts = []
    for size in (left, None, right):
        if size is None:
            parts.append(x)
        elif size > 0:
            shape = list(x.shape)
            shape[dim] = size
            parts.append(_constant(np.full(shape, value), x))
    return cat(parts, dim) if len(parts) > 1 else x


def _pad_by_index(x: Tensor, dim: int, left: int, right: int, mode: str) -> Tensor:
    """Non-constant modes as one index_select along ``dim`` (its backward adds up the
    gradients of repeated positions)."""
    n = x.shape[dim]
    positions = np.arange(-left, n + right)
    if mode == "replicate":
        positions = np.clip(positions, 0, n - 1)
    elif mode == "circular":
        if left > n or right > n:
            raise RuntimeError("Padding value causes wrapping around more than once.")
        positions = positions % n
    else:  # reflect: mirror around the first and last elements
        if left >= n or right >= n:
            raise RuntimeError(f"Argument #4: Padding size should be less than the "
                               f"corresponding input dimension, but got: padding ({left}, "
                               f"{right}) at dimension {dim} of input {list(x.shape)}")
        period = 2 * (n - 1) if n > 1 else 1
        positions = np.abs(positions) % period
        positions = np.where(positions >= n, period - positions, positions)
    return x.index_select(dim, Tensor(positions.astype(np.int64)))


def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12,
              out: Any = None) -> Tensor:
    """x / max(||x||_p, eps) along ``dim``.

    >>> import fastgrad
    >>> normalize(fastgrad.tensor([[3.0, 4.0]])).tolist()
    [[0.6000000238418579, 0.800000011920929]]
    """
    if out is not None:
        raise NotImplementedError("normalize: out= is not supported")
    x = _tensor_arg(input, "normalize")
    return x / x.norm(p, dim, keepdim=True).clamp(min=eps)


def layer_norm(input: Tensor, normalized_shape: Sequence[int], weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """(x - mean) / sqrt(var + eps) over the last ``len(normalized_shape)`` dimensions (biased
    variance), then ``* weight + bias``.

    >>> import fastgrad
    >>> layer_norm(fastgrad.tensor([[1.0, 3.0]]), (2,)).numpy().round(4).tolist()
    [[-1.0, 1.0]]
    """
    x = _tensor_arg(input, "layer_norm")
    shape = tuple(normalized_shape) if isinstance(normalized_shape, Sequence) else \
        (int(normalized_shape),)
    k = len(shape)
    if k == 0 or x.ndim < k or tuple(x.shape[x.ndim - k:]) != shape:
        raise RuntimeError(f"Given normalized_shape={list(shape)}, expected input with shape "
                           f"[*, {', '.join(str(n) for n in shape)}], but got input of "
                           f"size{list(x.shape)}")
    dims = tuple(range(x.ndim - k, x.ndim))
    centred = x - x.mean(dim=dims, keepdim=True)
    var = (centred * centred).mean(dim=dims, keepdim=True)
    y = centred * (var + eps).rsqrt()
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None,
               training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalise each channel (dimension 1) over the batch and any further dimensions. With
    ``training`` (or without running statistics) the batch's mean and biased variance are
    used, and the running statistics, if given, move towards the batch's mean and unbiased
    variance by ``momentum`` (in place); otherwise the running statistics are used.

    >>> import fastgrad
    >>> x = fastgrad.tensor([[1.0], [3.0]])
    >>> mean, var = fastgrad.tensor([0.0]), fastgrad.tensor([1.0])
    >>> batch_norm(x, mean, var, training=True).numpy().round(4).tolist()
    [[-1.0], [1.0]]
    >>> mean.tolist(), var.tolist()
    ([0.20000000298023224], [1.100000023841858])
    """
    x = _tensor_arg(input, "batch_norm")
    if x.ndim < 2:
        raise ValueError(f"batch_norm expects an input of at least 2 dimensions (N, C, ...), "
                         f"got {x.ndim}")
    channels = x.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        if t is not None and t.numel() != channels:
            raise RuntimeError(f"{name} should contain {channels} elements not {t.numel()}")
    dims = (0,) + tuple(range(2, x.ndim))
    per_channel = x.numel() // channels if channels else 0
    shape = (1, channels) + (1,) * (x.ndim - 2)
    if training or running_mean is None or running_var is None:
        if training and per_channel <= 1:
            raise ValueError("Expected more than 1 value per channel when training, got input "
                             f"size {_shape_text(x.shape)}")
        mean = x.mean(dim=dims, keepdim=True)
        centred = x - mean
        var = (centred * centred).mean(dim=dims, keepdim=True)
        if training:
            _update_running(running_mean, running_var, mean, var, per_channel, momentum)
    else:
        mean = running_mean.reshape(shape)
        centred = x - mean
        var = running_var.reshape(shape)
    y = centred * (var + eps).rsqrt()
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return y


def _update_running(running_mean: Tensor | None, running_var: Tensor | None, mean: Tensor,
                    var: Tensor, n: int, momentum: float) -> None:
    """running = (1 - momentum) * running + momentum * batch statistic (unbiased variance),
    in place and outside the graph, as PyTorch updates them."""
    with no_grad():
        if running_mean is not None:
            running_mean.mul_(1 - momentum).add_(mean.detach().reshape(-1) * momentum)
        if running_var is not None:
            unbiased = var.detach().reshape(-1) * (n / (n - 1))
            running_var.mul_(1 - momentum).add_(unbiased * momentum)


# -- losses ----------------------------------------------------------------------------------

def mse_loss(input: Tensor, target: Tensor, size_average: bool | None = None,
             reduce: bool | None = None, reduction: str = "mean",
             weight: Tensor | None = None) -> Tensor:
    """(input - target)**2, reduced.

    >>> import fastgrad
    >>> mse_loss(fastgrad.tensor([1.0, 2.0]), fastgrad.tensor([1.0, 4.0])).item()
    2.0
    """
    reduction = _reduction(size_average, reduce, reduction)
    input = _tensor_arg(input, "mse_loss")
    target = _as_tensor(target)
    if reduction == "mean" and weight is None and tuple(input.shape) == tuple(target.shape):
        return _fused_mse(input, target)
    _warn_if_broadcast(input, target)
    diff = input - target
    loss = diff * diff
    return _reduce(loss if weight is None else loss * weight, reduction)


def l1_loss(input: Tensor, target: Tensor, size_average: bool | None = None,
            reduce: bool | None = None, reduction: str = "mean") -> Tensor:
    """|input - target|, reduced.

    >>> import fastgrad
    >>> l1_loss(fastgrad.tensor([1.0, 2.0]), fastgrad.tensor([2.0, 4.0])).item()
    1.5
    """
    reduction = _reduction(size_average, reduce, reduction)
    input = _tensor_arg(input, "l1_loss")
    target = _as_tensor(target)
    _warn_if_broadcast(input, target)
    return _reduce((input - target).abs(), reduction)


def smooth_l1_loss(input: Tensor, target: Tensor, size_average: bool | None = None,
                   reduce: bool | None = None, reduction: str = "mean",
                   beta: float = 1.0) -> Tensor:
    """0.5 d**2 / beta where |d| < beta, else |d| - 0.5 beta (d = input - target); beta = 0 is
    the L1 loss.

    >>> import fastgrad
    >>> smooth_l1_loss(fastgrad.tensor([0.0, 0.0]), fastgrad.tensor([0.5, 3.0])).item()
    1.3125
    """
    reduction = _reduction(size_average, reduce, reduction)
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    input = _tensor_arg(input, "smooth_l1_loss")
    target = _as_tensor(target)
    _warn_if_broadcast(input, target)
    d = input - target
    if beta == 0:
        return _reduce(d.abs(), reduction)
    a = d.abs()
    return _reduce(where(a < beta, d * d * (0.5 / beta), a - 0.5 * beta), reduction)


def huber_loss(input: Tensor, target: Tensor, reduction: str = "mean", delta: float = 1.0,
               weight: Tensor | None = None) -> Tensor:
    """0.5 d**2 where |d| < delta, else delta * (|d| - 0.5 delta) (d = input - target).

    >>> import fastgrad
    >>> huber_loss(fastgrad.tensor([0.0, 0.0]), fastgrad.tensor([0.5, 3.0])).item()
    1.3125
    """
    reduction = _reduction(None, None, reduction)
    if delta <= 0:
        raise RuntimeError("huber_loss does not support non-positive values for delta.")
    input = _tensor_arg(input, "huber_loss")
    target = _as_tensor(target)
    _warn_if_broadcast(input, target)
    d = input - target
    a = d.abs()
    loss = where(a < delta, d * d * 0.5, (a - 0.5 * delta) * delta)
    return _reduce(loss if weight is None else loss * weight, reduction)


def _class_targets(input: Tensor, target: Tensor, name: str) -> np.ndarray:
    """Check integer class targets against input's shape (PyTorch's errors); their array."""
    raw = target.numpy()
    # PyTorch takes int64 and uint8 only; any integer type has the same meaning, so fastgrad
    # takes them all (floating targets are class probabilities, bool ones are refused)
    if raw.dtype.kind not in "iu":
        raise RuntimeError(f"expected target dtype to be Long or Byte, but got {target.dtype}")
    if input.ndim == 1:
        if raw.ndim != 0:
            raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
        return raw
    if raw.ndim != input.ndim - 1:
        raise RuntimeError("0D or 1D target tensor expected, multi-target not supported"
                           if input.ndim == 2 else
                           f"Expected target size {[input.shape[0]] + list(input.shape[2:])}, "
                           f"got {list(raw.shape)}")
    if raw.shape[0] != input.shape[0]:
        raise ValueError(f"Expected input batch_size ({input.shape[0]}) to match target "
                         f"batch_size ({raw.shape[0]}).")
    if raw.shape[1:] != tuple(input.shape[2:]):
        raise RuntimeError(f"Expected target size {[input.shape[0]] + list(input.shape[2:])}, "
                           f"got {list(raw.shape)}")
    return raw


def _class_weights(weight: Tensor | None, classes: int, dtype: np.dtype) -> np.ndarray:
    if weight is None:
        return np.ones(classes, dtype=dtype)
    if weight.numel() != classes:
        raise RuntimeError(f"weight tensor should be defined either for all {classes} classes "
                           f"or no classes but got weight tensor of shape: "
                           f"{list(weight.shape)}")
    return weight.numpy().astype(dtype).reshape(-1)


def _nll_parts(logp: Tensor, raw: np.ndarray, weight: Tensor | None,
               ignore_index: int) -> tuple[Tensor, np.ndarray, np.ndarray]:
    """(per-element weighted -log p[target] (N, d...), the per-element weights (0 where
    ignored), the 'not ignored' mask) for logp (N, C, d...) and targets (N, d...)."""
    classes = logp.shape[1]
    valid = raw != ignore_index
    wrong = valid & ((raw < 0) | (raw >= classes))
    if wrong.any():
        raise IndexError(f"Target {raw[wrong].flat[0]} is out of bounds.")
    safe = np.where(valid, raw, 0).astype(np.int64)  # an index everywhere; ignored weigh 0
    dt = np.dtype(logp.dtype)
    w = _class_weights(weight, classes, dt)[safe] * valid
    picked = logp.gather(1, Tensor(np.expand_dims(safe, 1))).squeeze(1)
    return -picked * Tensor(w.astype(dt)), w, valid


def _weighted_mean(total: Tensor, weights: np.ndarray) -> Tensor:
    """total / the sum of the weights of the targets not ignored, as PyTorch divides. When
    every target is ignored the loss is nan and the gradient 0 (PyTorch's), not 0 / 0."""
    weight_sum = weights.sum()
    if weight_sum == 0:
        return total + _constant(np.nan, total)
    return total / _constant(weight_sum, total)


def nll_loss(input: Tensor, target: Tensor, weight: Tensor | None = None,
             size_average: bool | None = None, ignore_index: int = -100,
             reduce: bool | None = None, reduction: str = "mean") -> Tensor:
    """The negative log-likelihood of class indices under log-probabilities ``input`` of
    shape (N, C), (C,) or (N, C, d1, ...).

    >>> import fastgrad
    >>> logp = fastgrad.tensor([[-0.5, -1.0], [-2.0, -0.25]])
    >>> nll_loss(logp, fastgrad.tensor([0, 1])).item()
    0.375
    """
    reduction = _reduction(size_average, reduce, reduction)
    x = _tensor_arg(input, "nll_loss")
    target = _as_tensor(target)
    raw = _class_targets(x, target, "nll_loss")
    if x.ndim == 1:
        x, raw = x.unsqueeze(0), raw.reshape(1)
    losses, w, _ = _nll_parts(x, raw, weight, ignore_index)
    if reduction == "none":
        return losses if input.ndim > 1 else losses.squeeze(0)
    if reduction == "sum":
        return losses.sum()
    return _weighted_mean(losses.sum(), w)


def cross_entropy(input: Tensor, target: Tensor | np.ndarray, weight: Tensor | None = None,
                  size_average: bool | None = None, ignore_index: int = -100,
                  reduce: bool | None = None, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy between softmax(input) along dimension 1 and the targets: class indices
    (shape (N,), (), or (N, d1, ...) for input (N, C), (C,), (N, C, d1, ...)) or class
    probabilities (the input's shape). Options as PyTorch's: per-class ``weight``,
    ``ignore_index``, ``reduction``, ``label_smoothing``.

    >>> import fastgrad
    >>> logits = fastgrad.tensor([[2.0, 0.0], [0.0, 2.0]])
    >>> round(cross_entropy(logits, fastgrad.tensor([0, -100])).item(), 6)
    0.126928
    >>> round(cross_entropy(logits, fastgrad.tensor([0, 1]), label_smoothing=0.2).item(), 6)
    0.326928
    """
    reduction = _reduction(size_average, reduce, reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: "
                           f"{label_smoothing}")
    x = _tensor_arg(input, "cross_entropy")
    target = _as_tensor(target)
    if np.dtype(target.dtype).kind == "f":
        return _cross_entropy_probabilities(x, target, weight, ignore_index, reduction,
                                            label_smoothing)
    raw = _class_targets(x, target, "cross_entropy")
    if x.ndim == 1:
        x, raw = x.unsqueeze(0), raw.reshape(1)
    classes = x.shape[1]
    if (x.ndim == 2 and reduction == "mean" and weight is None and label_smoothing == 0.0
            and raw.size and raw.min() >= 0 and raw.max() < classes
            and not (0 <= ignore_index < classes and (raw == ignore_index).any())):
        return _fused_cross_entropy(x, target.reshape(-1))  # the common case: one tape node
    logp = x.log_softmax(1)
    losses, w, valid = _nll_parts(logp, raw, weight, ignore_index)
    if label_smoothing == 0.0:
        if reduction == "none":
            return losses if input.ndim > 1 else losses.squeeze(0)
        return losses.sum() if reduction == "sum" else _weighted_mean(losses.sum(), w)
    # PyTorch's smoothing: (1 - eps) * nll + eps / C * (-sum over classes of w_c log p_c)
    shape = (1, classes) + (1,) * (x.ndim - 2)
    class_w = _class_weights(weight, classes, np.dtype(x.dtype)).reshape(shape)
    smooth = -(logp * _constant(class_w, x)).sum(1) * _constant(valid, x)
    eps = label_smoothing
    if reduction == "none":
        out = losses * (1 - eps) + smooth * (eps / classes)
        return out if input.ndim > 1 else out.squeeze(0)
    if reduction == "sum":
        return losses.sum() * (1 - eps) + smooth.sum() * (eps / classes)
    return (_weighted_mean(losses.sum(), w) * (1 - eps)
            + _weighted_mean(smooth.sum(), w) * (eps / classes))


def _cross_entropy_probabilities(x: Tensor, target: Tensor, weight: Tensor | None,
                                 ignore_index: int, reduction: str,
                                 label_smoothing: float) -> Tensor:
    """Cross-entropy against class probabilities (target shaped as the input)."""
    if ignore_index != -100:
        raise RuntimeError("ignore_index is not supported for floating point target")
    if tuple(target.shape) != tuple(x.shape):
        raise RuntimeError(f"Expected target of the input's shape {list(x.shape)} for class "
                           f"probabilities, got {list(target.shape)}")
    dim = 0 if x.ndim == 1 else 1
    classes = x.shape[dim]
    if label_smoothing > 0:
        target = target * (1 - label_smoothing) + label_smoothing / classes
    per_class = x.log_softmax(dim) * target
    if weight is not None:
        shape = (classes,) + (1,) * (x.ndim - 1 - dim)
        per_class = per_class * _constant(_class_weights(weight, classes, np.dtype(x.dtype))
                                          .reshape(shape), x)
    losses = -per_class.sum(dim)
    if reduction == "mean":  # over the batch elements (input.numel() / C), whatever the weights
        return losses.sum() / (x.numel() // classes if classes else 0)
    return _reduce(losses, reduction)


def _safe_log(p: Tensor) -> Tensor:
    """max(log(p), -100) as PyTorch's binary_cross_entropy clamps it; at p = 0 the value is
    -100 and the gradient 0 (log of a placeholder 1, so backward never computes 0 / 0)."""
    positive = p > 0
    return where(positive, where(positive, p, _constant(1, p)).log(),
                 _constant(-100, p)).clamp(min=-100)


def binary_cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None,
                         size_average: bool | None = None, reduce: bool | None = None,
                         reduction: str = "mean") -> Tensor:
    """-(t log p + (1 - t) log(1 - p)) with the logs clamped at -100, as PyTorch's; ``input``
    must hold probabilities in [0, 1] and have the target's shape.

    >>> import fastgrad
    >>> p, t = fastgrad.tensor([0.5, 1.0]), fastgrad.tensor([1.0, 0.0])
    >>> [round(v, 6) for v in binary_cross_entropy(p, t, reduction="none").tolist()]
    [0.693147, 100.0]
    """
    reduction = _reduction(size_average, reduce, reduction)
    x = _tensor_arg(input, "binary_cross_entropy")
    target = _as_tensor(target)
    if tuple(target.shape) != tuple(x.shape):
        raise ValueError(f"Using a target size ({_shape_text(target.shape)}) that is different "
                         f"to the input size ({_shape_text(x.shape)}) is deprecated. Please "
                         "ensure they have the same size.")
    values = x.numpy()
    if ((values < 0) | (values > 1)).any():
        raise RuntimeError("all elements of input should be between 0 and 1")
    if weight is None and reduction == "mean":
        return _fused_bce(x, target)
    loss = -(target * _safe_log(x) + (1 - target) * _safe_log(1 - x))
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor,
                                     weight: Tensor | None = None,
                                     size_average: bool | None = None,
                                     reduce: bool | None = None, reduction: str = "mean",
                                     pos_weight: Tensor | None = None) -> Tensor:
    """binary_cross_entropy(sigmoid(input), target) computed stably from the logits;
    ``pos_weight`` weighs the positive term (broadcast along the last dimension).

    >>> import fastgrad
    >>> x, t = fastgrad.tensor([0.0, 100.0]), fastgrad.tensor([1.0, 0.0])
    >>> [round(v, 6) for v in binary_cross_entropy_with_logits(x, t, reduction="none").tolist()]
    [0.693147, 100.0]
    """
    reduction = _reduction(size_average, reduce, reduction)
    x = _tensor_arg(input, "binary_cross_entropy_with_logits")
    target = _as_tensor(target)
    if tuple(target.shape) != tuple(x.shape):
        raise ValueError(f"Target size ({_shape_text(target.shape)}) must be the same as "
                         f"input size ({_shape_text(x.shape)})")
    # log(1 + exp(-x)) = m + log(exp(-m) + exp(-x - m)) with m = max(-x, 0): no overflow, and
    # the derivative of m cancels, so the gradient is sigmoid(x) - t even at x = 0
    m = (-x).clamp(min=0)
    log1p_exp = m + ((-m).exp() + (-x - m).exp()).log()
    if pos_weight is None:
        loss = (1 - target) * x + log1p_exp
    else:
        loss = (1 - target) * x + ((pos_weight - 1) * target + 1) * log1p_exp
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)
