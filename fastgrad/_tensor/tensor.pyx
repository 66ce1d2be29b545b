# The tensor engine: the Tensor node/handle, its forward ops, and the reverse sweep.
#
# Tape layout. Every recorded op is one `Tensor` node: an op code (`op`), up to three child
# slots (`a`, `b`, `c`: typed references to the inputs that require grad, None otherwise), the
# value array (`_data`), the gradient buffer (`_grad`), the operands backward needs (`x0`, `x1`)
# and the op's parameters (axes, shapes, index keys) in a per-node side slot (`aux`).
# Inputs that do not require grad never enter the tape, and under `no_grad` nothing does.
#
# Why nodes are objects and not slots in a C arena (as the scalar engine does): a tensor node's
# payloads are numpy arrays, i.e. Python objects, so an arena would still hold an object per
# slot. With one object per node, CPython's reference count *is* the slot refcount: a node is
# referenced by its user handles and by the parents that use it as a child, edges only point
# from a parent to older children, so the graph is acyclic and is freed exactly when the last
# handle to it dies (memory flat over any number of training steps). Nothing a node holds can
# lead back to it (values and saved operands are float arrays, parameters are tuples of ints,
# slices and index arrays), so the type opts out of the cycle collector, whose scans of every
# step's temporaries otherwise cost ~10% of a small training step.
# Dropping a very deep chain must not recurse in C: `__dealloc__` hands children that would
# die with their parent to a pending list, drained by a loop in the outermost deallocation.
#
# The sweep (`_sweep`) is iterative: a DFS with an explicit stack gives a topological order
# (epoch marks, nothing cleared between calls), then one reverse loop switches on the op code
# and accumulates each contribution into the child's buffer, in place when the buffer is owned
# (allocated by the sweep itself). A non-leaf's buffer is dropped as soon as its contributions
# are pushed to its children; leaves keep theirs in `.grad` and accumulate over calls.
cimport cython
from cpython.buffer cimport (PyBUF_C_CONTIGUOUS, PyBUF_WRITABLE, PyBuffer_Release,
                             PyObject_GetBuffer)
from cpython.object cimport PyObject
from cython cimport floating
from libc.math cimport log
from libc.stdint cimport uint8_t, uint32_t

import numbers

import numpy as np

cdef object _ndarray = np.ndarray
cdef object _np_exp = np.exp
cdef object _np_log = np.log
cdef object _np_tanh = np.tanh
cdef object _np_maximum = np.maximum
cdef object _np_where = np.where
cdef object _np_abs = np.abs
cdef object _np_broadcast_to = np.broadcast_to
cdef object _np_asarray = np.asarray
cdef object _np_zeros = np.zeros
cdef object _np_empty_like = np.empty_like
cdef object _np_add_at = np.add.at
cdef object _np_arange = np.arange
cdef object _np_intp = np.dtype(np.intp)
cdef object _np_errstate = np.errstate
cdef object _F64 = np.dtype(np.float64)
cdef object _F32 = np.dtype(np.float32)
cdef object _Real = numbers.Real

cdef enum:
    TOP_LEAF = 0
    TOP_ADD
    TOP_SUB
    TOP_MUL
    TOP_DIV
    TOP_POW
    TOP_NEG
    TOP_MATMUL
    TOP_SUM
    TOP_MEAN
    TOP_MAX
    TOP_RESHAPE
    TOP_TRANSPOSE
    TOP_INDEX
    TOP_CONCAT
    TOP_STACK
    TOP_RELU
    TOP_TANH
    TOP_EXP
    TOP_LOG
    TOP_SIGMOID
    TOP_SOFTMAX
    TOP_LOG_SOFTMAX
    TOP_LINEAR
    TOP_MSE
    TOP_CROSS_ENTROPY
    TOP_BCE

cdef tuple _OP_NAMES = (
    'leaf', 'add', 'sub', 'mul', 'div', 'pow', 'neg', 'matmul', 'sum', 'mean', 'max',
    'reshape', 'transpose', 'getitem', 'concatenate', 'stack', 'relu', 'tanh', 'exp', 'log',
    'sigmoid', 'softmax', 'log_softmax', 'linear', 'mse_loss', 'cross_entropy',
    'binary_cross_entropy')

# ---------------------------------------------------------------------------------------------
# Grad mode

cdef bint _grad_enabled = True
cdef uint32_t _epoch = 0

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


def is_grad_enabled():
    """True unless inside a `no_grad()` block.

    >>> is_grad_enabled()
    True
    >>> with no_grad():
    ...     is_grad_enabled()
    False
    """
    return _grad_enabled


class no_grad:
    """Context manager (and decorator): ops inside record nothing and return tensors that do
    not require grad. Use it for evaluation and for optimizer updates.

    >>> w = Tensor([1.0, 2.0], requires_grad=True)
    >>> with no_grad():
    ...     (w * 2).requires_grad
    False
    >>> @no_grad()
    ... def predict(x):
    ...     return w * x
    >>> predict(3.0).requires_grad
    False
    """

    def __enter__(self):
        global _grad_enabled
        self._prev = _grad_enabled
        _grad_enabled = False
        return self

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._prev
        return False

    def __call__(self, func):
        import functools

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with no_grad():
                return func(*args, **kwargs)
        return wrapper


# ---------------------------------------------------------------------------------------------
# Conversions (the facade's checks: the sweep trusts what these produced)


cdef object _float_dtype(object dtype):
    """float32 or float64 from a user's dtype argument; TypeError for anything else."""
    try:
        d = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"fastgrad.Tensor: dtype must be float32 or float64, not {dtype!r}")
    if d == _F64:
        return _F64
    if d == _F32:
        return _F32
    raise TypeError(f"fastgrad.Tensor: dtype must be float32 or float64, not {d}")


cdef object _as_float_array(object data, object dtype, bint copy):
    """A float32/float64 ndarray from user data: float32 stays float32, everything else numeric
    becomes float64. Strings, objects, complex numbers raise TypeError."""
    cdef object arr
    if isinstance(data, Tensor):
        arr = (<Tensor>data)._data
    elif isinstance(data, _ndarray):
        arr = data
    elif isinstance(data, (str, bytes)) or data is None:
        raise TypeError(f"fastgrad.Tensor: cannot make a tensor from {type(data).__name__}")
    else:
        try:
            arr = _np_asarray(data)
        except (ValueError, TypeError) as exc:
            raise TypeError(f"fastgrad.Tensor: cannot make a tensor from this "
                            f"{type(data).__name__}: {exc}") from None
    kind = arr.dtype.kind
    if kind not in 'fiub':
        raise TypeError(f"fastgrad.Tensor: unsupported dtype {arr.dtype} "
                        f"(from {type(data).__name__}); use real numbers")
    if dtype is None:
        dtype = _F32 if arr.dtype == _F32 else _F64
    else:
        dtype = _float_dtype(dtype)
    if copy:
        return np.array(arr, dtype=dtype, copy=True)
    return arr if arr.dtype == dtype else arr.astype(dtype)


# Reductions straight through the ufuncs (what ndarray.sum/max call, minus a Python wrapper).
cdef object _np_add_reduce = np.add.reduce
cdef object _np_max_reduce = np.maximum.reduce


cdef inline object _sum(object x, object axis, object keepdims):
    return _np_add_reduce(x, axis, None, None, keepdims)


cdef inline object _amax(object x, object axis, object keepdims):
    return _np_max_reduce(x, axis, None, None, keepdims)


cdef inline object _wrap(object out):
    """numpy returns scalars for 0-d results; a tensor always holds an ndarray."""
    if type(out) is _ndarray:
        return out
    return _np_asarray(out)


cdef object _operand(object o):
    """The payload of an operator's operand: the array of a Tensor, a Python float for numbers,
    a float array for ndarrays; None for anything else (the operator returns NotImplemented)."""
    if isinstance(o, Tensor):
        return (<Tensor>o)._data
    if type(o) is float:
        return o
    if type(o) is int or type(o) is bool:
        return float(o)
    if type(o) is _ndarray:
        dt = o.dtype
        if dt is _F64 or dt is _F32:        # the common case, without the general checks
            return o
        return _as_float_array(o, None, False)
    if isinstance(o, _ndarray):
        return _as_float_array(o, None, False)
    if isinstance(o, _Real):
        return float(o)
    return None


cdef inline Tensor _grad_child(object o):
    """o as a child slot: only tensors that require grad are recorded."""
    if isinstance(o, Tensor) and (<Tensor>o)._requires_grad:
        return <Tensor>o
    return None


cdef inline Tensor _new(object data):
    cdef Tensor t = Tensor.__new__(Tensor)
    t._data = _wrap(data)
    return t


cdef inline bint _recording(Tensor a, Tensor b) noexcept:
    return _grad_enabled and (a is not None or b is not None)


cdef inline Tensor _record(Tensor t, uint8_t op, Tensor a, Tensor b, object x0, object x1,
                           object aux):
    t.op = op
    t.a = a
    t.b = b
    t.x0 = x0
    t.x1 = x1
    t.aux = aux
    t._requires_grad = True
    return t


cdef tuple _shape(object v):
    return v.shape if isinstance(v, _ndarray) else ()


cdef tuple _norm_axes(object axis, int ndim, str what):
    """axis (None, int or tuple, negatives allowed) as a sorted tuple of distinct axes."""
    cdef list out
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (tuple, list)):
        items = axis
    else:
        items = (axis,)
    out = []
    for ax in items:
        if not isinstance(ax, (int, np.integer)) or isinstance(ax, bool):
            raise TypeError(f"{what}: axis must be an int or a tuple of ints, not {axis!r}")
        k = int(ax)
        if k < -ndim or k >= ndim:
            raise ValueError(f"{what}: axis {k} is out of range for a tensor with {ndim} dims")
        if k < 0:
            k += ndim
        if k in out:
            raise ValueError(f"{what}: axis {k} repeated in {axis!r}")
        out.append(k)
    out.sort()
    return tuple(out)


cdef tuple _kept_shape(tuple shape, tuple axes):
    """shape with the reduced axes set to 1 (the keepdims shape)."""
    return tuple([1 if i in axes else shape[i] for i in range(len(shape))])



# ---------------------------------------------------------------------------------------------
# Compiled loops for the numpy passes that are slow for their size in a batch step: the
# row-wise parts of cross-entropy (numpy's reductions and broadcasts along a short last axis
# run one inner loop per row, ~40 us for (256, 10); exp itself stays numpy's vectorised ufunc),
# relu forward and backward, linear's bias add and its bias-gradient column sum. Same
# arithmetic as the numpy expressions they replace, in the array's dtype (bit-identical except
# cross-entropy's row sums of exp, accumulated in double). Arrays that are not C-contiguous
# float32/float64 take the numpy expressions.


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


cdef void _ce_finish(floating *p, Py_ssize_t *t, floating scale, Py_ssize_t n,
                     Py_ssize_t c) noexcept nogil:
    """p[i, t[i]] -= 1; p *= scale"""
    cdef Py_ssize_t i, j
    for i in range(n):
        p[i * c + t[i]] -= 1
    for i in range(n * c):
        p[i] *= scale


cdef void _colsum_loop(floating *g, floating *out, Py_ssize_t n, Py_ssize_t c) noexcept nogil:
    """out = g.sum(axis=0) for a C-contiguous (n, c) g, rows added in order as numpy does."""
    cdef Py_ssize_t i, j
    for j in range(c):
        out[j] = g[j]
    for i in range(1, n):
        for j in range(c):
            out[j] = out[j] + g[i * c + j]


cdef object _colsum(object g):
    """g.sum(axis=0) of a 2-D array: numpy's axis-0 reduction costs ~10 us at (256, 128)."""
    cdef Py_ssize_t n = g.shape[0], c = g.shape[1]
    cdef void *pg
    if n == 0 or c == 0 or not (g.dtype is _F32 or g.dtype is _F64):
        return _sum(g, 0, False)
    pg = _buf(g, False)
    if pg == NULL:
        return _sum(g, 0, False)
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


cdef object _add_bias(object out, object b):
    """out += b (b of shape (C,) along out's last axis) in place, like numpy's broadcast add
    (one add per element, same bits), minus its per-row inner loops."""
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


cdef object _relu_fwd(object x):
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


cdef void _relu_back(floating *g, floating *out, floating *r, Py_ssize_t n) noexcept nogil:
    """r = g * (out > 0), as numpy computes it (g * 0 keeps nan/inf and signed zeros)."""
    cdef Py_ssize_t i
    cdef floating zero = 0, one = 1      # compared in the array's type: gcc then vectorises
    for i in range(n):
        r[i] = g[i] * (one if out[i] > zero else zero)


cdef object _relu_grad(object g, object out, bint owned):
    """g * (out > 0), into g itself if the sweep owns it."""
    cdef object r
    if g.dtype is not out.dtype or g.shape != out.shape:
        return g * (out > 0)
    r = g if owned else _np_empty_like(out)
    cdef void *pg = _buf(g, False)
    cdef void *po = _buf(out, False)
    cdef void *pr = _buf(r, True)
    if pg == NULL or po == NULL or pr == NULL:
        return g * (out > 0)
    if out.dtype is _F32:
        _relu_back[float](<float *>pg, <float *>po, <float *>pr, out.size)
    elif out.dtype is _F64:
        _relu_back[double](<double *>pg, <double *>po, <double *>pr, out.size)
    else:
        return g * (out > 0)
    return r


# ---------------------------------------------------------------------------------------------
# Forward ops


cdef object _binary(uint8_t op, object x, object y):
    """x op y with numpy broadcasting; x or y is a Tensor, the other may be a number/array."""
    xv = _operand(x)
    if xv is None:
        return NotImplemented
    yv = _operand(y)
    if yv is None:
        return NotImplemented
    try:
        if op == TOP_ADD:
            out = xv + yv
        elif op == TOP_SUB:
            out = xv - yv
        elif op == TOP_MUL:
            out = xv * yv
        elif op == TOP_DIV:
            out = xv / yv
        elif op == TOP_POW:
            out = xv ** yv
        else:
            out = xv @ yv
    except ValueError as exc:
        if op == TOP_MATMUL:
            raise ValueError(f"matmul: shapes {_shape(xv)} and {_shape(yv)} are not aligned "
                             f"(numpy: {exc})") from None
        raise ValueError(f"{_OP_NAMES[op]}: cannot broadcast shapes {_shape(xv)} and "
                         f"{_shape(yv)}") from None
    cdef Tensor t = _new(out)
    cdef Tensor a = _grad_child(x)
    cdef Tensor b = _grad_child(y)
    if _recording(a, b):
        if op == TOP_ADD or op == TOP_SUB:
            xv = yv = None          # backward needs no operand values
        _record(t, op, a, b, xv, yv, None)
    return t


cdef Tensor _unary(Tensor x, uint8_t op, object out, object aux):
    cdef Tensor t = _new(out)
    if _grad_enabled and x._requires_grad:
        _record(t, op, x, None, x._data, None, aux)
    return t


cdef object _require_tensor(object v, str what):
    if isinstance(v, Tensor):
        return v
    raise TypeError(f"{what}: expected a fastgrad.Tensor, got {type(v).__name__}")


def _sigmoid_array(x):
    # exp never overflows: 1/(1+e) for x >= 0 and e/(1+e) below, with e = exp(-|x|). The two
    # cases are blended with a 0/1 mask (exact: r*(1 + 0*e) = r, r*(0 + 1*e) = e*r) because
    # np.where's per-element branch is several times slower on large arrays.
    e = _np_exp(-_np_abs(x))
    r = 1.0 / (1.0 + e)
    m = (x >= 0).astype(x.dtype)
    return r * (m + (1.0 - m) * e)


cdef bint _is_basic_key(object key):
    """True if indexing with key never selects an element twice (no integer/bool arrays)."""
    if isinstance(key, tuple):
        for k in key:
            if not (k is None or k is Ellipsis or isinstance(k, (slice, int, np.integer))):
                return False
        return True
    return key is None or key is Ellipsis or isinstance(key, (slice, int, np.integer))


cdef object _index_part(object k):
    if isinstance(k, Tensor):
        return (<Tensor>k)._data
    if isinstance(k, list):
        return _np_asarray(k)       # numpy reads a list as an index array; keep no mutable list
    return k


cdef object _index_key(object key):
    """The key as stored on the node: Tensors become their arrays (which must hold integers or
    booleans), lists become arrays, so the node holds nothing that could refer back to it."""
    if isinstance(key, tuple):
        return tuple([_index_part(k) for k in key])
    return _index_part(key)


def concatenate(tensors, axis=0):
    """numpy.concatenate / torch.cat for tensors (numbers and arrays are constants).

    >>> a = Tensor([1.0, 2.0], requires_grad=True)
    >>> c = concatenate([a, np.zeros(3)])
    >>> c.shape
    (5,)
    >>> (c * c).sum().backward()
    >>> a.grad.tolist()
    [2.0, 4.0]
    """
    return _join(tensors, axis, False)


def stack(tensors, axis=0):
    """numpy.stack / torch.stack for tensors.

    >>> stack([Tensor([1.0, 2.0]), Tensor([3.0, 4.0])], axis=1).numpy().tolist()
    [[1.0, 3.0], [2.0, 4.0]]
    """
    return _join(tensors, axis, True)


cdef object _join(object tensors, object axis, bint new_axis):
    what = 'stack' if new_axis else 'concatenate'
    if isinstance(tensors, (Tensor, _ndarray)) or not hasattr(tensors, '__len__'):
        raise TypeError(f"{what}: expected a sequence of tensors, got {type(tensors).__name__}")
    items = list(tensors)
    if not items:
        raise ValueError(f"{what}: need at least one tensor")
    vals = []
    for it in items:
        v = _operand(it)
        if v is None:
            raise TypeError(f"{what}: expected tensors, got {type(it).__name__}")
        vals.append(_np_asarray(v))
    try:
        out = np.stack(vals, axis=axis) if new_axis else np.concatenate(vals, axis=axis)
    except ValueError as exc:
        raise ValueError(f"{what}: shapes {[v.shape for v in vals]} do not fit along axis "
                         f"{axis} ({exc})") from None
    cdef Tensor t = _new(out)
    kids = tuple([_grad_child(it) for it in items])
    if _grad_enabled and any(k is not None for k in kids):
        ax = _norm_axes(axis, out.ndim, what)[0]
        if new_axis:
            params = (ax,)
        else:
            total = 0
            offsets = [0]
            for v in vals:
                total += v.shape[ax]
                offsets.append(total)
            params = (ax, tuple(offsets))
        _record(t, TOP_STACK if new_axis else TOP_CONCAT, None, None, kids, None, params)
    return t


def linear(x, weight, bias=None):
    """x @ weight.T + bias as one tape node (torch.nn.functional.linear).

    >>> x = Tensor([[1.0, 2.0]])
    >>> w = Tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], requires_grad=True)
    >>> linear(x, w, Tensor([0.0, 0.0, 0.5])).numpy().tolist()
    [[1.0, 2.0, 3.5]]
    """
    cdef Tensor tx = _require_tensor(x, 'linear')
    cdef Tensor tw = _require_tensor(weight, 'linear')
    cdef Tensor tb = None
    xv = tx._data
    wv = tw._data
    if wv.ndim != 2 or xv.ndim < 1 or xv.shape[xv.ndim - 1] != wv.shape[1]:
        raise ValueError(f"linear: input of shape {xv.shape} does not fit weight of shape "
                         f"{wv.shape} (needs input[..., {wv.shape[1] if wv.ndim == 2 else '?'}]"
                         f" and a 2-D weight)")
    # One input feature: the matmul is an outer product; broadcasting skips BLAS's setup cost
    # and gives the same numbers (each entry is a single product).
    out = xv * wv[:, 0] if wv.shape[1] == 1 else xv @ wv.T
    if bias is not None:
        tb = _require_tensor(bias, 'linear')
        if tb._data.shape != (wv.shape[0],):
            raise ValueError(f"linear: bias of shape {tb._data.shape} does not fit weight of "
                             f"shape {wv.shape}")
        if out.dtype == tb._data.dtype:
            out = _add_bias(out, tb._data)      # in place: out is a fresh array
        else:
            out = out + tb._data        # mixed float32/float64 promotes like numpy
    cdef Tensor t = _new(out)
    cdef Tensor ca = _grad_child(tx)
    cdef Tensor cb = _grad_child(tw)
    cdef Tensor cc = _grad_child(tb)
    if _grad_enabled and (ca is not None or cb is not None or cc is not None):
        _record(t, TOP_LINEAR, ca, cb, xv, wv, None)
        t.c = cc
    return t


def mse_loss(input, target):
    """mean((input - target)**2) as one node; input and target must have the same shape.

    >>> p = Tensor([1.0, 3.0], requires_grad=True)
    >>> loss = mse_loss(p, Tensor([0.0, 0.0]))
    >>> loss.item()
    5.0
    >>> loss.backward()
    >>> p.grad.tolist()
    [1.0, 3.0]
    """
    iv = _operand(input)
    tv = _operand(target)
    if iv is None or tv is None or not (isinstance(input, Tensor) or isinstance(target, Tensor)):
        raise TypeError(f"mse_loss: expected tensors, got {type(input).__name__} and "
                        f"{type(target).__name__}")
    if _shape(iv) != _shape(tv):
        raise ValueError(f"mse_loss: input shape {_shape(iv)} and target shape {_shape(tv)} "
                         f"differ")
    d = _np_asarray(iv - tv)
    n = d.size
    out = _np_asarray(_sum(d * d, None, False) / n if n else np.nan)
    if out.dtype != d.dtype:
        out = out.astype(d.dtype)
    cdef Tensor t = _new(out)
    cdef Tensor a = _grad_child(input)
    cdef Tensor b = _grad_child(target)
    if _recording(a, b):
        _record(t, TOP_MSE, a, b, d, None, n)
    return t


def cross_entropy(logits, targets):
    """Mean negative log-likelihood of integer class targets under softmax(logits) (N, C);
    computed from shifted logits, so it is finite for logits in the thousands.

    >>> logits = Tensor([[1000.0, 0.0], [0.0, 0.0]], requires_grad=True)
    >>> loss = cross_entropy(logits, np.array([0, 1]))
    >>> round(loss.item(), 6)
    0.346574
    >>> loss.backward()
    >>> logits.grad.tolist()
    [[0.0, 0.0], [0.25, -0.25]]
    """
    cdef Tensor x = _require_tensor(logits, 'cross_entropy')
    xv = x._data
    if isinstance(targets, Tensor):
        tv = (<Tensor>targets)._data
    else:
        tv = _np_asarray(targets)
    if tv.dtype.kind not in 'iu':
        raise TypeError(f"cross_entropy: targets must be integer class indices, "
                        f"got dtype {tv.dtype}")
    if xv.ndim != 2 or tv.shape != (xv.shape[0],):
        raise ValueError(f"cross_entropy: logits of shape {xv.shape} need (N, C) and targets of "
                         f"shape (N,); got targets of shape {tv.shape}")
    n = xv.shape[0]
    c = xv.shape[1]
    out = None
    if n and c and (xv.dtype is _F32 or xv.dtype is _F64):
        out, z, lse, ti = _cross_entropy_fast(xv, tv, n, c)
        if out is not None:
            tv = ti
    if out is None:
        if n and (tv.min() < 0 or tv.max() >= c):
            raise ValueError(f"cross_entropy: targets must lie in [0, {c}), got values in "
                             f"[{tv.min()}, {tv.max()}]")
        z = xv - _amax(xv, 1, True)
        lse = _np_log(_sum(_np_exp(z), 1, False))
        rows = _np_arange(n)
        out = _np_asarray(_sum(lse - z[rows, tv], None, False) / n)
    cdef Tensor t = _new(out.astype(xv.dtype, copy=False))
    if _grad_enabled and x._requires_grad:
        _record(t, TOP_CROSS_ENTROPY, x, None, z, tv, lse)
    return t


cdef tuple _cross_entropy_fast(object xv, object tv, Py_ssize_t n, Py_ssize_t c):
    """cross_entropy's forward with the compiled row loops: (loss, z, lse, targets as intp),
    or (None,)*4 when the arrays do not fit them (or a target is out of range: the caller
    reports it)."""
    none = (None, None, None, None)
    ti = tv if tv.dtype is _np_intp else tv.astype(_np_intp)
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
    cdef void *pl = _buf(lse, True)
    cdef double total
    if xv.dtype is _F32:
        _ce_shift[float](<float *>px, <float *>pz, n, c)
        e = _np_exp(z)
        total = _ce_lse[float](<float *>pz, <float *>_buf(e, False), <float *>pl, pt, n, c)
    else:
        _ce_shift[double](<double *>px, <double *>pz, n, c)
        e = _np_exp(z)
        total = _ce_lse[double](<double *>pz, <double *>_buf(e, False), <double *>pl, pt, n, c)
    return _np_asarray(total / n, dtype=xv.dtype), z, lse, ti


cdef object _ce_grad(object z, object lse, object t, object scale):
    """(softmax(z) - onehot(t)) * scale with the compiled row loops, or None if the arrays do
    not fit them (the caller then uses numpy)."""
    if not ((z.dtype is _F32 or z.dtype is _F64) and t.dtype is _np_intp
            and lse.dtype is z.dtype and z.ndim == 2):
        return None
    cdef Py_ssize_t rows = z.shape[0], c = z.shape[1]
    cdef void *pz = _buf(z, False)
    cdef void *pl = _buf(lse, False)
    cdef void *pt = _buf(t, False)
    if pz == NULL or pl == NULL or pt == NULL:
        return None
    p = _np_empty_like(z)
    cdef void *pp = _buf(p, True)
    if z.dtype is _F32:
        _ce_logp[float](<float *>pz, <float *>pl, <float *>pp, rows, c)
        _np_exp(p, out=p)
        _ce_finish[float](<float *>pp, <Py_ssize_t *>pt, <float>scale, rows, c)
    else:
        _ce_logp[double](<double *>pz, <double *>pl, <double *>pp, rows, c)
        _np_exp(p, out=p)
        _ce_finish[double](<double *>pp, <Py_ssize_t *>pt, <double>scale, rows, c)
    return p


def binary_cross_entropy(input, target):
    """Mean of -(t log p + (1-t) log(1-p)) with logs clamped at -100 like PyTorch.

    >>> p = Tensor([0.5, 1.0], requires_grad=True)
    >>> round(binary_cross_entropy(p, Tensor([1.0, 0.0])).item(), 6)
    50.346574
    """
    pv = _operand(input)
    tv = _operand(target)
    if not isinstance(input, Tensor) or tv is None:
        raise TypeError(f"binary_cross_entropy: expected a probability tensor and a target, "
                        f"got {type(input).__name__} and {type(target).__name__}")
    if _shape(pv) != _shape(tv):
        raise ValueError(f"binary_cross_entropy: input shape {_shape(pv)} and target shape "
                         f"{_shape(tv)} differ")
    if pv.size and (pv.min() < 0 or pv.max() > 1):
        raise ValueError("binary_cross_entropy: input must hold probabilities in [0, 1]")
    with _np_errstate(divide='ignore'):
        lp = _np_maximum(_np_log(pv), -100.0)
        lq = _np_maximum(_np_log(1.0 - pv), -100.0)
    n = pv.size
    out = _np_asarray(-_sum(tv * lp + (1.0 - tv) * lq, None, False) / n)
    cdef Tensor t = _new(out.astype(pv.dtype, copy=False))
    cdef Tensor a = _grad_child(input)
    cdef Tensor b = _grad_child(target)
    if _recording(a, b):
        _record(t, TOP_BCE, a, b, pv, tv, (n, lp, lq))
    return t


# ---------------------------------------------------------------------------------------------
# The Tensor


@cython.no_gc
@cython.freelist(256)
cdef class Tensor:
    """A numpy array with reverse-mode gradients: `Tensor(data, requires_grad=False,
    dtype=None)`. float64 unless the data is float32 (or dtype says float32).

    >>> x = Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    >>> y = (x * x).sum(axis=1).mean()
    >>> y
    Tensor(15., grad_fn=mean)
    >>> y.backward()
    >>> x.grad.tolist()
    [[1.0, 2.0], [3.0, 4.0]]
    >>> Tensor(np.ones(3, dtype=np.float32)).dtype
    dtype('float32')
    """

    cdef object _data           # the value (ndarray, float32 or float64)
    cdef object _grad           # gradient buffer (ndarray) or None
    cdef Tensor a, b, c         # child slots: inputs that require grad
    cdef object x0, x1          # operand values the backward rule needs
    cdef object aux             # side slot for op parameters (axes, shapes, index key)
    cdef uint8_t op
    cdef bint _requires_grad
    cdef bint _owned            # the sweep allocated _grad, so it may add into it in place
    cdef uint32_t mark          # DFS marks: 2*epoch visited, 2*epoch+1 emitted

    # numpy defers to our reflected operators instead of treating a Tensor as an object array
    __array_ufunc__ = None

    def __dealloc__(self):
        # Children (and a concatenate's tuple of children) that only this node holds go to
        # _pending instead of being freed inside this call; the outermost call frees them in a
        # loop, so a chain of any depth is released without nested C calls.
        global _draining
        if _sole_owner(<PyObject *>self.a):
            _pending.append(self.a)
        if _sole_owner(<PyObject *>self.b):
            _pending.append(self.b)
        if _sole_owner(<PyObject *>self.c):
            _pending.append(self.c)
        if ((self.op == TOP_CONCAT or self.op == TOP_STACK)
                and _sole_owner(<PyObject *>self.x0)):
            _pending.append(self.x0)
        self.a = self.b = self.c = None
        self.x0 = None
        if _draining:
            return
        _draining = True
        try:
            while _pending:
                _pending.pop()
        finally:
            _draining = False

    def __init__(self, data, requires_grad=False, dtype=None):
        self._data = _as_float_array(data, dtype, True)
        self._requires_grad = bool(requires_grad)

    # --- properties ------------------------------------------------------------------------

    @property
    def data(self):
        """The value as a numpy array (shared, not copied)."""
        return self._data

    @data.setter
    def data(self, value):
        if type(value) is _ndarray and (value.dtype is _F64 or value.dtype is _F32):
            self._data = value
        else:
            self._data = _as_float_array(value, None, False)

    @property
    def grad(self):
        """The accumulated gradient (numpy array) of a leaf after backward(), else None."""
        return self._grad

    @grad.setter
    def grad(self, value):
        if value is None:
            self._grad = None
            return
        g = _as_float_array(value, self._data.dtype, True)
        if g.shape != self._data.shape:
            raise ValueError(f"grad of shape {g.shape} does not match tensor shape "
                             f"{self._data.shape}")
        self._grad = g
        self._owned = True

    @property
    def requires_grad(self):
        """Whether ops on this tensor are recorded (settable on leaves)."""
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value):
        if self.op != TOP_LEAF and not value:
            raise RuntimeError("requires_grad can only be turned off on leaf tensors; "
                               "use detach()")
        self._requires_grad = bool(value)

    def requires_grad_(self, requires_grad=True):
        """Set requires_grad in place; returns the tensor."""
        self.requires_grad = requires_grad
        return self

    @property
    def is_leaf(self):
        """True for tensors not produced by a recorded op."""
        return self.op == TOP_LEAF

    @property
    def shape(self):
        """The array's shape (a tuple)."""
        return self._data.shape

    @property
    def ndim(self):
        """The number of dimensions."""
        return self._data.ndim

    @property
    def size(self):
        """The number of elements."""
        return self._data.size

    @property
    def dtype(self):
        """numpy dtype: float64 or float32."""
        return self._data.dtype

    @property
    def T(self):
        """The transpose (reversed axes); 0-d and 1-d tensors are returned as they are."""
        if self._data.ndim < 2:
            return self
        return self.transpose()

    @property
    def _op(self):
        """Name of the op that made this tensor ('leaf' for inputs)."""
        return _OP_NAMES[self.op]

    @property
    def _prev(self):
        """The recorded children (inputs that require grad)."""
        if self.op == TOP_CONCAT or self.op == TOP_STACK:
            return tuple([k for k in self.x0 if k is not None])
        return tuple([k for k in (self.a, self.b, self.c) if k is not None])

    def numpy(self):
        """The value as a numpy array (shared, not copied)."""
        return self._data

    def __array__(self, dtype=None, copy=None):
        # np.asarray(tensor) gives its values (history is not carried into numpy)
        if dtype is not None and dtype != self._data.dtype:
            return self._data.astype(dtype)
        return self._data.copy() if copy else self._data

    def item(self):
        """The only element as a Python float."""
        if self._data.size != 1:
            raise ValueError(f"item(): only a one-element tensor converts to a Python number, "
                             f"this one has shape {self._data.shape}")
        return self._data.item()

    def __float__(self):
        return float(self.item())

    def __len__(self):
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def detach(self):
        """The same data without history (shared array, requires_grad=False)."""
        return _new(self._data)

    def __repr__(self):
        body = np.array2string(self._data, separator=', ', prefix='Tensor(')
        extra = ''
        if self._data.dtype == _F32:
            extra += ', dtype=float32'
        if self._requires_grad:
            extra += ', requires_grad=True' if self.op == TOP_LEAF else \
                f', grad_fn={_OP_NAMES[self.op]}'
        return f'Tensor({body}{extra})'

    # --- arithmetic -----------------------------------------------------------------------

    def __add__(self, other):
        return _binary(TOP_ADD, self, other)

    def __radd__(self, other):
        return _binary(TOP_ADD, other, self)

    def __sub__(self, other):
        return _binary(TOP_SUB, self, other)

    def __rsub__(self, other):
        return _binary(TOP_SUB, other, self)

    def __mul__(self, other):
        return _binary(TOP_MUL, self, other)

    def __rmul__(self, other):
        return _binary(TOP_MUL, other, self)

    def __truediv__(self, other):
        return _binary(TOP_DIV, self, other)

    def __rtruediv__(self, other):
        return _binary(TOP_DIV, other, self)

    def __pow__(self, other, mod):
        if mod is not None:
            return NotImplemented
        return _binary(TOP_POW, self, other)

    def __rpow__(self, other, mod):
        if mod is not None:
            return NotImplemented
        return _binary(TOP_POW, other, self)

    def __matmul__(self, other):
        return _binary(TOP_MATMUL, self, other)

    def __rmatmul__(self, other):
        return _binary(TOP_MATMUL, other, self)

    def __neg__(self):
        return _unary(self, TOP_NEG, -self._data, None)

    def __pos__(self):
        return self

    def matmul(self, other):
        """self @ other (numpy's matmul rules); TypeError for unsupported operands."""
        out = _binary(TOP_MATMUL, self, other)
        if out is NotImplemented:
            raise TypeError(f"matmul: unsupported operand {type(other).__name__}")
        return out

    # --- elementwise functions -----------------------------------------------------------

    def relu(self):
        """max(x, 0) elementwise; gradient 1 where x > 0."""
        return _unary(self, TOP_RELU, _relu_fwd(self._data), None)

    def tanh(self):
        """Hyperbolic tangent elementwise."""
        return _unary(self, TOP_TANH, _np_tanh(self._data), None)

    def exp(self):
        """e**x elementwise."""
        return _unary(self, TOP_EXP, _np_exp(self._data), None)

    def log(self):
        """Natural logarithm elementwise."""
        return _unary(self, TOP_LOG, _np_log(self._data), None)

    def sigmoid(self):
        """1 / (1 + e**-x) elementwise, without overflow."""
        return _unary(self, TOP_SIGMOID, _sigmoid_array(self._data), None)

    def softmax(self, axis=-1):
        """exp(x) normalised along axis (computed from x - max)."""
        ax = _norm_axes(axis, self._data.ndim, 'softmax')
        x = self._data
        e = _np_exp(x - _amax(x, ax, True))
        return _unary(self, TOP_SOFTMAX, e / _sum(e, ax, True), ax)

    def log_softmax(self, axis=-1):
        """log(softmax(x)) along axis, computed stably."""
        ax = _norm_axes(axis, self._data.ndim, 'log_softmax')
        x = self._data
        z = x - _amax(x, ax, True)
        return _unary(self, TOP_LOG_SOFTMAX, z - _np_log(_sum(_np_exp(z), ax, True)),
                      ax)

    # --- reductions ----------------------------------------------------------------------

    def sum(self, axis=None, keepdims=False):
        """Sum over axis (None: all; an int or a tuple, negatives allowed)."""
        x = self._data
        if axis is None:        # the common case, without numpy's tuple-axis machinery
            return _unary(self, TOP_SUM, _sum(x, None, keepdims), (1,) * x.ndim)
        axes = _norm_axes(axis, x.ndim, 'sum')
        return _unary(self, TOP_SUM, _sum(x, axes, keepdims),
                      _kept_shape(x.shape, axes))

    def mean(self, axis=None, keepdims=False):
        """Mean over axis (None: all; an int or a tuple, negatives allowed)."""
        x = self._data
        axes = _norm_axes(axis, x.ndim, 'mean')
        count = 1
        for ax in axes:
            count *= x.shape[ax]
        if count == 0:
            raise ValueError(f"mean of an empty selection (shape {x.shape}, axis {axis})")
        out = _sum(x, None if axis is None else axes, keepdims)
        return _unary(self, TOP_MEAN, out / count,
                      (_kept_shape(x.shape, axes), count))

    def max(self, axis=None, keepdims=False):
        """Maximum over axes (torch.amax): the gradient is shared evenly between ties."""
        x = self._data
        axes = _norm_axes(axis, x.ndim, 'max')
        if x.size == 0:
            raise ValueError(f"max of an empty tensor (shape {x.shape})")
        return _unary(self, TOP_MAX, _amax(x, axes, keepdims),
                      (_kept_shape(x.shape, axes), axes))

    # --- shape ops -----------------------------------------------------------------------

    def reshape(self, *shape):
        """The same data in a new shape: reshape(2, 3) or reshape((2, 3)); -1 infers one size."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        try:
            out = self._data.reshape(shape)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {self._data.shape} "
                             f"into shape {shape}") from None
        return _unary(self, TOP_RESHAPE, out, None)

    def view(self, *shape):
        """reshape (PyTorch's name)."""
        return self.reshape(*shape)

    def flatten(self):
        """reshape(-1)."""
        return self.reshape(-1)

    def transpose(self, *axes):
        """numpy's transpose: no arguments reverses the axes, else a full permutation."""
        cdef int nd = self._data.ndim
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        if not axes:
            perm = tuple(range(nd - 1, -1, -1))
        else:
            if len(axes) != nd:
                raise ValueError(f"transpose: axes {axes} do not match a tensor of shape "
                                 f"{self._data.shape}")
            perm = tuple([a + nd if a < 0 else a for a in axes])
            if sorted(perm) != list(range(nd)):
                raise ValueError(f"transpose: {axes} is not a permutation of the axes of a "
                                 f"tensor of shape {self._data.shape}")
        inverse = [0] * nd
        for i in range(nd):
            inverse[perm[i]] = i
        return _unary(self, TOP_TRANSPOSE, self._data.transpose(perm), tuple(inverse))

    def permute(self, *dims):
        """transpose with a full permutation (PyTorch's name)."""
        return self.transpose(*dims)

    def __getitem__(self, key):
        """numpy indexing (slices, ints, None, ..., integer and boolean arrays), recorded."""
        key = _index_key(key)
        return _unary(self, TOP_INDEX, self._data[key], (key, _is_basic_key(key)))

    # --- backward ------------------------------------------------------------------------

    def backward(self, grad=None):
        """Accumulate d(self)/d(leaf) into every leaf's .grad. A tensor with more than one
        element needs `grad` (the vector in the vector-Jacobian product)."""
        if not self._requires_grad:
            raise RuntimeError("backward(): this tensor does not require grad (no input had "
                               "requires_grad=True, or it was computed under no_grad)")
        if grad is None:
            if self._data.size != 1:
                raise RuntimeError(f"backward(): grad can be omitted only for a one-element "
                                   f"tensor, this one has shape {self._data.shape}")
            seed = _np_empty_like(self._data)     # C-level, unlike np.ones_like
            seed.fill(1.0)
        else:
            seed = _as_float_array(grad, self._data.dtype, True)
            if seed.shape != self._data.shape:
                raise ValueError(f"backward(): grad of shape {seed.shape} does not match the "
                                 f"tensor's shape {self._data.shape}")
        _sweep(self, seed)


# ---------------------------------------------------------------------------------------------
# The reverse sweep


cdef inline void _push_child(list stack, Tensor k, uint32_t visited):
    if k is not None and k.mark < visited:
        stack.append(k)


cdef list _topo(Tensor root):
    """Nodes below root in post-order (children first), by an explicit-stack DFS."""
    global _epoch
    _epoch += 1
    cdef uint32_t visited = 2 * _epoch
    cdef uint32_t done = visited + 1
    cdef list order = []
    cdef list stack = [root]
    cdef Tensor n
    while stack:
        n = <Tensor>stack[len(stack) - 1]
        if n.mark < visited:
            n.mark = visited
            if n.op == TOP_LEAF:
                continue        # leaves have no children; emitted on the next pass
            if n.op == TOP_CONCAT or n.op == TOP_STACK:
                for k in n.x0:
                    _push_child(stack, <Tensor>k, visited)
            else:
                _push_child(stack, n.a, visited)
                _push_child(stack, n.b, visited)
                _push_child(stack, n.c, visited)
        else:
            stack.pop()
            if n.mark != done:
                n.mark = done
                if n.op != TOP_LEAF:
                    n._grad = None      # stale buffer of an interrupted sweep
                order.append(n)
    return order


cdef object _unbroadcast(object g, tuple shape):
    """Sum g over the axes numpy broadcast to reach g.shape from shape."""
    cdef tuple gs = g.shape
    cdef int lead = len(gs) - len(shape)
    cdef int i
    axes = list(range(lead))
    for i in range(len(shape)):
        if shape[i] == 1 and gs[lead + i] != 1:
            axes.append(lead + i)
    return _sum(g, tuple(axes), False).reshape(shape)


cdef int _accum(Tensor child, object contrib, bint fresh) except -1:
    """Add a contribution to child's gradient buffer. `fresh`: nobody else holds contrib."""
    if child is None:
        return 0
    cdef object cd = child._data
    if contrib.shape != cd.shape:
        contrib = _unbroadcast(contrib, cd.shape)
        fresh = True
    if type(contrib) is not _ndarray:       # numpy turns 0-d results into scalars
        contrib = _np_asarray(contrib)
        fresh = True
    if contrib.dtype is not cd.dtype and contrib.dtype != cd.dtype:
        contrib = contrib.astype(cd.dtype)
        fresh = True
    cdef object g = child._grad
    if g is None:
        if not fresh and child.op == TOP_LEAF:
            contrib = contrib.copy()    # a leaf's .grad is the user's: never a shared view
            fresh = True
        child._grad = contrib
        child._owned = fresh
    elif child._owned:
        g += contrib
    else:
        child._grad = g + contrib
        child._owned = True
    return 0


cdef int _sweep(Tensor root, object seed) except -1:
    cdef list order = _topo(root)
    cdef Tensor n
    cdef Py_ssize_t i
    _accum(root, seed, True)
    for i in range(len(order) - 1, -1, -1):
        n = <Tensor>order[i]
        if n.op == TOP_LEAF:
            continue
        g = n._grad
        if g is None:
            continue
        n._grad = None          # consumed: intermediate buffers are freed as we go
        _backward_node(n, g)
    return 0


cdef object _matmul_grads(Tensor n, object g):
    """Gradients of x @ y for numpy's rules (1-D operands are promoted and squeezed back)."""
    x = n.x0
    y = n.x1
    cdef bint x1d = x.ndim == 1, y1d = y.ndim == 1
    if x1d and y1d:
        if n.a is not None:
            _accum(n.a, g * y, True)
        if n.b is not None:
            _accum(n.b, g * x, True)
        return None
    if x.ndim == 2 and y.ndim == 2:
        if n.a is not None:
            _accum(n.a, g @ y.T, True)
        if n.b is not None:
            _accum(n.b, x.T @ g, True)
        return None
    x2 = x[None, :] if x1d else x
    y2 = y[:, None] if y1d else y
    g2 = g
    if x1d:
        g2 = g2[..., None, :]
    if y1d:
        g2 = g2[..., None]
    if n.a is not None:
        ga = g2 @ y2.swapaxes(-1, -2)
        if x1d:
            ga = ga[..., 0, :]
        _accum(n.a, ga, True)
    if n.b is not None:
        gb = x2.swapaxes(-1, -2) @ g2
        if y1d:
            gb = gb[..., 0]
        _accum(n.b, gb, True)
    return None


cdef int _backward_node(Tensor n, object g) except -1:
    """Push n's gradient g to its children: one case per op code."""
    cdef uint8_t op = n.op
    out = n._data
    if op == TOP_ADD:
        _accum(n.a, g, False)
        _accum(n.b, g, False)
    elif op == TOP_SUB:
        _accum(n.a, g, False)
        if n.b is not None:
            _accum(n.b, -g, True)
    elif op == TOP_MUL:
        if n.a is not None:
            _accum(n.a, g * n.x1, True)
        if n.b is not None:
            _accum(n.b, g * n.x0, True)
    elif op == TOP_DIV:
        if n.a is not None:
            _accum(n.a, g / n.x1, True)
        if n.b is not None:
            _accum(n.b, -g * out / n.x1, True)
    elif op == TOP_POW:
        if n.a is not None:
            y = n.x1
            if type(y) is float and y == 2.0:
                _accum(n.a, g * 2.0 * n.x0, True)
            else:
                _accum(n.a, g * y * n.x0 ** (y - 1.0), True)
        if n.b is not None:
            # d(x**y)/dy = x**y log x; 0 where x == 0 (PyTorch's convention), nan for x < 0
            with _np_errstate(divide='ignore', invalid='ignore'):
                gb = g * out * _np_log(n.x0)
            _accum(n.b, _np_where(_np_asarray(n.x0) == 0, 0.0, gb), True)
    elif op == TOP_NEG:
        _accum(n.a, -g, True)
    elif op == TOP_MATMUL:
        _matmul_grads(n, g)
    elif op == TOP_SUM:
        _accum(n.a, _np_broadcast_to(g.reshape(n.aux), n.x0.shape), False)
    elif op == TOP_MEAN:
        _accum(n.a, _np_broadcast_to(g.reshape(n.aux[0]) / n.aux[1], n.x0.shape), False)
    elif op == TOP_MAX:
        kshape, axes = n.aux
        x = n.x0
        mask = x == out.reshape(kshape)
        count = mask.sum(axis=axes, keepdims=True)
        _accum(n.a, mask * (g.reshape(kshape) / count), True)
    elif op == TOP_RESHAPE:
        _accum(n.a, g.reshape(n.x0.shape), False)
    elif op == TOP_TRANSPOSE:
        _accum(n.a, g.transpose(n.aux), False)
    elif op == TOP_INDEX:
        key, basic = n.aux
        gz = _np_zeros(n.x0.shape, dtype=g.dtype)
        if basic:
            gz[key] = g
        else:
            _np_add_at(gz, key, g)
        _accum(n.a, gz, True)
    elif op == TOP_CONCAT:
        ax, offsets = n.aux
        lead = (slice(None),) * ax
        for i, kid in enumerate(n.x0):
            if kid is not None:
                _accum(<Tensor>kid, g[lead + (slice(offsets[i], offsets[i + 1]),)], False)
    elif op == TOP_STACK:
        ax = n.aux[0]
        lead = (slice(None),) * ax
        for i, kid in enumerate(n.x0):
            if kid is not None:
                _accum(<Tensor>kid, g[lead + (i,)], False)
    elif op == TOP_RELU:
        # one branch-free compiled pass (a per-element branch, np.where or a naive C loop,
        # mispredicts half the time and measured 5x slower on (256, 128))
        _accum(n.a, _relu_grad(g, out, n._owned), True)
    elif op == TOP_TANH:
        _accum(n.a, g * (1.0 - out * out), True)
    elif op == TOP_EXP:
        _accum(n.a, g * out, True)
    elif op == TOP_LOG:
        _accum(n.a, g / n.x0, True)
    elif op == TOP_SIGMOID:
        _accum(n.a, g * out * (1.0 - out), True)
    elif op == TOP_SOFTMAX:
        go = g * out
        _accum(n.a, go - out * _sum(go, n.aux, True), True)
    elif op == TOP_LOG_SOFTMAX:
        _accum(n.a, g - _np_exp(out) * _sum(g, n.aux, True), True)
    elif op == TOP_LINEAR:
        _linear_grads(n, g)
    elif op == TOP_MSE:
        ga = (2.0 / n.aux) * g * n.x0
        _accum(n.a, ga, True)
        if n.b is not None:
            _accum(n.b, -ga, True)
    elif op == TOP_CROSS_ENTROPY:
        z = n.x0
        rows = z.shape[0]
        scale = g / rows
        p = _ce_grad(z, n.aux, n.x1, scale)
        if p is None:
            p = _np_exp(z - n.aux[:, None])
            p[_np_arange(rows), n.x1] -= 1.0
            p *= scale
        _accum(n.a, p, True)
    elif op == TOP_BCE:
        count, lp, lq = n.aux
        pv = n.x0
        tv = n.x1
        if n.a is not None:
            _accum(n.a, g * (pv - tv) / _np_maximum(pv * (1.0 - pv), 1e-12) / count, True)
        if n.b is not None:
            _accum(n.b, g * (lq - lp) / count, True)
    else:  # pragma: no cover - every recorded op code has a case above
        raise RuntimeError(f"fastgrad: no backward rule for op {op}")
    return 0


cdef int _linear_grads(Tensor n, object g) except -1:
    x = n.x0
    w = n.x1
    if n.a is not None:
        _accum(n.a, g * w[0] if w.shape[0] == 1 else g @ w, True)   # one output: outer product
    if n.b is not None or n.c is not None:
        if x.ndim == 2:
            g2 = g
            x2 = x
        else:
            g2 = g.reshape(-1, w.shape[0])
            x2 = x.reshape(-1, w.shape[1])
        if n.b is not None:
            _accum(n.b, g2.T @ x2, True)
        if n.c is not None:
            _accum(n.c, _colsum(g2), True)
    return 0


# ---------------------------------------------------------------------------------------------
# Forward mode: the tangent sweep (Jacobian-vector products)
#
# tensor_jvp walks the nodes recorded behind an output in _topo's order (children first), the
# reverse sweep's order read front to back, and gives each node its tangent (the derivative of
# its value along the inputs' tangents) from its children's: one case per op code, using the
# operands and parameters backward saved. No second graph is built. Tangents live in a
# dict keyed by node address, never on the nodes; a node none of whose children carries a
# tangent gets none (an exact zero: no array, no work), and a tangent is dropped as soon as
# its last parent has used it (the forward twin of backward freeing intermediate buffers).
# Each rule is the transpose of the backward rule above (same masks, clamps, tie rule and
# conventions at x == 0), so jvp(out, {x: v}) . w equals grad_x(out . w) . v to rounding.
# backward() frees only gradient buffers, never saved operands, so the sweep works before and
# after any number of backward calls.


cdef inline Py_ssize_t _addr(Tensor n) noexcept:
    return <Py_ssize_t><void *>n


cdef inline object _tget(dict tan, Tensor k):
    """k's tangent (None for no child or a zero tangent)."""
    if k is None:
        return None
    return tan.get(_addr(k))


cdef inline object _tplus(object t, object u):
    """t + u where None is zero."""
    if t is None:
        return u
    if u is None:
        return t
    return t + u


cdef inline void _count_use(dict uses, Tensor k):
    if k is not None:
        uses[_addr(k)] = uses.get(_addr(k), 0) + 1


cdef inline void _release(dict tan, dict uses, Tensor k):
    """One parent of k has used its tangent; the last one drops it."""
    cdef Py_ssize_t key
    if k is None:
        return
    key = _addr(k)
    if key not in tan:
        return
    left = <Py_ssize_t>uses[key] - 1
    if left:
        uses[key] = left
    else:
        del tan[key]


cdef object _jvp_join(Tensor n, dict tan):
    """Tangent of concatenate/stack: the children's tangents in their places, zero for
    constants."""
    out = n._data
    ax = n.aux[0]
    lead = (slice(None),) * ax
    t = None
    for i, kid in enumerate(n.x0):
        tk = _tget(tan, <Tensor>kid)
        if tk is None:
            continue
        if t is None:
            t = _np_zeros(out.shape, dtype=out.dtype)
        if n.op == TOP_CONCAT:
            offsets = n.aux[1]
            t[lead + (slice(offsets[i], offsets[i + 1]),)] = tk
        else:
            t[lead + (i,)] = tk
    return t


cdef object _jvp_node(Tensor n, dict tan):
    """n's tangent from its children's: one case per op code (None if no child has one)."""
    cdef uint8_t op = n.op
    if op == TOP_CONCAT or op == TOP_STACK:
        return _jvp_join(n, tan)
    ta = _tget(tan, n.a)
    tb = _tget(tan, n.b)
    tc = _tget(tan, n.c)
    if ta is None and tb is None and tc is None:
        return None
    out = n._data
    t = None
    if op == TOP_ADD:
        t = _tplus(ta, tb)
    elif op == TOP_SUB:
        t = ta if tb is None else (-tb if ta is None else ta - tb)
    elif op == TOP_MUL:
        if ta is not None:
            t = ta * n.x1
        if tb is not None:
            t = _tplus(t, n.x0 * tb)
    elif op == TOP_DIV:
        if ta is not None:
            t = ta / n.x1
        if tb is not None:
            t = _tplus(t, -tb * out / n.x1)
    elif op == TOP_POW:
        x = n.x0
        y = n.x1
        if ta is not None:
            if type(y) is float and y == 2.0:
                t = ta * 2.0 * x
            else:
                t = ta * y * x ** (y - 1.0)
        if tb is not None:
            # x**y log x, 0 where x == 0 (the backward rule's convention), nan for x < 0
            with _np_errstate(divide='ignore', invalid='ignore'):
                tt = tb * out * _np_log(x)
            t = _tplus(t, _np_where(_np_asarray(x) == 0, 0.0, tt))
    elif op == TOP_NEG:
        t = -ta
    elif op == TOP_MATMUL:
        # numpy's matmul promotes 1-D operands and broadcasts batches for the tangents too
        if ta is not None:
            t = ta @ n.x1
        if tb is not None:
            t = _tplus(t, n.x0 @ tb)
    elif op == TOP_SUM:
        t = _sum(ta, _kept_axes(n.aux), True).reshape(out.shape)
    elif op == TOP_MEAN:
        t = _sum(ta, _kept_axes(n.aux[0]), True).reshape(out.shape) / n.aux[1]
    elif op == TOP_MAX:
        # the mean of the tangents of the elements equal to the max: backward's even split
        kshape, axes = n.aux
        mask = n.x0 == out.reshape(kshape)
        count = mask.sum(axis=axes, keepdims=True)
        t = (_sum(mask * ta, axes, True) / count).reshape(out.shape)
    elif op == TOP_RESHAPE:
        t = ta.reshape(out.shape)
    elif op == TOP_TRANSPOSE:
        inverse = n.aux
        perm = [0] * len(inverse)
        for i in range(len(inverse)):
            perm[inverse[i]] = i
        t = ta.transpose(perm)
    elif op == TOP_INDEX:
        t = ta[n.aux[0]]
    elif op == TOP_RELU:
        t = _relu_grad(ta, out, False)          # ta * (out > 0), the same mask as backward
    elif op == TOP_TANH:
        t = ta * (1.0 - out * out)
    elif op == TOP_EXP:
        t = ta * out
    elif op == TOP_LOG:
        t = ta / n.x0
    elif op == TOP_SIGMOID:
        t = ta * out * (1.0 - out)
    elif op == TOP_SOFTMAX:
        to = ta * out
        t = to - out * _sum(to, n.aux, True)
    elif op == TOP_LOG_SOFTMAX:
        t = ta - _sum(_np_exp(out) * ta, n.aux, True)
    elif op == TOP_LINEAR:
        # x @ w.T + b
        if ta is not None:
            t = ta @ n.x1.T
        if tb is not None:
            t = _tplus(t, n.x0 @ tb.T)
        t = _tplus(t, tc)
    elif op == TOP_MSE:
        d = n.x0
        td = ta if tb is None else (-tb if ta is None else ta - tb)
        t = _sum(d * td, None, False) * 2.0 / n.aux
    elif op == TOP_CROSS_ENTROPY:
        # mean over rows of softmax(x_i) . v_i - v_i[target_i]
        z = n.x0
        lse = n.aux
        rows = z.shape[0]
        p = _np_exp(z - lse[:, None])
        picked = ta[_np_arange(rows), n.x1]
        t = (_sum(p * ta, None, False) - _sum(picked, None, False)) / rows
    elif op == TOP_BCE:
        count, lp, lq = n.aux
        pv = n.x0
        if ta is not None:
            t = _sum(ta * (pv - n.x1) / _np_maximum(pv * (1.0 - pv), 1e-12), None,
                     False) / count
        if tb is not None:
            t = _tplus(t, _sum(tb * (lq - lp), None, False) / count)
    else:  # pragma: no cover - every recorded op code has a case above
        raise RuntimeError(f"fastgrad: no tangent rule for op {op}")
    return t


cdef tuple _kept_axes(tuple kshape):
    """The axes a sum/mean reduced, from its keepdims shape: every axis of length 1 (summing
    an unreduced axis of length 1 as well is exact)."""
    return tuple([i for i in range(len(kshape)) if kshape[i] == 1])


cdef object _jvp_seed(Tensor key, object v):
    """A tangent for key as an array of its shape and dtype (numbers are broadcast)."""
    xd = key._data
    if isinstance(v, _Real):
        t = _np_empty_like(xd)
        t.fill(v)
        return t
    try:
        t = _as_float_array(v, xd.dtype, False)
    except TypeError as exc:
        raise TypeError(f"tensor_jvp: the tangent for a tensor of shape {xd.shape} must be a "
                        f"number or an array of real numbers: {exc}") from None
    if t.shape != xd.shape:
        raise ValueError(f"tensor_jvp: tangent of shape {t.shape} does not match the shape "
                         f"{xd.shape} of its tensor")
    return t


def tensor_jvp(output, tangents):
    """Forward-mode directional derivative of a recorded tensor computation.

    `output`: a Tensor computed with autograd recording (some input had requires_grad=True,
    outside `no_grad`). `tangents`: a dict mapping input (leaf) tensors to their tangents,
    each a numpy array of that tensor's shape or a number (broadcast to it); inputs not in
    the dict have tangent zero.

    Returns a new numpy array shaped like `output`, in its dtype: the Jacobian-vector product
    sum over x in tangents of d(output)/dx . tangents[x], by one forward tangent sweep over
    the nodes already recorded behind `output` (no second graph, inputs are not re-run). It
    equals what reverse mode gives: `(jvp * w).sum() == sum((x.grad * v).sum())` after
    `(output * w).sum().backward()`, including its conventions at kinks (relu'(0) = 0, max
    shares evenly between ties, d(x**y)/dy = 0 at x == 0). Tangents are computed in each
    node's dtype, so a float32 graph gives float32 tangents. The recorded graph lives as long
    as `output` does and backward() frees only gradient buffers, so this works before and
    after any number of backward calls; it never touches the inputs' `.grad`.

    Raises:
        TypeError: `output` or a key of `tangents` is not a Tensor, `tangents` is not a dict,
            or a tangent is not numeric.
        ValueError: a tangent's shape differs from its tensor's (both shapes are named); a
            key is not a leaf (tangents seed inputs; detach an intermediate and recompute to
            perturb it); a key does not require grad (its uses were never recorded, so the
            derivative along it cannot be computed: it would be silently zero).
        RuntimeError: `output` does not require grad (nothing was recorded behind it: it was
            computed under `no_grad` or from inputs none of which required grad), like
            `backward()`. A leaf that requires grad is its own input: its jvp is its tangent.
    """
    if not isinstance(output, Tensor):
        raise TypeError(f"tensor_jvp: output must be a fastgrad.Tensor, got "
                        f"{type(output).__name__}")
    cdef Tensor root = <Tensor>output
    if not root._requires_grad:
        raise RuntimeError("tensor_jvp: the output does not require grad, so no graph was "
                           "recorded behind it (it was computed under no_grad, or no input had "
                           "requires_grad=True): there is nothing to differentiate")
    if not isinstance(tangents, dict):
        raise TypeError(f"tensor_jvp: tangents must be a dict mapping input tensors to tangent "
                        f"arrays, got {type(tangents).__name__}")
    cdef dict tan = {}
    cdef list seeds = []
    cdef Tensor k
    for key, v in (<dict>tangents).items():
        if not isinstance(key, Tensor):
            raise TypeError(f"tensor_jvp: tangents must be keyed by fastgrad.Tensor inputs, "
                            f"got a key of type {type(key).__name__}")
        k = <Tensor>key
        if k.op != TOP_LEAF:
            raise ValueError(f"tensor_jvp: tangents are given for inputs (leaf tensors); got "
                             f"one for a tensor computed by {_OP_NAMES[k.op]} (to perturb an "
                             f"intermediate, detach it, set requires_grad and recompute)")
        if not k._requires_grad:
            raise ValueError(f"tensor_jvp: a tangent was given for a tensor of shape "
                             f"{k._data.shape} that does not require grad: its uses were not "
                             f"recorded, so the derivative along it is unknown (create it with "
                             f"requires_grad=True)")
        t = _jvp_seed(k, v)
        seeds.append(t)
        tan[_addr(k)] = t

    cdef list order = _topo(root)
    cdef Py_ssize_t i, count = len(order)
    cdef Tensor n
    cdef dict uses = {}
    for i in range(count):
        n = <Tensor>order[i]
        if n.op == TOP_CONCAT or n.op == TOP_STACK:
            for kid in n.x0:
                _count_use(uses, <Tensor>kid)
        elif n.op != TOP_LEAF:
            _count_use(uses, n.a)
            _count_use(uses, n.b)
            _count_use(uses, n.c)

    for i in range(count):
        n = <Tensor>order[i]
        if n.op == TOP_LEAF:
            continue
        t = _jvp_node(n, tan)
        if t is None:
            continue
        if n.op == TOP_CONCAT or n.op == TOP_STACK:
            for kid in n.x0:
                _release(tan, uses, <Tensor>kid)
        else:
            _release(tan, uses, n.a)
            _release(tan, uses, n.b)
            _release(tan, uses, n.c)
        nd = n._data
        if type(t) is not _ndarray:         # numpy turns 0-d results into scalars
            t = _np_asarray(t)
        if t.dtype is not nd.dtype and t.dtype != nd.dtype:
            t = t.astype(nd.dtype)
        if t.shape != nd.shape:             # one operand's tangent, broadcast by the op
            t = _np_broadcast_to(t, nd.shape)
        tan[_addr(n)] = t

    out = root._data
    t = tan.get(_addr(root))
    if t is None:
        return _np_zeros(out.shape, dtype=out.dtype)
    if t.dtype != out.dtype:
        return t.astype(out.dtype)
    # never hand back the caller's own array, a view of one or a read-only broadcast
    if t.base is not None or not t.flags.writeable or any([t is s for s in seeds]):
        return t.copy()
    return t
