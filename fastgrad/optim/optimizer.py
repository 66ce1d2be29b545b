"""The optimizers' base class: parameters, per-parameter state, the step loop.

Optimizers update ``Tensor`` parameters in place (numpy on ``.data`` and ``.grad``, nothing is
recorded) and also accept the scalar engine's ``Value`` parameters: those are gathered into one
array per step, updated by the same code, and written back, so both engines follow exactly the
same rule.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np

from fastgrad._tensor import Tensor

__all__ = ["Optimizer"]


class _ScalarBlock:
    """All scalar (Value) parameters of an optimizer, viewed as one float64 vector."""

    def __init__(self, values):
        self.values = values

    def arrays(self):
        data = np.array([p.data for p in self.values], dtype=np.float64)
        grad = np.array([p.grad for p in self.values], dtype=np.float64)
        return data, grad

    def write(self, data):
        for p, x in zip(self.values, data.tolist()):
            p.data = x


class Optimizer:
    """Base class: holds the parameters and per-parameter state (a dict each); subclasses
    define the update twice: `_update_all` (compiled kernel, all parameters in one call) and
    `_update_numpy` (the same rule for the arrays the kernel cannot take).

    Every optimizer also takes the scalar engine's Values:

    >>> from fastgrad import Value
    >>> x = Value(3.0)
    >>> from fastgrad.optim import SGD
    >>> opt = SGD([x], lr=0.25)
    >>> (x * x).backward()
    >>> opt.step()
    >>> x.data
    1.5
    """

    def __init__(self, params: Iterable[Any], **hyper: Any) -> None:
        if isinstance(params, Tensor):
            raise TypeError("optimizer params must be an iterable of tensors (or Values), "
                            "not a single Tensor")
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        tensors, scalars = [], []
        for p in params:
            if isinstance(p, Tensor):
                if not p.is_leaf:
                    raise ValueError("can't optimize a non-leaf tensor (use a leaf with "
                                     "requires_grad=True)")
                tensors.append(p)
            elif isinstance(getattr(p, "data", None), numbers.Real) and hasattr(p, "grad"):
                scalars.append(p)
            else:
                raise TypeError(f"optimizer params must be fastgrad Tensors or Values, "
                                f"got {type(p).__name__}")
        for name, value in hyper.items():
            if isinstance(value, tuple):
                if any(v < 0 for v in value):
                    raise ValueError(f"invalid {name}: {value}")
            elif value < 0:
                raise ValueError(f"invalid {name}: {value}")
        self.params = params
        self._tensors = tensors
        self._scalars = _ScalarBlock(scalars) if scalars else None
        self.defaults = hyper
        self.state: list[dict[str, Any]] = [dict() for _ in range(len(tensors) + (1 if scalars else 0))]

    def zero_grad(self) -> None:
        """Drop tensor gradients (None, as PyTorch's set_to_none) and zero scalar ones."""
        for p in self._tensors:
            p.grad = None
        if self._scalars is not None:
            for p in self._scalars.values:
                p.grad = 0.0

    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        params, grads, states = [], [], []
        for p, state in zip(self._tensors, self.state):
            g = p.grad
            if g is not None:
                params.append(p.data)
                grads.append(g)
                states.append(state)
        if self._scalars is not None:
            data, grad = self._scalars.arrays()
            params.append(data)
            grads.append(grad)
            states.append(self.state[-1])
        if params:
            for i in self._update_all(params, grads, states):
                self._update_numpy(states[i], params[i], grads[i])
        if self._scalars is not None:
            self._scalars.write(data)

    def _update_all(self, params, grads, states):  # pragma: no cover - abstract
        """Update every array params[i] in place with the compiled kernel, keeping per-parameter
        state in states[i]; return the indices the kernel could not take."""
        raise NotImplementedError

    def _update_numpy(self, state, param, grad):  # pragma: no cover - abstract
        """The same rule with numpy calls (non-contiguous or mixed-dtype arrays)."""
        raise NotImplementedError
