"""``conv1d``, ``conv2d``, ``conv_transpose2d``, ``unfold`` and ``fold`` of
``torch.nn.functional``: PyTorch's arguments (ints or tuples, ``'same'``/``'valid'``,
unbatched input) checked and normalised here, the work done by one node of the compiled core
(``fastgrad._tensor.conv``), which checks the shapes. conv1d is conv2d on an added H = 1 axis.

>>> import fastgrad
>>> x = fastgrad.ones(1, 1, 3, 3)
>>> conv2d(x, fastgrad.ones(1, 1, 2, 2)).tolist()
[[[[4.0, 4.0], [4.0, 4.0]]]]
>>> conv2d(x, fastgrad.ones(1, 1, 2, 2), padding="same").shape
(1, 1, 3, 3)
"""

from __future__ import annotations

import operator
from typing import Any

from fastgrad._tensor import Tensor
from fastgrad._tensor import conv as _core
from fastgrad.nn._spatial_args import expand, tensor_arg

__all__ = ["conv1d", "conv2d", "conv_transpose2d", "unfold", "fold"]


def _groups(groups: Any) -> int:
    if isinstance(groups, bool) or not hasattr(groups, "__index__"):
        raise TypeError(f"argument 'groups' must be int, not {type(groups).__name__}")
    groups = operator.index(groups)
    if groups <= 0:
        raise RuntimeError("non-positive groups is not supported")
    return groups


def _check_positive(values: tuple[int, ...], what: str) -> None:
    if any(v <= 0 for v in values):
        raise RuntimeError(f"non-positive {what} is not supported")


def _check_non_negative(values: tuple[int, ...], what: str) -> None:
    if any(v < 0 for v in values):
        raise RuntimeError(f"negative {what} is not supported")


def _conv_padding(padding: Any, kernel: tuple[int, ...], stride: tuple[int, ...],
                  dilation: tuple[int, ...], fn: str) -> tuple[int, ...]:
    """(before, after) per spatial dimension, flattened. 'same' puts the odd unit of an even
    effective kernel after, as PyTorch does."""
    n = len(kernel)
    if isinstance(padding, str):
        if padding == "valid":
            return (0,) * (2 * n)
        if padding != "same":
            raise RuntimeError(f"Invalid padding string: '{padding}'")
        if any(s != 1 for s in stride):
            raise RuntimeError("padding='same' is not supported for strided convolutions")
        pads: list[int] = []
        for d, k in zip(dilation, kernel):
            total = d * (k - 1)
            pads += [total // 2, total - total // 2]
        return tuple(pads)
    sizes = expand(padding, n, "padding", fn)
    _check_non_negative(sizes, "padding")
    return tuple(p for size in sizes for p in (size, size))


def _batched(x: Tensor, spatial: int, fn: str) -> tuple[Tensor, bool]:
    """(x with a batch axis, whether one was added); PyTorch's error for other ranks."""
    if x.ndim == spatial + 1:
        return x.unsqueeze(0), True
    if x.ndim != spatial + 2:
        raise RuntimeError(f"Expected {spatial + 1}D (unbatched) or {spatial + 2}D (batched) "
                           f"input to {fn}, but got input of size: {list(x.shape)}")
    return x, False


def _check_weight(weight: Any, ndim: int, fn: str) -> Tensor:
    weight = tensor_arg(weight, fn, "weight")
    if weight.ndim < 3:
        raise RuntimeError("weight should have at least three dimensions")
    if weight.ndim != ndim:
        raise RuntimeError(f"Expected {ndim}-dimensional weight for {fn}, but got weight of "
                           f"size {list(weight.shape)}")
    return weight


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1,
           padding: Any = 0, dilation: Any = 1, groups: int = 1) -> Tensor:
    """2-D cross-correlation of (N, C, H, W) or unbatched (C, H, W) input with weight
    (O, C // groups, kH, kW), plus ``bias`` (O,). ``padding`` is an int, a pair, 'valid' (none)
    or 'same' (output size = input size; stride 1 only).

    >>> import fastgrad
    >>> conv2d(fastgrad.ones(2, 4, 4), fastgrad.ones(3, 2, 3, 3), stride=2, padding=1).shape
    (3, 2, 2)
    """
    x, unbatched = _batched(tensor_arg(input, "conv2d"), 2, "conv2d")
    weight = _check_weight(weight, 4, "conv2d")
    stride = expand(stride, 2, "stride", "conv2d")
    dilation = expand(dilation, 2, "dilation", "conv2d")
    pads = _conv_padding(padding, tuple(weight.shape[2:]), stride, dilation, "conv2d")
    _check_positive(stride, "stride")
    _check_positive(dilation, "dilation")
    out = _core.conv2d(x, weight, bias, stride, pads, dilation, _groups(groups))
    return out.squeeze(0) if unbatched else out


def conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1,
           padding: Any = 0, dilation: Any = 1, groups: int = 1) -> Tensor:
    """1-D cross-correlation of (N, C, L) or unbatched (C, L) input with weight
    (O, C // groups, k): conv2d with H = 1.

    >>> import fastgrad
    >>> conv1d(fastgrad.ones(1, 1, 4), fastgrad.ones(1, 1, 2)).tolist()
    [[[2.0, 2.0, 2.0]]]
    """
    x, unbatched = _batched(tensor_arg(input, "conv1d"), 1, "conv1d")
    weight = _check_weight(weight, 3, "conv1d")
    stride = expand(stride, 1, "stride", "conv1d")
    dilation = expand(dilation, 1, "dilation", "conv1d")
    pads = _conv_padding(padding, tuple(weight.shape[2:]), stride, dilation, "conv1d")
    _check_positive(stride, "stride")
    _check_positive(dilation, "dilation")
    out = _core.conv2d(x.unsqueeze(2), weight.unsqueeze(2), bias, (1,) + stride,
                       (0, 0) + pads, (1,) + dilation, _groups(groups)).squeeze(2)
    return out.squeeze(0) if unbatched else out


def conv_transpose2d(input: Tensor, weight: Tensor, bias: Tensor | None = None,
                     stride: Any = 1, padding: Any = 0, output_padding: Any = 0,
                     groups: int = 1, dilation: Any = 1) -> Tensor:
    """The transpose (gradient) of conv2d: (N, C, H, W) or (C, H, W) input, weight
    (C, O // groups, kH, kW); output size (H - 1) * stride - 2 * padding
    + dilation * (kH - 1) + output_padding + 1.

    >>> import fastgrad
    >>> conv_transpose2d(fastgrad.ones(1, 1, 2, 2), fastgrad.ones(1, 1, 2, 2)).tolist()
    [[[[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]]]
    """
    fn = "conv_transpose2d"
    x, unbatched = _batched(tensor_arg(input, fn), 2, fn)
    weight = _check_weight(weight, 4, fn)
    stride = expand(stride, 2, "stride", fn)
    pads = expand(padding, 2, "padding", fn)
    extra = expand(output_padding, 2, "output_padding", fn)
    dilation = expand(dilation, 2, "dilation", fn)
    _check_positive(stride, "stride")
    _check_positive(dilation, "dilation")
    _check_non_negative(pads, "padding")
    _check_non_negative(extra, "output_padding")
    if any(e >= s and e >= d for e, s, d in zip(extra, stride, dilation)):
        raise RuntimeError(
            "output padding must be smaller than either stride or dilation, but got "
            f"output_padding_height: {extra[0]} output_padding_width: {extra[1]} "
            f"stride_height: {stride[0]} stride_width: {stride[1]} "
            f"dilation_height: {dilation[0]} dilation_width: {dilation[1]}")
    out = _core.conv_transpose2d(x, weight, bias, stride, pads, extra, _groups(groups),
                                 dilation)
    return out.squeeze(0) if unbatched else out


def _block_args(kernel_size: Any, dilation: Any, padding: Any, stride: Any, fn: str
                ) -> tuple[tuple[int, ...], ...]:
    """unfold's and fold's sliding-block arguments as pairs, checked as PyTorch does."""
    kernel = expand(kernel_size, 2, "kernel_size", fn)
    dilation = expand(dilation, 2, "dilation", fn)
    padding = expand(padding, 2, "padding", fn)
    stride = expand(stride, 2, "stride", fn)
    for what, (h, w), low, rule in (("kernel", kernel, 1, "greater than zero"),
                                    ("dilation", dilation, 1, "greater than zero"),
                                    ("pad", padding, 0, "non-negative"),
                                    ("stride", stride, 1, "greater than zero")):
        if h < low or w < low:
            name = "padding" if what == "pad" else ("kernel size" if what == "kernel"
                                                   else what)
            raise RuntimeError(f"{name} should be {rule}, but got {what}_height: {h} "
                               f"{what}_width: {w}")
    return kernel, dilation, padding, stride


def unfold(input: Tensor, kernel_size: Any, dilation: Any = 1, padding: Any = 0,
           stride: Any = 1) -> Tensor:
    """The sliding blocks of (N, C, H, W) (or (C, H, W)) input as columns:
    (N, C * kH * kW, L), L the number of block positions.

    >>> import fastgrad
    >>> unfold(fastgrad.ones(1, 2, 3, 3), 2).shape
    (1, 8, 4)
    """
    x = tensor_arg(input, "unfold")
    if x.ndim not in (3, 4):
        raise RuntimeError("Expected 3D or 4D (batch mode) tensor with possibly 0 batch size "
                           f"and other non-zero dimensions for input, but got: {list(x.shape)}")
    kernel, dilation, padding, stride = _block_args(kernel_size, dilation, padding, stride,
                                                    "unfold")
    unbatched = x.ndim == 3
    out = _core.unfold(x.unsqueeze(0) if unbatched else x, kernel, dilation, padding, stride)
    return out.squeeze(0) if unbatched else out


def fold(input: Tensor, output_size: Any, kernel_size: Any, dilation: Any = 1,
         padding: Any = 0, stride: Any = 1) -> Tensor:
    """The inverse arrangement of unfold, summing where blocks overlap: (N, C * kH * kW, L)
    (or unbatched 2-D) to (N, C, *output_size).

    >>> import fastgrad
    >>> fold(fastgrad.ones(1, 4, 4), (3, 3), 2).tolist()[0][0]
    [[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]
    """
    x = tensor_arg(input, "fold")
    if x.ndim not in (2, 3):
        raise RuntimeError("Expected 2D or 3D (batch mode) tensor for input with possibly 0 "
                           "batch size and non-zero dimensions for input, but got: "
                           f"{list(x.shape)}")
    size = expand(output_size, 2, "output_size", "fold")
    kernel, dilation, padding, stride = _block_args(kernel_size, dilation, padding, stride,
                                                    "fold")
    unbatched = x.ndim == 2
    out = _core.fold(x.unsqueeze(0) if unbatched else x, size, kernel, dilation, padding,
                     stride)
    return out.squeeze(0) if unbatched else out
