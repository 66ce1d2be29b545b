"""Optimizers with PyTorch's update rules: SGD, Adam, AdamW.

They update ``Tensor`` parameters in place (numpy on ``.data`` and ``.grad``, nothing is
recorded) and also accept the scalar engine's ``Value`` parameters: those are gathered into one
array per step, updated by the same code, and written back, so both engines follow exactly the
same rule.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np

from fastgrad.tensor import Tensor

try:
    from fastgrad import _kernels
except ImportError as exc:  # pragma: no cover - only without a complete build
    raise ImportError(f"fastgrad's compiled optimizer kernels (fastgrad._kernels) are not built "
                      f"or cannot be loaded: {exc}. Build them with `pip install .` (or "
                      "`python setup.py build_ext --inplace` in a checkout).") from exc

__all__ = ["Optimizer", "SGD", "Adam", "AdamW"]


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


class SGD(Optimizer):
    """torch.optim.SGD (dampening 0): momentum buffer starts as the first gradient.

    >>> w = Tensor([1.0, -2.0], requires_grad=True)
    >>> opt = SGD([w], lr=0.1)
    >>> (w * w).sum().backward()
    >>> opt.step()
    >>> w.data.tolist()
    [0.8, -1.6]
    """

    def __init__(self, params: Iterable[Any], lr: float, momentum: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False) -> None:
        if nesterov and momentum <= 0:
            raise ValueError("nesterov momentum requires a positive momentum")
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self.nesterov = nesterov

    def _update_all(self, params, grads, states):
        firsts = []
        for state, param in zip(states, params):
            first = "momentum_buffer" not in state
            if first and self.momentum:
                state["momentum_buffer"] = np.empty_like(param)
            firsts.append(first)
            state["first"] = first
        bufs = [state.get("momentum_buffer") for state in states]
        return _kernels.sgd_step(params, grads, bufs, firsts, self.lr, self.momentum,
                                 self.weight_decay, self.nesterov)

    def _update_numpy(self, state, param, grad):
        if self.weight_decay:
            grad = grad + self.weight_decay * param
        if self.momentum:
            buf = state["momentum_buffer"]
            if state["first"]:
                buf[...] = grad
            else:
                buf *= self.momentum
                buf += grad
            grad = grad + self.momentum * buf if self.nesterov else buf
        param -= self.lr * grad


class Adam(Optimizer):
    """torch.optim.Adam (no amsgrad): L2 weight decay added to the gradient.

    >>> w = Tensor([1.0, -2.0], requires_grad=True)
    >>> opt = Adam([w], lr=0.1)
    >>> for _ in range(3):
    ...     opt.zero_grad()
    ...     (w * w).sum().backward()
    ...     opt.step()
    >>> np.round(w.data, 4).tolist()
    [0.7016, -1.7006]
    """

    _decoupled = False

    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        if not 0.0 <= betas[0] < 1.0 or not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"invalid betas: {betas}")
        super().__init__(params, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
        self.lr, self.betas, self.eps, self.weight_decay = lr, tuple(betas), eps, weight_decay

    def _update_all(self, params, grads, states):
        steps = []
        for state, param in zip(states, params):
            if not state:
                state["step"] = 0
                state["exp_avg"] = np.zeros_like(param)
                state["exp_avg_sq"] = np.zeros_like(param)
            state["step"] += 1
            steps.append(state["step"])
        return _kernels.adam_step(params, grads, [st["exp_avg"] for st in states],
                                  [st["exp_avg_sq"] for st in states], steps, self.lr,
                                  self.betas[0], self.betas[1], self.eps, self.weight_decay,
                                  self._decoupled)

    def _update_numpy(self, state, param, grad):
        beta1, beta2 = self.betas
        t = state["step"]
        m, v = state["exp_avg"], state["exp_avg_sq"]
        if self.weight_decay:
            if self._decoupled:
                param *= 1.0 - self.lr * self.weight_decay
            else:
                grad = grad + self.weight_decay * param
        m += (1.0 - beta1) * (grad - m)            # torch: exp_avg.lerp_(grad, 1 - beta1)
        v *= beta2
        v += (1.0 - beta2) * (grad * grad)
        step_size = self.lr / (1.0 - beta1 ** t)
        denom = np.sqrt(v) / (1.0 - beta2 ** t) ** 0.5
        denom += self.eps
        param -= step_size * (m / denom)


class AdamW(Adam):
    """torch.optim.AdamW: decoupled weight decay (param *= 1 - lr*wd), default 1e-2.

    >>> w = Tensor([1.0, -2.0], requires_grad=True)
    >>> opt = AdamW([w], lr=0.1, weight_decay=0.5)
    >>> (w * w).sum().backward()
    >>> opt.step()
    >>> np.round(w.data, 6).tolist()
    [0.85, -1.8]
    """

    _decoupled = True

    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
