"""``Flatten`` and ``Unflatten``: reshaping as layers, with PyTorch's defaults (a batch
dimension first)."""

from __future__ import annotations

from collections.abc import Sequence

from fastgrad._tensor import Tensor
from fastgrad.nn.module import Module

__all__ = ["Flatten", "Unflatten"]


class Flatten(Module):
    """Merges dimensions ``start_dim`` .. ``end_dim`` into one (by default all but the first).

    >>> import fastgrad
    >>> Flatten()(fastgrad.tensor([[[0.0] * 4] * 3] * 2)).shape
    (2, 12)
    >>> Flatten(0, 1)
    Flatten(start_dim=0, end_dim=1)
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, input: Tensor) -> Tensor:
        return input.flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Splits dimension ``dim`` into ``unflattened_size``.

    >>> import fastgrad
    >>> Unflatten(1, (2, 5))(fastgrad.tensor([[0.0] * 10] * 3)).shape
    (3, 2, 5)
    """

    def __init__(self, dim: int, unflattened_size: Sequence[int]) -> None:
        super().__init__()
        if not isinstance(dim, int):
            raise TypeError(f"invalid argument type for dim parameter: {type(dim).__name__} "
                            "(an int is expected)")
        if not isinstance(unflattened_size, (tuple, list)) or not all(
                isinstance(n, int) for n in unflattened_size):
            raise TypeError("unflattened_size must be tuple of ints, but found type "
                            f"{type(unflattened_size).__name__}")
        self.dim = dim
        self.unflattened_size = unflattened_size

    def forward(self, input: Tensor) -> Tensor:
        return input.unflatten(self.dim, self.unflattened_size)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
