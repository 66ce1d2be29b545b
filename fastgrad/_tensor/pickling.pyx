# cython: boundscheck=True, wraparound=True
# (indexing of Python objects stays checked in the tensor engine: see tensor.pxd)
# Tensors to and from pickles, and through copy.deepcopy, which uses the same protocol.
#
# A Tensor pickles as a call restore_tensor(cls, prefix, fields...) whose fields are those of
# tensor.pxd: the value, the gradient, the op code, the child slots (Tensors: pickle keeps their
# identity), the saved operands and the parameters. Nothing of a sweep is pickled (DFS marks
# from one process meant nothing in another). A graph of any depth pickles without recursion:
# the first node of a graph that is reduced lists all the inner nodes below it, children
# first, in `prefix`, which the pickler therefore writes before the node's own fields; when it
# reaches each of them, that node's children are already written (pickle's memo) and it lists
# nothing (it finds itself in the thread's set of nodes already listed). restore_tensor ignores
# prefix.
#
# Unpickling validates everything before it builds a node: the class, the op code, which
# children the op may have and their types, the arrays' types, dtypes and shapes against the
# node's value, and each op's parameters (pickle.UnpicklingError for anything else). Arrays a
# loop indexes with (cross_entropy's targets, index keys) are copied, so nothing else in the
# pickle can share them. A new op code needs its branch in _check_node (the tests pickle a graph
# of every op, and a node whose op has no branch is refused).
from libc.stdint cimport uint8_t

from fastgrad._tensor.tensor cimport *

import pickle
import threading

import numpy as np

from fastgrad._tensor import dtype as _dtypes

cdef object _UnpicklingError = pickle.UnpicklingError
cdef object _intp = np.dtype(np.intp)
cdef object _VALUE_DTYPES = frozenset(_dtypes._BY_NUMPY)
cdef object _listed = threading.local()     # .nodes: ids of the nodes listed by a prefix


cdef object reduce_tensor(Tensor t):
    """What Tensor.__reduce__ returns (see above)."""
    cdef set listed = getattr(_listed, 'nodes', None)
    prefix = None
    if t.op != TOP_LEAF:
        if listed is not None and id(t) in listed:
            listed.discard(id(t))
        else:
            prefix = _inner_nodes_below(t)
            _listed.nodes = {id(n) for n in prefix}
    _check_picklable(t)
    if prefix is not None:
        for n in prefix:
            _check_picklable(<Tensor>n)
    grad = None if t._grad is None else (<Tensor>t._grad)._data
    fields = (type(t), prefix, t._data, grad, t._requires_grad, t.op, t.a, t.b, t.c, t.x0,
              t.x1, t.aux)
    state = getattr(t, '__dict__', None)
    if state:
        return (restore_tensor, fields, state)
    return (restore_tensor, fields)


cdef int _check_picklable(Tensor n) except -1:
    """The shape ops added for PyTorch's API (after TOP_LOCAL) are not in the pickle format:
    their graphs are refused when pickled (a leaf, or .detach(), pickles)."""
    if n.op > TOP_LOCAL:
        raise pickle.PicklingError(
            f"cannot pickle a tensor whose recorded graph holds the op '{n._op}': pickle "
            f"t.detach() (and recompute the graph after loading)")
    return 0


cdef list _inner_nodes_below(Tensor root):
    """The inner nodes below root (not root), children first: an explicit-stack DFS. It keeps
    its own visited set: the nodes' marks belong to the sweeps."""
    cdef list order = []
    cdef set seen = {id(root)}
    cdef list stack = [(root, False)]
    cdef Tensor n
    while stack:
        item, expanded = stack.pop()
        n = <Tensor>item
        if expanded:
            if n is not root:
                order.append(n)
            continue
        stack.append((n, True))
        kids = n.x0 if (n.op == TOP_CONCAT or n.op == TOP_STACK) else (n.a, n.b, n.c)
        for k in kids:
            if k is not None and (<Tensor?>k).op != TOP_LEAF and id(k) not in seen:
                seen.add(id(k))
                stack.append((k, False))
    return order


# ---------------------------------------------------------------------------------------------
# Unpickling


cdef int _check(bint ok, str what) except -1:
    if not ok:
        raise _UnpicklingError(f"corrupt fastgrad Tensor pickle: {what}")
    return 0


cdef bint _is_float_array(object v):
    return type(v) is ndarray and (v.dtype == F64 or v.dtype == F32)


cdef bint _is_operand(object v):
    """A saved elementwise operand: a float array or a Python number."""
    return type(v) is float or type(v) is int or type(v) is bool or _is_float_array(v)


cdef bint _is_value_array(object v):
    """A leaf's value: an array of a dtype a tensor may hold."""
    return type(v) is ndarray and v.dtype in _VALUE_DTYPES


cdef bint _is_int(object v):
    return type(v) is int


cdef bint _is_child(object k):
    return k is None or (isinstance(k, Tensor) and _is_float_array((<Tensor>k)._data))


cdef tuple _kept_shape_of(object kshape, tuple shape, object size):
    """kshape validated as a keepdims shape of shape (each length 1 or shape's), for a result of
    `size` elements."""
    _check(type(kshape) is tuple and len(kshape) == len(shape), "reduced shape")
    cdef Py_ssize_t i
    count = 1
    for i in range(len(shape)):
        _check(_is_int(kshape[i]) and (kshape[i] == 1 or kshape[i] == shape[i]), "reduced shape")
        count *= kshape[i]
    _check(count == size, "reduced shape")
    return kshape


cdef tuple _axes_of(object axes, int ndim):
    _check(type(axes) is tuple and all([_is_int(a) for a in axes]), "axes")
    _check(norm_axes(axes, ndim, 'unpickle') == axes, "axes")
    return axes


cdef tuple _broadcast(tuple s0, tuple s1):
    """numpy's broadcast of two shapes (None if they do not broadcast)."""
    if s0 == s1 or not s1:
        return s0
    if not s0:
        return s1
    try:
        return np.broadcast_shapes(s0, s1)
    except ValueError:
        return None


cdef tuple _matmul_shape(tuple s0, tuple s1):
    """numpy's matmul result shape, or an UnpicklingError."""
    _check(len(s0) >= 1 and len(s1) >= 1, "matmul operands")
    m0 = s0 if len(s0) >= 2 else (1,) + s0
    m1 = s1 if len(s1) >= 2 else s1 + (1,)
    _check(m0[len(m0) - 1] == m1[len(m1) - 2], "matmul operands")
    out = _broadcast(m0[:len(m0) - 2], m1[:len(m1) - 2])
    _check(out is not None, "matmul operands")
    if len(s0) >= 2:
        out = out + (m0[len(m0) - 2],)
    if len(s1) >= 2:
        out = out + (m1[len(m1) - 1],)
    return out


cdef object _index_key_of(object key):
    """An index key validated part by part (as Tensor.__getitem__ stores it), arrays copied."""
    parts = key if type(key) is tuple else (key,)
    out = []
    for k in parts:
        if k is None or k is Ellipsis or _is_int(k) or type(k) is bool:
            out.append(k)
        elif type(k) is slice:
            for f in (k.start, k.stop, k.step):
                _check(f is None or _is_int(f), "index key")
            out.append(k)
        else:
            _check(type(k) is ndarray and k.dtype.kind in 'iub', "index key")
            out.append(np.array(k))
    return tuple(out) if type(key) is tuple else out[0]


cdef int _check_node(uint8_t op, object data, Tensor a, Tensor b, Tensor c, object x0,
                     object x1, object aux) except -1:
    """The fields of a node of op as its op records them (tensor.pxd), against its value."""
    cdef tuple shape = data.shape
    cdef bint joined = op == TOP_CONCAT or op == TOP_STACK
    if joined:
        _check(a is None and b is None and c is None and x1 is None, "join fields")
        _check(type(x0) is tuple and len(x0) >= 1 and all([_is_child(k) for k in x0])
               and any([k is not None for k in x0]), "join children")
        _check(type(aux) is tuple and len(aux) == (2 if op == TOP_CONCAT else 1)
               and _is_int(aux[0]) and 0 <= aux[0] < len(shape), "join parameters")
        axis = aux[0]
        if op == TOP_STACK:
            _check(len(x0) == shape[axis], "stack parameters")
        else:
            offsets = aux[1]
            _check(type(offsets) is tuple and len(offsets) == len(x0) + 1
                   and all([_is_int(o) for o in offsets]) and offsets[0] == 0
                   and offsets[len(offsets) - 1] == shape[axis], "concatenate offsets")
            _check(all([offsets[i] <= offsets[i + 1] for i in range(len(x0))]),
                   "concatenate offsets")
        return 0
    _check(a is not None or b is not None or c is not None, "an op without inputs")
    if op != TOP_LINEAR:
        _check(c is None, "a third input")
    if op == TOP_ADD or op == TOP_SUB:
        _check(x0 is None and x1 is None and aux is None, "add/sub fields")
    elif op == TOP_MUL or op == TOP_DIV or op == TOP_POW:
        _check(_is_operand(x0) and _is_operand(x1) and aux is None, "operands")
        _check(_broadcast(shape_of(x0), shape_of(x1)) == shape, "operand shapes")
    elif op == TOP_MATMUL:
        _check(_is_float_array(x0) and _is_float_array(x1) and aux is None, "matmul operands")
        _check(_matmul_shape(x0.shape, x1.shape) == shape, "matmul shapes")
    elif op == TOP_LINEAR:
        _check(_is_float_array(x0) and _is_float_array(x1) and aux is None, "linear operands")
        _check(x0.ndim >= 1 and x1.ndim == 2 and x0.shape[x0.ndim - 1] == x1.shape[1]
               and shape == x0.shape[:x0.ndim - 1] + (x1.shape[0],), "linear shapes")
    elif op == TOP_MSE:
        _check(_is_float_array(x0) and x1 is None and _is_int(aux) and aux == x0.size
               and shape == (), "mse_loss fields")
    elif op == TOP_BCE:
        _check(_is_float_array(x0) and _is_operand(x1) and shape_of(x1) == x0.shape
               and shape == (), "binary_cross_entropy operands")
        _check(type(aux) is tuple and len(aux) == 3 and _is_int(aux[0]) and aux[0] == x0.size
               and _is_float_array(aux[1]) and _is_float_array(aux[2])
               and aux[1].shape == x0.shape and aux[2].shape == x0.shape,
               "binary_cross_entropy parameters")
    elif op == TOP_LOCAL:
        _check((a is None) == (x0 is None) and (b is None) == (x1 is None)
               and (x0 is None or _is_operand(x0)) and (x1 is None or _is_operand(x1)),
               "local derivatives")
        _check(type(aux) is tuple and (len(aux) == 3 or (len(aux) == 4 and type(aux[3]) is tuple
               and all([type(v) is float for v in aux[3]]))) and type(aux[0]) is str,
               "local parameters")
        kshape, axes = aux[1], aux[2]
        if kshape is None:
            _check(axes is None, "local parameters")
            for d in (x0, x1):
                _check(d is None or _broadcast(shape_of(d), shape) == shape, "local derivatives")
        else:
            _check(type(kshape) is tuple and all([_is_int(k) and k >= 0 for k in kshape])
                   and int(np.prod(kshape)) == data.size and b is None and x1 is None,
                   "local reduction parameters")
            for ax in _axes_of(axes, len(kshape)):
                _check(kshape[ax] == 1, "local reduction parameters")
            _check(_is_float_array(x0) and x0.ndim == len(kshape)
                   and _broadcast(x0.shape, kshape) == x0.shape, "local reduction derivative")
    else:
        # the ops of one input, which save it in x0
        _check(b is None and a is not None and _is_float_array(x0), "input")
        if op == TOP_CROSS_ENTROPY:
            _check(x0.ndim == 2 and shape == () and type(x1) is ndarray and x1.dtype.kind in 'iu'
                   and x1.shape == (x0.shape[0],) and _is_float_array(aux)
                   and aux.shape == (x0.shape[0],), "cross_entropy fields")
            _check(x1.size == 0 or (x1.min() >= 0 and x1.max() < x0.shape[1]),
                   "cross_entropy targets")
        elif op == TOP_SUM:
            _kept_shape_of(aux, x0.shape, data.size)
        elif op == TOP_MEAN:
            _check(type(aux) is tuple and len(aux) == 2 and _is_int(aux[1]) and aux[1] > 0,
                   "mean parameters")
            _kept_shape_of(aux[0], x0.shape, data.size)
        elif op == TOP_RESHAPE:
            _check(aux is None and x0.size == data.size, "reshape")
        elif op == TOP_TRANSPOSE:
            _check(type(aux) is tuple and all([_is_int(i) for i in aux])
                   and sorted(aux) == list(range(x0.ndim)) and len(aux) == len(shape),
                   "transpose permutation")
            _check(tuple([shape[i] for i in aux]) == x0.shape, "transpose shapes")
        elif op == TOP_INDEX:
            _check(type(aux) is tuple and len(aux) == 2, "index parameters")
        elif op == TOP_SOFTMAX or op == TOP_LOG_SOFTMAX:
            _check(x0.shape == shape, "input shape")
            _axes_of(aux, x0.ndim)
        else:
            _check(op == TOP_NEG or op == TOP_RELU or op == TOP_TANH or op == TOP_EXP
                   or op == TOP_LOG or op == TOP_SIGMOID, "op code")
            _check(x0.shape == shape and aux is None, "input shape")
        if op != TOP_CROSS_ENTROPY:
            _check(x1 is None, "a second operand")
    return 0


def restore_tensor(cls, prefix, data, grad, requires_grad, op, a, b, c, x0, x1, aux):
    """Inverse of Tensor.__reduce__ (what a pickle of a Tensor calls): a node of class cls with
    these fields, all validated first (pickle.UnpicklingError for anything a Tensor cannot hold).
    `prefix` only ordered the pickle (see the top of pickling.pyx) and is ignored."""
    _check(isinstance(cls, type) and issubclass(cls, Tensor), "not a Tensor class")
    _check(prefix is None or type(prefix) is list, "prefix")
    _check(_is_int(op) and 0 <= op < TOP_COUNT, "op code")
    _check(_is_float_array(data) or (op == TOP_LEAF and not requires_grad and
                                     _is_value_array(data)), "value (an array of a tensor dtype)")
    _check(grad is None or (_is_float_array(grad) and grad.shape == data.shape), "gradient")
    _check(type(requires_grad) is bool, "requires_grad")
    for k in (a, b, c):
        _check(_is_child(k), "child (a Tensor or None)")
    if op == TOP_LEAF:
        _check(a is None and b is None and c is None and x0 is None and x1 is None
               and aux is None, "leaf fields")
    else:
        _check(requires_grad, "a recorded op that does not require grad")
        _check_node(op, data, a, b, c, x0, x1, aux)
        if op == TOP_CROSS_ENTROPY:
            x1 = np.array(x1, dtype=_intp)          # private: the backward loop indexes with it
        elif op == TOP_INDEX:
            key = _index_key_of(aux[0])
            basic = is_basic_key(key)
            _check(aux[1] is basic, "index parameters")
            try:
                picked = np.broadcast_to(np.zeros((), x0.dtype), x0.shape)[key]
            except (IndexError, ValueError, TypeError):
                picked = None
            _check(picked is not None and np.shape(picked) == data.shape, "index key")
            aux = (key, basic)
    cdef Tensor t = <Tensor>Tensor.__new__(cls)
    t._data = data
    t._grad = None if grad is None else wrap_grad(grad)
    t._requires_grad = requires_grad
    t.op = <uint8_t>op
    t.a = a
    t.b = b
    t.c = c
    t.x0 = x0
    t.x1 = x1
    t.aux = aux
    # the children's parent counts, as record() keeps them (in-place ops rely on them)
    kids = x0 if (t.op == TOP_CONCAT or t.op == TOP_STACK) else (a, b, c)
    for k in kids:
        if k is not None:
            (<Tensor>k)._parents += 1
    return t


install_tensor_reducer(reduce_tensor)
