"""torch.optim.SGD's update rule, run by the compiled kernel (numpy for what it cannot take)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from fastgrad._tensor import Tensor  # noqa: F401  (the examples use it)
from fastgrad.optim import _kernels
from fastgrad.optim.optimizer import Optimizer

__all__ = ["SGD"]


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
