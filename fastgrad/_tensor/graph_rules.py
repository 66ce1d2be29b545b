"""Gradients that can be differentiated again (``create_graph=True``) for tensors: each op's
backward rule written as recorded tensor ops, and the reverse sweep that runs them.

The first-order sweep (sweep.pyx) moves numpy arrays through compiled rules and records
nothing. Here the gradient flowing into a node is a Tensor, and each rule builds its children's
gradients from it with ordinary Tensor ops (``g * b`` for a product, ``g @ w.T`` for a matrix
product, ...), so the result is itself a recorded graph: ``backward()`` or ``grad()`` on it gives
second derivatives, and so on to any order. The rules read the node as a differentiable
function of its children: they use the children themselves (or the node, for ops whose
derivative is best written with their value: ``1 - tanh**2``), never the arrays saved for the
first-order rules, except for parts that are constant where they are differentiable (relu's
mask, max's winner, pooling's indices).

Ops whose backward rule is linear in the gradient and reads no differentiable operand (the
shape and window ops, sums, pools) are not rewritten: ``linear_map`` records "this node's
first-order rule applied to g" as one node, whose own derivative is the node's tangent rule
(rules.pyx), so their higher derivatives run their tested first-order code.

>>> import fastgrad
>>> x = fastgrad.tensor([1.0, 2.0], requires_grad=True)
>>> (g,) = graph_gradients([(x ** 3).sum()], [fastgrad.tensor(1.0)], [x])
>>> g.tolist()
[3.0, 12.0]
>>> (h,) = graph_gradients([g.sum()], [fastgrad.tensor(1.0)], [x])
>>> h.tolist()
[6.0, 12.0]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from fastgrad._tensor.conv import fold_grid, unfold_grid
from fastgrad._tensor.rules import linear_map, node_parts
from fastgrad._tensor.sweep import graph_order
from fastgrad._tensor.tensor import OP_NAMES, Tensor, where

_CODE = {name: code for code, name in enumerate(OP_NAMES)}
LEAF = _CODE["leaf"]

# (child, its gradient contribution) pairs, as each rule returns them
Contributions = list[tuple[Tensor, Tensor]]
Rule = Callable[[Tensor, tuple, Tensor], Contributions]


# ---------------------------------------------------------------------------------------------
# Helpers


def _const(value: Any) -> Any:
    """A saved operand as a constant of the graph: numbers stay numbers."""
    if isinstance(value, np.ndarray):
        return Tensor(value)
    return value


def _operand(child: Tensor | None, saved: Any) -> Any:
    """The operand of a node: the child itself where it requires grad, else its saved value."""
    return child if child is not None else _const(saved)


def sum_to(t: Tensor, shape: tuple[int, ...]) -> Tensor:
    """t summed over the axes that broadcasting added to reach t's shape from shape."""
    tshape = tuple(t.shape)
    if tshape == tuple(shape):
        return t
    lead = len(tshape) - len(shape)
    axes = list(range(lead)) + [lead + i for i, s in enumerate(shape)
                                if s == 1 and tshape[lead + i] != 1]
    if axes:
        t = t.sum(dim=tuple(axes), keepdim=True)
    return t.reshape(shape)


def _fit(contrib: Tensor, child: Tensor) -> Tensor:
    """A contribution in its child's shape and dtype (as the first-order push makes them)."""
    contrib = sum_to(contrib, tuple(child.shape))
    if contrib.dtype != child.dtype:
        contrib = contrib.to(child.dtype)
    return contrib


def _where_zero(mask: np.ndarray, expr: Tensor) -> Tensor:
    """expr, with 0 where mask holds (and no nan from expr there)."""
    if not mask.any():
        return expr
    return where(Tensor(mask), 0.0, expr)


def _pairs(*items: tuple[Tensor | None, Any]) -> Contributions:
    return [(child, _fit(c, child)) for child, c in items if child is not None]


# ---------------------------------------------------------------------------------------------
# The rules, by op code: rule(node, parts, g) -> [(child, contribution)]; parts is node_parts'
# (op, a, b, c, x0, x1, aux).

RULES: dict[int, Rule] = {}


def _rule(*names: str) -> Callable[[Rule], Rule]:
    def register(fn: Rule) -> Rule:
        for name in names:
            RULES[_CODE[name]] = fn
        return fn
    return register


@_rule("sum", "mean", "reshape", "transpose", "getitem", "gather", "cumsum", "expand",
       "repeat", "flip", "cast", "unfold", "fold", "max_pool", "avg_pool")
def _linear_one(n: Tensor, parts: tuple, g: Tensor) -> Contributions:
    # the first-order rule applied to g, recorded (its derivative is the op's tangent rule)
    return [(parts[1], linear_map(n, 0, g, True))]


@_rule("concatenate", "stack")
def _join(n: Tensor, parts: tuple, g: Tensor) -> Contributions:
    return [(kid, linear_map(n, i, g, True)) for i, kid in enumerate(parts[4])
            if kid is not None]


@_rule("linear_map")
def _linear_map(n: Tensor, parts: tuple, g: Tensor) -> Contributions:
    k, transposed = parts[6]
    return [(parts[1], linear_map(parts[4], k, g, not transposed))]


@_rule("add")
def _add(n: Tensor, parts: tuple, g: Tensor) -> Contributions:
    return _pairs((parts[1], g), (parts[2], g))


@_rule("sub")
def _sub(n: Tensor, parts: tuple, g: Tensor) -> Contributions:
    b = parts[2]
    return _pairs((parts[1], g), (b, -g if b is not None else None))


@_rule("neg")
def _neg(n: Tensor, parts: tuple, g: Tensor) -> Contributions:
    return _pairs((parts[1], -g))


@_rule("mul")
def _mul(n: Tensor, parts: tuple, g: Tensor) -> Contributions:
    _, a, b, _, x0, x1, _ = parts
    return _pairs((a, g * _operand(b, x1) if a is not None else None),
                  (b, _operand(a, x0) * g if b is not None else None))


@_rule("div")
def _div(n: Tensor, parts: tuple, g: Tensor) -> Contributions:
    _, a, b, _, x0, x1, _ = parts
    y = _operand(b, x1)
    return _pairs((a, g / y if a is not None else None),
                  (b, -g * _operand(a, x0) / (y * y) if b is not None else None))


@_rule("pow")
def _pow(n: Tensor, parts: tuple, g: Tensor) -> Contributions:
    # the first-order rule's conventions: d/dx is 2x for y == 2 and 0 where y == 0; d/dy is 0
    # where x == 0 and y >= 0
    _, a, b, _, x0, x1, _ = parts
    x = _operand(a, x0)
    y = _operand(b, x1)
    out: list[tuple[Tensor | None, Any]] = []
    if a is not None:
        if isinstance(y, (int, float)):
            dx = 2.0 * x if y == 2 else (0.0 * x if y == 0 else y * x ** (y - 1.0))
        else:
            dx = _where_zero(np.asarray(x1) == 0, y * x ** (y - 1.0))
        out.append((a, g * dx))
    if b is not None:
        # (a number base: nan below 0, where x**y has no real derivative; 0 is masked below)
        log_x: Any = x.log() if isinstance(x, Tensor) else \
            math.log(x) if x > 0 else (math.nan if x < 0 else 0.0)
        dy = g * n * log_x
        out.append((b, _where_zero((np.asarray(x0) == 0) & (np.asarray(x1) >= 0), dy)))
    return _pairs(*out)


@_rule("matmul")
def _matmul(n: Tensor, parts: tuple, g: Tensor) -> Contributions:
    _, a, b, _, x0, x1, _ = parts
    x = _operand(a, x0)
    y = _operand(b, x1)
    x1d, y1d = x.ndim == 1, y.ndim == 1
    if x1d and y1d:
        return _pairs((a, g * y if a is not None else None), (b, g * x if b is not None else None))
    x2 = x.unsqueeze(0) if x1d else x
    y2 = y.unsqueeze(-1) if y1d else y
    g2 = g.unsqueeze(-2) if x1d else g
    if y1d:
        g2 = g2.unsqueeze(-1)
    ga = gb = None
    if a is not None:
        ga = g2 @ y2.transpose(-1, -2)
        if x1d:
            ga = ga.squeeze(-2)
    if b is not None:
        gb = x2.transpose(-1, -2) @ g2
        if y1d:
            gb = gb.squeeze(-1)
    return _pairs((a, ga), (b, gb))


@_rule("relu")
def _relu(n: Tensor, parts: tuple, g: Tensor) -> Contributions:
    data = n.numpy()
    return _pairs((parts[1], g * Tensor((data > 0).astype(data.dtype))))


@_rule("tanh")
def _tanh(n: Tensor, parts: tuple, g: Tensor) -> Contributions:
    return _pairs((parts[1], g * (1.0 - n * n)))


@_rule("exp")
def _exp(n: Tensor, parts: tuple, g: Tensor) -> Contributions:
    return _pairs((parts[1], g * n))


@_rule("log")
def _log(n: Tensor, parts: tuple, g: Tensor) -> Contributions:
    return _pairs((parts[1], g / parts[1]))


@_rule("sigmoid")
def _sigmoid(n: Tensor, parts: tuple, g: Tensor) -> Contributions:
    return _pairs((parts[1], g * n * (1.0 - n)))


@_rule("softmax")
def _softmax(n: Tensor, parts: tuple, g: Tensor) -> Contributions:
    go = g * n
    return _pairs((parts[1], go - n * go.sum(dim=parts[6], keepdim=True)))


@_rule("log_softmax")
def _log_softmax(n: Tensor, parts: tuple, g: Tensor) -> Contributions:
    return _pairs((parts[1], g - n.exp() * g.sum(dim=parts[6], keepdim=True)))


@_rule("linear")
def _linear(n: Tensor, parts: tuple, g: Tensor) -> Contributions:
    # x @ w.T + bias: x (..., in), w (out, in), bias (out,)
    _, a, b, c, x0, x1, _ = parts
    x = _operand(a, x0)
    w = _operand(b, x1)
    out_features, in_features = x1.shape
    ga = g @ w if a is not None else None
    gw = gc = None
    if b is not None or c is not None:
        g2 = g.reshape(-1, out_features)
        if b is not None:
            gw = g2.transpose(0, 1) @ x.reshape(-1, in_features)
        if c is not None:
            gc = g2.sum(0)
    return _pairs((a, ga), (b, gw), (c, gc))


def _difference(a: Tensor | None, b: Tensor | None, saved: np.ndarray) -> Tensor:
    """input - target as a differentiable function of whichever of them requires grad (saved:
    its value)."""
    if a is not None and b is not None:
        return a - b
    d = Tensor(saved)
    if a is not None:
        return d + (a - a.detach())
    assert b is not None
    return d - (b - b.detach())


@_rule("mse_loss")
def _mse(n: Tensor, parts: tuple, g: Tensor) -> Contributions:
    _, a, b, _, x0, _, count = parts
    ga = (g * (2.0 / count if count else 0.0)) * _difference(a, b, x0)
    return _pairs((a, ga), (b, -ga if b is not None else None))


@_rule("cross_entropy")
def _cross_entropy(n: Tensor, parts: tuple, g: Tensor) -> Contributions:
    # mean over rows of logsumexp(x_i) - x_i[t_i]: (softmax(x) - onehot(t)) / rows
    _, a, _, _, z, targets, _ = parts
    rows = z.shape[0]
    onehot = np.zeros(z.shape, dtype=z.dtype)
    onehot[np.arange(rows), targets] = 1.0
    return _pairs((a, (a.softmax(dim=-1) - Tensor(onehot)) * (g / rows)))


@_rule("binary_cross_entropy")
def _bce(n: Tensor, parts: tuple, g: Tensor) -> Contributions:
    # mean of -(t log p + (1 - t) log(1 - p)), logs clamped at -100 as PyTorch's
    _, a, b, _, x0, x1, aux = parts
    count = aux[0]
    p = _operand(a, x0)
    t = _operand(b, x1)
    ga = gb = None
    if a is not None:
        ga = g * (p - t) / (p * (1.0 - p)).clamp(min=1e-12) / count
    if b is not None:
        logs = (1.0 - p).log().clamp(min=-100.0) - p.log().clamp(min=-100.0) \
            if isinstance(p, Tensor) else Tensor(aux[2] - aux[1])
        gb = g * logs / count
    return _pairs((a, ga), (b, gb))


def _grid_parts(geometry: tuple, groups: int) -> tuple[int, int, int]:
    """(channels per group, kh*kw, positions) of a convolution's window grid."""
    c, _, _, kh, kw, _, _, _, _, _, _, oh, ow = geometry
    return c // groups, kh * kw, oh * ow


@_rule("conv")
def _conv(n: Tensor, parts: tuple, g: Tensor) -> Contributions:
    # y[n] = W (O, C/G*kh*kw per group) @ columns(x[n]) + bias: the gradients are a matmul with
    # the gradient and the adjoint of the columns (fold), all recorded
    _, a, b, c, x0, x1, (geometry, groups) = parts
    cg, k, positions = _grid_parts(geometry, groups)
    batch, channels_out = g.shape[0], g.shape[1]
    og = channels_out // groups
    g4 = g.reshape(batch, groups, og, positions)
    ga = gw = gc = None
    if a is not None:
        w3 = _operand(b, x1).reshape(groups, og, cg * k)
        cols = (w3.transpose(-1, -2) @ g4).reshape(batch, groups * cg * k, positions)
        ga = fold_grid(cols, geometry)
    if b is not None:
        if a is not None:
            cols = unfold_grid(a, geometry)
        else:   # the saved columns, from (C*kh*kw, N*L) to unfold's (N, C*kh*kw, L)
            cols = Tensor(np.ascontiguousarray(
                x0.reshape(-1, batch, positions).transpose(1, 0, 2)))
        cols4 = cols.reshape(batch, groups, cg * k, positions)
        gw = (g4 @ cols4.transpose(-1, -2)).sum(0).reshape(x1.shape if x1 is not None
                                                          else b.shape)
    if c is not None:
        gc = g.sum(dim=(0, 2, 3))
    return _pairs((a, ga), (b, gw), (c, gc))


@_rule("conv_transpose")
def _conv_transpose(n: Tensor, parts: tuple, g: Tensor) -> Contributions:
    # y = fold(W^T x) on the grid of the convolution it transposes (input (N, C, h, w), weight
    # (C, O/G, kh, kw)): the gradients read the columns of g
    _, a, b, c, x0, x1, (geometry, groups, channels_in) = parts
    og, k, positions = _grid_parts(geometry, groups)
    cg = channels_in // groups
    batch = g.shape[0]
    gcols = unfold_grid(g, geometry).reshape(batch, groups, og * k, positions)
    ga = gw = gc = None
    if a is not None:
        w3 = _operand(b, x1).reshape(groups, cg, og * k)
        ga = (w3 @ gcols).reshape(tuple(a.shape))
    if b is not None:
        if a is not None:
            x4 = a.reshape(batch, groups, cg, positions)
        else:   # the saved input, (C, N*h*w)
            x4 = Tensor(np.ascontiguousarray(
                x0.reshape(channels_in, batch, positions).transpose(1, 0, 2))
            ).reshape(batch, groups, cg, positions)
        gw = (x4 @ gcols.transpose(-1, -2)).sum(0).reshape(tuple(b.shape))
    if c is not None:
        gc = g.sum(dim=(0, 2, 3))
    return _pairs((a, ga), (b, gw), (c, gc))


# --- ops with a diagonal Jacobian (TOP_LOCAL) -------------------------------------------------
# The first-order rule multiplies g by the derivative computed when the op ran. Where that
# derivative is constant wherever it exists (rounding, clamping, masks, max's winners, |x|'s
# sign) it is the graph's constant too; the smooth ones rebuild it from the input (or the node).

_LN2 = math.log(2.0)
_LN10 = math.log(10.0)
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)

LocalDerivative = Callable[[Tensor, Tensor, tuple], Tensor]

SMOOTH: dict[str, LocalDerivative] = {
    # name: (node, input, aux) -> d node / d input, broadcasting against the input
    "sqrt": lambda n, x, aux: 0.5 / n,
    "rsqrt": lambda n, x, aux: -0.5 * n * n * n,
    "log2": lambda n, x, aux: 1.0 / (x * _LN2),
    "log10": lambda n, x, aux: 1.0 / (x * _LN10),
    "log1p": lambda n, x, aux: 1.0 / (1.0 + x),
    "expm1": lambda n, x, aux: n + 1.0,
    "sin": lambda n, x, aux: x.cos(),
    "cos": lambda n, x, aux: -x.sin(),
    "tan": lambda n, x, aux: 1.0 + n * n,
    "asin": lambda n, x, aux: 1.0 / (1.0 - x * x).sqrt(),
    "acos": lambda n, x, aux: -1.0 / (1.0 - x * x).sqrt(),
    "atan": lambda n, x, aux: 1.0 / (1.0 + x * x),
    "sinh": lambda n, x, aux: x.cosh(),
    "cosh": lambda n, x, aux: x.sinh(),
    "erf": lambda n, x, aux: _TWO_OVER_SQRT_PI * (-(x * x)).exp(),
    "reciprocal": lambda n, x, aux: -(n * n),
    "square": lambda n, x, aux: 2.0 * x,
    "logsumexp": lambda n, x, aux: (x - n.reshape(aux[1])).exp(),
}

# The ops whose derivative is piecewise constant: their saved derivative is exact at any order.
PIECEWISE = frozenset([
    "abs", "sign", "floor", "ceil", "round", "trunc", "frac", "clamp", "masked_fill",
    "remainder", "index_put", "maximum", "minimum", "where", "max", "min", "amax", "amin",
    "zero", "fill",
])


def _safe_reduction(n: Tensor, kshape: tuple) -> tuple[Tensor, np.ndarray]:
    """(the reduction's value in its keepdim shape, with 1 where it is 0; the mask of those
    zeros), for derivatives that divide by it and are 0 there (PyTorch's convention)."""
    kept = n.reshape(kshape)
    zero = kept.numpy() == 0
    if zero.any():
        kept = where(Tensor(zero), 1.0, kept)
    return kept, zero


def _norm_derivative(n: Tensor, x: Tensor, aux: tuple) -> Tensor | None:
    p = aux[3][0]
    if p in (0.0, 1.0, math.inf, -math.inf):
        return None                         # piecewise constant: the saved one
    kept, zero = _safe_reduction(n, aux[1])
    d = x / kept if p == 2.0 else x.sign() * x.abs() ** (p - 1.0) / kept ** (p - 1.0)
    return _where_zero(np.broadcast_to(zero, tuple(x.shape)), d)


def _moment_derivative(n: Tensor, x: Tensor, aux: tuple, root: bool) -> Tensor:
    denom = aux[3][0]
    dev = x - x.mean(dim=aux[2], keepdim=True)
    if not root:
        return dev * (2.0 / denom)
    kept, zero = _safe_reduction(n, aux[1])
    return _where_zero(np.broadcast_to(zero, tuple(x.shape)), dev / (denom * kept))


def _prod_derivative(n: Tensor, x: Tensor, aux: tuple) -> Tensor:
    """d prod / d x_i = the product of the others: each row of an (m, m) grid of the reduced
    values holds them all but one, replaced by 1 (exact at zeros, and differentiable again)."""
    kshape, axes = aux[1], aux[2]
    if len(axes) > 1 or x.ndim == 0:    # the product of all elements: over the flat values
        flat = x.reshape(-1, 1).transpose(0, 1)
        d = _prod_derivative_last(flat)
        return d.reshape(tuple(x.shape))
    axis = axes[0]
    moved = x.transpose(axis, -1)
    return _prod_derivative_last(moved).transpose(axis, -1)


def _prod_derivative_last(x: Tensor) -> Tensor:
    m = x.shape[-1]
    grid = x.unsqueeze(-2).expand(*x.shape[:-1], m, m)
    others = where(Tensor(np.eye(m, dtype=bool)), 1.0, grid)
    return others.prod(dim=-1)


def _local_derivative(n: Tensor, x: Tensor, aux: tuple, saved: Any) -> Any:
    name = aux[0]
    if name in SMOOTH:
        return SMOOTH[name](n, x, aux)
    if name == "norm":
        d = _norm_derivative(n, x, aux)
        return _const(saved) if d is None else d
    if name in ("var", "std"):
        return _moment_derivative(n, x, aux, name == "std")
    if name == "prod":
        return _prod_derivative(n, x, aux)
    if name in PIECEWISE:
        return _const(saved)
    raise NotImplementedError(f"create_graph: the derivative of {name} cannot be "
                              f"differentiated again")


@_rule("local")
def _local(n: Tensor, parts: tuple, g: Tensor) -> Contributions:
    _, a, b, _, x0, x1, aux = parts
    kshape = aux[1]
    gk = g.reshape(kshape) if kshape is not None else g
    ga = gk * _local_derivative(n, a, aux, x0) if a is not None else None
    gb = gk * _const(x1) if b is not None else None     # (every binary one is piecewise)
    return _pairs((a, ga), (b, gb))


missing = [name for code, name in enumerate(OP_NAMES) if code != LEAF and code not in RULES]
assert not missing, f"ops without a create_graph rule: {missing}"


# ---------------------------------------------------------------------------------------------
# The sweep


def _nodes_below(roots: Sequence[Tensor]) -> list[Tensor]:
    """The nodes behind all roots, children before parents (each root's order, then the next
    root's new nodes: still children first)."""
    seen: set[int] = set()
    order: list[Tensor] = []
    for root in roots:
        for node in graph_order(root):
            if id(node) not in seen:
                seen.add(id(node))
                order.append(node)
    return order


def graph_gradients(outputs: Sequence[Tensor], seeds: Sequence[Tensor],
                    targets: Sequence[Tensor] | None) -> list[Tensor | None]:
    """sum_i seeds[i] . d(outputs[i])/d(target) for each target, as recorded Tensors (None
    where the outputs do not depend on a target). targets None: every leaf that requires
    grad, returned in the order of the sweep (see leaf_gradients).

    Each output must require grad; each seed has its output's shape (it may itself require
    grad: the result is then differentiable in it too)."""
    return [grads for _, grads in _sweep(outputs, seeds, targets)]


def leaf_gradients(outputs: Sequence[Tensor], seeds: Sequence[Tensor]
                   ) -> list[tuple[Tensor, Tensor]]:
    """(leaf, gradient) for every leaf behind the outputs that receives a gradient:
    backward(create_graph=True)'s sweep."""
    return [(leaf, g) for leaf, g in _sweep(outputs, seeds, None) if g is not None]


def _sweep(outputs: Sequence[Tensor], seeds: Sequence[Tensor],
           targets: Sequence[Tensor] | None) -> list[tuple[Tensor, Tensor | None]]:
    grads: dict[int, Tensor] = {}

    def add(node: Tensor, g: Tensor) -> None:
        key = id(node)
        before = grads.get(key)
        grads[key] = g if before is None else before + g

    for out, seed in zip(outputs, seeds):
        add(out, seed)
    wanted = None if targets is None else {id(t) for t in targets}
    found: dict[int, Tensor] = {}
    leaves: list[Tensor] = []
    for node in reversed(_nodes_below(outputs)):
        g = grads.pop(id(node), None)
        if g is None:
            continue
        parts = node_parts(node)
        if wanted is None:
            if parts[0] == LEAF:
                leaves.append(node)
                found[id(node)] = g
                continue
        elif id(node) in wanted:
            found[id(node)] = g     # complete: every parent is above it in the order
        if parts[0] == LEAF:
            continue
        for child, contrib in RULES[parts[0]](node, parts, g):
            add(child, contrib)
    chosen = leaves if targets is None else list(targets)
    return [(t, found.get(id(t))) for t in chosen]
