"""Tensor layers with PyTorch's names: Module, Linear, Sequential, ReLU, Tanh, Sigmoid, TensorMLP.

``Module`` extends the scalar engine's ``fastgrad.nn.Module`` (so ``isinstance(layer,
fastgrad.nn.Module)`` holds for both engines) and adds what tensor models need: parameters found
by walking attributes, ``state_dict``/``load_state_dict`` with PyTorch's dotted names, and
``train()``/``eval()``. ``fastgrad.nn`` re-exports these names; its scalar ``MLP`` stays
micrograd's, so the tensor one is called ``TensorMLP``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

import fastgrad.nn as _scalar_nn
from fastgrad._tensor import Tensor, linear

__all__ = ["Module", "Linear", "Sequential", "ReLU", "Tanh", "Sigmoid", "TensorMLP"]


class Module(_scalar_nn.Module):
    """Base of tensor layers (``fastgrad.nn.TensorModule``). Parameters are the attributes
    holding tensors that require grad; submodules are attributes holding Modules (or
    lists/tuples of them). Subclasses define ``forward``.

    >>> class Scale(Module):
    ...     def __init__(self, n):
    ...         self.scale = Tensor(np.ones(n), requires_grad=True)
    ...     def forward(self, x):
    ...         return x * self.scale
    >>> m = Scale(3)
    >>> [name for name, _ in m.named_parameters()]
    ['scale']
    >>> m(Tensor([1.0, 2.0, 3.0])).sum().item()
    6.0
    """

    training = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """``module(x)`` runs ``forward(x)``."""
        return self.forward(*args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - abstract
        """The computation; subclasses define it."""
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def named_children(self) -> Iterator[tuple[str, _scalar_nn.Module]]:
        """(name, submodule) pairs, in attribute order; list items are named "attr.i"."""
        for name, value in vars(self).items():
            if isinstance(value, _scalar_nn.Module):
                yield name, value
            elif isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    if isinstance(item, _scalar_nn.Module):
                        yield f"{name}.{i}", item

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Any]]:
        """(dotted name, tensor) pairs: own parameters first, then each submodule's."""
        for name, value in vars(self).items():
            if isinstance(value, Tensor) and value.requires_grad:
                yield prefix + name, value
        for name, child in self.named_children():
            if isinstance(child, Module):
                yield from child.named_parameters(prefix + name + ".")
            else:  # a scalar-engine module: its Values, numbered
                for i, p in enumerate(child.parameters()):
                    yield f"{prefix}{name}.{i}", p

    def parameters(self) -> list[Any]:
        """The parameters of named_parameters(), for an optimizer."""
        return [p for _, p in self.named_parameters()]

    def zero_grad(self) -> None:
        """Set every tensor parameter's grad to None (scalar Values' to 0.0)."""
        for p in self.parameters():
            p.grad = None if isinstance(p, Tensor) else 0.0

    def state_dict(self) -> dict[str, np.ndarray]:
        """Parameter name -> a copy of its numpy array (save with np.savez(path, **sd))."""
        return {name: np.array(p.data, copy=True) for name, p in self.named_parameters()}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Copy arrays (e.g. dict(np.load(path))) into the parameters, in place."""
        own = dict(self.named_parameters())
        missing = sorted(set(own) - set(state_dict))
        unexpected = sorted(set(state_dict) - set(own))
        if missing or unexpected:
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys "
                           f"{unexpected}")
        for name, p in own.items():
            value = np.asarray(state_dict[name])
            if not isinstance(p, Tensor):
                p.data = float(value)
                continue
            if value.shape != p.shape:
                raise ValueError(f"load_state_dict: {name} has shape {value.shape} in the state "
                                 f"dict but {p.shape} in the model")
            np.copyto(p.data, value, casting="same_kind")

    def train(self, mode: bool = True) -> Module:
        """Set ``training`` on this module and its submodules; returns the module."""
        self.training = bool(mode)
        for _, child in self.named_children():
            if isinstance(child, Module):
                child.train(mode)
        return self

    def eval(self) -> Module:
        """``train(False)``."""
        return self.train(False)


class Linear(Module):
    """y = x @ weight.T + bias; weight (out, in) and bias drawn from U(-1/sqrt(in), 1/sqrt(in))
    like PyTorch's default init (uses numpy's global RNG: seed it with np.random.seed).

    >>> lin = Linear(3, 2)
    >>> lin.weight.shape, lin.bias.shape
    ((2, 3), (2,))
    >>> lin(Tensor(np.ones((4, 3)))).shape
    (4, 2)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 dtype: Any = np.float64) -> None:
        self.in_features, self.out_features = int(in_features), int(out_features)
        bound = 1.0 / math.sqrt(in_features) if in_features > 0 else 0.0
        self.weight = Tensor(np.random.uniform(-bound, bound, (out_features, in_features)),
                             requires_grad=True, dtype=dtype)
        self.bias = (Tensor(np.random.uniform(-bound, bound, (out_features,)),
                            requires_grad=True, dtype=dtype) if bias else None)

    def forward(self, x: Tensor) -> Tensor:
        """``x @ weight.T + bias`` as one tape node."""
        return linear(x, self.weight, self.bias)

    def __repr__(self):
        return (f"Linear(in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None})")


class Sequential(Module):
    """Applies its modules in order; state_dict names are "0.weight", "0.bias", ...

    >>> model = Sequential(Linear(2, 4), ReLU(), Linear(4, 1))
    >>> sorted(model.state_dict())
    ['0.bias', '0.weight', '2.bias', '2.weight']
    >>> model(Tensor(np.zeros((5, 2)))).shape
    (5, 1)
    """

    def __init__(self, *modules: Any) -> None:
        for m in modules:
            if not callable(m):
                raise TypeError(f"Sequential: {type(m).__name__} is not callable")
        self.modules = list(modules)

    def named_children(self):
        for i, m in enumerate(self.modules):
            if isinstance(m, _scalar_nn.Module):
                yield str(i), m

    def forward(self, x: Any) -> Any:
        """Each module applied to the previous one's output."""
        for m in self.modules:
            x = m(x)
        return x

    def __getitem__(self, i):
        return self.modules[i]

    def __len__(self):
        return len(self.modules)

    def __iter__(self):
        return iter(self.modules)

    def __repr__(self):
        inner = "".join(f"\n  ({i}): {m!r}" for i, m in enumerate(self.modules))
        return f"Sequential({inner}\n)"


class ReLU(Module):
    """``x.relu()`` as a layer.

    >>> ReLU()(Tensor([-1.0, 2.0])).numpy().tolist()
    [0.0, 2.0]
    """

    def forward(self, x: Tensor) -> Tensor:
        """``x.relu()``."""
        return x.relu()

    def __repr__(self):
        return "ReLU()"


class Tanh(Module):
    """``x.tanh()`` as a layer.

    >>> Tanh()(Tensor([-0.0, 0.0])).numpy().tolist()
    [-0.0, 0.0]
    """

    def forward(self, x: Tensor) -> Tensor:
        """``x.tanh()``."""
        return x.tanh()

    def __repr__(self):
        return "Tanh()"


class Sigmoid(Module):
    """``x.sigmoid()`` as a layer.

    >>> Sigmoid()(Tensor([-0.0, 0.0])).numpy().tolist()
    [0.5, 0.5]
    """

    def forward(self, x: Tensor) -> Tensor:
        """``x.sigmoid()``."""
        return x.sigmoid()

    def __repr__(self):
        return "Sigmoid()"


_ACTIVATIONS = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid}


class TensorMLP(Sequential):
    """Linear layers of the given sizes with an activation between them (none after the last):
    TensorMLP(1, [128, 128, 1]) is Linear(1,128), ReLU, Linear(128,128), ReLU, Linear(128,1).

    >>> TensorMLP(1, [8, 1], activation="tanh")
    Sequential(
      (0): Linear(in_features=1, out_features=8, bias=True)
      (1): Tanh()
      (2): Linear(in_features=8, out_features=1, bias=True)
    )
    """

    def __init__(self, nin: int, nouts: list[int], activation: str = "relu",
                 dtype: Any = np.float64) -> None:
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, "
                             f"not {activation!r}")
        sizes = [nin] + list(nouts)
        layers: list[Module] = []
        for i in range(len(nouts)):
            layers.append(Linear(sizes[i], sizes[i + 1], dtype=dtype))
            if i != len(nouts) - 1:
                layers.append(_ACTIVATIONS[activation]())
        super().__init__(*layers)
