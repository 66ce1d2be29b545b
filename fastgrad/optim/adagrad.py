"""torch.optim.Adagrad's update rule (numpy, one pass per parameter)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from fastgrad._tensor import Tensor  # noqa: F401  (the examples use it)
from fastgrad.optim.optimizer import Optimizer, param_arrays

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    """torch.optim.Adagrad: divide the gradient by the root of the sum of its squares (plus
    eps); the lr decays as lr / (1 + (step - 1) * lr_decay). The state exists from
    construction (step 0, sum = initial_accumulator_value), as PyTorch's does.

    >>> w = Tensor([1.0, -2.0], requires_grad=True)
    >>> opt = Adagrad([w], lr=0.5)
    >>> (w * w).sum().backward()
    >>> opt.step()
    >>> [round(v, 4) for v in w.tolist()]
    [0.5, -1.5]
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10, *, maximize: bool = False) -> None:
        for name, value in (("learning rate (lr)", lr), ("lr_decay", lr_decay),
                            ("weight_decay", weight_decay),
                            ("initial_accumulator_value", initial_accumulator_value),
                            ("epsilon", eps)):
            if not 0.0 <= value:
                raise ValueError(f"Invalid {name} value: {value}")
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, eps=eps,
                                      weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      maximize=maximize))
        for group, block in zip(self.param_groups, self._blocks):
            for p in group["params"]:
                if isinstance(p, Tensor):
                    self._init_state(self.state[p], param_arrays(p)[0], group)
            if block is not None:
                self._init_state(block.state, block.arrays()[0], group)

    @staticmethod
    def _init_state(state, param, group):
        state["step"] = 0
        state["sum"] = np.full_like(param, group["initial_accumulator_value"])

    def _update_group(self, group, params, grads, states):
        lr, lr_decay, eps, weight_decay = (group["lr"], group["lr_decay"], group["eps"],
                                           group["weight_decay"])
        for param, grad, state in zip(params, grads, states):
            if not state:          # a group added after construction
                self._init_state(state, param, group)
            state["step"] += 1
            if group["maximize"]:
                grad = -grad
            if weight_decay:
                grad = grad + weight_decay * param
            clr = lr / (1 + (state["step"] - 1) * lr_decay)
            state["sum"] += grad * grad
            std = np.sqrt(state["sum"])
            std += eps
            param -= clr * (grad / std)
