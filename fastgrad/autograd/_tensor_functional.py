"""``torch.autograd.functional``'s first-order functions for Tensors: ``vjp`` (reverse mode),
``jvp`` (forward mode: one tangent sweep, ``fastgrad._tensor.tensor_jvp``) and ``jacobian``
(by rows of vector-Jacobian products, or by columns of Jacobian-vector products with
``strategy='forward-mode'``).

As in PyTorch, ``func`` is called on fresh leaves made from the inputs (the caller's tensors
and their ``.grad`` are left alone), and the outputs come back detached. An input the outputs
do not use has a zero derivative (``strict=True`` raises instead).

>>> import fastgrad
>>> x = fastgrad.tensor([1.0, 2.0])
>>> jacobian(lambda t: t * t, x).tolist()
[[2.0, 0.0], [0.0, 4.0]]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from fastgrad._tensor import Tensor, tensor_jvp
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


def _fresh_leaves(inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """Inputs as new leaves that require grad (floating), sharing no history with the caller's."""
    leaves = []
    for x in inputs:
        if not x.is_floating_point():
            raise RuntimeError("only Tensors of floating point dtype can require gradients")
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


def _unused(strict: bool, i: int) -> None:
    if strict:
        raise RuntimeError(f"The output of the user-provided function is independent of "
                           f"input {i}. This is not allowed in strict mode.")


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


def _no_create_graph(create_graph: bool, name: str) -> None:
    if create_graph:
        raise NotImplementedError(f"{name}(create_graph=True) for tensors: higher-order "
                                  f"gradients of tensors are not supported yet")


def _shaped(values: list[Tensor], is_tuple: bool) -> Any:
    return tuple(values) if is_tuple else values[0]


def vjp(func: Callable[..., Any], inputs: Any, v: Any = None, create_graph: bool = False,
        strict: bool = False) -> tuple[Any, Any]:
    """(func(inputs), v . J): the vector-Jacobian product of func at inputs."""
    _no_create_graph(create_graph, "vjp")
    ins, in_tuple = _as_tuple(inputs, "inputs")
    leaves = _fresh_leaves(ins)
    outs, out_tuple = _call(func, leaves)
    seeds = _vectors(v, outs, "outputs")
    grads = _vjp_arrays(outs, seeds, leaves, strict)
    return (_shaped([o.detach() for o in outs], out_tuple),
            _shaped([Tensor(g) for g in grads], in_tuple))


def jvp(func: Callable[..., Any], inputs: Any, v: Any = None, create_graph: bool = False,
        strict: bool = False) -> tuple[Any, Any]:
    """(func(inputs), J . v): the Jacobian-vector product of func at inputs, by forward mode."""
    _no_create_graph(create_graph, "jvp")
    ins, in_tuple = _as_tuple(inputs, "inputs")
    leaves = _fresh_leaves(ins)
    tangents = _vectors(v, leaves, "input")
    outs, out_tuple = _call(func, leaves)
    products = []
    for out in outs:
        if out.requires_grad:
            products.append(Tensor(tensor_jvp(out, dict(zip(leaves, tangents)))))
        else:
            _unused(strict, 0)
            products.append(Tensor(np.zeros(out.shape, dtype=out.numpy().dtype)))
    return _shaped([o.detach() for o in outs], out_tuple), _shaped(products, out_tuple)


def jacobian(func: Callable[..., Any], inputs: Any, create_graph: bool = False,
             strict: bool = False, vectorize: bool = False,
             strategy: str = "reverse-mode") -> Any:
    """The Jacobian of func at inputs: for output o and input x, a Tensor of shape
    o.shape + x.shape; nested in tuples as PyTorch nests them (outputs, then inputs)."""
    _no_create_graph(create_graph, "jacobian")
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
    leaves = _fresh_leaves(ins)
    outs, out_tuple = _call(func, leaves)
    used = [False] * len(leaves)
    blocks = [[np.zeros(tuple(o.shape) + tuple(x.shape), dtype=o.numpy().dtype)
               for x in leaves] for o in outs]
    for j, out in enumerate(outs):
        if not out.requires_grad:
            continue
        dtype = out.numpy().dtype
        if strategy == "reverse-mode":
            for row in range(out.numel()):      # one vector-Jacobian product per output entry
                seed = np.zeros(out.numel(), dtype=dtype)
                seed[row] = 1.0
                grads = tensor_vjp(out, seed.reshape(out.shape), leaves)
                for i, g in enumerate(grads):
                    if g is not None:
                        used[i] = True
                        blocks[j][i].reshape(out.numel(), -1)[row] = g.reshape(-1)
        else:
            for i, x in enumerate(leaves):      # one Jacobian-vector product per input entry
                for col in range(x.numel()):
                    tangent = np.zeros(x.numel(), dtype=x.numpy().dtype)
                    tangent[col] = 1.0
                    column = tensor_jvp(out, {x: tangent.reshape(x.shape)})
                    blocks[j][i].reshape(-1, x.numel())[:, col] = column.reshape(-1)
    if strict and strategy == "reverse-mode":
        for i, was_used in enumerate(used):
            if not was_used:
                _unused(strict, i)
    jac = [_shaped([Tensor(b) for b in row], in_tuple) for row in blocks]
    return _shaped(jac, out_tuple)
