"""How layers make their parameters and buffers: the dtype and device arguments every layer
takes (``dtype=None`` is ``fastgrad.get_default_dtype()``), and new tensors to fill (with a
constant, or by ``fastgrad.nn.init``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from fastgrad._device import check_device
from fastgrad._tensor import Tensor
from fastgrad._tensor.dtype import get_default_dtype, to_dtype
from fastgrad.nn.module import Parameter


def factory_dtype(dtype: Any = None, device: Any = None) -> np.dtype:
    """The numpy dtype of a layer's new tensors; checks ``device`` (only the CPU exists)."""
    check_device(device)
    return np.dtype(get_default_dtype() if dtype is None else to_dtype(dtype))


def filled(shape: tuple[int, ...], value: float, dtype: np.dtype) -> Tensor:
    """A new Tensor of ``shape`` holding ``value`` everywhere."""
    return Tensor(np.full(shape, value, dtype=dtype))


def empty_parameter(shape: tuple[int, ...], dtype: np.dtype) -> Parameter:
    """A new Parameter of ``shape`` whose values an initialisation writes next."""
    return Parameter(Tensor(np.zeros(shape, dtype=dtype)))
