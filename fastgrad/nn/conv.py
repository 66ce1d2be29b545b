"""``Conv1d``, ``Conv2d`` and ``ConvTranspose2d`` with PyTorch's arguments, checks,
parameters (``weight`` then ``bias``), default initialisation and repr.

The initialisation is PyTorch's: ``init.kaiming_uniform_(weight, a=sqrt(5))`` (a bound of
1 / sqrt(fan_in), fan_in = in_channels / groups * kernel area; for the transposed layer
PyTorch's fan of its (in, out / groups, ...) weight) and the bias from
U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn from the default generator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from fastgrad._tensor import Tensor
from fastgrad.nn import functional as F
from fastgrad.nn import init
from fastgrad.nn._factory import empty_parameter, factory_dtype
from fastgrad.nn.module import Module

__all__ = ["Conv1d", "Conv2d", "ConvTranspose2d"]

_PADDING_MODES = {"zeros", "reflect", "replicate", "circular"}


def _tuple(value: Any, n: int) -> tuple[Any, ...]:
    """PyTorch's _single/_pair: an iterable as a tuple, anything else repeated n times."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        return tuple(value)
    return (value,) * n


class _ConvNd(Module):
    """What the convolution layers share: argument checks, parameters, initialisation and
    repr, as PyTorch's ``_ConvNd``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: tuple[int, ...],
                 stride: tuple[int, ...], padding: str | tuple[int, ...],
                 dilation: tuple[int, ...], transposed: bool,
                 output_padding: tuple[int, ...], groups: int, bias: bool, padding_mode: str,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        if groups <= 0:
            raise ValueError("groups must be a positive integer")
        if in_channels % groups != 0:
            raise ValueError("in_channels must be divisible by groups")
        if out_channels % groups != 0:
            raise ValueError("out_channels must be divisible by groups")
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"Invalid padding string {padding!r}, should be one of "
                                 f"{ {'same', 'valid'} }")
            if padding == "same" and any(s != 1 for s in stride):
                raise ValueError("padding='same' is not supported for strided convolutions")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {_PADDING_MODES}, but got "
                             f"padding_mode='{padding_mode}'")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.transposed = transposed
        self.output_padding = output_padding
        self.groups = groups
        self.padding_mode = padding_mode
        # F.pad's argument for the non-zero padding modes: last dimension first
        self._reversed_padding_repeated_twice = self._pad_for_modes()
        np_dtype = factory_dtype(dtype, device)
        shape = ((in_channels, out_channels // groups) if transposed
                 else (out_channels, in_channels // groups)) + tuple(kernel_size)
        self.weight = empty_parameter(shape, np_dtype)
        if bias:
            self.bias = empty_parameter((out_channels,), np_dtype)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def _pad_for_modes(self) -> list[int]:
        pads: list[int] = []
        for i in reversed(range(len(self.kernel_size))):
            if isinstance(self.padding, str):
                total = (self.dilation[i] * (self.kernel_size[i] - 1)
                         if self.padding == "same" else 0)
                pads += [total // 2, total - total // 2]
            else:
                pads += [self.padding[i], self.padding[i]]
        return pads

    def reset_parameters(self) -> None:
        """PyTorch's initialisation (the weight, then the bias)."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            if fan_in != 0:
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0,) * len(self.padding):
            s += f", padding={self.padding}"
        if self.dilation != (1,) * len(self.dilation):
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * len(self.output_padding):
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv2d(_ConvNd):
    """2-D convolution over (N, C_in, H, W) or (C_in, H, W) input: weight
    (out_channels, in_channels // groups, kH, kW), bias (out_channels,).

    >>> import fastgrad
    >>> conv = Conv2d(3, 8, 5, padding=2)
    >>> conv
    Conv2d(3, 8, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2))
    >>> conv(fastgrad.zeros(1, 3, 28, 28)).shape
    (1, 8, 28, 28)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any,
                 stride: Any = 1, padding: Any = 0, dilation: Any = 1, groups: int = 1,
                 bias: bool = True, padding_mode: str = "zeros", device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__(in_channels, out_channels, _tuple(kernel_size, 2), _tuple(stride, 2),
                         padding if isinstance(padding, str) else _tuple(padding, 2),
                         _tuple(dilation, 2), False, (0, 0), groups, bias, padding_mode,
                         device, dtype)

    def _conv_forward(self, input: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        if self.padding_mode != "zeros":
            padded = F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return F.conv2d(padded, weight, bias, self.stride, (0, 0), self.dilation,
                            self.groups)
        return F.conv2d(input, weight, bias, self.stride, self.padding, self.dilation,
                        self.groups)

    def forward(self, input: Tensor) -> Tensor:
        return self._conv_forward(input, self.weight, self.bias)


class Conv1d(_ConvNd):
    """1-D convolution over (N, C_in, L) or (C_in, L) input: weight
    (out_channels, in_channels // groups, k), bias (out_channels,).

    >>> import fastgrad
    >>> conv = Conv1d(2, 4, 3, bias=False)
    >>> conv
    Conv1d(2, 4, kernel_size=(3,), stride=(1,), bias=False)
    >>> conv(fastgrad.zeros(5, 2, 10)).shape
    (5, 4, 8)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any,
                 stride: Any = 1, padding: Any = 0, dilation: Any = 1, groups: int = 1,
                 bias: bool = True, padding_mode: str = "zeros", device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__(in_channels, out_channels, _tuple(kernel_size, 1), _tuple(stride, 1),
                         padding if isinstance(padding, str) else _tuple(padding, 1),
                         _tuple(dilation, 1), False, (0,), groups, bias, padding_mode,
                         device, dtype)

    def _conv_forward(self, input: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        if self.padding_mode != "zeros":
            padded = F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return F.conv1d(padded, weight, bias, self.stride, (0,), self.dilation,
                            self.groups)
        return F.conv1d(input, weight, bias, self.stride, self.padding, self.dilation,
                        self.groups)

    def forward(self, input: Tensor) -> Tensor:
        return self._conv_forward(input, self.weight, self.bias)


class ConvTranspose2d(_ConvNd):
    """The transpose of Conv2d (a "deconvolution"): weight
    (in_channels, out_channels // groups, kH, kW); ``forward(input, output_size)`` may ask for
    one of the output sizes the stride leaves open.

    >>> import fastgrad
    >>> up = ConvTranspose2d(4, 2, 2, stride=2)
    >>> up
    ConvTranspose2d(4, 2, kernel_size=(2, 2), stride=(2, 2))
    >>> up(fastgrad.zeros(1, 4, 7, 7)).shape
    (1, 2, 14, 14)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any,
                 stride: Any = 1, padding: Any = 0, output_padding: Any = 0, groups: int = 1,
                 bias: bool = True, dilation: Any = 1, padding_mode: str = "zeros",
                 device: Any = None, dtype: Any = None) -> None:
        if padding_mode != "zeros":
            raise ValueError(f'Only "zeros" padding mode is supported for '
                             f"{type(self).__name__}")
        super().__init__(in_channels, out_channels, _tuple(kernel_size, 2), _tuple(stride, 2),
                         _tuple(padding, 2), _tuple(dilation, 2), True,
                         _tuple(output_padding, 2), groups, bias, padding_mode, device, dtype)

    def _output_padding(self, input: Tensor, output_size: Sequence[int] | None
                        ) -> tuple[int, ...]:
        """The output padding that gives ``output_size`` (PyTorch's checks and errors)."""
        if output_size is None:
            return self.output_padding
        spatial = 2
        non_spatial = 2 if input.ndim == spatial + 2 else 1
        size = list(output_size)
        if len(size) == non_spatial + spatial:
            size = size[non_spatial:]
        if len(size) != spatial:
            raise ValueError(f"ConvTranspose{spatial}D: for {input.ndim}D input, output_size "
                             f"must have {spatial} or {non_spatial + spatial} elements (got "
                             f"{len(output_size)})")
        padding = self.padding
        assert not isinstance(padding, str)     # (a transposed convolution's is numeric)
        smallest, largest = [], []
        for d in range(spatial):
            n = ((input.shape[d + non_spatial] - 1) * self.stride[d] - 2 * padding[d]
                 + self.dilation[d] * (self.kernel_size[d] - 1) + 1)
            smallest.append(n)
            largest.append(n + self.stride[d] - 1)
        for d in range(spatial):
            if not smallest[d] <= size[d] <= largest[d]:
                raise ValueError(f"requested an output size of {size}, but valid sizes range "
                                 f"from {smallest} to {largest} (for an input of "
                                 f"{tuple(input.shape[non_spatial:])})")
        return tuple(size[d] - smallest[d] for d in range(spatial))

    def forward(self, input: Tensor, output_size: Sequence[int] | None = None) -> Tensor:
        extra = self._output_padding(input, output_size)
        return F.conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding,
                                  extra, self.groups, self.dilation)
