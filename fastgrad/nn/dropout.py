"""``Dropout`` and ``Dropout2d``: zero random elements (whole channels for Dropout2d) while
training, the identity in eval mode."""

from __future__ import annotations

from fastgrad._tensor import Tensor
from fastgrad.nn import functional as F
from fastgrad.nn.module import Module

__all__ = ["Dropout", "Dropout2d"]


class Dropout(Module):
    """In training, each element is zeroed with probability ``p`` and the others are scaled
    by 1 / (1 - p); after ``eval()`` the input passes unchanged.

    >>> import fastgrad
    >>> drop = Dropout(0.25)
    >>> drop
    Dropout(p=0.25, inplace=False)
    >>> x = fastgrad.tensor([1.0, 2.0, 3.0])
    >>> drop.eval()(x) is x
    True
    """

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if p < 0 or p > 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout(input, self.p, self.training, self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Dropout2d(Dropout):
    """In training, each channel (a whole (H, W) plane of (N, C, H, W) input) is zeroed with
    probability ``p`` and the others are scaled by 1 / (1 - p); see ``F.dropout2d`` for 3-D
    input.

    >>> import fastgrad
    >>> Dropout2d(0.2)
    Dropout2d(p=0.2, inplace=False)
    """

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout2d(input, self.p, self.training, self.inplace)
