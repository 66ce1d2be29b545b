# cython: boundscheck=True, wraparound=True
# (indexing of Python objects stays checked in the tensor engine: see tensor.pxd)
# The Tensor handle: the node type of the tape (its fields and invariants: tensor.pxd), its
# conversions from user data, its operators and the ops recorded by its methods.
#
# An op computes its value with numpy (or a compiled loop, loops.pyx) and, when recording,
# makes the result a node that saves what its rules need (rules.pyx; the slots each op code
# fills are listed in tensor.pxd). The ops that are functions rather than methods (linear, the
# losses, concatenate, stack) are in functional.pyx; the sweeps over the recorded graph
# (backward, tensor_jvp) in sweep.pyx.
cimport cython
from cpython.object cimport PyObject
from libc.stdint cimport uint8_t

from fastgrad._tensor.grad_mode cimport grad_enabled
from fastgrad._tensor.loops cimport relu_value

import numbers
import operator

import numpy as np

# Shared with the other modules (declared in tensor.pxd)
ndarray = np.ndarray
F64 = np.dtype(np.float64)
F32 = np.dtype(np.float32)
cdef object F16 = np.dtype(np.float16)
Real = numbers.Real
np_asarray = np.asarray
np_add_reduce = np.add.reduce
np_max_reduce = np.maximum.reduce
op_names = (
    'leaf', 'add', 'sub', 'mul', 'div', 'pow', 'neg', 'matmul', 'sum', 'mean', 'max',
    'reshape', 'transpose', 'getitem', 'concatenate', 'stack', 'relu', 'tanh', 'exp', 'log',
    'sigmoid', 'softmax', 'log_softmax', 'linear', 'mse_loss', 'cross_entropy',
    'binary_cross_entropy')
assert len(op_names) == TOP_COUNT
OP_NAMES = op_names  # the same, for Python (a test checks it against the op enum)

cdef object _np_exp = np.exp
cdef object _np_log = np.log
cdef object _np_tanh = np.tanh
cdef object _np_abs = np.abs
cdef object _np_empty_like = np.empty_like
cdef object _operator_index = operator.index

# The reverse sweep, installed by sweep.pyx when it is imported (see tensor.pxd).
cdef backward_sweep _run_backward = NULL


cdef void install_backward_sweep(backward_sweep sweep) noexcept:
    global _run_backward
    _run_backward = sweep


# Tensor.__reduce__, installed by pickling.pyx when it is imported (see tensor.pxd).
cdef tensor_reducer _reduce = NULL


cdef void install_tensor_reducer(tensor_reducer reducer) noexcept:
    global _reduce
    _reduce = reducer


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


# ---------------------------------------------------------------------------------------------
# Conversions (the facade's checks: the sweep trusts what these produced)


cdef object _float_dtype(object dtype):
    """float32 or float64 from a user's dtype argument; TypeError for anything else."""
    try:
        d = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"fastgrad.Tensor: dtype must be float32 or float64, not {dtype!r}")
    if d == F64:
        return F64
    if d == F32:
        return F32
    raise TypeError(f"fastgrad.Tensor: dtype must be float32 or float64, not {d}")


cdef object as_float_array(object data, object dtype, bint copy):
    """A float32/float64 ndarray from user data: float32 stays float32, everything else numeric
    becomes float64. Strings, objects, complex numbers raise TypeError."""
    cdef object arr
    if isinstance(data, Tensor):
        arr = (<Tensor>data)._data
    elif type(data) is ndarray:
        arr = data
    elif isinstance(data, ndarray):
        # a plain view: no subclass's operators (np.matrix's * is a matrix product) or hooks
        # (__array_ufunc__, __del__) travel into the engine's arrays
        arr = np_asarray(data)
    elif isinstance(data, (str, bytes)) or data is None:
        raise TypeError(f"fastgrad.Tensor: cannot make a tensor from {type(data).__name__}")
    else:
        try:
            arr = np_asarray(data)
        except (ValueError, TypeError) as exc:
            raise TypeError(f"fastgrad.Tensor: cannot make a tensor from this "
                            f"{type(data).__name__}: {exc}") from None
    kind = arr.dtype.kind
    if kind not in 'fiub':
        raise TypeError(f"fastgrad.Tensor: unsupported dtype {arr.dtype} "
                        f"(from {type(data).__name__}); use real numbers")
    if dtype is None:
        dtype = F32 if arr.dtype == F32 else F64
    else:
        dtype = _float_dtype(dtype)
    if copy:
        return np.array(arr, dtype=dtype, copy=True)
    if type(arr) is not ndarray:    # e.g. what a user's __array__ returned
        arr = np_asarray(arr)
    return arr if arr.dtype == dtype else arr.astype(dtype)


cdef object operand_array(object o):
    if o.dtype == F16:
        return np.array(o, dtype=F32)       # exact, and a plain array
    return as_float_array(o, None, False)


# ---------------------------------------------------------------------------------------------
# Shapes and axes


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
# The operators and the unary ops


cdef object _binary(uint8_t op, object x, object y):
    """x op y with numpy broadcasting; x or y is a Tensor, the other may be a number/array."""
    xv = operand(x)
    if xv is None:
        return NotImplemented
    yv = operand(y)
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
            raise ValueError(f"matmul: shapes {shape_of(xv)} and {shape_of(yv)} are not "
                             f"aligned (numpy: {exc})") from None
        raise ValueError(f"{op_names[op]}: cannot broadcast shapes {shape_of(xv)} and "
                         f"{shape_of(yv)}") from None
    cdef Tensor t = new_tensor(out)
    cdef Tensor a = grad_child(x)
    cdef Tensor b = grad_child(y)
    if recording(a, b):
        if op == TOP_ADD or op == TOP_SUB:
            xv = yv = None          # backward needs no operand values
        record(t, op, a, b, xv, yv, None)
    return t


cdef Tensor _unary(Tensor x, object xv, uint8_t op, object out, object aux):
    """The node of a one-input op: out computed from xv, x's array as the op read it."""
    cdef Tensor t = new_tensor(out)
    if grad_enabled() and x._requires_grad:
        record(t, op, x, None, xv, None, aux)
    return t


def _sigmoid_array(x):
    # exp never overflows: 1/(1+e) for x >= 0 and e/(1+e) below, with e = exp(-|x|). The two
    # cases are blended with a 0/1 mask (exact: r*(1 + 0*e) = r, r*(0 + 1*e) = e*r) because
    # np.where's per-element branch is several times slower on large arrays.
    e = _np_exp(-_np_abs(x))
    r = 1.0 / (1.0 + e)
    m = (x >= 0).astype(x.dtype)
    return r * (m + (1.0 - m) * e)


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
        return np.array((<Tensor>k)._data)
    if isinstance(k, (np.bool_, bool)):
        return bool(k)
    if isinstance(k, (ndarray, list, tuple)):
        return np.array(k)          # a plain array, the caller's no longer
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


# ---------------------------------------------------------------------------------------------
# The Tensor


@cython.no_gc                   # see tensor.pxd: nodes cannot form cycles
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

    # The fields, with what they hold: tensor.pxd.

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
        self._data = as_float_array(data, dtype, True)
        self._requires_grad = bool(requires_grad)

    # --- properties ------------------------------------------------------------------------

    @property
    def data(self):
        """The value as a numpy array (shared, not copied)."""
        return self._data

    @data.setter
    def data(self, value):
        if type(value) is ndarray and (value.dtype is F64 or value.dtype is F32):
            arr = value
        else:
            arr = as_float_array(value, None, False)
        if self.op != TOP_LEAF:
            old = self._data
            if arr.shape != old.shape or arr.dtype != old.dtype:
                raise RuntimeError(f"data: the value of a tensor computed by {self._op} keeps its "
                                   f"shape {old.shape} and dtype {old.dtype} (its backward "
                                   f"depends on them); got shape {arr.shape}, dtype {arr.dtype}")
        self._data = arr

    @property
    def grad(self):
        """The accumulated gradient (numpy array) of a leaf after backward(), else None."""
        return self._grad

    @grad.setter
    def grad(self, value):
        if value is None:
            self._grad = None
            return
        g = as_float_array(value, self._data.dtype, True)
        if g.shape != self._data.shape:
            raise ValueError(f"grad of shape {g.shape} does not match tensor shape "
                             f"{self._data.shape}")
        self._grad = g

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
        return op_names[self.op]

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
        return new_tensor(self._data)

    def __repr__(self):
        body = np.array2string(self._data, separator=', ', prefix='Tensor(')
        extra = ''
        if self._data.dtype == F32:
            extra += ', dtype=float32'
        if self._requires_grad:
            extra += ', requires_grad=True' if self.op == TOP_LEAF else \
                f', grad_fn={op_names[self.op]}'
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
        x = self._data
        return _unary(self, x, TOP_NEG, -x, None)

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
        x = self._data
        return _unary(self, x, TOP_RELU, relu_value(x), None)

    def tanh(self):
        """Hyperbolic tangent elementwise."""
        x = self._data
        return _unary(self, x, TOP_TANH, _np_tanh(x), None)

    def exp(self):
        """e**x elementwise."""
        x = self._data
        return _unary(self, x, TOP_EXP, _np_exp(x), None)

    def log(self):
        """Natural logarithm elementwise."""
        x = self._data
        return _unary(self, x, TOP_LOG, _np_log(x), None)

    def sigmoid(self):
        """1 / (1 + e**-x) elementwise, without overflow."""
        x = self._data
        return _unary(self, x, TOP_SIGMOID, _sigmoid_array(x), None)

    def softmax(self, axis=-1):
        """exp(x) normalised along axis (computed from x - max)."""
        x = self._data
        ax = norm_axes(axis, x.ndim, 'softmax')
        e = _np_exp(x - reduce_max(x, ax, True))
        return _unary(self, x, TOP_SOFTMAX, e / reduce_sum(e, ax, True), ax)

    def log_softmax(self, axis=-1):
        """log(softmax(x)) along axis, computed stably."""
        x = self._data
        ax = norm_axes(axis, x.ndim, 'log_softmax')
        z = x - reduce_max(x, ax, True)
        return _unary(self, x, TOP_LOG_SOFTMAX, z - _np_log(reduce_sum(_np_exp(z), ax, True)),
                      ax)

    # --- reductions ----------------------------------------------------------------------

    def sum(self, axis=None, keepdims=False):
        """Sum over axis (None: all; an int or a tuple, negatives allowed)."""
        x = self._data
        if axis is None:        # the common case, without numpy's tuple-axis machinery
            return _unary(self, x, TOP_SUM, reduce_sum(x, None, keepdims), (1,) * x.ndim)
        axes = norm_axes(axis, x.ndim, 'sum')
        return _unary(self, x, TOP_SUM, reduce_sum(x, axes, keepdims),
                      _kept_shape(x.shape, axes))

    def mean(self, axis=None, keepdims=False):
        """Mean over axis (None: all; an int or a tuple, negatives allowed)."""
        x = self._data
        axes = norm_axes(axis, x.ndim, 'mean')
        count = 1
        for ax in axes:
            count *= x.shape[ax]
        if count == 0:
            raise ValueError(f"mean of an empty selection (shape {x.shape}, axis {axis})")
        out = reduce_sum(x, None if axis is None else axes, keepdims)
        return _unary(self, x, TOP_MEAN, out / count,
                      (_kept_shape(x.shape, axes), count))

    def max(self, axis=None, keepdims=False):
        """Maximum over axes (torch.amax): the gradient is shared evenly between ties."""
        x = self._data
        axes = norm_axes(axis, x.ndim, 'max')
        if x.size == 0:
            raise ValueError(f"max of an empty tensor (shape {x.shape})")
        return _unary(self, x, TOP_MAX, reduce_max(x, axes, keepdims),
                      (_kept_shape(x.shape, axes), axes))

    # --- shape ops -----------------------------------------------------------------------

    def reshape(self, *shape):
        """The same data in a new shape: reshape(2, 3) or reshape((2, 3)); -1 infers one size."""
        x = self._data
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        try:
            out = x.reshape(shape)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} "
                             f"into shape {shape}") from None
        return _unary(self, x, TOP_RESHAPE, out, None)

    def view(self, *shape):
        """reshape (PyTorch's name)."""
        return self.reshape(*shape)

    def flatten(self):
        """reshape(-1)."""
        return self.reshape(-1)

    def transpose(self, *axes):
        """numpy's transpose: no arguments reverses the axes, else a full permutation."""
        x = self._data
        cdef int nd = x.ndim
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        if not axes:
            perm = tuple(range(nd - 1, -1, -1))
        else:
            if len(axes) != nd:
                raise ValueError(f"transpose: axes {axes} do not match a tensor of shape "
                                 f"{x.shape}")
            perm = tuple([a + nd if a < 0 else a for a in [_operator_index(a) for a in axes]])
            if sorted(perm) != list(range(nd)):
                raise ValueError(f"transpose: {axes} is not a permutation of the axes of a "
                                 f"tensor of shape {x.shape}")
        inverse = [0] * nd
        for i in range(nd):
            inverse[perm[i]] = i
        return _unary(self, x, TOP_TRANSPOSE, x.transpose(perm), tuple(inverse))

    def permute(self, *dims):
        """transpose with a full permutation (PyTorch's name)."""
        return self.transpose(*dims)

    def __getitem__(self, key):
        """numpy indexing (slices, ints, None, ..., integer and boolean arrays), recorded."""
        key = _index_key(key)
        x = self._data
        return _unary(self, x, TOP_INDEX, x[key], (key, is_basic_key(key)))

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
            seed = as_float_array(grad, self._data.dtype, True)
            if seed.shape != self._data.shape:
                raise ValueError(f"backward(): grad of shape {seed.shape} does not match the "
                                 f"tensor's shape {self._data.shape}")
        if _run_backward == NULL:  # pragma: no cover - fastgrad._tensor imports sweep first
            raise RuntimeError("fastgrad's reverse sweep is not loaded: import fastgrad._tensor")
        _run_backward(self, seed)
