"""``torch.autograd.Variable``: PyTorch's old wrapper around tensors, which is now the tensor
itself. Old scripts still write ``Variable(x, requires_grad=True)`` and
``isinstance(v, Variable)``; both work.

>>> import fastgrad
>>> from fastgrad.autograd import Variable
>>> v = Variable(fastgrad.tensor([1.0, 2.0]), requires_grad=True)
>>> isinstance(v, Variable), isinstance(v, fastgrad.Tensor), v.requires_grad
(True, True, True)
"""
from __future__ import annotations

from typing import Any

from fastgrad._tensor import Tensor


class _VariableType(type):
    # every Tensor is a Variable, as in PyTorch
    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, Tensor)


class Variable(metaclass=_VariableType):
    """``Variable(data, requires_grad=False)``: a tensor sharing a tensor's memory (or a new
    tensor from other data), as a leaf."""

    def __new__(cls, data: Any, requires_grad: bool = False, volatile: bool = False) -> Any:
        t = data.detach() if isinstance(data, Tensor) else Tensor(data)
        return t.requires_grad_(requires_grad) if requires_grad else t
