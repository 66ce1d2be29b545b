# cython: boundscheck=True, wraparound=True, cdivision=False
# (floor division: window counts of negative spans must come out below one, as Python's //)
# (indexing of Python objects stays checked in the tensor engine: see tensor.pxd)
# The window ops of convolutional nets, each one tape node: conv2d, conv_transpose2d,
# unfold/fold, max and average pooling (fixed and adaptive windows). Their rules are in
# rules.pyx. Arguments arrive normalised (tuples of ints, 4-D input): fastgrad.nn.functional
# turns PyTorch's spellings into them. The shape checks here give PyTorch's errors, and are what
# makes the loops of windows.pyx safe whatever the caller passes.
#
# How a convolution runs: im2col lays every window of the input out as a column, for the whole
# batch at once (rows C*kh*kw, columns N*oh*ow), so the convolution is one GEMM per group
# (numpy's BLAS) and a transpose to (N, O, oh, ow). Backward is the two GEMMs of a matmul and
# col2im (the adjoint of im2col). The node saves the columns, so backward does not lay them out
# again. A transposed convolution is the same pieces the other way round.
from libc.stdint cimport uint8_t

from fastgrad._tensor.grad_mode cimport grad_enabled
from fastgrad._tensor.tensor cimport *
from fastgrad._tensor.windows cimport (BATCH_LAYOUT, CONV_LAYOUT, Grid2d, col2im, grid_from,
                                       im2col, pool_avg, pool_max)

import operator

import numpy as np

cdef object _np_matmul = np.matmul
cdef object _np_ascontiguousarray = np.ascontiguousarray
cdef object _np_empty = np.empty
cdef object _np_full = np.full
cdef object _np_arange = np.arange
cdef object _np_minimum = np.minimum
cdef object _np_maximum = np.maximum
cdef object _np_multiply_outer = np.multiply.outer
cdef object _intp = np.dtype(np.intp)
cdef object _index = operator.index

_TYPE_NAMES = {'float64': 'Double', 'float32': 'Float', 'float16': 'Half', 'int64': 'Long',
               'int32': 'Int', 'int16': 'Short', 'int8': 'Char', 'uint8': 'Byte',
               'bool': 'Bool'}


# --- argument checks --------------------------------------------------------------------------

cdef Tensor _tensor_arg(object x, str op, str what):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}(): argument '{what}' must be Tensor, not {type(x).__name__}")
    return <Tensor>x


cdef object _float_data(Tensor t, str op):
    """t's array; RuntimeError (as PyTorch's kernels) unless it is float32/float64."""
    v = t._data
    if v.dtype != F64 and v.dtype != F32:
        raise RuntimeError(f"\"{op}\" not implemented for "
                           f"'{_TYPE_NAMES.get(v.dtype.name, v.dtype.name)}'")
    return v


cdef int _same_dtype(object a, object b, str what) except -1:
    if a.dtype != b.dtype:
        raise RuntimeError(f"Input type ({_TYPE_NAMES[a.dtype.name]}) and {what} type "
                           f"({_TYPE_NAMES.get(b.dtype.name, b.dtype.name)}) should be the same")
    return 0


cdef tuple _ints(object values, Py_ssize_t n, str what, Py_ssize_t least, str message):
    """values as a tuple of n Python ints, each >= least (RuntimeError(message) otherwise)."""
    try:
        out = tuple([_index(v) for v in values])
    except TypeError:
        raise TypeError(f"{what} must be a tuple of {n} ints, got {values!r}") from None
    if len(out) != n:
        raise RuntimeError(f"expected {what} to be a tuple of {n} ints, got {values!r}")
    for v in out:
        if v < least:
            raise RuntimeError(message)
    return out


cdef str _dims(object shape):
    return '[' + ', '.join([str(d) for d in shape]) + ']'


cdef int _need_4d(object v, str op) except -1:
    if v.ndim != 4:
        raise RuntimeError(f"Expected 4D (batched) input to {op}, but got input of size: "
                           f"{_dims(v.shape)}")
    return 0


cdef Tensor _node(object out):
    return new_tensor(out)


cdef tuple _conv_operands(object input, object weight, object bias, str op):
    """(input, weight, bias) as Tensors and the input's and weight's arrays, checked as
    PyTorch's convolutions check them: 4-D float input, 4-D weight of the same dtype."""
    cdef Tensor tx = _tensor_arg(input, op, 'input')
    cdef Tensor tw = _tensor_arg(weight, op, 'weight')
    cdef Tensor tb = None if bias is None else _tensor_arg(bias, op, 'bias')
    xv = _float_data(tx, op)
    wv = tw._data
    _need_4d(xv, op)
    if wv.ndim != 4:
        raise RuntimeError(f"Expected 4-dimensional weight for 4-dimensional input "
                           f"{_dims(xv.shape)}, but got {wv.ndim}-dimensional weight of size "
                           f"{_dims(wv.shape)} instead")
    _same_dtype(xv, wv, 'weight')
    return tx, tw, tb, xv, wv


cdef tuple _stride_dilation_groups(object stride, object dilation, object groups):
    sh, sw = _ints(stride, 2, 'stride', 1, "non-positive stride is not supported")
    dh, dw = _ints(dilation, 2, 'dilation', 1, "dilation should be greater than zero")
    gr = _index(groups)
    if gr < 1:
        raise RuntimeError("non-positive groups is not supported")
    return sh, sw, dh, dw, gr


cdef object _bias_data(Tensor tb, object xv, Py_ssize_t o, str given):
    """The bias's array (None without one): o elements of the input's dtype."""
    if tb is None:
        return None
    bv = tb._data
    if bv.shape != (o,):
        raise RuntimeError(f"Given {given}, expected bias to be 1-dimensional with {o} "
                           f"elements, but got bias of size {_dims(bv.shape)} instead")
    _same_dtype(xv, bv, 'bias')
    return bv


cdef Tensor _conv_node(object out, uint8_t op, Tensor tx, Tensor tw, Tensor tb,
                       object saved_input, object wv, tuple aux):
    """out as the node of a convolution: saved_input (what the weight's gradient reads) and
    the weight's value are kept only for the gradients that need them, with their versions."""
    cdef Tensor t = new_tensor(out)
    cdef Tensor ca = grad_child(tx)
    cdef Tensor cb = grad_child(tw)
    cdef Tensor cc = grad_child(tb)
    if grad_enabled() and (ca is not None or cb is not None or cc is not None):
        record(t, op, ca, cb, saved_input if cb is not None else None,
               wv if ca is not None else None, aux)
        t.c = cc
        if cc is not None:
            cc._parents += 1
        if cb is not None:                  # the weight's gradient reads the input
            t.s0, t.v0 = tx, version_of(tx)
        if ca is not None:                  # the input's gradient reads the weight
            t.s1, t.v1 = tw, version_of(tw)
    return t


# --- conv2d -----------------------------------------------------------------------------------

cdef object conv_gemm(object cols, object wv, Py_ssize_t groups, Py_ssize_t n,
                          Py_ssize_t positions):
    """The convolution (N, O, L) from the columns (C*kh*kw, N*L) and the weight."""
    # (explicit sizes, not -1: any of them may be 0)
    cdef Py_ssize_t o = wv.shape[0], k = wv.shape[1] * wv.shape[2] * wv.shape[3]
    if groups == 1:
        y = wv.reshape(o, k) @ cols
    else:
        y = _np_matmul(wv.reshape(groups, o // groups, k),
                       cols.reshape(groups, k, cols.shape[1]))
    return y.reshape(o, n, positions).transpose(1, 0, 2)


cdef object _add_channel_bias(object y, object bv):
    """y (N, O, L) plus the bias per channel, as a fresh C-contiguous array."""
    if bv is None:
        return y.copy()
    out = _np_empty(y.shape, dtype=y.dtype)
    np.add(y, bv.reshape(1, -1, 1), out=out)
    return out


def conv2d(input, weight, bias, stride, padding, dilation, groups):
    """A 2-D convolution (cross-correlation, as PyTorch's) of input (N, C, H, W) with weight
    (O, C // groups, kh, kw) and an optional bias (O,), as one tape node; padding is
    (top, bottom, left, right).

    >>> from fastgrad import Tensor
    >>> x = Tensor(np.arange(16.0).reshape(1, 1, 4, 4))
    >>> w = Tensor(np.ones((1, 1, 2, 2)), requires_grad=True)
    >>> y = conv2d(x, w, None, (2, 2), (0, 0, 0, 0), (1, 1), 1)
    >>> y.numpy().tolist()
    [[[[10.0, 18.0], [42.0, 50.0]]]]
    >>> y.sum().backward()
    >>> w.grad.numpy().reshape(-1).tolist()
    [20.0, 24.0, 36.0, 40.0]
    """
    tx, tw, tb, xv, wv = _conv_operands(input, weight, bias, 'conv2d')
    sh, sw, dh, dw, gr = _stride_dilation_groups(stride, dilation, groups)
    pt, pb, pl, pr = _ints(padding, 4, 'padding', 0, "negative padding is not supported")
    n, c, h, w = xv.shape
    o, cg, kh, kw = wv.shape
    if o % gr:
        raise RuntimeError(f"Given groups={gr}, expected weight to be divisible by {gr} at "
                           f"dimension 0, but got weight of size {_dims(wv.shape)} instead")
    if cg * gr != c:
        raise RuntimeError(f"Given groups={gr}, weight of size {_dims(wv.shape)}, expected "
                           f"input{_dims(xv.shape)} to have {cg * gr} channels, but got {c} "
                           f"channels instead")
    bv = _bias_data(tb, xv, o, f"weight of size {_dims(wv.shape)}")
    hp, wp = h + pt + pb, w + pl + pr
    if hp < dh * (kh - 1) + 1 or wp < dw * (kw - 1) + 1 or kh < 1 or kw < 1:
        raise RuntimeError(f"Calculated padded input size per channel: ({hp} x {wp}). Kernel "
                           f"size: ({dh * (kh - 1) + 1} x {dw * (kw - 1) + 1}). Kernel size "
                           f"can't be greater than actual input size")
    oh = (hp - dh * (kh - 1) - 1) // sh + 1
    ow = (wp - dw * (kw - 1) - 1) // sw + 1
    geometry = (c, h, w, kh, kw, sh, sw, pt, pl, dh, dw, oh, ow)
    cdef Grid2d g = grid_from(geometry)
    cols = im2col(xv, &g, CONV_LAYOUT)
    out = _add_channel_bias(conv_gemm(cols, wv, gr, n, oh * ow), bv).reshape(n, o, oh, ow)
    return _conv_node(out, TOP_CONV, tx, tw, tb, cols, wv, (geometry, gr))


# --- conv_transpose2d -------------------------------------------------------------------------

cdef object channels_by_batch(object v):
    """(N, C, H, W) as (C, N*H*W): the layout the GEMMs of a transposed convolution take."""
    n, c, hw = v.shape[0], v.shape[1], v.shape[2] * v.shape[3]
    return v.reshape(n, c, hw).transpose(1, 0, 2).reshape(c, n * hw)


cdef object transpose_columns(object xcols, object wv, Py_ssize_t groups):
    """The columns (O*kh*kw, N*H*W) a transposed convolution spreads over its output."""
    cdef Py_ssize_t c = wv.shape[0], k = wv.shape[1] * wv.shape[2] * wv.shape[3]
    if groups == 1:
        return wv.reshape(c, k).T @ xcols
    cols = _np_matmul(wv.reshape(groups, c // groups, k).transpose(0, 2, 1),
                      xcols.reshape(groups, c // groups, xcols.shape[1]))
    return cols.reshape(groups * k, xcols.shape[1])


def conv_transpose2d(input, weight, bias, stride, padding, output_padding, groups, dilation):
    """The transposed 2-D convolution of input (N, C, H, W) with weight (C, O // groups, kh,
    kw): the gradient of conv2d with respect to its input, as one tape node.

    >>> from fastgrad import Tensor
    >>> x = Tensor(np.ones((1, 1, 2, 2)))
    >>> w = Tensor(np.ones((1, 1, 2, 2)))
    >>> conv_transpose2d(x, w, None, (1, 1), (0, 0), (0, 0), 1, (1, 1)).numpy()[0, 0].tolist()
    [[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]
    """
    tx, tw, tb, xv, wv = _conv_operands(input, weight, bias, 'conv_transpose2d')
    sh, sw, dh, dw, gr = _stride_dilation_groups(stride, dilation, groups)
    ph, pw = _ints(padding, 2, 'padding', 0, "negative padding is not supported")
    oph, opw = _ints(output_padding, 2, 'output_padding', 0,
                     "negative output_padding is not supported")
    if (oph >= sh and oph >= dh) or (opw >= sw and opw >= dw):
        raise RuntimeError(f"output padding must be smaller than either stride or dilation, "
                           f"but got output_padding_height: {oph} output_padding_width: {opw} "
                           f"stride_height: {sh} stride_width: {sw} dilation_height: {dh} "
                           f"dilation_width: {dw}")
    n, c, h, w = xv.shape
    cw, og, kh, kw = wv.shape
    if cw % gr:
        raise RuntimeError(f"Given groups={gr}, expected weight to be divisible by {gr} at "
                           f"dimension 0, but got weight of size {_dims(wv.shape)} instead")
    if cw != c:
        raise RuntimeError(f"Given transposed=1, weight of size {_dims(wv.shape)}, expected "
                           f"input{_dims(xv.shape)} to have {cw} channels, but got {c} "
                           f"channels instead")
    o = og * gr
    bv = _bias_data(tb, xv, o, f"transposed=1, weight of size {_dims(wv.shape)}")
    if (h == 0 or w == 0) and n and c:
        raise RuntimeError("Only zero batch or zero channel inputs are supported, but got "
                           f"input shape: {_dims(xv.shape)}")
    oh = (h - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1
    ow = (w - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1
    if oh < 1 or ow < 1 or kh < 1 or kw < 1:
        raise RuntimeError(f"Given input size per channel: ({h} x {w}). Calculated output "
                           f"size per channel: ({oh} x {ow}). Output size is too small")
    # The output is the image and the input the window grid of the convolution it transposes.
    geometry = (o, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw, h, w)
    cdef Grid2d g = grid_from(geometry)
    xcols = channels_by_batch(xv)
    out = col2im(transpose_columns(xcols, wv, gr), &g, n, CONV_LAYOUT)
    if bv is not None:
        out += bv.reshape(1, -1, 1, 1)
    return _conv_node(out, TOP_CONV_TRANSPOSE, tx, tw, tb, xcols, wv, (geometry, gr, c))


# --- unfold / fold ----------------------------------------------------------------------------

cdef object _blocks(object size, object k, object d, object p, object s):
    """How many sliding blocks fit along an axis (may be < 1); Python ints: no overflow."""
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


cdef tuple _block_args(object kernel_size, object dilation, object padding, object stride):
    kh, kw = _ints(kernel_size, 2, 'kernel_size', 1,
                   "kernel size should be greater than zero")
    dh, dw = _ints(dilation, 2, 'dilation', 1, "dilation should be greater than zero")
    ph, pw = _ints(padding, 2, 'padding', 0, "padding should be non-negative")
    sh, sw = _ints(stride, 2, 'stride', 1, "stride should be greater than zero")
    return kh, kw, dh, dw, ph, pw, sh, sw


def unfold(input, kernel_size, dilation, padding, stride):
    """torch.nn.functional.unfold (im2col) of input (N, C, H, W): (N, C*kh*kw, L), as one node.

    >>> from fastgrad import Tensor
    >>> x = Tensor(np.arange(9.0).reshape(1, 1, 3, 3))
    >>> unfold(x, (2, 2), (1, 1), (0, 0), (1, 1)).numpy()[0].tolist()
    [[0.0, 1.0, 3.0, 4.0], [1.0, 2.0, 4.0, 5.0], [3.0, 4.0, 6.0, 7.0], [4.0, 5.0, 7.0, 8.0]]
    """
    cdef Tensor tx = _tensor_arg(input, 'unfold', 'input')
    xv = _float_data(tx, 'im2col')
    _need_4d(xv, 'unfold')
    kh, kw, dh, dw, ph, pw, sh, sw = _block_args(kernel_size, dilation, padding, stride)
    n, c, h, w = xv.shape
    oh, ow = _blocks(h, kh, dh, ph, sh), _blocks(w, kw, dw, pw, sw)
    if oh < 1 or ow < 1:
        raise RuntimeError(f"Given input with spatial size ({h}, {w}), kernel_size=({kh}, {kw}),"
                           f" dilation=({dh}, {dw}), padding=({ph}, {pw}), calculated shape of "
                           f"the array of sliding blocks as ({oh}, {ow}), but its components "
                           f"must be at least one.")
    geometry = (c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)
    cdef Grid2d g = grid_from(geometry)
    cdef Tensor t = _node(im2col(xv, &g, BATCH_LAYOUT))
    cdef Tensor ca = grad_child(tx)
    if recording(ca, None):
        record(t, TOP_UNFOLD, ca, None, None, None, geometry)
    return t


def fold(input, output_size, kernel_size, dilation, padding, stride):
    """torch.nn.functional.fold (col2im) of input (N, C*kh*kw, L): (N, C, oh, ow), the sum of
    the blocks at their places, as one node.

    >>> from fastgrad import Tensor
    >>> cols = Tensor(np.ones((1, 4, 4)))
    >>> fold(cols, (3, 3), (2, 2), (1, 1), (0, 0), (1, 1)).numpy()[0, 0].tolist()
    [[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]
    """
    cdef Tensor tx = _tensor_arg(input, 'fold', 'input')
    xv = _float_data(tx, 'col2im')
    if xv.ndim != 3:
        raise RuntimeError(f"Expected 3D (batched) input to fold, but got input of size: "
                           f"{_dims(xv.shape)}")
    h, w = _ints(output_size, 2, 'output_size', 1, "output size should be greater than zero")
    kh, kw, dh, dw, ph, pw, sh, sw = _block_args(kernel_size, dilation, padding, stride)
    n, rows, blocks = xv.shape
    if rows % (kh * kw):
        raise RuntimeError(f"Expected size of input's dimension 1 to be divisible by the "
                           f"product of kernel_size, but got input.size(1)={rows} and "
                           f"kernel_size=({kh}, {kw})")
    oh, ow = _blocks(h, kh, dh, ph, sh), _blocks(w, kw, dw, pw, sw)
    if oh < 1 or ow < 1 or oh * ow != blocks:
        raise RuntimeError(f"Given output_size=({h}, {w}), kernel_size=({kh}, {kw}), "
                           f"dilation=({dh}, {dw}), padding=({ph}, {pw}), stride=({sh}, {sw}), "
                           f"expected size of input's dimension 2 to match the calculated "
                           f"number of sliding blocks {oh} * {ow} = {oh * ow}, but got "
                           f"input.size(2)={blocks}.")
    geometry = (rows // (kh * kw), h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)
    cdef Grid2d g = grid_from(geometry)
    cdef Tensor t = _node(col2im(xv, &g, n, BATCH_LAYOUT))
    cdef Tensor ca = grad_child(tx)
    if recording(ca, None):
        record(t, TOP_FOLD, ca, None, None, None, geometry)
    return t


def unfold_grid(input, geometry):
    """The columns (N, C*kh*kw, oh*ow) of input (N, C, H, W) on a convolution's window grid
    (its saved geometry, windows.pxd), as an unfold node: create_graph's rules (graph_rules.py)
    write a convolution's gradients with it and fold_grid."""
    cdef Tensor tx = _tensor_arg(input, 'unfold', 'input')
    xv = _float_data(tx, 'im2col')
    cdef Grid2d g = grid_from(<tuple?>geometry)
    if xv.ndim != 4 or xv.shape[1:] != (g.C, g.H, g.W):
        raise ValueError(f"unfold_grid: input of shape {xv.shape} does not fit the grid "
                         f"{geometry}")
    cdef Tensor t = _node(im2col(_np_ascontiguousarray(xv), &g, BATCH_LAYOUT))
    cdef Tensor ca = grad_child(tx)
    if recording(ca, None):
        record(t, TOP_UNFOLD, ca, None, None, None, geometry)
    return t


def fold_grid(input, geometry):
    """The adjoint of unfold_grid: columns (N, C*kh*kw, oh*ow) summed into (N, C, H, W)."""
    cdef Tensor tx = _tensor_arg(input, 'fold', 'input')
    xv = _float_data(tx, 'col2im')
    cdef Grid2d g = grid_from(<tuple?>geometry)
    if xv.ndim != 3 or xv.shape[1:] != (g.C * g.kh * g.kw, g.oh * g.ow):
        raise ValueError(f"fold_grid: columns of shape {xv.shape} do not fit the grid "
                         f"{geometry}")
    cdef Tensor t = _node(col2im(_np_ascontiguousarray(xv), &g, xv.shape[0], BATCH_LAYOUT))
    cdef Tensor ca = grad_child(tx)
    if recording(ca, None):
        record(t, TOP_FOLD, ca, None, None, None, geometry)
    return t


# --- pooling ----------------------------------------------------------------------------------

cdef object _pooled_size(object size, object k, object s, object p, object d,
                         bint ceil_mode):
    """PyTorch's pooling output size: with ceil_mode the last window must start inside the
    input or its left padding (Python ints: no overflow)."""
    span = size + 2 * p - d * (k - 1) - 1
    out = (span + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


# Windows by their arguments: a training loop pools the same shapes every step, and building
# them is a dozen small numpy calls. Bounded: cleared when it grows past _WINDOWS_KEPT entries.
cdef dict _windows = {}
cdef Py_ssize_t _WINDOWS_KEPT = 256


cdef tuple _kept(tuple key, object start, object count):
    start.setflags(write=False)         # shared by every node that pools these windows
    count.setflags(write=False)
    if len(_windows) >= _WINDOWS_KEPT:
        _windows.clear()
    _windows[key] = (start, count)
    return start, count


cdef tuple _clipped_windows(Py_ssize_t size, Py_ssize_t count, Py_ssize_t k, Py_ssize_t s,
                            Py_ssize_t p, Py_ssize_t d):
    """The windows start + j*d (j < k, start = i*s - p) clipped to the image: (first valid
    position, number of valid positions) per output index, as read-only intp vectors."""
    key = (size, count, k, s, p, d)
    found = _windows.get(key)
    if found is not None:
        return found
    start = _np_arange(count, dtype=_intp) * s - p
    skip = _np_maximum(-start + d - 1, 0) // d          # positions before the image
    last = _np_minimum((size - 1 - start) // d, k - 1)  # the last position inside it
    valid = last - skip + 1
    if count and valid.min() < 1:
        # (PyTorch returns -inf there, with an index outside the window)
        raise RuntimeError(f"max_pool2d: with kernel size {k}, padding {p} and dilation {d}, "
                           f"a window over an input of size {size} reads only padding")
    return _kept(key, start + skip * d, valid)


cdef tuple _pool_args(object kernel_size, object stride, object padding, object dilation):
    kh, kw = _ints(kernel_size, 2, 'kernel_size', 1,
                   "kernel_size must be greater than zero")
    sh, sw = _ints(stride, 2, 'stride', 1, "stride must be greater than zero")
    ph, pw = _ints(padding, 2, 'padding', 0, "pad must be non-negative")
    dh, dw = _ints(dilation, 2, 'dilation', 1, "dilation must be greater than zero")
    if 2 * ph > dh * (kh - 1) + 1 or 2 * pw > dw * (kw - 1) + 1:
        raise RuntimeError(f"pad should be at most half of effective kernel size, but got "
                           f"pad={max(ph, pw)}, kernel_size={max(kh, kw)} and "
                           f"dilation={max(dh, dw)}")
    return kh, kw, sh, sw, ph, pw, dh, dw


cdef tuple _pooled_shape(object xv, object kh, object kw, object sh, object sw, object ph,
                         object pw, object dh, object dw, bint ceil_mode):
    n, c, h, w = xv.shape
    if h < 1 or w < 1:
        raise RuntimeError(f"Expected 4D input with non-zero size for non-batch dimensions, "
                           f"but got input of size: {_dims(xv.shape)}")
    oh = _pooled_size(h, kh, sh, ph, dh, ceil_mode)
    ow = _pooled_size(w, kw, sw, pw, dw, ceil_mode)
    if oh < 1 or ow < 1:
        raise RuntimeError(f"Given input size: ({c}x{h}x{w}). Calculated output size: "
                           f"({c}x{oh}x{ow}). Output size is too small")
    # (the windows' positions are computed in intp: keep them far from overflow)
    if max(h + ph + kh * dh + (oh + 1) * sh, w + pw + kw * dw + (ow + 1) * sw) >= 2 ** 60:
        raise RuntimeError(f"max_pool2d/avg_pool2d: kernel {(kh, kw)}, stride {(sh, sw)}, "
                           f"padding {(ph, pw)} and dilation {(dh, dw)} are too large")
    return oh, ow


cdef Tensor _max_node(Tensor tx, object out, object idx):
    cdef Tensor t = _node(out)
    cdef Tensor ca = grad_child(tx)
    if recording(ca, None):
        record(t, TOP_MAX_POOL, ca, None, idx, None, tx._data.shape)
    return t


def max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode):
    """Max pooling of input (N, C, H, W): (values, indices), the indices flat within each
    plane (h * W + w) as PyTorch's return_indices gives them; one node.

    >>> from fastgrad import Tensor
    >>> x = Tensor(np.arange(16.0).reshape(1, 1, 4, 4))
    >>> v, i = max_pool2d(x, (2, 2), (2, 2), (0, 0), (1, 1), False)
    >>> v.numpy()[0, 0].tolist(), i.numpy()[0, 0].tolist()
    ([[5.0, 7.0], [13.0, 15.0]], [[5, 7], [13, 15]])
    """
    cdef Tensor tx = _tensor_arg(input, 'max_pool2d', 'input')
    xv = _float_data(tx, 'max_pool2d')
    _need_4d(xv, 'max_pool2d')
    kh, kw, sh, sw, ph, pw, dh, dw = _pool_args(kernel_size, stride, padding, dilation)
    oh, ow = _pooled_shape(xv, kh, kw, sh, sw, ph, pw, dh, dw, ceil_mode)
    hs, hc = _clipped_windows(xv.shape[2], oh, kh, sh, ph, dh)
    ws, wc = _clipped_windows(xv.shape[3], ow, kw, sw, pw, dw)
    out, idx = pool_max(xv, hs, hc, ws, wc, dh, dw)
    return _max_node(tx, out, idx), new_tensor(idx.copy())


cdef tuple _adaptive_windows(Py_ssize_t size, Py_ssize_t count):
    """PyTorch's adaptive windows: output i covers [floor(i*size/count), ceil((i+1)*size/count))."""
    key = ('adaptive', size, count)
    found = _windows.get(key)
    if found is not None:
        return found
    i = _np_arange(count, dtype=_intp)
    start = (i * size) // count
    end = -((-(i + 1) * size) // count)
    return _kept(key, start, end - start)


cdef tuple _adaptive_args(object xv, object output_size, str op):
    _need_4d(xv, op)
    oh, ow = _ints(output_size, 2, 'output_size', 0, "output_size must be non-negative")
    if xv.shape[2] < 1 or xv.shape[3] < 1:
        raise RuntimeError(f"{op}(): Expected input to have non-zero size for non-batch "
                           f"dimensions, but input has sizes {_dims(xv.shape)} with dimension "
                           f"{2 if xv.shape[2] < 1 else 3} being empty")
    return oh, ow


def adaptive_max_pool2d(input, output_size):
    """Max pooling to output_size (oh, ow) over PyTorch's adaptive windows: (values, indices).

    >>> from fastgrad import Tensor
    >>> v, i = adaptive_max_pool2d(Tensor(np.arange(9.0).reshape(1, 1, 3, 3)), (2, 2))
    >>> v.numpy()[0, 0].tolist()
    [[4.0, 5.0], [7.0, 8.0]]
    """
    cdef Tensor tx = _tensor_arg(input, 'adaptive_max_pool2d', 'input')
    xv = _float_data(tx, 'adaptive_max_pool2d')
    oh, ow = _adaptive_args(xv, output_size, 'adaptive_max_pool2d')
    hs, hc = _adaptive_windows(xv.shape[2], oh)
    ws, wc = _adaptive_windows(xv.shape[3], ow)
    out, idx = pool_max(xv, hs, hc, ws, wc, 1, 1)
    return _max_node(tx, out, idx), new_tensor(idx.copy())


cdef Tensor _avg_node(Tensor tx, tuple windows, object divisor):
    hs, hc, ws, wc = windows
    cdef Tensor t = _node(pool_avg(tx._data, hs, hc, ws, wc, divisor))
    cdef Tensor ca = grad_child(tx)
    if recording(ca, None):
        record(t, TOP_AVG_POOL, ca, None, None, None,
               (hs, hc, ws, wc, divisor, tx._data.shape[2], tx._data.shape[3]))
    return t


def avg_pool2d(input, kernel_size, stride, padding, ceil_mode, count_include_pad,
               divisor_override):
    """Average pooling of input (N, C, H, W) with PyTorch's divisors (count_include_pad,
    divisor_override), one node.

    >>> from fastgrad import Tensor
    >>> x = Tensor(np.ones((1, 1, 2, 2)))
    >>> avg_pool2d(x, (2, 2), (1, 1), (1, 1), False, False, None).numpy()[0, 0].tolist()
    [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    >>> avg_pool2d(x, (2, 2), (1, 1), (1, 1), False, True, None).numpy()[0, 0, 0].tolist()
    [0.25, 0.5, 0.25]
    """
    cdef Tensor tx = _tensor_arg(input, 'avg_pool2d', 'input')
    xv = _float_data(tx, 'avg_pool2d')
    _need_4d(xv, 'avg_pool2d')
    kh, kw, sh, sw, ph, pw, dh, dw = _pool_args(kernel_size, stride, padding, (1, 1))
    if divisor_override is not None:
        divisor_override = _index(divisor_override)
        if divisor_override == 0:
            raise RuntimeError("divisor must be not zero")
    oh, ow = _pooled_shape(xv, kh, kw, sh, sw, ph, pw, 1, 1, ceil_mode)
    h, w = xv.shape[2], xv.shape[3]
    hs, hc = _clipped_windows(h, oh, kh, sh, ph, 1)
    ws, wc = _clipped_windows(w, ow, kw, sw, pw, 1)
    if divisor_override is not None:
        divisor = _np_full((oh, ow), float(divisor_override))
    elif count_include_pad:
        # windows clipped to the padded image (only ceil_mode's last window reaches past it)
        hstart = _np_arange(oh, dtype=_intp) * sh - ph
        wstart = _np_arange(ow, dtype=_intp) * sw - pw
        hsize = _np_minimum(hstart + kh, h + ph) - hstart
        wsize = _np_minimum(wstart + kw, w + pw) - wstart
        divisor = _np_multiply_outer(hsize, wsize).astype(F64)
    else:
        divisor = _np_multiply_outer(hc, wc).astype(F64)
    return _avg_node(tx, (hs, hc, ws, wc), divisor)


def adaptive_avg_pool2d(input, output_size):
    """Average pooling to output_size (oh, ow) over PyTorch's adaptive windows, one node.

    >>> from fastgrad import Tensor
    >>> adaptive_avg_pool2d(Tensor(np.arange(16.0).reshape(1, 1, 4, 4)), (1, 2)).numpy().tolist()
    [[[[6.5, 8.5]]]]
    """
    cdef Tensor tx = _tensor_arg(input, 'adaptive_avg_pool2d', 'input')
    xv = _float_data(tx, 'adaptive_avg_pool2d')
    oh, ow = _adaptive_args(xv, output_size, 'adaptive_avg_pool2d')
    hs, hc = _adaptive_windows(xv.shape[2], oh)
    ws, wc = _adaptive_windows(xv.shape[3], ow)
    return _avg_node(tx, (hs, hc, ws, wc), _np_multiply_outer(hc, wc).astype(F64))
