"""``fastgrad.autograd.grad``: gradients of outputs with respect to chosen inputs, returned
rather than accumulated, and with ``create_graph=True`` differentiable again (PyTorch's
``torch.autograd.grad``).

Values (scalar engine, both engines): the gradients are Values. With ``create_graph=True``
they are built from Value ops, each op's derivative rule written as Value arithmetic
(fastgrad/_scalar/graph_rules.py), so they can be differentiated again, to any order; their
values equal ``backward()``'s floats bit for bit. With ``create_graph=False`` one compiled
backward sweep computes them, and they come back as constant Values. Either way no Value's
micrograd ``.grad`` float changes: ``grad()`` is a function, not an accumulation.

Tensors: by fastgrad/autograd/_tensor_grad.py; with ``create_graph=True`` each op's backward
rule is recorded as Tensor ops (fastgrad/_tensor/graph_rules.py), to any order.

>>> from fastgrad import Value
>>> x = Value(2.0); y = Value(3.0)
>>> f = x * x * y
>>> dx, dy = grad(f, (x, y), create_graph=True)
>>> dx.data, dy.data
(12.0, 4.0)
>>> (dxx,) = grad(dx, x)               # d/dx of 2xy
>>> dxx.data, x.grad                   # x.grad untouched
(6.0, 0.0)
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

from fastgrad._scalar.graph_rules import engine_of, gradients
from fastgrad._tensor import Tensor
from fastgrad.autograd._tensor_grad import tensor_grad

__all__ = ["grad"]

TENSOR_MESSAGE = ("Tensors and Values cannot be mixed: give the inputs (and v) all as Tensors, "
                  "or all as Values and numbers")


def _as_tuple(x: Any) -> tuple:
    if isinstance(x, (list, tuple)):
        return tuple(x)
    return (x,)


def grad(outputs: Any, inputs: Any, grad_outputs: Any = None, retain_graph: bool | None = None,
         create_graph: bool = False, allow_unused: bool | None = None,
         materialize_grads: bool = False) -> tuple:
    """The gradients of ``sum(grad_outputs[i] * outputs[i])`` with respect to each input.

    Tensors go to the tensor engine's ``grad`` (any order). For Values:
    ``outputs`` and ``inputs`` are a Value or a sequence of Values; ``grad_outputs`` a number
    or Value per output (None: 1). Returns a tuple with one Value per input. An input that the
    outputs do not depend on raises RuntimeError, unless ``allow_unused=True`` (its gradient is
    then None) or ``materialize_grads=True`` (then 0). ``retain_graph`` has no effect: Value
    graphs live as long as their Values. A node with a ``_backward`` closure of its own (a
    micrograd extension) has no derivative made of Value ops: ``create_graph=True`` through it
    raises RuntimeError, ``create_graph=False`` calls the closure as backward() does.

    >>> from fastgrad import Value
    >>> x = Value(0.5)
    >>> (g,) = grad(x.tanh(), [x], create_graph=True)
    >>> (h,) = grad(g, [x])
    >>> round(h.data, 12)                  # -2 tanh(x) (1 - tanh(x)**2)
    -0.726861981384
    """
    if any(isinstance(t, Tensor) for t in _as_tuple(outputs) + _as_tuple(inputs)):
        return tensor_grad(outputs, inputs, grad_outputs=grad_outputs,
                           retain_graph=retain_graph, create_graph=create_graph,
                           allow_unused=allow_unused, materialize_grads=materialize_grads)
    outputs = _as_tuple(outputs)
    inputs = _as_tuple(inputs)
    if not inputs:
        raise RuntimeError("`inputs` argument to `grad()` cannot be empty.")
    if not outputs:
        raise RuntimeError("grad() needs at least one output")
    if materialize_grads and allow_unused is False:
        raise ValueError("Expected allow_unused to be True or not passed when "
                         "materialize_grads=True, but got: allow_unused=False.")
    if allow_unused is None:
        allow_unused = materialize_grads
    value_type, graph_nodes = engine_of(outputs[0])
    for role, values in (("outputs", outputs), ("inputs", inputs)):
        for v in values:
            if not isinstance(v, value_type):
                raise TypeError(f"grad() {role} must be Values of one engine, got "
                                f"{type(v).__name__} beside {value_type.__name__}")
    seeds = _seeds(outputs, grad_outputs, value_type, create_graph)

    nodes = graph_nodes(outputs)
    position = {id(entry[0]): i for i, entry in enumerate(nodes)}
    where = [position.get(id(x)) for x in inputs]
    for j, p in enumerate(where):
        if p is None and not allow_unused:
            raise RuntimeError(
                f"The differentiated Value at index {j} appears to not have been used in the "
                "graph. Set allow_unused=True if this is the desired behavior.")
    if create_graph:
        found = gradients(nodes, [(position[id(o)], g) for o, g in zip(outputs, seeds)],
                          [p for p in where if p is not None])
    else:
        found = _by_backward(nodes, outputs, seeds, where)
    result = []
    for p in where:
        if p is None:
            result.append(value_type(0.0) if materialize_grads else None)
            continue
        g = found[p]
        result.append(g if isinstance(g, value_type) else value_type(0.0 if g is None else g))
    return tuple(result)


def _seeds(outputs: tuple, grad_outputs: Any, value_type: Any, create_graph: bool) -> list:
    """The starting gradient of each output: a float, or a Value when create_graph keeps it."""
    if grad_outputs is None:
        return [1.0] * len(outputs)
    given = _as_tuple(grad_outputs)
    if len(given) != len(outputs):
        raise RuntimeError(f"got {len(outputs)} outputs and {len(given)} gradients")
    seeds: list = []
    for g in given:
        if g is None:
            seeds.append(1.0)
        elif isinstance(g, value_type):
            seeds.append(g if create_graph else g.data)
        elif isinstance(g, numbers.Real):
            seeds.append(float(g))
        else:
            raise TypeError(f"grad_outputs must be Values or numbers, not {type(g).__name__}")
    return seeds


def _by_backward(nodes: list, outputs: tuple, seeds: Sequence[float],
                 where: Sequence[int | None]) -> dict[int, float]:
    """The gradients as floats from one ordinary backward sweep, with every grad below the
    outputs saved first and put back after."""
    handles = [entry[0] for entry in nodes]
    saved = [v.grad for v in handles]
    try:
        for v in handles:
            v.grad = 0.0
        if len(outputs) == 1 and seeds[0] == 1.0:
            root = outputs[0]
        else:  # sum(g_i * out_i): its backward seeds out_i's grad with g_i * 1.0, i.e. g_i
            root = outputs[0] * seeds[0]
            for o, g in zip(outputs[1:], seeds[1:]):
                root = root + o * g
        root.backward()
        return {p: handles[p].grad for p in where if p is not None}
    finally:
        for v, g in zip(handles, saved):
            v.grad = g
