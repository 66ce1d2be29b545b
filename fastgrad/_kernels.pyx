# Fused optimizer updates: one compiled pass over each parameter instead of numpy's chain of
# temporaries (an Adam step is ~10 numpy calls per parameter), and one call per optimizer step
# for all parameters, so the per-parameter Python overhead is small too.
#
# Same formulas, in the same order, as the numpy fallback in fastgrad/optim.py and as PyTorch's
# single-tensor implementations; compiled with -ffp-contract=off, so no fused multiply-adds
# change the rounding (float64 results are bit-for-bit those of the numpy fallback).
#
# Arrays are taken through the buffer protocol and must be C-contiguous float32/float64 of one
# dtype (the parameter also writable). Anything else is reported back to the caller, which
# updates it with numpy instead: the kernels never guess.
from cpython.buffer cimport (PyBUF_C_CONTIGUOUS, PyBUF_FORMAT, PyBUF_WRITABLE, PyBuffer_Release,
                             PyObject_GetBuffer)
from cython cimport floating
from libc.math cimport sqrt


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


cdef void _sgd_loop(floating *param, floating *grad, floating *buf, Py_ssize_t n, double lr,
                    double momentum, double weight_decay, bint nesterov, bint first) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating g
    # The common cases get loops without branches, which gcc vectorizes; same arithmetic.
    if momentum == 0 and weight_decay == 0:
        for i in range(n):
            param[i] = <floating>(param[i] - <floating>(lr * grad[i]))
        return
    if momentum != 0 and weight_decay == 0 and not nesterov:
        if first:
            for i in range(n):
                buf[i] = grad[i]
                param[i] = <floating>(param[i] - <floating>(lr * grad[i]))
        else:
            for i in range(n):
                buf[i] = <floating>(<floating>(buf[i] * momentum) + grad[i])
                param[i] = <floating>(param[i] - <floating>(lr * buf[i]))
        return
    for i in range(n):
        g = grad[i]
        if weight_decay != 0:
            g = <floating>(g + <floating>(weight_decay * param[i]))
        if momentum != 0:
            if first:
                buf[i] = g
            else:
                buf[i] = <floating>(<floating>(buf[i] * momentum) + g)
            if nesterov:
                g = <floating>(g + <floating>(momentum * buf[i]))
            else:
                g = buf[i]
        param[i] = <floating>(param[i] - <floating>(lr * g))


cdef void _adam_loop(floating *param, floating *grad, floating *m, floating *v, Py_ssize_t n,
                     double lr, double beta1, double beta2, double eps, double weight_decay,
                     bint decoupled, double step_size, double bc2_sqrt) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating g, mi, vi, denom
    cdef double shrink = 1.0 - lr * weight_decay
    for i in range(n):
        g = grad[i]
        if weight_decay != 0:
            if decoupled:
                param[i] = <floating>(param[i] * shrink)
            else:
                g = <floating>(g + <floating>(weight_decay * param[i]))
        mi = m[i]
        mi = <floating>(mi + <floating>((1.0 - beta1) * <floating>(g - mi)))
        m[i] = mi
        vi = <floating>(<floating>(v[i] * beta2) + <floating>((1.0 - beta2) * <floating>(g * g)))
        v[i] = vi
        denom = <floating>(<floating>(sqrt(vi) / bc2_sqrt) + eps)
        param[i] = <floating>(param[i] - <floating>(step_size * <floating>(mi / denom)))


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
                _sgd_loop[float](<float *>pv.buf, <float *>gv.buf, <float *>bv.buf,
                                 pv.len // 4, lr, momentum, weight_decay, nesterov, first)
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
    count, already incremented (from 1). Returns the indices it could not update."""
    cdef Py_ssize_t i
    cdef Py_buffer pv, gv, mv, vv
    cdef list skipped = []
    cdef long t
    cdef double step_size, bc2_sqrt
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
            if pv.itemsize == 8:
                _adam_loop[double](<double *>pv.buf, <double *>gv.buf, <double *>mv.buf,
                                   <double *>vv.buf, pv.len // 8, lr, beta1, beta2, eps,
                                   weight_decay, decoupled, step_size, bc2_sqrt)
            else:
                _adam_loop[float](<float *>pv.buf, <float *>gv.buf, <float *>mv.buf,
                                  <float *>vv.buf, pv.len // 4, lr, beta1, beta2, eps,
                                  weight_decay, decoupled, step_size, bc2_sqrt)
        else:
            skipped.append(i)
        PyBuffer_Release(&vv)
        PyBuffer_Release(&mv)
        PyBuffer_Release(&gv)
        PyBuffer_Release(&pv)
    return skipped
