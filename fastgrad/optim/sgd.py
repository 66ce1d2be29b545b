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
    """torch.optim.SGD: the momentum buffer starts as the first gradient, later gradients enter
    it scaled by 1 - dampening; ``maximize`` ascends.

    >>> w = Tensor([1.0, -2.0], requires_grad=True)
    >>> opt = SGD([w], lr=0.1)
    >>> (w * w).sum().backward()
    >>> opt.step()
    >>> [round(v, 6) for v in w.tolist()]
    [0.8, -1.6]
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False, *,
                 maximize: bool = False) -> None:
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate (lr): {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("nesterov momentum requires a momentum and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize))

    def _update_group(self, group, params, grads, states):
        lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
        weight_decay, nesterov = group["weight_decay"], group["nesterov"]
        if group["maximize"]:
            grads = [-g for g in grads]
        if momentum:
            firsts, bufs = [], []
            for state, param in zip(states, params):
                buf = state.get("momentum_buffer")
                first = buf is None
                if first:
                    state["momentum_buffer"] = buf = np.empty_like(param)   # the kernel fills it
                firsts.append(first)
                bufs.append(buf)
        else:                       # plain SGD keeps no state
            firsts, bufs = [True] * len(params), [None] * len(params)
        # the kernel has no dampening (1 - dampening scales every later gradient)
        todo = (_kernels.sgd_step(params, grads, bufs, firsts, lr, momentum, weight_decay,
                                  nesterov)
                if dampening == 0 else range(len(params)))
        for i in todo:
            _sgd_numpy(params[i], grads[i], bufs[i], firsts[i], lr, momentum, dampening,
                       weight_decay, nesterov)


def _sgd_numpy(param, grad, buf, first, lr, momentum, dampening, weight_decay, nesterov):
    """The same rule with numpy calls, in torch's order (arrays the kernel cannot take)."""
    if weight_decay:
        grad = grad + weight_decay * param
    if momentum:
        if first:
            buf[...] = grad
        else:
            buf *= momentum
            buf += (1.0 - dampening) * grad
        grad = grad + momentum * buf if nesterov else buf
    param -= lr * grad
