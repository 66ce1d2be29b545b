"""fastgrad: reverse-mode autograd on a compiled tape.

``fastgrad.Value`` is a drop-in for micrograd's Value (``fastgrad.engine``, ``fastgrad.nn``).
``fastgrad.Tensor`` is a numpy-backed tensor with PyTorch's names (``fastgrad.nn``,
``fastgrad.optim``, ``fastgrad.functional``). ``fastgrad.record`` turns the graph behind a Value
into a program replayed in C (``fastgrad.replay``).

>>> import fastgrad
>>> x = fastgrad.Value(2.0)
>>> (x ** 3).backward()
>>> x.grad
12.0
>>> t = fastgrad.Tensor([1.0, 2.0], requires_grad=True)
>>> (t * t).sum().backward()
>>> t.grad.tolist()
[2.0, 4.0]
"""

from fastgrad._version import __version__
from fastgrad.engine import Value
from fastgrad.tensor import Tensor, cat, concatenate, is_grad_enabled, no_grad, stack
from fastgrad.forward import Dual, forward_grad, jvp  # forward mode, for Values and Tensors
from fastgrad.viz import draw_dot
from fastgrad.gradcheck import GradcheckError, gradcheck  # the function shadows the module name
from fastgrad import functional, nn, optim  # noqa: E402,F401  (nn last-imports tensor_nn)
from fastgrad.replay import record

__all__ = ["__version__", "Value", "Tensor", "no_grad", "is_grad_enabled", "concatenate", "cat",
           "stack", "functional", "nn", "optim", "jvp", "forward_grad", "Dual", "draw_dot",
           "gradcheck", "GradcheckError", "record"]
