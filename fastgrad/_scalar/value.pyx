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
cimport cython
from cpython.float cimport PyFloat_AS_DOUBLE, PyFloat_Check
from cpython.long cimport PyLong_AsDouble, PyLong_Check
from cpython.object cimport PyObject
from cpython.tuple cimport PyTuple_GET_ITEM
from libc.math cimport exp, floor, isfinite, isinf, log, pow
from libc.stdint cimport INT32_MAX, int32_t, uint8_t, uint64_t
from libc.string cimport memset

from fastgrad._memory cimport (PyGC_Disable, PyGC_Enable, Scratch, capacity_for,
                               resize_array)
from fastgrad._scalar.arena cimport *
from fastgrad._scalar.rules cimport backward_rule, value_rule

import numbers

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

cdef object _Real = numbers.Real

# Side tables for the rare per-node strings (labels, user-given op names), keyed by slot and
# flagged in A.flags. Only exact str go in, so dropping an entry never runs user code and no
# entry can refer back to a Value.
cdef dict _labels = {}
cdef dict _op_names = {}

# How `_op` spells each op code, as micrograd writes it (SOP_POW_CONST adds its exponent).
cdef tuple _OP_SYMBOLS = ('', '', '', '+', '*', '**', '**', 'ReLU', 'tanh', 'exp', 'log', 'sigmoid',
                            'max', 'min', 'abs')
OP_SYMBOLS = _OP_SYMBOLS  # the same, for Python (a test checks it against the op enum)

A.size = 0
A.capacity = 0

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


cdef void _compact():
    """Slide the live nodes down over the dead ones, keeping their order; re-point handles."""
    # While A.order is the slot map nothing may re-enter the arena: on Python < 3.12 any
    # allocation can start the cyclic collector, whose finalizers could build Values.
    cdef int was_enabled = PyGC_Disable()
    try:
        _slide_live_nodes()
    finally:
        if was_enabled:
            PyGC_Enable()


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
    if A.size > 0:
        _compact()
        needed = <long long>A.size + k
        # Room for as many again keeps compactions rare (each slot is scanned O(1) times on
        # average); a big arena left mostly dead gives its memory back.
        _resize(needed, <long long>capacity_for(<size_t>(2 * needed), <size_t>A.capacity))
    needed = <long long>A.size + k
    if needed > A.capacity:
        _resize(needed, <long long>capacity_for(<size_t>needed, <size_t>A.capacity))
    return 0


cdef int32_t new_node(uint8_t op, int32_t a, int32_t b, double v, double aux) noexcept:
    """A node with children a, b (or -1). Needs a prior reserve()."""
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
    global _adopt
    _adopt = s
    try:
        return Value.__new__(Value)
    except BaseException:
        _adopt = -1
        raise


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
    if type(other) is Value:
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
    cdef int32_t n = 0, w = root >> 6, lowest = w, s
    cdef uint64_t bits = (<uint64_t>1) << (root & 63)
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


@cython.freelist(1024)
cdef class Value:
    """A scalar on the compiled tape; micrograd's Value, attribute for attribute.

    >>> a = Value(2.0); b = Value(-3.0)
    >>> c = a * b + a ** 2
    >>> c.backward()
    >>> (c.data, a.grad, b.grad)
    (-2.0, 1.0, 2.0)
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

    def __init__(self, data, _children=(), _op='', label=''):
        cdef int32_t s, c0 = -1, c1 = -1
        cdef double v = _to_double(data)
        cdef tuple children = tuple(_children)
        if len(children) > 2:
            raise ValueError(
                f"a fastgrad Value records at most two children, got {len(children)}")
        for c in children:
            if type(c) is not Value:
                raise TypeError(f"_children must be Values, not {type(c).__name__}")
            if c is self:
                raise ValueError("a Value cannot be its own child")
        cdef str op_name = _exact_str(_op, "_op")
        cdef str label_text = _exact_str(label, "label")
        # From here on no Python code runs, so slots stay where they are.
        s = self.slot
        if children:
            c0 = (<Value>children[0]).slot
            if len(children) == 2:
                c1 = (<Value>children[1]).slot
            if c0 > s or c1 > s:
                # Parents would have to sit below their children: creation order is the
                # topological order the sweeps rely on.
                raise ValueError("cannot re-initialise a Value with children created after it")
        _make_leaf(s)
        A.val[s] = v
        if children:
            A.op[s] = SOP_OPAQUE
            A.a[s] = c0
            A.b[s] = c1
        if op_name:
            _op_names[s] = op_name
            A.flags[s] |= FLAG_OP_NAME
        _set_label(s, label_text)

    def __dealloc__(self):
        # The node may live on in its parents; the next compaction decides.
        if self.slot >= 0:
            A.handle[self.slot] = NULL

    # -- micrograd's attributes ----------------------------------------------------------------

    @property
    def data(self):
        """The value (a float)."""
        return A.val[self.slot]

    @data.setter
    def data(self, value):
        A.val[self.slot] = _to_double(value)

    @property
    def grad(self):
        """d(root)/d(self) accumulated by backward() (a float)."""
        return A.grad[self.slot]

    @grad.setter
    def grad(self, value):
        A.grad[self.slot] = _to_double(value)

    @property
    def _prev(self):
        """The set of child Values (the same objects the caller holds, where alive)."""
        cdef set children = set()  # allocated first: allocating may run the cyclic collector
        cdef int32_t s = self.slot
        if A.a[s] >= 0:
            children.add(_handle_of(A.a[s]))
        if A.b[s] >= 0:
            children.add(_handle_of(A.b[s]))
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

    @property
    def label(self):
        """A name for drawings and debugging ('' by default)."""
        if A.flags[self.slot] & FLAG_LABEL:
            return _labels[self.slot]
        return ''

    @label.setter
    def label(self, value):
        _set_label(self.slot, _exact_str(value, "label"))

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
        reserve(2)
        return wrap(_neg(self.slot))

    def __sub__(self, other):
        # micrograd: self + (-other)
        cdef double x
        cdef int32_t c
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
        if type(other) is Value:
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

    def backward(self):
        """Set this Value's grad to 1 and accumulate d(self)/d(node) into every node below it.

        Same rule as micrograd: gradients add up across calls; use zero_grad() in between.
        """
        cdef int32_t root = self.slot
        A.grad[root] = 1.0
        _backward_sweep(root)

    # -- copying ----------------------------------------------------------------------------------

    def __reduce__(self):
        # pickle and deepcopy: the whole graph below this Value, flattened (no recursion)
        return (rebuild_graph, _graph_state(self.slot))

    def __copy__(self):
        # as copy.copy of micrograd's Value: a new node with the same data, grad and children
        cdef str label = self.label
        reserve(1)
        cdef int32_t s = self.slot
        cdef int32_t t = new_node(A.op[s], A.a[s], A.b[s], A.val[s], A.aux[s])
        A.grad[t] = A.grad[s]
        A.flags[t] = A.flags[s] & FLAG_INT_EXPONENT
        if A.flags[s] & FLAG_OP_NAME:
            _op_names[t] = _op_names[s]
            A.flags[t] |= FLAG_OP_NAME
        copied = wrap(t)
        _set_label((<Value>copied).slot, label)
        return copied


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


# ---------------------------------------------------------------------------------------------
# A Neuron's (and a Layer's) output built in one call
#
# Everything is validated before anything is built, so a bad input leaves the tape untouched;
# then one reserve() covers every node, and Values' slots are read only after it.


cdef int _check_weights(tuple ws, Py_ssize_t n) except -1:
    if len(ws) != n:
        raise ValueError(f"expected {len(ws)} inputs (one per weight), got {n}")
    for w in ws:
        if type(w) is not Value:
            raise TypeError(f"weights must be Values, not {type(w).__name__}")
    return 0


cdef int _check_inputs(tuple xs, double *numbers) except -1:
    """Type-check the inputs; numbers[i] receives the value of each input that is a number."""
    cdef Py_ssize_t i
    cdef object x
    for i in range(len(xs)):
        x = xs[i]
        if type(x) is not Value and not _as_number(x, &numbers[i]):
            raise TypeError(f"inputs must be numbers or Values, not {type(x).__name__}")
    return 0


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


def linear_combination(weights, inputs, Value bias not None, bint relu=False):
    """bias + w0*x0 + w1*x1 + ... built as micrograd's Neuron builds it, optionally relu'd.

    Same nodes and summation order as ``sum((wi*xi for wi, xi in zip(w, x)), b)``; numbers
    among the inputs become constant leaves, as in micrograd.

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
    _check_weights(ws, n)
    cdef Scratch numbers = Scratch(n, sizeof(double))
    _check_inputs(xs, <double *>numbers.p)
    if n == 0 and not relu:
        return bias
    reserve(_nodes_for(n))
    return wrap(_build_sum(ws, xs, <double *>numbers.p, bias.slot, relu))


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
    _check_inputs(xs, <double *>numbers.p)
    cdef list plan = []
    for neuron in ns:
        ws = _as_tuple(neuron.w, "a neuron's w must be a sequence of Values")
        _check_weights(ws, n)
        b = neuron.b
        if type(b) is not Value:
            raise TypeError(f"a neuron's b must be a Value, not {type(b).__name__}")
        plan.append((ws, b, bool(neuron.nonlin)))
    # Each output is wrapped right after it is built: between the two nothing may allocate a
    # Python container (a cyclic-GC run could run code that compacts the arena).
    cdef list out = [None] * m
    for k in range(m):
        ws, b, relu = plan[k]
        if n == 0 and not relu:
            out[k] = b
        else:
            reserve(_nodes_for(n))
            out[k] = wrap(_build_sum(ws, xs, <double *>numbers.p, (<Value>b).slot, relu))
    return out


# ---------------------------------------------------------------------------------------------
# Pickling: the graph below a Value, flattened in topological order (no recursion)


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
    ops = bytearray(n)
    flags = bytearray(n)
    a = [-1] * n
    b = [-1] * n
    vals = [0.0] * n
    grads = [0.0] * n
    auxs = [0.0] * n
    labels = {}
    op_names = {}
    for i in range(n):
        s = A.order[i]
        index[s] = i
    for i in range(n):
        s = A.order[i]
        ops[i] = A.op[s]
        flags[i] = A.flags[s]
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
    return (bytes(ops), bytes(flags), a, b, vals, grads, auxs, labels, op_names)


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


def rebuild_graph(bytes ops, bytes flags, list a, list b, list vals, list grads, list auxs,
                  dict labels, dict op_names):
    """Inverse of Value.__reduce__ (what a pickle of a Value calls): rebuild the graph and return
    its root's handle. Everything is validated first; bad input raises ValueError."""
    cdef Py_ssize_t n = len(ops), i
    if n == 0 or not (len(flags) == len(a) == len(b) == len(vals) == len(grads) == len(auxs) == n):
        raise ValueError("corrupt fastgrad Value pickle")
    if n > INT32_MAX - 64:
        raise MemoryError("fastgrad: graph too large")
    # Convert everything first: after reserve() no Python code may run (it could use the room).
    cdef Scratch child_buffer = Scratch(2 * n, sizeof(int32_t))
    cdef Scratch number_buffer = Scratch(3 * n, sizeof(double))
    cdef int32_t *children = <int32_t *>child_buffer.p
    cdef double *numbers = <double *>number_buffer.p
    used = bytearray(n)
    for i in range(n):
        for k, child in enumerate((a[i], b[i])):
            if type(child) is not int or not (-1 <= child < i):
                raise ValueError(f"corrupt fastgrad Value pickle: bad child of node {i}")
            children[2 * i + k] = <int32_t>child
            if child >= 0:
                used[child] = 1
        if not _valid_arity(ops[i], children[2 * i], children[2 * i + 1], i):
            raise ValueError(f"corrupt fastgrad Value pickle: bad node {i}")
        numbers[3 * i] = vals[i]
        numbers[3 * i + 1] = grads[i]
        numbers[3 * i + 2] = auxs[i]
    if 0 in used[:n - 1]:
        raise ValueError("corrupt fastgrad Value pickle: a node outside the graph")
    for i in list(labels) + list(op_names):
        if not (0 <= i < n):
            raise ValueError("corrupt fastgrad Value pickle: label of no node")
    cdef const unsigned char *op = ops
    cdef const unsigned char *flag = flags
    reserve(<int32_t>n)
    cdef int32_t first = A.size, ca, cb, s  # the nodes land in consecutive slots
    for i in range(n):
        ca = first + children[2 * i] if children[2 * i] >= 0 else -1
        cb = first + children[2 * i + 1] if children[2 * i + 1] >= 0 else -1
        s = new_node(op[i], ca, cb, numbers[3 * i], numbers[3 * i + 2])
        A.grad[s] = numbers[3 * i + 1]
        A.flags[s] = flag[i] & FLAG_INT_EXPONENT
    # Every node but the root is used by a later node; the root is held by the handle below.
    root = wrap(first + <int32_t>(n - 1))
    for i, label in labels.items():
        s = (<Value>root).slot - <int32_t>(n - 1) + <int32_t>i
        _labels[s] = label
        A.flags[s] |= FLAG_LABEL
    for i, name in op_names.items():
        s = (<Value>root).slot - <int32_t>(n - 1) + <int32_t>i
        _op_names[s] = name
        A.flags[s] |= FLAG_OP_NAME
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
    """Compact the arena immediately (for tests: compaction otherwise runs when space is short)."""
    if A.size:
        _compact()
