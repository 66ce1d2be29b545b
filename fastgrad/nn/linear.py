"""``Linear`` and ``Identity`` with PyTorch's signatures, initialisation and repr."""

from __future__ import annotations

import math
from typing import Any

from fastgrad._tensor import Tensor, linear
from fastgrad.nn._factory import factory_dtype, uniform_parameter
from fastgrad.nn.module import Module

__all__ = ["Identity", "Linear"]


class Identity(Module):
    """Returns its input; takes (and ignores) any arguments, as PyTorch's does.

    >>> import fastgrad
    >>> x = fastgrad.tensor([1.0])
    >>> Identity(54, unused="x")(x) is x
    True
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, input: Any) -> Any:
        return input


class Linear(Module):
    """``y = x @ weight.T + bias`` with weight (out_features, in_features). PyTorch's default
    initialisation: weight and bias from U(-1/sqrt(in_features), 1/sqrt(in_features)) (the
    weight's ``kaiming_uniform_(a=sqrt(5))``), drawn from numpy's global generator (seed it
    with ``np.random.seed``); dtype ``fastgrad.get_default_dtype()`` unless given.

    >>> import fastgrad
    >>> lin = Linear(3, 2)
    >>> lin
    Linear(in_features=3, out_features=2, bias=True)
    >>> lin.weight.shape, lin.bias.shape, lin.weight.dtype == fastgrad.float32
    ((2, 3), (2,), True)
    >>> lin(fastgrad.tensor([[1.0, 2.0, 3.0]])).shape
    (1, 2)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        np_dtype = factory_dtype(dtype, device)
        bound = 1.0 / math.sqrt(in_features) if in_features > 0 else 0.0
        self.weight = uniform_parameter((out_features, in_features), bound, np_dtype)
        if bias:
            self.bias = uniform_parameter((out_features,), bound, np_dtype)
        else:
            self.register_parameter("bias", None)

    def forward(self, input: Tensor) -> Tensor:
        """``input @ weight.T + bias`` as one tape node."""
        return linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")
