# The scalar arena's layout and op codes, shared by the .pyx files that read the tape.
#
# Every node of every scalar graph lives in one struct-of-arrays arena. A node is a slot
# index; a Python `Value` is only a handle that holds one slot alive.
from libc.stdint cimport int32_t, uint8_t, uint64_t
from cpython.object cimport PyObject

cdef enum:
    SOP_FREE = 0      # not used by a live node (set on the slots a compaction frees)
    SOP_LEAF          # a number the user gave (or a constant operand)
    SOP_OPAQUE        # built with Value(data, _children, _op): shown in _prev, no derivative
    SOP_ADD           # a + b
    SOP_MUL           # a * b
    SOP_POW_CONST     # a ** aux
    SOP_POW           # a ** b, both Values
    SOP_RELU
    SOP_TANH
    SOP_EXP
    SOP_LOG
    SOP_SIGMOID
    SOP_MAX           # a if a >= b else b (ties go to a, the first operand)
    SOP_MIN           # a if a <= b else b (ties go to a)
    SOP_ABS           # |a|; gradient sign(a), 0 at 0
    SOP_COUNT

cdef enum:
    FLAG_LABEL = 1          # a label is stored in the side table
    FLAG_OP_NAME = 2        # a user-given _op string is stored in the side table
    FLAG_INT_EXPONENT = 4   # SOP_POW_CONST: exponent came from an int (spelled '**2', not '**2.0')
    # The handle carries Python state the node must keep (attributes, a _backward closure, or
    # it is an instance of a subclass), so it has to live as long as the node does.
    FLAG_STICKY = 8
    FLAG_OWNED = 16         # A.handle is a strong reference (a sticky handle the graph still uses)
    FLAG_CLOSURE = 32       # backward() calls the handle's user_backward instead of the op's rule

ctypedef struct Arena:
    # Slots are in creation order: a node's children always sit below it, so descending slot
    # order is a topological order. A node is alive while it has a live handle or a live
    # parent; dead slots stay in place until a compaction finds them (one descending pass)
    # and slides the live ones down, keeping their order and re-pointing their handles.
    uint8_t *op
    uint8_t *flags
    int32_t *a           # first child slot, -1 if none
    int32_t *b           # second child slot, -1 if none
    double *val
    double *grad
    double *aux          # constant operand (the exponent of x**3)
    PyObject **handle    # the live handle of this slot, or NULL (borrowed, unless FLAG_OWNED)
    uint64_t *reach      # one bit per slot: reached by the current sweep (all 0 between sweeps)
    int32_t *order       # scratch: reachable slots in ascending order; compaction's forward map
    int32_t size         # slots handed out (alive or dead), all below this index
    int32_t capacity
