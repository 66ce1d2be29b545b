"""Autograd utilities beyond ``backward()`` (``torch.autograd``'s home): forward mode
(``jvp``, ``forward_grad``, ``Dual``) and ``gradcheck``, which take Values and Tensors alike
(``Dual``: Values only); ``grad`` and ``functional`` (``hessian``, ``jacobian``, ``hvp``, ...),
to any order for Values, first order for Tensors. ``Variable`` is PyTorch's old name
for a tensor.

>>> from fastgrad import Value
>>> from fastgrad.autograd import gradcheck, jvp
>>> x = Value(2.0)
>>> jvp(x * x * x, {x: 1.0})
12.0
>>> gradcheck(lambda x: x.tanh() * x, [Value(0.5)])
True
"""

from fastgrad.autograd import functional
from fastgrad.autograd.forward_mode import Dual, forward_grad, jvp
from fastgrad.autograd.gradcheck import GradcheckError, gradcheck
from fastgrad.autograd.reverse_mode import grad
from fastgrad.autograd.variable import Variable

__all__ = ["grad", "functional", "jvp", "forward_grad", "Dual", "gradcheck", "GradcheckError",
           "Variable"]
