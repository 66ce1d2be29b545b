"""torch.optim.Adam's and AdamW's update rules, run by the compiled kernel (numpy for what it
cannot take)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from fastgrad._tensor import Tensor  # noqa: F401  (the examples use it)
from fastgrad.optim import _kernels
from fastgrad.optim.optimizer import Optimizer

__all__ = ["Adam", "AdamW"]


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
