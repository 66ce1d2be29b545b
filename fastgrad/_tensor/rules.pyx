# cython: boundscheck=True, wraparound=True
# (indexing of Python objects stays checked in the tensor engine: see tensor.pxd)
# The derivative rules of every op: one section per op code, holding its two rules side by side.
#
#   backward rule   (s, n, g) -> None: the vector-Jacobian product. Pushes the gradient g of node
#                   n to n's children with push() (s: the sweep's state, rules.pxd).
#   tangent rule    (n, ta, tb, tc) -> t: the Jacobian-vector product. The tangent of n from
#                   its children's tangents (None is an exact zero).
#
# Both read only what the op saved on the node (tensor.pxd lists the slots per op code), and the
# tangent rule is the transpose of the backward rule: the same masks, clamps, tie rule and
# conventions at x == 0, so tensor_jvp(out, {x: v}) . w equals grad_x(out . w) . v to rounding.
# A section ends by registering its pair for its op code; the sweeps (sweep.pyx) only route a
# node to its op's rules through backward_rule() and tangent_rule(), and every op code must have
# both rules (checked when the module is imported).
cimport cython
from libc.stdint cimport uint8_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy

from fastgrad._memory cimport capacity_for
from fastgrad._tensor.conv cimport channels_by_batch, conv_gemm, transpose_columns
from fastgrad._tensor.loops cimport cross_entropy_grad, colsum, relu_mask
from fastgrad._tensor.tensor cimport *
from fastgrad._tensor.windows cimport (BATCH_LAYOUT, CONV_LAYOUT, Grid2d, col2im, grid_from,
                                       im2col, pool_avg, pool_avg_grad, pool_max_grad)

import numpy as np

cdef object _np_exp = np.exp
cdef object _np_log = np.log
cdef object _np_maximum = np.maximum
cdef object _np_where = np.where
cdef object _np_broadcast_to = np.broadcast_to
cdef object _np_zeros = np.zeros
cdef object _np_add_at = np.add.at
cdef object _np_arange = np.arange
cdef object _np_errstate = np.errstate

ctypedef int (*_backward_fn)(Sweep s, Tensor n, object g) except -1
ctypedef object (*_tangent_fn)(Tensor n, object ta, object tb, object tc)

cdef _backward_fn _backward_rules[TOP_COUNT]
cdef _tangent_fn _tangent_rules[TOP_COUNT]


cdef void _register(uint8_t op, _backward_fn backward, _tangent_fn tangent) noexcept:
    _backward_rules[op] = backward
    _tangent_rules[op] = tangent


# The ops whose rules read the node's own value (n._data): an in-place change of that value
# after the op ran (under no_grad) makes their gradients wrong, so the sweeps refuse it.
cdef bint _reads_value[TOP_COUNT]
for _op in (TOP_DIV, TOP_POW, TOP_RELU, TOP_TANH, TOP_EXP, TOP_SIGMOID, TOP_SOFTMAX,
            TOP_LOG_SOFTMAX):
    _reads_value[_op] = True


cdef int _check_saved(Tensor n) except -1:
    """PyTorch's version check: the values n's rules read have not been changed in place since
    n was recorded (RuntimeError otherwise)."""
    cdef Tensor changed = None
    cdef unsigned int expected = 0
    if n.s0 is not None and version_of(n.s0) != n.v0:
        changed, expected = n.s0, n.v0
    elif n.s1 is not None and version_of(n.s1) != n.v1:
        changed, expected = n.s1, n.v1
    elif version_of(n) != n.vself and _reads_value[n.op]:
        changed, expected = n, n.vself
    else:
        return 0
    raise RuntimeError(
        f"one of the variables needed for gradient computation has been modified by an "
        f"inplace operation: [{changed.dtype} tensor of shape {list(changed._data.shape)}], "
        f"which is used by {n._op}, is at version {version_of(changed)}; expected version "
        f"{expected} instead. Hint: the in-place change (an optimizer step, +=, x.data "
        f"ops, ...) happened after the forward pass; run it after backward(), or compute "
        f"on a clone().")


cdef int backward_rule(Sweep s, Tensor n, object g) except -1:
    if n.op >= TOP_COUNT or _backward_rules[n.op] == NULL:  # pragma: no cover - nodes are
        raise RuntimeError(f"fastgrad: no backward rule for op {n.op}")  # checked when made
    if ((n.s0 is not None and version_of(n.s0) != n.v0) or
            (n.s1 is not None and version_of(n.s1) != n.v1) or
            (n.vself != version_of(n) and _reads_value[n.op])):
        _check_saved(n)         # raises
    return _backward_rules[n.op](s, n, g)


cdef object tangent_rule(Tensor n, object ta, object tb, object tc):
    if n.op >= TOP_COUNT or _tangent_rules[n.op] == NULL:  # pragma: no cover - as above
        raise RuntimeError(f"fastgrad: no tangent rule for op {n.op}")
    if n.s0 is not None or n.s1 is not None or n._vc is not None or n._nver:
        _check_saved(n)
    return _tangent_rules[n.op](n, ta, tb, tc)


# ---------------------------------------------------------------------------------------------
# The sweep's state and the accumulation of contributions


cdef void *_grow(void *p, void *inline_storage, size_t *capacity, size_t needed,
                  size_t item) except NULL:
    """p (holding capacity[0] items, in inline_storage or on the heap) resized to hold at least
    `needed` items by the shared policy; the old items are kept."""
    cdef size_t cap = capacity_for(needed, capacity[0])
    cdef void *q
    if p == inline_storage:
        q = malloc(cap * item)
        if q != NULL:
            memcpy(q, p, capacity[0] * item)
    else:
        q = realloc(p, cap * item)
    if q == NULL:
        raise MemoryError("fastgrad: no memory for the reverse sweep")
    capacity[0] = cap
    return q


@cython.freelist(8)
cdef class Sweep:
    """One reverse sweep's private state (fields and invariants: rules.pxd)."""

    def __cinit__(self):
        self.edges = self.inline_edges
        self.first = self.inline_first
        self.owned = self.inline_owned
        self.edges_capacity = 3 * SWEEP_INLINE_NODES
        self.first_capacity = SWEEP_INLINE_NODES + 1
        self.owned_capacity = SWEEP_INLINE_NODES

    def __dealloc__(self):
        if self.owned != self.inline_owned:
            free(self.owned)
        if self.edges != self.inline_edges:
            free(self.edges)
        if self.first != self.inline_first:
            free(self.first)

    cdef int add_edges(self, Tensor node) except -1:
        # called from inside the DFS: allocates no Python object (see sweep.pyx's _topo)
        cdef Py_ssize_t i = len(self.nodes)
        cdef Py_ssize_t start = self.first[i] if i else 0
        cdef tuple joined = None
        cdef Py_ssize_t count = 3, j
        if node.op == TOP_CONCAT or node.op == TOP_STACK:
            joined = <tuple?>node.x0
            count = len(joined)
        if <size_t>(start + count) > self.edges_capacity:
            self.edges = <Py_ssize_t *>_grow(self.edges, self.inline_edges, &self.edges_capacity,
                                             start + count, sizeof(Py_ssize_t))
        if <size_t>(i + 2) > self.first_capacity:
            self.first = <Py_ssize_t *>_grow(self.first, self.inline_first, &self.first_capacity,
                                             i + 2, sizeof(Py_ssize_t))
        self.first[i] = start
        if joined is None:
            self.edges[start] = _position(node.a, i)
            self.edges[start + 1] = _position(node.b, i)
            self.edges[start + 2] = _position(node.c, i)
        else:
            for j in range(count):
                self.edges[start + j] = _position(joined[j], i)
        self.first[i + 1] = start + count
        return 0

    cdef int size_owned(self, Py_ssize_t n) except -1:
        if <size_t>n > self.owned_capacity:
            self.owned = <uint8_t *>_grow(self.owned, self.inline_owned, &self.owned_capacity,
                                          n, 1)
        return 0


cdef inline Py_ssize_t _position(object kid, Py_ssize_t parent) except -2:
    """The position of a child in the sweep being built (-1 for none)."""
    if kid is None:
        return -1
    cdef Py_ssize_t k = (<Tensor?>kid).slot
    if not (0 <= k < parent):   # pragma: no cover - graphs are acyclic by construction
        raise RuntimeError("fastgrad: the recorded graph is corrupt (a child is not below its "
                           "parent)")
    return k


cdef object _unbroadcast(object g, tuple gs, tuple shape):
    """Sum g (of shape gs) over the axes numpy broadcast to reach gs from shape; RuntimeError
    if shape does not broadcast to gs."""
    cdef Py_ssize_t lead = len(gs) - len(shape)
    cdef Py_ssize_t i
    if lead < 0:
        _shape_mismatch(gs, shape)
    axes = list(range(lead))
    for i in range(len(shape)):
        if shape[i] == 1 and gs[lead + i] != 1:
            axes.append(lead + i)
        elif shape[i] != gs[lead + i]:
            _shape_mismatch(gs, shape)
    return reduce_sum(g, tuple(axes), False).reshape(shape)


cdef int _shape_mismatch(tuple gs, tuple shape) except -1:
    raise RuntimeError(f"backward(): a gradient of shape {gs} cannot flow into a tensor of "
                       f"shape {shape} (was its .data replaced by an array of another shape "
                       f"after it was used?)")


cdef int push(Sweep s, Py_ssize_t which, object contrib, bint fresh) except -1:
    if which >= s.nkids:    # pragma: no cover - the rules and the edges agree by construction
        raise RuntimeError("fastgrad: a backward rule pushed to a child its node does not have")
    cdef Py_ssize_t k = s.kids[which]
    if k < 0:
        return 0
    cdef object cd = (<Tensor>s.nodes[k])._data
    cdef tuple cs = contrib.shape
    cdef tuple shape = cd.shape
    if cs != shape:
        contrib = _unbroadcast(contrib, cs, shape)
        fresh = True
    if type(contrib) is not ndarray:        # numpy turns 0-d results into scalars
        contrib = np_asarray(contrib)
        fresh = True
    if contrib.dtype is not cd.dtype and contrib.dtype != cd.dtype:
        contrib = contrib.astype(cd.dtype)
        fresh = True
    cdef object g = s.grads[k]
    if g is None:
        s.grads[k] = contrib
        s.owned[k] = fresh
    elif s.owned[k]:
        g += contrib
    else:
        g = g + contrib
        s.grads[k] = g if type(g) is ndarray else np_asarray(g)     # (0-d sums are scalars)
        s.owned[k] = True
    return 0


cdef inline object _tplus(object t, object u):
    """t + u where None is zero."""
    if t is None:
        return u
    if u is None:
        return t
    return t + u


cdef inline object _tminus(object t, object u):
    """t - u where None is zero."""
    if u is None:
        return t
    if t is None:
        return -u
    return t - u


cdef tuple _kept_axes(tuple kshape):
    """The axes a sum/mean reduced, from its keepdims shape: every axis of length 1 (summing
    an unreduced axis of length 1 as well is exact)."""
    return tuple([i for i in range(len(kshape)) if kshape[i] == 1])


# ---------------------------------------------------------------------------------------------
# Arithmetic

# --- add: a + b ------------------------------------------------------------------------------

cdef int _add_backward(Sweep s, Tensor n, object g) except -1:
    push(s, 0, g, False)
    push(s, 1, g, False)
    return 0


cdef object _add_tangent(Tensor n, object ta, object tb, object tc):
    return _tplus(ta, tb)

_register(TOP_ADD, _add_backward, _add_tangent)

# --- sub: a - b ------------------------------------------------------------------------------

cdef int _sub_backward(Sweep s, Tensor n, object g) except -1:
    push(s, 0, g, False)
    if n.b is not None:
        push(s, 1, -g, True)
    return 0


cdef object _sub_tangent(Tensor n, object ta, object tb, object tc):
    return _tminus(ta, tb)

_register(TOP_SUB, _sub_backward, _sub_tangent)

# --- mul: x0 * x1 ----------------------------------------------------------------------------

cdef int _mul_backward(Sweep s, Tensor n, object g) except -1:
    if n.a is not None:
        push(s, 0, g * n.x1, True)
    if n.b is not None:
        push(s, 1, g * n.x0, True)
    return 0


cdef object _mul_tangent(Tensor n, object ta, object tb, object tc):
    t = None
    if ta is not None:
        t = ta * n.x1
    if tb is not None:
        t = _tplus(t, n.x0 * tb)
    return t

_register(TOP_MUL, _mul_backward, _mul_tangent)

# --- div: x0 / x1 (value out) ----------------------------------------------------------------

cdef int _div_backward(Sweep s, Tensor n, object g) except -1:
    if n.a is not None:
        push(s, 0, g / n.x1, True)
    if n.b is not None:
        push(s, 1, -g * n._data / n.x1, True)
    return 0


cdef object _div_tangent(Tensor n, object ta, object tb, object tc):
    t = None
    if ta is not None:
        t = ta / n.x1
    if tb is not None:
        t = _tplus(t, -tb * n._data / n.x1)
    return t

_register(TOP_DIV, _div_backward, _div_tangent)

# --- pow: x ** y (value out) -----------------------------------------------------------------
# d/dx = y x**(y-1) (2x exactly for y == 2); d/dy = out log x, 0 where x == 0 (PyTorch's
# convention), nan for x < 0.

cdef object _pow_dy(object out, object x, object y, object v):
    """v * d(x**y)/dy = v x**y log x, 0 where x == 0 and y >= 0 (PyTorch's convention)."""
    with _np_errstate(divide='ignore', invalid='ignore', over='ignore'):
        dv = v * out * _np_log(x)
    return _np_where((np_asarray(x) == 0) & (np_asarray(y) >= 0), 0.0, dv)


cdef object _pow_dx(object x, object y):
    """d(x**y)/dx = y x**(y-1): 2x exactly for y == 2, and 0 where y == 0 (PyTorch's
    convention, so 0**0 has gradient 0, not nan)."""
    if type(y) is float or type(y) is int:
        if y == 2:
            return 2.0 * x
        if y == 0:
            return 0.0 * x
        with _np_errstate(divide='ignore', invalid='ignore'):
            return y * x ** (y - 1.0)
    with _np_errstate(divide='ignore', invalid='ignore', over='ignore'):
        d = y * x ** (y - 1.0)
    return _np_where(np_asarray(y) == 0, 0.0, d)


cdef int _pow_backward(Sweep s, Tensor n, object g) except -1:
    if n.a is not None:
        push(s, 0, g * _pow_dx(n.x0, n.x1), True)
    if n.b is not None:
        push(s, 1, _pow_dy(n._data, n.x0, n.x1, g), True)
    return 0


cdef object _pow_tangent(Tensor n, object ta, object tb, object tc):
    x = n.x0
    y = n.x1
    t = None
    if ta is not None:
        t = ta * _pow_dx(x, y)
    if tb is not None:
        t = _tplus(t, _pow_dy(n._data, x, y, tb))
    return t

_register(TOP_POW, _pow_backward, _pow_tangent)

# --- neg: -a ---------------------------------------------------------------------------------

cdef int _neg_backward(Sweep s, Tensor n, object g) except -1:
    push(s, 0, -g, True)
    return 0


cdef object _neg_tangent(Tensor n, object ta, object tb, object tc):
    return -ta

_register(TOP_NEG, _neg_backward, _neg_tangent)

# --- matmul: x0 @ x1 (numpy's rules: 1-D operands are promoted, batches broadcast) -----------

cdef int _matmul_backward(Sweep s, Tensor n, object g) except -1:
    x = n.x0
    y = n.x1
    cdef bint x1d = x.ndim == 1, y1d = y.ndim == 1
    if x1d and y1d:
        if n.a is not None:
            push(s, 0, g * y, True)
        if n.b is not None:
            push(s, 1, g * x, True)
        return 0
    if x.ndim == 2 and y.ndim == 2:
        if n.a is not None:
            push(s, 0, g @ y.T, True)
        if n.b is not None:
            push(s, 1, x.T @ g, True)
        return 0
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
        push(s, 0, ga, True)
    if n.b is not None:
        gb = x2.swapaxes(-1, -2) @ g2
        if y1d:
            gb = gb[..., 0]
        push(s, 1, gb, True)
    return 0


cdef object _matmul_tangent(Tensor n, object ta, object tb, object tc):
    # numpy's matmul promotes 1-D operands and broadcasts batches for the tangents too
    t = None
    if ta is not None:
        t = ta @ n.x1
    if tb is not None:
        t = _tplus(t, n.x0 @ tb)
    return t

_register(TOP_MATMUL, _matmul_backward, _matmul_tangent)


# ---------------------------------------------------------------------------------------------
# Reductions

# --- sum: aux is the keepdims shape ----------------------------------------------------------

cdef int _sum_backward(Sweep s, Tensor n, object g) except -1:
    push(s, 0, _np_broadcast_to(g.reshape(n.aux), n.x0.shape), False)
    return 0


cdef object _sum_tangent(Tensor n, object ta, object tb, object tc):
    return reduce_sum(ta, _kept_axes(n.aux), True).reshape(n._data.shape)

_register(TOP_SUM, _sum_backward, _sum_tangent)

# --- mean: aux is (keepdims shape, count) ----------------------------------------------------

cdef int _mean_backward(Sweep s, Tensor n, object g) except -1:
    push(s, 0, _np_broadcast_to(g.reshape(n.aux[0]) / n.aux[1], n.x0.shape), False)
    return 0


cdef object _mean_tangent(Tensor n, object ta, object tb, object tc):
    return reduce_sum(ta, _kept_axes(n.aux[0]), True).reshape(n._data.shape) / n.aux[1]

_register(TOP_MEAN, _mean_backward, _mean_tangent)

# ---------------------------------------------------------------------------------------------
# Shape ops

# --- reshape ---------------------------------------------------------------------------------

cdef int _reshape_backward(Sweep s, Tensor n, object g) except -1:
    push(s, 0, g.reshape(n.x0.shape), False)
    return 0


cdef object _reshape_tangent(Tensor n, object ta, object tb, object tc):
    return ta.reshape(n._data.shape)

_register(TOP_RESHAPE, _reshape_backward, _reshape_tangent)

# --- transpose: aux is the inverse permutation -----------------------------------------------

cdef int _transpose_backward(Sweep s, Tensor n, object g) except -1:
    push(s, 0, g.transpose(n.aux), False)
    return 0


cdef object _transpose_tangent(Tensor n, object ta, object tb, object tc):
    inverse = n.aux
    perm = [0] * len(inverse)
    for i in range(len(inverse)):
        perm[inverse[i]] = i
    return ta.transpose(perm)

_register(TOP_TRANSPOSE, _transpose_backward, _transpose_tangent)

# --- getitem: aux is (key, basic); basic keys never select an element twice ------------------

cdef int _index_backward(Sweep s, Tensor n, object g) except -1:
    key, basic = n.aux
    gz = _np_zeros(n.x0.shape, dtype=g.dtype)
    if basic:
        gz[key] = g
    else:
        _np_add_at(gz, key, g)
    push(s, 0, gz, True)
    return 0


cdef object _index_tangent(Tensor n, object ta, object tb, object tc):
    return ta[n.aux[0]]

_register(TOP_INDEX, _index_backward, _index_tangent)

# --- concatenate, stack: x0 is the tuple of children; aux is (axis, offsets) or (axis,) ------
# Input i's part of the result is part[i]: a slice along the axis, or an index for stack.

cdef tuple _join_part(Tensor n, Py_ssize_t i):
    ax = n.aux[0]
    lead = (slice(None),) * ax
    if n.op == TOP_CONCAT:
        offsets = n.aux[1]
        return lead + (slice(offsets[i], offsets[i + 1]),)
    return lead + (i,)


cdef int _join_backward(Sweep s, Tensor n, object g) except -1:
    for i, kid in enumerate(n.x0):
        if kid is not None:
            push(s, i, g[_join_part(n, i)], False)
    return 0


cdef object _join_tangent(Tensor n, object ta, object tb, object tc):
    # ta: the children's tangents; constants (and children without one) contribute zeros
    out = n._data
    t = None
    for i, tk in enumerate(ta):
        if tk is None:
            continue
        if t is None:
            t = _np_zeros(out.shape, dtype=out.dtype)
        t[_join_part(n, i)] = tk
    return t

_register(TOP_CONCAT, _join_backward, _join_tangent)
_register(TOP_STACK, _join_backward, _join_tangent)


# ---------------------------------------------------------------------------------------------
# Elementwise functions (value out)

# --- relu: the mask out > 0, so relu'(0) = 0 -------------------------------------------------

cdef int _relu_backward(Sweep s, Tensor n, object g) except -1:
    # one branch-free compiled pass (a per-element branch, np.where or a naive C loop,
    # mispredicts half the time and measured 5x slower on (256, 128))
    push(s, 0, relu_mask(g, n._data, s.g_owned), True)
    return 0


cdef object _relu_tangent(Tensor n, object ta, object tb, object tc):
    return relu_mask(ta, n._data, False)

_register(TOP_RELU, _relu_backward, _relu_tangent)

# --- tanh: 1 - out**2 ------------------------------------------------------------------------

cdef int _tanh_backward(Sweep s, Tensor n, object g) except -1:
    out = n._data
    push(s, 0, g * (1.0 - out * out), True)
    return 0


cdef object _tanh_tangent(Tensor n, object ta, object tb, object tc):
    out = n._data
    return ta * (1.0 - out * out)

_register(TOP_TANH, _tanh_backward, _tanh_tangent)

# --- exp: out --------------------------------------------------------------------------------

cdef int _exp_backward(Sweep s, Tensor n, object g) except -1:
    push(s, 0, g * n._data, True)
    return 0


cdef object _exp_tangent(Tensor n, object ta, object tb, object tc):
    return ta * n._data

_register(TOP_EXP, _exp_backward, _exp_tangent)

# --- log: 1 / x ------------------------------------------------------------------------------

cdef int _log_backward(Sweep s, Tensor n, object g) except -1:
    push(s, 0, g / n.x0, True)
    return 0


cdef object _log_tangent(Tensor n, object ta, object tb, object tc):
    return ta / n.x0

_register(TOP_LOG, _log_backward, _log_tangent)

# --- sigmoid: out (1 - out) ------------------------------------------------------------------

cdef int _sigmoid_backward(Sweep s, Tensor n, object g) except -1:
    out = n._data
    push(s, 0, g * out * (1.0 - out), True)
    return 0


cdef object _sigmoid_tangent(Tensor n, object ta, object tb, object tc):
    out = n._data
    return ta * out * (1.0 - out)

_register(TOP_SIGMOID, _sigmoid_backward, _sigmoid_tangent)

# --- softmax along the axes in aux -----------------------------------------------------------

cdef int _softmax_backward(Sweep s, Tensor n, object g) except -1:
    out = n._data
    go = g * out
    push(s, 0, go - out * reduce_sum(go, n.aux, True), True)
    return 0


cdef object _softmax_tangent(Tensor n, object ta, object tb, object tc):
    out = n._data
    to = ta * out
    return to - out * reduce_sum(to, n.aux, True)

_register(TOP_SOFTMAX, _softmax_backward, _softmax_tangent)

# --- log_softmax along the axes in aux -------------------------------------------------------

cdef int _log_softmax_backward(Sweep s, Tensor n, object g) except -1:
    push(s, 0, g - _np_exp(n._data) * reduce_sum(g, n.aux, True), True)
    return 0


cdef object _log_softmax_tangent(Tensor n, object ta, object tb, object tc):
    return ta - reduce_sum(_np_exp(n._data) * ta, n.aux, True)

_register(TOP_LOG_SOFTMAX, _log_softmax_backward, _log_softmax_tangent)


# ---------------------------------------------------------------------------------------------
# The functional ops (functional.pyx)

# --- linear: x @ w.T + b; x0 = x, x1 = w; children a = x, b = w, c = bias -------------------

cdef int _linear_backward(Sweep s, Tensor n, object g) except -1:
    x = n.x0
    w = n.x1
    if n.a is not None:
        push(s, 0, g * w[0] if w.shape[0] == 1 else g @ w, True)   # one output: outer product
    if n.b is not None or n.c is not None:
        if x.ndim == 2:
            g2 = g
            x2 = x
        else:
            g2 = g.reshape(-1, w.shape[0])
            x2 = x.reshape(-1, w.shape[1])
        if n.b is not None:
            push(s, 1, g2.T @ x2, True)
        if n.c is not None:
            push(s, 2, colsum(g2), True)
    return 0


cdef object _linear_tangent(Tensor n, object ta, object tb, object tc):
    t = None
    if ta is not None:
        t = ta @ n.x1.T
    if tb is not None:
        t = _tplus(t, n.x0 @ tb.T)
    return _tplus(t, tc)

_register(TOP_LINEAR, _linear_backward, _linear_tangent)

# --- mse_loss: mean(d**2); x0 = d = input - target, aux = count ------------------------------

cdef int _mse_backward(Sweep s, Tensor n, object g) except -1:
    # (an empty input, whose loss is nan, gets its empty gradient)
    ga = ((2.0 / n.aux) if n.aux else 0.0) * g * n.x0
    push(s, 0, ga, True)
    if n.b is not None:
        push(s, 1, -ga, True)
    return 0


cdef object _mse_tangent(Tensor n, object ta, object tb, object tc):
    if not n.aux:
        return np.nan       # the derivative of the empty mean, nan like its value
    return reduce_sum(n.x0 * _tminus(ta, tb), None, False) * 2.0 / n.aux

_register(TOP_MSE, _mse_backward, _mse_tangent)

# --- cross_entropy: x0 = z (shifted logits), x1 = targets, aux = lse -------------------------
# d/dlogits = (softmax(z) - onehot(targets)) / rows

cdef int _cross_entropy_backward(Sweep s, Tensor n, object g) except -1:
    z = n.x0
    rows = z.shape[0]
    scale = g / rows
    p = cross_entropy_grad(z, n.aux, n.x1, scale)
    if p is None:
        p = _np_exp(z - n.aux[:, None])
        p[_np_arange(rows), n.x1] -= 1.0
        p *= scale
    push(s, 0, p, True)
    return 0


cdef object _cross_entropy_tangent(Tensor n, object ta, object tb, object tc):
    # mean over rows of softmax(x_i) . v_i - v_i[target_i]
    z = n.x0
    rows = z.shape[0]
    p = _np_exp(z - n.aux[:, None])
    picked = ta[_np_arange(rows), n.x1]
    return (reduce_sum(p * ta, None, False) - reduce_sum(picked, None, False)) / rows

_register(TOP_CROSS_ENTROPY, _cross_entropy_backward, _cross_entropy_tangent)

# --- binary_cross_entropy: x0 = p, x1 = t, aux = (count, clamped log p, clamped log 1-p) -----
# d/dp = (p - t) / max(p (1 - p), 1e-12) / count; d/dt = (log(1-p) - log p) / count

cdef int _bce_backward(Sweep s, Tensor n, object g) except -1:
    count, lp, lq = n.aux
    pv = n.x0
    tv = n.x1
    if n.a is not None:
        push(s, 0, g * (pv - tv) / _np_maximum(pv * (1.0 - pv), 1e-12) / count, True)
    if n.b is not None:
        push(s, 1, g * (lq - lp) / count, True)
    return 0


cdef object _bce_tangent(Tensor n, object ta, object tb, object tc):
    count, lp, lq = n.aux
    pv = n.x0
    t = None
    if ta is not None:
        t = reduce_sum(ta * (pv - n.x1) / _np_maximum(pv * (1.0 - pv), 1e-12), None,
                       False) / count
    if tb is not None:
        t = _tplus(t, reduce_sum(tb * (lq - lp), None, False) / count)
    return t

_register(TOP_BCE, _bce_backward, _bce_tangent)



# ---------------------------------------------------------------------------------------------
# Ops with a diagonal Jacobian, and the shape ops added for PyTorch's API

# --- local: any op that saved its derivatives in a and b (x0, x1) -----------------------------
# aux = (name, kshape, axes): for a reduction, g is first given the value's keepdim shape
# (kshape) so it broadcasts against the input; the tangent sums over the reduced axes.

cdef int _local_backward(Sweep s, Tensor n, object g) except -1:
    kshape = n.aux[1]
    if kshape is not None:
        g = g.reshape(kshape)
    if n.a is not None:
        push(s, 0, g * n.x0, True)
    if n.b is not None:
        push(s, 1, g * n.x1, True)
    return 0


cdef object _local_tangent(Tensor n, object ta, object tb, object tc):
    t = None
    if ta is not None:
        t = ta * n.x0
    if tb is not None:
        t = _tplus(t, tb * n.x1)
    axes = n.aux[2]
    if axes is not None:
        t = reduce_sum(t, axes, True).reshape(n._data.shape)
    return t

_register(TOP_LOCAL, _local_backward, _local_tangent)

# --- gather: a[gather_index(x0, dim)] ---------------------------------------------------------

cdef int _gather_backward(Sweep s, Tensor n, object g) except -1:
    dim, shape = n.aux
    gz = _np_zeros(shape, dtype=g.dtype)
    _np_add_at(gz, gather_index(n.x0, dim), g)
    push(s, 0, gz, True)
    return 0


cdef object _gather_tangent(Tensor n, object ta, object tb, object tc):
    return np_asarray(ta)[gather_index(n.x0, n.aux[0])]

_register(TOP_GATHER, _gather_backward, _gather_tangent)

# --- cumsum along aux -------------------------------------------------------------------------

cdef int _cumsum_backward(Sweep s, Tensor n, object g) except -1:
    d = n.aux
    push(s, 0, np.flip(np.cumsum(np.flip(g, d), axis=d), d), True)
    return 0


cdef object _cumsum_tangent(Tensor n, object ta, object tb, object tc):
    return np.cumsum(_np_broadcast_to(ta, n._data.shape), axis=n.aux)

_register(TOP_CUMSUM, _cumsum_backward, _cumsum_tangent)

# --- expand: a broadcast (push sums the gradient back over the broadcast dims) -----------------

cdef int _expand_backward(Sweep s, Tensor n, object g) except -1:
    push(s, 0, g, False)
    return 0


cdef object _expand_tangent(Tensor n, object ta, object tb, object tc):
    return ta

_register(TOP_EXPAND, _expand_backward, _expand_tangent)

# --- repeat: a tiled reps times --------------------------------------------------------------

cdef int _repeat_backward(Sweep s, Tensor n, object g) except -1:
    reps, padded = n.aux
    split = []
    for r, k in zip(reps, padded):
        split.append(r)
        split.append(k)
    push(s, 0, reduce_sum(g.reshape(split), tuple(range(0, 2 * len(reps), 2)), False)
         .reshape(padded), True)
    return 0


cdef object _repeat_tangent(Tensor n, object ta, object tb, object tc):
    reps, padded = n.aux
    return np.tile(_np_broadcast_to(ta, n.a._data.shape).reshape(padded), reps)

_register(TOP_REPEAT, _repeat_backward, _repeat_tangent)

# --- flip along the axes in aux --------------------------------------------------------------

cdef int _flip_backward(Sweep s, Tensor n, object g) except -1:
    push(s, 0, np.flip(g, n.aux) if n.aux else g, False)
    return 0


cdef object _flip_tangent(Tensor n, object ta, object tb, object tc):
    ta = _np_broadcast_to(ta, n._data.shape)
    return np.flip(ta, n.aux) if n.aux else ta

_register(TOP_FLIP, _flip_backward, _flip_tangent)

# --- cast: a's value in another dtype (push casts the gradient back to a's dtype) -----------

cdef int _cast_backward(Sweep s, Tensor n, object g) except -1:
    push(s, 0, g, False)
    return 0


cdef object _cast_tangent(Tensor n, object ta, object tb, object tc):
    return ta

_register(TOP_CAST, _cast_backward, _cast_tangent)

# ---------------------------------------------------------------------------------------------
# The window ops of convolutional nets (conv.pyx; the loops are windows.pyx's)

cdef object _np_matmul = np.matmul
cdef object _np_take_along_axis = np.take_along_axis
cdef object _np_ascontiguousarray = np.ascontiguousarray


cdef object _channel_bias_tangent(object t, object tc, tuple shape):
    """t (or zeros if None) plus a bias tangent tc (O,) along the channels of shape."""
    if tc is None:
        return t
    tcb = _np_broadcast_to(tc, (shape[1],)).reshape(1, -1, 1, 1)
    return tcb + (_np_zeros(shape, dtype=tc.dtype) if t is None else t)


# --- conv2d: a input, b weight, c bias; x0 the input's columns, x1 the weight; aux (geometry,
# groups). Forward: y = W @ cols (one GEMM per group); backward: W^T @ g -> col2im, g @ cols^T.

cdef int _conv_backward(Sweep s, Tensor n, object g) except -1:
    geometry, groups = n.aux
    cdef Grid2d grid = grid_from(geometry)
    # (explicit sizes, not -1: any of them may be 0)
    cdef Py_ssize_t nb = g.shape[0], o = g.shape[1], og = o // groups
    cdef Py_ssize_t cols_n = nb * grid.oh * grid.ow, k = grid.C // groups * grid.kh * grid.kw
    g2 = g.reshape(nb, o, grid.oh * grid.ow).transpose(1, 0, 2).reshape(o, cols_n)
    if n.a is not None:
        w2 = n.x1.reshape(groups, og, k)
        gcols = w2[0].T @ g2 if groups == 1 else \
            _np_matmul(w2.transpose(0, 2, 1), g2.reshape(groups, og, cols_n))
        push(s, 0, col2im(gcols.reshape(groups * k, cols_n), &grid, nb, CONV_LAYOUT), True)
    if n.b is not None:
        cols = n.x0
        gw = g2 @ cols.T if groups == 1 else \
            _np_matmul(g2.reshape(groups, og, cols_n),
                       cols.reshape(groups, k, cols_n).transpose(0, 2, 1))
        push(s, 1, gw.reshape(o, grid.C // groups, grid.kh, grid.kw), True)
    if n.c is not None:
        push(s, 2, reduce_sum(g2, 1, False), True)     # (g2's rows are contiguous)
    return 0


cdef object _conv_tangent(Tensor n, object ta, object tb, object tc):
    geometry, groups = n.aux
    cdef Grid2d grid = grid_from(geometry)
    shape = n._data.shape
    cdef Py_ssize_t nb = shape[0], positions = grid.oh * grid.ow
    t = None
    if ta is not None:
        cols = im2col(_np_broadcast_to(ta, n.a._data.shape), &grid, CONV_LAYOUT)
        t = conv_gemm(cols, n.x1, groups, nb, positions)
    if tb is not None:
        t = _tplus(t, conv_gemm(n.x0, _np_broadcast_to(tb, n.b._data.shape), groups, nb,
                                positions))
    if t is not None:
        t = t.reshape(shape)
    return _channel_bias_tangent(t, tc, shape)

_register(TOP_CONV, _conv_backward, _conv_tangent)

# --- conv_transpose2d: x0 the input as (C, N*H*W), x1 the weight (C, O // groups, kh, kw); aux
# (geometry of the convolution it transposes, groups, C). Forward: col2im(W^T @ x); backward:
# im2col(g), then W @ cols and x @ cols^T.

cdef int _conv_transpose_backward(Sweep s, Tensor n, object g) except -1:
    geometry, groups, c = n.aux
    cdef Grid2d grid = grid_from(geometry)
    cdef Py_ssize_t nb = g.shape[0], cg = c // groups
    cdef Py_ssize_t k = grid.C // groups * grid.kh * grid.kw
    gcols = im2col(g, &grid, CONV_LAYOUT)           # (O*kh*kw, N*H*W)
    cdef Py_ssize_t cols_n = gcols.shape[1]
    gcols3 = gcols.reshape(groups, k, cols_n)
    if n.a is not None:
        w3 = n.x1.reshape(groups, cg, k)
        gx = w3[0] @ gcols if groups == 1 else _np_matmul(w3, gcols3)
        gx = gx.reshape(c, nb, grid.oh, grid.ow).transpose(1, 0, 2, 3)
        push(s, 0, _np_ascontiguousarray(gx), True)
    if n.b is not None:
        x3 = n.x0.reshape(groups, cg, cols_n)
        gw = n.x0 @ gcols.T if groups == 1 else _np_matmul(x3, gcols3.transpose(0, 2, 1))
        push(s, 1, gw.reshape(c, grid.C // groups, grid.kh, grid.kw), True)
    if n.c is not None:
        push(s, 2, reduce_sum(g, (0, 2, 3), False), True)
    return 0


cdef object _conv_transpose_tangent(Tensor n, object ta, object tb, object tc):
    geometry, groups, c = n.aux
    cdef Grid2d grid = grid_from(geometry)
    shape = n._data.shape
    cols = None
    if ta is not None:
        xcols = channels_by_batch(_np_broadcast_to(ta, n.a._data.shape))
        cols = transpose_columns(xcols, n.x1, groups)
    if tb is not None:
        cols = _tplus(cols, transpose_columns(n.x0, _np_broadcast_to(tb, n.b._data.shape),
                                              groups))
    t = None if cols is None else col2im(cols, &grid, shape[0], CONV_LAYOUT)
    return _channel_bias_tangent(t, tc, shape)

_register(TOP_CONV_TRANSPOSE, _conv_transpose_backward, _conv_transpose_tangent)

# --- unfold and fold: adjoint pairs of im2col and col2im; aux the geometry -------------------

cdef int _unfold_backward(Sweep s, Tensor n, object g) except -1:
    cdef Grid2d grid = grid_from(n.aux)
    push(s, 0, col2im(g, &grid, g.shape[0], BATCH_LAYOUT), True)
    return 0


cdef object _unfold_tangent(Tensor n, object ta, object tb, object tc):
    cdef Grid2d grid = grid_from(n.aux)
    return im2col(_np_broadcast_to(ta, n.a._data.shape), &grid, BATCH_LAYOUT)

_register(TOP_UNFOLD, _unfold_backward, _unfold_tangent)


cdef int _fold_backward(Sweep s, Tensor n, object g) except -1:
    cdef Grid2d grid = grid_from(n.aux)
    push(s, 0, im2col(g, &grid, BATCH_LAYOUT), True)
    return 0


cdef object _fold_tangent(Tensor n, object ta, object tb, object tc):
    cdef Grid2d grid = grid_from(n.aux)
    ta = _np_broadcast_to(ta, n.a._data.shape)
    return col2im(ta, &grid, ta.shape[0], BATCH_LAYOUT)

_register(TOP_FOLD, _fold_backward, _fold_tangent)

# --- max pooling: x0 the flat indices of the maxima in each plane; aux the input's shape -----

cdef int _max_pool_backward(Sweep s, Tensor n, object g) except -1:
    shape = n.aux
    push(s, 0, pool_max_grad(g, n.x0, shape[2], shape[3]), True)
    return 0


cdef object _max_pool_tangent(Tensor n, object ta, object tb, object tc):
    shape = n.aux
    idx = n.x0
    ta = _np_broadcast_to(ta, shape).reshape(shape[0], shape[1], -1)
    return _np_take_along_axis(ta, idx.reshape(shape[0], shape[1], -1), 2).reshape(idx.shape)

_register(TOP_MAX_POOL, _max_pool_backward, _max_pool_tangent)

# --- average pooling: aux (hstart, hcount, wstart, wcount, divisor, H, W) --------------------

cdef int _avg_pool_backward(Sweep s, Tensor n, object g) except -1:
    hs, hc, ws, wc, divisor, h, w = n.aux
    push(s, 0, pool_avg_grad(g, hs, hc, ws, wc, divisor, h, w), True)
    return 0


cdef object _avg_pool_tangent(Tensor n, object ta, object tb, object tc):
    hs, hc, ws, wc, divisor, h, w = n.aux
    return pool_avg(_np_broadcast_to(ta, n.a._data.shape), hs, hc, ws, wc, divisor)

_register(TOP_AVG_POOL, _avg_pool_backward, _avg_pool_tangent)

# ---------------------------------------------------------------------------------------------
# Linear maps of other nodes, for create_graph (graph_rules.py). Where a node's backward rule
# is linear in the gradient and reads nothing differentiable (the shape and window ops, the
# pools: their Jacobians are fixed by saved shapes and indices), its rule as a recorded op is
# the adjoint of its Jacobian J applied to the gradient, and the derivative of that is J itself,
# which the node's tangent rule applies. A TOP_LINEAR_MAP node (x0 = the node, aux = (child
# slot k, transposed)) is J^T u or J u of its child u, by those two rules of x0's op: so every
# order of derivative of these ops runs their tested first-order code.

cdef list _slots(Tensor n):
    """n's child slots: a, b, c, or the joined children of concatenate and stack."""
    if n.op == TOP_CONCAT or n.op == TOP_STACK:
        return list(<tuple>n.x0)
    return [n.a, n.b, n.c]


cdef object _slot_adjoint(Tensor n, Py_ssize_t k, object g):
    """What n's backward rule, run on n alone with gradient g, gives its child slot k: J_k^T g
    (an array of the child's shape), or None for zero."""
    cdef list kids = _slots(n)
    cdef Py_ssize_t count = len(kids), j
    cdef Sweep s = Sweep()
    if <size_t>count > s.edges_capacity:
        s.edges = <Py_ssize_t *>_grow(s.edges, s.inline_edges, &s.edges_capacity, count,
                                      sizeof(Py_ssize_t))
    s.size_owned(count)
    for j in range(count):
        s.edges[j] = j if kids[j] is not None else -1
        s.owned[j] = False
    s.nodes = kids
    s.grads = [None] * count
    s.kids = s.edges
    s.nkids = count
    s.g_owned = False
    out = n._data
    backward_rule(s, n, _np_ascontiguousarray(_np_broadcast_to(g, out.shape), dtype=out.dtype))
    return s.grads[k]


cdef object _slot_apply(Tensor n, Py_ssize_t k, object t):
    """n's tangent along child slot k alone: J_k t, an array of n's shape and dtype."""
    cdef list kids = _slots(n)
    kid = <Tensor?>kids[k]
    t = _np_ascontiguousarray(_np_broadcast_to(t, kid._data.shape), dtype=kid._data.dtype)
    if n.op == TOP_CONCAT or n.op == TOP_STACK:
        tangents = [None] * len(kids)
        tangents[k] = t
        r = tangent_rule(n, tangents, None, None)
    else:
        args = [None, None, None]
        args[k] = t
        r = tangent_rule(n, args[0], args[1], args[2])
    out = n._data
    if r is None:
        return _np_zeros(out.shape, dtype=out.dtype)
    return _np_ascontiguousarray(_np_broadcast_to(r, out.shape), dtype=out.dtype)


def linear_map(node, Py_ssize_t k, u, bint transposed):
    """J^T u (transposed) or J u, where J is the Jacobian of node's value with respect to its
    child slot k (0, 1, 2 for a, b, c; the position for concatenate and stack), as a new Tensor,
    recorded as a TOP_LINEAR_MAP node if u requires grad. u has node's shape (transposed) or the
    child's; J must not depend on what is differentiated (graph_rules.py uses it only for ops
    whose backward rule is linear in the gradient and reads no differentiable operand)."""
    cdef Tensor n = <Tensor?>node
    cdef Tensor tu = <Tensor?>u
    cdef list kids = _slots(n)
    if n.op == TOP_LEAF or not (0 <= k < len(kids)) or kids[k] is None:
        raise ValueError(f"linear_map: a {op_names[n.op]} node has no child in slot {k}")
    kid = <Tensor>kids[k]
    if transposed:
        value = _slot_adjoint(n, k, tu._data)
        if value is None:
            value = _np_zeros(kid._data.shape, dtype=kid._data.dtype)
        elif type(value) is not ndarray:
            value = np_asarray(value)
    else:
        value = _slot_apply(n, k, tu._data)
    cdef Tensor t = new_tensor(value)
    cdef Tensor ca = tu if tu._requires_grad else None
    if recording(ca, None):
        record(t, TOP_LINEAR_MAP, ca, None, n, None, (k, transposed))
        n._parents += 1         # in-place ops on n would change the map (_check_rebase)
    return t


cdef int _linear_map_backward(Sweep s, Tensor m, object g) except -1:
    k, transposed = m.aux
    r = _slot_apply(<Tensor>m.x0, k, g) if transposed else _slot_adjoint(<Tensor>m.x0, k, g)
    if r is not None:
        push(s, 0, r, True)
    return 0


cdef object _linear_map_tangent(Tensor m, object ta, object tb, object tc):
    k, transposed = m.aux
    if transposed:
        return _slot_adjoint(<Tensor>m.x0, k, ta)
    return _slot_apply(<Tensor>m.x0, k, ta)

_register(TOP_LINEAR_MAP, _linear_map_backward, _linear_map_tangent)


def node_parts(node):
    """(op code, a, b, c, x0, x1, aux) of a recorded node, for create_graph's rules
    (graph_rules.py), after PyTorch's version check of what its rules read."""
    cdef Tensor n = <Tensor?>node
    if n.op != TOP_LEAF:
        _check_saved(n)
    return n.op, n.a, n.b, n.c, n.x0, n.x1, n.aux

# ---------------------------------------------------------------------------------------------

cdef int _check_complete() except -1:
    cdef int op
    for op in range(TOP_LEAF + 1, TOP_COUNT):
        if _backward_rules[op] == NULL or _tangent_rules[op] == NULL:
            raise ImportError(f"fastgrad._tensor.rules: op {op_names[op]} has no rules")
    return 0

_check_complete()
