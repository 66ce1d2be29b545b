"""Tensor factories with PyTorch's names, signatures and dtype rules (``torch.zeros``,
``torch.arange``, ``torch.randn``, ...).

Each factory builds a numpy array of the right dtype and wraps it (``_wrap``). dtype rules, as
PyTorch's: float factories (``zeros``, ``rand``, ``linspace``, ...) make the default dtype
(``fastgrad.get_default_dtype()``, float32 unless changed); ``arange`` of integers, ``randint``
and ``randperm`` make int64; ``tensor`` and ``full`` infer from the Python data (floats -> the
default dtype, ints -> int64, bools -> bool) and keep a numpy array's dtype. Random factories
draw from ``generator=`` or the default generator (``fastgrad.manual_seed``); their numbers are
not PyTorch's (a different generator), their distributions are.

>>> import fastgrad
>>> zeros(2, 3).shape, arange(5).dtype == fastgrad.int64
((2, 3), True)
"""
from __future__ import annotations

import math
import numbers
import operator
import warnings
from typing import Any, Sequence

import numpy as np

from fastgrad._device import check_device
from fastgrad._random import Generator, draw_normal, draw_uniform, numpy_generator
from fastgrad._tensor import Tensor
from fastgrad._tensor.dtype import get_default_dtype, to_dtype

_GRAD_DTYPE_ERROR = "Only Tensors of floating point and complex dtype can require gradients"


# ---------------------------------------------------------------------------------------------
# Shared argument handling


def _wrap(arr: np.ndarray, requires_grad: bool = False) -> Tensor:
    """A Tensor over ``arr`` itself (no copy: from_numpy and as_tensor share memory).

    ``.data =`` is the contract's way to put an existing array into a tensor without copying
    (the constructor copies its data)."""
    if requires_grad and arr.dtype.kind != "f":
        raise RuntimeError(_GRAD_DTYPE_ERROR)
    t = Tensor(np.zeros((), dtype=arr.dtype), requires_grad=bool(requires_grad))
    t.data = arr
    return t


def _np_dtype(dtype: Any, default: np.dtype | None = None) -> np.dtype:
    """The numpy dtype of a ``dtype=`` argument; None gives ``default`` (the default dtype if
    that is None too)."""
    if dtype is None:
        return default if default is not None else get_default_dtype().dtype
    return to_dtype(dtype).dtype


def _floating(dtype: np.dtype, what: str) -> np.dtype:
    """``dtype`` if floating; otherwise PyTorch's NotImplementedError (a RuntimeError)."""
    if dtype.kind != "f":
        raise NotImplementedError(f"{what}: random real numbers need a floating dtype, "
                                  f"not {to_dtype(dtype)}")
    return dtype


def _int_like(x: Any) -> bool:
    return not isinstance(x, (bool, np.bool_)) and hasattr(type(x), "__index__")


def _size(args: tuple, size: Any, name: str) -> tuple[int, ...]:
    """The shape from ``f(2, 3)``, ``f((2, 3))``, ``f([2, 3])`` or ``f(size=(2, 3))``."""
    if size is not None:
        if args:
            raise TypeError(f"{name}(): size given both positionally and as size=")
        args = (size,)
    if not args:
        raise TypeError(f'{name}() missing 1 required positional arguments: "size"')
    if len(args) == 1 and not _int_like(args[0]):
        if not isinstance(args[0], Sequence) or isinstance(args[0], (str, bytes)):
            raise TypeError(f"{name}(): argument 'size' (position 1) must be tuple of ints, not "
                            f"{type(args[0]).__name__}")
        args = tuple(args[0])
    for pos, dim in enumerate(args):
        if not _int_like(dim):
            raise TypeError(f"{name}(): argument 'size' (position 1) must be tuple of ints, but "
                            f"found element of type {type(dim).__name__} at pos {pos}")
    shape = tuple(operator.index(d) for d in args)
    for d in shape:
        if d < 0:
            raise RuntimeError(f"Trying to create tensor with negative dimension {d}: "
                               f"{list(shape)}")
    return shape


def _tuple_size(size: Any, name: str, position: int) -> tuple[int, ...]:
    """The ``size`` argument of full/randint/normal, which must be a sequence (not an int)."""
    if _int_like(size) or not isinstance(size, Sequence) or isinstance(size, (str, bytes)):
        raise TypeError(f"{name}(): argument 'size' (position {position}) must be tuple of "
                        f"ints, not {type(size).__name__}")
    return _size(tuple(size), None, name)


def _number(x: Any, name: str, arg: str) -> int | float | bool:
    """A Python number from a number, numpy scalar or one-element Tensor."""
    if isinstance(x, Tensor):
        x = x.item()
    if isinstance(x, np.generic):
        x = x.item()
    if not isinstance(x, numbers.Real):
        raise TypeError(f"{name}(): argument '{arg}' must be a real number, "
                        f"not {type(x).__name__}")
    return x


def _like(input: Any, dtype: Any, name: str) -> np.dtype:
    """The dtype of a ``*_like`` result: ``dtype`` or the input's."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{name}(): argument 'input' (position 1) must be Tensor, not "
                        f"{type(input).__name__}")
    return _np_dtype(dtype, to_dtype(input.dtype).dtype)


# ---------------------------------------------------------------------------------------------
# From data


def _infer_array(data: Any, dtype: Any = None) -> np.ndarray:
    """An ndarray of ``data`` in ``dtype``, or with PyTorch's dtype inference (numpy data keeps
    its dtype; Python floats -> the default dtype, ints -> int64, bools -> bool). May share
    memory with ``data``."""
    if isinstance(data, Tensor):
        arr = np.asarray(data.numpy())
    elif isinstance(data, (np.ndarray, np.generic)):
        arr = np.asarray(data)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"can't convert np.ndarray of type {arr.dtype}: tensors hold real "
                            f"numbers and bools")
    else:
        arr = _python_array(data)
        if dtype is None:
            # Python data: numpy's float64/int64 stand for Python's float and int
            kind = arr.dtype.kind
            if kind == "f":
                return arr.astype(get_default_dtype().dtype)
            if kind in "iu":
                return arr.astype(np.int64)
            return arr
    return arr if dtype is None else arr.astype(to_dtype(dtype).dtype, copy=False)


def _python_array(data: Any) -> np.ndarray:
    """numpy's reading of nested Python data, with PyTorch's errors for what is not numbers."""
    if isinstance(data, (str, bytes)):
        raise TypeError(f"tensor(): invalid data type '{type(data).__name__}'")
    leaves = list(_leaves(data))
    for leaf in leaves:
        if leaf is None or isinstance(leaf, (str, bytes)):
            raise RuntimeError(f"Could not infer dtype of {type(leaf).__name__}")
    try:
        arr = np.asarray(data)
    except OverflowError:
        raise ValueError("Overflow when unpacking long long") from None
    if arr.dtype.kind == "O" or (arr.dtype.kind == "u" and
                                 any(isinstance(x, int) and x > 2 ** 63 - 1 for x in leaves)):
        if any(isinstance(x, int) and not -2 ** 63 <= x < 2 ** 63 for x in leaves):
            raise ValueError("Overflow when unpacking long long")
        raise TypeError(f"tensor(): could not make a tensor from this {type(data).__name__} "
                        f"(elements must be real numbers or bools)")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"tensor(): could not make a tensor from data of type {arr.dtype} "
                        f"(elements must be real numbers or bools)")
    return arr


def _leaves(data: Any):
    if isinstance(data, (list, tuple)):
        for x in data:
            yield from _leaves(x)
    else:
        yield data


def tensor(data: Any, dtype: Any = None, device: Any = None, requires_grad: bool = False,
           pin_memory: bool = False) -> Tensor:
    """A new Tensor holding a copy of ``data`` (PyTorch's ``torch.tensor``).

    >>> t = tensor([[1.0, 2.0]], requires_grad=True)
    >>> t.shape, t.requires_grad
    ((1, 2), True)
    >>> tensor([1, 2]).dtype
    fastgrad.int64
    """
    check_device(device)
    if isinstance(data, Tensor):
        warnings.warn("To copy construct from a tensor, it is recommended to use "
                      "sourceTensor.clone().detach() or sourceTensor.clone().detach()"
                      ".requires_grad_(True), rather than fastgrad.tensor(sourceTensor).",
                      UserWarning, stacklevel=2)
    return _wrap(np.array(_infer_array(data, dtype), copy=True), requires_grad)


def as_tensor(data: Any, dtype: Any = None, device: Any = None) -> Tensor:
    """``data`` as a Tensor, sharing memory when it can: a Tensor of the requested dtype is
    returned as is, a numpy array of a tensor dtype is shared (PyTorch's ``torch.as_tensor``).

    >>> import numpy as np
    >>> a = np.zeros(2)
    >>> as_tensor(a).numpy() is a
    True
    """
    check_device(device)
    if isinstance(data, Tensor):
        if dtype is None or to_dtype(dtype) == to_dtype(data.dtype):
            return data
        return data.to(to_dtype(dtype))
    if isinstance(data, np.ndarray):
        return _wrap(_infer_array(data, dtype))
    return tensor(data, dtype=dtype)


def from_numpy(ndarray: np.ndarray) -> Tensor:
    """A Tensor sharing ``ndarray``'s memory and dtype (PyTorch's ``torch.from_numpy``).

    >>> import numpy as np
    >>> a = np.arange(3)
    >>> t = from_numpy(a)
    >>> a[0] = 7
    >>> t.tolist()
    [7, 1, 2]
    """
    if not isinstance(ndarray, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(ndarray).__name__})")
    to_dtype(ndarray.dtype)   # TypeError for dtypes a tensor cannot hold
    return _wrap(np.asarray(ndarray))


# ---------------------------------------------------------------------------------------------
# Filled


def zeros(*args: Any, size: Any = None, dtype: Any = None, device: Any = None,
          requires_grad: bool = False, pin_memory: bool = False) -> Tensor:
    """A tensor of zeros: ``zeros(2, 3)`` or ``zeros((2, 3))``."""
    check_device(device)
    return _wrap(np.zeros(_size(args, size, "zeros"), dtype=_np_dtype(dtype)), requires_grad)


def ones(*args: Any, size: Any = None, dtype: Any = None, device: Any = None,
         requires_grad: bool = False, pin_memory: bool = False) -> Tensor:
    """A tensor of ones: ``ones(2, 3)`` or ``ones((2, 3))``."""
    check_device(device)
    return _wrap(np.ones(_size(args, size, "ones"), dtype=_np_dtype(dtype)), requires_grad)


def empty(*args: Any, size: Any = None, dtype: Any = None, device: Any = None,
          requires_grad: bool = False, pin_memory: bool = False) -> Tensor:
    """A tensor whose values are whatever the memory held (PyTorch's ``torch.empty``)."""
    check_device(device)
    return _wrap(np.empty(_size(args, size, "empty"), dtype=_np_dtype(dtype)), requires_grad)


def _fill_dtype(fill_value: Any) -> np.dtype:
    """PyTorch's dtype for ``full``: bool -> bool, integer -> int64, real -> default."""
    if isinstance(fill_value, Tensor):
        return to_dtype(fill_value.dtype).dtype
    if isinstance(fill_value, (bool, np.bool_)):
        return np.dtype(np.bool_)
    if _int_like(fill_value):
        return np.dtype(np.int64)
    if isinstance(fill_value, numbers.Real):
        return get_default_dtype().dtype
    raise TypeError(f"full(): argument 'fill_value' must be a real number, "
                    f"not {type(fill_value).__name__}")


def full(size: Sequence[int], fill_value: Any, *, dtype: Any = None, device: Any = None,
         requires_grad: bool = False, pin_memory: bool = False) -> Tensor:
    """A tensor filled with ``fill_value``; its dtype follows the value as in PyTorch.

    >>> full((2,), 3).tolist(), full((2,), True).tolist()
    ([3, 3], [True, True])
    """
    check_device(device)
    shape = _tuple_size(size, "full", 1)
    target = _np_dtype(dtype, _fill_dtype(fill_value))
    value = _number(fill_value, "full", "fill_value")
    return _wrap(np.full(shape, value, dtype=target), requires_grad)


def zeros_like(input: Tensor, *, dtype: Any = None, device: Any = None,
               requires_grad: bool = False, memory_format: Any = None) -> Tensor:
    """Zeros of ``input``'s shape and dtype."""
    check_device(device)
    target = _like(input, dtype, "zeros_like")
    return _wrap(np.zeros(input.shape, dtype=target), requires_grad)


def ones_like(input: Tensor, *, dtype: Any = None, device: Any = None,
              requires_grad: bool = False, memory_format: Any = None) -> Tensor:
    """Ones of ``input``'s shape and dtype."""
    check_device(device)
    target = _like(input, dtype, "ones_like")
    return _wrap(np.ones(input.shape, dtype=target), requires_grad)


def empty_like(input: Tensor, *, dtype: Any = None, device: Any = None,
               requires_grad: bool = False, memory_format: Any = None) -> Tensor:
    """An uninitialized tensor of ``input``'s shape and dtype."""
    check_device(device)
    target = _like(input, dtype, "empty_like")
    return _wrap(np.empty(input.shape, dtype=target), requires_grad)


def full_like(input: Tensor, fill_value: Any, *, dtype: Any = None, device: Any = None,
              requires_grad: bool = False, memory_format: Any = None) -> Tensor:
    """``fill_value`` in ``input``'s shape and dtype."""
    check_device(device)
    target = _like(input, dtype, "full_like")
    value = _number(fill_value, "full_like", "fill_value")
    return _wrap(np.full(input.shape, value, dtype=target), requires_grad)


# ---------------------------------------------------------------------------------------------
# Ranges


def arange(start: Any = 0, end: Any = None, step: Any = 1, *, dtype: Any = None,
           device: Any = None, requires_grad: bool = False) -> Tensor:
    """``[start, end)`` by ``step``: ``arange(5)``, ``arange(1, 4)``, ``arange(0, 1, 0.25)``.
    Integers give int64, a float anywhere gives the default dtype (as PyTorch).

    >>> arange(1, 4).tolist(), arange(0, 1, 0.25).tolist()
    ([1, 2, 3], [0.0, 0.25, 0.5, 0.75])
    """
    check_device(device)
    if end is None:
        start, end = 0, start
    start, end, step = (_number(v, "arange", n) for v, n in
                        ((start, "start"), (end, "end"), (step, "step")))
    all_int = all(isinstance(v, numbers.Integral) for v in (start, end, step))
    target = _np_dtype(dtype, np.dtype(np.int64) if all_int else None)
    if not all(math.isfinite(v) for v in (start, end, step)):
        raise RuntimeError(f"unsupported range: {start} -> {end}")
    if step == 0:
        raise RuntimeError("step must be nonzero")
    if (step > 0 and end < start) or (step < 0 and end > start):
        raise RuntimeError("upper bound and lower bound inconsistent with step sign")
    if target.kind == "b":
        raise NotImplementedError('"arange_cpu" not implemented for \'Bool\'')
    if target.kind in "iu":
        values = _integer_range(start, end, step, target)
    else:
        # start + i * step in double precision, as PyTorch's length and float64 values
        # (its float32 kernel steps in float32 within a vector: the last bit may differ)
        n = math.ceil((end - start) / step)
        values = start + np.arange(n, dtype=np.float64) * step
    return _wrap(values.astype(target), requires_grad)


def _integer_range(start: float, end: float, step: float, target: np.dtype) -> np.ndarray:
    """arange into an integer dtype, as PyTorch: start, end and step are truncated to integers
    first; the length comes from the truncated values for int64 and from the given ones for
    the narrower types (PyTorch's two formulas)."""
    xs, xe, xst = int(start), int(end), int(step)
    if target == np.int64:
        if xst == 0:
            raise ValueError("step must be nonzero")
        if (xst > 0 and xe < xs) or (xst < 0 and xe > xs):
            raise RuntimeError("upper bound and lower bound inconsistent with step sign")
        n = -((xs - xe) // xst)                   # exact ceil((xe - xs) / xst)
    else:
        # (a step truncated to 0 repeats start, as in PyTorch)
        n = math.ceil((end - start) / step)
    return xs + np.arange(n, dtype=np.int64) * xst


def linspace(start: Any, end: Any, steps: int, *, dtype: Any = None, device: Any = None,
             requires_grad: bool = False) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive (default dtype).

    >>> linspace(0, 1, 5).tolist()
    [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    check_device(device)
    start = _number(start, "linspace", "start")
    end = _number(end, "linspace", "end")
    if not _int_like(steps):
        raise TypeError(f"linspace(): argument 'steps' must be int, not {type(steps).__name__}")
    steps = operator.index(steps)
    if steps < 0:
        raise RuntimeError("number of steps must be non-negative")
    target = _np_dtype(dtype)
    # PyTorch's kernel: integer results start from truncated ends; a float32 (float16) result
    # has its ends and step rounded to float32 and each value is one fused multiply-add,
    # rounded once (here: exact product and sum in double, then rounded to float32); the first
    # half is counted from start, the second from end, so both ends are exact
    lo, hi = (float(int(start)), float(int(end))) if target.kind in "iub" else (start, end)
    values = np.empty(steps, dtype=np.float64)
    if steps == 1:
        values[0] = lo
    elif steps > 1:
        if target.kind == "f" and target != np.float64:
            lo32, hi32 = np.float32(lo), np.float32(hi)
            lo, hi, step = float(lo32), float(hi32), float((hi32 - lo32) / np.float32(steps - 1))
        else:
            lo, hi = float(lo), float(hi)
            step = (hi - lo) / (steps - 1)
        idx = np.arange(steps, dtype=np.float64)
        half = steps // 2
        values[:half] = lo + step * idx[:half]
        values[half:] = hi - step * (steps - 1 - idx[half:])
    return _wrap(values.astype(target), requires_grad)


def eye(n: int, m: int | None = None, *, dtype: Any = None, device: Any = None,
        requires_grad: bool = False) -> Tensor:
    """An ``n`` by ``m`` (default ``n``) identity matrix."""
    check_device(device)
    if n < 0:
        raise RuntimeError(f"n must be greater or equal to 0, got {n}")
    if m is None:
        m = n
    if m < 0:
        raise RuntimeError(f"m must be greater or equal to 0, got {m}")
    return _wrap(np.eye(operator.index(n), operator.index(m), dtype=_np_dtype(dtype)),
                 requires_grad)


# ---------------------------------------------------------------------------------------------
# Random


def rand(*args: Any, size: Any = None, generator: Generator | None = None, dtype: Any = None,
         device: Any = None, requires_grad: bool = False, pin_memory: bool = False) -> Tensor:
    """Uniform numbers in [0, 1) of the given shape (default dtype)."""
    check_device(device)
    shape = _size(args, size, "rand")
    target = _floating(_np_dtype(dtype), "rand")
    return _wrap(draw_uniform(generator, shape, target), requires_grad)


def randn(*args: Any, size: Any = None, generator: Generator | None = None, dtype: Any = None,
          device: Any = None, requires_grad: bool = False, pin_memory: bool = False) -> Tensor:
    """Standard normal numbers of the given shape (default dtype)."""
    check_device(device)
    shape = _size(args, size, "randn")
    target = _floating(_np_dtype(dtype), "randn")
    return _wrap(draw_normal(generator, shape, target), requires_grad)


def rand_like(input: Tensor, *, generator: Generator | None = None, dtype: Any = None,
              device: Any = None, requires_grad: bool = False,
              memory_format: Any = None) -> Tensor:
    """Uniform numbers in [0, 1) of ``input``'s shape and dtype."""
    check_device(device)
    target = _floating(_like(input, dtype, "rand_like"), "rand_like")
    return _wrap(draw_uniform(generator, tuple(input.shape), target), requires_grad)


def randn_like(input: Tensor, *, generator: Generator | None = None, dtype: Any = None,
               device: Any = None, requires_grad: bool = False,
               memory_format: Any = None) -> Tensor:
    """Standard normal numbers of ``input``'s shape and dtype."""
    check_device(device)
    target = _floating(_like(input, dtype, "randn_like"), "randn_like")
    return _wrap(draw_normal(generator, tuple(input.shape), target), requires_grad)


def _draw_integers(generator: Generator | None, low: Any, high: Any, shape: tuple[int, ...],
                   target: np.dtype, name: str) -> np.ndarray:
    for value, arg in ((low, "low"), (high, "high")):
        if not _int_like(value):
            raise TypeError(f"{name}(): argument '{arg}' must be int, not "
                            f"{type(value).__name__}")
    low, high = operator.index(low), operator.index(high)
    if low >= high:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got "
                           f"from={low} >= to={high}")
    if target.kind in "iub":
        info = np.iinfo(target) if target.kind != "b" else None
        lo, hi = (0, 1) if info is None else (int(info.min), int(info.max))
        if low < lo:
            raise RuntimeError(f"from is out of bounds for {to_dtype(target)}")
        if high - 1 > hi:
            raise RuntimeError(f"to - 1 is out of bounds for {to_dtype(target)}")
    return numpy_generator(generator).integers(low, high, size=shape,
                                               dtype=np.int64).astype(target)


def randint(low: Any = 0, high: Any = None, size: Any = None, *,
            generator: Generator | None = None, dtype: Any = None, device: Any = None,
            requires_grad: bool = False) -> Tensor:
    """Integers uniform in [low, high): ``randint(10, (3,))`` or ``randint(0, 10, (3,))``;
    int64 unless ``dtype`` says otherwise.

    >>> t = randint(0, 10, (100,))
    >>> t.shape, bool((t.numpy() >= 0).all() and (t.numpy() < 10).all())
    ((100,), True)
    """
    check_device(device)
    if size is None and high is not None and not _int_like(high):
        low, high, size = 0, low, high         # randint(high, size)
    elif high is None:
        low, high = 0, low                    # randint(high, size=...)
    if size is None:
        raise TypeError("randint() missing the required argument 'size' (a tuple of ints)")
    shape = _tuple_size(size, "randint", 3)
    target = _np_dtype(dtype, np.dtype(np.int64))
    return _wrap(_draw_integers(generator, low, high, shape, target, "randint"), requires_grad)


def randint_like(input: Tensor, low: Any = 0, high: Any = None, *,
                 generator: Generator | None = None, dtype: Any = None, device: Any = None,
                 requires_grad: bool = False, memory_format: Any = None) -> Tensor:
    """Integers uniform in [low, high) of ``input``'s shape and dtype:
    ``randint_like(x, 10)`` or ``randint_like(x, 0, 10)``."""
    check_device(device)
    if high is None:
        low, high = 0, low
    target = _like(input, dtype, "randint_like")
    return _wrap(_draw_integers(generator, low, high, tuple(input.shape), target,
                                "randint_like"), requires_grad)


def randperm(n: int, *, generator: Generator | None = None, dtype: Any = None,
             device: Any = None, requires_grad: bool = False,
             pin_memory: bool = False) -> Tensor:
    """A random permutation of ``0 .. n-1`` (int64).

    >>> sorted(randperm(5).tolist())
    [0, 1, 2, 3, 4]
    """
    check_device(device)
    if not _int_like(n):
        raise TypeError(f"randperm(): argument 'n' must be int, not {type(n).__name__}")
    n = operator.index(n)
    if n < 0:
        raise RuntimeError(f"Trying to create tensor with negative dimension {n}: [{n}]")
    target = _np_dtype(dtype, np.dtype(np.int64))
    return _wrap(numpy_generator(generator).permutation(n).astype(target), requires_grad)


def normal(mean: Any = 0.0, std: Any = 1.0, size: Any = None, *,
           generator: Generator | None = None, dtype: Any = None, device: Any = None,
           requires_grad: bool = False, pin_memory: bool = False) -> Tensor:
    """Normal numbers, PyTorch's overloads: ``normal(mean_tensor, std_tensor)``,
    ``normal(mean_tensor, std=1.0)``, ``normal(mean, std_tensor)`` (elementwise, broadcast;
    differentiable in mean and std, as PyTorch's) and ``normal(mean, std, size)``.

    >>> normal(0.0, 1.0, (2, 3)).shape
    (2, 3)
    """
    check_device(device)
    mean_t, std_t = isinstance(mean, Tensor), isinstance(std, Tensor)
    if not (mean_t or std_t):
        if size is None:
            raise TypeError("normal(): with a number mean and std, give size= (or pass a "
                            "Tensor as mean or std)")
        shape = _tuple_size(size, "normal", 3)
        m, s = _number(mean, "normal", "mean"), _number(std, "normal", "std")
        if not s >= 0.0:
            raise RuntimeError(f"normal expects std >= 0.0, but found std {s}")
        target = _floating(_np_dtype(dtype), "normal")
        return _wrap(draw_normal(generator, shape, target, m, s), requires_grad)
    if size is not None or dtype is not None or requires_grad:
        raise TypeError("normal(): size, dtype and requires_grad go with a number mean and "
                        "std; with a Tensor mean or std the result follows the tensors")
    ref = mean if mean_t else std
    target = _floating(to_dtype(ref.dtype).dtype, "normal")
    std_values = std.numpy() if std_t else _number(std, "normal", "std")
    mean_values = mean.numpy() if mean_t else _number(mean, "normal", "mean")
    if not np.all(np.asarray(std_values) >= 0.0):
        bad = np.asarray(std_values)[~(np.asarray(std_values) >= 0.0)].flat[0]
        raise RuntimeError(f"normal expects std >= 0.0, but found std {bad}")
    shape = np.broadcast_shapes(np.shape(mean_values), np.shape(std_values))
    eps = draw_normal(generator, shape, target)
    if (mean_t and mean.requires_grad) or (std_t and std.requires_grad):
        # recorded, so the gradient reaches mean (1) and std (eps), as in PyTorch
        return mean + std * _wrap(eps)
    return _wrap((mean_values + std_values * eps).astype(target, copy=False))


def bernoulli(input: Tensor, p: float | None = None, *, generator: Generator | None = None) \
        -> Tensor:
    """0/1 draws with probabilities ``input`` (or the number ``p``), in ``input``'s shape and
    dtype.

    >>> bernoulli(ones(3)).tolist()
    [1.0, 1.0, 1.0]
    """
    if not isinstance(input, Tensor):
        raise TypeError(f"bernoulli(): argument 'input' (position 1) must be Tensor, not "
                        f"{type(input).__name__}")
    target = _floating(to_dtype(input.dtype).dtype, "bernoulli")
    probs = input.numpy() if p is None else _number(p, "bernoulli", "p")
    if not np.all((np.asarray(probs) >= 0.0) & (np.asarray(probs) <= 1.0)):
        raise RuntimeError("Expected p_in >= 0 && p_in <= 1 to be true, but got false.")
    u = numpy_generator(generator).random(tuple(input.shape))
    return _wrap((u < probs).astype(target))


def multinomial(input: Tensor, num_samples: int, replacement: bool = False, *,
                generator: Generator | None = None) -> Tensor:
    """Category indices drawn with weights ``input`` (1-D, or 2-D for one draw per row);
    int64 of shape (num_samples,) or (rows, num_samples). Without replacement each index
    appears at most once per row.

    >>> multinomial(tensor([0.0, 1.0, 0.0]), 2, replacement=True).tolist()
    [1, 1]
    """
    if not isinstance(input, Tensor):
        raise TypeError(f"multinomial(): argument 'input' (position 1) must be Tensor, not "
                        f"{type(input).__name__}")
    if not _int_like(num_samples):
        raise TypeError(f"multinomial(): argument 'num_samples' (position 2) must be int, not "
                        f"{type(num_samples).__name__}")
    num_samples = operator.index(num_samples)
    weights = input.numpy()
    if weights.dtype.kind != "f":
        raise RuntimeError(f"multinomial only supports floating-point dtypes for input, got: "
                           f"{to_dtype(weights.dtype)}")
    if weights.ndim not in (1, 2):
        raise RuntimeError("prob_dist must be 1 or 2 dim")
    if num_samples <= 0:
        raise RuntimeError("cannot sample n_sample <= 0 samples")
    rows = np.atleast_2d(weights).astype(np.float64)
    n_categories = rows.shape[1]
    if not replacement and num_samples > n_categories:
        raise RuntimeError("cannot sample n_sample > prob_dist.size(-1) samples without "
                           "replacement")
    if not np.all(np.isfinite(rows) & (rows >= 0.0)):
        raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")
    if not np.all(rows.sum(axis=1) > 0.0):
        raise RuntimeError("invalid multinomial distribution (sum of probabilities <= 0)")
    rng = numpy_generator(generator)
    if replacement:
        cdf = np.cumsum(rows, axis=1)
        cdf /= cdf[:, -1:]
        u = rng.random((rows.shape[0], num_samples))
        out = np.stack([np.searchsorted(c, r, side="right") for c, r in zip(cdf, u)])
        out = np.minimum(out, n_categories - 1)
    else:
        # the k largest of w / Exp(1) keys are a draw of k without replacement, in draw order
        # (zero weights get key 0 and so come only after every positive weight)
        keys = rows / rng.standard_exponential(rows.shape)
        out = np.argsort(-keys, axis=1, kind="stable")[:, :num_samples]
    out = out.astype(np.int64)
    return _wrap(out if weights.ndim == 2 else out[0])


__all__ = ["tensor", "as_tensor", "from_numpy", "zeros", "ones", "empty", "full", "zeros_like",
           "ones_like", "empty_like", "full_like", "arange", "linspace", "eye", "rand", "randn",
           "rand_like", "randn_like", "randint", "randint_like", "randperm", "normal",
           "bernoulli", "multinomial"]
