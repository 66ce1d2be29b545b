"""Each scalar op's backward rule written with Value ops, so that a gradient is itself a graph
of Values and can be differentiated again (``create_graph=True``, Hessians, any order).

The float rules live in rules.pxd (compiled) and reference.py (pure); this table is their twin
in Value arithmetic, one function per op, shared by both engines (a Value of either engine
obeys it). Each function is the float rule's expression, operation for operation, with the
node's children and the node itself in place of their numbers, so the gradients' values equal
``backward()``'s floats bit for bit, with the same conventions at kinks (relu and abs 0 at 0,
max and min follow the first operand on a tie, x ** y has no derivative in y at x == 0 and a
NaN one at x < 0). Where a Value expression cannot round as the float one does (log's g / x is
g * x**-1 for Values) the result is shifted by an exact constant onto the float's bits.

The sweep (`gradients`) visits the nodes in reverse creation order, as backward() does, so
each node's gradient receives its contributions in backward()'s order. A gradient that depends
on no Value is kept as a float until it meets one.

>>> from fastgrad.engine import Value
>>> x = Value(3.0)
>>> y = x * x * x
>>> y.backward(create_graph=True)
>>> x.grad, x.grad_value.data          # 3 x**2, as a float and as a Value
(27.0, 27.0)
>>> from fastgrad.autograd import grad
>>> grad(x.grad_value, x)[0].data      # d/dx of 3 x**2 = 6 x
18.0

(``x.grad_value.backward()`` would add to the float grads that the first backward left on the
nodes both graphs share, and pass them on, as micrograd's backward always does: differentiate
``grad_value`` with ``fastgrad.autograd.grad``, or zero every node's grad first.)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from fastgrad import engine

__all__ = ["GRAPH_RULES", "gradients", "backward_creating_graph", "engine_of"]

# A gradient in the sweep: a Value, or a float while it depends on no Value.
Grad = Any


def _exactly(v: Grad, target: float) -> Grad:
    """v, shifted by a constant so that its value is target's bits (v is within an ulp or so of
    target: the difference, and the sum, are then exact)."""
    value = v.data if hasattr(v, "data") else v
    if value == target or not (math.isfinite(value) and math.isfinite(target)):
        return v
    return v + (target - value)


def _coefficient_power(x: Any, y: float) -> Any:
    """x ** y as a Value where it has one, else C's pow as a constant (x == 0 with y < 0 is
    inf there, and an error for Values; overflow likewise)."""
    try:
        return x ** y
    except (ZeroDivisionError, OverflowError, ValueError):
        return _c_pow(x.data, y.data if hasattr(y, "data") else y)


def _c_pow(x: float, y: float) -> float:
    from fastgrad._scalar.reference import _c_pow
    return _c_pow(x, y)


# Each rule: (node, a, b, aux, g) -> (contribution to a, contribution to b); None for none.
# node is the op's output, a and b its children (b None for unary ops), aux the constant
# operand, g the node's gradient. The comments give the float rule they follow.


def _add(out, a, b, aux, g):  # a += g; b += g
    return g, g


def _mul(out, a, b, aux, g):  # a += b * g; b += a * g
    return b * g, a * g


def _pow_const(out, a, b, aux, g):  # a += (y * x ** (y - 1)) * g
    if aux == 1.0:
        return g, None  # (1 * x ** 0) * g is g, even at x == 0
    return (_coefficient_power(a, aux - 1.0) * aux) * g, None


def _pow(out, a, b, aux, g):  # a += (y * x ** (y - 1)) * g; b += (out * log x) * g if x > 0
    x = a.data
    da = (b * _coefficient_power(a, b - 1.0)) * g
    if x > 0.0:
        db = (out * a.log()) * g
    elif x < 0.0:
        db = math.nan  # no real derivative in y (the float rule adds NaN, not NaN * g)
    else:
        db = None
    return da, db


def _relu(out, a, b, aux, g):  # a += (1 if out > 0 else 0) * g
    return (g if out.data > 0.0 else g * 0.0), None


def _tanh(out, a, b, aux, g):  # a += (1 - out * out) * g
    return (1.0 - out * out) * g, None


def _exp(out, a, b, aux, g):  # a += out * g
    return out * g, None


def _log(out, a, b, aux, g):  # a += g / x
    target = (g.data if hasattr(g, "data") else g) / a.data
    return _exactly(g * a ** -1, target), None


def _sigmoid(out, a, b, aux, g):  # a += (out * (1 - out)) * g
    return (out * (1.0 - out)) * g, None


def _max(out, a, b, aux, g):  # the larger operand gets g (a on a tie)
    return (None, g) if b.data > a.data else (g, None)


def _min(out, a, b, aux, g):  # the smaller operand gets g (a on a tie)
    return (None, g) if b.data < a.data else (g, None)


def _abs(out, a, b, aux, g):  # a += sign(x) * g, sign(0) = 0
    x = a.data
    return (g if x > 0.0 else (-g if x < 0.0 else g * 0.0)), None


# The ops by the op enum's names (reference.RULES' keys); leaves and Value(data, _children, _op)
# nodes pass no derivative. A test checks that every computed op has a row.
GRAPH_RULES: dict[str, Callable[..., tuple[Grad, Grad]]] = {
    "ADD": _add, "MUL": _mul, "POW_CONST": _pow_const, "POW": _pow, "RELU": _relu,
    "TANH": _tanh, "EXP": _exp, "LOG": _log, "SIGMOID": _sigmoid, "MAX": _max, "MIN": _min,
    "ABS": _abs,
}
_NO_DERIVATIVE = frozenset({"LEAF", "OPAQUE"})


def engine_of(v: Any) -> tuple[Any, Callable[[Sequence[Any]], list]]:
    """The Value class and graph_nodes function of v's engine (the chosen one, or the reference
    engine, whose Values the tests use beside the chosen engine's)."""
    if isinstance(v, engine.Value):
        return engine.Value, engine.graph_nodes
    if isinstance(v, engine.reference.Value):
        return engine.reference.Value, engine.reference.graph_nodes
    raise TypeError(f"expected a Value, not {type(v).__name__}")


def _raise_for_closure(node: Any, op: str) -> None:
    raise RuntimeError(
        f"create_graph: the node {node!r} (op {node._op!r}) has a _backward closure of its "
        "own; its derivative is a Python function, not Value ops, so it cannot be "
        "differentiated again (use create_graph=False, or build the op from Value ops)")


def gradients(nodes: list, seeds: Sequence[tuple[int, Grad]],
              wanted: Sequence[int]) -> dict[int, Grad]:
    """The gradients at the positions ``wanted`` of ``nodes`` (graph_nodes' list), as Values or
    floats (None where nothing flowed), when the gradient of each node i in ``seeds`` starts at
    its g (the sum of its gs, in order, if it is seeded more than once).

    One pass in reverse creation order, as backward() makes; each node's gradient is dropped
    once its rule has run, unless it is wanted.
    """
    grads: list[Grad] = [None] * len(nodes)
    for i, g in seeds:
        grads[i] = g if grads[i] is None else grads[i] + g
    keep = set(wanted)
    for i in range(len(nodes) - 1, -1, -1):
        g = grads[i]
        if g is None:
            continue
        node, op, first, second, aux, closure = nodes[i]
        if i not in keep:
            grads[i] = None
        if closure is not None:
            _raise_for_closure(node, op)
        if op in _NO_DERIVATIVE:
            continue
        a = nodes[first][0]
        b = nodes[second][0] if second >= 0 else None
        da, db = GRAPH_RULES[op](node, a, b, aux, g)
        if da is not None:
            grads[first] = da if grads[first] is None else grads[first] + da
        if db is not None:
            grads[second] = db if grads[second] is None else grads[second] + db
    return {i: grads[i] for i in keep}


def backward_creating_graph(root: Any) -> None:
    """``root.backward(create_graph=True)``: micrograd's float grads as backward() leaves them,
    and on every leaf below root a ``grad_value``, this call's d(root)/d(leaf) as a Value."""
    value_type, graph_nodes = engine_of(root)
    nodes = graph_nodes([root])
    leaves = [i for i, entry in enumerate(nodes) if entry[1] == "LEAF"]
    grads = gradients(nodes, [(len(nodes) - 1, 1.0)], leaves)  # raises before any grad changes
    root.backward()
    for i in leaves:
        g = grads[i]
        nodes[i][0].grad_value = g if isinstance(g, value_type) else value_type(
            0.0 if g is None else g)
