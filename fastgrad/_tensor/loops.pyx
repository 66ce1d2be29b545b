# cython: boundscheck=True, wraparound=True
# (indexing of Python objects stays checked in the tensor engine: see tensor.pxd)
# Compiled loops for the numpy passes that are slow for their size in a batch step: the
# row-wise parts of cross-entropy (numpy's reductions and broadcasts along a short last axis
# run one inner loop per row, ~40 us for (256, 10); exp itself stays numpy's vectorised ufunc),
# relu's value and its gradient mask, linear's bias add and its bias-gradient column sum. Same
# arithmetic as the numpy expressions they replace, in the array's dtype (bit-identical except
# cross-entropy's row sums of exp, accumulated in double). Arrays that are not C-contiguous
# float32/float64 take the numpy expressions. Nothing here knows about Tensors: the callers
# (tensor.pyx, functional.pyx, rules.pyx) pass arrays. setup.py aligns this module's loops to
# 64 bytes with gcc (see there).
from cpython.buffer cimport (PyBUF_C_CONTIGUOUS, PyBUF_WRITABLE, PyBuffer_Release,
                             PyObject_GetBuffer)
from cython cimport floating
from libc.math cimport log

import numpy as np

cdef object _np_exp = np.exp
cdef object _np_maximum = np.maximum
cdef object _np_asarray = np.asarray
cdef object _np_empty_like = np.empty_like
cdef object _np_add_reduce = np.add.reduce
cdef object _np_intp = np.dtype(np.intp)
cdef object _F64 = np.dtype(np.float64)
cdef object _F32 = np.dtype(np.float32)


cdef void *_buf(object arr, bint writable) except? NULL:
    """Data pointer of a C-contiguous array (NULL if it is not C-contiguous/writable). The
    array keeps its memory while it lives, so the view is released at once."""
    cdef Py_buffer view
    cdef void *p
    try:
        PyObject_GetBuffer(arr, &view, PyBUF_C_CONTIGUOUS | (PyBUF_WRITABLE if writable else 0))
    except (BufferError, TypeError, ValueError):
        return NULL
    p = view.buf
    PyBuffer_Release(&view)
    return p


cdef Py_ssize_t _targets_ok(Py_ssize_t *t, Py_ssize_t n, Py_ssize_t c) noexcept nogil:
    cdef Py_ssize_t i
    cdef Py_ssize_t bad = 0
    for i in range(n):
        bad |= (t[i] < 0) | (t[i] >= c)
    return not bad


cdef void _ce_shift(floating *x, floating *z, Py_ssize_t n, Py_ssize_t c) noexcept nogil:
    """z = x - rowmax(x)"""
    cdef Py_ssize_t i, j
    cdef floating m
    for i in range(n):
        m = x[i * c]
        for j in range(1, c):
            if x[i * c + j] > m:
                m = x[i * c + j]
        for j in range(c):
            z[i * c + j] = x[i * c + j] - m


cdef double _ce_lse(floating *z, floating *e, floating *lse, Py_ssize_t *t, Py_ssize_t n,
                    Py_ssize_t c) noexcept nogil:
    """lse[i] = log(sum_j e[i, j]); returns sum_i (lse[i] - z[i, t[i]])."""
    cdef Py_ssize_t i, j
    cdef double s, total = 0.0
    for i in range(n):
        s = 0.0
        for j in range(c):
            s += e[i * c + j]
        lse[i] = <floating>log(s)
        total += <double>(lse[i] - z[i * c + t[i]])
    return total


cdef void _ce_logp(floating *z, floating *lse, floating *p, Py_ssize_t n,
                   Py_ssize_t c) noexcept nogil:
    """p = z - lse[:, None]"""
    cdef Py_ssize_t i, j
    cdef floating l
    for i in range(n):
        l = lse[i]
        for j in range(c):
            p[i * c + j] = z[i * c + j] - l


cdef int _ce_finish(floating *p, Py_ssize_t *t, floating scale, Py_ssize_t n,
                    Py_ssize_t c) noexcept nogil:
    """p[i, t[i]] -= 1; p *= scale. -1 (and p unfinished) if a target is out of range: t is
    checked here, where it is used, whatever checked it before."""
    cdef Py_ssize_t i, j
    for i in range(n):
        if t[i] < 0 or t[i] >= c:
            return -1
        p[i * c + t[i]] -= 1
    for i in range(n * c):
        p[i] *= scale
    return 0


cdef void _colsum_loop(floating *g, floating *out, Py_ssize_t n, Py_ssize_t c) noexcept nogil:
    """out = g.sum(axis=0) for a C-contiguous (n, c) g, rows added in order as numpy does."""
    cdef Py_ssize_t i, j
    for j in range(c):
        out[j] = g[j]
    for i in range(1, n):
        for j in range(c):
            out[j] = out[j] + g[i * c + j]


cdef object colsum(object g):
    """g.sum(axis=0) of a 2-D array: numpy's axis-0 reduction costs ~10 us at (256, 128)."""
    if g.ndim != 2:
        return _np_add_reduce(g, 0, None, None, False)
    cdef Py_ssize_t n = g.shape[0], c = g.shape[1]
    cdef void *pg
    if n == 0 or c == 0 or not (g.dtype is _F32 or g.dtype is _F64):
        return _np_add_reduce(g, 0, None, None, False)
    pg = _buf(g, False)
    if pg == NULL:
        return _np_add_reduce(g, 0, None, None, False)
    out = _np_empty_like(g, shape=(c,))
    if g.dtype is _F32:
        _colsum_loop[float](<float *>pg, <float *>_buf(out, True), n, c)
    else:
        _colsum_loop[double](<double *>pg, <double *>_buf(out, True), n, c)
    return out


cdef void _add_rows_loop(floating *out, floating *b, Py_ssize_t n, Py_ssize_t c) noexcept nogil:
    cdef Py_ssize_t i, j
    for i in range(n):
        for j in range(c):
            out[i * c + j] = out[i * c + j] + b[j]


cdef object add_bias(object out, object b):
    """out += b (b of shape (C,) along out's last axis) in place, like numpy's broadcast add
    (one add per element, same bits), minus its per-row inner loops."""
    if b.ndim != 1:
        out += b
        return out
    cdef Py_ssize_t c = b.shape[0]
    cdef void *po
    cdef void *pb
    if (c == 0 or out.ndim == 0 or out.shape[out.ndim - 1] != c or out.dtype is not b.dtype
            or not (out.dtype is _F32 or out.dtype is _F64)):
        out += b
        return out
    po = _buf(out, True)
    pb = _buf(b, False)
    if po == NULL or pb == NULL:
        out += b
        return out
    if out.dtype is _F32:
        _add_rows_loop[float](<float *>po, <float *>pb, out.size // c, c)
    else:
        _add_rows_loop[double](<double *>po, <double *>pb, out.size // c, c)
    return out


cdef void _relu_loop(floating *x, floating *r, Py_ssize_t n) noexcept nogil:
    """r = np.maximum(x, 0.0) as numpy computes it: nan stays nan, -0.0 becomes +0.0."""
    cdef Py_ssize_t i
    cdef floating zero = 0
    for i in range(n):
        r[i] = zero if x[i] <= zero else x[i]


cdef object relu_value(object x):
    cdef void *px
    if x.dtype is _F32 or x.dtype is _F64:
        px = _buf(x, False)
        if px != NULL and x.size:
            r = _np_empty_like(x)
            if x.dtype is _F32:
                _relu_loop[float](<float *>px, <float *>_buf(r, True), x.size)
            else:
                _relu_loop[double](<double *>px, <double *>_buf(r, True), x.size)
            return r
    return _np_maximum(x, 0.0)


cdef void _relu_mask_loop(floating *g, floating *out, floating *r, Py_ssize_t n) noexcept nogil:
    """r = g * (not out <= 0), as numpy computes it (g * 0 keeps nan/inf and signed zeros). The
    gradient passes where the value is nan, as PyTorch's relu does."""
    cdef Py_ssize_t i
    cdef floating zero = 0, one = 1      # compared in the array's type: gcc then vectorises
    for i in range(n):
        r[i] = g[i] * (zero if out[i] <= zero else one)


cdef object relu_mask(object g, object out, bint owned):
    """g * (not out <= 0), into g itself if the sweep owns it."""
    cdef object r
    if g.dtype is not out.dtype or g.shape != out.shape:
        return g * ~(out <= 0)
    r = g if owned else _np_empty_like(out)
    cdef void *pg = _buf(g, False)
    cdef void *po = _buf(out, False)
    cdef void *pr = _buf(r, True)
    if pg == NULL or po == NULL or pr == NULL:
        return g * ~(out <= 0)
    if out.dtype is _F32:
        _relu_mask_loop[float](<float *>pg, <float *>po, <float *>pr, out.size)
    elif out.dtype is _F64:
        _relu_mask_loop[double](<double *>pg, <double *>po, <double *>pr, out.size)
    else:
        return g * ~(out <= 0)
    return r


cdef tuple cross_entropy_value(object xv, object ti, Py_ssize_t n, Py_ssize_t c):
    """cross_entropy's value with the compiled row loops: (loss, z, lse), or (None,)*3 when the
    arrays do not fit them (or a target is out of range: the caller reports it)."""
    none = (None, None, None)
    if not ((xv.dtype is _F32 or xv.dtype is _F64) and ti.dtype is _np_intp
            and xv.shape == (n, c) and ti.shape == (n,)):
        return none
    cdef Py_ssize_t *pt = <Py_ssize_t *>_buf(ti, False)
    if pt == NULL or not _targets_ok(pt, n, c):
        return none
    cdef void *px = _buf(xv, False)
    if px == NULL:
        xv = xv.copy()
        px = _buf(xv, False)
    z = _np_empty_like(xv)
    lse = _np_empty_like(xv, shape=(n,))
    cdef void *pz = _buf(z, True)
    cdef double total
    if xv.dtype is _F32:
        _ce_shift[float](<float *>px, <float *>pz, n, c)
    else:
        _ce_shift[double](<double *>px, <double *>pz, n, c)
    e = _np_exp(z)      # (may release the GIL: the pointers are taken again after it)
    pz = _buf(z, False)
    cdef void *pl = _buf(lse, True)
    pt = <Py_ssize_t *>_buf(ti, False)
    if not _targets_ok(pt, n, c):   # pragma: no cover - ti is the caller's private copy
        return none
    if xv.dtype is _F32:
        total = _ce_lse[float](<float *>pz, <float *>_buf(e, False), <float *>pl, pt, n, c)
    else:
        total = _ce_lse[double](<double *>pz, <double *>_buf(e, False), <double *>pl, pt, n, c)
    return _np_asarray(total / n, dtype=xv.dtype), z, lse


cdef object cross_entropy_grad(object z, object lse, object t, object scale):
    """(softmax(z) - onehot(t)) * scale with the compiled row loops, or None if the arrays do
    not fit them (the caller then uses numpy)."""
    if not ((z.dtype is _F32 or z.dtype is _F64) and t.dtype is _np_intp
            and lse.dtype is z.dtype and z.ndim == 2 and t.ndim == 1 and lse.ndim == 1):
        return None
    cdef Py_ssize_t rows = z.shape[0], c = z.shape[1]
    if t.shape[0] != rows or lse.shape[0] != rows:
        return None
    cdef void *pz = _buf(z, False)
    cdef void *pl = _buf(lse, False)
    cdef void *pt = _buf(t, False)
    if pz == NULL or pl == NULL or pt == NULL:
        return None
    p = _np_empty_like(z)
    cdef void *pp = _buf(p, True)
    cdef int status
    if z.dtype is _F32:
        _ce_logp[float](<float *>pz, <float *>pl, <float *>pp, rows, c)
    else:
        _ce_logp[double](<double *>pz, <double *>pl, <double *>pp, rows, c)
    _np_exp(p, out=p)   # (may release the GIL: the pointers are taken again after it)
    pp = _buf(p, True)
    pt = _buf(t, False)
    if pp == NULL or pt == NULL:    # pragma: no cover - t is the node's private array
        return None
    if z.dtype is _F32:
        status = _ce_finish[float](<float *>pp, <Py_ssize_t *>pt, <float>scale, rows, c)
    else:
        status = _ce_finish[double](<double *>pp, <Py_ssize_t *>pt, <double>scale, rows, c)
    if status:
        raise ValueError(f"cross_entropy: a saved target lies outside [0, {c})")
    return p
