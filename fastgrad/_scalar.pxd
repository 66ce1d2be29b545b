# What other compiled modules may use of the scalar engine: the arena and its primitives.
cimport cython
from libc.stdint cimport int32_t, uint8_t
from fastgrad._core cimport Arena

cdef Arena A

@cython.final
cdef class Value:
    cdef int32_t slot

# Building: call reserve(k) first, and read handles' slots only after it (reserving may
# compact the arena, which moves slots); the next k new_node/new_leaf calls cannot fail.
cdef int reserve(int32_t k) except -1
cdef int32_t new_node(uint8_t op, int32_t a, int32_t b, double v, double aux) noexcept
cdef int32_t new_leaf(double v) noexcept
# Lifetime.
cdef void decref(int32_t s) noexcept
cdef void drop_if_unowned(int32_t s) noexcept
cdef Value wrap(int32_t s)
# The slots reachable from root, ascending (a topological order), into A.order; returns count.
cdef int32_t topo_order(int32_t root) noexcept
cdef double op_forward(uint8_t op, double x, double y, double aux) noexcept nogil
