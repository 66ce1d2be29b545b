"""The optimizers' base class: parameter groups, per-parameter state, the step loop, and
``state_dict``/``load_state_dict`` (torch.optim.Optimizer's semantics and layout).

Optimizers update ``Tensor`` parameters in place (numpy on their arrays, nothing is recorded)
and also accept the scalar engine's ``Value`` parameters: a group's Values are gathered into
one array per step, updated by the same code, and written back, so both engines follow exactly
the same rule.
"""

from __future__ import annotations

import copy
import math
import numbers
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from fastgrad._tensor import Tensor

__all__ = ["Optimizer", "param_arrays"]


def param_arrays(p: Tensor) -> tuple[np.ndarray, np.ndarray | None]:
    """A Tensor parameter's value and gradient as numpy arrays (gradient None if it has none),
    to update in place: the one place the optimizers reach the arrays behind .data and .grad."""
    g = p.grad
    return p.numpy(), (None if g is None else g.numpy())


def _is_value(p: Any) -> bool:
    """A scalar-engine Value (either engine's, or a micrograd-style subclass)."""
    return isinstance(getattr(p, "data", None), numbers.Real) and hasattr(p, "grad")


class _ScalarBlock:
    """A group's scalar (Value) parameters, updated as one float64 vector; `state` is their
    optimizer state, each array entry holding one element per Value."""

    def __init__(self, values: list[Any]) -> None:
        self.values = values
        self.state: dict[str, Any] = {}

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        data = np.array([p.data for p in self.values], dtype=np.float64)
        grad = np.array([p.grad for p in self.values], dtype=np.float64)
        return data, grad

    def write(self, data: np.ndarray) -> None:
        for p, x in zip(self.values, data.tolist()):
            p.data = x

    def split_state(self) -> list[dict[str, Any]]:
        """One state dict per Value (what state_dict saves for each)."""
        if not self.state:
            return [{} for _ in self.values]
        return [{k: (np.array(v[i]) if isinstance(v, np.ndarray) else v)
                 for k, v in self.state.items()} for i in range(len(self.values))]

    def join_state(self, states: list[dict[str, Any]]) -> None:
        """The inverse of split_state: per-Value dicts (all with the same keys) to block state."""
        if not any(states):
            self.state = {}
            return
        keys = set(states[0])
        if any(set(s) != keys for s in states):
            raise ValueError("loaded state dict has different state entries for the scalar "
                             "(Value) parameters of one group")
        self.state = {}
        for k in keys:
            first = states[0][k]
            if isinstance(first, np.ndarray):
                self.state[k] = np.array([np.asarray(s[k], np.float64) for s in states])
            elif any(s[k] != first for s in states):
                raise ValueError(f"loaded state dict has different {k!r} for the scalar (Value) "
                                 "parameters of one group")
            else:
                self.state[k] = first


class Optimizer:
    """Base class (torch.optim.Optimizer): ``param_groups`` is a list of dicts, each with its
    ``'params'`` and its hyperparameters (``defaults`` fill the keys a group leaves out);
    editing ``group['lr']`` takes effect at the next ``step()``. ``state[p]`` is parameter p's
    state (a dict of numpy arrays and step counts). Subclasses define ``_update_group``.

    Every optimizer also takes the scalar engine's Values:

    >>> from fastgrad import Value
    >>> x = Value(3.0)
    >>> from fastgrad.optim import SGD
    >>> opt = SGD([x], lr=0.25)
    >>> (x * x).backward()
    >>> opt.step()
    >>> x.data
    1.5
    """

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]) -> None:
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of "
                            "Tensors (or Values) or dicts, but got Tensor")
        self.defaults = defaults
        self.state: defaultdict[Any, dict[str, Any]] = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []
        self._blocks: list[_ScalarBlock | None] = []    # each group's Values, or None
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters, with its own hyperparameters (defaults fill the rest)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        params = param_group["params"]
        if isinstance(params, (Tensor, set)) or _is_value(params):
            if isinstance(params, set):
                raise TypeError("optimizer parameters need to be organized in ordered "
                                "collections, but the ordering of tensors in sets will change "
                                "between runs. Please use a list instead.")
            params = [params]
        group = param_group      # PyTorch keeps the caller's dict: editing it edits the group
        group["params"] = list(params)
        values = []
        for p in group["params"]:
            if isinstance(p, Tensor):
                if not p.is_leaf:
                    raise ValueError("can't optimize a non-leaf Tensor (use a leaf with "
                                     "requires_grad=True)")
            elif _is_value(p):
                values.append(p)
            else:
                raise TypeError(f"optimizer can only optimize Tensors (or Values), but one of "
                                f"the params is {type(p).__name__}")
        for name, default in self.defaults.items():
            group.setdefault(name, default)
        if len({id(p) for p in group["params"]}) != len(group["params"]):
            warnings.warn("optimizer contains a parameter group with duplicate parameters; "
                          "in future, this will cause an error", UserWarning, stacklevel=3)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in group["params"]):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(group)
        self._blocks.append(_ScalarBlock(values) if values else None)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop tensor gradients (None; zeros in place if not set_to_none) and zero scalar
        ones (a Value's grad is always a number)."""
        for group, block in zip(self.param_groups, self._blocks):
            if set_to_none and block is None:       # all Tensors: the common case, kept short
                for p in group["params"]:
                    p.grad = None
                continue
            for p in group["params"]:
                if isinstance(p, Tensor):
                    if set_to_none:
                        p.grad = None
                    else:
                        grad = param_arrays(p)[1]
                        if grad is not None:
                            grad[...] = 0
            if block is not None:
                for v in block.values:
                    v.grad = 0.0

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter that has a gradient; returns closure() if given (it
        is called first, to recompute the loss and gradients)."""
        loss = closure() if closure is not None else None
        for group, block in zip(self.param_groups, self._blocks):
            params, grads, states = [], [], []
            state_of = self.state
            for p in group["params"]:
                if block is None or isinstance(p, Tensor):    # no Values: all Tensors
                    data, grad = param_arrays(p)
                    if grad is not None:
                        p._bump_version()   # an in-place update, as PyTorch's step counts it
                        params.append(data)
                        grads.append(grad)
                        states.append(state_of[p])
            if block is not None:
                data, grad = block.arrays()
                params.append(data)
                grads.append(grad)
                states.append(block.state)
            if params:
                self._update_group(group, params, grads, states)
            if block is not None:
                block.write(data)
        return loss

    def _update_group(self, group: dict[str, Any], params: list[np.ndarray],
                      grads: list[np.ndarray], states: list[dict[str, Any]]
                      ) -> None:  # pragma: no cover - abstract
        """Update each array params[i] in place with grads[i], keeping its state in states[i],
        with the hyperparameters of group."""
        raise NotImplementedError

    # -- saving and loading --------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """``{'state': {index: {...}}, 'param_groups': [{..., 'params': [indices]}]}`` as
        PyTorch lays it out: parameters are numbered in group order. Arrays are copies (PyTorch
        returns its live tensors), so the snapshot does not move on with training."""
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = [index.setdefault(id(p), len(index)) for p in group["params"]]
            groups.append(packed)
        state: dict[int, dict[str, Any]] = {}
        for group, block in zip(self.param_groups, self._blocks):
            for p in group["params"]:
                if isinstance(p, Tensor) and self.state.get(p):
                    state[index[id(p)]] = {k: (v.copy() if isinstance(v, np.ndarray) else v)
                                           for k, v in self.state[p].items()}
            if block is not None and block.state:
                for v, s in zip(block.values, block.split_state()):
                    state[index[id(v)]] = s
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load what state_dict() saved (hyperparameters and per-parameter state), checking
        that the groups and their sizes match; arrays are copied, cast to each parameter's
        dtype."""
        saved_groups = copy.deepcopy(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(len(g["params"]) != len(s["params"])
               for g, s in zip(self.param_groups, saved_groups)):
            raise ValueError("loaded state dict contains a parameter group that doesn't match "
                             "the size of optimizer's group")
        saved_state = state_dict["state"]
        state: defaultdict[Any, dict[str, Any]] = defaultdict(dict)
        for group, saved, block in zip(self.param_groups, saved_groups, self._blocks):
            scalar_states = []
            for p, i in zip(group["params"], saved["params"]):
                entry = saved_state.get(i, {})
                if isinstance(p, Tensor):
                    if entry:
                        dtype = param_arrays(p)[0].dtype
                        state[p] = {k: _copy_array(v, dtype) for k, v in entry.items()}
                else:
                    scalar_states.append(entry)
            if block is not None:
                block.join_state(scalar_states)
        self.state = state
        self.param_groups = [dict(saved, params=group["params"])
                             for group, saved in zip(self.param_groups, saved_groups)]

    # -- pickling ------------------------------------------------------------------------------
    # State arrays travel as (dtype, shape, bytes), checked on load: numpy's own array pickles
    # can fail inside numpy (a SystemError) when the bytes are damaged (tests/_pickle_fuzz.py).

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["state"] = [(p, _pack(s)) for p, s in self.state.items()]
        state["_blocks"] = [None if b is None else (b.values, _pack(b.state))
                            for b in self._blocks]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or not isinstance(state.get("param_groups"), list):
            raise ValueError("damaged optimizer pickle")
        per_param: defaultdict[Any, dict[str, Any]] = defaultdict(dict)
        for p, packed in state["state"]:
            per_param[p] = _unpack(packed)
        blocks: list[_ScalarBlock | None] = []
        for entry in state["_blocks"]:
            if entry is None:
                blocks.append(None)
                continue
            values, packed = entry
            block = _ScalarBlock(list(values))
            block.state = _unpack(packed)
            blocks.append(block)
        if len(blocks) != len(state["param_groups"]):
            raise ValueError("damaged optimizer pickle: groups and scalar blocks differ")
        self.__dict__.update(state, state=per_param, _blocks=blocks)

    def __repr__(self) -> str:
        lines = [type(self).__name__ + " ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {group[k]}" for k in sorted(group) if k != "params"]
        return "\n".join(lines + [")"])


def _copy_array(v: Any, dtype: np.dtype) -> Any:
    """A copy of a state entry that is an array (numpy's or a Tensor's), in dtype; other
    entries (step counts) as they are."""
    if isinstance(v, Tensor):
        v = v.data
    return np.array(v, dtype=dtype) if isinstance(v, np.ndarray) else v


_PICKLED_DTYPES = {"<f8": np.float64, "<f4": np.float32, "<i8": np.int64}


def _pack(state: dict[str, Any]) -> dict[str, Any]:
    """A parameter's state with each array as ('array', dtype, shape, bytes)."""
    return {k: (("array", v.dtype.str, v.shape, v.tobytes())
                if isinstance(v, np.ndarray) and v.dtype.str in _PICKLED_DTYPES else v)
            for k, v in state.items()}


def _unpack(packed: Any) -> dict[str, Any]:
    """The inverse of _pack, checking what a damaged pickle could have changed."""
    if not isinstance(packed, dict):
        raise ValueError("damaged optimizer pickle: a state is not a dict")
    state = {}
    for k, v in packed.items():
        if isinstance(v, tuple) and len(v) == 4 and v[0] == "array":
            _, dtype, shape, data = v
            if (dtype not in _PICKLED_DTYPES or not isinstance(shape, tuple)
                    or not all(isinstance(n, int) and n >= 0 for n in shape)
                    or not isinstance(data, bytes)
                    or len(data) != math.prod(shape) * np.dtype(_PICKLED_DTYPES[dtype]).itemsize):
                raise ValueError(f"damaged optimizer pickle: state {k!r}")
            v = np.frombuffer(data, dtype=_PICKLED_DTYPES[dtype]).reshape(shape).copy()
        state[k] = v
    return state
