"""``MaxPool2d``, ``AvgPool2d``, ``AdaptiveAvgPool2d`` and ``AdaptiveMaxPool2d`` with
PyTorch's arguments, attributes and repr; each calls its ``fastgrad.nn.functional`` twin."""

from __future__ import annotations

from typing import Any

from fastgrad._tensor import Tensor
from fastgrad.nn import functional as F
from fastgrad.nn.module import Module

__all__ = ["MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d"]


class MaxPool2d(Module):
    """The maximum of each window; ``stride`` defaults to ``kernel_size``.

    >>> import fastgrad
    >>> pool = MaxPool2d(2)
    >>> pool
    MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
    >>> pool(fastgrad.zeros(1, 3, 8, 8)).shape
    (1, 3, 4, 4)
    """

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 dilation: Any = 1, return_indices: bool = False,
                 ceil_mode: bool = False) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode

    def forward(self, input: Tensor) -> Any:
        return F.max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                            ceil_mode=self.ceil_mode, return_indices=self.return_indices)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
                f", dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    """The mean of each window; ``stride`` defaults to ``kernel_size``.

    >>> import fastgrad
    >>> pool = AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    >>> pool
    AvgPool2d(kernel_size=3, stride=1, padding=1)
    >>> pool(fastgrad.ones(1, 1, 4, 4)).tolist() == fastgrad.ones(1, 1, 4, 4).tolist()
    True
    """

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override: int | None = None) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override

    def forward(self, input: Tensor) -> Tensor:
        return F.avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size (None keeps that input dimension's size).

    >>> import fastgrad
    >>> pool = AdaptiveAvgPool2d((1, 1))
    >>> pool
    AdaptiveAvgPool2d(output_size=(1, 1))
    >>> pool(fastgrad.ones(2, 5, 7, 3)).shape
    (2, 5, 1, 1)
    """

    def __init__(self, output_size: Any) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, input: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveMaxPool2d(Module):
    """Max pooling to a fixed output size (None keeps that input dimension's size).

    >>> import fastgrad
    >>> AdaptiveMaxPool2d((2, None))(fastgrad.ones(1, 4, 6)).shape
    (1, 2, 6)
    """

    def __init__(self, output_size: Any, return_indices: bool = False) -> None:
        super().__init__()
        self.output_size = output_size
        self.return_indices = return_indices

    def forward(self, input: Tensor) -> Any:
        return F.adaptive_max_pool2d(input, self.output_size, self.return_indices)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"
