# The scalar engine: a node arena in flat C arrays, the Value handle, and the sweeps.
#
# Order: slots are handed out in creation order, so a node's children always sit below it and
# descending slot order is a topological order. Backward is one descending pass over a
# reachability bitmap: no DFS, no recursion, no per-node Python.
#
# Lifetime: a node lives while it has a live handle or a live parent. Nothing is counted: when
# the arena is full, a compaction marks the live nodes in one descending pass (handles are the
# roots; parents sit above their children), slides them down keeping their order, and
# re-points their handles. A dying handle only clears its back-pointer. The arena grows when a
# compaction leaves it more than half full, so each slot is scanned O(1) times on average and
# memory stays flat over any number of training steps. Slots therefore move: code that builds
# nodes calls reserve() first and reads handles' slots after it.
#
# Numbers: every op is computed exactly as micrograd computes it (sub is a + (-1 * b), division
# is a * b**-1, ...) so values agree bit for bit; the build compiles with -ffp-contract=off and
# calls libm's pow, as Python does.
#
# The GIL protects the arena: the sweeps are `nogil` functions (so Cython guarantees they touch
# no Python object) but are called with the GIL held, because another thread creating a Value
# could otherwise reallocate the arrays under them.
#
# Extending Value as micrograd users do (attributes, `_backward` closures, subclasses, methods
# added to the class) makes a handle carry Python state, which must live as long as its node,
# not just as long as the caller's reference: such a handle is "sticky", and the arena holds a
# reference to it while the node may still be reached from a live handle (compaction drops the
# reference otherwise; a closure that captures its own node is then a cycle for Python's
# collector). A backward pass through a node with a closure calls it at the node's turn, with
# compaction paused so that slots cannot move under the sweep.
cimport cython
from cpython.float cimport PyFloat_AS_DOUBLE, PyFloat_Check
from cpython.long cimport PyLong_AsDouble, PyLong_Check
from cpython.object cimport Py_TYPE, PyObject, PyTypeObject
from cpython.ref cimport Py_CLEAR, Py_DECREF, Py_INCREF, Py_XDECREF
from cpython.tuple cimport PyTuple_GET_ITEM
from libc.math cimport exp, floor, isfinite, isinf, log, pow
from libc.stdint cimport INT32_MAX, int32_t, uint8_t, uint64_t
from libc.string cimport memset

from fastgrad._memory cimport (PyGC_Disable, PyGC_Enable, Scratch, capacity_for,
                               resize_array)
from fastgrad._scalar.arena cimport *
from fastgrad._scalar.rules cimport backward_rule, value_rule

import numbers
import pickle

import numpy

from fastgrad._scalar.attributes import ValueAttributes

cdef extern from *:
    """
    #if defined(_MSC_VER)
    #include <intrin.h>
    static inline int fg_highest_bit(unsigned long long x) {
        unsigned long i; _BitScanReverse64(&i, x); return (int)i;
    }
    #else
    static inline int fg_highest_bit(unsigned long long x) { return 63 - __builtin_clzll(x); }
    #endif
    """
    int fg_highest_bit(unsigned long long x) noexcept nogil

cdef extern from *:
    """
    /* Value's Python state (instance dict, closure) is held in raw pointer fields, so Cython
       makes a type the cyclic collector does not know, with no per-handle collector work.
       These make it collectable: a handle is tracked only once it carries state. */
    static Py_ssize_t fg_attributes_offset, fg_closure_offset;
    static destructor fg_generated_dealloc;
    /* Detaches a dying handle from its node (value.pyx's _forget_handle). */
    typedef void (*fg_forget_fn)(PyObject *);
    static fg_forget_fn fg_forget;
    #define FG_FIELD(o, offset) (*(PyObject **)((char *)(o) + (offset)))
    static int fg_traverse(PyObject *o, visitproc visit, void *arg) {
        Py_VISIT(FG_FIELD(o, fg_attributes_offset));
        Py_VISIT(FG_FIELD(o, fg_closure_offset));
        return 0;
    }
    static int fg_clear(PyObject *o) {
        Py_CLEAR(FG_FIELD(o, fg_attributes_offset));
        Py_CLEAR(FG_FIELD(o, fg_closure_offset));
        return 0;
    }
    static void fg_dealloc(PyObject *o) {
        PyObject_GC_UnTrack(o);
        /* before the weak references are cleared: their callbacks may ask a parent for its
           _prev, which must not hand out this dying object */
        fg_forget(o);
        fg_generated_dealloc(o);
    }
    /* The two fields follow __weakref__, last in the object; returns -1 if they do not. */
    static int fg_make_collectable(PyTypeObject *t, fg_forget_fn forget) {
        Py_ssize_t attributes = t->tp_weaklistoffset + (Py_ssize_t)sizeof(PyObject *);
        if (t->tp_weaklistoffset <= 0
                || attributes + 2 * (Py_ssize_t)sizeof(PyObject *) != t->tp_basicsize)
            return -1;
        fg_attributes_offset = attributes;
        fg_closure_offset = attributes + (Py_ssize_t)sizeof(PyObject *);
        t->tp_dictoffset = attributes;
        t->tp_flags |= Py_TPFLAGS_HAVE_GC;
        t->tp_traverse = fg_traverse;
        t->tp_clear = fg_clear;
        t->tp_free = PyObject_GC_Del;
        fg_forget = forget;
        fg_generated_dealloc = t->tp_dealloc;
        t->tp_dealloc = fg_dealloc;
        return 0;
    }
    """
    ctypedef void (*fg_forget_fn)(PyObject *)
    int fg_make_collectable(PyTypeObject *t, fg_forget_fn forget)

cdef extern from *:
    """
    /* Value(...) takes Cython's shortcut, which calls the compiled __init__ directly, until a
       script replaces Value.__init__ (CPython then changes tp_init): from then on it goes
       through type.__call__, which calls the replacement. */
    static vectorcallfunc fg_generated_vectorcall;
    static initproc fg_generated_init;
    static PyObject *fg_vectorcall(PyObject *type, PyObject *const *args, size_t nargsf,
                                   PyObject *kwnames) {
        Py_ssize_t nargs = PyVectorcall_NARGS(nargsf), i, nkw;
        PyObject *tuple, *kwargs = NULL, *result;
        if (((PyTypeObject *)type)->tp_init == fg_generated_init)
            return fg_generated_vectorcall(type, args, nargsf, kwnames);
        tuple = PyTuple_New(nargs);
        if (tuple == NULL) return NULL;
        for (i = 0; i < nargs; i++) {
            Py_INCREF(args[i]);
            PyTuple_SET_ITEM(tuple, i, args[i]);
        }
        nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
        if (nkw) {
            kwargs = PyDict_New();
            for (i = 0; kwargs != NULL && i < nkw; i++) {
                if (PyDict_SetItem(kwargs, PyTuple_GET_ITEM(kwnames, i), args[nargs + i]) < 0)
                    Py_CLEAR(kwargs);
            }
            if (kwargs == NULL) { Py_DECREF(tuple); return NULL; }
        }
        result = PyType_Type.tp_call(type, tuple, kwargs);
        Py_DECREF(tuple);
        Py_XDECREF(kwargs);
        return result;
    }
    static void fg_follow_replaced_init(PyTypeObject *t) {
        fg_generated_init = t->tp_init;
        fg_generated_vectorcall = t->tp_vectorcall;
        if (fg_generated_vectorcall != NULL) t->tp_vectorcall = fg_vectorcall;
    }
    """
    void fg_follow_replaced_init(PyTypeObject *t)

cdef extern from *:
    """
    /* Whether making a handle can run the cyclic collector (and with it any finalizer): on
       Python < 3.12 a collection can start inside any allocation of a collectable object, but
       a handle taken from Cython's freelist allocates nothing. (Cython 3.3 keeps the freelist
       in the module state; other versions take the safe answer.) */
    #if PY_VERSION_HEX >= 0x030C0000
    #define fg_handle_may_collect() 0
    #elif CYTHON_USE_FREELISTS && CYTHON_HEX_VERSION >= 0x030300F0 && CYTHON_HEX_VERSION < 0x030400A0
    #define fg_handle_may_collect() \
        (__pyx_mstate_global->__pyx_freecount_8fastgrad_7_scalar_5value_Value == 0)
    #else
    #define fg_handle_may_collect() 1
    #endif
    """
    bint fg_handle_may_collect() noexcept

cdef extern from "Python.h":
    # The fields of a type object that Value's set-up and the patch check read.
    ctypedef struct _TypeFields "PyTypeObject":
        unsigned long tp_flags
        unsigned int tp_version_tag
        PyObject *tp_dict
    unsigned long Py_TPFLAGS_IMMUTABLETYPE
    void PyType_Modified(PyTypeObject *)
    PyObject *_PyType_Lookup(PyTypeObject *, PyObject *)
    int PyObject_GenericSetAttr(PyObject *, PyObject *, PyObject *) except -1
    void PyObject_GC_Track(void *)
    void PyObject_GC_UnTrack(void *)
    int PyObject_GC_IsTracked(PyObject *)
    object PyObject_GenericGetDict(object, void *)  # a new empty dict if there was none
    int PyObject_GenericSetDict(object, object, void *) except -1

# Real numbers, and numpy's bool (which numbers.Real does not include, though Python's bool is)
cdef tuple _Real = (numbers.Real, numpy.bool_)

# Side tables for the rare per-node strings (labels, user-given op names), keyed by slot and
# flagged in A.flags. Only exact str go in, so dropping an entry never runs user code and no
# entry can refer back to a Value.
cdef dict _labels = {}
cdef dict _op_names = {}

# How `_op` spells each op code, as micrograd writes it (SOP_POW_CONST adds its exponent).
cdef tuple _OP_SYMBOLS = ('', '', '', '+', '*', '**', '**', 'ReLU', 'tanh', 'exp', 'log', 'sigmoid',
                            'max', 'min', 'abs')
OP_SYMBOLS = _OP_SYMBOLS  # the same, for Python (a test checks it against the op enum)
# The op enum's names (SOP_ADD -> 'ADD'), the keys of reference.RULES; graph_nodes gives them.
cdef tuple _OP_NAMES = ('FREE', 'LEAF', 'OPAQUE', 'ADD', 'MUL', 'POW_CONST', 'POW', 'RELU', 'TANH',
                        'EXP', 'LOG', 'SIGMOID', 'MAX', 'MIN', 'ABS')
OP_NAMES = _OP_NAMES

A.size = 0
A.capacity = 0

cdef Py_ssize_t _owned = 0     # handles the arena holds a reference to (FLAG_OWNED)
cdef Py_ssize_t _closures = 0  # nodes whose handle has a user _backward (FLAG_CLOSURE)
cdef int _pins = 0             # sweeps calling user code: the arena may grow, not compact

# ---------------------------------------------------------------------------------------------
# Arena storage


cdef int _resize(long long at_least, long long cap) except -1:
    """Resize every array to cap slots (as capacity_for sizes them), which hold at_least."""
    if cap > INT32_MAX - 64:
        cap = INT32_MAX - 64
        if cap < at_least:
            raise MemoryError("fastgrad: more than 2**31 scalar nodes alive")
    if cap == A.capacity:
        return 0
    cdef size_t n = <size_t>cap
    cdef size_t old_words = (<size_t>A.capacity + 63) // 64, words = (n + 63) // 64
    # Each array stays valid for min(old, new) slots until replaced, so a failure half way
    # through is harmless as long as capacity is that minimum meanwhile.
    if cap < A.capacity:
        A.capacity = <int32_t>cap  # shrinking: everything in use already fits
    cdef str what = "the scalar node arena"
    resize_array(<void **>&A.op, sizeof(uint8_t), n, what)
    resize_array(<void **>&A.flags, sizeof(uint8_t), n, what)
    resize_array(<void **>&A.a, sizeof(int32_t), n, what)
    resize_array(<void **>&A.b, sizeof(int32_t), n, what)
    resize_array(<void **>&A.val, sizeof(double), n, what)
    resize_array(<void **>&A.grad, sizeof(double), n, what)
    resize_array(<void **>&A.aux, sizeof(double), n, what)
    resize_array(<void **>&A.handle, sizeof(PyObject *), n, what)
    resize_array(<void **>&A.order, sizeof(int32_t), n, what)
    resize_array(<void **>&A.reach, sizeof(uint64_t), words, what)
    if words > old_words:
        memset(A.reach + old_words, 0, (words - old_words) * sizeof(uint64_t))
    A.capacity = <int32_t>cap
    return 0


cdef int32_t _mark_alive(int32_t *alive) noexcept nogil:
    """alive[s] = 1 for every node with a live handle or a live parent; returns their number."""
    cdef const int32_t *ca = A.a
    cdef const int32_t *cb = A.b
    cdef PyObject **handle = A.handle
    cdef int32_t s, count = 0
    memset(alive, 0, sizeof(int32_t) * <size_t>A.size)
    for s in range(A.size - 1, -1, -1):  # every parent is seen before its children
        if alive[s] or handle[s] != NULL:
            alive[s] = 1
            count += 1
            if ca[s] >= 0:
                alive[ca[s]] = 1
            if cb[s] >= 0:
                alive[cb[s]] = 1
    return count


cdef int _compact() except -1:
    """Slide the live nodes down over the dead ones, keeping their order; re-point handles.

    May run user code (finalizers of sticky handles let go), after the arena is consistent."""
    # While A.order is the slot map nothing may re-enter the arena: on Python < 3.12 any
    # allocation can start the cyclic collector, whose finalizers could build Values.
    cdef list let_go = None
    cdef int was_enabled = PyGC_Disable()
    try:
        if _owned:
            let_go = _release_unreached()
        _slide_live_nodes()
    finally:
        if was_enabled:
            PyGC_Enable()
    let_go = None  # the last reference to some handles: their finalizers may build Values
    return 0


cdef list _release_unreached():
    """Stop owning the sticky handles whose node has no live parent; returns them (the caller
    drops them once the arena is consistent again).

    A handle the script still holds survives being let go (and, having a handle, keeps what
    is below it alive and owned); one held only by its own closure is then a cycle for the
    collector, and its children are let go at a later compaction."""
    global _owned
    cdef int32_t *has_live_parent = A.order
    cdef int32_t s
    cdef list let_go = []
    memset(has_live_parent, 0, sizeof(int32_t) * <size_t>A.size)
    for s in range(A.size - 1, -1, -1):  # parents before children
        if has_live_parent[s] or A.handle[s] != NULL:
            if A.a[s] >= 0:
                has_live_parent[A.a[s]] = 1
            if A.b[s] >= 0:
                has_live_parent[A.b[s]] = 1
    for s in range(A.size):
        if A.flags[s] & FLAG_OWNED and not has_live_parent[s]:
            let_go.append(<object>A.handle[s])
            A.flags[s] &= ~FLAG_OWNED
            _owned -= 1
            Py_DECREF(<object>A.handle[s])  # the arena's reference; the list holds one
    return let_go


cdef void _slide_live_nodes():
    cdef int32_t *new_slot = A.order  # old slot -> new slot (-1: dead)
    cdef int32_t s, t = 0, c
    cdef bint side_entries = False
    _mark_alive(new_slot)
    for s in range(A.size):
        if A.flags[s] & (FLAG_LABEL | FLAG_OP_NAME):
            side_entries = True
        if not new_slot[s]:
            new_slot[s] = -1
            continue
        new_slot[s] = t
        if t != s:
            A.op[t] = A.op[s]
            A.flags[t] = A.flags[s]
            A.val[t] = A.val[s]
            A.grad[t] = A.grad[s]
            A.aux[t] = A.aux[s]
            A.handle[t] = A.handle[s]
            if A.handle[t] != NULL:
                (<Value>A.handle[t]).slot = t
        # children sit below s, so their new places are already known
        c = A.a[s]
        A.a[t] = new_slot[c] if c >= 0 else -1
        c = A.b[s]
        A.b[t] = new_slot[c] if c >= 0 else -1
        t += 1
    cdef int32_t old_size = A.size
    A.size = t
    for s in range(t, old_size):
        A.op[s] = SOP_FREE
        A.handle[s] = NULL
    if side_entries:
        _rekey(_labels, new_slot)
        _rekey(_op_names, new_slot)


cdef void _rekey(dict table, int32_t *new_slot):
    """Move the entries of live slots to their new slots; drop the dead slots' entries."""
    cdef dict moved = {}
    for k, v in table.items():
        if new_slot[<int32_t>k] >= 0:
            moved[new_slot[<int32_t>k]] = v
    table.clear()
    table.update(moved)


cdef int reserve(int32_t k) except -1:
    """Make sure the next k slot allocations succeed without growing (may compact)."""
    cdef long long needed = <long long>A.size + k
    if needed <= A.capacity:
        return 0
    if A.size > 0 and not _pins:
        _compact()
        needed = <long long>A.size + k
        # Room for as many again keeps compactions rare (each slot is scanned O(1) times on
        # average); a big arena left mostly dead gives its memory back.
        _resize(needed, <long long>capacity_for(<size_t>(2 * needed), <size_t>A.capacity))
    needed = <long long>A.size + k
    if needed > A.capacity:
        _resize(needed, <long long>capacity_for(<size_t>needed, <size_t>A.capacity))
    return 0


cdef inline void _own(int32_t s) noexcept:
    """The arena keeps slot s's (live) handle alive from now on."""
    global _owned
    if not A.flags[s] & FLAG_OWNED:
        Py_INCREF(<object>A.handle[s])
        A.flags[s] |= FLAG_OWNED
        _owned += 1


cdef inline void _keep(int32_t child) noexcept:
    """child gets a parent: a sticky handle must now live as long as the node."""
    if (A.flags[child] & (FLAG_STICKY | FLAG_OWNED)) == FLAG_STICKY:
        _own(child)


cdef int32_t new_node(uint8_t op, int32_t a, int32_t b, double v, double aux) noexcept:
    """A node with children a, b (or -1). Needs a prior reserve()."""
    if a >= 0:
        _keep(a)
    if b >= 0:
        _keep(b)
    cdef int32_t s = A.size
    A.size += 1
    A.op[s] = op
    A.flags[s] = 0
    A.a[s] = a
    A.b[s] = b
    A.val[s] = v
    A.grad[s] = 0.0
    A.aux[s] = aux
    A.handle[s] = NULL
    return s


cdef int32_t new_leaf(double v) noexcept:
    return new_node(SOP_LEAF, -1, -1, v, 0.0)


# ---------------------------------------------------------------------------------------------
# Handles

# When >= 0, the next Value created adopts this existing slot instead of allocating a leaf.
cdef int32_t _adopt = -1


cdef Value wrap(int32_t s):
    """The new handle of slot s (which has no live handle)."""
    return _wrap_as(Value, s)


cdef Value _wrap_as(type cls, int32_t s):
    """A new handle of class cls (Value or a subclass) for slot s."""
    global _adopt
    if cls is Value and not fg_handle_may_collect():
        _adopt = s
        return Value.__new__(Value)
    # Allocating a handle can start the cyclic collector (Python < 3.12), whose finalizers
    # could create Values of their own: the first of them would adopt slot s.
    cdef int was_enabled = PyGC_Disable()
    _adopt = s
    try:
        if cls is Value:
            return Value.__new__(Value)  # compiles to a direct call of the type's tp_new
        return Value.__new__(cls)  # not a subclass's own __new__: no user code while adopting
    finally:
        _adopt = -1
        if was_enabled:
            PyGC_Enable()


cdef inline object _handle_of(int32_t s):
    """The live handle of slot s, or a new one (so `x in y._prev` works as in micrograd)."""
    if A.handle[s] != NULL:
        return <object>A.handle[s]
    return wrap(s)


cdef inline int _as_number(object x, double *out) except -1:
    """1 and the value if x is a real number (Python or numpy), 0 if it is not a number."""
    if PyFloat_Check(x):
        out[0] = PyFloat_AS_DOUBLE(x)
        return 1
    if PyLong_Check(x):
        out[0] = PyLong_AsDouble(x)
        return 1
    if isinstance(x, _Real):
        out[0] = float(x)
        return 1
    return 0


cdef double _to_double(object x) except? -1.0:
    cdef double v
    if not _as_number(x, &v):
        raise TypeError(f"must be real number, not {type(x).__name__}")
    return v


# ---------------------------------------------------------------------------------------------
# The domain checks Python's float arithmetic makes (the ops' rules are in rules.pxd)


cdef int check_pow(double x, double y) except -1:
    """Raise where Python's float ** would raise (or go complex): fastgrad is real-valued."""
    if x == 0.0 and y < 0.0 and not isinf(y):
        raise ZeroDivisionError("0.0 cannot be raised to a negative power")
    if x < 0.0 and isfinite(x) and isfinite(y) and y != floor(y):
        raise ValueError(
            f"negative number {x!r} cannot be raised to a fractional power {y!r} "
            "(Values are real numbers)")
    if isinf(pow(x, y)) and isfinite(x) and isfinite(y):
        raise OverflowError(f"{x!r} ** {y!r}: numerical result out of range")
    return 0


cdef int check_unary(uint8_t op, double x) except -1:
    if op == SOP_EXP and isinf(exp(x)) and isfinite(x):
        raise OverflowError(f"exp({x!r}): math range error")
    if op == SOP_LOG and x <= 0.0:
        raise ValueError(f"log({x!r}): math domain error (log needs a positive input)")
    return 0


# ---------------------------------------------------------------------------------------------
# Building nodes (each returns an unowned slot; the caller reserves first and wraps last)


cdef inline int32_t _bin(uint8_t op, int32_t a, int32_t b) noexcept:
    return new_node(op, a, b, value_rule(op, A.val[a], A.val[b], 0.0), 0.0)


cdef inline int32_t _neg(int32_t a) noexcept:
    # micrograd: -x is x * -1 (the constant is created first, as Value(-1) is)
    cdef int32_t c = new_leaf(-1.0)
    return _bin(SOP_MUL, a, c)


cdef inline int32_t _pow_const(int32_t a, double y, bint int_exponent) noexcept:
    cdef int32_t s = new_node(SOP_POW_CONST, a, -1, pow(A.val[a], y), y)
    if int_exponent:
        A.flags[s] = FLAG_INT_EXPONENT
    return s


cdef inline bint _is_int(object x):
    return PyLong_Check(x) or isinstance(x, numbers.Integral)


cdef Value _unary(Value v, uint8_t op):
    check_unary(op, A.val[v.slot])
    reserve(1)
    cdef int32_t a = v.slot
    return wrap(new_node(op, a, -1, value_rule(op, A.val[a], 0.0, 0.0), 0.0))


cdef inline object _binary(Value v, object other, uint8_t op):
    """v <op> other for a Value or a number (which becomes a constant leaf, as micrograd makes
    Value(other)); NotImplemented for anything else."""
    cdef double x
    cdef int32_t c
    if isinstance(other, Value):
        reserve(1)
        return wrap(_bin(op, v.slot, (<Value>other).slot))
    if not _as_number(other, &x):
        return NotImplemented
    reserve(2)
    c = new_leaf(x)
    return wrap(_bin(op, v.slot, c))


cdef Value _extremum(Value v, object other, uint8_t op):
    out = _binary(v, other, op)
    if out is NotImplemented:
        raise TypeError(f"{'max' if op == SOP_MAX else 'min'}() needs a Value or a real number, "
                        f"not {type(other).__name__}")
    return <Value>out


# ---------------------------------------------------------------------------------------------
# Sweeps
#
# Both walk the reachability bitmap downward from the root, one 64-slot word at a time: take
# the word's highest set bit, handle that slot, and mark its children (always lower slots).
# Marks in the current word stay in a register; lower words are marked in memory. Unreachable
# stretches cost one word load per 64 slots. The bitmap is all zeros again when a sweep ends.


cdef inline void _mark(uint64_t *reach, int32_t c, int32_t w, uint64_t *bits,
                       int32_t *lowest) noexcept nogil:
    cdef int32_t cw = c >> 6
    if cw == w:
        bits[0] |= (<uint64_t>1) << (c & 63)
    else:
        reach[cw] |= (<uint64_t>1) << (c & 63)
        if cw < lowest[0]:
            lowest[0] = cw


cdef int32_t topo_order(int32_t root) noexcept:
    """The slots reachable from root in ascending order (a topological order), into A.order."""
    cdef int32_t n = _collect(root, A.a, A.b, A.reach, A.order)
    cdef int32_t i, t
    for i in range(n // 2):  # collected descending
        t = A.order[i]
        A.order[i] = A.order[n - 1 - i]
        A.order[n - 1 - i] = t
    return n


cdef int32_t _collect(int32_t root, const int32_t *ca, const int32_t *cb, uint64_t *reach,
                      int32_t *out) noexcept nogil:
    """The slots reachable from root, descending, into out; returns their count."""
    reach[root >> 6] |= (<uint64_t>1) << (root & 63)
    return _collect_marked(root >> 6, root >> 6, ca, cb, reach, out)


cdef int32_t _collect_marked(int32_t w, int32_t lowest, const int32_t *ca, const int32_t *cb,
                             uint64_t *reach, int32_t *out) noexcept nogil:
    """The slots marked in reach (in words lowest..w) and all below them, descending, into out.

    Clears every word it visits, so reach is all zeros again when it returns."""
    cdef int32_t n = 0, s
    cdef uint64_t bits = 0
    while w >= lowest:
        bits |= reach[w]
        reach[w] = 0
        while bits:
            s = (w << 6) | fg_highest_bit(bits)
            bits &= ~((<uint64_t>1) << (s & 63))
            out[n] = s
            n += 1
            if ca[s] >= 0:
                _mark(reach, ca[s], w, &bits, &lowest)
            if cb[s] >= 0:
                _mark(reach, cb[s], w, &bits, &lowest)
        w -= 1
    return n


cdef void _backward_sweep(int32_t root) noexcept nogil:
    """Reverse creation order over the nodes reachable from root, micrograd's local rules.

    The walk is _collect's, written out again so each node's rule runs as it is reached:
    collecting the order first and applying the rules in a second pass measured ~1.5x slower.
    """
    cdef uint8_t *ops = A.op
    cdef int32_t *ca = A.a
    cdef int32_t *cb = A.b
    cdef double *val = A.val
    cdef double *grad = A.grad
    cdef double *aux = A.aux
    cdef uint64_t *reach = A.reach
    cdef int32_t w = root >> 6, lowest = w, s, a, b
    cdef uint64_t bits = (<uint64_t>1) << (root & 63)
    while w >= lowest:
        bits |= reach[w]
        reach[w] = 0
        while bits:
            s = (w << 6) | fg_highest_bit(bits)
            bits &= ~((<uint64_t>1) << (s & 63))
            a = ca[s]
            if a < 0:
                continue  # a childless root: nothing to propagate
            b = cb[s]
            # Leaves have no rule to run, so only nodes with children are marked for a visit.
            if ca[a] >= 0:
                _mark(reach, a, w, &bits, &lowest)
            if b >= 0 and ca[b] >= 0:
                _mark(reach, b, w, &bits, &lowest)
            backward_rule(ops[s], s, a, b, val, grad, aux)
        w -= 1


# ---------------------------------------------------------------------------------------------
# The handle


# ---------------------------------------------------------------------------------------------
# Methods a script replaces on Value
#
# micrograd composes some ops from others (a - b is a + (-b), a Neuron is sum(wi*xi) + b then
# relu) and a script may replace any of them (Value.__add__ = ..., Value.relu = ...). While none
# is replaced, fastgrad builds those ops' nodes in one compiled step; once one is, or a subclass
# instance takes part, they are composed from Python operators exactly as micrograd does.

# The methods micrograd's compositions call, and fastgrad's own versions (set after the class).
cdef tuple _COMPOSED_FROM = ('__add__', '__radd__', '__mul__', '__rmul__', '__neg__', '__sub__',
                             '__rsub__', '__truediv__', '__rtruediv__', '__pow__', '__rpow__',
                             'relu')
cdef dict _own_methods = {}
# Value's type version tag when its methods were last found to be fastgrad's own: any change to
# the class gives it a new tag, so the common case costs one comparison.
cdef unsigned int _unreplaced_tag = 0


cdef bint _methods_replaced() except -1:
    cdef _TypeFields *t = <_TypeFields *>Value
    if t.tp_version_tag != 0 and t.tp_version_tag == _unreplaced_tag:
        return False
    return _check_methods()


cdef bint _check_methods() except -1:
    global _unreplaced_tag
    cdef _TypeFields *t = <_TypeFields *>Value
    cdef dict methods = <dict>t.tp_dict
    for name, own in _own_methods.items():
        if methods.get(name) is not own:
            return True
    _PyType_Lookup(<PyTypeObject *>Value, <PyObject *>'__add__')  # assigns a tag if it has none
    _unreplaced_tag = t.tp_version_tag
    return False


cdef inline bint _through_python(Value v, object other) except -1:
    """Compose the op from Python operators, as micrograd does: a method it calls may have been
    replaced on Value, or overridden by a subclass of an operand."""
    if type(v) is not Value:
        return True
    if type(other) is not Value and isinstance(other, Value):
        return True
    return _methods_replaced()


# ---------------------------------------------------------------------------------------------
# Python state on handles


cdef inline dict _attributes_of(Value v):
    """v's instance dict (made on first use)."""
    return <dict>PyObject_GenericGetDict(v, NULL)


cdef bint _is_property(type cls, object name):
    """name is a data descriptor of cls (data, grad, ...), not an attribute of the instance."""
    cdef PyObject *found = _PyType_Lookup(<PyTypeObject *>cls, <PyObject *>name)
    return found != NULL and (<PyTypeObject *>Py_TYPE(<object>found)).tp_descr_set != NULL


cdef void _make_sticky(Value v):
    """v carries state its node must keep: track it for the cyclic collector, and own it."""
    if not PyObject_GC_IsTracked(<PyObject *>v):
        PyObject_GC_Track(<void *>v)
    A.flags[v.slot] |= FLAG_STICKY
    _own(v.slot)


cdef int _set_closure(Value v, object fn) except -1:
    global _closures
    cdef PyObject *old = v.user_backward
    Py_INCREF(fn)
    v.user_backward = <PyObject *>fn
    if not A.flags[v.slot] & FLAG_CLOSURE:
        A.flags[v.slot] |= FLAG_CLOSURE
        _closures += 1
    _make_sticky(v)
    Py_XDECREF(old)  # last: dropping it may run any code
    return 0


cdef int _clear_closure(Value v) except -1:
    global _closures
    cdef PyObject *old = v.user_backward
    v.user_backward = NULL
    if A.flags[v.slot] & FLAG_CLOSURE:
        A.flags[v.slot] &= ~FLAG_CLOSURE
        _closures -= 1
    Py_XDECREF(old)  # last: dropping it may run any code
    return 0


cdef inline object _closure_of(Value v):
    """v's closure, or None."""
    return <object>v.user_backward if v.user_backward != NULL else None


@cython.final
cdef class LocalRule:
    """A built-in node's own backward step, which ``node._backward`` returns.

    Calling it adds ``node.grad`` times d(node)/d(child) into each child's grad, once: the
    node-by-node backward of micrograd's lecture. Leaves and nodes built as
    ``Value(data, _children, _op)`` have no rule, so it does nothing for them.

    >>> a = Value(3.0); b = Value(4.0); c = a * b
    >>> c.grad = 1.0
    >>> c._backward()
    >>> a.grad, b.grad
    (4.0, 3.0)
    """

    cdef readonly Value node

    def __cinit__(self, Value node not None):
        self.node = node

    def __call__(self):
        cdef int32_t s = self.node.slot
        if A.a[s] >= 0:
            backward_rule(A.op[s], s, A.a[s], A.b[s], A.val, A.grad, A.aux)

    def __repr__(self):
        return f"<backward rule of {self.node!r}, op {self.node._op!r}>"


# ---------------------------------------------------------------------------------------------
# The handle


@cython.freelist(1024)
cdef class Value:
    """A scalar on the compiled tape; micrograd's Value, attribute for attribute.

    >>> a = Value(2.0); b = Value(-3.0)
    >>> c = a * b + a ** 2
    >>> c.backward()
    >>> (c.data, a.grad, b.grad)
    (-2.0, 1.0, 2.0)

    Extended as in micrograd's lecture: an op of your own, with its derivative as a closure.

    >>> import math
    >>> def cube(self):
    ...     out = Value(self.data ** 3, (self,), 'cube')
    ...     def _backward():
    ...         self.grad += 3 * self.data ** 2 * out.grad
    ...     out._backward = _backward
    ...     return out
    >>> Value.cube = cube
    >>> x = Value(2.0); y = x.cube() * 2
    >>> y.backward()
    >>> x.grad
    24.0
    >>> del Value.cube
    """

    # numpy scalars on the left (np.float64(2) * v) defer to Value instead of broadcasting.
    __array_ufunc__ = None

    def __cinit__(self):
        global _adopt
        cdef int32_t s = _adopt
        self.slot = -1
        if s < 0:
            reserve(1)
            s = new_leaf(0.0)
        else:
            _adopt = -1
        self.slot = s
        A.handle[s] = <PyObject *>self
        if type(self) is Value:
            # No attributes yet, so nothing for the cyclic collector to look at (it tracks a
            # handle once it carries state: _make_sticky).
            PyObject_GC_UnTrack(<void *>self)
        else:
            _make_sticky(self)  # a subclass instance is what _prev must give back

    def __init__(self, data, _children=(), _op='', label=''):
        cdef double v = _to_double(data)
        cdef tuple children = _as_children(_children, self)
        cdef str op_name = _exact_str(_op, "_op")
        cdef str label_text = _exact_str(label, "label")
        _clear_closure(self)  # micrograd's __init__ gives every Value a no-op _backward
        _set_node(self, v, children)
        if op_name:
            _op_names[self.slot] = op_name
            A.flags[self.slot] |= FLAG_OP_NAME
        _set_label(self.slot, label_text)

    def __dealloc__(self):
        _forget_handle(self)  # done already (fg_dealloc), unless Cython deallocates directly
        Py_CLEAR(self.attributes)
        Py_CLEAR(self.user_backward)

    # -- micrograd's attributes ----------------------------------------------------------------

    @property
    def data(self):
        """The value (a float)."""
        return A.val[self.slot]

    @data.setter
    def data(self, value):
        A.val[self.slot] = _to_double(value)

    @data.deleter
    def data(self):
        raise AttributeError("a Value's data cannot be deleted")

    @property
    def grad(self):
        """d(root)/d(self) accumulated by backward() (a float)."""
        return A.grad[self.slot]

    @grad.setter
    def grad(self, value):
        A.grad[self.slot] = _to_double(value)

    @grad.deleter
    def grad(self):
        raise AttributeError("a Value's grad cannot be deleted")

    @property
    def _prev(self):
        """The set of child Values (the same objects the caller holds, where alive)."""
        cdef set children = set()  # allocated first: allocating may run the cyclic collector
        cdef int32_t s = self.slot
        # Both handles first (making one runs no user code); adding one runs its __hash__,
        # which a subclass may define, and which may move slots.
        first = _handle_of(A.a[s]) if A.a[s] >= 0 else None
        second = _handle_of(A.b[s]) if A.b[s] >= 0 else None
        if first is not None:
            children.add(first)
        if second is not None:
            children.add(second)
        return children

    @property
    def _op(self):
        """The op that produced this Value: '+', '*', '**2', 'ReLU', ... ('' for leaves)."""
        cdef int32_t s = self.slot
        cdef uint8_t op = A.op[s]
        if A.flags[s] & FLAG_OP_NAME:
            return _op_names[s]
        if op == SOP_POW_CONST:
            if A.flags[s] & FLAG_INT_EXPONENT:
                return f"**{int(A.aux[s])}"
            return f"**{A.aux[s]}"
        return _OP_SYMBOLS[op]

    @_op.setter
    def _op(self, value):
        # only how the op is spelled (in drawings); the derivative stays the node's
        cdef str text = _exact_str(value, "_op")
        _op_names[self.slot] = text
        A.flags[self.slot] |= FLAG_OP_NAME

    @property
    def _backward(self):
        """The node's backward step: the closure assigned to it, or else its op's rule as a
        callable (``LocalRule``). backward() calls it at the node's turn."""
        if A.flags[self.slot] & FLAG_CLOSURE and self.user_backward != NULL:
            return <object>self.user_backward
        return LocalRule(self)

    @_backward.setter
    def _backward(self, fn):
        if type(fn) is LocalRule and (<LocalRule>fn).node is self:
            _clear_closure(self)  # its own rule back (saved earlier, and now restored)
        elif not callable(fn):
            raise TypeError(f"_backward must be callable, not {type(fn).__name__}")
        else:
            _set_closure(self, fn)

    @_backward.deleter
    def _backward(self):
        # back to the op's own rule (an attribute that was never set cannot be deleted)
        if not A.flags[self.slot] & FLAG_CLOSURE:
            raise AttributeError("_backward: this Value has no closure of its own to delete")
        _clear_closure(self)

    @property
    def label(self):
        """A name for drawings and debugging ('' by default)."""
        if A.flags[self.slot] & FLAG_LABEL:
            return _labels[self.slot]
        return ''

    @label.setter
    def label(self, value):
        _set_label(self.slot, _exact_str(value, "label"))

    def __setattr__(self, name, value):
        PyObject_GenericSetAttr(<PyObject *>self, <PyObject *>name, <PyObject *>value)
        if not A.flags[self.slot] & FLAG_STICKY and not _is_property(type(self), name):
            _make_sticky(self)  # attributes of its own: the node must keep this handle

    def __delattr__(self, name):
        PyObject_GenericSetAttr(<PyObject *>self, <PyObject *>name, NULL)

    def __dir__(self):
        # object.__dir__ finds no instance attributes in the view __dict__ gives
        return sorted(set(object.__dir__(self)) | set(_attributes_of(self)))

    def __repr__(self):
        return f"Value(data={A.val[self.slot]!r}, grad={A.grad[self.slot]!r})"

    # -- arithmetic (micrograd's constructions) --------------------------------------------------
    #
    # Each op reserves its slots before reading any operand's slot (reserving may compact the
    # arena, which moves slots) and creates its nodes in the order micrograd creates its Values.

    def __add__(self, other):
        return _binary(self, other, SOP_ADD)

    def __radd__(self, other):
        # micrograd: other + self is self + other
        return self.__add__(other)

    def __mul__(self, other):
        return _binary(self, other, SOP_MUL)

    def __rmul__(self, other):
        # micrograd: other * self is self * other
        return self.__mul__(other)

    def __neg__(self):
        if _through_python(self, None):
            return self * -1
        reserve(2)
        return wrap(_neg(self.slot))

    def __sub__(self, other):
        # micrograd: self + (-other)
        cdef double x
        cdef int32_t c
        if _through_python(self, other):
            return self + (-other)
        if type(other) is Value:
            reserve(3)
            c = _neg((<Value>other).slot)
            return wrap(_bin(SOP_ADD, self.slot, c))
        if not _as_number(other, &x):
            return NotImplemented
        reserve(2)
        c = new_leaf(-x)
        return wrap(_bin(SOP_ADD, self.slot, c))

    def __rsub__(self, other):
        # micrograd: other + (-self), which Python turns into (-self) + other
        cdef double x
        cdef int32_t n, c
        if _through_python(self, other):
            return other + (-self)
        if not _as_number(other, &x):
            return NotImplemented
        reserve(4)
        n = _neg(self.slot)
        c = new_leaf(x)
        return wrap(_bin(SOP_ADD, n, c))

    def __truediv__(self, other):
        # micrograd: self * other**-1
        cdef double x
        cdef int32_t c
        if _through_python(self, other):
            return self * other ** -1
        if type(other) is Value:
            check_pow(A.val[(<Value>other).slot], -1.0)
            reserve(2)
            c = _pow_const((<Value>other).slot, -1.0, True)
            return wrap(_bin(SOP_MUL, self.slot, c))
        if not _as_number(other, &x):
            return NotImplemented
        check_pow(x, -1.0)
        reserve(2)
        c = new_leaf(pow(x, -1.0))
        return wrap(_bin(SOP_MUL, self.slot, c))

    def __rtruediv__(self, other):
        # micrograd: other * self**-1, which Python turns into self**-1 * other
        cdef double x
        cdef int32_t p, c
        if _through_python(self, other):
            return other * self ** -1
        if not _as_number(other, &x):
            return NotImplemented
        check_pow(A.val[self.slot], -1.0)
        reserve(3)
        p = _pow_const(self.slot, -1.0, True)
        c = new_leaf(x)
        return wrap(_bin(SOP_MUL, p, c))

    def __pow__(self, other, modulo):
        cdef double y
        if modulo is not None:
            return NotImplemented
        if isinstance(other, Value):
            check_pow(A.val[self.slot], A.val[(<Value>other).slot])
            reserve(1)
            return wrap(_bin(SOP_POW, self.slot, (<Value>other).slot))
        if not _as_number(other, &y):
            return NotImplemented
        cdef bint int_exponent = _is_int(other)  # may run Python code: before reserving
        check_pow(A.val[self.slot], y)
        reserve(1)
        return wrap(_pow_const(self.slot, y, int_exponent))

    def __rpow__(self, other, modulo):
        # number ** Value: the number becomes a constant leaf
        cdef double x
        cdef int32_t c
        if modulo is not None or not _as_number(other, &x):
            return NotImplemented
        if _through_python(self, None):
            return Value(x) ** self
        check_pow(x, A.val[self.slot])
        reserve(2)
        c = new_leaf(x)
        return wrap(_bin(SOP_POW, c, self.slot))

    # -- activations and the ops micrograd users add ----------------------------------------------

    def relu(self):
        """max(0, x); gradient 1 where the output is positive (micrograd's rule: 0 at 0)."""
        return _unary(self, SOP_RELU)

    def tanh(self):
        """Hyperbolic tangent; gradient 1 - tanh(x)**2."""
        return _unary(self, SOP_TANH)

    def exp(self):
        """e**x; raises OverflowError where math.exp would."""
        return _unary(self, SOP_EXP)

    def log(self):
        """Natural logarithm; raises ValueError for x <= 0, as math.log does."""
        return _unary(self, SOP_LOG)

    def sigmoid(self):
        """1 / (1 + e**-x), computed without overflow."""
        return _unary(self, SOP_SIGMOID)

    def max(self, other):
        """The larger of self and other (a Max op); the gradient goes to the larger one.

        On a tie it goes to self, as Python's max(self, other) returns its first argument.
        """
        return _extremum(self, other, SOP_MAX)

    def min(self, other):
        """The smaller of self and other; the gradient goes to the smaller one (self on a tie)."""
        return _extremum(self, other, SOP_MIN)

    def __abs__(self):
        """|x|; gradient sign(x), and 0 at 0 (as relu's is at its kink)."""
        return _unary(self, SOP_ABS)

    # -- differentiation ------------------------------------------------------------------------

    # The gradient of the last backward(create_graph=True) as a Value one can differentiate
    # again, on each leaf it reached (an instance attribute then; None until then).
    grad_value = None

    def backward(self, create_graph=False):
        """Set this Value's grad to 1 and accumulate d(self)/d(node) into every node below it.

        Same rule as micrograd: gradients add up across calls; use zero_grad() in between.
        Nodes with a ``_backward`` of their own have it called at their turn.

        With ``create_graph=True`` each leaf below also gets ``grad_value``: this call's
        gradient as a Value built from Value ops, which can be differentiated again
        (fastgrad.autograd's higher-order derivatives; it replaces, not adds to, an earlier one).
        """
        if create_graph:
            from fastgrad._scalar.graph_rules import backward_creating_graph
            backward_creating_graph(self)
            return
        if _closures:
            _backward_calling_closures(self)
            return
        cdef int32_t root = self.slot
        A.grad[root] = 1.0
        _backward_sweep(root)

    # -- copying ----------------------------------------------------------------------------------

    def __reduce__(self):
        # pickle and deepcopy: the whole graph below this Value, flattened (no recursion);
        # the handles' attributes and closures come as state, after the graph exists, so that
        # they may refer back to it (a.peer = b; b.peer = a)
        nodes, handle_state = _graph_state(self.slot)
        return (rebuild_graph, nodes, handle_state or None)

    def __setstate__(self, state):
        """Give the handles below this Value their attributes and closures (unpickling)."""
        _restore_handle_state(self, state)

    def __copy__(self):
        # as copy.copy of micrograd's Value: a new node with the same data, grad, children,
        # attributes and _backward
        cdef str label = self.label
        reserve(1)
        cdef int32_t s = self.slot
        cdef int32_t t = new_node(A.op[s], A.a[s], A.b[s], A.val[s], A.aux[s])
        A.grad[t] = A.grad[s]
        A.flags[t] = A.flags[s] & FLAG_INT_EXPONENT
        if A.flags[s] & FLAG_OP_NAME:
            _op_names[t] = _op_names[s]
            A.flags[t] |= FLAG_OP_NAME
        cdef Value copied = _wrap_as(type(self), t)
        _set_label(copied.slot, label)
        cdef dict attributes = _attributes_of(self)
        if attributes:
            PyObject_GenericSetDict(copied, dict(attributes), NULL)
            _make_sticky(copied)
        if A.flags[self.slot] & FLAG_CLOSURE:
            _set_closure(copied, _closure_of(self))
        return copied


cdef void _forget_handle(Value v) noexcept:
    """A dying handle lets go of its node (which may live on in its parents: the next
    compaction decides). Takes the handle borrowed: it may already have no references."""
    global _closures, _owned
    cdef int32_t s = v.slot
    if s < 0:
        return
    v.slot = -1
    A.handle[s] = NULL
    if A.flags[s] & FLAG_CLOSURE:
        _closures -= 1
    if A.flags[s] & FLAG_OWNED:  # only at interpreter exit
        _owned -= 1
    A.flags[s] &= ~(FLAG_STICKY | FLAG_OWNED | FLAG_CLOSURE)


cdef tuple _as_children(object children, Value self):
    """_children as a tuple of at most two Values, none of them self."""
    cdef tuple kids = tuple(children)
    if len(kids) > 2:
        raise ValueError(f"a fastgrad Value records at most two children, got {len(kids)}")
    for c in kids:
        if not isinstance(c, Value):
            raise TypeError(f"_children must be Values, not {type(c).__name__}")
        if c is self:
            raise ValueError("a Value cannot be its own child")
    return kids


cdef int _set_node(Value v, double value, tuple children) except -1:
    """Make v's node a leaf of this value, or an opaque node over children (__init__)."""
    for c in children:
        if (<Value>c).slot > v.slot:
            # a parent must sit above its children: the handle moves to a new node, which
            # only a node without parents can do unseen
            if _has_parent(v.slot):
                raise ValueError("cannot re-initialise a Value that already has parents with "
                                 "children created after it")
            _move_up(v)
            break
    # From here on no Python code runs, so slots stay where they are.
    cdef int32_t s = v.slot
    _make_leaf(s)
    A.val[s] = value
    if children:
        A.op[s] = SOP_OPAQUE
        A.a[s] = (<Value>children[0]).slot
        _keep(A.a[s])
        if len(children) == 2:
            A.b[s] = (<Value>children[1]).slot
            _keep(A.b[s])
    return 0


cdef bint _has_parent(int32_t s) noexcept:
    """Some node uses s as a child (parents sit above their children)."""
    cdef int32_t t
    for t in range(s + 1, A.size):
        if A.op[t] != SOP_FREE and (A.a[t] == s or A.b[t] == s):
            return True
    return False


cdef int _move_up(Value v) except -1:
    """Give v's handle a new slot above every existing one (its old node, now without a
    handle, stays with any parents it has)."""
    reserve(1)
    cdef int32_t s = v.slot
    cdef int32_t t = new_leaf(A.val[s])
    A.grad[t] = A.grad[s]
    A.flags[t] = A.flags[s] & (FLAG_LABEL | FLAG_STICKY | FLAG_OWNED | FLAG_CLOSURE)
    if A.flags[s] & FLAG_LABEL:
        _labels[t] = _labels.pop(s)
    if A.flags[s] & FLAG_OP_NAME:
        del _op_names[s]
    A.flags[s] = 0
    A.handle[s] = NULL
    A.handle[t] = <PyObject *>v
    v.slot = t
    return 0


cdef str _exact_str(object value, str what):
    """value as an exact str (a str subclass is copied, so no user code is kept)."""
    if type(value) is str:
        return <str>value
    if isinstance(value, str):
        return str.__str__(value)
    raise TypeError(f"{what} must be a str, not {type(value).__name__}")


cdef void _set_label(int32_t s, str text):
    if text:
        _labels[s] = text
        A.flags[s] |= FLAG_LABEL
    elif A.flags[s] & FLAG_LABEL:
        del _labels[s]
        A.flags[s] &= ~FLAG_LABEL


cdef void _make_leaf(int32_t s) noexcept:
    """Turn s back into a plain leaf (re-running __init__ on a Value)."""
    A.op[s] = SOP_LEAF
    A.a[s] = -1
    A.b[s] = -1
    A.aux[s] = 0.0
    A.grad[s] = 0.0
    if A.flags[s] & FLAG_OP_NAME:
        _op_names.pop(s, None)
    A.flags[s] &= ~(FLAG_OP_NAME | FLAG_INT_EXPONENT)


cdef int _backward_calling_closures(Value root_handle) except -1:
    """backward() when some node has a closure: the same descending walk as _backward_sweep,
    calling each closure at its node's turn. User code may create Values meanwhile, so the
    order is collected first into a buffer of its own, and compaction waits (slots stay)."""
    global _pins
    cdef Scratch buffer = Scratch(A.size, sizeof(int32_t))  # before reading the root's slot
    cdef int32_t *order = <int32_t *>buffer.p
    cdef int32_t root = root_handle.slot, n, i, s
    A.grad[root] = 1.0
    n = _collect(root, A.a, A.b, A.reach, order)  # descending: a reverse topological order
    _pins += 1
    try:
        for i in range(n):
            s = order[i]
            if A.flags[s] & FLAG_CLOSURE:
                if A.handle[s] != NULL:
                    fn = _closure_of(<Value>A.handle[s])
                    if fn is not None:
                        fn()
            elif A.a[s] >= 0:
                backward_rule(A.op[s], s, A.a[s], A.b[s], A.val, A.grad, A.aux)
    finally:
        _pins -= 1
    return 0


cdef Py_ssize_t _index_of(const int32_t *ascending, Py_ssize_t n, int32_t s) noexcept nogil:
    """The position of slot s in ascending[0..n) (where it is)."""
    cdef Py_ssize_t lo = 0, hi = n - 1, mid
    while lo < hi:
        mid = (lo + hi) // 2
        if ascending[mid] < s:
            lo = mid + 1
        else:
            hi = mid
    return lo


def graph_nodes(roots):
    """Every node the given Values depend on, in creation order (children before parents).

    One tuple per node: ``(handle, op, first, second, aux, closure)`` with ``op`` the op's name
    (``reference.RULES``' keys: 'LEAF', 'ADD', 'POW_CONST', ...), ``first`` and ``second`` the
    positions of its children in the list (-1 for none, in operand order), ``aux`` the constant
    operand (the exponent of ``x ** 3``) and ``closure`` its ``_backward`` closure or None.
    The walk is the sweeps' own (no recursion); fastgrad._scalar.graph_rules differentiates
    these lists.

    >>> x = Value(2.0); y = x * x + 1
    >>> [(op, first, second) for _, op, first, second, _, _ in graph_nodes([y])]
    [('LEAF', -1, -1), ('MUL', 0, 0), ('LEAF', -1, -1), ('ADD', 1, 2)]
    """
    global _pins
    cdef list handles = list(roots)
    for r in handles:
        if not isinstance(r, Value):
            raise TypeError(f"graph_nodes needs Values, not {type(r).__name__}")
    cdef list nodes = []
    if not handles:
        return nodes
    cdef Scratch buffer = Scratch(A.size, sizeof(int32_t))  # before reading any slot
    cdef int32_t *order = <int32_t *>buffer.p
    cdef int32_t top = -1, bottom = INT32_MAX, s
    cdef Py_ssize_t n, i, j
    # C only from here to the pin: slots are read and stay put
    for r in handles:
        s = (<Value>r).slot
        A.reach[s >> 6] |= (<uint64_t>1) << (s & 63)
        top = s if s > top else top
        bottom = s if s < bottom else bottom
    n = _collect_marked(top >> 6, bottom >> 6, A.a, A.b, A.reach, order)
    for i in range(n // 2):  # collected descending
        s = order[i]
        order[i] = order[n - 1 - i]
        order[n - 1 - i] = s
    _pins += 1  # making handles and tuples may run Python code, which must not move slots
    try:
        for i in range(n):
            s = order[i]
            handle = _handle_of(s)
            closure = _closure_of(<Value>handle) if A.flags[s] & FLAG_CLOSURE else None
            j = _index_of(order, n, A.a[s]) if A.a[s] >= 0 else -1
            nodes.append((handle, _OP_NAMES[A.op[s]], j,
                          _index_of(order, n, A.b[s]) if A.b[s] >= 0 else -1, A.aux[s], closure))
    finally:
        _pins -= 1
    return nodes


# ---------------------------------------------------------------------------------------------
# A Neuron's (and a Layer's) output built in one call
#
# Everything is validated before anything is built, so a bad input leaves the tape untouched;
# then one reserve() covers every node, and Values' slots are read only after it. Anything but
# plain Values and numbers (a subclass instance, a float weight), or a replaced Value method,
# goes through micrograd's own Python expression instead.


cdef int _check_count(Py_ssize_t weights, Py_ssize_t inputs) except -1:
    if weights != inputs:
        raise ValueError(f"expected {weights} inputs (one per weight), got {inputs}")
    return 0


cdef bint _plain_weights(tuple ws, object bias):
    """Every weight and the bias are exactly Values."""
    if type(bias) is not Value:
        return False
    for w in ws:
        if type(w) is not Value:
            return False
    return True


cdef bint _plain_inputs(tuple xs, double *numbers) except -1:
    """Every input is exactly a Value or a number (whose value goes to numbers[i])."""
    cdef Py_ssize_t i
    cdef object x
    for i in range(len(xs)):
        x = xs[i]
        if type(x) is not Value and not _as_number(x, &numbers[i]):
            return False
    return True


cdef object _neuron_in_python(tuple ws, tuple xs, object bias, bint relu):
    # micrograd's Neuron.__call__, operator by operator
    act = sum((wi * xi for wi, xi in zip(ws, xs)), bias)
    return act.relu() if relu else act


cdef int32_t _build_sum(tuple ws, tuple xs, const double *numbers, int32_t acc,
                        bint relu) noexcept:
    """micrograd's sum((wi*xi for ...), b), relu'd if asked; needs reserve(3 * n + 1)."""
    cdef Py_ssize_t i
    cdef int32_t xi, prod
    cdef PyObject *x
    for i in range(len(ws)):
        x = PyTuple_GET_ITEM(xs, i)
        if type(<object>x) is Value:
            xi = (<Value>x).slot
        else:
            xi = new_leaf(numbers[i])  # a number: a constant leaf per use, as Value(xi) is
        prod = _bin(SOP_MUL, (<Value>PyTuple_GET_ITEM(ws, i)).slot, xi)
        acc = _bin(SOP_ADD, acc, prod)
    if relu:
        acc = new_node(SOP_RELU, acc, -1, value_rule(SOP_RELU, A.val[acc], 0.0, 0.0), 0.0)
    return acc


def linear_combination(weights, inputs, bias, bint relu=False):
    """bias + w0*x0 + w1*x1 + ... built as micrograd's Neuron builds it, optionally relu'd.

    Same nodes and summation order as ``sum((wi*xi for wi, xi in zip(w, x)), b)``; numbers
    among the inputs become constant leaves, as in micrograd. Raises ValueError unless there
    is one input per weight.

    >>> w = [Value(2.0), Value(-1.0)]
    >>> linear_combination(w, [1.0, 3.0], Value(0.5))
    Value(data=-0.5, grad=0.0)
    >>> linear_combination(w, [1.0, 3.0], Value(0.5), relu=True)
    Value(data=0.0, grad=0.0)
    """
    # Private, immutable copies: converting an input may run Python code, which must not be
    # able to change what gets built.
    cdef tuple ws = _as_tuple(weights, "weights must be a sequence of Values")
    cdef tuple xs = _as_tuple(inputs, "inputs must be a sequence of numbers or Values")
    cdef Py_ssize_t n = len(xs)
    _check_count(len(ws), n)
    cdef Scratch numbers = Scratch(n, sizeof(double))
    if (not _plain_weights(ws, bias) or not _plain_inputs(xs, <double *>numbers.p)
            or _methods_replaced()):
        return _neuron_in_python(ws, xs, bias, relu)
    if n == 0 and not relu:
        return bias
    reserve(_nodes_for(n))
    return wrap(_build_sum(ws, xs, <double *>numbers.p, (<Value>bias).slot, relu))


cdef tuple _as_tuple(object seq, str message):
    if type(seq) is tuple:
        return <tuple>seq
    try:
        return tuple(seq)
    except TypeError:
        raise TypeError(f"{message}, not {type(seq).__name__}") from None


cdef int32_t _nodes_for(Py_ssize_t n) except -1:
    if n > (INT32_MAX - 2) // 3:
        raise MemoryError("fastgrad: too many inputs for one linear combination")
    return <int32_t>(3 * n + 1)


def linear_layer(neurons, inputs, neuron_type=None):
    """``[n(inputs) for n in neurons]`` for micrograd Neurons, in one call.

    Each neuron provides ``w`` (a sequence of Values), ``b`` (a Value) and ``nonlin`` (relu or
    not). The nodes are micrograd's, built neuron by neuron in micrograd's order. With
    ``neuron_type``, returns NotImplemented unless every neuron is exactly of that type (so a
    subclass with its own ``__call__`` is called the ordinary way).
    """
    cdef tuple ns = _as_tuple(neurons, "neurons must be a sequence")
    cdef Py_ssize_t m = len(ns), k
    if neuron_type is not None:
        for neuron in ns:
            if type(neuron) is not neuron_type:
                return NotImplemented
    # Private, immutable copies of everything (see linear_combination).
    cdef tuple xs = _as_tuple(inputs, "inputs must be a sequence of numbers or Values")
    cdef Py_ssize_t n = len(xs)
    cdef Scratch numbers = Scratch(n, sizeof(double))
    cdef bint plain = _plain_inputs(xs, <double *>numbers.p) and not _methods_replaced()
    cdef list plan = []
    for neuron in ns:
        ws = _as_tuple(neuron.w, "a neuron's w must be a sequence of Values")
        _check_count(len(ws), n)
        b = neuron.b
        plan.append((ws, b, bool(neuron.nonlin), plain and _plain_weights(ws, b)))
    # Each output is wrapped right after it is built: between the two nothing may allocate a
    # Python container (a cyclic-GC run could run code that compacts the arena).
    cdef list out = [None] * m
    for k in range(m):
        ws, b, relu, fast = plan[k]
        if not fast:
            out[k] = _neuron_in_python(ws, xs, b, relu)
        elif n == 0 and not relu:
            out[k] = b
        else:
            reserve(_nodes_for(n))
            out[k] = wrap(_build_sum(ws, xs, <double *>numbers.p, (<Value>b).slot, relu))
    return out


# ---------------------------------------------------------------------------------------------
# Pickling: the graph below a Value, flattened in topological order (no recursion)
#
# The state: per node its op, flags, children (indices of earlier nodes), value, grad and
# constant operand; labels and op names by index; and for handles that carry Python state,
# (class, attributes, closure) by index. Unpickling validates all of it before building.


cdef tuple _graph_state(int32_t root):
    # A.order holds the graph while Python objects are allocated: keep the collector (and any
    # code its finalizers would run) out until the copy is done.
    cdef int was_enabled = PyGC_Disable()
    try:
        return _copy_graph(root)
    finally:
        if was_enabled:
            PyGC_Enable()


cdef tuple _copy_graph(int32_t root):
    cdef int32_t n = topo_order(root), i, s
    cdef dict index = {}
    cdef Value h
    ops = bytearray(n)
    flags = bytearray(n)
    a = [-1] * n
    b = [-1] * n
    vals = [0.0] * n
    grads = [0.0] * n
    auxs = [0.0] * n
    labels = {}
    op_names = {}
    classes = {}
    handle_state = {}
    for i in range(n):
        s = A.order[i]
        index[s] = i
    for i in range(n):
        s = A.order[i]
        ops[i] = A.op[s]
        flags[i] = A.flags[s] & FLAG_INT_EXPONENT
        if A.a[s] >= 0:
            a[i] = index[A.a[s]]
        if A.b[s] >= 0:
            b[i] = index[A.b[s]]
        vals[i] = A.val[s]
        grads[i] = A.grad[s]
        auxs[i] = A.aux[s]
        if A.flags[s] & FLAG_LABEL:
            labels[i] = _labels[s]
        if A.flags[s] & FLAG_OP_NAME:
            op_names[i] = _op_names[s]
        if A.flags[s] & FLAG_STICKY and A.handle[s] != NULL:
            h = <Value>A.handle[s]
            if type(h) is not Value:
                classes[i] = type(h)
            attributes = dict(_attributes_of(h)) or None
            if attributes is not None or A.flags[s] & FLAG_CLOSURE:
                handle_state[i] = (attributes, _closure_of(h))
    return ((bytes(ops), bytes(flags), a, b, vals, grads, auxs, labels, op_names, classes),
            handle_state)


cdef bint _valid_arity(int op, long a, long b, long i):
    """Children come before parents, and each op has the children its rules read."""
    if not (-1 <= a < i and -1 <= b < i):
        return False
    if op == SOP_LEAF:
        return a < 0 and b < 0
    if op == SOP_OPAQUE:
        return a >= 0 or b < 0
    if op in (SOP_ADD, SOP_MUL, SOP_POW, SOP_MAX, SOP_MIN):
        return a >= 0 and b >= 0
    if SOP_POW_CONST <= op < SOP_COUNT:  # the unary ops
        return a >= 0 and b < 0
    return False


class CorruptPickleError(pickle.UnpicklingError, ValueError):
    """A Value pickle that does not describe a valid graph (pickle's error, and a ValueError)."""


cdef object _corrupt(str what):
    return CorruptPickleError(f"corrupt fastgrad Value pickle: {what}")


cdef dict _index_table(object table, Py_ssize_t n, str what):
    """A {node index: str} table of a pickle, checked."""
    if not isinstance(table, dict):
        raise _corrupt(f"{what} are not a dict")
    cdef dict checked = {}
    for i, text in (<dict>table).items():
        if type(i) is not int or not (0 <= i < n):
            raise _corrupt(f"{what[:-1]} of no node")
        if type(text) is not str:
            raise _corrupt(f"{what[:-1]} is not a str")
        checked[i] = text
    return checked


cdef dict _class_table(object table, Py_ssize_t n):
    """The classes of the handles that are subclass instances, checked."""
    if table is None:
        return {}
    if not isinstance(table, dict):
        raise _corrupt("handle classes are not a dict")
    cdef dict checked = {}
    for i, cls in (<dict>table).items():
        if type(i) is not int or not (0 <= i < n):
            raise _corrupt("a handle class of no node")
        if not isinstance(cls, type) or not issubclass(cls, Value):
            raise _corrupt(f"node {i}'s class is not a Value class")
        checked[i] = cls
    return checked


cdef dict _handle_state_table(object table, Py_ssize_t n):
    """The (attributes, closure) of the handles that carry them, checked."""
    if not isinstance(table, dict):
        raise _corrupt("handle state is not a dict")
    cdef dict checked = {}
    for i, state in (<dict>table).items():
        if type(i) is not int or not (0 <= i < n):
            raise _corrupt("handle state of no node")
        if type(state) is not tuple or len(<tuple>state) != 2:
            raise _corrupt(f"bad handle state of node {i}")
        attributes, fn = <tuple>state
        if attributes is not None:
            if type(attributes) is not dict or any(type(k) is not str for k in attributes):
                raise _corrupt(f"node {i}'s attributes are not a dict of names")
        if fn is not None and not callable(fn):
            raise _corrupt(f"node {i}'s _backward is not callable")
        checked[i] = (attributes, fn)
    return checked


cdef int _restore_handle_state(Value root, object state) except -1:
    cdef int32_t n = topo_order(root.slot), i
    cdef dict state_of = _handle_state_table(state, n)
    # The handles first, with the collector paused: A.order holds the graph meanwhile.
    cdef list targets = []
    cdef int was_enabled = PyGC_Disable()
    try:
        n = topo_order(root.slot)  # again: checking the table may have run code
        for i, (attributes, fn) in state_of.items():
            if i >= n:
                raise _corrupt("handle state of no node")
            targets.append((_handle_of(A.order[i]), attributes, fn))
    finally:
        if was_enabled:
            PyGC_Enable()
    cdef Value h
    for h, attributes, fn in targets:
        if attributes:
            PyObject_GenericSetDict(h, dict(attributes), NULL)
        if fn is not None:
            _set_closure(h, fn)
        _make_sticky(h)  # it must live as long as its node
    return 0


cdef list _numbers(object column, Py_ssize_t n, str what):
    """A column of floats, checked (exact floats: converting anything else could run code)."""
    if type(column) is not list or len(<list>column) != n:
        raise _corrupt(f"bad {what}")
    for x in <list>column:
        if type(x) is not float:
            raise _corrupt(f"{what} must be floats")
    return list(<list>column)


def rebuild_graph(ops, flags, a, b, vals, grads, auxs, labels, op_names, classes=None):
    """Inverse of Value.__reduce__ (what a pickle of a Value calls): rebuild the graph and return
    its root's handle. Everything is validated first; bad input raises
    pickle.UnpicklingError."""
    if type(ops) is not bytes or type(flags) is not bytes or len(ops) != len(flags):
        raise _corrupt("bad op codes")
    cdef Py_ssize_t n = len(ops), i, k
    if n == 0:
        raise _corrupt("no nodes")
    if n > INT32_MAX - 64:
        raise MemoryError("fastgrad: graph too large")
    # Private copies, checked: nothing below can run user code until the nodes are built.
    cdef list values = _numbers(vals, n, "values")
    cdef list gradients = _numbers(grads, n, "grads")
    cdef list constants = _numbers(auxs, n, "constant operands")
    cdef dict label_of = _index_table(labels, n, "labels")
    cdef dict op_name_of = _index_table(op_names, n, "op names")
    cdef dict class_of = _class_table(classes, n)
    if type(a) is not list or type(b) is not list or len(<list>a) != n or len(<list>b) != n:
        raise _corrupt("bad child lists")
    cdef Scratch child_buffer = Scratch(2 * n, sizeof(int32_t))
    cdef int32_t *children = <int32_t *>child_buffer.p
    cdef const unsigned char *op = ops
    cdef const unsigned char *flag = flags
    used = bytearray(n)
    for i in range(n):
        for k, child in enumerate(((<list>a)[i], (<list>b)[i])):
            if type(child) is not int or not (-1 <= child < i):
                raise _corrupt(f"bad child of node {i}")
            children[2 * i + k] = <int32_t>child
            if child >= 0:
                used[child] = 1
        if not _valid_arity(op[i], children[2 * i], children[2 * i + 1], i):
            raise _corrupt(f"bad node {i}")
    if 0 in used[:n - 1]:
        raise _corrupt("a node outside the graph")
    root_class = class_of.get(n - 1, Value)
    reserve(<int32_t>n)
    cdef int32_t first = A.size, ca, cb, s  # the nodes land in consecutive slots
    for i in range(n):
        ca = first + children[2 * i] if children[2 * i] >= 0 else -1
        cb = first + children[2 * i + 1] if children[2 * i + 1] >= 0 else -1
        s = new_node(op[i], ca, cb, <double>values[i], <double>constants[i])
        A.grad[s] = <double>gradients[i]
        A.flags[s] = flag[i] & FLAG_INT_EXPONENT
    # Every node but the root is used by a later node; the root is held by the handle below.
    cdef Value root = _wrap_as(root_class, first + <int32_t>(n - 1))
    for i, label in label_of.items():
        s = root.slot - <int32_t>(n - 1) + <int32_t>i
        _labels[s] = label
        A.flags[s] |= FLAG_LABEL
    for i, name in op_name_of.items():
        s = root.slot - <int32_t>(n - 1) + <int32_t>i
        _op_names[s] = name
        A.flags[s] |= FLAG_OP_NAME
    for i, cls in class_of.items():  # subclass instances (sticky: the arena keeps them)
        if i != n - 1:
            _wrap_as(cls, root.slot - <int32_t>(n - 1) + <int32_t>i)
    return root


# ---------------------------------------------------------------------------------------------
# Introspection for tests and benchmarks


def arena_stats():
    """Nodes alive now, slots handed out (alive or dead), capacity, and bytes per slot.

    >>> sorted(arena_stats())
    ['bytes_per_slot', 'capacity', 'live', 'size']
    """
    cdef size_t per_slot = (2 * sizeof(uint8_t) + 2 * sizeof(int32_t) + 3 * sizeof(double)
                            + sizeof(PyObject *) + sizeof(int32_t))
    return {
        "live": _mark_alive(A.order) if A.size else 0,
        "size": A.size,
        "capacity": A.capacity,
        "bytes_per_slot": per_slot + 0.125,  # and one bit of the reach bitmap
    }


def compact_now():
    """Compact the arena immediately (for tests: compaction otherwise runs when space is short).

    Does nothing during a backward pass that calls closures (slots must stay put there)."""
    if A.size and not _pins:
        _compact()


def sticky_stats():
    """How many handles the arena keeps alive, and how many nodes have a closure (tests).

    >>> sorted(sticky_stats())
    ['closures', 'owned']
    """
    return {"owned": _owned, "closures": _closures}


# ---------------------------------------------------------------------------------------------
# Value as micrograd's plain Python class: open to new and replaced methods, with micrograd's
# attributes in vars(v).

# A compiled type is immutable by default; micrograd scripts add methods to Value
# (Value.tanh = tanh) and replace operators, which CPython supports on any type whose
# IMMUTABLETYPE flag is clear (it then updates the operator slots itself).
(<_TypeFields *>Value).tp_flags &= ~Py_TPFLAGS_IMMUTABLETYPE
if fg_make_collectable(<PyTypeObject *>Value, <fg_forget_fn>_forget_handle) < 0:
    raise ImportError("fastgrad: unexpected layout of the compiled Value type")
fg_follow_replaced_init(<PyTypeObject *>Value)
PyType_Modified(<PyTypeObject *>Value)
for _name in _COMPOSED_FROM:
    _own_methods[_name] = (<dict>(<_TypeFields *>Value).tp_dict)[_name]


def _attribute_view(Value self):
    """vars(v): micrograd's attributes, then the script's own (a live view)."""
    return ValueAttributes(self, _attributes_of(self))


(<dict>(<_TypeFields *>Value).tp_dict)['__dict__'] = property(_attribute_view)
PyType_Modified(<PyTypeObject *>Value)
