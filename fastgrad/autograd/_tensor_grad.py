"""``torch.autograd.grad`` for Tensors: the gradients of outputs with respect to inputs
(leaves or not), returned instead of accumulated into ``.grad``.

The sum over outputs of ``grad_outputs[i] . d(outputs[i])/d(inputs)``, with PyTorch's checks
and messages. First order: one compiled reverse sweep per output
(``fastgrad._tensor.sweep.tensor_vjp``). With ``create_graph=True`` the gradients are built from
recorded Tensor ops (``fastgrad._tensor.graph_rules``), so they can be differentiated again, to
any order; a ``grad_outputs`` Tensor that requires grad is then part of that graph too.

>>> import fastgrad
>>> x = fastgrad.tensor([1.0, 2.0, 3.0], requires_grad=True)
>>> (dx,) = tensor_grad((x * x * x).sum(), x, create_graph=True)
>>> dx.tolist(), x.grad is None
([3.0, 12.0, 27.0], True)
>>> tensor_grad(dx.sum(), x)[0].tolist()
[6.0, 12.0, 18.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fastgrad._tensor import Tensor
from fastgrad._tensor.graph_rules import graph_gradients
from fastgrad._tensor.sweep import tensor_vjp


def as_tensor_tuple(items: Any, what: str) -> tuple[Tensor, ...]:
    """A Tensor or a sequence of Tensors as a tuple (TypeError naming `what` otherwise)."""
    seq = (items,) if isinstance(items, Tensor) else tuple(items)
    for t in seq:
        if not isinstance(t, Tensor):
            raise TypeError(f"grad(): {what} must be Tensors, got {type(t).__name__}")
    return seq


def _seed(output: Tensor, given: Any) -> np.ndarray:
    """grad_output for one output as an array of its shape and dtype (ones for a scalar)."""
    data = output.numpy()
    if given is None:
        if data.size != 1:
            raise RuntimeError("grad can be implicitly created only for scalar outputs")
        return np.ones(data.shape, dtype=data.dtype)
    seed = np.array(given.numpy() if isinstance(given, Tensor) else given, dtype=data.dtype)
    if seed.shape != data.shape:
        raise RuntimeError(f"Mismatch in shape: grad_output[0] has a shape of "
                           f"{list(seed.shape)} and output[0] has a shape of "
                           f"{list(data.shape)}.")
    return seed


def _seed_tensor(output: Tensor, given: Any) -> Tensor:
    """grad_output for one output as a Tensor (kept as given, graph and all, if it is a Tensor
    of the output's shape and dtype)."""
    if isinstance(given, Tensor) and tuple(given.shape) == tuple(output.shape) \
            and given.dtype == output.dtype:
        return given
    return Tensor(_seed(output, given))


def tensor_grad(outputs: Tensor | Sequence[Tensor], inputs: Tensor | Sequence[Tensor],
                grad_outputs: Any = None, retain_graph: bool | None = None,
                create_graph: bool = False, allow_unused: bool | None = None,
                materialize_grads: bool = False) -> tuple[Tensor | None, ...]:
    """The gradients of sum(grad_outputs[i] * outputs[i]) with respect to each input, as new
    Tensors (None for an input the outputs do not use, if allow_unused), recorded if
    create_graph. The recorded graph is kept (retain_graph has no effect) and no .grad
    changes."""
    outs = as_tensor_tuple(outputs, "outputs")
    ins = as_tensor_tuple(inputs, "inputs")
    if materialize_grads and allow_unused is False:
        raise ValueError("Expected allow_unused to be True or not passed when "
                         "materialize_grads=True, but got: allow_unused=False.")
    if grad_outputs is None:
        seeds_given: Sequence[Any] = [None] * len(outs)
    else:
        seeds_given = (grad_outputs,) if isinstance(grad_outputs, Tensor) else \
            tuple(grad_outputs)
        if len(seeds_given) != len(outs):
            raise RuntimeError(f"grad requires one grad_output per output: got "
                               f"{len(seeds_given)} grad_outputs and {len(outs)} outputs")
    for x in ins:
        if not x.requires_grad:
            raise RuntimeError("One of the differentiated Tensors does not require grad")
    for out in outs:
        if not out.requires_grad:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a "
                               "grad_fn")
    total: list[Any] = [None] * len(ins)
    if create_graph:
        total = graph_gradients(outs, [_seed_tensor(out, given)
                                       for out, given in zip(outs, seeds_given)], ins)
    else:
        for out, given in zip(outs, seeds_given):
            for k, g in enumerate(tensor_vjp(out, _seed(out, given), ins)):
                if g is not None:
                    before = total[k]
                    total[k] = g if before is None else before + g
    result: list[Tensor | None] = []
    for x, g in zip(ins, total):
        if g is None:
            if materialize_grads:
                g = np.zeros(x.shape, dtype=x.numpy().dtype)
            elif not allow_unused:
                raise RuntimeError("One of the differentiated Tensors appears to not have been "
                                   "used in the graph. Set allow_unused=True if this is the "
                                   "desired behavior.")
            else:
                result.append(None)
                continue
        result.append(g if isinstance(g, Tensor) else Tensor(g))
    return tuple(result)
