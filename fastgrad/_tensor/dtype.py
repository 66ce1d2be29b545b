"""Tensor dtypes with PyTorch's names (``fastgrad.float32``, ``fastgrad.long``, ...).

A ``fastgrad.dtype`` wraps the numpy dtype the engine stores; it compares equal to it (and to
numpy's type objects), so ``t.dtype == np.float32`` and ``np.zeros(3, dtype=t.dtype)`` work as
well as ``t.dtype == fastgrad.float32``. The default dtype for Python data (lists, floats) is
float32, as in PyTorch; ``set_default_dtype(fastgrad.float64)`` changes it. numpy input keeps
its own dtype.
"""
from __future__ import annotations

import builtins

import numpy as np


class dtype:
    """One of fastgrad's tensor dtypes: float32, float64, int64, int32, bool (and the narrow
    ones numpy data may bring: float16, int16, int8, uint8)."""

    __slots__ = ("name", "dtype", "is_floating_point", "is_signed", "itemsize")

    def __init__(self, name: str, np_dtype) -> None:
        self.name = name
        self.dtype = np.dtype(np_dtype)          # numpy reads this attribute in np.dtype(d)
        self.is_floating_point = self.dtype.kind == "f"
        self.is_signed = self.dtype.kind in "fi"
        self.itemsize = self.dtype.itemsize

    @property
    def is_complex(self) -> builtins.bool:
        return False

    def __repr__(self) -> str:
        return f"fastgrad.{self.name}"

    def __eq__(self, other) -> builtins.bool:
        if isinstance(other, dtype):
            return self.dtype == other.dtype
        try:
            return self.dtype == np.dtype(other)
        except TypeError:
            return NotImplemented

    def __hash__(self) -> builtins.int:
        return hash(self.dtype)

    def __reduce__(self):
        return (to_dtype, (self.name,))


float32 = dtype("float32", np.float32)
float64 = dtype("float64", np.float64)
float16 = dtype("float16", np.float16)
int64 = dtype("int64", np.int64)
int32 = dtype("int32", np.int32)
int16 = dtype("int16", np.int16)
int8 = dtype("int8", np.int8)
uint8 = dtype("uint8", np.uint8)
bool = dtype("bool", np.bool_)
# PyTorch's aliases
float = float32
double = float64
half = float16
long = int64
int = int32
short = int16

_BY_NUMPY = {d.dtype: d for d in (float32, float64, float16, int64, int32, int16, int8, uint8,
                                  bool)}
_BY_NAME = {d.name: d for d in _BY_NUMPY.values()}
_BY_NAME.update(float=float32, double=float64, half=float16, long=int64, int=int32,
                short=int16)

_default = [float32]


def from_numpy_dtype(np_dtype) -> dtype:
    """The fastgrad dtype of a numpy dtype; TypeError for kinds a tensor cannot hold."""
    d = _BY_NUMPY.get(np.dtype(np_dtype))
    if d is None:
        raise TypeError(f"fastgrad: unsupported dtype {np.dtype(np_dtype)}; tensors hold "
                        f"float32, float64, float16, int64, int32, int16, int8, uint8 or bool")
    return d


def to_dtype(arg) -> dtype:
    """A fastgrad dtype from what a user may pass as ``dtype=``: a fastgrad dtype, a numpy
    dtype or type, a name ('float32'), or Python's float, int and bool (float64, int64, bool,
    as in PyTorch). TypeError for anything else."""
    if isinstance(arg, dtype):
        return arg
    if arg is builtins.float:
        return float64
    if arg is builtins.int:
        return int64
    if arg is builtins.bool:
        return bool
    if isinstance(arg, str) and arg in _BY_NAME:
        return _BY_NAME[arg]
    try:
        return from_numpy_dtype(np.dtype(arg))
    except TypeError:
        raise TypeError(f"fastgrad: {arg!r} is not a dtype") from None


def get_default_dtype() -> dtype:
    """The dtype of tensors made from Python floats (float32 unless set_default_dtype)."""
    return _default[0]


def set_default_dtype(d) -> None:
    """Make float32 or float64 the dtype of tensors made from Python floats."""
    d = to_dtype(d)
    if d not in (float32, float64):
        raise TypeError(f"set_default_dtype: only floating-point types are supported as the "
                        f"default type (float32 or float64), not {d}")
    _default[0] = d


def default_numpy_dtype() -> np.dtype:
    """The numpy dtype of the default dtype (what the engine stores)."""
    return _default[0].dtype


__all__ = ["dtype", "float32", "float64", "float16", "int64", "int32", "int16", "int8", "uint8",
           "bool", "float", "double", "half", "long", "int", "short", "get_default_dtype",
           "set_default_dtype", "to_dtype", "from_numpy_dtype"]
