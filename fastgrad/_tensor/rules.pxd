# Each op's derivative rules (rules.pyx), as the sweeps (sweep.pyx) call them on a recorded node.
from libc.stdint cimport uint8_t

from fastgrad._tensor.tensor cimport Tensor


# The state of one reverse sweep. Everything a sweep writes while it runs is here, never on the
# nodes it walks: the gradients it accumulates for inner nodes and leaves, and which of them it
# allocated. So two sweeps over graphs that share nodes (in two threads, or one started from
# user code running inside another) cannot see each other's partial sums; the only shared
# writes are the leaves' .grad, which the sweep merges into at the end, one leaf at a time
# (sweep.pyx). Invariants: nodes is in post-order (children first); node i's children are at
# positions edges[first[i]] .. edges[first[i + 1] - 1] (-1 where there is no child), all below
# i: a, b, c for most ops (three entries), one per element of x0 for concatenate and stack.
cdef enum:
    SWEEP_INLINE_NODES = 32     # graphs up to this size need no allocation for the arrays below

cdef class Sweep:
    cdef list nodes             # the nodes below the root, children first
    cdef list grads             # grads[i]: the gradient of nodes[i] summed so far, or None
    cdef uint8_t *owned         # owned[i]: grads[i] was allocated by this sweep (add in place)
    cdef Py_ssize_t *edges      # the children's positions, node after node
    cdef Py_ssize_t *first      # node i's children start at edges[first[i]]; first[n] = total
    cdef size_t edges_capacity, first_capacity, owned_capacity    # in items
    # the arrays' first storage, inside the object (heap arrays replace them as they grow)
    cdef Py_ssize_t inline_edges[3 * SWEEP_INLINE_NODES]
    cdef Py_ssize_t inline_first[SWEEP_INLINE_NODES + 1]
    cdef uint8_t inline_owned[SWEEP_INLINE_NODES]
    cdef Py_ssize_t *kids       # the node being processed: its children's positions
    cdef Py_ssize_t nkids       # how many (3, or len(x0) for concatenate and stack)
    cdef bint g_owned           # its gradient (the rule's g) may be overwritten

    # record the children of node (emitted at position len(nodes)); every child already has
    # its position in this sweep in its slot field
    cdef int add_edges(self, Tensor node) except -1
    # make owned hold n items (after the DFS)
    cdef int size_owned(self, Py_ssize_t n) except -1


# Push the gradient g of n (an array of n's shape; overwritable if s.g_owned) to n's children,
# through push(); s.kids holds their positions.
cdef int backward_rule(Sweep s, Tensor n, object g) except -1
# The tangent of n from its children's: ta, tb, tc are those of n.a, n.b, n.c (None is zero; not
# all are None); for concatenate and stack, ta is the list of the tangents of the children in
# n.x0. Returns an array or number that broadcasts to n's shape, in any float dtype.
cdef object tangent_rule(Tensor n, object ta, object tb, object tc)
# Add a contribution to the gradient of the node's child number `which` (0, 1, 2 for a, b, c;
# the position in x0 for concatenate and stack; nothing if there is no such child). fresh:
# nobody else holds contrib, so the sweep may keep it as the buffer and add into it in place.
# The contribution is summed over broadcast axes to the child's shape (RuntimeError if that
# shape cannot have been broadcast to it: the child's .data was replaced by one of another
# shape after the op) and cast to its dtype.
cdef int push(Sweep s, Py_ssize_t which, object contrib, bint fresh) except -1
