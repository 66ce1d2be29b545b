"""The tensor engine's import path: ``from fastgrad.tensor import Tensor, no_grad``.

Everything lives in the compiled core (``fastgrad._tensor``): operators on small tensors are
dominated by per-op overhead, so the handle, its operators and the sweep are all Cython.
"""

from fastgrad._tensor import Tensor, concatenate, is_grad_enabled, no_grad, stack

cat = concatenate  # PyTorch's name

__all__ = ["Tensor", "no_grad", "is_grad_enabled", "concatenate", "cat", "stack"]
