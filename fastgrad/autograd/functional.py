"""``torch.autograd.functional``'s names for scalar functions of Values: ``jacobian``,
``hessian``, ``vjp``, ``jvp``, ``hvp``, ``vhp``, with PyTorch's signatures.

``func`` takes the inputs as positional arguments (``func(*inputs)`` for a tuple, ``func(x)``
for one input) and returns a Value (or, for ``jacobian``, ``vjp`` and ``jvp``, a tuple of
Values). Inputs are Values or numbers. Results have PyTorch's structure with a Value in place
of each tensor: one input and one output give a single Value, a tuple of inputs a tuple over
the inputs, and so on (``hessian`` of a function of n inputs is an n-tuple of n-tuples). With
``create_graph=False`` (the default) the function runs on fresh leaves holding the inputs'
values, so nothing is recorded on the caller's Values and the results are constant Values
(read them with ``.data``); with ``create_graph=True`` it runs on the inputs themselves and the
results are differentiable with respect to them. ``vectorize`` and the strategies are accepted
for compatibility and change nothing: Values are scalars.

Tensors go to the tensor engine's versions (fastgrad/autograd/_tensor_functional.py), with
PyTorch's shapes: one Tensor per input (and output), second derivatives included.

>>> from fastgrad.autograd.functional import hessian
>>> H = hessian(lambda x, y: x * x * y + y ** 3, (1.0, 2.0))
>>> [[h.data for h in row] for row in H]
[[4.0, 2.0], [2.0, 12.0]]
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

from fastgrad import engine
from fastgrad._scalar.graph_rules import engine_of
from fastgrad._tensor import Tensor
from fastgrad.autograd import _tensor_functional
from fastgrad.autograd.reverse_mode import TENSOR_MESSAGE, grad

__all__ = ["jacobian", "hessian", "vjp", "jvp", "hvp", "vhp"]


def _has_tensor(inputs: Any) -> bool:
    given = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    return any(isinstance(x, Tensor) for x in given)


def _prepare(name: str, inputs: Any, create_graph: bool) -> tuple[bool, tuple, type]:
    """(inputs was a tuple, the Values to differentiate at, their Value class)."""
    is_tuple = isinstance(inputs, (tuple, list))
    given = tuple(inputs) if is_tuple else (inputs,)
    if any(isinstance(x, Tensor) for x in given):
        raise NotImplementedError(f"fastgrad.autograd.functional.{name}: {TENSOR_MESSAGE}")
    value_type: Any = engine.Value
    for x in given:
        if not isinstance(x, numbers.Real):
            value_type = engine_of(x)[0]  # TypeError for anything but a Value or a number
            break
    leaves = []
    for x in given:
        if isinstance(x, value_type):
            leaves.append(x if create_graph else value_type(x.data))
        elif isinstance(x, numbers.Real):
            leaves.append(value_type(float(x)))
        else:
            raise TypeError(f"{name}: inputs must be Values or numbers, not {type(x).__name__}")
    return is_tuple, tuple(leaves), value_type


def _call(name: str, func: Callable, is_tuple: bool, leaves: tuple, value_type: type,
          single: bool) -> tuple[bool, tuple]:
    """func's outputs as (they were a tuple, the outputs)."""
    out = func(*leaves) if is_tuple else func(leaves[0])
    out_is_tuple = isinstance(out, (tuple, list))
    outputs = tuple(out) if out_is_tuple else (out,)
    for o in outputs:
        if not isinstance(o, value_type):
            raise TypeError(f"The outputs of the user-provided function given to {name} must "
                            f"be Values (or a tuple of Values), not {type(o).__name__}")
    if single and (out_is_tuple or len(outputs) != 1):
        raise RuntimeError(f"The function given to {name} should return a single Value")
    return out_is_tuple, outputs


def _shaped(is_tuple: bool, items: list) -> Any:
    return tuple(items) if is_tuple else items[0]


def _vector(name: str, v: Any, like: tuple, like_is_tuple: bool, what: str) -> tuple:
    """v as one number or Value per entry of `like` (v None: 1, for a single entry)."""
    if v is None:
        if like_is_tuple or len(like) != 1:
            raise RuntimeError(f"The vector v can only be None if the {what} of the "
                               "user-provided function is a single Value.")
        return (1.0,)
    given = tuple(v) if isinstance(v, (tuple, list)) else (v,)
    if len(given) != len(like):
        raise RuntimeError(f"{name}: v has {len(given)} entries, the {what} {len(like)}")
    for x in given:
        if isinstance(x, Tensor):
            raise NotImplementedError(f"fastgrad.autograd.functional.{name}: {TENSOR_MESSAGE}")
    return given


def _zero_if_none(g: Any, value_type: type, strict: bool, message: str) -> Any:
    if g is None:
        if strict:
            raise RuntimeError(message)
        return value_type(0.0)
    return g


def _detached(outputs: tuple, value_type: type, create_graph: bool) -> tuple:
    return outputs if create_graph else tuple(value_type(o.data) for o in outputs)


def _dot(gs: tuple, vs: tuple, value_type: type) -> Any:
    total: Any = None
    for g, v in zip(gs, vs):
        term = g * v
        total = term if total is None else total + term
    return total if isinstance(total, value_type) else value_type(total)


def jacobian(func: Callable, inputs: Any, create_graph: bool = False, strict: bool = False,
             vectorize: bool = False, strategy: str = "reverse-mode") -> Any:
    """d(output)/d(input) for every output and input of ``func`` (PyTorch's structure: a
    tuple over outputs if func returns a tuple, of tuples over inputs if inputs is a tuple).

    >>> J = jacobian(lambda x, y: (x * y, x + y), (2.0, 3.0))
    >>> [[d.data for d in row] for row in J]
    [[3.0, 2.0], [1.0, 1.0]]
    """
    if strategy not in ("forward-mode", "reverse-mode"):
        raise ValueError('Expected strategy to be either "forward-mode" or "reverse-mode". '
                         f'Hint: If your strategy is "{strategy}", you may have made a typo.')
    if strict and vectorize:
        raise RuntimeError("jacobian: `strict=True` and `vectorize=True` are not supported "
                           "together. Please either set `strict=False` or `vectorize=False`.")
    if _has_tensor(inputs):
        return _tensor_functional.jacobian(func, inputs, create_graph=create_graph,
                                           strict=strict, vectorize=vectorize,
                                           strategy=strategy)
    is_tuple, leaves, value_type = _prepare("jacobian", inputs, create_graph)
    out_is_tuple, outputs = _call("jacobian", func, is_tuple, leaves, value_type, single=False)
    rows = []
    for i, out in enumerate(outputs):
        gs = grad(out, leaves, create_graph=create_graph, allow_unused=True)
        row = [_zero_if_none(g, value_type, strict,
                             f"Output {i} of the user-provided function is independent of "
                             f"input {j}. This is not allowed in strict mode.")
               for j, g in enumerate(gs)]
        rows.append(_shaped(is_tuple, row))
    return _shaped(out_is_tuple, rows)


def hessian(func: Callable, inputs: Any, create_graph: bool = False, strict: bool = False,
            vectorize: bool = False, outer_jacobian_strategy: str = "reverse-mode") -> Any:
    """The second derivatives of a function returning one Value: H[i][j] is
    d2 func / d input_i d input_j, as a tuple of tuples of Values for a tuple of inputs (a
    single Value for a single input). Reverse over reverse: the gradient is built as Values
    (create_graph), then each of its entries is differentiated.

    >>> from fastgrad import Value
    >>> hessian(lambda x: x ** 3, Value(2.0)).data
    12.0
    """
    if _has_tensor(inputs):
        return _tensor_functional.hessian(func, inputs, create_graph=create_graph,
                                          strict=strict, vectorize=vectorize,
                                          outer_jacobian_strategy=outer_jacobian_strategy)
    if outer_jacobian_strategy not in ("forward-mode", "reverse-mode"):
        raise ValueError('Expected strategy to be either "forward-mode" or "reverse-mode".')
    if strict and vectorize:
        raise RuntimeError("hessian: `strict=True` and `vectorize=True` are not supported "
                           "together. Please either set `strict=False` or `vectorize=False`.")
    is_tuple, leaves, value_type, _, first = _gradient_graph("hessian", func, inputs,
                                                             create_graph, strict)
    rows = []
    for i, g in enumerate(first):
        second = (grad(g, leaves, create_graph=create_graph, allow_unused=True)
                  if isinstance(g, value_type) else (None,) * len(leaves))
        row = [_zero_if_none(
            h, value_type, strict,
            "While computing the hessian, found that the jacobian of the user-provided "
            f"function with respect to input {i} is independent of input {j}. This is not "
            "allowed in strict mode. You should ensure that your function is twice "
            "differentiable and that the jacobian depends on the inputs (this would be "
            "violated by a linear function for example).") for j, h in enumerate(second)]
        rows.append(_shaped(is_tuple, row))
    return _shaped(is_tuple, rows)


def _gradient_graph(name: str, func: Callable, inputs: Any, create_graph: bool, strict: bool
                    ) -> tuple[bool, tuple, type, Any, tuple]:
    """(inputs was a tuple, leaves, Value class, func's output, its gradient as Values with a
    graph: the first step of hessian, hvp and vhp)."""
    is_tuple, leaves, value_type = _prepare(name, inputs, create_graph)
    _, (out,) = _call(name, func, is_tuple, leaves, value_type, single=True)
    gs = grad(out, leaves, create_graph=True, allow_unused=True)
    first = tuple(_zero_if_none(g, value_type, strict,
                                f"The output of the user-provided function is independent "
                                f"of input {j}. This is not allowed in strict mode.")
                  for j, g in enumerate(gs))
    return is_tuple, leaves, value_type, out, first


def vjp(func: Callable, inputs: Any, v: Any = None, create_graph: bool = False,
        strict: bool = False) -> tuple[Any, Any]:
    """(func's output, v^T J): the gradient of sum(v_i * output_i) with respect to each input.

    >>> out, g = vjp(lambda x, y: x * y, (2.0, 3.0))
    >>> out.data, [d.data for d in g]
    (6.0, [3.0, 2.0])
    """
    if _has_tensor(inputs):
        return _tensor_functional.vjp(func, inputs, v, create_graph=create_graph, strict=strict)
    is_tuple, leaves, value_type = _prepare("vjp", inputs, create_graph)
    out_is_tuple, outputs = _call("vjp", func, is_tuple, leaves, value_type, single=False)
    vs = _vector("vjp", v, outputs, out_is_tuple, "output")
    gs = grad(outputs, leaves, grad_outputs=vs, create_graph=create_graph, allow_unused=True)
    result = [_zero_if_none(g, value_type, strict,
                            f"The output of the user-provided function is independent of "
                            f"input {j}. This is not allowed in strict mode.")
              for j, g in enumerate(gs)]
    return (_shaped(out_is_tuple, list(_detached(outputs, value_type, create_graph))),
            _shaped(is_tuple, result))


def jvp(func: Callable, inputs: Any, v: Any = None, create_graph: bool = False,
        strict: bool = False) -> tuple[Any, Any]:
    """(func's output, J v): the derivative of each output along the direction v.

    >>> out, d = jvp(lambda x, y: x * y, (2.0, 3.0), (1.0, 0.0))
    >>> out.data, d.data
    (6.0, 3.0)
    """
    if _has_tensor(inputs):
        return _tensor_functional.jvp(func, inputs, v, create_graph=create_graph, strict=strict)
    is_tuple, leaves, value_type = _prepare("jvp", inputs, create_graph)
    vs = _vector("jvp", v, leaves, is_tuple, "input")
    out_is_tuple, outputs = _call("jvp", func, is_tuple, leaves, value_type, single=False)
    result = []
    for i, out in enumerate(outputs):
        gs = grad(out, leaves, create_graph=create_graph, allow_unused=True)
        gs = tuple(_zero_if_none(g, value_type, strict,
                                 f"The output {i} of the user-provided function is "
                                 f"independent of input {j}. This is not allowed in strict "
                                 "mode.") for j, g in enumerate(gs))
        result.append(_dot(gs, vs, value_type))
    return (_shaped(out_is_tuple, list(_detached(outputs, value_type, create_graph))),
            _shaped(out_is_tuple, result))


def _second(name: str, func: Callable, inputs: Any, v: Any, create_graph: bool, strict: bool,
            rows: bool) -> tuple[Any, Any]:
    is_tuple, leaves, value_type, out, first = _gradient_graph(name, func, inputs,
                                                               create_graph, strict)
    vs = _vector(name, v, leaves, is_tuple, "input")
    message = ("The jacobian of the user-provided function is independent of input {j}. "
               "This is not allowed in strict mode.")
    if rows:  # H v: each entry of the gradient, differentiated, dotted with v
        result = []
        for g in first:
            second = (grad(g, leaves, create_graph=create_graph, allow_unused=True)
                      if isinstance(g, value_type) else (None,) * len(leaves))
            second = tuple(_zero_if_none(h, value_type, strict, message.format(j=j))
                           for j, h in enumerate(second))
            result.append(_dot(second, vs, value_type))
    else:  # v^T H: the gradient of (gradient . v), one sweep
        dot = _dot(first, vs, value_type)
        gs = grad(dot, leaves, create_graph=create_graph, allow_unused=True)
        result = [_zero_if_none(g, value_type, strict, message.format(j=j))
                  for j, g in enumerate(gs)]
    return _detached((out,), value_type, create_graph)[0], _shaped(is_tuple, result)


def hvp(func: Callable, inputs: Any, v: Any = None, create_graph: bool = False,
        strict: bool = False) -> tuple[Any, Any]:
    """(func's output, H v) for a function returning one Value.

    >>> out, hv = hvp(lambda x, y: x * x * y, (1.0, 2.0), (1.0, 0.0))
    >>> out.data, [d.data for d in hv]
    (2.0, [4.0, 2.0])
    """
    if _has_tensor(inputs):
        return _tensor_functional.hvp(func, inputs, v, create_graph=create_graph, strict=strict)
    return _second("hvp", func, inputs, v, create_graph, strict, rows=True)


def vhp(func: Callable, inputs: Any, v: Any = None, create_graph: bool = False,
        strict: bool = False) -> tuple[Any, Any]:
    """(func's output, v^T H) for a function returning one Value (one sweep through the
    gradient's graph; equal to hvp's H v, as a Hessian is symmetric).

    >>> out, vh = vhp(lambda x, y: x * x * y, (1.0, 2.0), (1.0, 0.0))
    >>> out.data, [d.data for d in vh]
    (2.0, [4.0, 2.0])
    """
    if _has_tensor(inputs):
        return _tensor_functional.vhp(func, inputs, v, create_graph=create_graph, strict=strict)
    return _second("vhp", func, inputs, v, create_graph, strict, rows=False)
