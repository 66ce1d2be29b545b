"""Parameter initialization with PyTorch's names (``torch.nn.init``).

Each function fills a tensor's values in place and returns the tensor. The values are written
straight into the tensor's array (``tensor.numpy()``), so nothing is recorded for autograd, as
under ``torch.no_grad()`` in PyTorch's versions. Random fills draw from ``generator=`` or the
default generator (``fastgrad.manual_seed``).

>>> import fastgrad
>>> w = fastgrad.empty(3, 5)
>>> _ = xavier_uniform_(w)
>>> bound = (6 / (3 + 5)) ** 0.5
>>> bool((abs(w.numpy()) <= bound).all())
True
"""
from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from fastgrad._random import Generator, draw_normal, draw_uniform, numpy_generator
from fastgrad._tensor import Tensor

_LINEAR_FNS = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
               "conv_transpose3d")


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity (PyTorch's table: 1 for linear/conv/sigmoid,
    5/3 for tanh, sqrt(2) for relu, sqrt(2 / (1 + slope**2)) for leaky_relu, 3/4 for selu).

    >>> calculate_gain('relu') == 2 ** 0.5, calculate_gain('tanh') == 5 / 3
    (True, True)
    """
    if nonlinearity in _LINEAR_FNS or nonlinearity == "sigmoid":
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight: dims 1 and 0 times the receptive field (dims 2+)."""
    shape = tuple(tensor.shape)
    if len(shape) < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than 2 "
                         "dimensions")
    receptive_field = math.prod(shape[2:])
    return shape[1] * receptive_field, shape[0] * receptive_field


def _calculate_correct_fan(tensor: Tensor, mode: str) -> int:
    mode = mode.lower()
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of ['fan_in', 'fan_out']")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _float_array(tensor: Tensor, name: str) -> np.ndarray:
    """The tensor's own array, which a random fill needs to be floating."""
    arr = tensor.numpy()
    if arr.dtype.kind != "f":
        raise NotImplementedError(f"{name}: random real numbers need a floating tensor, not "
                                  f"{arr.dtype}")
    return arr


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0,
             generator: Generator | None = None) -> Tensor:
    """Fill with numbers uniform in [a, b)."""
    arr = _float_array(tensor, "uniform_")
    arr[...] = draw_uniform(generator, arr.shape, arr.dtype, a, b)
    return tensor


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0,
            generator: Generator | None = None) -> Tensor:
    """Fill with normal numbers N(mean, std**2)."""
    arr = _float_array(tensor, "normal_")
    arr[...] = draw_normal(generator, arr.shape, arr.dtype, mean, std)
    return tensor


def _phi(x: float) -> float:
    """The standard normal CDF."""
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _truncated_standard_normal(rng: np.random.Generator, n: int, lo: float,
                               hi: float) -> np.ndarray:
    """n draws of N(0, 1) conditioned on [lo, hi], by rejection: from N(0, 1) when the interval
    holds enough mass, otherwise uniformly over the interval accepted with probability
    exp(-(z**2 - z0**2) / 2) (z0 the interval's point nearest 0), which stays efficient far in
    the tails. Both are exact."""
    out = np.empty(n)
    filled = 0
    use_normal = _phi(hi) - _phi(lo) > 0.05
    z0 = min(max(0.0, lo), hi)
    while filled < n:
        want = max(2 * (n - filled), 64)
        if use_normal:
            z = rng.standard_normal(want)
            z = z[(z >= lo) & (z <= hi)]
        else:
            z = rng.uniform(lo, hi, want)
            z = z[np.log(rng.random(want)) <= -(z * z - z0 * z0) / 2.0]
        take = min(len(z), n - filled)
        out[filled:filled + take] = z[:take]
        filled += take
    return out


def trunc_normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0,
                  b: float = 2.0, generator: Generator | None = None) -> Tensor:
    """Fill with N(mean, std**2) conditioned on [a, b] (absolute bounds, as PyTorch's)."""
    arr = _float_array(tensor, "trunc_normal_")
    if mean < a - 2 * std or mean > b + 2 * std:
        warnings.warn("mean is more than 2 std from [a, b] in nn.init.trunc_normal_. "
                      "The distribution of values may be incorrect.", stacklevel=2)
    if std <= 0:
        arr[...] = min(max(mean, a), b)
        return tensor
    z = _truncated_standard_normal(numpy_generator(generator), arr.size,
                                   (a - mean) / std, (b - mean) / std)
    arr[...] = np.clip(mean + std * z, a, b).reshape(arr.shape)
    return tensor


def constant_(tensor: Tensor, val: Any) -> Tensor:
    """Fill with ``val``."""
    tensor.numpy()[...] = val
    return tensor


def ones_(tensor: Tensor) -> Tensor:
    """Fill with ones."""
    return constant_(tensor, 1)


def zeros_(tensor: Tensor) -> Tensor:
    """Fill with zeros."""
    return constant_(tensor, 0)


def eye_(tensor: Tensor) -> Tensor:
    """Fill a 2-D tensor with the identity matrix (ones on the main diagonal)."""
    arr = tensor.numpy()
    if arr.ndim != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    arr[...] = np.eye(*arr.shape, dtype=arr.dtype)
    return tensor


def dirac_(tensor: Tensor, groups: int = 1) -> Tensor:
    """Fill a 3-, 4- or 5-D convolution weight with the identity convolution (per group)."""
    arr = tensor.numpy()
    if arr.ndim not in (3, 4, 5):
        raise ValueError("Only tensors with 3, 4, or 5 dimensions are supported")
    if arr.shape[0] % groups != 0:
        raise ValueError("dim 0 must be divisible by groups")
    out_per_group = arr.shape[0] // groups
    centre = tuple(s // 2 for s in arr.shape[2:])
    arr[...] = 0
    for g in range(groups):
        for d in range(min(out_per_group, arr.shape[1])):
            arr[(g * out_per_group + d, d) + centre] = 1
    return tensor


def xavier_uniform_(tensor: Tensor, gain: float = 1.0,
                    generator: Generator | None = None) -> Tensor:
    """Glorot uniform: U(-bound, bound), bound = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    bound = math.sqrt(3.0) * std
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor: Tensor, gain: float = 1.0,
                   generator: Generator | None = None) -> Tensor:
    """Glorot normal: N(0, std**2), std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return normal_(tensor, 0.0, std, generator)


def _kaiming_std(tensor: Tensor, a: float, mode: str, nonlinearity: str) -> float:
    fan = _calculate_correct_fan(tensor, mode)
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(tensor: Tensor, a: float = 0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu",
                     generator: Generator | None = None) -> Tensor:
    """He uniform: U(-bound, bound), bound = gain * sqrt(3 / fan) (``a`` is leaky_relu's
    negative slope, ``mode`` picks fan_in or fan_out)."""
    if 0 in tuple(tensor.shape):
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=2)
        return tensor
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity)
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor: Tensor, a: float = 0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu",
                    generator: Generator | None = None) -> Tensor:
    """He normal: N(0, std**2), std = gain / sqrt(fan)."""
    if 0 in tuple(tensor.shape):
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=2)
        return tensor
    return normal_(tensor, 0.0, _kaiming_std(tensor, a, mode, nonlinearity), generator)


def orthogonal_(tensor: Tensor, gain: float = 1, generator: Generator | None = None) -> Tensor:
    """Fill with a (semi-)orthogonal matrix, the tensor viewed as (shape[0], rest), times
    ``gain``: the Q of a QR decomposition of a normal matrix, signs fixed by R's diagonal so
    that Q is uniformly distributed."""
    arr = _float_array(tensor, "orthogonal_")
    if arr.ndim < 2:
        raise ValueError("Only tensors with 2 or more dimensions are supported")
    if arr.size == 0:
        return tensor
    rows = arr.shape[0]
    cols = arr.size // rows
    flat = draw_normal(generator, (rows, cols), np.dtype(np.float64))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    arr[...] = (gain * q).reshape(arr.shape)
    return tensor


__all__ = ["calculate_gain", "uniform_", "normal_", "trunc_normal_", "constant_", "ones_",
           "zeros_", "eye_", "dirac_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
           "kaiming_normal_", "orthogonal_"]
