# cython: boundscheck=True, wraparound=True
# (indexing of Python objects stays checked in the tensor engine: see tensor.pxd; the loops
# below run over raw pointers whose extents each entry point checks first)
# Sliding-window loops for convolution and pooling (see windows.pxd): im2col and its adjoint
# col2im, max and average pooling and their gradients. One pass over memory each, no Python per
# pixel; the GEMMs that turn columns into a convolution stay numpy's (BLAS).
from cython cimport floating
from libc.stdint cimport int64_t
from libc.string cimport memcpy, memset

import numpy as np

cdef object _np_empty = np.empty
cdef object _np_zeros = np.zeros
cdef object _np_ascontiguousarray = np.ascontiguousarray
cdef object _F64 = np.dtype(np.float64)
cdef object _F32 = np.dtype(np.float32)
cdef object _I64 = np.dtype(np.int64)
cdef object _INTP = np.dtype(np.intp)
cdef object ndarray = np.ndarray


# The loops' index arithmetic (positions y * stride - padding + i * dilation, and the ranges
# of _valid_range) stays far from overflow while every axis's extent is below this.
cdef object _LARGEST_EXTENT = 2 ** 60


cdef Grid2d grid_from(tuple t) except *:
    cdef Grid2d g
    C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow = t
    for size, k, s, p, d, o in ((H, kh, sh, ph, dh, oh), (W, kw, sw, pw, dw, ow)):
        if abs(size) + abs(p) + abs(k) * abs(d) + (abs(o) + 1) * abs(s) >= _LARGEST_EXTENT:
            raise RuntimeError(f"fastgrad: the window geometry {t} (channels, size, kernel, "
                               f"stride, padding, dilation, output) is too large")
    (g.C, g.H, g.W, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.oh, g.ow) = t
    if (g.C < 0 or g.H < 0 or g.W < 0 or g.kh < 1 or g.kw < 1 or g.sh < 1 or g.sw < 1 or
            g.dh < 1 or g.dw < 1 or g.oh < 0 or g.ow < 0):
        raise ValueError(f"fastgrad: invalid window geometry {t}")
    return g


cdef object _contiguous_float(object x, str what):
    """x as a C-contiguous float32/float64 ndarray (ValueError for another dtype)."""
    x = _np_ascontiguousarray(x)
    if x.dtype != _F64 and x.dtype != _F32:
        raise ValueError(f"fastgrad: {what} needs float32 or float64 data, got {x.dtype}")
    return x


cdef int _expect_shape(object a, tuple shape, str what) except -1:
    if a.shape != shape:
        raise ValueError(f"fastgrad: {what} expected an array of shape {shape}, got {a.shape}")
    return 0


cdef inline Py_ssize_t _at(Py_ssize_t r, Py_ssize_t n, Py_ssize_t l, Py_ssize_t rows,
                           Py_ssize_t images, Py_ssize_t positions, int layout) noexcept nogil:
    """The offset of column element (r, n, l) in the given layout (windows.pxd)."""
    if layout == CONV_LAYOUT:
        return (r * images + n) * positions + l
    return (n * rows + r) * positions + l


# --- im2col / col2im --------------------------------------------------------------------------

cdef inline void _valid_range(Py_ssize_t offset, Py_ssize_t s, Py_ssize_t n, Py_ssize_t size,
                              Py_ssize_t *lo, Py_ssize_t *hi) noexcept nogil:
    """The outputs o in [lo, hi) of 0 <= o < n whose input o * s + offset is in [0, size)."""
    cdef Py_ssize_t a = 0, b = n
    if offset < 0:
        a = (-offset + s - 1) // s
    if size - offset <= 0:
        b = 0
    else:
        b = min(n, (size - offset - 1) // s + 1)
    lo[0] = min(a, b)
    hi[0] = b


cdef void _im2col(const floating *x, floating *cols, Py_ssize_t n, Grid2d *g,
                  int layout) noexcept nogil:
    # Per kernel tap (c, i, j) the inputs a row of windows reads are a strided run of one
    # image row: copied without a test per element; the padding around it is zeroed.
    cdef Py_ssize_t rows = g.C * g.kh * g.kw
    cdef Py_ssize_t positions = g.oh * g.ow
    cdef Py_ssize_t b, c, i, j, r, y, xo, h, off, lo, hi, ylo, yhi
    cdef Py_ssize_t ow = g.ow, sw = g.sw
    cdef const floating *src
    cdef floating *out
    for b in range(n):
        for c in range(g.C):
            for i in range(g.kh):
                _valid_range(i * g.dh - g.ph, g.sh, g.oh, g.H, &ylo, &yhi)
                for j in range(g.kw):
                    r = (c * g.kh + i) * g.kw + j
                    out = cols + _at(r, b, 0, rows, n, positions, layout)
                    off = j * g.dw - g.pw
                    _valid_range(off, sw, ow, g.W, &lo, &hi)
                    if ylo > 0:
                        memset(out, 0, ylo * ow * sizeof(floating))
                    if yhi < g.oh:
                        memset(out + yhi * ow, 0, (g.oh - yhi) * ow * sizeof(floating))
                    for y in range(ylo, yhi):
                        h = y * g.sh - g.ph + i * g.dh
                        src = x + ((b * g.C + c) * g.H + h) * g.W      # the image row
                        if lo > 0:
                            memset(out + y * ow, 0, lo * sizeof(floating))
                        if hi < ow:
                            memset(out + y * ow + hi, 0, (ow - hi) * sizeof(floating))
                        if sw == 1:
                            if hi > lo:
                                memcpy(out + y * ow + lo, src + lo + off,
                                       (hi - lo) * sizeof(floating))
                        else:
                            for xo in range(lo, hi):
                                out[y * ow + xo] = src[xo * sw + off]


cdef void _col2im(const floating *cols, floating *x, Py_ssize_t n, Grid2d *g,
                  int layout) noexcept nogil:
    # The adjoint of _im2col, run by the same ranges; x must be zeros (windows overlap).
    cdef Py_ssize_t rows = g.C * g.kh * g.kw
    cdef Py_ssize_t positions = g.oh * g.ow
    cdef Py_ssize_t b, c, i, j, r, y, xo, h, off, lo, hi, ylo, yhi
    cdef Py_ssize_t ow = g.ow, sw = g.sw
    cdef floating *dst
    cdef const floating *src
    for b in range(n):
        for c in range(g.C):
            for i in range(g.kh):
                _valid_range(i * g.dh - g.ph, g.sh, g.oh, g.H, &ylo, &yhi)
                for j in range(g.kw):
                    r = (c * g.kh + i) * g.kw + j
                    src = cols + _at(r, b, 0, rows, n, positions, layout)
                    off = j * g.dw - g.pw
                    _valid_range(off, sw, ow, g.W, &lo, &hi)
                    for y in range(ylo, yhi):
                        h = y * g.sh - g.ph + i * g.dh
                        dst = x + ((b * g.C + c) * g.H + h) * g.W      # the image row
                        for xo in range(lo, hi):
                            dst[xo * sw + off] += src[y * ow + xo]


cdef tuple _cols_shape(Grid2d *g, Py_ssize_t n, int layout):
    cdef Py_ssize_t rows = g.C * g.kh * g.kw
    if layout == CONV_LAYOUT:
        return (rows, n * g.oh * g.ow)
    return (n, rows, g.oh * g.ow)


cdef object im2col(object x, Grid2d *g, int layout):
    x = _contiguous_float(x, 'im2col')
    if x.ndim != 4:
        raise ValueError(f"fastgrad: im2col expected a 4-D array, got shape {x.shape}")
    cdef Py_ssize_t n = x.shape[0]
    _expect_shape(x, (n, g.C, g.H, g.W), 'im2col')
    cols = _np_empty(_cols_shape(g, n, layout), dtype=x.dtype)
    if cols.size == 0:
        return cols
    cdef const double[:, :, :, ::1] x64
    cdef const float[:, :, :, ::1] x32
    cdef double[::1] c64
    cdef float[::1] c32
    if x.dtype == _F64:
        x64 = x
        c64 = cols.reshape(-1)
        with nogil:
            _im2col(&x64[0, 0, 0, 0], &c64[0], n, g, layout)
    else:
        x32 = x
        c32 = cols.reshape(-1)
        with nogil:
            _im2col(&x32[0, 0, 0, 0], &c32[0], n, g, layout)
    return cols


cdef object col2im(object cols, Grid2d *g, Py_ssize_t n, int layout):
    cols = _contiguous_float(cols, 'col2im')
    _expect_shape(cols, _cols_shape(g, n, layout), 'col2im')
    x = _np_zeros((n, g.C, g.H, g.W), dtype=cols.dtype)
    if cols.size == 0 or x.size == 0:
        return x
    cdef double[::1] x64
    cdef float[::1] x32
    cdef const double[::1] c64
    cdef const float[::1] c32
    if x.dtype == _F64:
        x64 = x.reshape(-1)
        c64 = cols.reshape(-1)
        with nogil:
            _col2im(&c64[0], &x64[0], n, g, layout)
    else:
        x32 = x.reshape(-1)
        c32 = cols.reshape(-1)
        with nogil:
            _col2im(&c32[0], &x32[0], n, g, layout)
    return x


# --- pooling ----------------------------------------------------------------------------------

cdef int _check_windows(object start, object count, Py_ssize_t d, Py_ssize_t size,
                        str axis) except -1:
    """Every window on this axis is non-empty and lies inside the image (the loops trust it)."""
    if type(start) is not ndarray or type(count) is not ndarray or start.dtype != _INTP or \
            count.dtype != _INTP or start.shape != count.shape or start.ndim != 1:
        raise ValueError(f"fastgrad: pooling windows along {axis} must be two intp vectors")
    cdef const Py_ssize_t[:] s = start
    cdef const Py_ssize_t[:] c = count
    cdef Py_ssize_t i
    for i in range(s.shape[0]):
        if s[i] < 0 or s[i] >= size or c[i] < 1 or c[i] - 1 > (size - 1 - s[i]) // d:
            raise ValueError(f"fastgrad: a pooling window along {axis} leaves the image")
    return 0


cdef void _pool_max(const floating *x, floating *out, int64_t *idx, Py_ssize_t planes,
                    Py_ssize_t H, Py_ssize_t W, const Py_ssize_t *hs, const Py_ssize_t *hc,
                    Py_ssize_t oh, const Py_ssize_t *ws, const Py_ssize_t *wc, Py_ssize_t ow,
                    Py_ssize_t dh, Py_ssize_t dw) noexcept nogil:
    # PyTorch's rule: the first position of the largest value, or the last NaN. Which value
    # wins is unpredictable on real data, so the loop has no branch on it (a mispredicted
    # branch per element made it 3x slower): a max instruction and an index update by
    # arithmetic. A window holding a NaN takes a second, rare pass.
    cdef Py_ssize_t p, y, xo, i, j, at, best, take
    cdef floating v, m
    cdef bint nan
    cdef const floating *plane
    for p in range(planes):
        plane = x + p * H * W
        for y in range(oh):
            for xo in range(ow):
                best = hs[y] * W + ws[xo]
                m = plane[best]
                nan = False
                for i in range(hc[y]):
                    for j in range(wc[xo]):
                        at = (hs[y] + i * dh) * W + ws[xo] + j * dw
                        v = plane[at]
                        take = v > m
                        best += take * (at - best)
                        m = v if v > m else m
                        nan |= v != v
                if nan:
                    for i in range(hc[y]):
                        for j in range(wc[xo]):
                            at = (hs[y] + i * dh) * W + ws[xo] + j * dw
                            if plane[at] != plane[at]:
                                best = at
                                m = plane[at]
                out[(p * oh + y) * ow + xo] = m
                idx[(p * oh + y) * ow + xo] = best


cdef bint _pool_max_grad(const floating *g, const int64_t *idx, floating *gx,
                         Py_ssize_t planes, Py_ssize_t hw, Py_ssize_t outs) noexcept nogil:
    # False (and nothing written past the index) if an index leaves its plane
    cdef Py_ssize_t p, k
    cdef int64_t at
    for p in range(planes):
        for k in range(outs):
            at = idx[p * outs + k]
            if at < 0 or at >= hw:
                return False
            gx[p * hw + at] += g[p * outs + k]
    return True


cdef void _pool_avg(const floating *x, floating *out, const floating *div, Py_ssize_t planes,
                    Py_ssize_t H, Py_ssize_t W, const Py_ssize_t *hs, const Py_ssize_t *hc,
                    Py_ssize_t oh, const Py_ssize_t *ws, const Py_ssize_t *wc,
                    Py_ssize_t ow) noexcept nogil:
    cdef Py_ssize_t p, y, xo, h, w
    cdef floating s
    cdef const floating *plane
    for p in range(planes):
        plane = x + p * H * W
        for y in range(oh):
            for xo in range(ow):
                s = 0
                for h in range(hs[y], hs[y] + hc[y]):
                    for w in range(ws[xo], ws[xo] + wc[xo]):
                        s += plane[h * W + w]
                out[(p * oh + y) * ow + xo] = s / div[y * ow + xo]


cdef void _pool_avg_grad(const floating *g, floating *gx, const floating *div,
                         Py_ssize_t planes, Py_ssize_t H, Py_ssize_t W, const Py_ssize_t *hs,
                         const Py_ssize_t *hc, Py_ssize_t oh, const Py_ssize_t *ws,
                         const Py_ssize_t *wc, Py_ssize_t ow) noexcept nogil:
    cdef Py_ssize_t p, y, xo, h, w
    cdef floating v
    cdef floating *plane
    for p in range(planes):
        plane = gx + p * H * W
        for y in range(oh):
            for xo in range(ow):
                v = g[(p * oh + y) * ow + xo] / div[y * ow + xo]
                for h in range(hs[y], hs[y] + hc[y]):
                    for w in range(ws[xo], ws[xo] + wc[xo]):
                        plane[h * W + w] += v


cdef tuple pool_max(object x, object hstart, object hcount, object wstart, object wcount,
                    Py_ssize_t dh, Py_ssize_t dw):
    x = _contiguous_float(x, 'max pooling')
    if x.ndim != 4:
        raise ValueError(f"fastgrad: max pooling expected a 4-D array, got shape {x.shape}")
    cdef Py_ssize_t H = x.shape[2], W = x.shape[3]
    _check_windows(hstart, hcount, dh, H, 'height')
    _check_windows(wstart, wcount, dw, W, 'width')
    cdef Py_ssize_t oh = hstart.shape[0], ow = wstart.shape[0]
    cdef Py_ssize_t planes = x.shape[0] * x.shape[1]
    out = _np_empty((x.shape[0], x.shape[1], oh, ow), dtype=x.dtype)
    idx = _np_empty(out.shape, dtype=_I64)
    if out.size == 0:
        return out, idx
    cdef const Py_ssize_t[::1] hs = hstart, hc = hcount, ws = wstart, wc = wcount
    cdef const double[::1] x64
    cdef const float[::1] x32
    cdef double[::1] o64
    cdef float[::1] o32
    cdef int64_t[::1] iv = idx.reshape(-1)
    if x.dtype == _F64:
        x64 = x.reshape(-1)
        o64 = out.reshape(-1)
        with nogil:
            _pool_max(&x64[0], &o64[0], &iv[0], planes, H, W, &hs[0], &hc[0], oh, &ws[0],
                      &wc[0], ow, dh, dw)
    else:
        x32 = x.reshape(-1)
        o32 = out.reshape(-1)
        with nogil:
            _pool_max(&x32[0], &o32[0], &iv[0], planes, H, W, &hs[0], &hc[0], oh, &ws[0],
                      &wc[0], ow, dh, dw)
    return out, idx


cdef object pool_max_grad(object g, object idx, Py_ssize_t h, Py_ssize_t w):
    g = _contiguous_float(g, 'max pooling gradient')
    idx = _np_ascontiguousarray(idx)
    if idx.dtype != _I64 or idx.shape != g.shape or g.ndim != 4:
        raise ValueError("fastgrad: max pooling gradient: indices do not fit the gradient")
    gx = _np_zeros((g.shape[0], g.shape[1], h, w), dtype=g.dtype)
    if g.size == 0:
        return gx
    cdef bint inside
    cdef Py_ssize_t planes = g.shape[0] * g.shape[1]
    cdef Py_ssize_t outs = g.shape[2] * g.shape[3]
    cdef const int64_t[::1] iv = idx.reshape(-1)
    cdef const double[::1] g64
    cdef const float[::1] g32
    cdef double[::1] x64
    cdef float[::1] x32
    if g.dtype == _F64:
        g64 = g.reshape(-1)
        x64 = gx.reshape(-1)
        with nogil:
            inside = _pool_max_grad(&g64[0], &iv[0], &x64[0], planes, h * w, outs)
    else:
        g32 = g.reshape(-1)
        x32 = gx.reshape(-1)
        with nogil:
            inside = _pool_max_grad(&g32[0], &iv[0], &x32[0], planes, h * w, outs)
    if not inside:
        raise ValueError("fastgrad: max pooling gradient: an index leaves the image")
    return gx


cdef object _divisor_as(object divisor, object dtype, Py_ssize_t oh, Py_ssize_t ow):
    d = _np_ascontiguousarray(divisor, dtype=dtype)
    _expect_shape(d, (oh, ow), 'average pooling divisor')
    return d


cdef object pool_avg(object x, object hstart, object hcount, object wstart, object wcount,
                     object divisor):
    x = _contiguous_float(x, 'average pooling')
    if x.ndim != 4:
        raise ValueError(f"fastgrad: average pooling expected a 4-D array, got {x.shape}")
    cdef Py_ssize_t H = x.shape[2], W = x.shape[3]
    _check_windows(hstart, hcount, 1, H, 'height')
    _check_windows(wstart, wcount, 1, W, 'width')
    cdef Py_ssize_t oh = hstart.shape[0], ow = wstart.shape[0]
    cdef Py_ssize_t planes = x.shape[0] * x.shape[1]
    d = _divisor_as(divisor, x.dtype, oh, ow)
    out = _np_empty((x.shape[0], x.shape[1], oh, ow), dtype=x.dtype)
    if out.size == 0:
        return out
    cdef const Py_ssize_t[::1] hs = hstart, hc = hcount, ws = wstart, wc = wcount
    cdef const double[::1] x64, d64
    cdef const float[::1] x32, d32
    cdef double[::1] o64
    cdef float[::1] o32
    if x.dtype == _F64:
        x64 = x.reshape(-1)
        o64 = out.reshape(-1)
        d64 = d.reshape(-1)
        with nogil:
            _pool_avg(&x64[0], &o64[0], &d64[0], planes, H, W, &hs[0], &hc[0], oh, &ws[0],
                      &wc[0], ow)
    else:
        x32 = x.reshape(-1)
        o32 = out.reshape(-1)
        d32 = d.reshape(-1)
        with nogil:
            _pool_avg(&x32[0], &o32[0], &d32[0], planes, H, W, &hs[0], &hc[0], oh, &ws[0],
                      &wc[0], ow)
    return out


cdef object pool_avg_grad(object g, object hstart, object hcount, object wstart, object wcount,
                          object divisor, Py_ssize_t h, Py_ssize_t w):
    g = _contiguous_float(g, 'average pooling gradient')
    if g.ndim != 4:
        raise ValueError(f"fastgrad: average pooling gradient: expected 4-D, got {g.shape}")
    _check_windows(hstart, hcount, 1, h, 'height')
    _check_windows(wstart, wcount, 1, w, 'width')
    cdef Py_ssize_t oh = hstart.shape[0], ow = wstart.shape[0]
    if g.shape[2] != oh or g.shape[3] != ow:
        raise ValueError("fastgrad: average pooling gradient: windows do not fit the gradient")
    d = _divisor_as(divisor, g.dtype, oh, ow)
    gx = _np_zeros((g.shape[0], g.shape[1], h, w), dtype=g.dtype)
    if g.size == 0:
        return gx
    cdef Py_ssize_t planes = g.shape[0] * g.shape[1]
    cdef const Py_ssize_t[::1] hs = hstart, hc = hcount, ws = wstart, wc = wcount
    cdef const double[::1] g64, d64
    cdef const float[::1] g32, d32
    cdef double[::1] x64
    cdef float[::1] x32
    if g.dtype == _F64:
        g64 = g.reshape(-1)
        x64 = gx.reshape(-1)
        d64 = d.reshape(-1)
        with nogil:
            _pool_avg_grad(&g64[0], &x64[0], &d64[0], planes, h, w, &hs[0], &hc[0], oh,
                           &ws[0], &wc[0], ow)
    else:
        g32 = g.reshape(-1)
        x32 = gx.reshape(-1)
        d32 = d.reshape(-1)
        with nogil:
            _pool_avg_grad(&g32[0], &x32[0], &d32[0], planes, h, w, &hs[0], &hc[0], oh,
                           &ws[0], &wc[0], ow)
    return gx
