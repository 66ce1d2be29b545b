# (included by tensor.pyx)
# The Tensor class: its fields (tensor.pxd), conversions, operators, and the methods PyTorch's
# Tensor has for small models, each with PyTorch's meaning, signature and errors.

# numpy ufuncs that map to a Tensor method (and, for binary ones, the reflected method used
# when the tensor is the second operand)
_UFUNC_METHODS = {
    np.add: '__add__', np.subtract: '__sub__', np.multiply: '__mul__',
    np.true_divide: '__truediv__', np.power: '__pow__', np.matmul: '__matmul__',
    np.floor_divide: '__floordiv__', np.remainder: '__mod__',
    np.equal: '__eq__', np.not_equal: '__ne__', np.less: '__lt__', np.less_equal: '__le__',
    np.greater: '__gt__', np.greater_equal: '__ge__', np.maximum: 'maximum',
    np.minimum: 'minimum', np.negative: '__neg__', np.positive: '__pos__', np.exp: 'exp',
    np.log: 'log', np.sqrt: 'sqrt', np.tanh: 'tanh', np.absolute: 'abs', np.sin: 'sin',
    np.cos: 'cos', np.tan: 'tan', np.log2: 'log2', np.log10: 'log10', np.log1p: 'log1p',
    np.expm1: 'expm1', np.sign: 'sign', np.square: 'square', np.reciprocal: 'reciprocal',
    np.floor: 'floor', np.ceil: 'ceil', np.trunc: 'trunc', np.isnan: 'isnan',
    np.isinf: 'isinf', np.isfinite: 'isfinite', np.logical_not: 'logical_not',
}
_UFUNC_REFLECTED = {
    np.add: '__radd__', np.subtract: '__rsub__', np.multiply: '__rmul__',
    np.true_divide: '__rtruediv__', np.power: '__rpow__', np.matmul: '__rmatmul__',
    np.floor_divide: '__rfloordiv__', np.remainder: '__rmod__', np.equal: '__eq__',
    np.not_equal: '__ne__', np.less: '__gt__', np.less_equal: '__ge__', np.greater: '__lt__',
    np.greater_equal: '__le__', np.maximum: 'maximum', np.minimum: 'minimum',
}

MinMax = collections.namedtuple('MinMax', ['values', 'indices'])   # torch.return_types
TopK = collections.namedtuple('TopK', ['values', 'indices'])
Sorted = collections.namedtuple('Sorted', ['values', 'indices'])


class GradFn:
    """What ``t.grad_fn`` returns: names the op that made t (PyTorch's autograd node)."""

    __slots__ = ('_name',)

    def __init__(self, name):
        self._name = name

    def name(self):
        return ''.join(p.capitalize() for p in self._name.split('_')) + 'Backward0'

    def __repr__(self):
        return f'<{self.name()}>'


cdef int _check_device(object device) except -1:
    """Accept the CPU; RuntimeError naming any other device (fastgrad._device.check_device)."""
    if device is not None:
        _device_check(device)
    return 0


cdef bint _check_inplace(Tensor self, object other) except -1:
    """Whether an in-place op on self must be recorded (then the caller rebases self's history
    onto the op with _rebase). A leaf that requires grad is refused, as in PyTorch."""
    if not grad_enabled():
        return False
    if self._requires_grad:
        if self.op == TOP_LEAF:
            raise RuntimeError("a leaf Variable that requires grad is being used in an in-place "
                               "operation.")
        _check_rebase(self)
        return True
    if isinstance(other, Tensor) and (<Tensor>other)._requires_grad:
        _check_rebase(self)
        return True
    return False


cdef int _check_rebase(Tensor self) except -1:
    """Refuse the in-place ops whose recording would need more than this engine can rewrite:
    nodes hold their children by reference, so a tensor that a recorded op already uses, or
    that is a view into another recorded tensor's memory, keeps its value."""
    if self._parents:
        raise RuntimeError(
            f"in-place op on a tensor that {self._parents} recorded op(s) already use: fastgrad "
            f"cannot rewrite their history; use the out-of-place form (y = y + 1, "
            f"y = y.relu()) or clone() first")
    if (self.op == TOP_RESHAPE or self.op == TOP_TRANSPOSE or self.op == TOP_INDEX or
            self.op == TOP_EXPAND or self.op == TOP_FLIP) and self.a is not None and \
            is_view(self._data, self.a._data):
        raise RuntimeError(
            f"in-place op on a view ({op_names[self.op]}) of a tensor that requires grad: "
            f"fastgrad does not record it; write to the base tensor (x[idx] = v), or use the "
            f"out-of-place form")
    return 0


cdef int _release_children(Tensor n) except -1:
    """n stops holding its children (dealloc, detach_): their parent counts drop."""
    if n.op == TOP_LEAF:
        return 0
    if n.op == TOP_CONCAT or n.op == TOP_STACK:
        if type(n.x0) is tuple:
            for k in <tuple>n.x0:
                if k is not None:
                    (<Tensor>k)._parents -= 1
        return 0
    if n.op == TOP_LINEAR_MAP and n.x0 is not None:
        (<Tensor>n.x0)._parents -= 1        # the node whose Jacobian it applies (rules.pyx)
    if n.a is not None:
        n.a._parents -= 1
    if n.b is not None:
        n.b._parents -= 1
    if n.c is not None:
        n.c._parents -= 1
    return 0


cdef Tensor _rebase(Tensor self, object result):
    """Record an in-place op: result is its out-of-place result, computed (and recorded) from
    self. self's old node moves to a new tensor, which becomes result's child in self's place,
    and self becomes an identity node over result (TOP_CAST, so the gradient is also cast back
    to self's dtype) whose value, in self's memory, is result's. result keeps its own value, so
    its rules still read what they computed with after later in-place ops on self. Parents
    recorded from self before are refused (_check_rebase)."""
    cdef Tensor r = <Tensor?>result
    cdef Tensor old
    x = self._data
    out = r._data
    if out.dtype != x.dtype and not np.can_cast(out.dtype, x.dtype, 'same_kind'):
        raise RuntimeError(f"result type {_Tensor_dtype_of(out.dtype).name.capitalize()} "
                           f"can't be cast to the desired output type "
                           f"{_Tensor_dtype_of(x.dtype).name.capitalize()}")
    if out.shape != x.shape:
        raise RuntimeError(f"output with shape {list(x.shape)} doesn't match the broadcast "
                           f"shape {list(out.shape)}")
    if self.op != TOP_LEAF or self._requires_grad:
        # self's node, as it was, under a new handle sharing its memory and version counter
        old = Tensor.__new__(Tensor)
        old._data = x
        old.op, old.a, old.b, old.c = self.op, self.a, self.b, self.c
        old.x0, old.x1, old.aux = self.x0, self.x1, self.aux
        old.s0, old.s1, old.v0, old.v1, old.vself = self.s0, self.s1, self.v0, self.v1, \
            self.vself
        old._requires_grad = self._requires_grad
        share_version(self, old)
        _repoint(r, self, old)
    self.op = TOP_CAST
    self.a = r
    r._parents += 1
    self.b = self.c = None
    self.s0 = self.s1 = None
    self.x0 = self.x1 = self.aux = None
    self._requires_grad = True
    np.copyto(x, out, casting='unsafe')
    bump_version(self)
    self.vself = version_of(self)
    return self


cdef Tensor _put_recorded(Tensor self, object key, Tensor value):
    """self with value written at key, recorded so that gradients reach both: value, broadcast
    and flattened, plus one zero, is gathered by a map of self's shape (each written entry
    names its element of value, every other entry the zero), and where() picks self's entries
    outside the key and the gathered ones inside."""
    x = self._data
    try:
        target_shape = np.shape(x[key])
        written = np.zeros(x.shape, dtype=bool)
        written[key] = True
        positions = np.full(x.shape, -1, dtype=np.intp)
        n = int(np.prod(target_shape))
        positions[key] = np.arange(n).reshape(target_shape)
    except IndexError as exc:
        raise IndexError(f"index out of range: {exc}") from None
    except ValueError as exc:
        raise RuntimeError(f"__setitem__: shape mismatch: {exc}") from None
    positions[~written] = n
    try:
        spread = value.expand(target_shape) if value._data.shape != target_shape else value
    except RuntimeError:
        raise RuntimeError(f"__setitem__: shape mismatch: value of shape "
                           f"{list(value._data.shape)} cannot be broadcast to indexing result "
                           f"of shape {list(target_shape)}") from None
    from fastgrad._tensor.functional import concatenate
    pool = concatenate([spread.reshape(-1).to(x.dtype), np.zeros(1, x.dtype)])
    return where(new_tensor(~written), self, pool[positions])


cdef Tensor _filled(Tensor self, object values, object source, str name):
    """The recorded result of overwriting self with values (broadcast): no gradient to self's
    old value, and all of it to source if that is a tensor requiring grad."""
    x = self._data
    try:
        out = np.array(np.broadcast_to(np_asarray(values), x.shape), dtype=x.dtype)
    except ValueError:
        raise RuntimeError(f"output with shape {list(x.shape)} doesn't match the broadcast "
                           f"shape {list(np.shape(values))}") from None
    return local_node(name, out, self, lambda: 0.0, source,
                      (lambda: 1.0) if isinstance(source, Tensor) else None, None, None)


cdef int _repoint(Tensor r, Tensor self, Tensor old) except -1:
    """In r, what referred to self's old node refers to old; saved arrays that are self's
    memory are copied first (the in-place op is about to overwrite it)."""
    x = self._data
    if r.x0 is x:
        r.x0 = x.copy()
        if r.s0 is self:
            r.s0 = None         # a private copy now: nothing can change it
    if r.x1 is x:
        r.x1 = x.copy()
        if r.s1 is self:
            r.s1 = None
    if r.s0 is self:
        r.s0 = old
    if r.s1 is self:
        r.s1 = old
    if r.a is self:
        r.a = old
        old._parents += 1
        self._parents -= 1
    if r.b is self:
        r.b = old
        old._parents += 1
        self._parents -= 1
    return 0


cdef Tensor _assign(Tensor self, object result, bint cast_any):
    """Write result (an array or number) into self's array, broadcast; the in-place ops' end."""
    out = (<Tensor>result)._data if isinstance(result, Tensor) else result
    x = self._data
    if isinstance(out, ndarray):
        if not cast_any and out.dtype != x.dtype and \
                not np.can_cast(out.dtype, x.dtype, 'same_kind'):
            raise RuntimeError(f"result type {_Tensor_dtype_of(out.dtype).name.capitalize()} "
                               f"can't be cast to the desired output type "
                               f"{_Tensor_dtype_of(x.dtype).name.capitalize()}")
        if out.shape != x.shape:
            try:
                b = np.broadcast_shapes(out.shape, x.shape)
            except ValueError:
                b = None
            if b != x.shape:
                raise RuntimeError(f"output with shape {list(x.shape)} doesn't match the "
                                   f"broadcast shape {list(b) if b else list(out.shape)}")
    try:
        np.copyto(x, out, casting='unsafe')
    except ValueError as exc:
        raise RuntimeError(f"in-place op: cannot write into this tensor ({exc}); it is a "
                           f"read-only view (made by expand?): clone() it first") from None
    bump_version(self)
    return self


cdef object _as_operand(object o, str what):
    v = operand(o)
    if v is None:
        raise TypeError(f"{what}: expected a tensor or a number, got {type(o).__name__}")
    return v


cdef object _prod_derivative(object x, int axis):
    """d prod(x, axis) / dx: the product of the other entries (exclusive products from both
    sides, so zeros are exact)."""
    xm = np.moveaxis(x, axis, -1)
    ones = np.ones(xm.shape[:-1] + (1,), x.dtype)
    left = np.cumprod(np.concatenate([ones, xm[..., :-1]], -1), -1)
    right = np.flip(np.cumprod(np.concatenate([ones, np.flip(xm, -1)[..., :-1]], -1), -1), -1)
    return np.moveaxis(left * right, -1, axis)


cdef object _extreme(Tensor self, object dim, bint keepdim, bint largest, str what):
    """max/min along dim: (values, indices), the gradient going to the returned index."""
    x = self._data
    d = dim_index(dim, x.ndim, what)
    if x.ndim == 0:
        return MinMax(self.clone() if self._requires_grad else new_tensor(x.copy()),
                      new_tensor(np.zeros((), I64)))
    if x.shape[d] == 0:
        raise IndexError(f"{what}(): Expected reduction dim {d} to have non-zero size.")
    idx = (np.argmax if largest else np.argmin)(x, axis=d)
    if x.dtype.kind == 'f':     # nan wins, as in PyTorch
        nan_at = np.isnan(x)
        if nan_at.any():
            idx = np.where(nan_at.any(axis=d), np.argmax(nan_at, axis=d), idx)
    kidx = np.expand_dims(idx, d)
    values = self.gather(d, new_tensor(kidx))
    if not keepdim:
        values = values.squeeze(d)
    return MinMax(values, new_tensor(kidx if keepdim else idx.astype(I64)))


cdef Tensor _reduce_extreme(Tensor self, object dim, bint keepdim, bint largest, str what):
    """amax/amin over dims (all if None or ()): the gradient is shared evenly between ties."""
    x = self._data
    axes = norm_axes(None if dim is None or dim == () else dim, x.ndim, what)
    if x.size == 0:
        raise IndexError(f"{what}(): Expected reduction dim to be specified for input.numel() "
                         f"== 0. Specify the reduction dim with the 'dim' argument.")
    red = np.maximum.reduce if largest else np.minimum.reduce
    kept = red(x, axis=axes, keepdims=True)
    out = kept if keepdim else kept.reshape([x.shape[i] for i in range(x.ndim)
                                             if i not in axes])

    def derivative():
        # the entries equal to the result share it; PyTorch's max()/min() of a whole tensor
        # also count nan as equal to a nan result (amax/amin give nan there)
        hit = x == kept
        if x.dtype.kind == 'f' and dim is None and (what == 'max' or what == 'min'):
            hit |= np.isnan(x) & np.isnan(kept)
        mask = hit.astype(x.dtype)
        return mask / reduce_sum(mask, axes, True)
    return local_node(what, out, self, derivative, None, None, kept.shape, axes)


@cython.freelist(64)
cdef class VersionCounter:
    """The version counter shared by tensors that share memory (see tensor.pxd)."""


@cython.no_gc                   # see tensor.pxd: nodes cannot form cycles
@cython.freelist(256)
cdef class Tensor:
    """An n-dimensional array with reverse-mode gradients, PyTorch's Tensor for small models:
    `Tensor(data, requires_grad=False, dtype=None)`. Python floats give the default dtype
    (float32), ints int64, bools bool; numpy arrays keep their dtype.

    >>> x = Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    >>> y = (x * x).sum(dim=1).mean()
    >>> y
    tensor(15., grad_fn=<MeanBackward0>)
    >>> y.backward()
    >>> x.grad.tolist()
    [[1.0, 2.0], [3.0, 4.0]]
    >>> Tensor(np.ones(3)).dtype
    fastgrad.float64
    """

    # The fields, with what they hold: tensor.pxd.

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        # numpy's functions on tensors (np.exp(t), array + t): the ones with a Tensor method
        # are recorded through it (so ndarray + tensor is the tensor's __radd__); any other
        # ufunc computes on the values and returns an untracked tensor, as PyTorch's
        # __array_wrap__ does.
        name = _UFUNC_METHODS.get(ufunc)
        if name is not None and method == '__call__' and not kwargs:
            if len(inputs) == 1:
                return getattr(inputs[0], name)()
            if len(inputs) == 2:
                x, y = inputs
                if isinstance(x, Tensor):
                    return getattr(x, name)(y)
                reflected = _UFUNC_REFLECTED.get(ufunc)
                if reflected is not None:
                    return getattr(y, reflected)(x)
        arrays = [(<Tensor>i)._data if isinstance(i, Tensor) else i for i in inputs]
        out = kwargs.get('out')
        if out is not None:
            kwargs['out'] = tuple([(<Tensor>o)._data if isinstance(o, Tensor) else o
                                   for o in out])
        result = getattr(ufunc, method)(*arrays, **kwargs)
        if out is not None:
            for o in out:
                if isinstance(o, Tensor):
                    bump_version(<Tensor>o)
            return out[0] if len(out) == 1 else out
        if isinstance(result, tuple):
            return tuple([new_tensor(r) for r in result])
        return None if result is None else new_tensor(result)

    def __dealloc__(self):
        # Children (and a concatenate's tuple of children) that only this node holds go to
        # _pending instead of being freed inside this call; the outermost call frees them in a
        # loop, so a chain of any depth is released without nested C calls. (s0 and s1 are
        # children too, or leaves: dropped first, so the counts below see only a, b, c.)
        global _draining
        self.s0 = self.s1 = None
        _release_children(self)
        if _sole_owner(<PyObject *>self.a):
            _pending.append(self.a)
        if _sole_owner(<PyObject *>self.b):
            _pending.append(self.b)
        if _sole_owner(<PyObject *>self.c):
            _pending.append(self.c)
        if ((self.op == TOP_CONCAT or self.op == TOP_STACK or self.op == TOP_LINEAR_MAP)
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

    def __hash__(self):
        # == is elementwise (as in PyTorch), so hashing is by identity
        return <Py_hash_t>(<size_t><void *>self >> 4)

    def __init__(self, data, requires_grad=False, dtype=None):
        self._data = as_array(data, dtype, True)
        if requires_grad:
            self.requires_grad = True

    # --- properties ------------------------------------------------------------------------

    @property
    def data(self):
        """The value as a tensor that shares this one's memory and does not require grad."""
        return new_tensor(self._data)

    @data.setter
    def data(self, value):
        if type(value) is ndarray and (value.dtype is F64 or value.dtype is F32):
            arr = value
        else:
            arr = as_array(value, None, False)
        if self._requires_grad and arr.dtype.kind != 'f':
            raise RuntimeError(f"data: a tensor that requires grad keeps a floating dtype, got "
                               f"{arr.dtype}")
        if self.op != TOP_LEAF:
            old = self._data
            if arr.shape != old.shape or arr.dtype != old.dtype:
                raise RuntimeError(f"data: the value of a tensor computed by {self._op} keeps its "
                                   f"shape {old.shape} and dtype {old.dtype} (its backward "
                                   f"depends on them); got shape {arr.shape}, dtype {arr.dtype}")
        self._data = arr

    @property
    def grad(self):
        """The accumulated gradient (a Tensor) of a leaf after backward(), else None."""
        return self._grad

    @grad.setter
    def grad(self, value):
        if value is None:
            self._grad = None
            return
        if isinstance(value, Tensor):
            g = (<Tensor>value)._data
            if g.shape != self._data.shape:
                raise RuntimeError(f"assigned grad has data of a different size: "
                                   f"{list(g.shape)} for a tensor of size "
                                   f"{list(self._data.shape)}")
            if g.dtype != self._data.dtype:
                raise RuntimeError(f"assigned grad has data of a different type: {g.dtype} for "
                                   f"a tensor of dtype {self._data.dtype}")
            self._grad = value
            return
        g = as_float_array(value, self._data.dtype, True)
        if g.shape != self._data.shape:
            raise RuntimeError(f"assigned grad has data of a different size: {list(g.shape)} "
                               f"for a tensor of size {list(self._data.shape)}")
        self._grad = wrap_grad(g)

    @property
    def requires_grad(self):
        """Whether ops on this tensor are recorded (settable on leaves)."""
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value):
        if self.op != TOP_LEAF and not value:
            raise RuntimeError("you can only change requires_grad flags of leaf variables. If "
                               "you want to use a computed variable in a subgraph that doesn't "
                               "require differentiation use var_no_grad = var.detach().")
        if value and self._data.dtype.kind != 'f':
            raise RuntimeError(f"only Tensors of floating point and complex dtype can require "
                               f"gradients (this one is {self._data.dtype})")
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
    def grad_fn(self):
        """The op that made this tensor (None for leaves)."""
        return None if self.op == TOP_LEAF else GradFn(self._op)

    @property
    def shape(self):
        """The sizes of the dims (a tuple)."""
        return self._data.shape

    def size(self, dim=None):
        """The shape, or the size of one dim."""
        if dim is None:
            return self._data.shape
        return self._data.shape[dim_index(dim, self._data.ndim, 'size')]

    @property
    def ndim(self):
        """The number of dimensions."""
        return self._data.ndim

    def dim(self):
        """The number of dimensions."""
        return self._data.ndim

    def ndimension(self):
        return self._data.ndim

    def numel(self):
        """The number of elements."""
        return self._data.size

    def nelement(self):
        return self._data.size

    def element_size(self):
        return self._data.itemsize

    @property
    def itemsize(self):
        return self._data.itemsize

    @property
    def dtype(self):
        """The element type: a fastgrad.dtype (compares equal to numpy's dtype too)."""
        return _Tensor_dtype_of(self._data.dtype)

    @property
    def device(self):
        """Always the CPU."""
        return _CPU

    @property
    def is_cuda(self):
        return False

    @property
    def is_floating_point_type(self):
        return self._data.dtype.kind == 'f'

    def is_floating_point(self):
        return self._data.dtype.kind == 'f'

    def is_contiguous(self, memory_format=None):
        return bool(self._data.flags.c_contiguous)

    @property
    def T(self):
        """The dims reversed (a matrix's transpose)."""
        if self._data.ndim < 2:
            return self
        return self.permute(tuple(range(self._data.ndim - 1, -1, -1)))

    @property
    def mT(self):
        """The last two dims swapped (a batch of matrices transposed)."""
        if self._data.ndim < 2:
            raise RuntimeError(f"tensor.mT is only supported on matrices or batches of matrices. "
                               f"Got {self._data.ndim}-D tensor.")
        return self.transpose(-2, -1)

    @property
    def _op(self):
        """Name of the op that made this tensor ('leaf' for inputs)."""
        if self.op == TOP_LOCAL:
            return self.aux[0]
        return op_names[self.op]

    @property
    def _op_code(self):
        """The name of the node's op code ('local' for every op with a diagonal Jacobian)."""
        return op_names[self.op]

    def _bump_version(self):
        """Count an in-place change made to .numpy()'s array from outside the Tensor methods
        (the optimizers' updates), as PyTorch's in-place ops count theirs."""
        bump_version(self)

    @property
    def _version(self):
        """How many in-place ops changed the value (PyTorch's version counter)."""
        return version_of(self)

    @property
    def _prev(self):
        """The recorded children (inputs that require grad)."""
        if self.op == TOP_CONCAT or self.op == TOP_STACK:
            return tuple([k for k in self.x0 if k is not None])
        return tuple([k for k in (self.a, self.b, self.c) if k is not None])

    def __reduce__(self):
        # pickle and copy.deepcopy: validated when loaded, any depth (pickling.pyx)
        if _reduce == NULL:  # pragma: no cover - fastgrad._tensor imports pickling first
            raise RuntimeError("fastgrad's Tensor pickling is not loaded: import fastgrad._tensor")
        return _reduce(self)

    # --- conversions -----------------------------------------------------------------------

    def numpy(self, force=False):
        """The value as a numpy array (shared, not copied). (PyTorch refuses this for a tensor
        that requires grad; fastgrad allows it, as detach().numpy().)"""
        return self._data

    def __array__(self, dtype=None, copy=None):
        # np.asarray(tensor) gives its values (history is not carried into numpy)
        if dtype is not None and dtype != self._data.dtype:
            return self._data.astype(dtype)
        return self._data.copy() if copy else self._data

    def item(self):
        """The only element as a Python number."""
        if self._data.size != 1:
            raise RuntimeError(f"a Tensor with {self._data.size} elements cannot be converted "
                               f"to Scalar")
        return self._data.item()

    def tolist(self):
        """The values as (nested) Python lists of numbers."""
        return self._data.tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self._data.dtype.kind not in 'iub' or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an "
                            "index")
        return int(self._data.item())

    def __bool__(self):
        if self._data.size != 1:
            raise RuntimeError(f"Boolean value of Tensor with more than one value is ambiguous"
                               if self._data.size else
                               "Boolean value of Tensor with no values is ambiguous")
        return bool(self._data.item())

    def __len__(self):
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __iter__(self):
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self._data.shape[0]))

    def __contains__(self, element):
        v = operand(element)
        if v is None:
            raise RuntimeError(f"Tensor.__contains__ only supports Tensor or scalar, but you "
                               f"passed in a {type(element).__name__}.")
        return bool((self._data == v).any())

    def detach(self):
        """The same data without history (shared memory and version counter, requires_grad
        False)."""
        cdef Tensor t = new_tensor(self._data)
        share_version(self, t)
        return t

    def detach_(self):
        """Make this tensor a leaf that does not require grad (its history is dropped)."""
        _release_children(self)
        self.op = TOP_LEAF
        self.a = self.b = self.c = None
        self.s0 = self.s1 = None
        self.x0 = self.x1 = self.aux = None
        self._requires_grad = False
        return self

    def __repr__(self):
        body = np.array2string(self._data, separator=', ', prefix='tensor(')
        extra = ''
        dt = self._data.dtype
        if not (dt == _default_float() or dt is I64 or dt is BOOL) or self._data.size == 0:
            extra += f', dtype={_Tensor_dtype_of(dt)}'
        if self._requires_grad:
            extra += ', requires_grad=True' if self.op == TOP_LEAF else \
                f', grad_fn={self.grad_fn!r}'
        return f'tensor({body}{extra})'

    # --- dtype and device ------------------------------------------------------------------

    def to(self, *args, **kwargs):
        """to(dtype), to(device), to(device, dtype), to(other): a tensor of that dtype (self if
        nothing changes). Only the CPU exists."""
        dtype = kwargs.pop('dtype', None)
        device = kwargs.pop('device', None)
        copy = bool(kwargs.pop('copy', False))
        kwargs.pop('non_blocking', None)
        kwargs.pop('memory_format', None)
        if kwargs:
            raise TypeError(f"to() got unexpected keyword arguments {sorted(kwargs)}")
        for a in args:
            if isinstance(a, Tensor):
                dtype = (<Tensor>a)._data.dtype
            elif isinstance(a, _dtypes.dtype) or isinstance(a, np.dtype) or \
                    (isinstance(a, type) and a is not str):
                dtype = a
            elif isinstance(a, str) and a in _dtypes._BY_NAME:
                dtype = a
            else:
                device = a
        _check_device(device)
        if dtype is None:
            return self.clone() if copy else self
        return self._cast(numpy_dtype(dtype), copy)

    cdef Tensor _cast(self, object dt, bint copy):
        x = self._data
        if x.dtype == dt and not copy:
            return self
        out = x.astype(dt)
        cdef Tensor t = new_tensor(out)
        if self._requires_grad and grad_enabled() and dt.kind == 'f':
            record(t, TOP_CAST, self, None, None, None, None)
        return t

    def type(self, dtype=None):
        """type(): the type's name ('torch.FloatTensor'); type(dtype): to(dtype)."""
        if dtype is None:
            names = {'float32': 'Float', 'float64': 'Double', 'float16': 'Half',
                     'int64': 'Long', 'int32': 'Int', 'int16': 'Short', 'int8': 'Char',
                     'uint8': 'Byte', 'bool': 'Bool'}
            return f"torch.{names[self._data.dtype.name]}Tensor"
        return self.to(dtype)

    def type_as(self, other):
        return self._cast((<Tensor?>other)._data.dtype, False)

    def float(self):
        return self._cast(F32, False)

    def double(self):
        return self._cast(F64, False)

    def half(self):
        return self._cast(F16, False)

    def long(self):
        return self._cast(I64, False)

    def int(self):
        return self._cast(np.dtype(np.int32), False)

    def short(self):
        return self._cast(np.dtype(np.int16), False)

    def byte(self):
        return self._cast(np.dtype(np.uint8), False)

    def bool(self):
        return self._cast(BOOL, False)

    def cpu(self):
        return self

    def cuda(self, *args, **kwargs):
        _check_device('cuda')

    def contiguous(self, memory_format=None):
        """self if its memory is in row-major order, else a copy that is."""
        if self._data.flags.c_contiguous:
            return self
        return self.clone()

    def clone(self, memory_format=None):
        """A copy (gradients flow back to self)."""
        cdef Tensor t = new_tensor(np.array(self._data, copy=True, order='C'))
        if self._requires_grad and grad_enabled():
            record(t, TOP_CAST, self, None, None, None, None)
        return t

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

    def __floordiv__(self, other):
        return _integer_division(self, other, np.floor_divide, 'floor_divide')

    def __rfloordiv__(self, other):
        return _integer_division(other, self, np.floor_divide, 'floor_divide')

    def __ifloordiv__(self, other):
        if _check_inplace(self, other):
            return self // other
        return _assign(self, _checked(self.__floordiv__(other), other, 'floor_divide_'), False)

    def __mod__(self, other):
        return self.remainder(other)

    def __rmod__(self, other):
        return _integer_division(other, self, np.remainder, 'remainder')

    def __neg__(self):
        x = self._data
        if x.dtype is BOOL:
            raise RuntimeError("Negation, the `-` operator, on a bool tensor is not supported. "
                               "If you are trying to invert a mask, use the `~` or "
                               "`logical_not()` operator instead.")
        return _unary(self, x, TOP_NEG, -x, None)

    def __pos__(self):
        return self

    def __abs__(self):
        return elementwise(self, 'abs')

    def __invert__(self):
        x = self._data
        if x.dtype.kind == 'f':
            raise TypeError(f"~ (bitwise_not) is only supported for integer and bool tensors, "
                            f"not {x.dtype}")
        return new_tensor(~x)

    def __and__(self, other):
        return _bitwise(self, other, np.bitwise_and, 'bitwise_and')

    def __rand__(self, other):
        return _bitwise(other, self, np.bitwise_and, 'bitwise_and')

    def __or__(self, other):
        return _bitwise(self, other, np.bitwise_or, 'bitwise_or')

    def __ror__(self, other):
        return _bitwise(other, self, np.bitwise_or, 'bitwise_or')

    def __xor__(self, other):
        return _bitwise(self, other, np.bitwise_xor, 'bitwise_xor')

    def __rxor__(self, other):
        return _bitwise(other, self, np.bitwise_xor, 'bitwise_xor')

    # comparisons: elementwise, bool tensors (recorded nothing)
    def __eq__(self, other):
        return _plain(self, other, np.equal, 'eq')

    def __ne__(self, other):
        return _plain(self, other, np.not_equal, 'ne')

    def __lt__(self, other):
        return _plain(self, other, np.less, 'lt')

    def __le__(self, other):
        return _plain(self, other, np.less_equal, 'le')

    def __gt__(self, other):
        return _plain(self, other, np.greater, 'gt')

    def __ge__(self, other):
        return _plain(self, other, np.greater_equal, 'ge')

    def eq(self, other):
        return _checked(self.__eq__(other), other, 'eq')

    def ne(self, other):
        return _checked(self.__ne__(other), other, 'ne')

    def lt(self, other):
        return _checked(self.__lt__(other), other, 'lt')

    def le(self, other):
        return _checked(self.__le__(other), other, 'le')

    def gt(self, other):
        return _checked(self.__gt__(other), other, 'gt')

    def ge(self, other):
        return _checked(self.__ge__(other), other, 'ge')

    def equal(self, other):
        """True if other has the same shape and values."""
        o = (<Tensor?>other)._data
        return self._data.shape == o.shape and bool((self._data == o).all())

    def isclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
        return new_tensor(np.isclose(self._data, _as_operand(other, 'isclose'), rtol, atol,
                                     equal_nan))

    def allclose(self, other, rtol=1e-05, atol=1e-08, equal_nan=False):
        return bool(np.allclose(self._data, _as_operand(other, 'allclose'), rtol, atol,
                                equal_nan))

    def isnan(self):
        return new_tensor(np.isnan(self._data))

    def isinf(self):
        return new_tensor(np.isinf(self._data))

    def isfinite(self):
        return new_tensor(np.isfinite(self._data))

    def logical_not(self):
        return new_tensor(np.logical_not(self._data))

    def logical_and(self, other):
        return new_tensor(np.logical_and(self._data, _as_operand(other, 'logical_and')))

    def logical_or(self, other):
        return new_tensor(np.logical_or(self._data, _as_operand(other, 'logical_or')))

    def logical_xor(self, other):
        return new_tensor(np.logical_xor(self._data, _as_operand(other, 'logical_xor')))

    # methods of the operators
    def add(self, other, *, alpha=1):
        return _checked(self.__add__(other if alpha == 1 else other * alpha), other, 'add')

    def sub(self, other, *, alpha=1):
        return _checked(self.__sub__(other if alpha == 1 else other * alpha), other, 'sub')

    subtract = sub

    def mul(self, other):
        return _checked(self.__mul__(other), other, 'mul')

    multiply = mul

    def div(self, other, *, rounding_mode=None):
        if rounding_mode is None:
            return _checked(self.__truediv__(other), other, 'div')
        if rounding_mode == 'floor':
            return _checked(self.__floordiv__(other), other, 'div')
        if rounding_mode == 'trunc':
            return _checked(_plain(self, other, lambda a, b: np.trunc(a / b).astype(
                np.result_type(a, b)), 'div'), other, 'div')
        raise ValueError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but "
                         f"found '{rounding_mode}'")

    divide = div
    true_divide = div

    def floor_divide(self, other):
        return _checked(self.__floordiv__(other), other, 'floor_divide')

    def remainder(self, other):
        """Python's %: the result takes the divisor's sign (gradient 1 in self)."""
        ops = _operands(self, other, 'remainder')
        if ops is None:
            raise TypeError(f"remainder: unsupported operand {type(other).__name__}")
        xv, yv, dt = ops
        if dt.kind in 'iub' and (np.asarray(yv) == 0).any():
            raise RuntimeError("ZeroDivisionError")
        with _np_errstate(divide='ignore', invalid='ignore'):
            out = np.remainder(xv, yv)
        return local_node('remainder', out, self, lambda: 1.0, other,
                          lambda: -np.floor_divide(xv, yv), None, None)

    fmod = remainder

    def pow(self, exponent):
        return _checked(self.__pow__(exponent, None), exponent, 'pow')

    def matmul(self, other):
        """self @ other (numpy's matmul rules)."""
        return _checked(self.__matmul__(other), other, 'matmul')

    def mm(self, other):
        if self._data.ndim != 2 or (<Tensor?>other)._data.ndim != 2:
            raise RuntimeError("mm: both arguments must be 2-D matrices")
        return self.matmul(other)

    def bmm(self, other):
        if self._data.ndim != 3 or (<Tensor?>other)._data.ndim != 3:
            raise RuntimeError("bmm: both arguments must be 3-D batches of matrices")
        return self.matmul(other)

    def dot(self, other):
        if self._data.ndim != 1 or (<Tensor?>other)._data.ndim != 1:
            raise RuntimeError("1D tensors expected, but got other shapes")
        return self.matmul(other)

    def neg(self):
        return -self

    negative = neg

    # --- elementwise functions -----------------------------------------------------------

    def relu(self):
        """max(x, 0) elementwise; gradient 1 where x > 0 (and where x is nan)."""
        x = self._data
        if x.dtype.kind != 'f':
            return new_tensor(np.maximum(x, 0).astype(x.dtype))
        cdef Tensor t = _unary(self, x, TOP_RELU, relu_value(x), None)
        return t

    def tanh(self):
        """Hyperbolic tangent elementwise."""
        x = _float_value(self._data)
        return _unary(self, x, TOP_TANH, _np_tanh(x), None)

    def exp(self):
        """e**x elementwise."""
        x = _float_value(self._data)
        with _np_errstate(over='ignore'):
            return _unary(self, x, TOP_EXP, _np_exp(x), None)

    def log(self):
        """Natural logarithm elementwise."""
        x = _float_value(self._data)
        with _np_errstate(divide='ignore', invalid='ignore'):
            return _unary(self, x, TOP_LOG, _np_log(x), None)

    def sigmoid(self):
        """1 / (1 + e**-x) elementwise, without overflow."""
        x = _float_value(self._data)
        return _unary(self, x, TOP_SIGMOID, _sigmoid_array(x), None)

    def sqrt(self):
        return elementwise(self, 'sqrt')

    def rsqrt(self):
        return elementwise(self, 'rsqrt')

    def abs(self):
        return elementwise(self, 'abs')

    absolute = abs

    def sign(self):
        return elementwise(self, 'sign')

    def log2(self):
        return elementwise(self, 'log2')

    def log10(self):
        return elementwise(self, 'log10')

    def log1p(self):
        return elementwise(self, 'log1p')

    def expm1(self):
        return elementwise(self, 'expm1')

    def sin(self):
        return elementwise(self, 'sin')

    def cos(self):
        return elementwise(self, 'cos')

    def tan(self):
        return elementwise(self, 'tan')

    def asin(self):
        return elementwise(self, 'asin')

    def acos(self):
        return elementwise(self, 'acos')

    def atan(self):
        return elementwise(self, 'atan')

    def sinh(self):
        return elementwise(self, 'sinh')

    def cosh(self):
        return elementwise(self, 'cosh')

    def erf(self):
        return elementwise(self, 'erf')

    def reciprocal(self):
        return elementwise(self, 'reciprocal')

    def square(self):
        return elementwise(self, 'square')

    def floor(self):
        return elementwise(self, 'floor')

    def ceil(self):
        return elementwise(self, 'ceil')

    def round(self, decimals=0):
        if decimals:
            s = 10.0 ** decimals
            return (self * s).round() / s
        return elementwise(self, 'round')

    def trunc(self):
        return elementwise(self, 'trunc')

    def frac(self):
        return elementwise(self, 'frac')

    def softmax(self, dim=None, *, dtype=None, axis=None):
        """exp(x) normalised along dim (computed from x - max)."""
        x = _float_value(self._data) if dtype is None else self._data.astype(numpy_dtype(dtype))
        d = _dim_arg(dim, axis)
        ax = norm_axes(-1 if d is None else d, x.ndim, 'softmax')
        e = _np_exp(x - reduce_max(x, ax, True))
        return _unary(self, x, TOP_SOFTMAX, e / reduce_sum(e, ax, True), ax)

    def log_softmax(self, dim=None, *, dtype=None, axis=None):
        """log(softmax(x)) along dim, computed stably."""
        x = _float_value(self._data) if dtype is None else self._data.astype(numpy_dtype(dtype))
        d = _dim_arg(dim, axis)
        ax = norm_axes(-1 if d is None else d, x.ndim, 'log_softmax')
        z = x - reduce_max(x, ax, True)
        return _unary(self, x, TOP_LOG_SOFTMAX, z - _np_log(reduce_sum(_np_exp(z), ax, True)),
                      ax)

    def clamp(self, min=None, max=None):
        """Values limited to [min, max] (either may be None or a tensor); the gradient passes
        where min <= x <= max."""
        if min is None and max is None:
            raise RuntimeError("torch.clamp: At least one of 'min' or 'max' must not be None")
        x = self._data
        lo = None if min is None else _as_operand(min, 'clamp')
        hi = None if max is None else _as_operand(max, 'clamp')
        out = x
        for bound in (lo, hi):
            if bound is not None and x.dtype.kind != 'f':
                if isinstance(bound, float) or isinstance(bound, ndarray) and \
                        bound.dtype.kind == 'f':
                    out = out.astype(_default_float() if not isinstance(bound, ndarray) else
                                     result_dtype(x, bound))
        if lo is not None:
            out = np.maximum(out, lo)
        if hi is not None:
            out = np.minimum(out, hi)
        if type(out) is not ndarray:
            out = np_asarray(out)
        if out.dtype != x.dtype and out.dtype.kind == x.dtype.kind == 'f':
            out = out.astype(result_dtype(x, lo if lo is not None else hi))

        def derivative():
            m = np.ones(x.shape, bool)
            if lo is not None:
                m &= x >= lo
            if hi is not None:
                m &= x <= hi
            return np.broadcast_to(m, out.shape).astype(out.dtype)
        return local_node('clamp', out, self, derivative, None, None, None, None)

    clip = clamp

    def clamp_min(self, min):
        return self.clamp(min, None)

    def clamp_max(self, max):
        return self.clamp(None, max)

    def maximum(self, other):
        """Elementwise maximum; at ties each input gets half the gradient (as PyTorch)."""
        return _pick(self, other, True)

    def minimum(self, other):
        """Elementwise minimum; at ties each input gets half the gradient (as PyTorch)."""
        return _pick(self, other, False)

    def where(self, condition, other):
        """self where condition holds, else other."""
        return where(condition, self, other)

    def masked_fill(self, mask, value):
        """value where mask is True, self elsewhere (mask broadcasts to self)."""
        m = _bool_mask(mask, 'masked_fill')
        x = self._data
        v = _as_operand(value, 'masked_fill')
        if isinstance(v, ndarray) and v.ndim:
            raise RuntimeError(f"masked_fill only supports a 0-dimensional value tensor, but got "
                               f"tensor with {v.ndim} dimension(s).")
        try:
            out = np.where(m, np.asarray(v).astype(x.dtype), x)
        except ValueError:
            raise _broadcast_error('masked_fill', x, m) from None
        if out.shape != x.shape:
            raise RuntimeError(f"masked_fill: the mask of shape {m.shape} must broadcast to the "
                               f"tensor's shape {x.shape}")
        return local_node('masked_fill', out, self, lambda: (~m).astype(x.dtype), value,
                          lambda: m.astype(x.dtype), None, None)

    def lerp(self, end, weight):
        return self + (end - self) * weight

    def addmm(self, mat1, mat2, *, beta=1, alpha=1):
        return self * beta + (mat1 @ mat2) * alpha

    def gather(self, dim, index):
        """out[i][j] = self[i][index[i][j]] (for dim 1): torch.gather."""
        x = self._data
        d = dim_index(dim, x.ndim, 'gather')
        idx = _index_array(index, 'gather')
        if idx.ndim != x.ndim and not (x.ndim == 0 and idx.ndim <= 1):
            raise RuntimeError(f"Index tensor must have the same number of dimensions as input "
                               f"tensor ({idx.ndim} vs {x.ndim})")
        if x.ndim == 0:
            return self.reshape(1).gather(0, idx.reshape(-1)).reshape(idx.shape)
        for k in range(x.ndim):
            if k != d and idx.shape[k] > x.shape[k]:
                raise RuntimeError(f"Size does not match at dimension {k} expected index "
                                   f"{list(idx.shape)} to be smaller than self {list(x.shape)} "
                                   f"apart from dimension {d}")
        if idx.size and (idx.min() < -x.shape[d] or idx.max() >= x.shape[d]):
            raise RuntimeError(f"gather(): index {int(idx.max() if idx.max() >= x.shape[d] else idx.min())} "
                               f"is out of bounds for dimension {d} with size {x.shape[d]}")
        idx = np.where(idx < 0, idx + x.shape[d], idx).astype(np.intp)
        out = x[gather_index(idx, d)]
        cdef Tensor t = new_tensor(out)
        if grad_enabled() and self._requires_grad:
            record(t, TOP_GATHER, self, None, idx, None, (d, x.shape))
        return t

    def take_along_dim(self, indices, dim):
        return self.gather(dim, indices)

    def index_select(self, dim, index):
        """The entries at index (1-D) along dim."""
        x = self._data
        d = dim_index(dim, x.ndim, 'index_select')
        idx = _index_array(index, 'index_select')
        if idx.ndim > 1:
            raise IndexError("index_select(): Index is supposed to be a vector")
        if idx.size and (idx.min() < -x.shape[d] or idx.max() >= x.shape[d]):
            raise IndexError(f"index out of range in self")
        return self[(slice(None),) * d + (idx.reshape(-1),)]

    def masked_select(self, mask):
        m = _bool_mask(mask, 'masked_select')
        if m.shape != self._data.shape:
            m = np.broadcast_to(m, self._data.shape)
        return self[m]

    # --- reductions ----------------------------------------------------------------------

    def sum(self, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=None,
            out=None):
        """Sum over dim (None: all; an int or a tuple)."""
        x = self._data
        if dtype is not None:
            x = x.astype(numpy_dtype(dtype))
        elif x.dtype.kind in 'biu':
            x = x.astype(I64)
        d = _dim_arg(dim, axis)
        keep = _keep_arg(keepdim, keepdims)
        if d is None:        # the common case, without numpy's tuple-axis machinery
            return _unary(self, x, TOP_SUM, np_asarray(reduce_sum(x, None, keep)),
                          (1,) * x.ndim)
        axes = norm_axes(d, x.ndim, 'sum')
        return _unary(self, x, TOP_SUM, np_asarray(reduce_sum(x, axes, keep)),
                      _kept_shape(x.shape, axes))

    def nansum(self, dim=None, keepdim=False):
        return self.masked_fill(self.isnan(), 0.0).sum(dim, keepdim)

    def mean(self, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=None,
            out=None):
        """Mean over dim (None: all; an int or a tuple)."""
        x = self._data
        if dtype is not None:
            x = x.astype(numpy_dtype(dtype))
        elif x.dtype.kind != 'f':
            raise RuntimeError(f"mean(): could not infer output dtype. Input dtype must be "
                               f"either a floating point or complex dtype. Got: "
                               f"{_Tensor_dtype_of(x.dtype).name.capitalize()}")
        d = _dim_arg(dim, axis)
        keep = _keep_arg(keepdim, keepdims)
        axes = norm_axes(d, x.ndim, 'mean')
        count = 1
        for ax in axes:
            count *= x.shape[ax]
        with _np_errstate(invalid='ignore', divide='ignore'):
            out = np_asarray(reduce_sum(x, None if d is None else axes, keep) / count if count
                             else reduce_sum(x, None if d is None else axes, keep) * np.nan)
        return _unary(self, x, TOP_MEAN, out.astype(x.dtype, copy=False),
                      (_kept_shape(x.shape, axes), count if count else np.nan))

    def var(self, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None,
            keepdims=None):
        """Variance over dim with Bessel's correction (correction=1) unless unbiased=False or
        correction says otherwise."""
        return _moment(self, dim, unbiased, keepdim, correction, axis, keepdims, False)

    def std(self, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None,
            keepdims=None):
        """Standard deviation (see var)."""
        return _moment(self, dim, unbiased, keepdim, correction, axis, keepdims, True)

    def prod(self, dim=None, keepdim=False, *, dtype=None):
        """Product over one dim (or all); exact gradients at zeros."""
        x = self._data
        if dtype is not None:
            x = x.astype(numpy_dtype(dtype))
        elif x.dtype.kind in 'biu':
            x = x.astype(I64)
        if dim is None:
            flat = x.reshape(-1)
            out = np_asarray(np.prod(flat))
            return local_node('prod', out, self,
                              lambda: _prod_derivative(flat, 0).reshape(x.shape), None, None,
                              (1,) * x.ndim, tuple(range(x.ndim)))
        d = dim_index(dim, x.ndim, 'prod')
        if x.ndim == 0:
            return self.clone()
        kept = np.prod(x, axis=d, keepdims=True)
        out = kept if keepdim else np.squeeze(kept, d)
        return local_node('prod', out, self, lambda: _prod_derivative(x, d), None, None,
                          kept.shape, (d,))

    def max(self, dim=None, keepdim=False, *, axis=None, keepdims=None, out=None):
        """max(): the largest element (ties share the gradient); max(dim): (values, indices),
        the gradient going to the index; max(other): the elementwise maximum. numpy's
        max(axis=...) is amax."""
        if isinstance(dim, Tensor):
            return _pick(self, dim, True)
        if axis is not None:
            return _reduce_extreme(self, axis, _keep_arg(keepdim, keepdims), True, 'max')
        if dim is None:
            return _reduce_extreme(self, None, _keep_arg(keepdim, keepdims), True, 'max')
        return _extreme(self, dim, keepdim, True, 'max')

    def min(self, dim=None, keepdim=False, *, axis=None, keepdims=None, out=None):
        """As max, for the smallest."""
        if isinstance(dim, Tensor):
            return _pick(self, dim, False)
        if axis is not None:
            return _reduce_extreme(self, axis, _keep_arg(keepdim, keepdims), False, 'min')
        if dim is None:
            return _reduce_extreme(self, None, _keep_arg(keepdim, keepdims), False, 'min')
        return _extreme(self, dim, keepdim, False, 'min')

    def amax(self, dim=(), keepdim=False):
        """The largest values over dims (all by default); ties share the gradient."""
        return _reduce_extreme(self, dim, keepdim, True, 'amax')

    def amin(self, dim=(), keepdim=False):
        return _reduce_extreme(self, dim, keepdim, False, 'amin')

    def argmax(self, dim=None, keepdim=False):
        """The index of the largest value (the first one at ties), over all or along dim."""
        return _arg_extreme(self, dim, keepdim, True)

    def argmin(self, dim=None, keepdim=False):
        return _arg_extreme(self, dim, keepdim, False)

    def logsumexp(self, dim, keepdim=False):
        """log(sum(exp(x))) over dim, computed from x - max (finite for large x)."""
        x = _float_value(self._data)
        axes = norm_axes(dim, x.ndim, 'logsumexp')
        m = reduce_max(x, axes, True) if x.size else np.zeros(_kept_shape(x.shape, axes),
                                                               x.dtype)
        m = np.where(np.isfinite(m), m, 0.0).astype(x.dtype)
        with _np_errstate(divide='ignore'):
            kept = _np_log(reduce_sum(_np_exp(x - m), axes, True)) + m
        out = kept if keepdim else kept.reshape([x.shape[i] for i in range(x.ndim)
                                                 if i not in axes])
        return local_node('logsumexp', np_asarray(out), self, lambda: _np_exp(x - kept), None,
                          None, kept.shape, axes)

    def norm(self, p='fro', dim=None, keepdim=False, dtype=None):
        """The p-norm over dim (all by default): p = 2/'fro', 1, inf, -inf, 0 or any number."""
        x = _float_value(self._data) if dtype is None else self._data.astype(numpy_dtype(dtype))
        axes = norm_axes(dim, x.ndim, 'norm')
        if p == 'fro' and isinstance(dim, (tuple, list)) and len(dim) > 2:
            # (PyTorch's Frobenius norm is a vector or a matrix norm: 1 or 2 dims)
            raise RuntimeError(f"linalg.matrix_norm: dim must be a 2-tuple. Got "
                               f"{' '.join(str(d) for d in dim)}")
        if p == 'fro' or p is None:
            p = 2
        if p == 'nuc' or isinstance(p, str):
            raise NotImplementedError(f"norm: p={p!r} is not supported (use 'fro', a number or "
                                      f"inf)")
        a = _np_abs(x)
        p = float(p)
        if p == math.inf or p == -math.inf:
            kept = (np.maximum.reduce if p > 0 else np.minimum.reduce)(a, axis=axes,
                                                                       keepdims=True)

            def derivative():
                mask = (a == kept).astype(x.dtype)
                return np.sign(x) * mask / reduce_sum(mask, axes, True)
        elif p == 0:
            kept = reduce_sum((x != 0).astype(x.dtype), axes, True)

            def derivative():
                return np.zeros_like(x)
        elif p == 1:
            kept = reduce_sum(a, axes, True)

            def derivative():
                return np.sign(x)
        elif p == 2:
            kept = np.sqrt(reduce_sum(x * x, axes, True))

            def derivative():
                return np.where(kept == 0, 0.0, x / np.where(kept == 0, 1.0, kept)).astype(
                    x.dtype)
        else:
            kept = reduce_sum(a ** p, axes, True) ** (1.0 / p)

            def derivative():
                safe = np.where(kept == 0, 1.0, kept)
                return np.where(kept == 0, 0.0,
                                np.sign(x) * a ** (p - 1.0) / safe ** (p - 1.0)).astype(x.dtype)
        kept = np_asarray(kept).astype(x.dtype, copy=False)
        out = kept if keepdim else kept.reshape([x.shape[i] for i in range(x.ndim)
                                                 if i not in axes])
        return local_node('norm', np_asarray(out), self, derivative, None, None, kept.shape,
                          axes, (p,))

    def cumsum(self, dim, *, dtype=None):
        """Running sums along dim."""
        x = self._data
        if dtype is not None:
            x = x.astype(numpy_dtype(dtype))
        elif x.dtype.kind in 'biu':
            x = x.astype(I64)
        d = dim_index(dim, x.ndim, 'cumsum')
        out = np.cumsum(x, axis=d) if x.ndim else x.copy()
        cdef Tensor t = new_tensor(out)
        if grad_enabled() and self._requires_grad and x.ndim:
            record(t, TOP_CUMSUM, self, None, None, None, d)
        elif grad_enabled() and self._requires_grad:
            record(t, TOP_CAST, self, None, None, None, None)
        return t

    def all(self, dim=None, keepdim=False, *, axis=None, keepdims=None, out=None):
        x = self._data
        d = _dim_arg(dim, axis)
        return new_tensor(np_asarray(np.all(x, axis=None if d is None else
                                            norm_axes(d, x.ndim, 'all'),
                                            keepdims=_keep_arg(keepdim, keepdims))))

    def any(self, dim=None, keepdim=False, *, axis=None, keepdims=None, out=None):
        x = self._data
        d = _dim_arg(dim, axis)
        return new_tensor(np_asarray(np.any(x, axis=None if d is None else
                                            norm_axes(d, x.ndim, 'any'),
                                            keepdims=_keep_arg(keepdim, keepdims))))

    def count_nonzero(self, dim=None):
        x = self._data
        return new_tensor(np_asarray(np.count_nonzero(x, axis=None if dim is None else
                                                      norm_axes(dim, x.ndim, 'count_nonzero'))
                                     ).astype(I64))

    def topk(self, k, dim=-1, largest=True, sorted=True):
        """The k largest (or smallest) values along dim and their indices."""
        x = self._data
        d = dim_index(dim, x.ndim, 'topk')
        n = x.shape[d] if x.ndim else 1
        k = _operator_index(k)
        if k < 0 or k > n:
            raise RuntimeError("selected index k out of range")
        order = np.argsort(-x if largest else x, axis=d, kind='stable') if x.ndim else \
            np.zeros((), np.intp)
        idx = np.take(order, np.arange(k), axis=d) if x.ndim else order
        return TopK(self.gather(d, new_tensor(idx)), new_tensor(idx.astype(I64)))

    def sort(self, dim=-1, descending=False, stable=False):
        """The values sorted along dim, and the permutation that sorts them."""
        x = self._data
        d = dim_index(dim, x.ndim, 'sort')
        if x.ndim == 0:
            return Sorted(self.clone(), new_tensor(np.zeros((), I64)))
        idx = np.argsort(-x if descending else x, axis=d, kind='stable') \
            if x.dtype.kind != 'b' else np.argsort(~x if descending else x, axis=d,
                                                   kind='stable')
        return Sorted(self.gather(d, new_tensor(idx)), new_tensor(idx.astype(I64)))

    def argsort(self, dim=-1, descending=False, stable=False):
        return self.sort(dim, descending, stable)[1]

    # --- shape ops -----------------------------------------------------------------------

    def reshape(self, *shape):
        """The same data in a new shape: reshape(2, 3) or reshape((2, 3)); -1 infers one size."""
        x = self._data
        shape = _shape_args(shape, 'reshape')
        try:
            out = x.reshape(shape)
        except ValueError:
            raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size "
                               f"{x.size}") from None
        return _unary(self, x, TOP_RESHAPE, out, None)

    def view(self, *shape):
        """The same memory in a new shape; RuntimeError (as PyTorch) where that needs a copy
        (after transpose or permute: use reshape, or contiguous().view)."""
        x = self._data
        shape = _shape_args(shape, 'view')
        try:
            out = x.reshape(shape, copy=False)
        except ValueError:
            try:
                x.reshape(shape)
            except ValueError:
                raise RuntimeError(f"shape '{list(shape)}' is invalid for input of size "
                                   f"{x.size}") from None
            raise RuntimeError("view size is not compatible with input tensor's size and stride "
                               "(at least one dimension spans across two contiguous subspaces)."
                               " Use .reshape(...) instead.") from None
        return _unary(self, x, TOP_RESHAPE, out, None)

    def view_as(self, other):
        return self.reshape((<Tensor?>other)._data.shape)

    def reshape_as(self, other):
        return self.reshape((<Tensor?>other)._data.shape)

    def flatten(self, start_dim=0, end_dim=-1):
        """The dims start_dim..end_dim merged into one."""
        x = self._data
        if x.ndim == 0:
            return self.reshape(1)
        s = dim_index(start_dim, x.ndim, 'flatten')
        e = dim_index(end_dim, x.ndim, 'flatten')
        if s > e:
            raise RuntimeError("flatten() has invalid args: start_dim cannot come after end_dim")
        shape = x.shape[:s] + (-1 if x.size else int(np.prod(x.shape[s:e + 1])),) + \
            x.shape[e + 1:]
        return self.reshape(shape)

    def ravel(self):
        return self.reshape(-1)

    def unflatten(self, dim, sizes):
        """Dim dim split into sizes (one may be -1)."""
        x = self._data
        d = dim_index(dim, x.ndim, 'unflatten')
        return self.reshape(x.shape[:d] + tuple(sizes) + x.shape[d + 1:])

    def squeeze(self, dim=None):
        """The dims of size 1 removed (only those listed in dim, if given)."""
        x = self._data
        if dim is None:
            shape = tuple([s for s in x.shape if s != 1])
        else:
            axes = norm_axes(dim, x.ndim, 'squeeze')
            shape = tuple([x.shape[i] for i in range(x.ndim) if not (i in axes and
                                                                    x.shape[i] == 1)])
        if shape == x.shape:
            return self
        return self.reshape(shape)

    def unsqueeze(self, dim):
        """A dim of size 1 inserted at dim (-ndim-1 <= dim <= ndim)."""
        x = self._data
        d = dim_index(dim, x.ndim + 1, 'unsqueeze')
        return self.reshape(x.shape[:d] + (1,) + x.shape[d:])

    def expand(self, *sizes):
        """A view broadcast to sizes (-1 keeps a dim); gradients are summed back."""
        x = self._data
        sizes = _shape_args(sizes, 'expand')
        lead = len(sizes) - x.ndim
        if lead < 0:
            raise RuntimeError(f"expand: the number of sizes provided ({len(sizes)}) must be "
                               f"greater or equal to the number of dimensions in the tensor "
                               f"({x.ndim})")
        target = list(sizes)
        for i in range(x.ndim):
            if sizes[lead + i] == -1:
                target[lead + i] = x.shape[i]
            elif x.shape[i] != 1 and sizes[lead + i] != x.shape[i]:
                raise RuntimeError(f"The expanded size of the tensor ({sizes[lead + i]}) must "
                                   f"match the existing size ({x.shape[i]}) at non-singleton "
                                   f"dimension {lead + i}.  Target sizes: {list(sizes)}.  "
                                   f"Tensor sizes: {list(x.shape)}")
        for i in range(lead):
            if sizes[i] < 0:
                raise RuntimeError(f"expand: -1 is not allowed in a leading, non-existing "
                                   f"dimension {i}")
        out = np.broadcast_to(x, tuple(target))
        cdef Tensor t = new_tensor(out)
        share_version(self, t)
        if grad_enabled() and self._requires_grad:
            record(t, TOP_EXPAND, self, None, None, None, None)
        return t

    def expand_as(self, other):
        return self.expand((<Tensor?>other)._data.shape)

    def broadcast_to(self, *shape):
        return self.expand(*shape)

    def repeat(self, *sizes):
        """The tensor tiled sizes[i] times along each dim (leading dims added as needed)."""
        x = self._data
        reps = _shape_args(sizes, 'repeat')
        if len(reps) < x.ndim:
            raise RuntimeError("Number of dimensions of repeat dims can not be smaller than "
                               "number of dimensions of tensor")
        padded = (1,) * (len(reps) - x.ndim) + x.shape
        out = np.tile(x.reshape(padded), reps)
        cdef Tensor t = new_tensor(out)
        if grad_enabled() and self._requires_grad:
            record(t, TOP_REPEAT, self, None, None, None, (reps, padded))
        return t

    def tile(self, *dims):
        dims = _shape_args(dims, 'tile')
        return self.repeat((1,) * (self._data.ndim - len(dims)) + dims)

    def permute(self, *dims):
        """The dims reordered: permute(2, 0, 1)."""
        x = self._data
        cdef int nd = x.ndim
        dims = _shape_args(dims, 'permute')
        if len(dims) != nd:
            raise RuntimeError(f"permute(sparse_coo): number of dimensions in the tensor input "
                               f"does not match the length of the desired ordering of "
                               f"dimensions i.e. input.dim() = {nd} is not equal to "
                               f"len(dims) = {len(dims)}")
        perm = tuple([dim_index(a, nd, 'permute') for a in dims])
        if len(set(perm)) != nd:
            raise RuntimeError("permute(): duplicate dims are not allowed.")
        inverse = [0] * nd
        for i in range(nd):
            inverse[perm[i]] = i
        return _unary(self, x, TOP_TRANSPOSE, x.transpose(perm), tuple(inverse))

    def transpose(self, *dims):
        """transpose(dim0, dim1): the two dims swapped (PyTorch's meaning). numpy's forms,
        which PyTorch does not have, keep numpy's meaning: no argument reverses the dims, and a
        full permutation (one tuple, or more than two dims) permutes them."""
        cdef int nd = self._data.ndim
        if not dims:
            return self.permute(tuple(range(nd - 1, -1, -1)))
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)) or \
                len(dims) != 2 and len(dims) == nd:
            return self.permute(*dims)
        if len(dims) != 2:
            raise TypeError(f"transpose() takes two dims (dim0, dim1), got {dims!r}")
        if nd == 0:
            dim_index(dims[0], 0, 'transpose')
            dim_index(dims[1], 0, 'transpose')
            return self
        d0 = dim_index(dims[0], nd, 'transpose')
        d1 = dim_index(dims[1], nd, 'transpose')
        perm = list(range(nd))
        perm[d0], perm[d1] = perm[d1], perm[d0]
        return self.permute(tuple(perm))

    swapaxes = transpose
    swapdims = transpose

    def t(self):
        """A matrix's transpose (0-d and 1-d tensors are returned as they are)."""
        if self._data.ndim > 2:
            raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is "
                               f"{self._data.ndim}D")
        return self.T

    def flip(self, *dims):
        """The order of the entries reversed along dims."""
        x = self._data
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        axes = norm_axes(dims, x.ndim, 'flip')
        out = np.flip(x, axes) if axes else x
        cdef Tensor t = new_tensor(out)
        share_version(self, t)
        if grad_enabled() and self._requires_grad:
            record(t, TOP_FLIP, self, None, None, None, axes)
        return t

    def fliplr(self):
        return self.flip(1)

    def flipud(self):
        return self.flip(0)

    def roll(self, shifts, dims=None):
        x = self._data
        if dims is None:
            return self.flatten().roll(shifts, 0).reshape(x.shape)
        if isinstance(dims, (tuple, list)):
            out = self
            for s, d in zip(shifts, dims):
                out = out.roll(s, d)
            return out
        d = dim_index(dims, x.ndim, 'roll')
        n = x.shape[d]
        if n == 0:
            return self
        s = _operator_index(shifts) % n
        if s == 0:
            return self
        idx = np.concatenate([np.arange(n - s, n), np.arange(0, n - s)])
        return self.index_select(d, idx)

    def split(self, split_size_or_sections, dim=0):
        """Pieces of split_size along dim (the last may be smaller), or of the listed sizes."""
        x = self._data
        d = dim_index(dim, x.ndim, 'split')
        n = x.shape[d]
        if isinstance(split_size_or_sections, (list, tuple)):
            sizes = [_operator_index(s) for s in split_size_or_sections]
            if sum(sizes) != n:
                raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {n} "
                                   f"(input tensor's size at dimension {d}), but got "
                                   f"split_sizes={sizes}")
        else:
            size = _operator_index(split_size_or_sections)
            if size <= 0 and n:
                raise RuntimeError(f"split expects split_size be non-negative, but got "
                                   f"split_size={size}")
            sizes = [min(size, n - i) for i in range(0, n, size)] if n else [0]
        out = []
        start = 0
        for s in sizes:
            out.append(self[(slice(None),) * d + (slice(start, start + s),)])
            start += s
        return tuple(out)

    def chunk(self, chunks, dim=0):
        """At most chunks pieces of equal size (ceil(n / chunks)) along dim."""
        chunks = _operator_index(chunks)
        if chunks <= 0:
            raise RuntimeError("chunk expects `chunks` to be greater than 0, got: "
                               f"{chunks}")
        x = self._data
        d = dim_index(dim, x.ndim, 'chunk')
        n = x.shape[d]
        size = -(-n // chunks) if n else 0
        if size == 0:
            return (self,) if n == 0 else tuple(self.split(1, d))
        return self.split(size, d)

    def unbind(self, dim=0):
        x = self._data
        d = dim_index(dim, x.ndim, 'unbind')
        return tuple([self[(slice(None),) * d + (i,)] for i in range(x.shape[d])])

    def __getitem__(self, key):
        """Indexing as PyTorch's (and numpy's): ints, slices, None, ..., int64 and bool
        tensors, lists; recorded."""
        key = _index_key(key)
        x = self._data
        first = _integers_first(key, x.ndim)
        if first is not None:       # ints with arrays: PyTorch applies the ints first
            return self[first[0]][first[1]]
        return _unary(self, x, TOP_INDEX, np_asarray(_index_value(x, key)),
                      (key, is_basic_key(key)))

    def __setitem__(self, key, value):
        """Write value into the selected entries (in place; recorded on a tensor that requires
        grad: the overwritten entries pass no gradient)."""
        rebase = _check_inplace(self, value)
        key = _index_key(key)
        v = _as_operand(value, '__setitem__')
        if rebase:
            if isinstance(value, Tensor) and (<Tensor>value)._requires_grad:
                _rebase(self, _put_recorded(self, key, <Tensor>value))
                return
            x = self._data
            new = x.copy()
            kept = np.ones(x.shape, dtype=x.dtype)
            try:
                new[key] = v
                kept[key] = 0
            except IndexError as exc:
                raise IndexError(f"index out of range: {exc}") from None
            except ValueError as exc:
                raise RuntimeError(f"__setitem__: shape mismatch: {exc}") from None
            _rebase(self, local_node('index_put', new, self, lambda: kept, None, None, None,
                                     None))
            return
        try:
            self._data[key] = v
        except IndexError as exc:
            raise IndexError(f"index out of range: {exc}") from None
        except ValueError as exc:
            raise RuntimeError(f"__setitem__: shape mismatch: {exc}") from None
        bump_version(self)

    # --- in-place ops --------------------------------------------------------------------

    def add_(self, other, *, alpha=1):
        if _check_inplace(self, other):
            return _rebase(self, self.add(other, alpha=alpha))
        return _assign(self, self.add(other, alpha=alpha), False)

    def sub_(self, other, *, alpha=1):
        if _check_inplace(self, other):
            return _rebase(self, self.sub(other, alpha=alpha))
        return _assign(self, self.sub(other, alpha=alpha), False)

    def mul_(self, other):
        if _check_inplace(self, other):
            return _rebase(self, self.mul(other))
        return _assign(self, self.mul(other), False)

    def div_(self, other, *, rounding_mode=None):
        if _check_inplace(self, other):
            return _rebase(self, self.div(other, rounding_mode=rounding_mode))
        return _assign(self, self.div(other, rounding_mode=rounding_mode), False)

    def pow_(self, exponent):
        if _check_inplace(self, exponent):
            return _rebase(self, self.pow(exponent))
        return _assign(self, self.pow(exponent), False)

    def clamp_(self, min=None, max=None):
        if _check_inplace(self, None):
            return _rebase(self, self.clamp(min, max))
        return _assign(self, self.clamp(min, max), False)

    clip_ = clamp_

    def masked_fill_(self, mask, value):
        if _check_inplace(self, value):
            return _rebase(self, self.masked_fill(mask, value))
        return _assign(self, self.masked_fill(mask, value), False)

    def relu_(self):
        if _check_inplace(self, None):
            return _rebase(self, self.relu())
        return _assign(self, self.relu(), False)

    def neg_(self):
        if _check_inplace(self, None):
            return _rebase(self, -self)
        return _assign(self, -self, False)

    def abs_(self):
        if _check_inplace(self, None):
            return _rebase(self, self.abs())
        return _assign(self, self.abs(), False)

    def sqrt_(self):
        if _check_inplace(self, None):
            return _rebase(self, self.sqrt())
        return _assign(self, self.sqrt(), False)

    def exp_(self):
        if _check_inplace(self, None):
            return _rebase(self, self.exp())
        return _assign(self, self.exp(), False)

    def log_(self):
        if _check_inplace(self, None):
            return _rebase(self, self.log())
        return _assign(self, self.log(), False)

    def tanh_(self):
        if _check_inplace(self, None):
            return _rebase(self, self.tanh())
        return _assign(self, self.tanh(), False)

    def sigmoid_(self):
        if _check_inplace(self, None):
            return _rebase(self, self.sigmoid())
        return _assign(self, self.sigmoid(), False)

    def zero_(self):
        """Set every entry to 0."""
        if _check_inplace(self, None):
            return _rebase(self, _filled(self, 0, None, 'zero'))
        self._data.fill(0)
        bump_version(self)
        return self

    def fill_(self, value):
        """Set every entry to value."""
        rebase = _check_inplace(self, value)
        v = _as_operand(value, 'fill_')
        if isinstance(v, ndarray) and v.ndim:
            raise RuntimeError(f"fill_ only supports 0-dimension value tensor but got tensor "
                               f"with {v.ndim} dimensions.")
        if rebase:
            return _rebase(self, _filled(self, v, value, 'fill'))
        self._data.fill(v)
        bump_version(self)
        return self

    def copy_(self, src, non_blocking=False):
        """Copy src's values in (broadcast, converted to this dtype)."""
        if _check_inplace(self, src):
            return _rebase(self, _filled(self, _as_operand(src, 'copy_'), src, 'copy'))
        return _assign(self, _as_operand(src, 'copy_'), True)

    def normal_(self, mean=0.0, std=1.0, *, generator=None):
        """Fill with draws from N(mean, std**2)."""
        rebase = _check_inplace(self, None)
        from fastgrad._random import draw_normal
        draws = draw_normal(generator, self._data.shape, _float_value(self._data).dtype, mean,
                            std)
        if rebase:
            return _rebase(self, _filled(self, draws, None, 'normal'))
        return _assign(self, draws, True)

    def uniform_(self, a=0.0, b=1.0, *, generator=None, **bounds):
        """Fill with draws from U(from, to) (uniform_(from=0, to=1))."""
        rebase = _check_inplace(self, None)
        a = bounds.pop('from', a)
        b = bounds.pop('to', b)
        if bounds:
            raise TypeError(f"uniform_() got unexpected keyword arguments {sorted(bounds)}")
        from fastgrad._random import draw_uniform
        draws = draw_uniform(generator, self._data.shape, _float_value(self._data).dtype, a, b)
        if rebase:
            return _rebase(self, _filled(self, draws, None, 'uniform'))
        return _assign(self, draws, True)

    def __iadd__(self, other):
        if _autograd_inplace(self, other):
            return self + other     # recorded out of place: the name is rebound to the result
        return self.add_(other)

    def __isub__(self, other):
        if _autograd_inplace(self, other):
            return self - other
        return self.sub_(other)

    def __imul__(self, other):
        if _autograd_inplace(self, other):
            return self * other
        return self.mul_(other)

    def __itruediv__(self, other):
        if _autograd_inplace(self, other):
            return self / other
        return self.div_(other)

    # --- backward ------------------------------------------------------------------------

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Accumulate d(self)/d(leaf) into every leaf's .grad. A tensor with more than one
        element needs `gradient` (the vector in the vector-Jacobian product). The graph is
        kept (retain_graph is accepted and has no effect): backward may run again. With
        create_graph=True each .grad is a recorded Tensor (graph_rules.py), which can be
        differentiated again."""
        if inputs is not None:
            raise NotImplementedError("backward(inputs=...) is not supported; use "
                                      "fastgrad.autograd.grad")
        if not self._requires_grad:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a "
                               "grad_fn")
        if gradient is None:
            if self._data.size != 1:
                raise RuntimeError("grad can be implicitly created only for scalar outputs")
            seed = _np_empty_like(self._data)     # C-level, unlike np.ones_like
            seed.fill(1.0)
        else:
            seed = as_float_array(gradient, self._data.dtype, True)
            if seed.shape != self._data.shape:
                raise RuntimeError(f"Mismatch in shape: grad_output[0] has a shape of "
                                   f"{list(seed.shape)} and output[0] has a shape of "
                                   f"{list(self._data.shape)}.")
        if create_graph:
            _backward_with_graph(self, gradient if isinstance(gradient, Tensor) and
                                 (<Tensor>gradient)._data.dtype == seed.dtype and
                                 (<Tensor>gradient)._data.shape == seed.shape
                                 else new_tensor(seed))
            return
        if _run_backward == NULL:  # pragma: no cover - fastgrad._tensor imports sweep first
            raise RuntimeError("fastgrad's reverse sweep is not loaded: import fastgrad._tensor")
        _run_backward(self, seed)

    def retain_grad(self):
        raise NotImplementedError("retain_grad(): gradients of non-leaf tensors are not kept "
                                  "(make the tensor a leaf with detach().requires_grad_())")


# ---------------------------------------------------------------------------------------------
# Helpers of the methods above that need the Tensor type


cdef int _backward_with_graph(Tensor root, Tensor seed) except -1:
    """backward(create_graph=True): each leaf's gradient, a recorded Tensor, added to its .grad
    (itself recorded: PyTorch's .grad then has a grad_fn)."""
    from fastgrad._tensor.graph_rules import leaf_gradients
    cdef Tensor leaf
    for item, g in leaf_gradients([root], [seed]):
        leaf = <Tensor>item
        if leaf._grad is None:
            leaf._grad = g
        else:
            leaf._grad = leaf._grad + g
    return 0


cdef bint _autograd_inplace(Tensor self, object other) except -1:
    """For +=, -=, ...: True if the update must be recorded but cannot be done in place (a
    recorded op already uses self: see _check_rebase), so it is done out of place and the name
    is rebound to the result. A leaf that requires grad raises, as PyTorch does."""
    if not grad_enabled():
        return False
    if self._requires_grad and self.op == TOP_LEAF:
        raise RuntimeError("a leaf Variable that requires grad is being used in an in-place "
                           "operation.")
    if not (self._requires_grad or (isinstance(other, Tensor) and
                                    (<Tensor>other)._requires_grad)):
        return False
    try:
        _check_rebase(self)
    except RuntimeError:
        return True
    return False


cdef object _checked(object result, object other, str what):
    if result is NotImplemented:
        raise TypeError(f"{what}(): argument 'other' must be a Tensor or a number, not "
                        f"{type(other).__name__}")
    return result


cdef object _index_array(object index, str what):
    if isinstance(index, Tensor):
        idx = (<Tensor>index)._data
    else:
        idx = np_asarray(index)
    if idx.dtype.kind not in 'iu':
        raise RuntimeError(f"{what}(): Expected dtype int64 for index")
    return idx


cdef object _bool_mask(object mask, str what):
    m = (<Tensor>mask)._data if isinstance(mask, Tensor) else np_asarray(mask)
    if m.dtype is not BOOL:
        raise RuntimeError(f"{what}: expected a bool mask, got dtype {m.dtype}")
    return m


cdef Tensor _pick(Tensor self, object other, bint largest):
    """maximum/minimum: ties split the gradient in half between the two inputs."""
    ops = _operands(self, other, 'maximum' if largest else 'minimum')
    if ops is None:
        raise TypeError(f"{'maximum' if largest else 'minimum'}(): argument 'other' must be a "
                        f"Tensor")
    xv, yv, dt = ops
    try:
        out = np.maximum(xv, yv) if largest else np.minimum(xv, yv)
    except ValueError:
        raise _broadcast_error('maximum' if largest else 'minimum', xv, yv) from None
    out = np_asarray(out)

    # PyTorch's rule: an input gets the gradient unless it lost (half at ties); nan loses to
    # nothing, so where either is nan both get all of it
    def da():
        lost = (xv < yv) if largest else (xv > yv)
        return np.broadcast_to(1.0 - lost - 0.5 * (xv == yv), out.shape).astype(out.dtype)

    def db():
        lost = (yv < xv) if largest else (yv > xv)
        return np.broadcast_to(1.0 - lost - 0.5 * (xv == yv), out.shape).astype(out.dtype)
    return local_node('maximum' if largest else 'minimum', out, self, da, other, db, None, None)


cdef Tensor _moment(Tensor self, object dim, object unbiased, bint keepdim, object correction,
                    object axis, object keepdims, bint root):
    x = self._data
    if x.dtype.kind != 'f':
        raise RuntimeError(f"{'std' if root else 'var'}(): input dtype should be floating point, "
                           f"got {_Tensor_dtype_of(x.dtype).name.capitalize()}")
    if isinstance(dim, bool):           # the legacy var(unbiased) form
        unbiased, dim = dim, None
    if correction is not None and unbiased is not None:
        raise RuntimeError("var: give correction or unbiased, not both")
    c = correction if correction is not None else (1 if unbiased is None or unbiased else 0)
    d = _dim_arg(dim, axis)
    keep = _keep_arg(keepdim, keepdims)
    axes = norm_axes(d, x.ndim, 'std' if root else 'var')
    count = 1
    for ax in axes:
        count *= x.shape[ax]
    denom = max(count - c, 0)
    mean = reduce_sum(x, axes, True) / count if count else np.full(_kept_shape(x.shape, axes),
                                                                   np.nan, x.dtype)
    dev = x - mean
    with _np_errstate(divide='ignore', invalid='ignore'):
        kept = np_asarray(reduce_sum(dev * dev, axes, True) / denom).astype(x.dtype)
        if root:
            kept = np.sqrt(kept)
    out = kept if keep else kept.reshape([x.shape[i] for i in range(x.ndim) if i not in axes])

    def derivative():
        if root:        # 0 where the deviation is 0, as PyTorch's
            return np.where(kept == 0, 0.0, dev / (denom * np.where(kept == 0, 1.0, kept))
                            ).astype(x.dtype, copy=False)
        return dev * (2.0 / denom)
    return local_node('std' if root else 'var', np_asarray(out), self, derivative, None, None,
                      kept.shape, axes, (float(denom),))


cdef object _arg_extreme(Tensor self, object dim, bint keepdim, bint largest):
    x = self._data
    if dim is None:
        if x.size == 0:
            raise RuntimeError("argmax(): Expected reduction dim to be specified for "
                               "input.numel() == 0.")
        flat = x.reshape(-1)
        i = _first_extreme(flat, 0, largest)
        out = np.asarray(i, dtype=I64)
        return new_tensor(out.reshape((1,) * x.ndim) if keepdim else out)
    d = dim_index(dim, x.ndim, 'argmax' if largest else 'argmin')
    if x.ndim == 0:
        return new_tensor(np.zeros((), I64))
    idx = _first_extreme(x, d, largest)
    return new_tensor(np.expand_dims(idx, d).astype(I64) if keepdim else idx.astype(I64))


cdef object _first_extreme(object x, int d, bint largest):
    """argmax/argmin along d; nan counts as the extreme (as in PyTorch)."""
    idx = (np.argmax if largest else np.argmin)(x, axis=d)
    if x.dtype.kind == 'f':
        nan_at = np.isnan(x)
        if nan_at.any():
            idx = np.where(nan_at.any(axis=d), np.argmax(nan_at, axis=d), idx)
    return idx


def where(condition, input, other):
    """input where condition holds, else other (broadcast together); gradients flow to both."""
    m = _bool_mask(condition, 'where')
    ops = _operands(input, other, 'where')
    if ops is None:
        raise TypeError(f"where(): expected tensors or numbers, got {type(input).__name__} and "
                        f"{type(other).__name__}")
    xv, yv, dt = ops
    try:
        out = np_asarray(np.where(m, xv, yv)).astype(dt, copy=False)
    except ValueError:
        raise RuntimeError(f"where: the shapes of condition {m.shape}, input {shape_of(xv)} and "
                           f"other {shape_of(yv)} cannot be broadcast together") from None
    return local_node('where', out, input, lambda: m.astype(dt), other,
                      lambda: (~m).astype(dt), None, None)
