# The scalar arena's layout and op codes, shared by the .pyx files that read the tape.
#
# Every node of every scalar graph lives in one struct-of-arrays arena. A node is a slot
# index; a Python `Value` is only a handle that holds one slot alive.
from libc.stdint cimport int32_t, uint8_t, uint32_t
from cpython.object cimport PyObject

cdef enum:
    OP_FREE = 0      # slot sits on the free list
    OP_LEAF          # a number the user gave (or a constant operand)
    OP_OPAQUE        # built with Value(data, _children, _op): shown in _prev, no derivative
    OP_ADD           # a + b
    OP_MUL           # a * b
    OP_POW_CONST     # a ** aux
    OP_POW           # a ** b, both Values
    OP_RELU
    OP_TANH
    OP_EXP
    OP_LOG
    OP_SIGMOID
    OP_COUNT

cdef enum:
    FLAG_LABEL = 1          # a label is stored in the side table
    FLAG_OP_NAME = 2        # a user-given _op string is stored in the side table
    FLAG_INT_EXPONENT = 4   # OP_POW_CONST: exponent came from an int (spelled '**2', not '**2.0')

ctypedef struct Arena:
    uint8_t *op
    uint8_t *flags
    int32_t *a           # first child slot, -1 if none (on free slots: next free slot)
    int32_t *b           # second child slot, -1 if none
    double *val
    double *grad
    double *aux          # constant operand (the exponent of x**3)
    int32_t *rc          # references: the live handle (+1) and each live parent (+1 per use)
    PyObject **handle    # borrowed pointer to the live handle of this slot, or NULL
    uint32_t *mark       # == epoch when visited by the current sweep
    # scratch shared by the sweeps and the release loop (never in use at the same time)
    int32_t *order       # topological order of the last sweep
    int32_t *stack       # DFS / release stack
    uint8_t *cursor      # DFS: which child of the stack entry comes next
    int32_t size         # slots ever handed out (high-water mark)
    int32_t capacity
    int32_t free_head    # first slot of the free list, -1 when empty
    int32_t live         # slots in use
    int32_t free_count   # slots on the free list
    uint32_t epoch
