# Forward mode on the scalar tape: a tangent sweep over the nodes already recorded.
#
# No second graph is built. topo_order() lists the nodes reachable from the output in
# ascending slot order (children before parents); one pass over that list computes each node's
# tangent from its children's with the op's derivative: tangent_rule, next to the reverse
# sweep's backward_rule in rules.pxd, with the same derivatives and conventions at kinks.
#
# Seeds: every Value given a tangent is perturbed by it. Its tangent is what flows in from its
# children plus the given number, so for any set of Values (leaves or not)
#     jvp(out, {v_i: d_i}) == sum_i d(out)/d(v_i) * d_i
# where d(out)/d(v_i) is what out.backward() leaves in v_i.grad.
#
# Slots move when the arena compacts, and compaction can happen whenever Python code runs. So
# every number is converted and every slot read before topo_order(), and from topo_order() to
# the end of the sweep nothing runs but C.
from cpython.object cimport PyObject
from libc.stdint cimport int32_t, uint8_t
from libc.stdlib cimport qsort

from fastgrad._memory cimport Scratch, capacity_for, resize_array
from fastgrad._scalar.arena cimport *
from fastgrad._scalar.rules cimport tangent_rule
from fastgrad._scalar.value cimport A, Value, topo_order

import numbers


ctypedef struct Seed:
    int32_t slot
    double tangent


cdef int _by_slot(const void *p, const void *q) noexcept nogil:
    cdef int32_t a = (<const Seed *>p).slot, b = (<const Seed *>q).slot
    return (a > b) - (a < b)


cdef double _sweep(int32_t n, const int32_t *order, double *tan, const Seed *seeds,
                   Py_ssize_t k) noexcept nogil:
    """Tangents of order[0..n) (ascending slots), into tan[slot]; returns the last one's.

    seeds[0..k) are sorted by slot; seeds of slots not in order are ignored.
    """
    cdef const uint8_t *ops = A.op
    cdef const int32_t *ca = A.a
    cdef const int32_t *cb = A.b
    cdef const double *val = A.val
    cdef const double *aux = A.aux
    cdef Py_ssize_t i, j = 0
    cdef int32_t s, a, b
    cdef double t
    for i in range(n):
        s = order[i]
        a = ca[s]
        b = cb[s]
        t = tangent_rule(ops[s], s, a, b, val, aux, tan[a] if a >= 0 else 0.0,
                          tan[b] if b >= 0 else 0.0)
        while j < k and seeds[j].slot < s:
            j += 1
        if j < k and seeds[j].slot == s:
            t = t + seeds[j].tangent
        tan[s] = t
    return tan[order[n - 1]]


cdef object _Real = numbers.Real

# The tangent buffer, indexed by slot and sized to the arena's capacity, is kept between calls
# (a fresh one per call would be page-faulted in again every time). Only the slots a sweep
# reaches are written, and each is written before it is read, so it is never cleared. The GIL
# is held from topo_order() to the end of a sweep, so no two sweeps share it.
cdef double *_tan = NULL
cdef size_t _tan_capacity = 0


cdef double *_tangent_buffer(size_t n) except NULL:
    """The buffer, holding at least n tangents (it follows the arena's size)."""
    global _tan, _tan_capacity
    cdef size_t cap = capacity_for(n, _tan_capacity)
    if cap != _tan_capacity:
        resize_array(<void **>&_tan, sizeof(double), cap, "the tangent sweep")
        _tan_capacity = cap
    return _tan


cdef double _to_double(object x, object key) except? -1.0:
    if type(x) is float:
        return <double>x
    if not isinstance(x, _Real):
        raise TypeError(f"the tangent of {key!r} must be a real number, "
                        f"not {type(x).__name__}")
    return float(x)


def jvp(Value output not None, tangents):
    """d(output) along a direction: sum of d(output)/d(v) * tangents[v] over the dict.

    One forward tangent sweep over the nodes recorded below ``output``, in C (no second
    graph). ``tangents`` maps Values to numbers; Values not in it have tangent 0. A Value that
    is not a leaf is perturbed as well (its tangent adds to what flows in from its children).

    >>> from fastgrad import Value
    >>> x = Value(2.0); y = Value(3.0)
    >>> z = x * y + x
    >>> jvp(z, {x: 1.0}), jvp(z, {y: 1.0}), jvp(z, {x: 1.0, y: 1.0})
    (4.0, 2.0, 6.0)
    """
    # Python code first (converting a number may run any code, and build Values)...
    cdef list keys = []
    cdef list numbers = []
    for key, number in dict(tangents).items():
        if not isinstance(key, Value):
            raise TypeError(f"tangents must map Values to numbers; got a key of type "
                            f"{type(key).__name__}")
        keys.append(key)
        numbers.append(_to_double(number, key))
    cdef Py_ssize_t k = len(keys), i
    cdef Scratch seed_buffer = Scratch(k, sizeof(Seed))
    cdef Seed *seeds = <Seed *>seed_buffer.p
    for i in range(k):
        seeds[i].tangent = <double>numbers[i]
    cdef double *tan = _tangent_buffer(<size_t>A.capacity)  # slots are below capacity
    # ...then C only: slots are read here and stay put until the sweep ends.
    for i in range(k):
        seeds[i].slot = (<Value>keys[i]).slot
    qsort(seeds, k, sizeof(Seed), _by_slot)
    cdef int32_t n = topo_order(output.slot), j
    for j in range(n):
        if A.flags[A.order[j]] & FLAG_CLOSURE:
            raise_for_closure(A.handle[A.order[j]])
    cdef double result = _sweep(n, A.order, tan, seeds, k)
    return result


cdef int raise_for_closure(PyObject *node) except -1:
    # Forward mode has each op's tangent rule; a node's own _backward closure gives none.
    # (A node with a closure always has its handle: the arena keeps it.)
    raise RuntimeError(
        f"jvp: the node {<object>node!r} (op {(<object>node)._op!r}) has a _backward closure of "
        "its own; forward mode needs a tangent rule, which a closure does not give (use "
        "backward() instead)")
