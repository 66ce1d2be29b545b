"""Neural-network building blocks (``torch.nn``'s home, and micrograd's ``nn``).

``Module`` is the one base class: PyTorch-style layers (``Linear``, ``Sequential``, ...) and
micrograd's ``Neuron``, ``Layer``, ``MLP`` are all Modules. ``fastgrad.nn.functional`` holds
the functions, ``fastgrad.nn.utils`` gradient clipping.
"""

from fastgrad.nn import functional, utils
from fastgrad.nn.layers import Linear, ModuleList, ReLU, Sequential, Sigmoid, Tanh
from fastgrad.nn.micrograd import MLP, Layer, Neuron
from fastgrad.nn.module import Module, Parameter

__all__ = ["Module", "Parameter", "Neuron", "Layer", "MLP", "Linear", "Sequential", "ModuleList",
           "ReLU", "Tanh", "Sigmoid", "functional", "utils"]
