"""PyTorch's top-level tensor functions (``torch.exp(x)``, ``torch.where(c, a, b)``, ...).

Each is the Tensor method of the same name, applied to its first argument (made a tensor if it
is a number or an array): the method is the one home of the op.

>>> import fastgrad
>>> fastgrad.sqrt(fastgrad.tensor([4.0, 9.0])).tolist()
[2.0, 3.0]
>>> fastgrad.maximum(fastgrad.tensor([1, 5]), fastgrad.tensor([3, 2])).tolist()
[3, 5]
"""
from __future__ import annotations

from typing import Any, Callable

from fastgrad._tensor.functional import concatenate, stack
from fastgrad._tensor.tensor import Tensor, where

# Functions that are the method of the same name on their first argument.
_METHODS = (
    "add", "sub", "subtract", "mul", "multiply", "div", "divide", "true_divide", "floor_divide",
    "remainder", "fmod", "pow", "neg", "negative", "matmul", "mm", "bmm", "dot",
    "sqrt", "rsqrt", "abs", "absolute", "sign", "exp", "log", "log2", "log10", "log1p", "expm1",
    "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "sigmoid", "relu",
    "erf", "reciprocal", "square", "floor", "ceil", "round", "trunc", "frac",
    "clamp", "clip", "clamp_min", "clamp_max", "maximum", "minimum", "masked_fill", "gather",
    "index_select", "masked_select", "take_along_dim", "lerp", "addmm",
    "sum", "nansum", "mean", "var", "std", "prod", "amax", "amin", "argmax", "argmin",
    "logsumexp", "norm", "cumsum", "all", "any", "count_nonzero", "topk", "sort", "argsort",
    "softmax", "log_softmax",
    "eq", "ne", "lt", "le", "gt", "ge", "equal", "isclose", "allclose", "isnan", "isinf",
    "isfinite", "logical_not", "logical_and", "logical_or", "logical_xor",
    "reshape", "flatten", "unflatten", "squeeze", "unsqueeze", "permute", "transpose",
    "swapaxes", "swapdims", "t", "flip", "fliplr", "flipud", "roll", "split", "chunk", "unbind",
    "clone", "detach", "numel", "tile", "broadcast_to", "ravel",
)


def _as_tensor(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def _method_function(name: str) -> Callable[..., Any]:
    def function(input: Any, *args: Any, **kwargs: Any) -> Any:
        return getattr(_as_tensor(input), name)(*args, **kwargs)
    function.__name__ = function.__qualname__ = name
    function.__doc__ = f"``input.{name}(...)`` (see Tensor.{name})."
    return function


for _name in _METHODS:
    globals()[_name] = _method_function(_name)
del _name


def max(input: Any, dim: Any = None, keepdim: bool = False, **kwargs: Any) -> Any:
    """torch.max: the largest element, (values, indices) along dim, or the elementwise maximum
    of two tensors."""
    return _as_tensor(input).max(dim, keepdim, **kwargs)


def min(input: Any, dim: Any = None, keepdim: bool = False, **kwargs: Any) -> Any:
    """torch.min (see max)."""
    return _as_tensor(input).min(dim, keepdim, **kwargs)


def cat(tensors: Any, dim: int = 0, *, axis: Any = None) -> Tensor:
    """The tensors joined along dim (torch.cat)."""
    return concatenate(tensors, dim if axis is None else axis)


concat = cat


def numel(input: Tensor) -> int:
    """The number of elements."""
    return input.numel()


def is_tensor(obj: Any) -> bool:
    return isinstance(obj, Tensor)


def is_floating_point(input: Tensor) -> bool:
    return input.is_floating_point()


def broadcast_tensors(*tensors: Tensor) -> tuple[Tensor, ...]:
    """The tensors expanded to their common shape."""
    import numpy as np
    shape = np.broadcast_shapes(*[t.shape for t in tensors])
    return tuple(t.expand(shape) for t in tensors)


__all__ = list(_METHODS) + ["max", "min", "cat", "concat", "stack", "where", "is_tensor",
                            "is_floating_point", "broadcast_tensors"]
