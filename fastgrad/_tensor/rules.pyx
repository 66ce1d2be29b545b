# The derivative rules of every op: one section per op code, holding its two rules side by side.
#
#   backward rule   (n, g) -> None: the vector-Jacobian product. Pushes the gradient g of node n
#                   to n's children with accumulate().
#   tangent rule    (n, ta, tb, tc) -> t: the Jacobian-vector product. The tangent of n from
#                   its children's tangents (None is an exact zero).
#
# Both read only what the op saved on the node (tensor.pxd lists the slots per op code), and the
# tangent rule is the transpose of the backward rule: the same masks, clamps, tie rule and
# conventions at x == 0, so tensor_jvp(out, {x: v}) . w equals grad_x(out . w) . v to rounding.
# A section ends by registering its pair for its op code; the sweeps (sweep.pyx) only route a
# node to its op's rules through backward_rule() and tangent_rule(), and every op code must have
# both rules (checked when the module is imported).
from libc.stdint cimport uint8_t

from fastgrad._tensor.loops cimport cross_entropy_grad, colsum, relu_mask
from fastgrad._tensor.tensor cimport *

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

ctypedef int (*_backward_fn)(Tensor n, object g) except -1
ctypedef object (*_tangent_fn)(Tensor n, object ta, object tb, object tc)

cdef _backward_fn _backward_rules[TOP_COUNT]
cdef _tangent_fn _tangent_rules[TOP_COUNT]


cdef void _register(uint8_t op, _backward_fn backward, _tangent_fn tangent) noexcept:
    _backward_rules[op] = backward
    _tangent_rules[op] = tangent


cdef int backward_rule(Tensor n, object g) except -1:
    cdef _backward_fn rule = _backward_rules[n.op]
    if rule == NULL:  # pragma: no cover - every recorded op code has rules (checked at import)
        raise RuntimeError(f"fastgrad: no backward rule for op {n.op}")
    return rule(n, g)


cdef object tangent_rule(Tensor n, object ta, object tb, object tc):
    cdef _tangent_fn rule = _tangent_rules[n.op]
    if rule == NULL:  # pragma: no cover - every recorded op code has rules (checked at import)
        raise RuntimeError(f"fastgrad: no tangent rule for op {n.op}")
    return rule(n, ta, tb, tc)


# ---------------------------------------------------------------------------------------------
# Shared by the rules


cdef object _unbroadcast(object g, tuple shape):
    """Sum g over the axes numpy broadcast to reach g.shape from shape."""
    cdef tuple gs = g.shape
    cdef int lead = len(gs) - len(shape)
    cdef int i
    axes = list(range(lead))
    for i in range(len(shape)):
        if shape[i] == 1 and gs[lead + i] != 1:
            axes.append(lead + i)
    return reduce_sum(g, tuple(axes), False).reshape(shape)


cdef int accumulate(Tensor child, object contrib, bint fresh) except -1:
    """Add a contribution to child's gradient buffer. `fresh`: nobody else holds contrib."""
    if child is None:
        return 0
    cdef object cd = child._data
    if contrib.shape != cd.shape:
        contrib = _unbroadcast(contrib, cd.shape)
        fresh = True
    if type(contrib) is not ndarray:        # numpy turns 0-d results into scalars
        contrib = np_asarray(contrib)
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

cdef int _add_backward(Tensor n, object g) except -1:
    accumulate(n.a, g, False)
    accumulate(n.b, g, False)
    return 0


cdef object _add_tangent(Tensor n, object ta, object tb, object tc):
    return _tplus(ta, tb)

_register(TOP_ADD, _add_backward, _add_tangent)

# --- sub: a - b ------------------------------------------------------------------------------

cdef int _sub_backward(Tensor n, object g) except -1:
    accumulate(n.a, g, False)
    if n.b is not None:
        accumulate(n.b, -g, True)
    return 0


cdef object _sub_tangent(Tensor n, object ta, object tb, object tc):
    return _tminus(ta, tb)

_register(TOP_SUB, _sub_backward, _sub_tangent)

# --- mul: x0 * x1 ----------------------------------------------------------------------------

cdef int _mul_backward(Tensor n, object g) except -1:
    if n.a is not None:
        accumulate(n.a, g * n.x1, True)
    if n.b is not None:
        accumulate(n.b, g * n.x0, True)
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

cdef int _div_backward(Tensor n, object g) except -1:
    if n.a is not None:
        accumulate(n.a, g / n.x1, True)
    if n.b is not None:
        accumulate(n.b, -g * n._data / n.x1, True)
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

cdef object _pow_dy(object out, object x, object v):
    """v * d(x**y)/dy, with the convention at x == 0."""
    with _np_errstate(divide='ignore', invalid='ignore'):
        dv = v * out * _np_log(x)
    return _np_where(np_asarray(x) == 0, 0.0, dv)


cdef int _pow_backward(Tensor n, object g) except -1:
    if n.a is not None:
        y = n.x1
        if type(y) is float and y == 2.0:
            accumulate(n.a, g * 2.0 * n.x0, True)
        else:
            accumulate(n.a, g * y * n.x0 ** (y - 1.0), True)
    if n.b is not None:
        accumulate(n.b, _pow_dy(n._data, n.x0, g), True)
    return 0


cdef object _pow_tangent(Tensor n, object ta, object tb, object tc):
    x = n.x0
    y = n.x1
    t = None
    if ta is not None:
        if type(y) is float and y == 2.0:
            t = ta * 2.0 * x
        else:
            t = ta * y * x ** (y - 1.0)
    if tb is not None:
        t = _tplus(t, _pow_dy(n._data, x, tb))
    return t

_register(TOP_POW, _pow_backward, _pow_tangent)

# --- neg: -a ---------------------------------------------------------------------------------

cdef int _neg_backward(Tensor n, object g) except -1:
    accumulate(n.a, -g, True)
    return 0


cdef object _neg_tangent(Tensor n, object ta, object tb, object tc):
    return -ta

_register(TOP_NEG, _neg_backward, _neg_tangent)

# --- matmul: x0 @ x1 (numpy's rules: 1-D operands are promoted, batches broadcast) -----------

cdef int _matmul_backward(Tensor n, object g) except -1:
    x = n.x0
    y = n.x1
    cdef bint x1d = x.ndim == 1, y1d = y.ndim == 1
    if x1d and y1d:
        if n.a is not None:
            accumulate(n.a, g * y, True)
        if n.b is not None:
            accumulate(n.b, g * x, True)
        return 0
    if x.ndim == 2 and y.ndim == 2:
        if n.a is not None:
            accumulate(n.a, g @ y.T, True)
        if n.b is not None:
            accumulate(n.b, x.T @ g, True)
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
        accumulate(n.a, ga, True)
    if n.b is not None:
        gb = x2.swapaxes(-1, -2) @ g2
        if y1d:
            gb = gb[..., 0]
        accumulate(n.b, gb, True)
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

cdef int _sum_backward(Tensor n, object g) except -1:
    accumulate(n.a, _np_broadcast_to(g.reshape(n.aux), n.x0.shape), False)
    return 0


cdef object _sum_tangent(Tensor n, object ta, object tb, object tc):
    return reduce_sum(ta, _kept_axes(n.aux), True).reshape(n._data.shape)

_register(TOP_SUM, _sum_backward, _sum_tangent)

# --- mean: aux is (keepdims shape, count) ----------------------------------------------------

cdef int _mean_backward(Tensor n, object g) except -1:
    accumulate(n.a, _np_broadcast_to(g.reshape(n.aux[0]) / n.aux[1], n.x0.shape), False)
    return 0


cdef object _mean_tangent(Tensor n, object ta, object tb, object tc):
    return reduce_sum(ta, _kept_axes(n.aux[0]), True).reshape(n._data.shape) / n.aux[1]

_register(TOP_MEAN, _mean_backward, _mean_tangent)

# --- max: aux is (keepdims shape, axes); ties share the gradient evenly ----------------------

cdef int _max_backward(Tensor n, object g) except -1:
    kshape, axes = n.aux
    mask = n.x0 == n._data.reshape(kshape)
    count = mask.sum(axis=axes, keepdims=True)
    accumulate(n.a, mask * (g.reshape(kshape) / count), True)
    return 0


cdef object _max_tangent(Tensor n, object ta, object tb, object tc):
    # the mean of the tangents of the elements equal to the max: backward's even split
    kshape, axes = n.aux
    mask = n.x0 == n._data.reshape(kshape)
    count = mask.sum(axis=axes, keepdims=True)
    return (reduce_sum(mask * ta, axes, True) / count).reshape(n._data.shape)

_register(TOP_MAX, _max_backward, _max_tangent)


# ---------------------------------------------------------------------------------------------
# Shape ops

# --- reshape ---------------------------------------------------------------------------------

cdef int _reshape_backward(Tensor n, object g) except -1:
    accumulate(n.a, g.reshape(n.x0.shape), False)
    return 0


cdef object _reshape_tangent(Tensor n, object ta, object tb, object tc):
    return ta.reshape(n._data.shape)

_register(TOP_RESHAPE, _reshape_backward, _reshape_tangent)

# --- transpose: aux is the inverse permutation -----------------------------------------------

cdef int _transpose_backward(Tensor n, object g) except -1:
    accumulate(n.a, g.transpose(n.aux), False)
    return 0


cdef object _transpose_tangent(Tensor n, object ta, object tb, object tc):
    inverse = n.aux
    perm = [0] * len(inverse)
    for i in range(len(inverse)):
        perm[inverse[i]] = i
    return ta.transpose(perm)

_register(TOP_TRANSPOSE, _transpose_backward, _transpose_tangent)

# --- getitem: aux is (key, basic); basic keys never select an element twice ------------------

cdef int _index_backward(Tensor n, object g) except -1:
    key, basic = n.aux
    gz = _np_zeros(n.x0.shape, dtype=g.dtype)
    if basic:
        gz[key] = g
    else:
        _np_add_at(gz, key, g)
    accumulate(n.a, gz, True)
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


cdef int _join_backward(Tensor n, object g) except -1:
    for i, kid in enumerate(n.x0):
        if kid is not None:
            accumulate(<Tensor>kid, g[_join_part(n, i)], False)
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

cdef int _relu_backward(Tensor n, object g) except -1:
    # one branch-free compiled pass (a per-element branch, np.where or a naive C loop,
    # mispredicts half the time and measured 5x slower on (256, 128))
    accumulate(n.a, relu_mask(g, n._data, n._owned), True)
    return 0


cdef object _relu_tangent(Tensor n, object ta, object tb, object tc):
    return relu_mask(ta, n._data, False)

_register(TOP_RELU, _relu_backward, _relu_tangent)

# --- tanh: 1 - out**2 ------------------------------------------------------------------------

cdef int _tanh_backward(Tensor n, object g) except -1:
    out = n._data
    accumulate(n.a, g * (1.0 - out * out), True)
    return 0


cdef object _tanh_tangent(Tensor n, object ta, object tb, object tc):
    out = n._data
    return ta * (1.0 - out * out)

_register(TOP_TANH, _tanh_backward, _tanh_tangent)

# --- exp: out --------------------------------------------------------------------------------

cdef int _exp_backward(Tensor n, object g) except -1:
    accumulate(n.a, g * n._data, True)
    return 0


cdef object _exp_tangent(Tensor n, object ta, object tb, object tc):
    return ta * n._data

_register(TOP_EXP, _exp_backward, _exp_tangent)

# --- log: 1 / x ------------------------------------------------------------------------------

cdef int _log_backward(Tensor n, object g) except -1:
    accumulate(n.a, g / n.x0, True)
    return 0


cdef object _log_tangent(Tensor n, object ta, object tb, object tc):
    return ta / n.x0

_register(TOP_LOG, _log_backward, _log_tangent)

# --- sigmoid: out (1 - out) ------------------------------------------------------------------

cdef int _sigmoid_backward(Tensor n, object g) except -1:
    out = n._data
    accumulate(n.a, g * out * (1.0 - out), True)
    return 0


cdef object _sigmoid_tangent(Tensor n, object ta, object tb, object tc):
    out = n._data
    return ta * out * (1.0 - out)

_register(TOP_SIGMOID, _sigmoid_backward, _sigmoid_tangent)

# --- softmax along the axes in aux -----------------------------------------------------------

cdef int _softmax_backward(Tensor n, object g) except -1:
    out = n._data
    go = g * out
    accumulate(n.a, go - out * reduce_sum(go, n.aux, True), True)
    return 0


cdef object _softmax_tangent(Tensor n, object ta, object tb, object tc):
    out = n._data
    to = ta * out
    return to - out * reduce_sum(to, n.aux, True)

_register(TOP_SOFTMAX, _softmax_backward, _softmax_tangent)

# --- log_softmax along the axes in aux -------------------------------------------------------

cdef int _log_softmax_backward(Tensor n, object g) except -1:
    accumulate(n.a, g - _np_exp(n._data) * reduce_sum(g, n.aux, True), True)
    return 0


cdef object _log_softmax_tangent(Tensor n, object ta, object tb, object tc):
    return ta - reduce_sum(_np_exp(n._data) * ta, n.aux, True)

_register(TOP_LOG_SOFTMAX, _log_softmax_backward, _log_softmax_tangent)


# ---------------------------------------------------------------------------------------------
# The functional ops (functional.pyx)

# --- linear: x @ w.T + b; x0 = x, x1 = w; children a = x, b = w, c = bias -------------------

cdef int _linear_backward(Tensor n, object g) except -1:
    x = n.x0
    w = n.x1
    if n.a is not None:
        accumulate(n.a, g * w[0] if w.shape[0] == 1 else g @ w, True)   # one output: outer product
    if n.b is not None or n.c is not None:
        if x.ndim == 2:
            g2 = g
            x2 = x
        else:
            g2 = g.reshape(-1, w.shape[0])
            x2 = x.reshape(-1, w.shape[1])
        if n.b is not None:
            accumulate(n.b, g2.T @ x2, True)
        if n.c is not None:
            accumulate(n.c, colsum(g2), True)
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

cdef int _mse_backward(Tensor n, object g) except -1:
    ga = (2.0 / n.aux) * g * n.x0
    accumulate(n.a, ga, True)
    if n.b is not None:
        accumulate(n.b, -ga, True)
    return 0


cdef object _mse_tangent(Tensor n, object ta, object tb, object tc):
    return reduce_sum(n.x0 * _tminus(ta, tb), None, False) * 2.0 / n.aux

_register(TOP_MSE, _mse_backward, _mse_tangent)

# --- cross_entropy: x0 = z (shifted logits), x1 = targets, aux = lse -------------------------
# d/dlogits = (softmax(z) - onehot(targets)) / rows

cdef int _cross_entropy_backward(Tensor n, object g) except -1:
    z = n.x0
    rows = z.shape[0]
    scale = g / rows
    p = cross_entropy_grad(z, n.aux, n.x1, scale)
    if p is None:
        p = _np_exp(z - n.aux[:, None])
        p[_np_arange(rows), n.x1] -= 1.0
        p *= scale
    accumulate(n.a, p, True)
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

cdef int _bce_backward(Tensor n, object g) except -1:
    count, lp, lq = n.aux
    pv = n.x0
    tv = n.x1
    if n.a is not None:
        accumulate(n.a, g * (pv - tv) / _np_maximum(pv * (1.0 - pv), 1e-12) / count, True)
    if n.b is not None:
        accumulate(n.b, g * (lq - lp) / count, True)
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

cdef int _check_complete() except -1:
    cdef int op
    for op in range(TOP_LEAF + 1, TOP_COUNT):
        if _backward_rules[op] == NULL or _tangent_rules[op] == NULL:
            raise ImportError(f"fastgrad._tensor.rules: op {op_names[op]} has no rules")
    return 0

_check_complete()
