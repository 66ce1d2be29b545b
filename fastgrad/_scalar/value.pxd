# What other compiled modules may use of the scalar engine: the arena and its primitives.
from cpython.object cimport PyObject
from libc.stdint cimport int32_t, uint8_t
from fastgrad._scalar.arena cimport Arena

# The one arena holding every scalar node (layout and invariants in arena.pxd).
cdef Arena A

# A Value is a handle: it holds its slot alive and is what A.handle[slot] points to.
# Invariant: A.handle[v.slot] is v for every live handle v, and a compaction that moves the slot
# updates v.slot; so read `slot` only after the last reserve() (see below).
# Not final: micrograd scripts subclass Value and add methods to it (value.pyx, "Python state").
cdef class Value:
    cdef int32_t slot           # the node's slot in A (-1 only while the handle is being made)
    cdef object __weakref__     # Values can be weakly referenced (dict keys in user code)
    # Python state, as owned raw pointers so that Cython sees no object field (value.pyx makes
    # the type collectable itself: plain handles then cost no collector work):
    cdef PyObject *attributes     # the instance dict (v.name = ...), made on first use, or NULL
    cdef PyObject *user_backward  # a closure assigned to v._backward (FLAG_CLOSURE), or NULL

# Building: call reserve(k) first, and read handles' slots only after it (reserving may
# compact the arena, which moves slots); the next k new_node/new_leaf calls cannot fail.
# A node built but never wrapped or used by a parent is simply collected by the next compaction.
cdef int reserve(int32_t k) except -1
# A node of op with children a, b (slots, or -1), value v and constant operand aux.
cdef int32_t new_node(uint8_t op, int32_t a, int32_t b, double v, double aux) noexcept
# A leaf of value v.
cdef int32_t new_leaf(double v) noexcept
# A handle for a slot that has none (the slot lives at least as long as the handle).
cdef Value wrap(int32_t s)
# The slots reachable from root, ascending (a topological order), into A.order; returns count.
cdef int32_t topo_order(int32_t root) noexcept
# Raise the error Python's float arithmetic raises for x ** y, or for exp/log of x (op).
cdef int check_pow(double x, double y) except -1
cdef int check_unary(uint8_t op, double x) except -1
