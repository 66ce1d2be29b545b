# Memory helpers shared by the compiled modules: one realloc policy, one self-freeing scratch
# buffer, one way to keep the cyclic collector out of a critical section.

cdef extern from "Python.h":
    # Python >= 3.10: switch the cyclic collector off and on, returning its previous state.
    # A section that holds raw slot numbers while it allocates Python objects keeps the
    # collector out (`was_enabled = PyGC_Disable()` ... `if was_enabled: PyGC_Enable()`): on
    # Python < 3.12 any allocation can start a collection, whose finalizers could run user code
    # that builds Values and so moves slots.
    int PyGC_Disable()
    int PyGC_Enable()

cdef enum:
    MIN_CAPACITY = 1024     # the smallest array a growing structure allocates, in items
    SHRINK_ABOVE = 65536    # arrays larger than this give memory back when mostly unused

# The realloc policy, for every array that grows with a graph: the capacity (in items) an array
# of `current` items should have to hold `needed`. Grows to the next power of two (at least
# MIN_CAPACITY); shrinks, to the power of two holding `needed` but not below SHRINK_ABOVE, when
# the array is larger than SHRINK_ABOVE and `needed` is under a quarter of it; else keeps
# `current` (so a training loop reallocates nothing once its graph size is reached).
cdef size_t capacity_for(size_t needed, size_t current) noexcept nogil

# Resize the array p[0] to n items of `item` bytes (realloc). On failure raises MemoryError
# naming `what`, and leaves p[0] as it was (still valid for its old size).
cdef int resize_array(void **p, size_t item, size_t n, str what) except -1


cdef class Scratch:
    """A scratch buffer of n items of itemsize bytes (at least one item) that frees itself with
    its owner: `cdef Scratch s = Scratch(n, sizeof(double))`, then `<double *>s.p`."""
    cdef void *p
