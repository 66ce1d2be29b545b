"""Optimizers with PyTorch's names and update rules (``torch.optim``).

They update ``Tensor`` parameters in place and also take the scalar engine's ``Value``s.
"""

from fastgrad.optim.adam import Adam, AdamW
from fastgrad.optim.optimizer import Optimizer
from fastgrad.optim.sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW"]
