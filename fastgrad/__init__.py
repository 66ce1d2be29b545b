"""fastgrad: reverse-mode autograd on a compiled tape.

``fastgrad.Value`` is a drop-in for micrograd's Value (``fastgrad.engine``, ``fastgrad.nn``).
``fastgrad.Tensor`` is a numpy-backed tensor with PyTorch's names (``fastgrad.tensor``,
``fastgrad.nn``, ``fastgrad.nn.functional``, ``fastgrad.optim``, ``fastgrad.autograd``).
``fastgrad.record`` turns the graph behind a Value into a program replayed in C.

>>> import fastgrad
>>> x = fastgrad.Value(2.0)
>>> (x ** 3).backward()
>>> x.grad
12.0
>>> t = fastgrad.tensor([1.0, 2.0], requires_grad=True)
>>> (t * t).sum().backward()
>>> t.grad.tolist()
[2.0, 4.0]
"""

from fastgrad import autograd, nn, optim
from fastgrad._tensor import Tensor, cat, concatenate, is_grad_enabled, no_grad, stack, tensor
from fastgrad._version import __version__
from fastgrad.engine import Value, record
from fastgrad.serialization import load, save
from fastgrad.viz import draw_dot

__all__ = ["__version__", "Value", "record", "Tensor", "tensor", "no_grad", "is_grad_enabled",
           "cat", "concatenate", "stack", "save", "load", "nn", "optim", "autograd", "draw_dot"]
