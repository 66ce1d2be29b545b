# Memory helpers shared by the compiled modules (the contract is in _memory.pxd).
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdlib cimport realloc


cdef size_t _power_of_two_at_least(size_t n) noexcept nogil:
    cdef size_t cap = MIN_CAPACITY
    while cap < n:
        cap *= 2
    return cap


cdef size_t capacity_for(size_t needed, size_t current) noexcept nogil:
    if needed > current:
        return _power_of_two_at_least(needed)
    if current > SHRINK_ABOVE and needed < current // 4:
        return max(_power_of_two_at_least(needed), <size_t>SHRINK_ABOVE)
    return current


cdef int resize_array(void **p, size_t item, size_t n, str what) except -1:
    cdef void *q = realloc(p[0], item * n)
    if q == NULL:
        raise MemoryError(f"fastgrad: no memory for {what}")
    p[0] = q
    return 0


cdef class Scratch:
    def __cinit__(self, Py_ssize_t n, size_t itemsize):
        self.p = PyMem_Malloc(max(n, 1) * itemsize)
        if self.p == NULL:
            raise MemoryError()

    def __dealloc__(self):
        PyMem_Free(self.p)
