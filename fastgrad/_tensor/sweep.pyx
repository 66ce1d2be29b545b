# The two sweeps over a recorded graph: the reverse sweep (Tensor.backward) and the forward-mode
# sweep (tensor_jvp), each with its rules: one case per op code in each.
from libc.stdint cimport uint8_t, uint32_t

from fastgrad._tensor.loops cimport colsum, cross_entropy_grad, relu_mask
from fastgrad._tensor.tensor cimport *

import numpy as np

cdef object _np_exp = np.exp
cdef object _np_log = np.log
cdef object _np_maximum = np.maximum
cdef object _np_where = np.where
cdef object _np_broadcast_to = np.broadcast_to
cdef object _np_zeros = np.zeros
cdef object _np_empty_like = np.empty_like
cdef object _np_add_at = np.add.at
cdef object _np_arange = np.arange
cdef object _np_errstate = np.errstate

cdef uint32_t _epoch = 0


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


# ---------------------------------------------------------------------------------------------
# The reverse sweep


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


cdef int _accum(Tensor child, object contrib, bint fresh) except -1:
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


cdef int _run_backward(Tensor root, object seed) except -1:
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


install_backward_sweep(_run_backward)


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
            _accum(n.b, _np_where(np_asarray(n.x0) == 0, 0.0, gb), True)
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
        _accum(n.a, relu_mask(g, out, n._owned), True)
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
        _accum(n.a, go - out * reduce_sum(go, n.aux, True), True)
    elif op == TOP_LOG_SOFTMAX:
        _accum(n.a, g - _np_exp(out) * reduce_sum(g, n.aux, True), True)
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
        p = cross_entropy_grad(z, n.aux, n.x1, scale)
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
            _accum(n.c, colsum(g2), True)
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
            t = _tplus(t, _np_where(np_asarray(x) == 0, 0.0, tt))
    elif op == TOP_NEG:
        t = -ta
    elif op == TOP_MATMUL:
        # numpy's matmul promotes 1-D operands and broadcasts batches for the tangents too
        if ta is not None:
            t = ta @ n.x1
        if tb is not None:
            t = _tplus(t, n.x0 @ tb)
    elif op == TOP_SUM:
        t = reduce_sum(ta, _kept_axes(n.aux), True).reshape(out.shape)
    elif op == TOP_MEAN:
        t = reduce_sum(ta, _kept_axes(n.aux[0]), True).reshape(out.shape) / n.aux[1]
    elif op == TOP_MAX:
        # the mean of the tangents of the elements equal to the max: backward's even split
        kshape, axes = n.aux
        mask = n.x0 == out.reshape(kshape)
        count = mask.sum(axis=axes, keepdims=True)
        t = (reduce_sum(mask * ta, axes, True) / count).reshape(out.shape)
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
        t = relu_mask(ta, out, False)          # ta * (out > 0), the same mask as backward
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
        t = to - out * reduce_sum(to, n.aux, True)
    elif op == TOP_LOG_SOFTMAX:
        t = ta - reduce_sum(_np_exp(out) * ta, n.aux, True)
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
        t = reduce_sum(d * td, None, False) * 2.0 / n.aux
    elif op == TOP_CROSS_ENTROPY:
        # mean over rows of softmax(x_i) . v_i - v_i[target_i]
        z = n.x0
        lse = n.aux
        rows = z.shape[0]
        p = _np_exp(z - lse[:, None])
        picked = ta[_np_arange(rows), n.x1]
        t = (reduce_sum(p * ta, None, False) - reduce_sum(picked, None, False)) / rows
    elif op == TOP_BCE:
        count, lp, lq = n.aux
        pv = n.x0
        if ta is not None:
            t = reduce_sum(ta * (pv - n.x1) / _np_maximum(pv * (1.0 - pv), 1e-12), None,
                     False) / count
        if tb is not None:
            t = _tplus(t, reduce_sum(tb * (lq - lp), None, False) / count)
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
    if isinstance(v, Real):
        t = _np_empty_like(xd)
        t.fill(v)
        return t
    try:
        t = as_float_array(v, xd.dtype, False)
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
    sum over x in tangents of d(output)/dx . tangents[x], by one forward-mode tangent sweep over
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
                             f"one for a tensor computed by {op_names[k.op]} (to perturb an "
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
        if type(t) is not ndarray:          # numpy turns 0-d results into scalars
            t = np_asarray(t)
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
