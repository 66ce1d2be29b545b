"""micrograd's ``Neuron``, ``Layer`` and ``MLP`` (``from fastgrad.nn import Module, Neuron, Layer,
MLP``), on the one ``fastgrad.nn.Module``.

Same constructors, parameter order, repr and random.uniform(-1, 1) call sequence as micrograd,
so a script seeded with random.seed(...) gets the same parameters and the same losses. The only
change is inside the forward passes: a Neuron is one call into the core instead of 2n operator
calls, and a Layer of plain Neurons is one call for all of them.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from fastgrad.engine import Value, linear_combination, linear_layer
from fastgrad.nn.module import Module

__all__ = ["Neuron", "Layer", "MLP"]


class _MicrogradModule(Module):
    """micrograd's Module on fastgrad's: its parameters are Values, zeroed as micrograd does
    (no check of each parameter's type, which Module.zero_grad makes)."""

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            p.grad = 0


class Neuron(_MicrogradModule):
    """``relu(b + w0*x0 + w1*x1 + ...)`` (no relu with ``nonlin=False``); the weights are drawn
    from ``random.uniform(-1, 1)`` and the bias starts at 0, as in micrograd.

    >>> n = Neuron(2, nonlin=False)
    >>> n.w[0].data, n.w[1].data = 2.0, -1.0
    >>> n([1.0, 3.0])
    Value(data=-1.0, grad=0.0)
    """

    def __init__(self, nin: int, nonlin: bool = True) -> None:
        self.w = [Value(random.uniform(-1, 1)) for _ in range(nin)]
        self.b = Value(0)
        self.nonlin = nonlin

    def __call__(self, x: Sequence[Value | float]) -> Value:
        """The neuron's output Value for a sequence of inputs (numbers or Values)."""
        # micrograd: sum((wi*xi for wi, xi in zip(self.w, x)), self.b), then relu if nonlin
        return linear_combination(self.w, x, self.b, self.nonlin)

    def parameters(self) -> list[Value]:  # type: ignore[override]  # a list, as in micrograd
        """The weights, then the bias (a list, as in micrograd)."""
        return self.w + [self.b]

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True):
        """("w.0", w0), ("w.1", w1), ..., ("b", b), after ``prefix.``."""
        dot = prefix + "." if prefix else ""
        for i, w in enumerate(self.w):
            yield f"{dot}w.{i}", w
        yield dot + "b", self.b

    def __repr__(self):
        return f"{'ReLU' if self.nonlin else 'Linear'}Neuron({len(self.w)})"


# Neuron.__call__ as defined here: Layer's one-call fast path computes exactly this.
_NEURON_CALL = Neuron.__call__


class Layer(_MicrogradModule):
    """``nout`` Neurons of ``nin`` inputs each; keyword arguments go to every Neuron.

    >>> layer = Layer(3, 2)
    >>> layer
    Layer of [ReLUNeuron(3), ReLUNeuron(3)]
    >>> len(layer([1.0, 2.0, 3.0]))
    2
    """

    def __init__(self, nin: int, nout: int, **kwargs: Any) -> None:
        self.neurons = [Neuron(nin, **kwargs) for _ in range(nout)]

    def __call__(self, x: Sequence[Value | float]) -> Value | list[Value]:
        """The list of the neurons' outputs (the Value itself for a layer of one neuron)."""
        # micrograd: [n(x) for n in self.neurons], built in one core call when every neuron is
        # a plain Neuron whose __call__ is this module's (a subclass, or a script that replaced
        # Neuron.__call__, gets its own __call__ called)
        out: Any = NotImplemented
        if Neuron.__call__ is _NEURON_CALL:
            out = linear_layer(self.neurons, x, Neuron)
        if out is NotImplemented:
            out = [n(x) for n in self.neurons]
        return out[0] if len(out) == 1 else out

    def parameters(self) -> list[Value]:  # type: ignore[override]  # a list, as in micrograd
        """Every neuron's parameters, neuron by neuron (a list, as in micrograd)."""
        return [p for n in self.neurons for p in n.parameters()]

    def named_children(self):
        """The neurons, named "neurons.0", "neurons.1", ..."""
        for i, n in enumerate(self.neurons):
            yield f"neurons.{i}", n

    def __repr__(self):
        return f"Layer of [{', '.join(str(n) for n in self.neurons)}]"


class MLP(_MicrogradModule):
    """Layers of the given sizes, relu on all but the last: micrograd's multi-layer perceptron.

    >>> import random; random.seed(1337)
    >>> model = MLP(2, [16, 16, 1])
    >>> len(model.parameters())
    337
    >>> loss = (model([2.0, -1.0]) - 1.0) ** 2
    >>> loss.backward()
    >>> any(p.grad != 0 for p in model.parameters())
    True
    """

    def __init__(self, nin: int, nouts: list[int]) -> None:
        sz = [nin] + nouts
        self.layers = [Layer(sz[i], sz[i + 1], nonlin=i != len(nouts) - 1) for i in range(len(nouts))]

    def __call__(self, x: Any) -> Any:
        """The output of the last layer for a sequence of inputs."""
        for layer in self.layers:
            x = layer(x)
        return x

    def parameters(self) -> list[Value]:  # type: ignore[override]  # a list, as in micrograd
        """Every layer's parameters, layer by layer (a list, as in micrograd)."""
        return [p for layer in self.layers for p in layer.parameters()]

    def named_children(self):
        """The layers, named "layers.0", "layers.1", ..."""
        for i, layer in enumerate(self.layers):
            yield f"layers.{i}", layer

    def __repr__(self):
        return f"MLP of [{', '.join(str(layer) for layer in self.layers)}]"
