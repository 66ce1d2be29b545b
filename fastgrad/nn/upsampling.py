"""``Upsample``: ``fastgrad.nn.functional.interpolate`` as a layer, with PyTorch's attributes
and repr."""

from __future__ import annotations

from typing import Any

from fastgrad._tensor import Tensor
from fastgrad.nn import functional as F
from fastgrad.nn.module import Module

__all__ = ["Upsample"]


class Upsample(Module):
    """Resize to ``size`` or by ``scale_factor`` ('nearest', 'linear', 'bilinear', 'area').

    >>> import fastgrad
    >>> up = Upsample(scale_factor=2, mode="bilinear")
    >>> up
    Upsample(scale_factor=2.0, mode='bilinear')
    >>> up(fastgrad.zeros(1, 1, 3, 3)).shape
    (1, 1, 6, 6)
    """

    def __init__(self, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
                 align_corners: bool | None = None,
                 recompute_scale_factor: bool | None = None) -> None:
        super().__init__()
        self.name = type(self).__name__
        self.size = size
        if isinstance(scale_factor, tuple):
            self.scale_factor: Any = tuple(float(f) for f in scale_factor)
        else:
            self.scale_factor = float(scale_factor) if scale_factor else None
        self.mode = mode
        self.align_corners = align_corners
        self.recompute_scale_factor = recompute_scale_factor

    def forward(self, input: Tensor) -> Tensor:
        return F.interpolate(input, self.size, self.scale_factor, self.mode, self.align_corners,
                             recompute_scale_factor=self.recompute_scale_factor)

    def extra_repr(self) -> str:
        if self.scale_factor is not None:
            info = "scale_factor=" + repr(self.scale_factor)
        else:
            info = "size=" + repr(self.size)
        return info + ", mode=" + repr(self.mode)
