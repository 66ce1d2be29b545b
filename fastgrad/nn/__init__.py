"""Neural-network building blocks (``torch.nn``'s home, and micrograd's ``nn``).

``Module`` is the one base class: PyTorch-style layers (``Linear``, ``Sequential``, ...) and
micrograd's ``Neuron``, ``Layer``, ``MLP`` are all Modules. ``fastgrad.nn.functional`` holds
the functions, ``fastgrad.nn.init`` the initialisations, ``fastgrad.nn.utils`` gradient
clipping. One module per concern: module.py
(Module, Parameter), container.py, linear.py, flatten.py, activation.py, normalization.py,
dropout.py, sparse.py (Embedding), conv.py, pooling.py, upsampling.py, loss.py, micrograd.py.
"""

from fastgrad.nn import functional, init, utils
from fastgrad.nn.activation import (ELU, GELU, Hardswish, LeakyReLU, LogSoftmax, Mish, ReLU,
                                    ReLU6, SiLU, Sigmoid, Softmax, Softplus, Tanh)
from fastgrad.nn.container import (ModuleDict, ModuleList, ParameterDict, ParameterList,
                                   Sequential)
from fastgrad.nn.conv import Conv1d, Conv2d, ConvTranspose2d
from fastgrad.nn.dropout import Dropout, Dropout2d
from fastgrad.nn.flatten import Flatten, Unflatten
from fastgrad.nn.linear import Identity, Linear
from fastgrad.nn.loss import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, L1Loss,
                              MSELoss, NLLLoss, SmoothL1Loss)
from fastgrad.nn.micrograd import MLP, Layer, Neuron
from fastgrad.nn.module import Module, Parameter
from fastgrad.nn.normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from fastgrad.nn.pooling import AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, MaxPool2d
from fastgrad.nn.sparse import Embedding
from fastgrad.nn.upsampling import Upsample

__all__ = [
    "Module", "Parameter",
    "Neuron", "Layer", "MLP",
    "Sequential", "ModuleList", "ModuleDict", "ParameterList", "ParameterDict",
    "Linear", "Identity", "Flatten", "Unflatten", "Embedding", "Dropout",
    "LayerNorm", "BatchNorm1d", "BatchNorm2d", "Dropout2d",
    "Conv1d", "Conv2d", "ConvTranspose2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d",
    "AdaptiveMaxPool2d", "Upsample",
    "ReLU", "ReLU6", "LeakyReLU", "ELU", "GELU", "SiLU", "Mish", "Softplus", "Hardswish",
    "Tanh", "Sigmoid", "Softmax", "LogSoftmax",
    "MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss", "CrossEntropyLoss", "NLLLoss",
    "BCELoss", "BCEWithLogitsLoss",
    "functional", "init", "utils",
]
