# cython: boundscheck=True, wraparound=True
# (indexing of Python objects stays checked in the tensor engine: see tensor.pxd)
# The Tensor handle: the node type of the tape (its fields and invariants: tensor.pxd), its
# conversions from user data and PyTorch's dtype rules (dtypes.pxi), its operators and the ops
# recorded by its methods (ops.pxi, methods.pxi).
#
# An op computes its value with numpy (or a compiled loop, loops.pyx) and, when recording,
# makes the result a node that saves what its rules need (rules.pyx; the slots each op code
# fills are listed in tensor.pxd). The ops that are functions rather than methods (linear, the
# losses, concatenate, stack) are in functional.pyx; the sweeps over the recorded graph
# (backward, tensor_jvp) in sweep.pyx.
cimport cython
from cpython.object cimport PyObject
from libc.stdint cimport uint8_t

from fastgrad._tensor.grad_mode cimport grad_enabled
from fastgrad._tensor.loops cimport relu_value

import collections
import math
import numbers
import operator

import numpy as np

from fastgrad._device import CPU as _CPU
from fastgrad._device import check_device as _device_check
from fastgrad._tensor import dtype as _dtypes

# Shared with the other modules (declared in tensor.pxd)
ndarray = np.ndarray
F64 = np.dtype(np.float64)
F32 = np.dtype(np.float32)
cdef object F16 = np.dtype(np.float16)
cdef object I64 = np.dtype(np.int64)
cdef object BOOL = np.dtype(np.bool_)
Real = numbers.Real
Integral = numbers.Integral
np_bool = np.bool_
np_asarray = np.asarray
np_add_reduce = np.add.reduce
np_max_reduce = np.maximum.reduce
op_names = (
    'leaf', 'add', 'sub', 'mul', 'div', 'pow', 'neg', 'matmul', 'sum', 'mean',
    'reshape', 'transpose', 'getitem', 'concatenate', 'stack', 'relu', 'tanh', 'exp', 'log',
    'sigmoid', 'softmax', 'log_softmax', 'linear', 'mse_loss', 'cross_entropy',
    'binary_cross_entropy', 'local', 'gather', 'cumsum', 'expand', 'repeat', 'flip', 'cast',
    'conv', 'conv_transpose', 'unfold', 'fold', 'max_pool', 'avg_pool', 'linear_map')
assert len(op_names) == TOP_COUNT
OP_NAMES = op_names  # the same, for Python (a test checks it against the op enum)

cdef object _np_exp = np.exp
cdef object _np_log = np.log
cdef object _np_tanh = np.tanh
cdef object _np_abs = np.abs
cdef object _np_sign = np.sign
cdef object _np_empty_like = np.empty_like
cdef object _np_zeros_like = np.zeros_like
cdef object _np_errstate = np.errstate
cdef object _np_where = np.where
cdef object _operator_index = operator.index

# The reverse sweep, installed by sweep.pyx when it is imported (see tensor.pxd).
cdef backward_sweep _run_backward = NULL


cdef void install_backward_sweep(backward_sweep sweep) noexcept:
    global _run_backward
    _run_backward = sweep


# Tensor.__reduce__, installed by pickling.pyx when it is imported (see tensor.pxd).
cdef tensor_reducer _reduce = NULL


cdef void install_tensor_reducer(tensor_reducer reducer) noexcept:
    global _reduce
    _reduce = reducer


# Deallocation without recursion (see Tensor.__dealloc__).
cdef list _pending = []
cdef bint _draining = False


cdef extern from "Python.h":
    # Py_REFCNT on a borrowed pointer (cpython.ref's version takes an object, and passing one
    # may add a temporary reference that hides the answer)
    Py_ssize_t _refcnt "Py_REFCNT" (PyObject *o) noexcept


cdef inline bint _sole_owner(PyObject *field) noexcept:
    """True if the reference held in this field is the object's only one."""
    return field != NULL and field != <PyObject *>None and _refcnt(field) == 1


include "dtypes.pxi"
include "ops.pxi"
include "methods.pxi"
