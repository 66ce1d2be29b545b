"""How layers make their parameters and buffers: the dtype and device arguments every layer
takes (``dtype=None`` is ``fastgrad.get_default_dtype()``), and new tensors filled with a
constant or drawn from ``_generator.numpy_generator()``."""

from __future__ import annotations

from typing import Any

import numpy as np

from fastgrad._tensor import Tensor
from fastgrad._tensor.dtype import get_default_dtype, to_dtype
from fastgrad.nn._generator import numpy_generator
from fastgrad.nn.module import Parameter, check_device


def factory_dtype(dtype: Any = None, device: Any = None) -> np.dtype:
    """The numpy dtype of a layer's new tensors; checks ``device`` (only the CPU exists)."""
    if device is not None:
        check_device(device)
    return np.dtype(get_default_dtype() if dtype is None else to_dtype(dtype))


def filled(shape: tuple[int, ...], value: float, dtype: np.dtype) -> Tensor:
    """A new Tensor of ``shape`` holding ``value`` everywhere."""
    return Tensor(np.full(shape, value, dtype=dtype))


def uniform_parameter(shape: tuple[int, ...], bound: float, dtype: np.dtype) -> Parameter:
    """A Parameter drawn from U(-bound, bound) (what PyTorch's Linear init amounts to)."""
    values = numpy_generator().uniform(-bound, bound, shape)
    return Parameter(Tensor(np.asarray(values, dtype=dtype)))


def normal_parameter(shape: tuple[int, ...], dtype: np.dtype) -> Parameter:
    """A Parameter drawn from N(0, 1)."""
    values = numpy_generator().standard_normal(shape)
    return Parameter(Tensor(np.asarray(values, dtype=dtype)))
