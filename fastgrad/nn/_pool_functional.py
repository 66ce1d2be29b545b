"""``max_pool2d``, ``avg_pool2d``, ``adaptive_avg_pool2d`` and ``adaptive_max_pool2d`` of
``torch.nn.functional``: PyTorch's arguments checked and normalised here, the pooling done
by one node of the compiled core (``fastgrad._tensor.conv``), which keeps max pooling's
indices for the backward pass and checks the shapes.

>>> import fastgrad
>>> x = fastgrad.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
>>> max_pool2d(x, 2).tolist(), avg_pool2d(x, 2).tolist()
([[[[4.0]]]], [[[[2.5]]]])
"""

from __future__ import annotations

import operator
from typing import Any

from fastgrad._tensor import Tensor
from fastgrad._tensor import conv as _core
from fastgrad.nn._spatial_args import expand, tensor_arg

__all__ = ["max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d"]


def _pool_ints(value: Any, name: str, fn: str, also: str = "") -> tuple[int, ...]:
    def length_error(arg: str, n: int, values: list[int]) -> RuntimeError:
        return RuntimeError(f"{fn}: {arg} must either be{also} a single int, or a tuple of "
                            f"two ints")
    return expand(value, 2, name, fn, length_error)


def _window(fn: str, kernel_size: Any, stride: Any, padding: Any, dilation: Any
            ) -> tuple[tuple[int, ...], ...]:
    """(kernel, stride, padding, dilation) pairs, checked as PyTorch's pooling checks them;
    stride None (or empty) is the kernel size."""
    kernel = _pool_ints(kernel_size, "kernel_size", fn)
    if stride is None or (isinstance(stride, (list, tuple)) and len(stride) == 0):
        stride = kernel
    else:
        stride = _pool_ints(stride, "stride", fn, " omitted,")
    padding = _pool_ints(padding, "padding", fn)
    dilation = _pool_ints(dilation, "dilation", fn)
    if any(s == 0 for s in stride):
        raise RuntimeError("stride should not be zero")
    if any(s < 0 for s in stride):
        raise RuntimeError(f"stride should be greater than zero, but got strideH: {stride[0]} "
                           f"strideW: {stride[1]}")
    if any(k <= 0 for k in kernel):
        raise RuntimeError(f"kernel size should be greater than zero, but got kH: {kernel[0]} "
                           f"kW: {kernel[1]}")
    if any(d <= 0 for d in dilation):
        raise RuntimeError(f"dilation should be greater than zero, but got dilationH: "
                           f"{dilation[0]} dilationW: {dilation[1]}")
    for p, k, d in zip(padding, kernel, dilation):
        if p < 0:
            raise RuntimeError(f"pad must be non-negative, but got pad: {p}")
        if p > ((k - 1) * d + 1) // 2:
            raise RuntimeError(f"pad should be at most half of effective kernel size, but got "
                               f"pad={p}, kernel_size={k} and dilation={d}")
    # PyTorch then also bounds the padding by half the undilated kernel
    if any(p > k // 2 for p, k in zip(padding, kernel)):
        raise RuntimeError(f"pad should be smaller than or equal to half of kernel size, but "
                           f"got padW = {padding[1]}, padH = {padding[0]}, kW = {kernel[1]}, "
                           f"kH = {kernel[0]}")
    return kernel, stride, padding, dilation


def _batched(x: Tensor, fn: str) -> tuple[Tensor, bool]:
    if x.ndim not in (3, 4) or any(n == 0 for n in x.shape[x.ndim - 3:]):
        raise RuntimeError(f"{fn}: non-empty 3D or 4D (batch mode) tensor expected for input, "
                           f"but got {list(x.shape)}")
    return (x.unsqueeze(0), True) if x.ndim == 3 else (x, False)


def max_pool2d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0,
               dilation: Any = 1, ceil_mode: bool = False,
               return_indices: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """The maximum of each (dilated) window of (N, C, H, W) or (C, H, W) input, padding counting
    as -inf; with ``return_indices`` also the int64 flat position (h * W + w) of each maximum.

    >>> import fastgrad
    >>> out, idx = max_pool2d(fastgrad.tensor([[[1.0, 5.0], [3.0, 2.0]]]), 2,
    ...                       return_indices=True)
    >>> out.tolist(), idx.tolist()
    ([[[5.0]]], [[[1]]])
    """
    x, unbatched = _batched(tensor_arg(input, "max_pool2d"), "max_pool2d")
    kernel, stride, padding, dilation = _window("max_pool2d", kernel_size, stride, padding,
                                                dilation)
    out, indices = _core.max_pool2d(x, kernel, stride, padding, dilation, bool(ceil_mode))
    if unbatched:
        out, indices = out.squeeze(0), indices.squeeze(0)
    return (out, indices) if return_indices else out


def avg_pool2d(input: Tensor, kernel_size: Any, stride: Any = None, padding: Any = 0,
               ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: int | None = None) -> Tensor:
    """The mean of each window of (N, C, H, W) or (C, H, W) input; the divisor counts the
    zero padding when ``count_include_pad``, and is ``divisor_override`` when given.

    >>> import fastgrad
    >>> x = fastgrad.tensor([[[2.0, 4.0]]])
    >>> avg_pool2d(x, (1, 2)).tolist(), avg_pool2d(x, (1, 2), divisor_override=1).tolist()
    ([[[3.0]]], [[[6.0]]])
    """
    x = tensor_arg(input, "avg_pool2d")
    if x.ndim < 3:   # PyTorch reads dimension -3 first, so it fails with an IndexError
        raise IndexError(f"Dimension out of range (expected to be in range of "
                         f"[{-max(x.ndim, 1)}, {max(x.ndim, 1) - 1}], but got -3)")
    x, unbatched = _batched(x, "avg_pool2d")
    kernel, stride, padding, _ = _window("avg_pool2d", kernel_size, stride, padding, 1)
    if divisor_override is not None:
        divisor_override = operator.index(divisor_override)
        if divisor_override == 0:
            raise RuntimeError("divisor must be not zero")
    out = _core.avg_pool2d(x, kernel, stride, padding, bool(ceil_mode),
                           bool(count_include_pad), divisor_override)
    return out.squeeze(0) if unbatched else out


def _adaptive_size(output_size: Any, x: Tensor, fn: str) -> tuple[int, int]:
    """The output size as two ints; None keeps the input's size along that dimension."""
    if isinstance(output_size, (list, tuple)):
        if len(output_size) != 2:
            raise RuntimeError(f"{fn}: output_size must be 2")
        sizes = list(output_size)
    else:
        sizes = [output_size, output_size]
    shape = x.shape[x.ndim - 2:]
    sizes = [shape[i] if s is None else operator.index(s) for i, s in enumerate(sizes)]
    if sizes[0] < 0 or sizes[1] < 0:
        raise RuntimeError(f"{fn}: elements of output_size must be greater than or equal to 0 "
                           f"but received {{{sizes[0]}, {sizes[1]}}}")
    return sizes[0], sizes[1]


def _adaptive_input(input: Any, fn: str) -> tuple[Tensor, bool]:
    x = tensor_arg(input, fn)
    if x.ndim not in (3, 4) or any(n == 0 for n in x.shape[x.ndim - 2:]):
        raise RuntimeError(f"{fn}(): Expected 3D or 4D tensor, but got {list(x.shape)}")
    return (x.unsqueeze(0), True) if x.ndim == 3 else (x, False)


def _empty(x: Tensor, size: tuple[int, int]) -> Tensor:
    """A result with no elements, still in x's graph (its gradient is zeros)."""
    return x.reshape(-1)[:0].reshape(x.shape[0], x.shape[1], size[0], size[1])


def adaptive_avg_pool2d(input: Tensor, output_size: Any) -> Tensor:
    """Average pooling to a given output size: output cell (i, j) averages input rows
    floor(i * H / oh) to ceil((i + 1) * H / oh) and the like for columns.

    >>> import fastgrad
    >>> adaptive_avg_pool2d(fastgrad.tensor([[[1.0, 2.0, 3.0]]]), (1, 2)).tolist()
    [[[1.5, 2.5]]]
    """
    x, unbatched = _adaptive_input(input, "adaptive_avg_pool2d")
    size = _adaptive_size(output_size, x, "adaptive_avg_pool2d")
    out = _empty(x, size) if 0 in size else _core.adaptive_avg_pool2d(x, size)
    return out.squeeze(0) if unbatched else out


def adaptive_max_pool2d(input: Tensor, output_size: Any, return_indices: bool = False
                        ) -> Tensor | tuple[Tensor, Tensor]:
    """Max pooling to a given output size (the windows of adaptive_avg_pool2d); with
    ``return_indices`` also the int64 flat position of each maximum.

    >>> import fastgrad
    >>> adaptive_max_pool2d(fastgrad.tensor([[[1.0, 5.0, 3.0]]]), (1, 1)).tolist()
    [[[5.0]]]
    """
    x, unbatched = _adaptive_input(input, "adaptive_max_pool2d")
    size = _adaptive_size(output_size, x, "adaptive_max_pool2d")
    if 0 in size:
        out = _empty(x, size)
        indices = Tensor(out.detach().numpy().astype("int64"))
    else:
        out, indices = _core.adaptive_max_pool2d(x, size)
    if unbatched:
        out, indices = out.squeeze(0), indices.squeeze(0)
    return (out, indices) if return_indices else out
