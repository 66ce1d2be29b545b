"""``torch.autograd.functional`` for Tensors: ``vjp`` (reverse mode), ``jvp`` (forward mode:
one tangent sweep, ``fastgrad._tensor.tensor_jvp``), ``jacobian`` (by rows of vector-Jacobian
products, or by columns of Jacobian-vector products with ``strategy='forward-mode'``), and the
second derivatives ``hessian``, ``hvp`` and ``vhp``.

As in PyTorch, ``func`` is called on fresh leaves made from the inputs (the caller's tensors
and their ``.grad`` are left alone), and the outputs come back detached. With
``create_graph=True`` it is called on the inputs themselves (where they require grad) and
the results are recorded (``fastgrad._tensor.graph_rules``): differentiable again with respect
to the inputs. An input the outputs do not use has a zero derivative (``strict=True`` raises
instead).

Second derivatives are built from the gradient's recorded graph: ``hvp`` is a tangent sweep
through it (forward over reverse: one compiled sweep), ``vhp`` a reverse sweep of
``gradient . v`` and ``hessian`` one reverse sweep per row.

>>> import fastgrad
>>> x = fastgrad.tensor([1.0, 2.0])
>>> jacobian(lambda t: t * t, x).tolist()
[[2.0, 0.0], [0.0, 4.0]]
>>> hessian(lambda t: (t ** 3).sum(), x).tolist()
[[6.0, 0.0], [0.0, 12.0]]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from fastgrad._tensor import Tensor, stack, tensor_jvp
from fastgrad._tensor.graph_rules import graph_gradients
from fastgrad._tensor.sweep import tensor_vjp


def _as_tuple(value: Any, what: str) -> tuple[tuple[Tensor, ...], bool]:
    """(value as a tuple of Tensors, whether it was a tuple), as PyTorch's helpers do."""
    is_tuple = isinstance(value, tuple)
    items = value if is_tuple else (value,)
    for i, t in enumerate(items):
        if not isinstance(t, Tensor):
            raise TypeError(f"The {what} given to the function must be either a Tensor or a "
                            f"tuple of Tensors but the value at index {i} has type "
                            f"{type(t).__name__}.")
    return items, is_tuple


def _fresh_leaves(inputs: tuple[Tensor, ...], create_graph: bool = False) -> tuple[Tensor, ...]:
    """Inputs as new leaves that require grad (floating), sharing no history with the caller's;
    with create_graph, the inputs that require grad themselves (results stay differentiable
    with respect to them)."""
    leaves = []
    for x in inputs:
        if not x.is_floating_point():
            raise RuntimeError("only Tensors of floating point dtype can require gradients")
        if create_graph and x.requires_grad:
            leaves.append(x)
        else:
            leaves.append(Tensor(x.numpy().copy(), requires_grad=True))
    return tuple(leaves)


def _call(func: Callable[..., Any], leaves: tuple[Tensor, ...]) -> tuple[tuple[Tensor, ...],
                                                                      bool]:
    return _as_tuple(func(*leaves), "outputs of the user-provided function")


def _vectors(v: Any, like: tuple[Tensor, ...], what: str) -> list[np.ndarray]:
    """v (None, a Tensor or a tuple of Tensors) as arrays of the shapes of `like`; None only
    for single-element tensors (then ones), as PyTorch allows."""
    if v is None:
        for t in like:
            if t.numel() != 1:
                raise RuntimeError(f"The vector v can only be None if the {what} to the user-"
                                   f"provided function is a single Tensor with a single "
                                   f"element.")
        return [np.ones(t.shape, dtype=t.numpy().dtype) for t in like]
    items, _ = _as_tuple(v, "v")
    if len(items) != len(like):
        raise RuntimeError(f"v is a tuple of invalid length: should be {len(like)} but got "
                           f"{len(items)}.")
    arrays = []
    for t, given in zip(like, items):
        if tuple(given.shape) != tuple(t.shape):
            raise RuntimeError(f"Mismatch in shape: v has a shape of {list(given.shape)} and "
                               f"the {what} has a shape of {list(t.shape)}.")
        arrays.append(given.numpy().astype(t.numpy().dtype, copy=True))
    return arrays


def _unused(strict: bool, i: int, message: str | None = None) -> None:
    if strict:
        raise RuntimeError(message or f"The output of the user-provided function is "
                           f"independent of input {i}. This is not allowed in strict mode.")


def _zeros_like(x: Tensor) -> Tensor:
    return Tensor(np.zeros(x.shape, dtype=x.numpy().dtype))


def _vjp_arrays(outs: tuple[Tensor, ...], seeds: list[np.ndarray],
                leaves: tuple[Tensor, ...], strict: bool) -> list[np.ndarray]:
    total: list[np.ndarray | None] = [None] * len(leaves)
    for out, seed in zip(outs, seeds):
        if not out.requires_grad:
            continue                    # an output that depends on no input
        for k, g in enumerate(tensor_vjp(out, seed, leaves)):
            if g is not None:
                before = total[k]
                total[k] = g if before is None else before + g
    result = []
    for i, (x, g) in enumerate(zip(leaves, total)):
        if g is None:
            _unused(strict, i)
            g = np.zeros(x.shape, dtype=x.numpy().dtype)
        result.append(g)
    return result


def _vjp_graph(outs: tuple[Tensor, ...], seeds: list[Tensor], leaves: tuple[Tensor, ...],
               strict: bool, message: str | None = None) -> list[Tensor]:
    """The vector-Jacobian products as recorded Tensors (create_graph)."""
    pairs = [(o, s) for o, s in zip(outs, seeds) if o.requires_grad]
    grads = graph_gradients([o for o, _ in pairs], [s for _, s in pairs], leaves) if pairs \
        else [None] * len(leaves)
    result = []
    for i, (x, g) in enumerate(zip(leaves, grads)):
        if g is None:
            _unused(strict, i, message and message.format(i=i))
            g = _zeros_like(x)
        result.append(g)
    return result


def _shaped(values: list[Any], is_tuple: bool) -> Any:
    return tuple(values) if is_tuple else values[0]


def _outputs(outs: tuple[Tensor, ...], create_graph: bool) -> list[Tensor]:
    return list(outs) if create_graph else [o.detach() for o in outs]


def vjp(func: Callable[..., Any], inputs: Any, v: Any = None, create_graph: bool = False,
        strict: bool = False) -> tuple[Any, Any]:
    """(func(inputs), v . J): the vector-Jacobian product of func at inputs."""
    ins, in_tuple = _as_tuple(inputs, "inputs")
    leaves = _fresh_leaves(ins, create_graph)
    outs, out_tuple = _call(func, leaves)
    seeds = _vectors(v, outs, "outputs")
    if create_graph:
        grads: list[Any] = _vjp_graph(outs, [Tensor(s) for s in seeds], leaves, strict)
    else:
        grads = [Tensor(g) for g in _vjp_arrays(outs, seeds, leaves, strict)]
    return _shaped(_outputs(outs, create_graph), out_tuple), _shaped(grads, in_tuple)


def _jvp_graph(outs: tuple[Tensor, ...], leaves: tuple[Tensor, ...],
               tangents: list[np.ndarray], strict: bool) -> list[Tensor]:
    """J v as recorded Tensors, by the double-vjp trick: u -> J^T u is linear in u, so the
    gradient of (J^T u) . v with respect to u is J v (differentiable in the inputs)."""
    products = []
    for out in outs:
        if not out.requires_grad:
            _unused(strict, 0)
            products.append(_zeros_like(out))
            continue
        u = Tensor(np.zeros(out.shape, dtype=out.numpy().dtype), requires_grad=True)
        back = graph_gradients([out], [u], leaves)
        dot = None
        for g, t in zip(back, tangents):
            if g is not None:
                term = (g * Tensor(t)).sum()
                dot = term if dot is None else dot + term
        (jv,) = graph_gradients([dot], [Tensor(np.ones((), dtype=dot.numpy().dtype))], [u]) \
            if dot is not None and dot.requires_grad else (None,)
        products.append(jv if jv is not None else _zeros_like(out))
    return products


def jvp(func: Callable[..., Any], inputs: Any, v: Any = None, create_graph: bool = False,
        strict: bool = False) -> tuple[Any, Any]:
    """(func(inputs), J . v): the Jacobian-vector product of func at inputs, by forward mode
    (recorded, by the double-vjp trick, if create_graph)."""
    ins, in_tuple = _as_tuple(inputs, "inputs")
    leaves = _fresh_leaves(ins, create_graph)
    tangents = _vectors(v, leaves, "input")
    outs, out_tuple = _call(func, leaves)
    if create_graph:
        products = _jvp_graph(outs, leaves, tangents, strict)
    else:
        products = []
        for out in outs:
            if out.requires_grad:
                products.append(Tensor(tensor_jvp(out, dict(zip(leaves, tangents)))))
            else:
                _unused(strict, 0)
                products.append(_zeros_like(out))
    return _shaped(_outputs(outs, create_graph), out_tuple), _shaped(products, out_tuple)


def _unit(size: int, index: int, dtype: Any, shape: tuple) -> np.ndarray:
    e = np.zeros(size, dtype=dtype)
    e[index] = 1.0
    return e.reshape(shape)


def _jacobian_rows_graph(out: Tensor, leaves: tuple[Tensor, ...]) -> tuple[list[Tensor], list[bool]]:
    """The blocks d out / d leaf as recorded Tensors, one reverse sweep per entry of out."""
    dtype = out.numpy().dtype
    rows: list[list[Tensor]] = [[] for _ in leaves]
    used = [False] * len(leaves)
    for r in range(out.numel()):
        grads = graph_gradients([out], [Tensor(_unit(out.numel(), r, dtype, tuple(out.shape)))],
                                leaves)
        for i, (x, g) in enumerate(zip(leaves, grads)):
            used[i] = used[i] or g is not None
            rows[i].append(g if g is not None else _zeros_like(x))
    blocks = []
    for x, row in zip(leaves, rows):
        if not row:     # an empty output
            blocks.append(Tensor(np.zeros(tuple(out.shape) + tuple(x.shape), dtype=dtype)))
        else:
            blocks.append(stack(row).reshape(tuple(out.shape) + tuple(x.shape)))
    return blocks, used


def jacobian(func: Callable[..., Any], inputs: Any, create_graph: bool = False,
             strict: bool = False, vectorize: bool = False,
             strategy: str = "reverse-mode") -> Any:
    """The Jacobian of func at inputs: for output o and input x, a Tensor of shape
    o.shape + x.shape; nested in tuples as PyTorch nests them (outputs, then inputs)."""
    if strategy not in ("reverse-mode", "forward-mode"):
        raise ValueError('Expected strategy to be either "forward-mode" or "reverse-mode". '
                         'Hint: If your function has more outputs than inputs, "forward-mode" '
                         'tends to be more performant. Otherwise, prefer to use '
                         '"reverse-mode".')
    if strict and strategy == "forward-mode":
        raise RuntimeError("torch.autograd.functional.jacobian: `strict=True` is not supported "
                           "with `strategy='forward-mode'` (it cannot tell an unused input "
                           "from a zero derivative)")
    ins, in_tuple = _as_tuple(inputs, "inputs")
    leaves = _fresh_leaves(ins, create_graph)
    outs, out_tuple = _call(func, leaves)
    if create_graph:    # recorded rows (either strategy gives these numbers)
        jac_graph = []
        for out in outs:
            if out.requires_grad:
                blocks, used_here = _jacobian_rows_graph(out, leaves)
            else:
                blocks = [Tensor(np.zeros(tuple(out.shape) + tuple(x.shape),
                                          dtype=out.numpy().dtype)) for x in leaves]
                used_here = [False] * len(leaves)
            for i, was_used in enumerate(used_here):
                if not was_used:
                    _unused(strict, i)
            jac_graph.append(_shaped(blocks, in_tuple))
        return _shaped(jac_graph, out_tuple)
    used = [False] * len(leaves)
    arrays = [[np.zeros(tuple(o.shape) + tuple(x.shape), dtype=o.numpy().dtype)
               for x in leaves] for o in outs]
    for j, out in enumerate(outs):
        if not out.requires_grad:
            continue
        dtype = out.numpy().dtype
        if strategy == "reverse-mode":
            for row in range(out.numel()):      # one vector-Jacobian product per output entry
                grads = tensor_vjp(out, _unit(out.numel(), row, dtype, tuple(out.shape)),
                                   leaves)
                for i, g in enumerate(grads):
                    if g is not None:
                        used[i] = True
                        arrays[j][i].reshape(out.numel(), -1)[row] = g.reshape(-1)
        else:
            for i, x in enumerate(leaves):      # one Jacobian-vector product per input entry
                for col in range(x.numel()):
                    tangent = _unit(x.numel(), col, x.numpy().dtype, tuple(x.shape))
                    column = tensor_jvp(out, {x: tangent})
                    arrays[j][i].reshape(-1, x.numel())[:, col] = column.reshape(-1)
    if strict and strategy == "reverse-mode":
        for i, was_used in enumerate(used):
            if not was_used:
                _unused(strict, i)
    jac = [_shaped([Tensor(b) for b in row], in_tuple) for row in arrays]
    return _shaped(jac, out_tuple)


# ---------------------------------------------------------------------------------------------
# Second derivatives: from the gradient's recorded graph

_INDEPENDENT_JACOBIAN = ("The jacobian of the user-provided function is independent of input "
                         "{i}. This is not allowed in strict mode.")


def _gradient_graph(name: str, func: Callable[..., Any], inputs: Any, create_graph: bool,
                    strict: bool) -> tuple[bool, tuple[Tensor, ...], Tensor, list[Tensor]]:
    """(inputs was a tuple, the leaves, func's output, its gradient as recorded Tensors)."""
    ins, in_tuple = _as_tuple(inputs, "inputs")
    leaves = _fresh_leaves(ins, create_graph)
    outs, _ = _call(func, leaves)
    if len(outs) != 1 or outs[0].numel() != 1:
        raise RuntimeError(f"The function given to {name} should return a single Tensor "
                           f"containing a single element" if len(outs) != 1 else
                           f"The Tensor returned by the function given to {name} should "
                           f"contain a single element")
    out = outs[0]
    seed = Tensor(np.ones(out.shape, dtype=out.numpy().dtype))
    first = _vjp_graph((out,), [seed], leaves, strict)
    return in_tuple, leaves, out, first


def hessian(func: Callable[..., Any], inputs: Any, create_graph: bool = False,
            strict: bool = False, vectorize: bool = False,
            outer_jacobian_strategy: str = "reverse-mode") -> Any:
    """The Hessian of func (returning one single-element Tensor) at inputs: for inputs x_i,
    x_j the block d2 func / dx_i dx_j of shape x_i.shape + x_j.shape, in tuples of tuples for
    a tuple of inputs. Reverse over reverse: one sweep through the gradient's recorded graph per
    row (compiled, or recorded again if create_graph)."""
    if outer_jacobian_strategy not in ("forward-mode", "reverse-mode"):
        raise ValueError('Expected strategy to be either "forward-mode" or "reverse-mode".')
    if strict and vectorize:
        raise RuntimeError("torch.autograd.functional.hessian: `strict=True` and "
                           "`vectorize=True` are not supported together. Please either set "
                           "`strict=False` or `vectorize=False`.")
    in_tuple, leaves, _, first = _gradient_graph("hessian", func, inputs, create_graph, strict)
    rows = []
    for i, g in enumerate(first):
        if create_graph:
            blocks, used = _jacobian_rows_graph(g, leaves) if g.requires_grad else \
                ([Tensor(np.zeros(tuple(g.shape) + tuple(x.shape), dtype=g.numpy().dtype))
                  for x in leaves], [False] * len(leaves))
        else:
            blocks, used = _jacobian_rows(g, leaves)
        for j, was_used in enumerate(used):
            if not was_used:
                _unused(strict, j, _INDEPENDENT_JACOBIAN.format(i=j))
        rows.append(_shaped(blocks, in_tuple))
    return _shaped(rows, in_tuple)


def _jacobian_rows(out: Tensor, leaves: tuple[Tensor, ...]) -> tuple[list[Tensor], list[bool]]:
    """The blocks d out / d leaf as constant Tensors, one compiled reverse sweep per entry."""
    dtype = out.numpy().dtype
    blocks = [np.zeros(tuple(out.shape) + tuple(x.shape), dtype=dtype) for x in leaves]
    used = [False] * len(leaves)
    if out.requires_grad:
        for r in range(out.numel()):
            grads = tensor_vjp(out, _unit(out.numel(), r, dtype, tuple(out.shape)), leaves)
            for i, g in enumerate(grads):
                if g is not None:
                    used[i] = True
                    blocks[i].reshape(out.numel(), -1)[r] = g.reshape(-1)
    return [Tensor(b) for b in blocks], used


def hvp(func: Callable[..., Any], inputs: Any, v: Any = None, create_graph: bool = False,
        strict: bool = False) -> tuple[Any, Any]:
    """(func(inputs), H v) for func returning one single-element Tensor: forward over reverse,
    one tangent sweep through the gradient's recorded graph (recorded itself if
    create_graph)."""
    in_tuple, leaves, out, first = _gradient_graph("hvp", func, inputs, create_graph, strict)
    vs = _vectors(v, leaves, "input")
    if create_graph:    # H is symmetric: H v is the gradient of (gradient . v), recorded
        products = _vhp_graph(first, leaves, vs, strict)
    else:
        tangents: dict[Tensor, Any] = dict(zip(leaves, vs))
        products = []
        for j, g in enumerate(first):
            if g.requires_grad:
                products.append(Tensor(tensor_jvp(g, tangents)))
            else:
                _unused(strict, j, _INDEPENDENT_JACOBIAN.format(i=j))
                products.append(_zeros_like(g))
    return _outputs((out,), create_graph)[0], _shaped(products, in_tuple)


def _vhp_graph(first: list[Tensor], leaves: tuple[Tensor, ...], vs: list[np.ndarray],
               strict: bool) -> list[Tensor]:
    dot = None
    for g, v in zip(first, vs):
        if g.requires_grad:
            term = (g * Tensor(v)).sum()
            dot = term if dot is None else dot + term
    if dot is None:
        for j in range(len(leaves)):
            _unused(strict, j, _INDEPENDENT_JACOBIAN.format(i=j))
        return [_zeros_like(x) for x in leaves]
    seed = Tensor(np.ones((), dtype=dot.numpy().dtype))
    return _vjp_graph((dot,), [seed], leaves, strict, _INDEPENDENT_JACOBIAN)


def vhp(func: Callable[..., Any], inputs: Any, v: Any = None, create_graph: bool = False,
        strict: bool = False) -> tuple[Any, Any]:
    """(func(inputs), v^T H) for func returning one single-element Tensor: the gradient of
    (gradient . v), one reverse sweep through the gradient's recorded graph."""
    in_tuple, leaves, out, first = _gradient_graph("vhp", func, inputs, create_graph, strict)
    vs = _vectors(v, leaves, "input")
    if create_graph:
        products = _vhp_graph(first, leaves, vs, strict)
    else:
        dot = None
        for g, vec in zip(first, vs):
            if g.requires_grad:
                term = (g * Tensor(vec)).sum()
                dot = term if dot is None else dot + term
        if dot is None:
            for j in range(len(leaves)):
                _unused(strict, j, _INDEPENDENT_JACOBIAN.format(i=j))
            products = [_zeros_like(x) for x in leaves]
        else:
            seed = np.ones((), dtype=dot.numpy().dtype)
            grads = tensor_vjp(dot, seed, leaves)
            products = []
            for j, (x, g2) in enumerate(zip(leaves, grads)):
                if g2 is None:
                    _unused(strict, j, _INDEPENDENT_JACOBIAN.format(i=j))
                    products.append(_zeros_like(x))
                else:
                    products.append(Tensor(g2))
    return _outputs((out,), create_graph)[0], _shaped(products, in_tuple)
