"""Autograd utilities beyond ``backward()`` (``torch.autograd``'s home): forward mode
(``jvp``, ``forward_grad``, ``Dual``) and ``gradcheck``; all but ``Dual`` (Values only) take
Values and Tensors alike.

>>> from fastgrad import Value
>>> from fastgrad.autograd import gradcheck, jvp
>>> x = Value(2.0)
>>> jvp(x * x * x, {x: 1.0})
12.0
>>> gradcheck(lambda x: x.tanh() * x, [Value(0.5)])
True
"""

from fastgrad.autograd.forward_mode import Dual, forward_grad, jvp
from fastgrad.autograd.gradcheck import GradcheckError, gradcheck

__all__ = ["jvp", "forward_grad", "Dual", "gradcheck", "GradcheckError"]
