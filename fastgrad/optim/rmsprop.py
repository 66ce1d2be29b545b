"""torch.optim.RMSprop's update rule (numpy, one pass per parameter)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from fastgrad._tensor import Tensor  # noqa: F401  (the examples use it)
from fastgrad.optim.optimizer import Optimizer

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    """torch.optim.RMSprop: divide the gradient by the root of a running mean of its square
    (minus the square of its running mean if ``centered``), plus eps; optionally with momentum.

    >>> w = Tensor([1.0, -2.0], requires_grad=True)
    >>> opt = RMSprop([w], lr=0.01)
    >>> (w * w).sum().backward()
    >>> opt.step()
    >>> [round(v, 4) for v in w.tolist()]
    [0.9, -1.9]
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0,
                 centered: bool = False, maximize: bool = False) -> None:
        for name, value in (("learning rate (lr)", lr), ("epsilon", eps), ("momentum", momentum),
                            ("weight_decay", weight_decay), ("alpha", alpha)):
            if not 0.0 <= value:
                raise ValueError(f"Invalid {name} value: {value}")
        super().__init__(params, dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps,
                                      centered=centered, weight_decay=weight_decay,
                                      maximize=maximize))

    def _update_group(self, group, params, grads, states):
        lr, alpha, eps = group["lr"], group["alpha"], group["eps"]
        momentum, centered = group["momentum"], group["centered"]
        weight_decay = group["weight_decay"]
        for param, grad, state in zip(params, grads, states):
            if not state:
                state["step"] = 0
                state["square_avg"] = np.zeros_like(param)
                if momentum > 0:
                    state["momentum_buffer"] = np.zeros_like(param)
                if centered:
                    state["grad_avg"] = np.zeros_like(param)
            state["step"] += 1
            if group["maximize"]:
                grad = -grad
            if weight_decay:
                grad = grad + weight_decay * param
            square_avg = state["square_avg"]
            square_avg *= alpha
            square_avg += (1.0 - alpha) * grad * grad     # torch: addcmul_, in its order
            if centered:
                grad_avg = state["grad_avg"]
                _lerp_(grad_avg, grad, 1.0 - alpha)
                avg = np.sqrt(square_avg - grad_avg * grad_avg)
            else:
                avg = np.sqrt(square_avg)
            avg += eps
            if momentum > 0:
                buf = state["momentum_buffer"]
                buf *= momentum
                buf += grad / avg
                param -= lr * buf
            else:
                param -= lr * (grad / avg)


def _lerp_(start, end, weight):
    """start += weight * (end - start) in place, computed as torch.lerp_ computes it (from the
    nearer end), so that the rounding follows PyTorch's."""
    if abs(weight) < 0.5:
        start += weight * (end - start)
    else:
        start[...] = end - (end - start) * (1.0 - weight)
