# (included by tensor.pyx)
# How ops are built: dims and axes as PyTorch checks them, the operators with PyTorch's dtype
# rules, one-input ops, and the ops whose Jacobian is diagonal (TOP_LOCAL: elementwise math,
# where, clamp, and reductions like var or norm), which save their local derivatives instead of
# having a rule each. Index keys as the getitem node stores them.

# --- dims and axes ------------------------------------------------------------------------


cdef int dim_index(object d, int ndim, str what) except -100:
    """A dim argument as a non-negative axis; IndexError as PyTorch's for one out of range."""
    if isinstance(d, bool) or not hasattr(type(d), '__index__'):
        raise TypeError(f"{what}: dim must be an int, not {type(d).__name__}")
    cdef int n = ndim if ndim > 0 else 1        # a 0-d tensor accepts dims 0 and -1
    k = _operator_index(d)
    if k < -n or k >= n:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], "
                         f"but got {k})")
    return k + n if k < 0 else k


cdef tuple norm_axes(object axis, int ndim, str what):
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
        k = dim_index(ax, ndim, what)
        if k in out:
            raise RuntimeError(f"{what}: dim {k} appears multiple times in the list of dims")
        if ndim > 0:
            out.append(k)
    out.sort()
    return tuple(out)


cdef tuple _kept_shape(tuple shape, tuple axes):
    """shape with the reduced axes set to 1 (the keepdims shape)."""
    return tuple([1 if i in axes else shape[i] for i in range(len(shape))])


cdef object _dim_arg(object dim, object axis):
    """PyTorch's dim, or numpy's axis (an alias kept for numpy users)."""
    if axis is not None:
        if dim is not None:
            raise TypeError("give dim or axis, not both")
        return axis
    return dim


cdef bint _keep_arg(object keepdim, object keepdims):
    return bool(keepdims) if keepdims is not None else bool(keepdim)


cdef tuple _shape_args(tuple args, str what):
    """*shape or a single sequence as a tuple of ints."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = tuple(args[0])
    try:
        return tuple([_operator_index(a) for a in args])
    except TypeError:
        raise TypeError(f"{what}: sizes must be ints, got {args!r}") from None


cdef tuple gather_index(object idx, int dim):
    """The numpy index tuple that picks x[..., idx[i, j, ...] at dim, ...]: torch.gather's
    selection, for an index no larger than x along the other dims."""
    cdef int nd = idx.ndim
    cdef list parts = []
    for d in range(nd):
        if d == dim:
            parts.append(idx)
        else:
            shape = [1] * nd
            shape[d] = idx.shape[d]
            parts.append(np.arange(idx.shape[d]).reshape(shape))
    return tuple(parts)


# --- building nodes -----------------------------------------------------------------------


cdef inline void _save(Tensor t, object x, object y) noexcept:
    """Remember the tensors whose values t's rules read, and their versions (tensor.pxd)."""
    if isinstance(x, Tensor):
        t.s0 = <Tensor>x
        t.v0 = version_of(<Tensor>x)
    if isinstance(y, Tensor):
        t.s1 = <Tensor>y
        t.v1 = version_of(<Tensor>y)


cdef inline bint _records(Tensor a) noexcept:
    return a is not None and a._requires_grad and grad_enabled()


cdef inline Tensor _grad_tensor(object o):
    if isinstance(o, Tensor) and (<Tensor>o)._requires_grad:
        return <Tensor>o
    return None


cdef Tensor local_node(str name, object out, object a, object da, object b, object db,
                       tuple kshape, tuple axes, tuple params=None):
    """The node of an op with a diagonal Jacobian (TOP_LOCAL): da, db its derivatives in a, b
    (callables of no argument, called only when recording, or None for inputs without one).
    kshape and axes: for a reduction, the value's keepdim shape and the reduced axes. params:
    the numbers its derivative depends on besides the input (norm's p), which create_graph's
    rules read (graph_rules.py); saved as a fourth element of aux."""
    cdef Tensor t = new_tensor(out)
    cdef Tensor ca = _grad_tensor(a) if da is not None else None
    cdef Tensor cb = _grad_tensor(b) if db is not None else None
    if grad_enabled() and (ca is not None or cb is not None):
        with _np_errstate(all='ignore'):
            xa = da() if ca is not None else None
            xb = db() if cb is not None else None
        record(t, TOP_LOCAL, ca, cb, xa, xb,
               (name, kshape, axes) if params is None else (name, kshape, axes, params))
    return t


cdef object _float_value(object x):
    """x as a floating array: integer and bool values become the default float dtype (as
    PyTorch's float-valued functions promote them)."""
    if x.dtype.kind != 'f':
        return x.astype(_default_float())
    return x


cdef inline bint _float_pair(object xv, object yv):
    """True for the common operand pairs, where numpy's result dtype is PyTorch's: two float
    arrays of one dtype, or a float array and a Python number."""
    if type(xv) is ndarray:
        dt = (<object>xv).dtype
        if dt is not F32 and dt is not F64:
            return False
        if type(yv) is ndarray:
            return (<object>yv).dtype is dt
        return type(yv) is float or type(yv) is int
    if type(yv) is ndarray:
        dt = (<object>yv).dtype
        return (dt is F32 or dt is F64) and (type(xv) is float or type(xv) is int)
    return False


cdef object _operands(object x, object y, str what):
    """The payloads of x and y in the dtype PyTorch computes in: (xv, yv, dtype), or None if
    either is not a tensor, an array or a real number."""
    xv = operand(x)
    if xv is None:
        return None
    yv = operand(y)
    if yv is None:
        return None
    xa = isinstance(xv, ndarray)
    ya = isinstance(yv, ndarray)
    # The common cases need no rule: same-dtype arrays, or a float array and a Python number.
    if xa and ya:
        if xv.dtype is yv.dtype and (xv.dtype is F32 or xv.dtype is F64):
            return xv, yv, xv.dtype
    elif xa and (type(yv) is float or type(yv) is int):
        if xv.dtype is F32 or xv.dtype is F64:
            return xv, yv, xv.dtype
    elif ya and (type(xv) is float or type(xv) is int):
        if yv.dtype is F32 or yv.dtype is F64:
            return xv, yv, yv.dtype
    dt = result_dtype(xv, yv)
    return cast_operand(xv, dt), cast_operand(yv, dt), dt


cdef object _broadcast_error(str what, object xv, object yv):
    return RuntimeError(f"{what}: the size of tensor a {shape_of(xv)} must match the size of "
                        f"tensor b {shape_of(yv)} (shapes cannot be broadcast together)")


cdef object _binary(uint8_t op, object x, object y):
    """x op y with PyTorch's dtype rules and numpy broadcasting; x or y is a Tensor, the other
    may be a number or an array (NotImplemented for anything else)."""
    xv = operand(x)
    if xv is None:
        return NotImplemented
    yv = operand(y)
    if yv is None:
        return NotImplemented
    if not _float_pair(xv, yv):         # other dtypes: PyTorch's promotion first
        if op == TOP_MATMUL and isinstance(xv, ndarray) and isinstance(yv, ndarray) and \
                xv.dtype != yv.dtype:
            raise RuntimeError(f"expected m1 and m2 to have the same dtype, but got: "
                               f"{_Tensor_dtype_of(xv.dtype).name} != "
                               f"{_Tensor_dtype_of(yv.dtype).name}")
        if op == TOP_SUB and (_is_bool_array(xv) or _is_bool_array(yv) or type(xv) is bool
                              or type(yv) is bool):
            raise RuntimeError("Subtraction, the `-` operator, with a bool tensor is not "
                               "supported. If you are trying to invert a mask, use the `~` or "
                               "`logical_not()` operator instead.")
        dt = result_dtype(xv, yv)
        if op == TOP_DIV and dt.kind != 'f':
            dt = _default_float()       # true division of integers gives floats
        xv = cast_operand(xv, dt)
        yv = cast_operand(yv, dt)
        if op == TOP_POW and dt.kind != 'f':
            if isinstance(yv, ndarray) and yv.size and (yv < 0).any() or \
                    not isinstance(yv, ndarray) and yv < 0:
                raise RuntimeError("Integers to negative integer powers are not allowed.")

    try:
        if op == TOP_ADD:
            out = xv + yv
        elif op == TOP_SUB:
            out = xv - yv
        elif op == TOP_MUL:
            out = xv * yv
        elif op == TOP_DIV:
            with _np_errstate(divide='ignore', invalid='ignore'):
                out = xv / yv
        elif op == TOP_POW:
            with _np_errstate(divide='ignore', invalid='ignore', over='ignore'):
                out = xv ** yv
        else:
            if shape_of(xv) == () or shape_of(yv) == ():
                raise RuntimeError("both arguments to matmul need to be at least 1D, but they "
                                   f"are {len(shape_of(xv))}D and {len(shape_of(yv))}D")
            out = xv @ yv
    except ValueError as exc:
        if op == TOP_MATMUL:
            raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied ({shape_of(xv)} and "
                               f"{shape_of(yv)}; numpy: {exc})") from None
        raise _broadcast_error(op_names[op], xv, yv) from None
    cdef Tensor t = new_tensor(out)
    cdef Tensor a = grad_child(x)
    cdef Tensor b = grad_child(y)
    if recording(a, b):
        if op == TOP_ADD or op == TOP_SUB:
            xv = yv = None          # backward needs no operand values
        # the values the rules will read, given which inputs get a gradient (as PyTorch saves
        # them): a * b reads b for a's gradient and a for b's; a / b reads b; a ** b reads a,
        # and b for a's gradient
        elif op == TOP_DIV:
            _save(t, None, y)
        elif op == TOP_POW:
            _save(t, x, y if a is not None else None)
        else:
            _save(t, x if b is not None else None, y if a is not None else None)
        record(t, op, a, b, xv, yv, None)
    return t


cdef inline bint _is_bool_array(object v):
    return isinstance(v, ndarray) and (<object>v).dtype is BOOL


cdef object _integer_division(object x, object y, object fn, str what):
    """// and % with PyTorch's error for an integer division by zero."""
    ops = _operands(x, y, what)
    if ops is None:
        return NotImplemented
    xv, yv, dt = ops
    if dt.kind in 'iub' and (np.asarray(yv) == 0).any():
        raise RuntimeError("ZeroDivisionError")
    return _plain(xv, yv, fn, what)


cdef object _plain(object x, object y, object fn, str what):
    """An op that records nothing (comparisons, integer ops): fn(xv, yv) with PyTorch's dtype
    rules; NotImplemented for unsupported operands."""
    ops = _operands(x, y, what)
    if ops is None:
        return NotImplemented
    xv, yv, dt = ops
    try:
        with _np_errstate(divide='ignore', invalid='ignore'):
            return new_tensor(fn(xv, yv))
    except ValueError:
        raise _broadcast_error(what, xv, yv) from None


cdef object _bitwise(object x, object y, object fn, str what):
    ops = _operands(x, y, what)
    if ops is None:
        return NotImplemented
    xv, yv, dt = ops
    if dt.kind == 'f':
        raise TypeError(f"{what}: only integer and bool tensors support bitwise operators, "
                        f"not {dt}")
    try:
        return new_tensor(fn(xv, yv))
    except ValueError:
        raise _broadcast_error(what, xv, yv) from None


cdef inline bint is_view(object out, object x):
    """out (an ndarray) is a numpy view of x's memory."""
    base = (<object>out).base
    return base is not None and (base is x or base is (<object>x).base)


cdef Tensor _unary(Tensor x, object xv, uint8_t op, object out, object aux):
    """The node of a one-input op: out computed from xv, x's array as the op read it."""
    cdef Tensor t = new_tensor(out)
    if (op == TOP_RESHAPE or op == TOP_TRANSPOSE or op == TOP_INDEX) and is_view(out, xv):
        share_version(x, t)
    if grad_enabled() and x._requires_grad:
        record(t, op, x, None, xv, None, aux)
        if op == TOP_LOG:
            _save(t, x, None)
    return t


def _sigmoid_array(x):
    # exp never overflows: 1/(1+e) for x >= 0 and e/(1+e) below, with e = exp(-|x|). The two
    # cases are blended with a 0/1 mask (exact: r*(1 + 0*e) = r, r*(0 + 1*e) = e*r) because
    # np.where's per-element branch is several times slower on large arrays.
    e = _np_exp(-_np_abs(x))
    r = 1.0 / (1.0 + e)
    m = (x >= 0).astype(x.dtype)
    return r * (m + (1.0 - m) * e)


# --- elementwise math: the value and the derivative of each function, one row each -----------
# Each derivative is a function of the input x and the value y, in their dtype. The gradient
# conventions at the edges are PyTorch's: abs and sign at 0 give 0; sqrt at 0 gives inf;
# floor, ceil, round, trunc have a zero gradient.

cdef object _LN2 = math.log(2.0)
cdef object _LN10 = math.log(10.0)
cdef object _TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


def _erf(x):
    # numpy has no erf; math.erf per element is exact to the last bit of libm's erf
    return np.vectorize(math.erf, otypes=[x.dtype])(x) if x.ndim else \
        np.asarray(math.erf(float(x)), dtype=x.dtype)


ELEMENTWISE = {
    # name: (value of x, derivative from x and y)
    'sqrt': (np.sqrt, lambda x, y: 0.5 / y),
    'rsqrt': (lambda x: 1.0 / np.sqrt(x), lambda x, y: -0.5 * y * y * y),
    'abs': (np.abs, lambda x, y: np.sign(x)),
    'sign': (np.sign, lambda x, y: np.zeros_like(x)),
    'log2': (np.log2, lambda x, y: 1.0 / (x * _LN2)),
    'log10': (np.log10, lambda x, y: 1.0 / (x * _LN10)),
    'log1p': (np.log1p, lambda x, y: 1.0 / (1.0 + x)),
    'expm1': (np.expm1, lambda x, y: y + 1.0),
    'sin': (np.sin, lambda x, y: np.cos(x)),
    'cos': (np.cos, lambda x, y: -np.sin(x)),
    'tan': (np.tan, lambda x, y: 1.0 + y * y),
    'asin': (np.arcsin, lambda x, y: 1.0 / np.sqrt(1.0 - x * x)),
    'acos': (np.arccos, lambda x, y: -1.0 / np.sqrt(1.0 - x * x)),
    'atan': (np.arctan, lambda x, y: 1.0 / (1.0 + x * x)),
    'sinh': (np.sinh, lambda x, y: np.cosh(x)),
    'cosh': (np.cosh, lambda x, y: np.sinh(x)),
    'erf': (_erf, lambda x, y: _TWO_OVER_SQRT_PI * np.exp(-x * x)),
    'reciprocal': (lambda x: 1.0 / x, lambda x, y: -(y * y)),
    'square': (np.square, lambda x, y: 2.0 * x),
    'floor': (np.floor, lambda x, y: np.zeros_like(x)),
    'ceil': (np.ceil, lambda x, y: np.zeros_like(x)),
    'round': (np.round, lambda x, y: np.zeros_like(x)),
    'trunc': (np.trunc, lambda x, y: np.zeros_like(x)),
    'frac': (lambda x: x - np.trunc(x), lambda x, y: np.ones_like(x)),
}
# these keep integer tensors integer (the others compute in floating point)
cdef object _INTEGER_KEEPING = frozenset(['abs', 'sign', 'square', 'floor', 'ceil', 'round',
                                          'trunc'])


cdef Tensor elementwise(Tensor self, str name):
    """The ELEMENTWISE function name of self, recorded with its derivative."""
    value, deriv = ELEMENTWISE[name]
    x = self._data
    if x.dtype.kind != 'f':
        if name not in _INTEGER_KEEPING:
            x = _float_value(x)
        elif name == 'abs' and x.dtype is BOOL:
            raise RuntimeError("abs is not supported for bool tensors")
    with _np_errstate(all='ignore'):
        y = value(x)
    if type(y) is not ndarray:
        y = np_asarray(y, dtype=x.dtype)
    return local_node(name, y, self, lambda: deriv(x, y), None, None, None, None)


# --- index keys ---------------------------------------------------------------------------


cdef bint is_basic_key(object key):
    """True if indexing with key (as _index_key made it) never selects an element twice (no
    integer/boolean arrays)."""
    if type(key) is tuple:
        for k in <tuple>key:
            if not (k is None or k is Ellipsis or type(k) is slice or type(k) is int
                    or type(k) is bool):
                return False
        return True
    return (key is None or key is Ellipsis or type(key) is slice or type(key) is int
            or type(key) is bool)


cdef object _index_field(object v):
    return None if v is None else _operator_index(v)


cdef object _index_part(object k):
    """One part of an index key as the node stores it: None, Ellipsis, a bool, an int, a slice of
    ints, or a private copy of an integer or boolean array. Whatever user code the conversion
    runs (__index__, __array__) runs here, once: the value and the rules then use the same
    key, and nothing the node holds can change later or refer back to it."""
    if k is None or k is Ellipsis or type(k) is int or type(k) is bool:
        return k
    if type(k) is slice:
        return slice(_index_field(k.start), _index_field(k.stop), _index_field(k.step))
    if isinstance(k, Tensor):
        arr = (<Tensor>k)._data
        if arr.dtype.kind == 'f':
            raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
        return np.array(arr)
    if isinstance(k, (np.bool_, bool)):
        return bool(k)
    if isinstance(k, (ndarray, list, tuple)):
        arr = np.array([_index_part(e) if isinstance(e, Tensor) else e for e in k]
                       if isinstance(k, (list, tuple)) else k)
        if arr.dtype.kind == 'f':
            raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
        return arr      # a plain array, the caller's no longer
    if hasattr(type(k), '__index__'):
        return _operator_index(k)
    return np.array(k)


cdef object _index_key(object key):
    """The key as stored on the node (see _index_part)."""
    if type(key) is tuple:
        return tuple([_index_part(k) for k in <tuple>key])
    if isinstance(key, tuple):       # a tuple subclass (namedtuple) indexes like a tuple
        return tuple([_index_part(k) for k in tuple(key)])
    return _index_part(key)


cdef object _integers_first(object key, int ndim):
    """For a key mixing integers with index arrays, (the integers' key, the rest): PyTorch
    selects with the integers first (they are not advanced indices there, as they are in
    numpy, which moves the arrays' dims first when a slice separates them). None otherwise."""
    if type(key) is not tuple:
        return None
    cdef bint has_int = False, has_array = False
    for k in <tuple>key:
        if type(k) is int:
            has_int = True
        elif type(k) is ndarray:
            has_array = True
    if not (has_int and has_array):
        return None
    parts = list(<tuple>key)
    for i in range(len(parts)):
        if parts[i] is Ellipsis:        # spelled out, so each part has its dims
            used = 0
            for p in parts:
                if p is not None and p is not Ellipsis:
                    used += p.ndim if type(p) is ndarray and p.dtype is BOOL else 1
            parts[i:i + 1] = [slice(None)] * max(ndim - used, 0)
            break
    ints = []
    rest = []
    for p in parts:
        if p is None:
            rest.append(None)
        elif type(p) is int:
            ints.append(p)
        elif type(p) is ndarray and p.dtype is BOOL:
            ints.extend([slice(None)] * p.ndim)
            rest.append(p)
        else:
            ints.append(slice(None))
            rest.append(p)
    return tuple(ints), tuple(rest)


cdef object _index_value(object x, object key):
    """x[key] with PyTorch's errors (IndexError for an index out of range)."""
    try:
        return x[key]
    except IndexError as exc:
        raise IndexError(f"index out of range: {exc}") from None
