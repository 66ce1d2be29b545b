# The tape: the contract between the modules of the tensor engine.
#
# Every recorded op is one `Tensor` node: an op code (`op`), up to three child slots (`a`, `b`,
# `c`: typed references to the inputs that require grad, None otherwise), the value array
# (`_data`), the gradient buffer (`_grad`), the operands the rules need (`x0`, `x1`) and the op's
# parameters (axes, shapes, index keys) in a per-node side slot (`aux`). What each op code saves
# in these slots is listed next to the code below; its backward and tangent rules (rules.pyx)
# read exactly that. Inputs that do not require grad never enter the tape, and under `no_grad`
# nothing does.
#
# Why nodes are objects and not slots in a C arena (as the scalar engine does): a tensor node's
# payloads are numpy arrays, i.e. Python objects, so an arena would still hold an object per
# slot. With one object per node, CPython's reference count *is* the slot refcount: a node is
# referenced by its user handles and by the parents that use it as a child, edges only point
# from a parent to older children, so the graph is acyclic and is freed exactly when the last
# handle to it dies (memory flat over any number of training steps). Nothing a node holds can
# lead back to it (values and saved operands are float arrays, parameters are tuples of ints,
# slices and index arrays), so the type opts out of the cycle collector, whose scans of every
# step's temporaries otherwise cost ~10% of a small training step. Keep it so: a new op must
# save nothing that can refer to a node, except children in a, b, c (or x0 for the joins).
# Dropping a very deep chain must not recurse in C: `Tensor.__dealloc__` (tensor.pyx) hands
# children that would die with their parent to a pending list, drained by a loop in the
# outermost deallocation.
#
# The sweeps (sweep.pyx) are iterative: a DFS with an explicit stack gives a topological order
# (`mark`, with epoch marks: nothing is cleared between calls; `slot`, each node's position in
# it). The reverse sweep then walks it backwards and hands each node's gradient to its op's
# backward rule, which pushes each contribution to the children. The gradients being summed live
# in the sweep's own state (rules.pxd's Sweep), never on the nodes: a non-leaf's is dropped as
# soon as its contributions are pushed to its children; a leaf's is added to its `.grad` (which
# accumulates over calls) once all of it is known. Sweeps over shared nodes, in several threads
# or nested, therefore never see each other's partial sums (docs/threads.md). The forward-mode
# sweep (tensor_jvp) walks the same order front to back; tangents live in its own dict, never on
# the nodes. backward() writes only leaves' gradients, never saved operands or parameters, so
# either sweep may run any number of times over a recorded graph.
#
# Memory safety. No input, pickle, user callback or thread interleaving may crash the process:
# every index the engine dereferences was validated where it entered (Tensor's conversions,
# each op, pickling.pyx for pickles) or is checked where it is used. The modules keep Cython's
# bounds checks on for Python tuples and lists (boundscheck and wraparound, at the top of each
# .pyx: they cost nothing measurable next to numpy calls), and the raw-pointer loops of loops.pyx
# check what they index. An op reads each input's array once and records what it computed with
# (user code run by a conversion may rebind an input's .data meanwhile). Saved operands that a
# loop trusts for indices (cross_entropy's targets) are private copies. The value of a recorded
# node keeps its shape and dtype (the .data setter refuses others): its rules rely on them; a
# leaf's may change, and the sweep refuses a gradient that no longer fits (RuntimeError).
from libc.stdint cimport uint8_t, uint64_t

from fastgrad._tensor.grad_mode cimport grad_enabled

# Op codes, and what each node saves (children in a, b, c; "value" is the node's own _data).
cdef enum:
    TOP_LEAF = 0        # an input: no children, nothing saved
    TOP_ADD             # a + b: nothing saved
    TOP_SUB             # a - b: nothing saved
    TOP_MUL             # a * b: x0, x1 the operands (arrays or Python floats)
    TOP_DIV             # a / b: x0, x1 the operands
    TOP_POW             # a ** b: x0 base, x1 exponent
    TOP_NEG             # -a: x0 the input
    TOP_MATMUL          # a @ b: x0, x1 the operands (numpy's matmul rules)
    TOP_SUM             # a.sum(axis): x0 the input; aux the keepdims shape of the result
    TOP_MEAN            # a.mean(axis): x0; aux (keepdims shape, count of elements averaged)
    TOP_RESHAPE         # x0 the input (for its shape)
    TOP_TRANSPOSE       # x0; aux the inverse permutation
    TOP_INDEX           # a[key]: x0; aux (key, basic); key holds no Tensor or list
    TOP_CONCAT          # x0 the tuple of children (a Tensor or None per input); aux (axis, offsets)
    TOP_STACK           # x0 the tuple of children; aux (axis,)
    TOP_RELU            # x0 the input (the rules use the value)
    TOP_TANH            # x0 the input
    TOP_EXP             # x0 the input
    TOP_LOG             # x0 the input
    TOP_SIGMOID         # x0 the input
    TOP_SOFTMAX         # x0 the input; aux the axes
    TOP_LOG_SOFTMAX     # x0 the input; aux the axes
    TOP_LINEAR          # a input, b weight, c bias: x0 input value, x1 weight value
    TOP_MSE             # a input, b target: x0 input - target; aux the element count
    TOP_CROSS_ENTROPY   # a logits: x0 shifted logits z, x1 integer targets; aux rows' logsumexp(z)
    TOP_BCE             # a input, b target: x0 p, x1 t; aux (count, clamped log p, clamped log 1-p)
    TOP_LOCAL           # any op whose Jacobian is diagonal after broadcasting (elementwise math,
                        # where, clamp, maximum, and reductions such as var, norm, logsumexp):
                        # x0 = d value/d a, x1 = d value/d b (arrays or floats, computed when the
                        # op ran, private); aux a LocalOp (its name, and for a reduction the
                        # keepdim shape of the value and the reduced axes)
    TOP_GATHER          # torch.gather(a, dim, index): x0 the index (a private intp array); aux
                        # (dim, a's shape)
    TOP_CUMSUM          # a.cumsum(dim): aux dim
    TOP_EXPAND          # a broadcast to the value's shape (expand, broadcast_to): nothing saved
    TOP_REPEAT          # a.repeat(*reps): aux (reps, a's shape padded with leading 1s to len(reps))
    TOP_FLIP            # a.flip(dims): aux the dims
    TOP_CAST            # a's value as another dtype (to, float, double, type_as): nothing saved
    TOP_CONV            # conv2d (conv.pyx): a input, b weight, c bias; x0 the input's columns
                        # (im2col, CONV_LAYOUT: windows.pxd) if b, x1 the weight's value if a;
                        # aux (geometry tuple: windows.pxd's Grid2d, groups)
    TOP_CONV_TRANSPOSE  # conv_transpose2d: a, b, c as conv; x0 the input as (C, N*H*W) if b,
                        # x1 the weight's value if a; aux (geometry of the convolution it
                        # transposes: the image is the output, groups, input channels)
    TOP_UNFOLD          # F.unfold: aux the geometry
    TOP_FOLD            # F.fold: aux the geometry
    TOP_MAX_POOL        # max_pool2d, adaptive_max_pool2d: x0 the flat indices (private int64);
                        # aux the input's shape
    TOP_AVG_POOL        # avg_pool2d, adaptive_avg_pool2d: aux (hstart, hcount, wstart, wcount,
                        # divisor, H, W): the windows (windows.pxd) and the (oh, ow) divisors
    TOP_LINEAR_MAP      # a linear map of another node, made by create_graph's rules: the
                        # Jacobian of node x0 with respect to its child slot k (x0's other
                        # operands held fixed), applied to a (transposed: its adjoint, the
                        # backward rule; else the tangent rule); aux (k, transposed). x0 is an
                        # older node, so the graph stays acyclic (rules.pyx, graph_rules.py)
    TOP_COUNT           # the number of op codes

# PyTorch's version counter: how many in-place ops changed a value. Tensors that share memory
# through a view op (reshape, view, transpose, indexing with slices, expand, flip, detach) share
# one counter, so changing any of them is seen by the nodes that saved another. A tensor's
# counter is its own _nver field until a view is made of it; then both hold the same
# VersionCounter (_vc), which starts at the tensor's count.
cdef class VersionCounter:
    cdef unsigned int n         # in-place changes of the shared memory so far


# (tensor.pyx defines it @cython.no_gc, as explained above, with a freelist of 256 nodes)
cdef class Tensor:
    cdef object _data           # the value: an ndarray, float32 or float64
    cdef object _grad           # a leaf's accumulated gradient (ndarray) or None
    cdef Tensor a, b, c         # child slots: the inputs that require grad (None otherwise)
    cdef object x0, x1          # the operand values the rules need (see the op codes)
    cdef object aux             # the op's parameters: axes, shapes, index key (see the op codes)
    cdef uint8_t op             # TOP_*; TOP_LEAF for inputs
    cdef bint _requires_grad    # ops on this tensor are recorded
    cdef uint64_t mark          # DFS marks (sweep.pyx): 2*epoch visited, 2*epoch+1 emitted
    cdef Py_ssize_t slot        # the node's position in the latest DFS's order (sweep.pyx)
    cdef unsigned int _nver     # in-place changes of the value so far, while _vc is None
    cdef VersionCounter _vc     # the counter shared with views (see VersionCounter), or None
    cdef Tensor s0, s1          # the tensors whose values the op saved as x0, x1 (if the rules
                                # read them: rules.pyx's _check_saved), else None
    cdef unsigned int v0, v1    # their versions when the op ran
    cdef unsigned int vself     # this node's own version when its op ran
    cdef Py_ssize_t _parents    # how many recorded nodes hold this one as a child (a, b, c or
                                # a join's x0): an in-place op may rewrite a node's history
                                # only while nothing recorded depends on it

    cdef Tensor _cast(self, object dt, bint copy)    # self as dtype dt (recorded if floating)


# ---------------------------------------------------------------------------------------------
# What the other modules use of tensor.pyx

cdef tuple op_names                 # the op codes' names: 'leaf', 'add', ... (Tensor._op)
cdef object ndarray                 # np.ndarray
cdef object F64, F32                # np.dtype(np.float64), np.dtype(np.float32)
cdef object Real                    # numbers.Real
cdef object Integral                # numbers.Integral
cdef object np_bool                 # np.bool_
cdef object np_asarray              # np.asarray
cdef object np_add_reduce           # np.add.reduce: what ndarray.sum calls, minus a wrapper
cdef object np_max_reduce           # np.maximum.reduce

# An ndarray of a supported dtype from user data by PyTorch's rules (Python floats -> the default
# dtype, ints -> int64, bools -> bool; numpy data keeps its dtype), converted to dtype if given
# (anything fastgrad.dtype's to_dtype accepts); TypeError for anything else.
cdef object as_array(object data, object dtype, bint copy)
# The same, floating: float32 stays float32, other dtypes become float64 unless dtype is given.
cdef object as_float_array(object data, object dtype, bint copy)
# The numpy dtype of a user's dtype argument.
cdef object numpy_dtype(object dtype)
# An ndarray operand of an op (not float32/float64) as a plain array of a supported dtype.
cdef object operand_array(object o)
# The dtype PyTorch's promotion gives an op on two payloads (arrays or Python numbers).
cdef object result_dtype(object xv, object yv)
# dim as a non-negative axis of a tensor with ndim dims (IndexError as PyTorch's if out of range)
cdef int dim_index(object d, int ndim, str what) except -100
# torch.gather's selection as a numpy index tuple (index idx along dim)
cdef tuple gather_index(object idx, int dim)
# True if an index key, as Tensor.__getitem__ stores it, never selects an element twice.
cdef bint is_basic_key(object key)
# axis (None, an int or a tuple, negatives allowed) as a sorted tuple of distinct axes.
cdef tuple norm_axes(object axis, int ndim, str what)

# Tensor.backward() runs the reverse sweep through this hook, which sweep.pyx installs when it
# is imported (the handle needs the sweep, and the sweep needs the Tensor type: the hook keeps
# the modules' imports one-way, tensor <- rules <- sweep).
ctypedef int (*backward_sweep)(Tensor root, object seed) except -1
cdef void install_backward_sweep(backward_sweep sweep) noexcept
# Likewise Tensor.__reduce__ (pickle, copy.deepcopy) through the one of pickling.pyx.
ctypedef object (*tensor_reducer)(Tensor t)
cdef void install_tensor_reducer(tensor_reducer reducer) noexcept


# ---------------------------------------------------------------------------------------------
# Building nodes. Inline: every op calls these, so they are compiled into each module that
# records ops (tensor.pyx, functional.pyx) instead of being calls into another module.

cdef inline object reduce_sum(object x, object axis, object keepdims):
    return np_add_reduce(x, axis, None, None, keepdims)


cdef inline object reduce_max(object x, object axis, object keepdims):
    return np_max_reduce(x, axis, None, None, keepdims)


cdef inline tuple shape_of(object v):
    """The shape of an operand payload (a Python float has shape ())."""
    return v.shape if isinstance(v, ndarray) else ()


cdef inline object operand(object o):
    """The payload of an operator's operand: the array of a Tensor, a Python int, float or bool
    for numbers, an ndarray of a supported dtype for arrays; None for anything else (the
    operator returns NotImplemented)."""
    if isinstance(o, Tensor):
        return (<Tensor>o)._data
    if type(o) is float or type(o) is int or type(o) is bool:
        return o
    if type(o) is ndarray:
        dt = o.dtype
        if dt is F64 or dt is F32:          # the common case, without the general checks
            return o
        return operand_array(o)
    if isinstance(o, ndarray):
        return operand_array(o)
    if isinstance(o, np_bool):
        return bool(o)
    if isinstance(o, Integral):
        return int(o)
    if isinstance(o, Real):
        return float(o)
    return None


cdef inline Tensor grad_child(object o):
    """o as a child slot: only tensors that require grad are recorded."""
    if isinstance(o, Tensor) and (<Tensor>o)._requires_grad:
        return <Tensor>o
    return None


cdef inline Tensor new_tensor(object data):
    """A leaf holding data (numpy's 0-d results, which are scalars, become 0-d arrays)."""
    cdef Tensor t = Tensor.__new__(Tensor)
    t._data = data if type(data) is ndarray else np_asarray(data)
    return t


cdef inline Tensor wrap_grad(object g):
    """A gradient array as the Tensor that .grad returns."""
    return new_tensor(g)


cdef inline unsigned int version_of(Tensor t) noexcept:
    """t's version counter (PyTorch's t._version)."""
    return t._vc.n if t._vc is not None else t._nver


cdef inline void bump_version(Tensor t) noexcept:
    """Count an in-place change of t's value (seen by every view sharing its memory)."""
    if t._vc is not None:
        t._vc.n += 1
    else:
        t._nver += 1


cdef inline void share_version(Tensor base, Tensor view):
    """view is a view of base's memory: from now on they count in-place changes together."""
    cdef VersionCounter vc = base._vc
    if vc is None:
        vc = VersionCounter.__new__(VersionCounter)
        vc.n = base._nver
        base._vc = vc
    view._vc = vc


cdef inline bint recording(Tensor a, Tensor b) noexcept:
    """Whether an op with these child slots is recorded."""
    return grad_enabled() and (a is not None or b is not None)


cdef inline Tensor record(Tensor t, uint8_t op, Tensor a, Tensor b, object x0, object x1,
                          object aux):
    """Make t the node of op (its slots as listed with the op codes); returns t."""
    t.op = op
    t.a = a
    t.b = b
    if a is not None:
        a._parents += 1
    if b is not None:
        b._parents += 1
    t.x0 = x0
    t.x1 = x1
    t.aux = aux
    t._requires_grad = True
    t.vself = version_of(t)
    return t
