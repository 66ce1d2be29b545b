"""The tensor engine's import path: ``from fastgrad.tensor import Tensor, no_grad``.

Everything lives in the compiled core (``fastgrad._tensor``): operators on small tensors are
dominated by per-op overhead, so the handle, its operators and the sweep are all Cython.

>>> from fastgrad.tensor import Tensor, no_grad
>>> w = Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
>>> (w @ Tensor([1.0, 1.0])).sum().backward()
>>> w.grad.tolist()
[[1.0, 1.0], [1.0, 1.0]]
>>> with no_grad():
...     (w * 2).requires_grad
False
"""

try:
    from fastgrad._tensor import Tensor, concatenate, is_grad_enabled, no_grad, stack
except ImportError as exc:  # pragma: no cover - exercised by a subprocess test
    raise ImportError(
        f"fastgrad's compiled tensor core (fastgrad._tensor) is not built or cannot be loaded: "
        f"{exc}. Build it with `pip install .` (or `pip install -e .` in a checkout; "
        "`python setup.py build_ext --inplace` after editing a .pyx)."
    ) from exc

cat = concatenate  # PyTorch's name

__all__ = ["Tensor", "no_grad", "is_grad_enabled", "concatenate", "cat", "stack"]
