"""PyTorch's argument handling for convolution and pooling: an int or a sequence of ints
expanded to one int per spatial dimension, with PyTorch's error types for the wrong kind or
length. The compiled core (``fastgrad._tensor.conv``) takes only these normalised tuples.

>>> expand(3, 2, "stride", "conv2d")
(3, 3)
>>> expand([1, 2], 2, "padding", "conv2d")
(1, 2)
"""

from __future__ import annotations

import operator
from typing import Any

from fastgrad._tensor import Tensor

__all__ = ["expand", "conv_length_error", "tensor_arg"]


def tensor_arg(x: object, fn: str, name: str = "input") -> Tensor:
    """``x`` itself if it is a Tensor, else PyTorch's TypeError for ``fn``'s argument."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn}(): argument '{name}' must be a fastgrad.Tensor, not "
                        f"{type(x).__name__}")
    return x


def _as_int(value: Any, fn: str, name: str) -> int:
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{fn}(): argument '{name}' must be tuple of ints, but found element "
                        f"of type {type(value).__name__}")
    return operator.index(value)


def conv_length_error(name: str, n: int, values: list[int]) -> RuntimeError:
    """The error of convolutions for a sequence of the wrong length."""
    return RuntimeError(f"expected {name} to be a single integer value or a list of {n} values "
                        f"to match the convolution dimensions, but got {name}={values}")


def expand(value: Any, n: int, name: str, fn: str, length_error: Any = conv_length_error
           ) -> tuple[int, ...]:
    """``n`` ints from an int, or from a sequence of 1 or ``n`` ints (as PyTorch expands a
    one-element list); other lengths raise ``length_error(name, n, values)``, non-integers
    a TypeError."""
    if isinstance(value, (list, tuple)):
        values = [_as_int(v, fn, name) for v in value]
        if len(values) == 1:
            return (values[0],) * n
        if len(values) != n:
            raise length_error(name, n, values)
        return tuple(values)
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{fn}(): argument '{name}' must be tuple of ints, not "
                        f"{type(value).__name__}")
    return (operator.index(value),) * n
