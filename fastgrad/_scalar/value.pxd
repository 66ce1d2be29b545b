# What other compiled modules may use of the scalar engine: the arena and its primitives.
cimport cython
from libc.stdint cimport int32_t, uint8_t
from fastgrad._scalar.arena cimport Arena

# The one arena holding every scalar node (layout and invariants in arena.pxd).
cdef Arena A

# A Value is a handle: it holds its slot alive and is what A.handle[slot] points to (borrowed).
# Invariant: A.handle[v.slot] is v for every live handle v, and a compaction that moves the slot
# updates v.slot; so read `slot` only after the last reserve() (see below).
@cython.final
cdef class Value:
    cdef int32_t slot           # the node's slot in A (-1 only while the handle is being made)
    cdef object __weakref__     # Values can be weakly referenced (dict keys in user code)

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
