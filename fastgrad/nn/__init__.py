"""Neural-network building blocks (``torch.nn``'s home, and micrograd's ``nn``).

``Module`` is the one base class: PyTorch-style layers (``Linear``, ``Sequential``, ...) and
micrograd's ``Neuron``, ``Layer``, ``MLP`` are all Modules. ``fastgrad.nn.functional`` holds
the functions, ``fastgrad.nn.utils`` gradient clipping. One module per concern: module.py
(Module, Parameter), container.py, linear.py, flatten.py, activation.py, normalization.py,
dropout.py, sparse.py (Embedding), loss.py, micrograd.py.
"""

from fastgrad.nn import functional, utils
from fastgrad.nn.activation import (ELU, GELU, Hardswish, LeakyReLU, LogSoftmax, Mish, ReLU,
                                    ReLU6, SiLU, Sigmoid, Softmax, Softplus, Tanh)
from fastgrad.nn.container import (ModuleDict, ModuleList, ParameterDict, ParameterList,
                                   Sequential)
from fastgrad.nn.dropout import Dropout
from fastgrad.nn.flatten import Flatten, Unflatten
from fastgrad.nn.linear import Identity, Linear
from fastgrad.nn.loss import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, L1Loss,
                              MSELoss, NLLLoss, SmoothL1Loss)
from fastgrad.nn.micrograd import MLP, Layer, Neuron
from fastgrad.nn.module import Module, Parameter
from fastgrad.nn.normalization import BatchNorm1d, LayerNorm
from fastgrad.nn.sparse import Embedding

__all__ = [
    "Module", "Parameter",
    "Neuron", "Layer", "MLP",
    "Sequential", "ModuleList", "ModuleDict", "ParameterList", "ParameterDict",
    "Linear", "Identity", "Flatten", "Unflatten", "Embedding", "Dropout",
    "LayerNorm", "BatchNorm1d",
    "ReLU", "ReLU6", "LeakyReLU", "ELU", "GELU", "SiLU", "Mish", "Softplus", "Hardswish",
    "Tanh", "Sigmoid", "Softmax", "LogSoftmax",
    "MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss", "CrossEntropyLoss", "NLLLoss",
    "BCELoss", "BCEWithLogitsLoss",
    "functional", "utils",
]
