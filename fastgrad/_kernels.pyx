# Fused optimizer updates: one compiled pass over each parameter instead of numpy's chain of
# temporaries (an Adam step is ~10 numpy calls per parameter), and one call per optimizer step
# for all parameters, so the per-parameter Python overhead is small too.
#
# Same formulas, in the same order and precision, as the numpy fallback in fastgrad/optim.py
# (and PyTorch's single-tensor implementations): hyperparameters are rounded to the array's
# dtype first, as numpy does with Python floats, and everything is computed in that dtype.
# Compiled with -ffp-contract=off, so no fused multiply-adds change the rounding: results are
# bit-for-bit those of the numpy fallback, in float32 and float64 (tested).
#
# Loops have no branches inside (one loop per case), so gcc vectorises them. Adam's square root
# too: this extension is compiled with -fno-math-errno (setup.py), so sqrt/sqrtf become the
# vector square root, which is correctly rounded like numpy's np.sqrt (same bits), and Adam
# runs in two passes: moments, then the update.
#
# Arrays are taken through the buffer protocol and must be C-contiguous float32/float64 of one
# dtype (the parameter also writable). Anything else is reported back to the caller, which
# updates it with numpy instead: the kernels never guess.
from cpython.buffer cimport (PyBUF_C_CONTIGUOUS, PyBUF_FORMAT, PyBUF_WRITABLE, PyBuffer_Release,
                             PyObject_GetBuffer)
from cython cimport floating
from libc.math cimport sqrt, sqrtf

import numpy as np


cdef int _acquire(object arr, Py_buffer *view, bint writable) except -1:
    """1 and a filled view if arr is a C-contiguous float32/float64 buffer, else 0."""
    cdef int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT
    if writable:
        flags |= PyBUF_WRITABLE
    try:
        PyObject_GetBuffer(arr, view, flags)
    except (BufferError, TypeError, ValueError):
        return 0
    if (view.format == NULL or view.format[1] != 0
            or not ((view.format[0] == b'd' and view.itemsize == 8)
                    or (view.format[0] == b'f' and view.itemsize == 4))):
        PyBuffer_Release(view)
        return 0
    return 1


cdef inline bint _same(Py_buffer *a, Py_buffer *b) noexcept:
    return a.itemsize == b.itemsize and a.len == b.len


cdef void _sgd_loop(floating *param, floating *grad, floating *buf, Py_ssize_t n, floating lr,
                    floating momentum, floating weight_decay, bint nesterov,
                    bint first) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating g
    if momentum == 0 and weight_decay == 0:
        for i in range(n):
            param[i] = param[i] - lr * grad[i]
        return
    if momentum != 0 and weight_decay == 0 and not nesterov:
        if first:
            for i in range(n):
                buf[i] = grad[i]
                param[i] = param[i] - lr * grad[i]
        else:
            for i in range(n):
                buf[i] = buf[i] * momentum + grad[i]
                param[i] = param[i] - lr * buf[i]
        return
    for i in range(n):              # the rarer combinations: one loop with branches
        g = grad[i]
        if weight_decay != 0:
            g = g + weight_decay * param[i]
        if momentum != 0:
            if first:
                buf[i] = g
            else:
                buf[i] = buf[i] * momentum + g
            if nesterov:
                g = g + momentum * buf[i]
            else:
                g = buf[i]
        param[i] = param[i] - lr * g


cdef void _adam_moments(floating *param, floating *grad, floating *m, floating *v, Py_ssize_t n,
                        floating one_minus_beta1, floating beta2, floating one_minus_beta2,
                        floating weight_decay, bint decoupled, floating shrink) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating g
    if weight_decay != 0 and decoupled:
        for i in range(n):
            param[i] = param[i] * shrink
    if weight_decay != 0 and not decoupled:
        for i in range(n):
            g = grad[i] + weight_decay * param[i]
            m[i] = m[i] + one_minus_beta1 * (g - m[i])      # torch: exp_avg.lerp_(g, 1 - beta1)
            v[i] = v[i] * beta2 + one_minus_beta2 * (g * g)
    else:
        for i in range(n):
            g = grad[i]
            m[i] = m[i] + one_minus_beta1 * (g - m[i])
            v[i] = v[i] * beta2 + one_minus_beta2 * (g * g)


cdef void _adam_apply(floating *param, floating *m, floating *v, Py_ssize_t n,
                      floating step_size, floating bc2_sqrt, floating eps) noexcept nogil:
    cdef Py_ssize_t i
    if floating is float:
        for i in range(n):
            param[i] = param[i] - step_size * (m[i] / (sqrtf(v[i]) / bc2_sqrt + eps))
    else:
        for i in range(n):
            param[i] = param[i] - step_size * (m[i] / (sqrt(v[i]) / bc2_sqrt + eps))


def sgd_step(list params, list grads, list bufs, list firsts, double lr, double momentum,
             double weight_decay, bint nesterov):
    """torch.optim.SGD (dampening 0) on every params[i] in place; bufs[i] is its momentum
    buffer (ignored when momentum == 0), firsts[i] whether this is its first step.
    Returns the indices it could not update (unsupported arrays)."""
    cdef Py_ssize_t i
    cdef Py_buffer pv, gv, bv
    cdef list skipped = []
    cdef bint use_buf = momentum != 0
    cdef bint first
    for i in range(len(params)):
        if not _acquire(params[i], &pv, True):
            skipped.append(i)
            continue
        if not _acquire(grads[i], &gv, False):
            PyBuffer_Release(&pv)
            skipped.append(i)
            continue
        if use_buf:
            if not _acquire(bufs[i], &bv, True):
                PyBuffer_Release(&pv)
                PyBuffer_Release(&gv)
                skipped.append(i)
                continue
        else:
            bv = pv     # not read
        if _same(&pv, &gv) and _same(&pv, &bv):
            first = firsts[i]
            if pv.itemsize == 8:
                _sgd_loop[double](<double *>pv.buf, <double *>gv.buf, <double *>bv.buf,
                                  pv.len // 8, lr, momentum, weight_decay, nesterov, first)
            else:
                _sgd_loop[float](<float *>pv.buf, <float *>gv.buf, <float *>bv.buf, pv.len // 4,
                                 <float>lr, <float>momentum, <float>weight_decay, nesterov,
                                 first)
        else:
            skipped.append(i)
        if use_buf:
            PyBuffer_Release(&bv)
        PyBuffer_Release(&gv)
        PyBuffer_Release(&pv)
    return skipped


def adam_step(list params, list grads, list exp_avgs, list exp_avg_sqs, list steps, double lr,
              double beta1, double beta2, double eps, double weight_decay, bint decoupled):
    """torch.optim.Adam / AdamW (no amsgrad) on every params[i] in place; steps[i] is its step
    count, already incremented (from 1).
    Returns the indices it could not update."""
    cdef Py_ssize_t i, n
    cdef Py_buffer pv, gv, mv, vv
    cdef list skipped = []
    cdef long t
    cdef double step_size, bc2_sqrt, shrink = 1.0 - lr * weight_decay
    for i in range(len(params)):
        if not _acquire(params[i], &pv, True):
            skipped.append(i)
            continue
        if not _acquire(grads[i], &gv, False):
            PyBuffer_Release(&pv)
            skipped.append(i)
            continue
        if not _acquire(exp_avgs[i], &mv, True):
            PyBuffer_Release(&pv)
            PyBuffer_Release(&gv)
            skipped.append(i)
            continue
        if not _acquire(exp_avg_sqs[i], &vv, True):
            PyBuffer_Release(&pv)
            PyBuffer_Release(&gv)
            PyBuffer_Release(&mv)
            skipped.append(i)
            continue
        if _same(&pv, &gv) and _same(&pv, &mv) and _same(&pv, &vv):
            t = steps[i]
            step_size = lr / (1.0 - beta1 ** t)
            bc2_sqrt = (1.0 - beta2 ** t) ** 0.5
            n = pv.len // pv.itemsize
            if pv.itemsize == 8:
                _adam_moments[double](<double *>pv.buf, <double *>gv.buf, <double *>mv.buf,
                                      <double *>vv.buf, n, 1.0 - beta1, beta2, 1.0 - beta2,
                                      weight_decay, decoupled, shrink)
            else:
                _adam_moments[float](<float *>pv.buf, <float *>gv.buf, <float *>mv.buf,
                                     <float *>vv.buf, n, <float>(1.0 - beta1), <float>beta2,
                                     <float>(1.0 - beta2), <float>weight_decay, decoupled,
                                     <float>shrink)
            if pv.itemsize == 8:
                _adam_apply[double](<double *>pv.buf, <double *>mv.buf, <double *>vv.buf, n,
                                    step_size, bc2_sqrt, eps)
            else:
                _adam_apply[float](<float *>pv.buf, <float *>mv.buf, <float *>vv.buf, n,
                                   <float>step_size, <float>bc2_sqrt, <float>eps)
        else:
            skipped.append(i)
        PyBuffer_Release(&vv)
        PyBuffer_Release(&mv)
        PyBuffer_Release(&gv)
        PyBuffer_Release(&pv)
    return skipped
