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
    """torch.optim.Adam: L2 weight decay added to the gradient (decoupled, as AdamW, with
    ``decoupled_weight_decay=True``); ``amsgrad`` divides by the running maximum of the second
    moment; ``maximize`` ascends.

    >>> w = Tensor([1.0, -2.0], requires_grad=True)
    >>> opt = Adam([w], lr=0.1)
    >>> for _ in range(3):
    ...     opt.zero_grad()
    ...     (w * w).sum().backward()
    ...     opt.step()
    >>> [round(v, 4) for v in w.tolist()]
    [0.7016, -1.7006]
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *, maximize: bool = False,
                 decoupled_weight_decay: bool = False) -> None:
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate (lr): {lr}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 0 (betas): {betas[0]}")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter at index 1 (betas): {betas[1]}")
        if not 0.0 <= weight_decay:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize,
                                      decoupled_weight_decay=decoupled_weight_decay))

    def _update_group(self, group, params, grads, states):
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        weight_decay, amsgrad = group["weight_decay"], group["amsgrad"]
        decoupled = group["decoupled_weight_decay"]
        if group["maximize"]:
            grads = [-g for g in grads]
        steps = []
        for state, param in zip(states, params):
            if not state:
                state["step"] = 0
                state["exp_avg"] = np.zeros_like(param)
                state["exp_avg_sq"] = np.zeros_like(param)
            if amsgrad and "max_exp_avg_sq" not in state:
                state["max_exp_avg_sq"] = np.zeros_like(param)
            state["step"] += 1
            steps.append(state["step"])
        todo = (range(len(params)) if amsgrad else   # the kernel has no running maximum
                _kernels.adam_step(params, grads, [st["exp_avg"] for st in states],
                                   [st["exp_avg_sq"] for st in states], steps, lr, beta1, beta2,
                                   eps, weight_decay, decoupled))
        for i in todo:
            _adam_numpy(states[i], params[i], grads[i], lr, beta1, beta2, eps, weight_decay,
                        decoupled, amsgrad)


def _adam_numpy(state, param, grad, lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad):
    """The same rule with numpy calls, in torch's order (arrays the kernel cannot take)."""
    t = state["step"]
    m, v = state["exp_avg"], state["exp_avg_sq"]
    if weight_decay:
        if decoupled:
            param *= 1.0 - lr * weight_decay
        else:
            grad = grad + weight_decay * param
    m += (1.0 - beta1) * (grad - m)            # torch: exp_avg.lerp_(grad, 1 - beta1)
    v *= beta2
    v += (1.0 - beta2) * (grad * grad)
    if amsgrad:
        v = np.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
    step_size = lr / (1.0 - beta1 ** t)
    denom = np.sqrt(v) / (1.0 - beta2 ** t) ** 0.5
    denom += eps
    param -= step_size * (m / denom)


class AdamW(Adam):
    """torch.optim.AdamW: decoupled weight decay (param *= 1 - lr*wd), default 1e-2.

    >>> w = Tensor([1.0, -2.0], requires_grad=True)
    >>> opt = AdamW([w], lr=0.1, weight_decay=0.5)
    >>> (w * w).sum().backward()
    >>> opt.step()
    >>> [round(v, 6) for v in w.tolist()]
    [0.85, -1.8]
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize, decoupled_weight_decay=True)
