"""Tensor layers with PyTorch's names: Linear, containers (Sequential, ModuleList) and
activation modules (ReLU, Tanh, Sigmoid)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from fastgrad._tensor import Tensor, linear
from fastgrad.nn.module import Module, Parameter

__all__ = ["Linear", "Sequential", "ModuleList", "ReLU", "Tanh", "Sigmoid"]


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
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        bound = 1.0 / math.sqrt(in_features) if in_features > 0 else 0.0
        weight = np.random.uniform(-bound, bound, (out_features, in_features))
        self.weight = Parameter(Tensor(weight, dtype=dtype))
        if bias:
            self.bias = Parameter(Tensor(np.random.uniform(-bound, bound, (out_features,)),
                                         dtype=dtype))
        else:
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        """``x @ weight.T + bias`` as one tape node."""
        return linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class _Container(Module):
    """Indexing (a slice gives a container of the same kind), length, iteration, append and
    extend over the registered submodules, in order."""

    def __getitem__(self, index: int | slice) -> Any:
        items = list(self._modules.items())
        if not isinstance(index, slice):
            return items[index][1]
        part = type(self).__new__(type(self))
        Module.__init__(part)
        for name, module in items[index]:
            part.add_module(self._name_in_slice(name, len(part)), module)
        return part

    def _name_in_slice(self, name: str, position: int) -> str:
        return name  # Sequential keeps its modules' names in a slice, as PyTorch does

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def append(self, module: Module) -> Any:
        """Add a module at the end; returns the container."""
        self.add_module(str(len(self._modules)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> Any:
        """Add modules at the end; returns the container."""
        for m in modules:
            self.append(m)
        return self


class Sequential(_Container):
    """Applies its modules in order; state_dict names are "0.weight", "0.bias", ...

    >>> model = Sequential(Linear(2, 4), ReLU(), Linear(4, 1))
    >>> sorted(model.state_dict())
    ['0.bias', '0.weight', '2.bias', '2.weight']
    >>> model(Tensor(np.zeros((5, 2)))).shape
    (5, 1)
    """

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        self.extend(modules)

    def forward(self, x: Any) -> Any:
        """Each module applied to the previous one's output."""
        for m in self._modules.values():
            x = m(x)
        return x


class ModuleList(_Container):
    """A list of modules whose parameters the owner finds (a plain list hides them, as in
    PyTorch); state_dict names are "name.0.weight", ...

    >>> heads = ModuleList([Linear(4, 1), Linear(4, 2)])
    >>> len(heads), sorted(heads.state_dict())
    (2, ['0.bias', '0.weight', '1.bias', '1.weight'])
    """

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _name_in_slice(self, name: str, position: int) -> str:
        return str(position)  # a ModuleList's slice is numbered from 0, as PyTorch does


class ReLU(Module):
    """``x.relu()`` as a layer.

    >>> ReLU()(Tensor([-1.0, 2.0])).numpy().tolist()
    [0.0, 2.0]
    """

    def forward(self, x: Tensor) -> Tensor:
        """``x.relu()``."""
        return x.relu()


class Tanh(Module):
    """``x.tanh()`` as a layer.

    >>> Tanh()(Tensor([-0.0, 0.0])).numpy().tolist()
    [-0.0, 0.0]
    """

    def forward(self, x: Tensor) -> Tensor:
        """``x.tanh()``."""
        return x.tanh()


class Sigmoid(Module):
    """``x.sigmoid()`` as a layer.

    >>> Sigmoid()(Tensor([-0.0, 0.0])).numpy().tolist()
    [0.5, 0.5]
    """

    def forward(self, x: Tensor) -> Tensor:
        """``x.sigmoid()``."""
        return x.sigmoid()
