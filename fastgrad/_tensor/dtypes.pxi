# (included by tensor.pyx)
# Conversions from user data and PyTorch's dtype rules. The facade's checks: the sweeps trust
# what these produced.
#
# A tensor holds a numpy array of one of the dtypes of fastgrad/_tensor/dtype.py. Python data
# takes PyTorch's dtypes (floats -> the default dtype, float32 unless set_default_dtype; ints ->
# int64; bools -> bool); numpy data keeps its dtype. Only floating tensors take part in autograd.

cdef object _SUPPORTED = frozenset(_dtypes._BY_NUMPY)      # the numpy dtypes a tensor may hold
cdef object _Tensor_dtype_of = _dtypes.from_numpy_dtype
cdef object _to_dtype = _dtypes.to_dtype
cdef object _default_float = _dtypes.default_numpy_dtype


cdef object numpy_dtype(object dtype):
    """The numpy dtype of a user's dtype argument (fastgrad, numpy or Python type, or a name);
    TypeError for anything else."""
    if dtype is F32 or dtype is F64:
        return dtype
    return (<object>_to_dtype(dtype)).dtype


cdef int _check_supported(object arr, object data) except -1:
    dt = arr.dtype
    if dt not in _SUPPORTED:
        raise TypeError(f"fastgrad.Tensor: unsupported dtype {dt} (from {type(data).__name__});"
                        f" tensors hold float32, float64, float16, int64, int32, int16, int8, "
                        f"uint8 or bool")
    return 0


cdef object as_array(object data, object dtype, bint copy):
    """An ndarray of a supported dtype from user data, by PyTorch's rules (see above); dtype, if
    given, converts it. Strings, objects, complex numbers raise TypeError."""
    cdef object arr
    cdef bint python_data = False
    if isinstance(data, Tensor):
        arr = (<Tensor>data)._data
    elif type(data) is ndarray:
        arr = data
    elif isinstance(data, ndarray):
        # a plain view: no subclass's operators (np.matrix's * is a matrix product) or hooks
        # (__array_ufunc__, __del__) travel into the engine's arrays
        arr = np_asarray(data)
    elif isinstance(data, np.generic):
        arr = np_asarray(data)
    elif isinstance(data, (str, bytes)) or data is None:
        raise TypeError(f"fastgrad.Tensor: cannot make a tensor from {type(data).__name__}")
    else:
        python_data = True
        try:
            arr = np_asarray(data)
        except (ValueError, TypeError) as exc:
            raise TypeError(f"fastgrad.Tensor: cannot make a tensor from this "
                            f"{type(data).__name__}: {exc}") from None
        if type(arr) is not ndarray:    # e.g. what a user's __array__ returned
            arr = np_asarray(arr)
    kind = arr.dtype.kind
    if kind not in 'fiub':
        raise TypeError(f"fastgrad.Tensor: unsupported dtype {arr.dtype} "
                        f"(from {type(data).__name__}); use real numbers")
    if dtype is not None:
        target = numpy_dtype(dtype)
    elif python_data and kind == 'f' and arr.dtype == F64:
        target = _default_float()       # Python floats (numpy read them as float64)
    elif python_data and kind in 'iu':
        target = I64                    # Python ints
    else:
        _check_supported(arr, data)
        target = arr.dtype
    if copy:
        return np.array(arr, dtype=target, copy=True)
    return arr if arr.dtype == target else arr.astype(target)


cdef object as_float_array(object data, object dtype, bint copy):
    """A float32/float64 ndarray from user data (a gradient, a seed, a tangent): float32 stays
    float32, every other real dtype becomes float64 unless dtype says which."""
    cdef object arr = as_array(data, dtype, copy)
    if dtype is None and arr.dtype is not F32 and arr.dtype is not F64:
        arr = arr.astype(F64)
    return arr


cdef object operand_array(object o):
    """An ndarray operand (not float32/float64) as a plain array of a supported dtype."""
    return as_array(o, None, False)


# --- type promotion ---------------------------------------------------------------------------
# PyTorch's rule: categories bool < integer < floating. The result takes the dtype promoted from
# the operands that have dimensions; 0-d tensors count only if their category is higher, and
# Python numbers only if theirs is higher still (then a float is the default dtype, an int
# int64). Within a category numpy's promote_types agrees with PyTorch's; across categories
# PyTorch takes the higher category's dtype (int64 with float16 gives float16).

cdef inline int _category(object dt) noexcept:
    cdef str k = dt.kind
    return 2 if k == 'f' else (0 if k == 'b' else 1)


cdef object _promote_pair(object p, object q):
    if p is None:
        return q
    if q is None or p == q:
        return p
    cp = _category(p)
    cq = _category(q)
    if cp != cq:
        return p if cp > cq else q
    return np.promote_types(p, q)


cdef int _scalar_category(object v) except -2:
    if type(v) is bool or isinstance(v, np.bool_):
        return 0
    if type(v) is int or isinstance(v, np.integer):
        return 1
    return 2


cdef object result_dtype(object xv, object yv):
    """The dtype PyTorch gives an op on payloads xv and yv (ndarrays or Python numbers)."""
    dims = None
    zero = None
    cdef int sc = -1
    for v in (xv, yv):
        if isinstance(v, ndarray):
            if (<object>v).ndim:
                dims = _promote_pair(dims, v.dtype)
            else:
                zero = _promote_pair(zero, v.dtype)
        else:
            sc = max(sc, _scalar_category(v))
    r = dims
    if r is None:
        r = zero
    elif zero is not None and _category(zero) > _category(r):
        r = zero
    if sc >= 0 and (r is None or sc > _category(r)):
        r = BOOL if sc == 0 else (I64 if sc == 1 else _default_float())
    return r


cdef inline object cast_operand(object v, object dt):
    """An operand in the computation dtype: arrays are converted, Python numbers stay (numpy
    treats them as weak scalars, as PyTorch does)."""
    if isinstance(v, ndarray) and v.dtype != dt:
        return v.astype(dt)
    return v
