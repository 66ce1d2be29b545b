"""``Module``, the one base class of micrograd-style and PyTorch-style models, and ``Parameter``.

PyTorch's semantics: ``module(x)`` runs ``forward(x)``; assigning a ``Parameter`` or a
``Module`` to an attribute registers it (in assignment order), ``register_buffer`` registers a
tensor that is saved but not trained; ``parameters()``, ``named_parameters()``, ``children()``,
``modules()``, ``state_dict()`` (keys as PyTorch names them: ``0.weight``, ``encoder.bias``),
``load_state_dict()``, ``train()``, ``eval()``, ``zero_grad()``.

micrograd's semantics: a subclass may skip ``super().__init__()`` (micrograd's never call it),
define ``__call__`` instead of ``forward``, and return a list of Values from ``parameters()``;
``zero_grad()`` then sets each Value's grad to 0 (a Tensor's to None, as PyTorch does).

Registered parameters and submodules are also ordinary instance attributes, so reading
``self.weight`` costs what reading any attribute costs.
"""

from __future__ import annotations

import itertools
from collections import namedtuple
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from fastgrad._tensor import Tensor
from fastgrad.engine import Value

__all__ = ["Module", "Parameter"]


class Parameter(Tensor):
    """A Tensor that a Module registers as trainable when assigned to one of its attributes
    (``torch.nn.Parameter``); ``requires_grad`` is True unless said otherwise.

    >>> p = Parameter(Tensor([1.0, 2.0]))
    >>> p.requires_grad, p.shape
    (True, (2,))
    """

    def __init__(self, data: Any = None, requires_grad: bool = True) -> None:
        if data is None:
            data = np.empty(0)
        elif isinstance(data, Tensor):
            data = data.data
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


# What load_state_dict returns (PyTorch's namedtuple of the same name and fields).
IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])

_REGISTRIES = ("_parameters", "_buffers", "_modules")


class Module:
    """Base class of every model and layer.

    PyTorch style:

    >>> import fastgrad
    >>> from fastgrad import nn
    >>> class Net(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.hidden = nn.Linear(2, 3)
    ...         self.out = nn.Linear(3, 1)
    ...     def forward(self, x):
    ...         return self.out(self.hidden(x).relu())
    >>> net = Net()
    >>> [name for name, _ in net.named_parameters()]
    ['hidden.weight', 'hidden.bias', 'out.weight', 'out.bias']
    >>> net(fastgrad.tensor([[1.0, 2.0]])).shape
    (1, 1)

    micrograd style (no ``super().__init__()``, ``parameters()`` returns a list):

    >>> class Affine(nn.Module):
    ...     def __init__(self):
    ...         self.a, self.b = fastgrad.Value(2.0), fastgrad.Value(1.0)
    ...     def __call__(self, x):
    ...         return self.a * x + self.b
    ...     def parameters(self):
    ...         return [self.a, self.b]
    >>> f = Affine()
    >>> f(3.0).backward()
    >>> f.a.grad
    3.0
    >>> f.zero_grad()
    >>> [p.grad == 0 for p in f.parameters()]
    [True, True]
    """

    training = True  # class default, so subclasses that skip __init__ have it too
    # name -> object registries (instance attributes, made on first use; see _registry)
    _parameters: dict[str, Any]
    _buffers: dict[str, Any]
    _modules: dict[str, Any]

    def __init__(self) -> None:
        for registry in _REGISTRIES:
            object.__setattr__(self, registry, {})
        object.__setattr__(self, "training", True)

    # -- registration ----------------------------------------------------------------------------

    def _registry(self, name: str) -> dict[str, Any]:
        """One of the name -> object registries, created on first use (micrograd's subclasses
        never call Module.__init__)."""
        registry = self.__dict__.get(name)
        if registry is None:
            registry = {}
            object.__setattr__(self, name, registry)
        return registry

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, Parameter):
            self._forget(name)
            self._registry("_parameters")[name] = value
        elif isinstance(value, Module):
            self._forget(name)
            self._registry("_modules")[name] = value
        elif name in self.__dict__.get("_parameters", ()):
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as parameter {name!r} "
                                "(a Parameter or None is expected)")
            self._parameters[name] = None
        elif name in self.__dict__.get("_buffers", ()):
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {type(value).__name__} as buffer {name!r} "
                                "(a Tensor or None is expected)")
            self._buffers[name] = value
        elif name in self.__dict__.get("_modules", ()):
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as child module {name!r} "
                                "(a Module or None is expected)")
            self._modules[name] = None
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self._forget(name)
        object.__delattr__(self, name)

    def _forget(self, name: str) -> None:
        for registry in _REGISTRIES:
            self.__dict__.get(registry, {}).pop(name, None)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Add a parameter (or a None placeholder, as a missing bias) under ``name``."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign {type(param).__name__} as parameter {name!r} "
                            "(a Parameter or None is expected)")
        self._forget(name)
        self._registry("_parameters")[name] = param
        object.__setattr__(self, name, param)

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Add a tensor that is part of the state (state_dict) but not trained."""
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign {type(tensor).__name__} as buffer {name!r} "
                            "(a Tensor or None is expected)")
        self._forget(name)
        self._registry("_buffers")[name] = tensor
        if not persistent:
            self.__dict__.setdefault("_non_persistent_buffers", set()).add(name)
        object.__setattr__(self, name, tensor)

    def add_module(self, name: str, module: Module | None) -> None:
        """Add a submodule under ``name`` (what ``self.name = module`` does)."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        self._forget(name)
        self._registry("_modules")[name] = module
        object.__setattr__(self, name, module)

    # -- running ---------------------------------------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """``module(x)`` runs ``forward(x)``."""
        return self.forward(*args, **kwargs)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The computation; subclasses define it."""
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required '
                                  '"forward" function')

    # -- walking ---------------------------------------------------------------------------------

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """(name, submodule) pairs of the direct submodules, in registration order."""
        for name, module in self.__dict__.get("_modules", {}).items():
            if module is not None:
                yield name, module

    def children(self) -> Iterator[Module]:
        """The direct submodules."""
        for _, module in self.named_children():
            yield module

    def named_modules(self, memo: set[int] | None = None,
                      prefix: str = "") -> Iterator[tuple[str, Module]]:
        """(dotted name, module) for this module ('') and every submodule below it, once each."""
        memo = set() if memo is None else memo
        if id(self) in memo:
            return
        memo.add(id(self))
        yield prefix, self
        for name, module in self.named_children():
            yield from module.named_modules(memo, f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        """This module and every submodule below it."""
        for _, module in self.named_modules():
            yield module

    def named_parameters(self, prefix: str = "",
                         recurse: bool = True) -> Iterator[tuple[str, Any]]:
        """(dotted name, parameter) pairs: this module's own parameters in registration order,
        then each submodule's (through its own ``named_parameters``); a parameter shared by two
        modules comes once."""
        dot = prefix + "." if prefix else ""
        pairs: Iterator[tuple[str, Any]] = (
            (dot + name, p) for name, p in self.__dict__.get("_parameters", {}).items())
        if recurse:
            pairs = itertools.chain(pairs, *(child.named_parameters(dot + name)
                                             for name, child in self.named_children()))
        seen: set[int] = set()
        for name, p in pairs:
            if p is not None and id(p) not in seen:
                seen.add(id(p))
                yield name, p

    def parameters(self, recurse: bool = True) -> Iterator[Any]:
        """The parameters to train, for an optimizer (an iterator, as in PyTorch)."""
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        """(dotted name, buffer) pairs, module by module."""
        for module_prefix, module in self.named_modules(prefix=prefix):
            for name, b in module.__dict__.get("_buffers", {}).items():
                if b is not None:
                    yield (f"{module_prefix}.{name}" if module_prefix else name), b

    def buffers(self) -> Iterator[Tensor]:
        """The buffers of this module and its submodules."""
        for _, b in self.named_buffers():
            yield b

    # -- training --------------------------------------------------------------------------------

    def zero_grad(self) -> None:
        """Reset every parameter's gradient: None for a Tensor (PyTorch's set_to_none), 0 for
        a Value (micrograd's ``p.grad = 0``)."""
        for p in self.parameters():
            if type(p) is Value:  # checked first: cheap, and what micrograd's models hold
                p.grad = 0
            else:
                p.grad = None if isinstance(p, Tensor) else 0

    def train(self, mode: bool = True) -> Module:
        """Set ``training`` on this module and every submodule; returns the module."""
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Module:
        """``train(False)``."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Switch gradient recording of every Tensor parameter on or off; returns the module."""
        for p in self.parameters():
            if isinstance(p, Tensor):
                p.requires_grad = requires_grad
        return self

    # -- saving ----------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Parameter and persistent buffer name -> a copy of its value: a numpy array for a
        Tensor (save with ``np.savez(path, **sd)``), a float for a Value."""
        state: dict[str, Any] = {}
        for name, p in self.named_parameters():
            state[name] = np.array(p.data, copy=True) if isinstance(p, Tensor) else p.data
        for module_prefix, module in self.named_modules():
            skip = module.__dict__.get("_non_persistent_buffers", ())
            for name, b in module.__dict__.get("_buffers", {}).items():
                if b is not None and name not in skip:
                    key = f"{module_prefix}.{name}" if module_prefix else name
                    state[key] = np.array(b.data, copy=True)
        return state

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> Any:
        """Copy values (arrays or Tensors, e.g. ``dict(np.load(path))``) into the parameters and
        buffers, in place. With ``strict``, missing or unexpected keys raise RuntimeError;
        returns ``(missing_keys, unexpected_keys)``."""
        own = self.state_dict()
        targets = dict(self.named_parameters())
        for module_prefix, module in self.named_modules():
            for name, b in module.__dict__.get("_buffers", {}).items():
                key = f"{module_prefix}.{name}" if module_prefix else name
                if key in own:
                    targets[key] = b
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise RuntimeError(
                f"Error(s) in loading state_dict for {type(self).__name__}: missing keys "
                f"{missing}, unexpected keys {unexpected}")
        for name, target in targets.items():
            if name not in state_dict:
                continue
            value = np.asarray(state_dict[name])
            if not isinstance(target, Tensor):  # a Value
                target.data = float(value)
                continue
            if value.shape != target.shape:
                raise RuntimeError(f"size mismatch for {name}: copying a param with shape "
                                   f"{value.shape} from checkpoint, the shape in current model "
                                   f"is {target.shape}")
            np.copyto(target.data, value, casting="same_kind")
        return IncompatibleKeys(missing, unexpected)

    # -- showing ---------------------------------------------------------------------------------

    def extra_repr(self) -> str:
        """The text inside this module's parentheses in its repr (layers override it)."""
        return ""

    def __repr__(self) -> str:
        lines = []
        for name, module in self.named_children():
            inner = repr(module).replace("\n", "\n  ")
            lines.append(f"({name}): {inner}")
        extra = self.extra_repr()
        if not lines:
            return f"{type(self).__name__}({extra})"
        body = "".join(f"\n  {line}" for line in ([extra] if extra else []) + lines)
        return f"{type(self).__name__}({body}\n)"
