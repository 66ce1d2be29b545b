"""Gradient clipping (``torch.nn.utils.clip_grad_norm_``, ``clip_grad_value_``): gradients are
scaled or clamped in place, between ``backward()`` and the optimizer's step.

They take Tensors (through the optimizers' one accessor of parameter arrays) and also the
scalar engine's Values, whose gradients count as one more vector.

>>> from fastgrad import Tensor
>>> w = Tensor([3.0, 4.0], requires_grad=True)
>>> (w * w).sum().backward()                   # grad [6, 8], norm 10
>>> clip_grad_norm_([w], max_norm=1.0).item()
10.0
>>> [round(g, 6) for g in w.grad.tolist()]
[0.6, 0.8]
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from fastgrad._tensor import Tensor
from fastgrad.optim.optimizer import param_arrays

__all__ = ["clip_grad_norm_", "clip_grad_value_", "clip_grads_with_norm_", "get_total_norm"]

# what PyTorch adds to the norm before dividing (keeps max_norm / norm finite at norm 0)
_NORM_EPS = 1e-6


class _Grads:
    """The gradients of some parameters, as arrays to change in place: each Tensor's, and the
    Values' gathered into one float64 vector (written back by `write_values`)."""

    def __init__(self, parameters: Any) -> None:
        if isinstance(parameters, Tensor):
            parameters = [parameters]
        self.arrays: list[np.ndarray] = []
        self.values: list[Any] = []
        for p in parameters:
            if isinstance(p, Tensor):
                grad = param_arrays(p)[1]
                if grad is not None:
                    self.arrays.append(grad)
            else:
                self.values.append(p)
        if self.values:
            self.arrays.append(np.array([v.grad for v in self.values], dtype=np.float64))

    def write_values(self) -> None:
        if self.values:
            for v, g in zip(self.values, self.arrays[-1].tolist()):
                v.grad = g


def _vector_norm(x: np.ndarray, norm_type: float) -> np.ndarray:
    """torch.linalg.vector_norm of a flattened array, as a 0-d array of its dtype."""
    return np.asarray(np.linalg.norm(x.ravel(), norm_type), dtype=x.dtype)


def get_total_norm(tensors: Iterable[Any], norm_type: float = 2.0,
                   error_if_nonfinite: bool = False, foreach: bool | None = None) -> Tensor:
    """The norm of the norms of the given arrays or Tensors (torch.nn.utils.get_total_norm)."""
    arrays = [t.numpy() if isinstance(t, Tensor) else np.asarray(t) for t in tensors]
    return _total_norm(arrays, norm_type, error_if_nonfinite)


def _total_norm(arrays: list[np.ndarray], norm_type: float,
                error_if_nonfinite: bool) -> Tensor:
    if not arrays:
        return Tensor(0.0)
    norm_type = float(norm_type)
    dtype = np.result_type(*arrays)
    norms = np.stack([_vector_norm(a, norm_type).astype(dtype) for a in arrays])
    total = _vector_norm(norms, norm_type)
    if error_if_nonfinite and not math.isfinite(float(total)):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients from "
                           "`parameters` is non-finite, so it cannot be clipped. To disable "
                           "this error and scale the gradients by the non-finite norm anyway, "
                           "set `error_if_nonfinite=False`")
    return Tensor(total)


def _scale(grads: _Grads, max_norm: float, total_norm: Any) -> None:
    total = total_norm.numpy() if isinstance(total_norm, Tensor) else np.asarray(total_norm)
    with np.errstate(all="ignore"):     # a non-finite norm makes nans, silently as in torch
        for g in grads.arrays:
            # torch's order: max_norm / (norm + eps), clamped to 1, in the gradient's dtype
            coef = np.minimum(g.dtype.type(max_norm) / (total.astype(g.dtype) + _NORM_EPS), 1.0)
            g *= coef.astype(g.dtype)
    grads.write_values()


def clip_grads_with_norm_(parameters: Any, max_norm: float, total_norm: Any,
                          foreach: bool | None = None) -> None:
    """Scale the gradients by max_norm / (total_norm + 1e-6) if that is below 1
    (torch.nn.utils.clip_grads_with_norm_)."""
    _scale(_Grads(parameters), max_norm, total_norm)


def clip_grad_norm_(parameters: Any, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False, foreach: bool | None = None) -> Tensor:
    """Scale the gradients in place so that their total norm (the norm_type norm of their
    norms; ``float('inf')`` for the largest magnitude) is at most max_norm; return the total
    norm before clipping, a 0-d Tensor of the gradients' dtype. Raises RuntimeError if it is
    not finite and error_if_nonfinite is set."""
    grads = _Grads(parameters)
    total = _total_norm(grads.arrays, norm_type, error_if_nonfinite)
    if grads.arrays:
        _scale(grads, max_norm, total)
    return total


def clip_grad_value_(parameters: Any, clip_value: float, foreach: bool | None = None) -> None:
    """Clamp every gradient element to [-clip_value, clip_value] in place."""
    clip_value = float(clip_value)
    grads = _Grads(parameters)
    for g in grads.arrays:
        np.clip(g, -clip_value, clip_value, out=g)
    grads.write_values()
