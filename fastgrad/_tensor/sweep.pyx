# cython: boundscheck=True, wraparound=True
# (indexing of Python objects stays checked in the tensor engine: see tensor.pxd)
# The two sweeps over a recorded graph: the reverse sweep (Tensor.backward) and the forward-mode
# sweep (tensor_jvp). Both walk the nodes behind an output in one topological order (_topo) and
# route each node to its op's rules (rules.pyx); neither knows any op.
from libc.stdint cimport uint8_t, uint64_t

from fastgrad._tensor.rules cimport Sweep, backward_rule, push, tangent_rule
from fastgrad._tensor.tensor cimport *

import numpy as np

cdef object _np_broadcast_to = np.broadcast_to
cdef object _np_zeros = np.zeros
cdef object _np_empty_like = np.empty_like

# The DFS's marks: a node is visited in DFS number e when its mark is 2e, done when 2e + 1. 64
# bits never wrap, so a mark left by an old DFS can never pass for a current one.
cdef uint64_t _epoch = 0


cdef inline void _push_child(list stack, Tensor k, uint64_t visited):
    if k is not None and k.mark < visited:
        stack.append(k)


cdef list _topo(Tensor root, Sweep s):
    """Nodes below root in post-order (children first), by an explicit-stack DFS; each node's
    slot is set to its position, and if s is given its children's positions are recorded there.

    The marks and slots are written on the nodes, which other sweeps share, so the DFS must not
    be interleaved with another: it runs no Python code, allocates no object the cyclic
    collector could start on (whose finalizers could run a backward()), and holds the GIL
    throughout. Everything after it reads the sweep's own copy of the positions (s), never the
    nodes' slots."""
    global _epoch
    cdef list order = []
    cdef list stack = [root]
    _epoch += 1
    cdef uint64_t visited = 2 * _epoch
    cdef uint64_t done = visited + 1
    cdef Tensor n
    if s is not None:
        s.nodes = order
    while stack:
        n = <Tensor>stack[len(stack) - 1]
        if n.mark < visited:
            n.mark = visited
            if n.op == TOP_LEAF:
                continue        # leaves have no children; emitted on the next pass
            if n.op == TOP_CONCAT or n.op == TOP_STACK:
                for k in <tuple?>n.x0:
                    if k is not None:
                        _push_child(stack, <Tensor?>k, visited)
            else:
                _push_child(stack, n.a, visited)
                _push_child(stack, n.b, visited)
                _push_child(stack, n.c, visited)
        else:
            stack.pop()
            if n.mark != done:
                n.mark = done
                if s is not None:
                    s.add_edges(n)
                n.slot = len(order)
                order.append(n)
    return order


# ---------------------------------------------------------------------------------------------
# The reverse sweep


cdef int _merge_into_leaf(Tensor leaf, object g, bint owned) except -1:
    """leaf.grad += g, as one atomic step for other threads: the sum is computed out of place
    (numpy may release the GIL, or a warnings hook run Python code, during it) into a new
    gradient Tensor, stored only if no other sweep stored a gradient meanwhile; otherwise it is
    computed again. (g has the leaf's shape: push() checked it.)"""
    cdef Tensor old
    while True:
        old = leaf._grad
        if old is None:
            new = g if owned else g.copy()  # a leaf's .grad is the user's: never a shared view
        elif old._data.shape != g.shape:
            raise RuntimeError(f"backward(): the .grad of shape {old._data.shape} of a tensor of "
                               f"shape {leaf._data.shape} cannot accumulate a gradient of shape "
                               f"{g.shape} (was its .data replaced?)")
        else:
            new = old._data + g
            if type(new) is not ndarray:    # (0-d sums are numpy scalars)
                new = np_asarray(new)
        if leaf._grad is old:       # nothing in between runs Python code or releases the GIL
            leaf._grad = wrap_grad(new)
            return 0
        if old is None and not owned:   # keep the copy for the next attempt
            g = new
            owned = True


cdef int _sweep_from(Tensor root, object seed, dict wanted) except -1:
    """The reverse sweep from root, seeded with seed (a fresh array of root's shape and
    dtype). Without `wanted`, each leaf's gradient is accumulated into its .grad (backward).
    With it (node address -> None), each wanted node's gradient is stored there instead, and
    no .grad changes (autograd.grad)."""
    cdef Sweep s = Sweep()
    cdef list order = _topo(root, s)
    cdef Py_ssize_t count = len(order), i
    cdef Tensor n
    s.size_owned(count)
    cdef list grads = [None] * count
    s.grads = grads
    grads[count - 1] = seed        # the root is last
    s.owned[count - 1] = True
    # (numpy's warnings at edge values, such as log 0 in a rule, are numpy's to show: quieting
    # them costs an errstate per sweep, and a script's own np.seterr settings apply here)
    for i in range(count - 1, -1, -1):
        g = grads[i]
        if g is None:
            continue
        grads[i] = None             # consumed: intermediate buffers are freed as we go
        n = <Tensor>order[i]
        if wanted is not None:
            key = _addr(n)
            if key in wanted:
                # n's gradient is complete here: every parent of n is above it in the order
                wanted[key] = g if (s.owned[i] and n.op == TOP_LEAF) else g.copy()
            if n.op == TOP_LEAF:
                continue
        elif n.op == TOP_LEAF:
            _merge_into_leaf(n, g, s.owned[i])
            continue
        s.kids = s.edges + s.first[i]
        s.nkids = s.first[i + 1] - s.first[i]
        s.g_owned = s.owned[i]
        backward_rule(s, n, g)
    return 0


cdef int _run_backward(Tensor root, object seed) except -1:
    """Accumulate seed . d(root)/d(leaf) into every leaf's gradient buffer (seed: a fresh array
    of root's shape and dtype, checked by Tensor.backward)."""
    return _sweep_from(root, seed, None)


install_backward_sweep(_run_backward)


def tensor_vjp(output, seed, inputs):
    """The vector-Jacobian products seed . d(output)/d(x) for each x in inputs, by one reverse
    sweep that accumulates into no .grad (torch.autograd.grad's first-order core).

    `output`: a Tensor that requires grad. `seed`: an array of output's shape and dtype (the
    caller checks it). `inputs`: a sequence of Tensors that require grad, leaves or not, each
    possibly used at several places. Returns a list with, per input, its gradient as a fresh
    array of its shape and dtype, or None if output does not depend on it.
    """
    cdef Tensor root = <Tensor?>output
    cdef dict wanted = {}
    for item in inputs:
        wanted[_addr(<Tensor?>item)] = None
    _sweep_from(root, seed, wanted)
    return [wanted[_addr(<Tensor>item)] for item in inputs]


def graph_order(root):
    """The nodes behind root, children first (the reverse sweep's order read front to back):
    the walk of create_graph's sweep (graph_rules.py)."""
    return _topo(<Tensor?>root, None)


# ---------------------------------------------------------------------------------------------
# Forward mode: the tangent sweep (Jacobian-vector products)
#
# tensor_jvp walks the nodes recorded behind an output in _topo's order (children first), the
# reverse sweep's order read front to back, and gives each node its tangent (the derivative of
# its value along the inputs' tangents) from its children's by its op's tangent rule, using the
# operands and parameters the op saved. No second graph is built. Tangents live in a dict keyed
# by node address, never on the nodes; a node none of whose children carries a tangent gets
# none (an exact zero: no array, no work), and a tangent is dropped as soon as its last parent
# has used it (as the reverse sweep frees intermediate gradient buffers). backward() frees only
# gradient buffers, never saved operands, so the sweep works before and after any number of
# backward calls.


cdef inline Py_ssize_t _addr(Tensor n) noexcept:
    return <Py_ssize_t><void *>n


cdef inline object _tget(dict tan, Tensor k):
    """k's tangent (None for no child or a zero tangent)."""
    if k is None:
        return None
    return tan.get(_addr(k))


cdef object _node_tangent(Tensor n, dict tan):
    """n's tangent by its op's tangent rule; None (zero) if none of its children has one."""
    if n.op == TOP_CONCAT or n.op == TOP_STACK:
        kids = [_tget(tan, <Tensor>kid) for kid in n.x0]
        for tk in kids:
            if tk is not None:
                return tangent_rule(n, kids, None, None)
        return None
    ta = _tget(tan, n.a)
    tb = _tget(tan, n.b)
    tc = _tget(tan, n.c)
    if ta is None and tb is None and tc is None:
        return None
    return tangent_rule(n, ta, tb, tc)


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

    cdef list order = _topo(root, None)
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
        t = _node_tangent(n, tan)
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
