# Fused optimizer updates: one compiled pass over each parameter instead of numpy's chain of
# temporaries (an Adam step is ~10 numpy calls per parameter), and one call per optimizer step
# for all parameters, so the per-parameter Python overhead is small too.
#
# Same formulas, in the same order and precision, as the numpy fallbacks in sgd.py and adam.py
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


cdef int _acquire_all(list arrays, const bint *writable, Py_buffer *views) except -1:
    """1 and filled views if every array is a C-contiguous float32/float64 buffer, all of one
    dtype and length (views[k] writable where writable[k]); else 0, with nothing held."""
    cdef Py_ssize_t k, count = len(arrays)
    for k in range(count):
        if not _acquire(arrays[k], &views[k], writable[k]):
            _release_all(views, k)
            return 0
    for k in range(1, count):
        if not _same(&views[0], &views[k]):
            _release_all(views, count)
            return 0
    return 1


cdef void _release_all(Py_buffer *views, Py_ssize_t count) noexcept:
    cdef Py_ssize_t k
    for k in range(count):
        PyBuffer_Release(&views[k])


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
    cdef Py_buffer views[3]  # parameter, gradient, momentum buffer
    cdef bint writable[3]
    writable[:] = [True, False, True]
    cdef list skipped = []
    cdef bint use_buf = momentum != 0, first
    cdef void *buf
    # Indexing is unchecked (boundscheck=False): the lengths are checked once, on tuples that
    # user code run below (an element's __bool__, a buffer export) cannot shorten.
    cdef tuple ps = tuple(params), gs = tuple(grads), bs = tuple(bufs), fs = tuple(firsts)
    if not (len(gs) == len(bs) == len(fs) == len(ps)):
        raise ValueError("sgd_step: params, grads, bufs and firsts differ in length")
    for i in range(len(ps)):
        first = fs[i]  # may run user code and raise: before any buffer is held
        arrays = [ps[i], gs[i], bs[i]] if use_buf else [ps[i], gs[i]]
        if not _acquire_all(arrays, writable, views):
            skipped.append(i)
            continue
        buf = views[2].buf if use_buf else views[0].buf  # not read without momentum
        if views[0].itemsize == 8:
            _sgd_loop[double](<double *>views[0].buf, <double *>views[1].buf, <double *>buf,
                              views[0].len // 8, lr, momentum, weight_decay, nesterov, first)
        else:
            _sgd_loop[float](<float *>views[0].buf, <float *>views[1].buf, <float *>buf,
                             views[0].len // 4, <float>lr, <float>momentum, <float>weight_decay,
                             nesterov, first)
        _release_all(views, len(arrays))
    return skipped


def adam_step(list params, list grads, list exp_avgs, list exp_avg_sqs, list steps, double lr,
              double beta1, double beta2, double eps, double weight_decay, bint decoupled):
    """torch.optim.Adam / AdamW (no amsgrad) on every params[i] in place; steps[i] is its step
    count, already incremented (from 1).
    Returns the indices it could not update."""
    cdef Py_ssize_t i, n
    cdef Py_buffer views[4]  # parameter, gradient, first and second moments
    cdef bint writable[4]
    writable[:] = [True, False, True, True]
    cdef list skipped = []
    cdef long t
    cdef double step_size, bc2_sqrt, shrink = 1.0 - lr * weight_decay
    cdef void *p
    cdef void *g
    cdef void *m
    cdef void *v
    # unchecked indexing: lengths checked once, on tuples (as in sgd_step)
    cdef tuple ps = tuple(params), gs = tuple(grads), ms = tuple(exp_avgs)
    cdef tuple vs = tuple(exp_avg_sqs), ts = tuple(steps)
    if not (len(gs) == len(ms) == len(vs) == len(ts) == len(ps)):
        raise ValueError("adam_step: params, grads, exp_avgs, exp_avg_sqs and steps differ in "
                         "length")
    for i in range(len(ps)):
        t = ts[i]  # may raise: before any buffer is held
        if not _acquire_all([ps[i], gs[i], ms[i], vs[i]], writable, views):
            skipped.append(i)
            continue
        p, g, m, v = views[0].buf, views[1].buf, views[2].buf, views[3].buf
        step_size = lr / (1.0 - beta1 ** t)
        bc2_sqrt = (1.0 - beta2 ** t) ** 0.5
        n = views[0].len // views[0].itemsize
        if views[0].itemsize == 8:
            _adam_moments[double](<double *>p, <double *>g, <double *>m, <double *>v, n,
                                  1.0 - beta1, beta2, 1.0 - beta2, weight_decay, decoupled,
                                  shrink)
            _adam_apply[double](<double *>p, <double *>m, <double *>v, n, step_size, bc2_sqrt,
                                eps)
        else:
            _adam_moments[float](<float *>p, <float *>g, <float *>m, <float *>v, n,
                                 <float>(1.0 - beta1), <float>beta2, <float>(1.0 - beta2),
                                 <float>weight_decay, decoupled, <float>shrink)
            _adam_apply[float](<float *>p, <float *>m, <float *>v, n, <float>step_size,
                               <float>bc2_sqrt, <float>eps)
        _release_all(views, 4)
    return skipped
