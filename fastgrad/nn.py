"""micrograd's import path: ``from fastgrad.nn import Module, Neuron, Layer, MLP``.

Same constructors, parameter order, repr and random.uniform(-1, 1) call sequence as micrograd,
so a script seeded with random.seed(...) gets the same parameters and the same losses. The only
change is inside the forward passes: a Neuron is one call into the core instead of 2n operator
calls, and a Layer of plain Neurons is one call for all of them.
"""

import random

from fastgrad.engine import Value, linear_combination, linear_layer

__all__ = ["Module", "Neuron", "Layer", "MLP"]


class Module:

    def zero_grad(self):
        for p in self.parameters():
            p.grad = 0

    def parameters(self):
        return []


class Neuron(Module):

    def __init__(self, nin, nonlin=True):
        self.w = [Value(random.uniform(-1, 1)) for _ in range(nin)]
        self.b = Value(0)
        self.nonlin = nonlin

    def __call__(self, x):
        # micrograd: sum((wi*xi for wi, xi in zip(self.w, x)), self.b), then relu if nonlin
        return linear_combination(self.w, x, self.b, self.nonlin)

    def parameters(self):
        return self.w + [self.b]

    def __repr__(self):
        return f"{'ReLU' if self.nonlin else 'Linear'}Neuron({len(self.w)})"


class Layer(Module):

    def __init__(self, nin, nout, **kwargs):
        self.neurons = [Neuron(nin, **kwargs) for _ in range(nout)]

    def __call__(self, x):
        # micrograd: [n(x) for n in self.neurons], built in one core call when every neuron is
        # a plain Neuron (a subclass keeps its own __call__)
        out = linear_layer(self.neurons, x, Neuron)
        if out is NotImplemented:
            out = [n(x) for n in self.neurons]
        return out[0] if len(out) == 1 else out

    def parameters(self):
        return [p for n in self.neurons for p in n.parameters()]

    def __repr__(self):
        return f"Layer of [{', '.join(str(n) for n in self.neurons)}]"


class MLP(Module):

    def __init__(self, nin, nouts):
        sz = [nin] + nouts
        self.layers = [Layer(sz[i], sz[i + 1], nonlin=i != len(nouts) - 1) for i in range(len(nouts))]

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def parameters(self):
        return [p for layer in self.layers for p in layer.parameters()]

    def __repr__(self):
        return f"MLP of [{', '.join(str(layer) for layer in self.layers)}]"


# Tensor layers (fastgrad.tensor_nn), importable from here like torch.nn. Imported at the end
# because their base extends the scalar Module above. `Module` and `MLP` here stay micrograd's;
# the tensor versions are `TensorModule` (subclass it for custom tensor models) and `TensorMLP`.
from fastgrad.tensor_nn import Linear, ReLU, Sequential, Sigmoid, Tanh, TensorMLP  # noqa: E402
from fastgrad.tensor_nn import Module as TensorModule  # noqa: E402

__all__ += ["TensorModule", "Linear", "Sequential", "ReLU", "Tanh", "Sigmoid", "TensorMLP"]
