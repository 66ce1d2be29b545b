"""``torch.nn.functional.interpolate`` for the modes 'nearest' (3-D and 4-D input),
'linear' (3-D), 'bilinear' (4-D) and 'area' (4-D), built from recorded Tensor ops
(index_select, mul, add), so the gradient comes from theirs.

The source positions follow PyTorch's rules: nearest reads floor(dst * scale) (computed in
float32, as PyTorch does), linear modes read src = (dst + 0.5) * scale - 0.5 clamped at 0, or
dst * (in - 1) / (out - 1) with ``align_corners``; scale is 1 / scale_factor when a scale
factor is given (and not recomputed), else in / out.

>>> import fastgrad
>>> x = fastgrad.tensor([[[1.0, 2.0]]])
>>> interpolate(x, scale_factor=2).tolist()
[[[1.0, 1.0, 2.0, 2.0]]]
>>> interpolate(x, size=3, mode="linear", align_corners=True).tolist()
[[[1.0, 1.5, 2.0]]]
"""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np

from fastgrad._tensor import Tensor
from fastgrad.nn._pool_functional import adaptive_avg_pool2d
from fastgrad.nn._spatial_args import tensor_arg

__all__ = ["interpolate"]

_LINEAR_DIMS = {"linear": 3, "bilinear": 4, "trilinear": 5}


def _sizes_and_scales(x: Tensor, size: Any, scale_factor: Any,
                      recompute_scale_factor: bool | None
                      ) -> tuple[list[int], list[float | None]]:
    """(output sizes, the scale factors the kernels use, None meaning in / out), as
    PyTorch's interpolate derives them."""
    dim = x.ndim - 2
    spatial = list(x.shape[2:])
    if size is not None and scale_factor is not None:
        raise ValueError("only one of size or scale_factor should be defined")
    if size is not None:
        if isinstance(size, (list, tuple)):
            if len(size) != dim:
                raise ValueError(
                    "Input and output must have the same number of spatial dimensions, but "
                    f"got input with spatial dimensions of {spatial} and output size of "
                    f"{size}. Please provide input tensor in (N, C, d1, d2, ...,dK) format "
                    "and output size in (o1, o2, ...,oK) format.")
            sizes = list(size)
        else:
            sizes = [size] * dim
        if not all(hasattr(s, "__index__") and not isinstance(s, bool) for s in sizes):
            raise TypeError("expected size to be one of int or Tuple[int] or Tuple[int, int] or "
                            "Tuple[int, int, int], but got size with types "
                            f"{[type(s) for s in sizes]}")
        if recompute_scale_factor:
            raise ValueError("recompute_scale_factor is not meaningful with an explicit size.")
        return [operator.index(s) for s in sizes], [None] * dim
    if scale_factor is None:
        raise ValueError("either size or scale_factor should be defined")
    if isinstance(scale_factor, (list, tuple)):
        if len(scale_factor) != dim:
            raise ValueError(
                "Input and scale_factor must have the same number of spatial dimensions, but "
                f"got input with spatial dimensions of {spatial} and scale_factor of shape "
                f"{scale_factor}. Please provide input tensor in (N, C, d1, d2, ...,dK) format "
                "and scale_factor in (s1, s2, ...,sK) format.")
        factors = [float(f) for f in scale_factor]
    else:
        factors = [float(scale_factor)] * dim
    # the output size is the truncated product, in double precision
    sizes = [int(n * f) for n, f in zip(spatial, factors)]
    return sizes, ([None] * dim if recompute_scale_factor else list(factors))


def _scale(factor: float | None, n_in: int, n_out: int, dtype: Any) -> Any:
    """PyTorch's compute_scales_value: 1 / factor if a positive factor was given, else
    in / out, in the kernel's arithmetic type ``dtype``."""
    if factor is not None and factor > 0:
        return dtype(1.0 / factor)
    return dtype(n_in) / dtype(n_out)


def _nearest_index(n_in: int, n_out: int, factor: float | None,
                   shortcuts: bool) -> np.ndarray:
    """Source index of each output position: min(floor(dst * scale), in - 1) in float32.
    With `shortcuts` (PyTorch's 2-D kernel, not its 1-D one), an output of the input's size
    or twice it reads dst or dst // 2 whatever the scale factor."""
    dst = np.arange(n_out)
    if shortcuts and n_out == n_in:
        return dst
    if shortcuts and n_out == 2 * n_in:
        return dst >> 1
    scale = _scale(factor, n_in, n_out, np.float32)
    src = np.floor(dst.astype(np.float32) * scale).astype(np.int64)
    return np.minimum(src, n_in - 1)


def _linear_weights(n_in: int, n_out: int, factor: float | None, align_corners: bool,
                    dtype: np.dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(i0, i1, w0, w1): output j = w0[j] * x[i0[j]] + w1[j] * x[i1[j]]."""
    t = dtype.type
    if n_out == n_in:   # PyTorch copies, whatever the scale factor says
        same = np.arange(n_out)
        return same, same, np.ones(n_out, dtype), np.zeros(n_out, dtype)
    if align_corners:
        scale = t(n_in - 1) / t(n_out - 1) if n_out > 1 else t(0)
        src = scale * np.arange(n_out).astype(dtype)
    else:
        scale = _scale(factor, n_in, n_out, t)
        src = scale * (np.arange(n_out).astype(dtype) + t(0.5)) - t(0.5)
        src = np.maximum(src, t(0))
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = i0 + (i0 < n_in - 1)
    w1 = np.clip(src - i0.astype(dtype), t(0), t(1)).astype(dtype)
    w0 = (t(1) - w1).astype(dtype)
    return i0, i1, w0, w1


def _along(x: Tensor, dim: int, index: np.ndarray) -> Tensor:
    return x.index_select(dim, Tensor(index.astype(np.int64)))


def _linear_along(x: Tensor, dim: int, n_out: int, factor: float | None,
                  align_corners: bool) -> Tensor:
    dtype = np.dtype(x.dtype)
    i0, i1, w0, w1 = _linear_weights(x.shape[dim], n_out, factor, align_corners, dtype)
    shape = [1] * x.ndim
    shape[dim] = n_out
    return (_along(x, dim, i0) * Tensor(w0.reshape(shape))
            + _along(x, dim, i1) * Tensor(w1.reshape(shape)))


def interpolate(input: Tensor, size: Any = None, scale_factor: Any = None,
                mode: str = "nearest", align_corners: bool | None = None,
                recompute_scale_factor: bool | None = None, antialias: bool = False) -> Tensor:
    """Resize the spatial dimensions of (N, C, L) or (N, C, H, W) input to ``size``, or by
    ``scale_factor`` (output size floor(in * factor)).

    >>> import fastgrad
    >>> interpolate(fastgrad.ones(1, 1, 2, 2), scale_factor=1.5, mode="bilinear").shape
    (1, 1, 3, 3)
    """
    x = tensor_arg(input, "interpolate")
    if mode in ("nearest", "area", "nearest-exact"):
        if align_corners is not None:
            raise ValueError("align_corners option can only be set with the interpolating "
                             "modes: linear | bilinear | bicubic | trilinear")
    elif align_corners is None:
        align_corners = False
    sizes, factors = _sizes_and_scales(x, size, scale_factor, recompute_scale_factor)
    if antialias and not (mode in ("bilinear", "bicubic", "lanczos") and x.ndim == 4):
        raise ValueError("Anti-alias option is restricted to bilinear, bicubic, and lanczos "
                         "modes and requires a 4-D tensor as input")
    supported = {"nearest": (3, 4), "linear": (3,), "bilinear": (4,), "area": (4,)}
    if x.ndim not in supported.get(mode, ()) or antialias:
        _unsupported(x, mode, antialias)
    spatial = list(x.shape[2:])
    if any(n <= 0 for n in spatial + sizes):
        names = "HW" if x.ndim == 4 else "W"
        given = ", ".join(f"{c}: {n}" for c, n in zip(names, spatial))
        wanted = ", ".join(f"{c}: {n}" for c, n in zip(names, sizes))
        raise RuntimeError(f"Input and output sizes should be greater than 0, but got input "
                           f"({given}) output ({wanted})")
    if mode == "area":
        return adaptive_avg_pool2d(x, tuple(sizes))
    out = x
    # the last dimension first, then the one before: PyTorch's order of the bilinear sums
    for i in reversed(range(len(sizes))):
        dim = 2 + i
        if mode == "nearest":
            out = _along(out, dim, _nearest_index(x.shape[dim], sizes[i], factors[i],
                                                  x.ndim == 4))
        else:
            out = _linear_along(out, dim, sizes[i], factors[i], bool(align_corners))
    return out


def _unsupported(x: Tensor, mode: str, antialias: bool) -> None:
    """PyTorch's NotImplementedError for a mode that needs another rank; fastgrad's own for
    the modes it does not implement."""
    need = _LINEAR_DIMS.get(mode)
    if need is not None and need != x.ndim and x.ndim in (3, 4, 5):
        raise NotImplementedError(f"Got {x.ndim}D input, but {mode} mode needs {need}D input")
    if x.ndim not in (3, 4, 5):
        raise NotImplementedError(
            f"Input Error: Only 3D, 4D and 5D input Tensors supported (got {x.ndim}D) for the "
            "modes: nearest | linear | bilinear | bicubic | trilinear | lanczos | area | "
            f"nearest-exact (got {mode})")
    raise NotImplementedError(f"interpolate: mode {mode!r}{' with antialias' if antialias else ''}"
                              f" on {x.ndim}D input is not supported by fastgrad (it has "
                              "'nearest' for 3D and 4D, 'linear' for 3D, 'bilinear' and 'area' "
                              "for 4D)")
