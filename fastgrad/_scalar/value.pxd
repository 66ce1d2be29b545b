# What other compiled modules may use of the scalar engine: the arena and its primitives.
cimport cython
from libc.stdint cimport int32_t, uint8_t
from fastgrad._scalar.arena cimport Arena

cdef Arena A

@cython.final
cdef class Value:
    cdef int32_t slot
    cdef object __weakref__

# Building: call reserve(k) first, and read handles' slots only after it (reserving may
# compact the arena, which moves slots); the next k new_node/new_leaf calls cannot fail.
# A node built but never wrapped or used by a parent is simply collected by the next compaction.
cdef int reserve(int32_t k) except -1
cdef int32_t new_node(uint8_t op, int32_t a, int32_t b, double v, double aux) noexcept
cdef int32_t new_leaf(double v) noexcept
# A handle for a slot that has none (the slot lives at least as long as the handle).
cdef Value wrap(int32_t s)
# The slots reachable from root, ascending (a topological order), into A.order; returns count.
cdef int32_t topo_order(int32_t root) noexcept
# Raise the error Python's float arithmetic raises for x ** y, or for exp/log of x (op).
cdef int check_pow(double x, double y) except -1
cdef int check_unary(uint8_t op, double x) except -1
