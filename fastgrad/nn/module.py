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

from collections import OrderedDict, namedtuple
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from fastgrad._device import check_device, device as device_type
from fastgrad._tensor import Tensor, no_grad
from fastgrad._tensor.dtype import default_numpy_dtype, to_dtype
from fastgrad.engine import Value

__all__ = ["Module", "Parameter"]


class Parameter(Tensor):
    """A Tensor that a Module registers as trainable when assigned to one of its attributes
    (``torch.nn.Parameter``); ``requires_grad`` is True unless said otherwise. It shares the
    memory of the Tensor (or array) it is made from; with no data it is an empty tensor of the
    default dtype.

    >>> import numpy as np
    >>> t = Tensor([1.0, 2.0])
    >>> p = Parameter(t)
    >>> p.requires_grad, p.shape, np.shares_memory(p.numpy(), t.numpy())
    (True, (2,), True)
    """

    def __init__(self, data: Any = None, requires_grad: bool = True) -> None:
        super().__init__(0.0)
        if data is None:
            data = np.empty(0, dtype=default_numpy_dtype())
        # assigning .data shares the memory of data (Tensor() would copy a list's values)
        self.data = data.data if isinstance(data, Tensor) else data
        # after the data: the core refuses requires_grad on an integer tensor, as PyTorch does
        self.requires_grad_(requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class _IncompatibleKeys(namedtuple("_IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """What load_state_dict returns: the keys it did not find, and the ones it did not use
    (printed as PyTorch prints it: ``_IncompatibleKeys(missing_keys=[], ...)``)."""

    def __repr__(self) -> str:
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()


# The name -> object registries, in registration order (see Module._registry).
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

    if TYPE_CHECKING:
        # registered parameters, buffers and submodules are attributes that mypy cannot see
        # (torch's stubs declare the same)
        def __getattr__(self, name: str) -> Any: ...

    training = True  # class default, so subclasses that skip __init__ have it too
    # name -> object registries, in registration order: instance attributes made on first use
    # (see _registry). Registered objects are also plain instance attributes, so reading one is
    # an ordinary attribute read; nothing here touches the instance __dict__ directly, which
    # would slow every attribute read on CPython >= 3.11.
    _parameters: dict[str, Any]
    _buffers: dict[str, Any]
    _modules: dict[str, Any]
    _non_persistent_buffers: set[str]

    def __init__(self) -> None:
        # only what is missing: a subclass may register things before calling this
        for name in _REGISTRIES + ("_non_persistent_buffers",):
            self._registry(name)
        object.__setattr__(self, "training", True)

    # -- registration ----------------------------------------------------------------------------

    def _registry(self, name: str) -> Any:
        """One of the registries, created on first use (micrograd's subclasses never call
        Module.__init__)."""
        registry = getattr(self, name, None)
        if registry is None:
            registry = set() if name == "_non_persistent_buffers" else {}
            object.__setattr__(self, name, registry)
        return registry

    def __setattr__(self, name: str, value: Any) -> None:
        # PyTorch's order of cases; a name already registered keeps its place
        params = getattr(self, "_parameters", None)
        modules = getattr(self, "_modules", None)
        if isinstance(value, Parameter):
            if params is None or name not in params:
                self._check_class_attribute(name)
                self._forget(name)
            self._registry("_parameters")[name] = value
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as parameter {name!r} "
                                "(a Parameter or None is expected)")
            params[name] = None
        elif isinstance(value, Module):
            if modules is None or name not in modules:
                self._forget(name)
            self._registry("_modules")[name] = value
        elif modules is not None and name in modules:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as child module {name!r} "
                                "(a Module or None is expected)")
            modules[name] = None
        else:
            buffers = getattr(self, "_buffers", None)
            if buffers is not None and name in buffers:
                if value is not None and not isinstance(value, Tensor):
                    raise TypeError(f"cannot assign {type(value).__name__} as buffer {name!r} "
                                    "(a Tensor or None is expected)")
                buffers[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self._forget(name)
        object.__delattr__(self, name)

    def _forget(self, name: str) -> None:
        """Unregister name from every registry."""
        for registry in _REGISTRIES:
            getattr(self, registry, {}).pop(name, None)
        getattr(self, "_non_persistent_buffers", set()).discard(name)

    def _check_class_attribute(self, name: str) -> None:
        """A Parameter cannot take the name of a property or method, as in PyTorch."""
        if hasattr(type(self), name):
            raise KeyError(f"attribute '{name}' already exists")

    def _check_new_name(self, name: Any, registry: str, what: str) -> None:
        """PyTorch's checks of a name given to register_parameter, register_buffer, add_module."""
        if not isinstance(name, str):
            raise TypeError(f"{what} name should be a string, got {type(name).__name__}")
        if not name:
            raise KeyError(f'{what} name can\'t be empty string ""')
        if "." in name:
            raise KeyError(f'{what} name can\'t contain "."')
        if hasattr(self, name) and name not in getattr(self, registry, ()):
            raise KeyError(f"attribute '{name}' already exists")

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Add a parameter (or a None placeholder, as a missing bias) under ``name``."""
        self._check_new_name(name, "_parameters", "parameter")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign {type(param).__name__} as parameter {name!r} "
                            "(a Parameter or None is expected)")
        self._registry("_parameters")[name] = param
        object.__setattr__(self, name, param)

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Add a tensor that is part of the state (state_dict, unless not ``persistent``) but
        is not trained."""
        self._check_new_name(name, "_buffers", "buffer")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign {type(tensor).__name__} as buffer {name!r} "
                            "(a Tensor or None is expected)")
        self._registry("_buffers")[name] = tensor
        if persistent:
            self._registry("_non_persistent_buffers").discard(name)
        else:
            self._registry("_non_persistent_buffers").add(name)
        object.__setattr__(self, name, tensor)

    def add_module(self, name: str, module: Module | None) -> None:
        """Add a submodule under ``name`` (what ``self.name = module`` does)."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        self._check_new_name(name, "_modules", "module")
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
        """(name, submodule) pairs of the direct submodules, in registration order, each
        module once."""
        memo: set[int] = set()
        for name, module in getattr(self, "_modules", {}).items():
            if module is not None and id(module) not in memo:
                memo.add(id(module))
                yield name, module

    def children(self) -> Iterator[Module]:
        """The direct submodules."""
        for _, module in self.named_children():
            yield module

    def _child_items(self) -> list[tuple[str, Module]]:
        """Every registered (name, submodule), a module registered twice twice; for a module
        that registers none, what its ``named_children()`` lists (micrograd's Layer and MLP
        keep their neurons and layers in lists)."""
        modules = getattr(self, "_modules", None)
        if modules:
            return [(name, m) for name, m in modules.items() if m is not None]
        return list(self.named_children())

    def named_modules(self, memo: set[int] | None = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Module]]:
        """(dotted name, module) for this module ('') and every submodule below it."""
        if remove_duplicate:
            memo = set() if memo is None else memo
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, module in self._child_items():
            yield from module.named_modules(memo, f"{prefix}.{name}" if prefix else name,
                                            remove_duplicate)

    def modules(self) -> Iterator[Module]:
        """This module and every submodule below it, each once."""
        for _, module in self.named_modules():
            yield module

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[tuple[str, Any]]:
        """(dotted name, parameter) pairs: this module's own parameters in registration order,
        then each submodule's (through its own ``named_parameters``); with
        ``remove_duplicate``, a parameter shared by two modules comes once. A micrograd-style
        module, which lists its parameters in its own ``parameters()`` and registers none,
        names them by position: "0", "1", ..."""
        if self._lists_its_own_parameters():
            pairs = _numbered(prefix, self.parameters())
        else:
            pairs = self._registered_parameters(prefix, recurse)
        yield from _unique(pairs) if remove_duplicate else pairs

    def parameters(self, recurse: bool = True) -> Iterator[Any]:
        """The parameters to train, for an optimizer (an iterator, as in PyTorch)."""
        # the registered ones: an override of parameters() may call this through super()
        for _, p in _unique(self._registered_parameters("", recurse)):
            yield p

    def _registered_parameters(self, prefix: str, recurse: bool) -> Iterator[tuple[str, Any]]:
        """This module's registered parameters, then each submodule's named_parameters."""
        dot = prefix + "." if prefix else ""
        for name, p in getattr(self, "_parameters", {}).items():
            if p is not None:
                yield dot + name, p
        if recurse:
            for name, child in self._child_items():
                yield from child.named_parameters(dot + name, remove_duplicate=False)

    def _lists_its_own_parameters(self) -> bool:
        """micrograd's way: parameters() overridden, nothing registered, no submodules."""
        return (type(self).parameters is not Module.parameters
                and not getattr(self, "_parameters", None) and not self._child_items())

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Tensor]]:
        """(dotted name, buffer) pairs, module by module."""
        memo: set[int] = set()
        modules = (self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate)
                   if recurse else iter([(prefix, self)]))
        for module_prefix, module in modules:
            for name, b in getattr(module, "_buffers", {}).items():
                if b is None or (remove_duplicate and id(b) in memo):
                    continue
                memo.add(id(b))
                yield (f"{module_prefix}.{name}" if module_prefix else name), b

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        """The buffers of this module (and its submodules)."""
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    # -- training --------------------------------------------------------------------------------

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset every parameter's gradient: None for a Tensor (zeroed in place without
        ``set_to_none``), 0 for a Value (micrograd's ``p.grad = 0``)."""
        for p in self.parameters():
            if type(p) is Value:  # checked first: cheap, and what micrograd's models hold
                p.grad = 0
            elif isinstance(p, Tensor):
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad = p.grad.detach()  # PyTorch cuts a gradient's graph before zeroing
                    p.grad.zero_()
            else:
                p.grad = 0

    def train(self, mode: bool = True) -> Module:
        """Set ``training`` on this module, and ``train(mode)`` on every submodule; returns the
        module."""
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        object.__setattr__(self, "training", mode)
        for module in self.children():
            module.train(mode)
        return self

    def eval(self) -> Module:
        """``train(False)``."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Switch gradient recording of every Tensor parameter on or off; returns the module."""
        for p in self.parameters():
            if isinstance(p, Tensor):
                p.requires_grad_(requires_grad)
        return self

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call ``fn`` on every submodule (children first) and then on this module, as
        PyTorch does (e.g. to initialise weights); returns the module.

        >>> from fastgrad import nn
        >>> seen = []
        >>> _ = nn.Sequential(nn.Linear(1, 1), nn.ReLU()).apply(lambda m: seen.append(type(m).__name__))
        >>> seen
        ['Linear', 'ReLU', 'Sequential']
        """
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    def get_submodule(self, target: str) -> Module:
        """The submodule at a dotted path ('' is this module); AttributeError if there is none."""
        module: Module = self
        for item in target.split(".") if target else []:
            child = getattr(module, "_modules", {}).get(item)
            if not isinstance(child, Module):
                raise AttributeError(f"{type(module).__name__} has no attribute `{item}`")
            module = child
        return module

    # -- dtype and device ------------------------------------------------------------------------

    def _apply(self, fn: Callable[[Tensor], Tensor]) -> Module:
        """Apply ``fn`` to every Tensor parameter (in place: the Parameter object and its place
        in optimizers stay, its ``.data`` changes), its gradient, and every buffer, in this
        module and below."""
        for module in self.modules():
            for p in getattr(module, "_parameters", {}).values():
                if not isinstance(p, Tensor):
                    continue
                with no_grad():
                    p.data = fn(p.data)
                    if p.grad is not None:
                        p.grad = fn(p.grad)
            buffers = getattr(module, "_buffers", {})
            for name, b in list(buffers.items()):
                if b is not None:
                    new = fn(b)
                    buffers[name] = new
                    object.__setattr__(module, name, new)
        return self

    def to(self, *args: Any, **kwargs: Any) -> Module:
        """Move to a device (only 'cpu' exists: anything else raises RuntimeError) and/or cast
        floating-point parameters and buffers to a floating dtype: ``to(dtype)``,
        ``to(device)``, ``to(device, dtype)``, ``to(tensor)``, ``to(device=..., dtype=...)``.
        Returns the module.

        >>> import fastgrad
        >>> from fastgrad import nn
        >>> nn.Linear(2, 1).to(fastgrad.float64).weight.dtype == fastgrad.float64
        True
        """
        dtype = _parse_to(args, kwargs)
        if dtype is None:
            return self
        if not dtype.is_floating_point:
            raise TypeError(f"nn.Module.to only accepts floating point or complex dtypes, but "
                            f"got desired dtype={dtype}")
        return self._apply(lambda t: t.to(dtype) if _is_floating(t) else t)

    def float(self) -> Module:
        """Cast floating-point parameters and buffers to float32."""
        return self._apply(lambda t: t.float() if _is_floating(t) else t)

    def double(self) -> Module:
        """Cast floating-point parameters and buffers to float64."""
        return self._apply(lambda t: t.double() if _is_floating(t) else t)

    def half(self) -> Module:
        """Cast floating-point parameters and buffers to float16."""
        return self._apply(lambda t: t.half() if _is_floating(t) else t)

    def cpu(self) -> Module:
        """Everything is on the CPU already: returns the module."""
        return self

    # -- saving ----------------------------------------------------------------------------------

    def _state_items(self, prefix: str = "") -> Iterator[tuple[str, Any]]:
        """(key, parameter or buffer) of the state, module by module as PyTorch orders it:
        each module's parameters, then its persistent buffers, then its submodules'. Shared
        parameters and modules appear under every name (as PyTorch's state_dict has them)."""
        dot = prefix + "." if prefix else ""
        yield from self.named_parameters(prefix, recurse=False, remove_duplicate=False)
        skip = getattr(self, "_non_persistent_buffers", ())
        for name, b in getattr(self, "_buffers", {}).items():
            if b is not None and name not in skip:
                yield dot + name, b
        for name, child in self._child_items():
            yield from child._state_items(dot + name)

    def state_dict(self, *, destination: Any = None, prefix: str = "",
                   keep_vars: bool = False) -> Any:
        """An OrderedDict of parameter and persistent buffer names (PyTorch's: ``0.weight``,
        ``bn.running_mean``) -> values: Tensors detached from the graph that share the
        parameters' memory (the parameters themselves with ``keep_vars``), floats for Values.
        Copy it (``copy.deepcopy``, or ``v.clone()`` per entry) to keep a snapshot.

        >>> from fastgrad import nn
        >>> list(nn.Sequential(nn.Linear(2, 1)).state_dict())
        ['0.weight', '0.bias']
        """
        if destination is None:
            destination = OrderedDict()
        for key, x in self._state_items(prefix[:-1] if prefix.endswith(".") else prefix):
            if isinstance(x, Tensor):
                destination[key] = x if keep_vars else x.detach()
            else:
                destination[key] = x.data  # a Value's number
        return destination

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True,
                        assign: bool = False) -> Any:
        """Copy values (Tensors or arrays, e.g. from ``fastgrad.load``) into the parameters and
        buffers, in place, as PyTorch does. With ``strict``, missing or unexpected keys raise
        RuntimeError; a shape mismatch always does. Returns the named tuple
        ``(missing_keys, unexpected_keys)``. ``assign`` is not supported (False only)."""
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict)}.")
        if assign:
            raise NotImplementedError("load_state_dict(assign=True) is not supported")
        targets = dict(self._state_items())
        missing = [k for k in targets if k not in state_dict]
        unexpected = [k for k in state_dict if k not in targets]
        errors = []
        if strict:  # PyTorch's order: missing, unexpected, then size mismatches
            if missing:
                errors.append("Missing key(s) in state_dict: "
                              + ", ".join(f'"{k}"' for k in missing) + ". ")
            if unexpected:
                errors.append("Unexpected key(s) in state_dict: "
                              + ", ".join(f'"{k}"' for k in unexpected) + ". ")
        copies: list[tuple[Any, Any]] = []
        for name, target in targets.items():
            if name not in state_dict:
                continue
            value = state_dict[name]
            if not isinstance(target, Tensor):  # a Value
                copies.append((target, float(value)))
                continue
            source = value if isinstance(value, Tensor) else Tensor(np.asarray(value))
            if tuple(source.shape) != tuple(target.shape):
                errors.append(f"size mismatch for {name}: copying a param with shape "
                              f"{tuple(source.shape)} from checkpoint, the shape in current "
                              f"model is {tuple(target.shape)}.")
                continue
            copies.append((target, source))
        if errors:  # nothing is copied when something is wrong
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t"
                               + "\n\t".join(errors))
        with no_grad():
            for target, source in copies:
                if isinstance(target, Tensor):
                    target.copy_(source)
                else:
                    target.data = source
        return _IncompatibleKeys(missing, unexpected)

    # -- showing ---------------------------------------------------------------------------------

    def extra_repr(self) -> str:
        """The text inside this module's parentheses in its repr (layers override it)."""
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        lines = extra.split("\n") if extra else []
        children = [(name, m) for name, m in getattr(self, "_modules", {}).items()]
        if not children:
            children = list(self.named_children())
        for name, module in children:
            lines.append(f"({name}): " + repr(module).replace("\n", "\n  "))
        if len(lines) == 1 and not children:
            return f"{type(self).__name__}({lines[0]})"
        body = "".join(f"\n  {line}" for line in lines)
        return f"{type(self).__name__}({body}\n)" if lines else f"{type(self).__name__}()"


def _unique(pairs: Iterator[tuple[str, Any]]) -> Iterator[tuple[str, Any]]:
    """The pairs whose object was not seen before (a shared parameter once)."""
    seen: set[int] = set()
    for name, p in pairs:
        if id(p) not in seen:
            seen.add(id(p))
            yield name, p


def _numbered(prefix: str, items: Any) -> Iterator[tuple[str, Any]]:
    """("prefix.0", item0), ("prefix.1", item1), ..."""
    dot = prefix + "." if prefix else ""
    for i, item in enumerate(items):
        yield f"{dot}{i}", item


def _is_floating(t: Tensor) -> bool:
    return np.dtype(t.dtype).kind == "f"


def _parse_to(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The dtype asked for by Module.to's arguments (None for none); checks the device."""
    kwargs = dict(kwargs)
    device = kwargs.pop("device", None)
    dtype = kwargs.pop("dtype", None)
    kwargs.pop("non_blocking", None)
    kwargs.pop("memory_format", None)
    if kwargs:
        raise TypeError(f"to() got an unexpected keyword argument '{next(iter(kwargs))}'")
    if len(args) > 2:
        raise TypeError(f"to() takes at most 2 positional arguments ({len(args)} given)")
    for arg in args:
        if isinstance(arg, Tensor):
            dtype = arg.dtype
        elif isinstance(arg, (str, int, device_type)):
            device = arg
        else:
            dtype = arg
    if device is not None:
        check_device(device)
    return None if dtype is None else to_dtype(dtype)
