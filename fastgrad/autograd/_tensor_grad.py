"""``torch.autograd.grad`` for Tensors, first order: the gradients of outputs with respect to
inputs (leaves or not), returned instead of accumulated into ``.grad``.

One reverse sweep per output (``fastgrad._tensor.sweep.tensor_vjp``), the sum over outputs of
``grad_outputs[i] . d(outputs[i])/d(inputs)``, with PyTorch's checks and messages. Higher
orders (``create_graph=True``) need every backward rule recorded as tensor ops, which the
tensor engine does not do yet (issue 15): they raise NotImplementedError.

>>> import fastgrad
>>> x = fastgrad.tensor([1.0, 2.0, 3.0], requires_grad=True)
>>> (dx,) = tensor_grad((x * x).sum(), x)
>>> dx.tolist(), x.grad is None
([2.0, 4.0, 6.0], True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fastgrad._tensor import Tensor
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


def tensor_grad(outputs: Tensor | Sequence[Tensor], inputs: Tensor | Sequence[Tensor],
                grad_outputs: Any = None, retain_graph: bool | None = None,
                create_graph: bool = False, allow_unused: bool | None = None,
                materialize_grads: bool = False) -> tuple[Tensor | None, ...]:
    """The gradients of sum(grad_outputs[i] * outputs[i]) with respect to each input, as new
    Tensors (None for an input the outputs do not use, if allow_unused). The recorded graph is
    kept (retain_graph has no effect) and no .grad changes."""
    if create_graph:
        raise NotImplementedError(
            "grad(create_graph=True) for tensors: higher-order gradients of tensors are not "
            "supported yet (for Values they are)")
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
    total: list[np.ndarray | None] = [None] * len(ins)
    for out, given in zip(outs, seeds_given):
        if not out.requires_grad:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a "
                               "grad_fn")
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
        result.append(Tensor(g))
    return tuple(result)
