# Recorded programs: the graph behind a scalar Value, copied once into flat arrays of its own and
# replayed forward and backward in C with new leaf values (what ADOL-C and CppAD do with a tape).
#
# Layout. A program of n instructions keeps, per instruction, an op code, three operand indices
# local to the program (unary ops repeat the first, binary ops the second, so the loops read
# them without a branch), a constant operand (aux), a value and a gradient. Leaves come first:
#
#     [0, n_params)                  parameters: read from their Values, gradients written back
#     [n_params, n_params+n_inputs)  inputs: the same, and forward(X) writes X into them first
#     [.., n_leaves)                 constants: numbers frozen at record time (no handle to read)
#     [n_leaves, n)                  the ops, in the order they were created
#
# Leaves are only ever read, so moving them to the front changes no result; the ops keep their
# relative (creation) order, so each node's gradient receives its contributions in the same
# order as in the arena's own sweep, and every value and gradient is bit-identical to those of
# a freshly built graph. The rules themselves are the arena's (rules.pxd, inlined).
#
# One pattern is fused: micrograd's Neuron is a chain of `acc + w*x`, and a product whose only
# use is the sum right after it becomes one MULADD instruction (the product's node disappears).
# It runs both rules back to back, exactly as the separate nodes would (the product's gradient
# is still computed as 0.0 + g; the sum is written addend + product whichever side the product
# was on, and IEEE addition is commutative), so the fusion changes no bit; it halves the
# instructions of an MLP.
#
# The program refers to no arena slot: it holds its leaves' Value handles and reads their slots
# at each call, so compactions of the arena between calls do not matter.
#
# All arena accesses happen with the GIL held (as in value.pyx); the loops are nogil functions
# so that Cython guarantees they make no Python call.
cimport cython
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.tuple cimport PyTuple_GET_ITEM
from libc.math cimport isfinite
from libc.stdint cimport INT32_MAX, int32_t, uint8_t
from libc.string cimport memcmp, memcpy, memset

from fastgrad._memory cimport PyGC_Disable, PyGC_Enable, Scratch
from fastgrad._scalar.arena cimport *
from fastgrad._scalar.rules cimport backward_rule, muladd_backward, value_rule
from fastgrad._scalar.value cimport A, Value, check_pow, check_unary, topo_order

import numpy as np

cdef enum:
    PROGRAM_MULADD = 100   # program-only: a + b * c (the sum of a node and a product used only there)

__all__ = ["Program", "record", "sgd_step"]

# Bytes per instruction of a program: op, three operands, aux, value, gradient.
cdef size_t _NODE_BYTES = sizeof(uint8_t) + 3 * sizeof(int32_t) + 3 * sizeof(double)
cdef int _PICKLE_VERSION = 1
cdef object _MAKE = object()  # the key to Program.__cinit__: only this module makes Programs


cdef inline bint _checked(uint8_t op) noexcept nogil:
    """The ops whose fresh build raises for some operands (always with a non-finite value)."""
    return op == SOP_POW_CONST or op == SOP_POW or op == SOP_EXP or op == SOP_LOG


cdef int32_t _recompute_values(const uint8_t *op, const int32_t *ca, const int32_t *cb,
                          const int32_t *cc, const double *aux, double *val, int32_t start,
                          int32_t n) noexcept nogil:
    """Recompute nodes start..n-1; stop early at a node where a fresh build might raise."""
    cdef int32_t i
    cdef uint8_t o
    cdef double v
    for i in range(start, n):
        o = op[i]
        if o == PROGRAM_MULADD:
            val[i] = value_rule(SOP_ADD, val[ca[i]], value_rule(SOP_MUL, val[cb[i]], val[cc[i]], 0.0),
                              0.0)
        elif o == SOP_ADD:
            val[i] = value_rule(SOP_ADD, val[ca[i]], val[cb[i]], 0.0)
        elif o == SOP_MUL:
            val[i] = value_rule(SOP_MUL, val[ca[i]], val[cb[i]], 0.0)
        else:
            v = value_rule(o, val[ca[i]], val[cb[i]], aux[i])
            val[i] = v
            if not isfinite(v) and _checked(o):
                return i
    return n


cdef void _run_backward(const uint8_t *op, const int32_t *ca, const int32_t *cb,
                        const int32_t *cc, const double *aux, const double *val, double *grad,
                        int32_t stop, int32_t n) noexcept nogil:
    """micrograd's rules from the last node down to node stop (the first op)."""
    cdef int32_t i
    for i in range(n - 1, stop - 1, -1):
        if op[i] == PROGRAM_MULADD:
            muladd_backward(i, ca[i], cb[i], cc[i], val, grad)
        else:
            backward_rule(op[i], i, ca[i], cb[i], val, grad, aux)


cdef inline int32_t _slot(tuple leaves, Py_ssize_t k) noexcept:
    return (<Value>PyTuple_GET_ITEM(leaves, k)).slot


@cython.final
cdef class Program:
    """A recorded scalar graph, replayed in C: make one with :func:`record`.

    ``forward(X=None)`` recomputes every node from the leaves' current ``.data`` (after writing
    ``X`` into the inputs) and returns the output's value; ``backward()`` adds the gradients
    into the leaves' ``.grad`` as ``output.backward()`` on a fresh build would;
    ``zero_grad()`` and ``sgd_step(lr)`` update all parameters in one call.

    >>> from fastgrad import Value, record
    >>> w, x = Value(3.0), Value(2.0)
    >>> prog = record(w * x + 1, inputs=[x], params=[w])
    >>> prog.forward([5.0])
    16.0
    >>> prog.backward(); w.grad
    5.0
    """
    cdef int32_t n, n_nodes, n_params, n_inputs, n_leaves, root, n_outputs
    cdef uint8_t *op
    cdef int32_t *ca
    cdef int32_t *cb
    cdef int32_t *cc
    cdef double *aux
    cdef double *val
    cdef double *grad
    cdef int32_t *out_index
    cdef tuple _leaves        # the parameters' then the inputs' Values (strong references)
    cdef tuple _input_shape   # None without inputs
    cdef tuple _output_shape  # None without extra outputs
    cdef bint _valid          # values are those of the leaves at the last forward (or record)

    def __cinit__(self, *args):
        # Only record() and unpickling make Programs (they pass _MAKE): a Program made any
        # other way (Program.__new__, which a pickle can call) would have no buffers to run.
        if len(args) != 1 or args[0] is not _MAKE:
            raise TypeError("make a Program with fastgrad.record(output, ...)")
        self.op = NULL
        self.ca = NULL
        self.cb = NULL
        self.cc = NULL
        self.aux = NULL
        self.val = NULL
        self.grad = NULL
        self.out_index = NULL

    def __init__(self):
        raise TypeError("make a Program with fastgrad.record(output, ...)")

    def __dealloc__(self):
        PyMem_Free(self.op)
        PyMem_Free(self.ca)
        PyMem_Free(self.cb)
        PyMem_Free(self.cc)
        PyMem_Free(self.aux)
        PyMem_Free(self.val)
        PyMem_Free(self.grad)
        PyMem_Free(self.out_index)

    cdef int _allocate(self, int32_t n, int32_t n_outputs) except -1:
        cdef size_t m = <size_t>max(n, 1)
        self.n = n
        self.n_outputs = n_outputs
        self.op = <uint8_t *>PyMem_Malloc(m * sizeof(uint8_t))
        self.ca = <int32_t *>PyMem_Malloc(m * sizeof(int32_t))
        self.cb = <int32_t *>PyMem_Malloc(m * sizeof(int32_t))
        self.cc = <int32_t *>PyMem_Malloc(m * sizeof(int32_t))
        self.aux = <double *>PyMem_Malloc(m * sizeof(double))
        self.val = <double *>PyMem_Malloc(m * sizeof(double))
        self.grad = <double *>PyMem_Malloc(m * sizeof(double))
        self.out_index = <int32_t *>PyMem_Malloc(<size_t>max(n_outputs, 1) * sizeof(int32_t))
        if (self.op == NULL or self.ca == NULL or self.cb == NULL or self.cc == NULL
                or self.aux == NULL or self.val == NULL or self.grad == NULL
                or self.out_index == NULL):
            raise MemoryError("fastgrad: cannot allocate a recorded program")
        memset(self.grad, 0, m * sizeof(double))
        return 0

    # -- replay -----------------------------------------------------------------------------------

    def forward(self, X=None):
        """Recompute every node from the leaves' current values; return the output's value.

        With ``X`` (an array-like of the recorded ``input_shape``, e.g. one row per batch
        element), first write ``X`` into the input Values' ``.data``. Parameters are read from
        their ``.data``, so updates made in place (by hand or an optimizer) are seen.
        Raises the error a fresh build would raise (``log`` of a non-positive number,
        ``exp`` overflow, ``0 ** -1``, ...); the program then needs a successful forward before
        ``backward()``.

        >>> from fastgrad import Value, record
        >>> x = Value(1.0)
        >>> prog = record((x * x).relu(), inputs=[x])
        >>> prog.forward([3.0]), x.data
        (9.0, 3.0)
        """
        if X is not None:
            self._write_inputs(X)
        self._valid = False
        self._read_leaves()
        cdef int32_t i = self.n_leaves
        cdef uint8_t op
        cdef double x
        while True:
            i = _recompute_values(self.op, self.ca, self.cb, self.cc, self.aux, self.val, i, self.n)
            if i == self.n:
                break
            # A non-finite value where a fresh build may have raised: raise as it would.
            op = self.op[i]
            x = self.val[self.ca[i]]
            if op == SOP_POW_CONST:
                check_pow(x, self.aux[i])
            elif op == SOP_POW:
                check_pow(x, self.val[self.cb[i]])
            else:
                check_unary(op, x)
            i += 1
        self._valid = True
        return self.val[self.root]

    def backward(self):
        """Add d(output)/d(leaf) into every parameter's and input's ``.grad``.

        micrograd's rule, as ``output.backward()`` on a fresh build of the graph: gradients add
        up over calls until zeroed (``zero_grad()``). Each call is that of a freshly built
        graph: the inner nodes' gradients start from 0 (a second ``backward()`` on one
        micrograd graph would also compound them). Uses the values of the last ``forward()``
        (or of the recording), and raises RuntimeError if a leaf's ``.data`` changed since
        then, which would mix old values with new ones.

        >>> from fastgrad import Value, record
        >>> x = Value(3.0)
        >>> prog = record(x * x, params=[x])
        >>> prog.backward(); prog.backward(); x.grad
        12.0
        """
        if not self._valid:
            raise RuntimeError("the last forward() of this program raised: call forward() "
                               "successfully before backward()")
        cdef Py_ssize_t k, n_read = self.n_params + self.n_inputs
        cdef tuple leaves = self._leaves
        cdef int32_t s
        for k in range(n_read):
            s = _slot(leaves, k)
            self._check_leaf(k, s)
            if memcmp(&A.val[s], &self.val[k], sizeof(double)) != 0:
                raise RuntimeError(
                    f"{self._leaf_name(k)} changed (to {A.val[s]!r}) since the last forward(), "
                    f"which used {self.val[k]!r}: call forward() before backward()")
            self.grad[k] = A.grad[s]
        memset(self.grad + n_read, 0, <size_t>(self.n - n_read) * sizeof(double))
        self.grad[self.root] = 1.0
        _run_backward(self.op, self.ca, self.cb, self.cc, self.aux, self.val, self.grad,
                      self.n_leaves, self.n)
        for k in range(n_read):
            A.grad[_slot(leaves, k)] = self.grad[k]

    def zero_grad(self):
        """Set the ``.grad`` of every parameter and input to 0 (one call, no Python loop).

        >>> from fastgrad import Value, record
        >>> w = Value(2.0)
        >>> prog = record(w * w, params=[w])
        >>> prog.backward(); prog.zero_grad(); w.grad
        0.0
        """
        cdef Py_ssize_t k
        for k in range(self.n_params + self.n_inputs):
            A.grad[_slot(self._leaves, k)] = 0.0

    def sgd_step(self, double lr):
        """``p.data -= lr * p.grad`` for every parameter, in one C loop (inputs are untouched).

        >>> from fastgrad import Value, record
        >>> w = Value(2.0)
        >>> prog = record(w * w, params=[w])
        >>> prog.backward(); prog.sgd_step(0.1); w.data
        1.6
        """
        cdef Py_ssize_t k
        cdef int32_t s
        for k in range(self.n_params):
            s = _slot(self._leaves, k)
            A.val[s] = A.val[s] - lr * A.grad[s]

    # -- reading it -------------------------------------------------------------------------------

    @property
    def value(self):
        """The output's value at the last forward() (or at the recording)."""
        return self.val[self.root]

    @property
    def outputs(self):
        """The values of the Values given as ``outputs=`` at the last forward(), as a float64
        array of their shape (None if none were given)."""
        if self._output_shape is None:
            return None
        out = np.empty(self.n_outputs, dtype=np.float64)
        cdef double[::1] o = out
        cdef Py_ssize_t k
        for k in range(self.n_outputs):
            o[k] = self.val[self.out_index[k]]
        return out.reshape(self._output_shape)

    @property
    def params(self):
        """The parameter Values, in the program's order (read at forward, updated by sgd_step)."""
        return self._leaves[:self.n_params]

    @property
    def inputs(self):
        """The input Values, flattened in row-major order (``X.ravel()`` goes into them)."""
        return self._leaves[self.n_params:]

    @property
    def input_shape(self):
        """The shape forward(X) expects, or None for a program without inputs."""
        return self._input_shape

    @property
    def nodes(self):
        """The number of nodes of the recorded graph (leaves included)."""
        return self.n_nodes

    @property
    def instructions(self):
        """The number of instructions replayed (ops after fusing products into sums)."""
        return self.n - self.n_leaves

    @property
    def constants(self):
        """The number of constant leaves (values frozen at record time)."""
        return self.n_leaves - self.n_params - self.n_inputs

    @property
    def nbytes(self):
        """Bytes of the program's own buffers (per node: op, children, aux, value, gradient)."""
        return <Py_ssize_t>(_NODE_BYTES * <size_t>self.n
                            + sizeof(int32_t) * <size_t>self.n_outputs)

    def __repr__(self):
        return (f"<fastgrad Program: {self.n_nodes:,} nodes ({self.n_params:,} params, "
                f"{self.n_inputs:,} inputs, {self.constants:,} constants, "
                f"{self.n_nodes - self.n_leaves:,} ops in {self.n - self.n_leaves:,} "
                f"instructions), {self.nbytes:,} bytes>")

    # -- helpers ----------------------------------------------------------------------------------

    cdef str _leaf_name(self, Py_ssize_t k):
        if k < self.n_params:
            return f"parameter {k}"
        return f"input {k - self.n_params}"

    cdef int _check_leaf(self, Py_ssize_t k, int32_t s) except -1:
        if A.op[s] != SOP_LEAF:
            raise RuntimeError(f"{self._leaf_name(k)} of this program is no longer a leaf "
                               "(it was re-initialised with children): record the graph again")
        return 0

    cdef int _read_leaves(self) except -1:
        cdef Py_ssize_t k
        cdef int32_t s
        for k in range(self.n_params + self.n_inputs):
            s = _slot(self._leaves, k)
            self._check_leaf(k, s)
            self.val[k] = A.val[s]
        return 0

    cdef int _write_inputs(self, X) except -1:
        if self._input_shape is None:
            raise ValueError("this program was recorded without inputs: call forward() "
                             "without arguments (parameters are read from their .data)")
        try:
            arr = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"forward() needs an array of numbers of shape {self._input_shape}"
                            f": {exc}") from None
        if arr.shape != self._input_shape:
            raise ValueError(f"forward() got inputs of shape {arr.shape}; this program was "
                             f"recorded with inputs of shape {self._input_shape}")
        cdef const double[::1] x = np.ascontiguousarray(arr).ravel()
        cdef Py_ssize_t k
        for k in range(self.n_inputs):
            A.val[_slot(self._leaves, self.n_params + k)] = x[k]
        return 0

    # -- pickling ---------------------------------------------------------------------------------

    def __reduce__(self):
        # The leaves are pickled as Values, so a model pickled together with its program comes
        # back sharing its parameters with it (pickle's memo keeps them one object).
        cdef Py_ssize_t m = self.n
        state = (
            _PICKLE_VERSION,
            self.n_nodes, self.n_params, self.n_inputs, self.n_leaves, self.root,
            (<char *>self.op)[:m],
            (<char *>self.ca)[:m * sizeof(int32_t)],
            (<char *>self.cb)[:m * sizeof(int32_t)],
            (<char *>self.cc)[:m * sizeof(int32_t)],
            (<char *>self.aux)[:m * sizeof(double)],
            (<char *>self.val)[:m * sizeof(double)],
            (<char *>self.out_index)[:self.n_outputs * sizeof(int32_t)],
            self._leaves, self._input_shape, self._output_shape, bool(self._valid),
        )
        return (_restore, state)


# -------------------------------------------------------------------------------------------------
# Recording


cdef tuple _flatten(object nested, str what):
    """(flat list of Values in row-major order, shape) of a rectangular nested sequence."""
    cdef list flat = []
    shape = _flatten_into(nested, what, flat, 0)
    return flat, shape


cdef tuple _flatten_into(object x, str what, list flat, int depth):
    if type(x) is Value:
        flat.append(x)
        return ()
    if depth >= 32:
        raise ValueError(f"{what} is nested too deeply")
    if isinstance(x, (str, bytes)) or not hasattr(x, "__iter__"):
        raise TypeError(f"{what} must be a Value or a (nested) sequence of Values, "
                        f"not {type(x).__name__}{_pure_hint(x)}")
    items = tuple(x)
    shape = None
    for k, item in enumerate(items):
        sub = _flatten_into(item, f"{what}[{k}]", flat, depth + 1)
        if shape is None:
            shape = sub
        elif sub != shape:
            raise ValueError(f"{what} is not rectangular: {what}[0] has shape {shape}, "
                             f"{what}[{k}] has shape {sub}")
    return (len(items),) + (shape if shape is not None else ())


cdef str _pure_hint(object x):
    if type(x).__name__ == "Value":
        return (" (a Value of another engine: record() replays the compiled engine's graphs, "
                "not FASTGRAD_ENGINE=pure's)")
    return ""


def record(output, inputs=None, params=None, outputs=None):
    """Record the graph behind ``output`` into a :class:`Program` that replays it in C.

    - ``inputs``: the leaf Values that ``forward(X)`` fills from an array, as a (nested)
      sequence whose shape is the shape X must have, e.g. ``[[x00, x01], [x10, x11], ...]``
      for one row per batch element. forward() without X reads their current ``.data``.
    - ``params``: the leaf Values read at each forward from their current ``.data`` and
      updated by ``sgd_step``. By default every leaf of the graph that has a live Value
      (a handle you can still reach) and is not an input; pass ``model.parameters()`` to be
      explicit, since data Values you still hold would otherwise count as parameters too.
    - Every other leaf is a constant: its value is frozen into the program (the numbers in
      ``x + 1`` or ``-x``, and leaves whose Values have been dropped).
    - ``outputs``: other Values of the graph (any nested shape) whose replayed values
      ``prog.outputs`` returns after each forward, e.g. a batch's scores.

    Every listed Value must be a leaf of the graph behind ``output``, listed once. Graphs with
    a user-built node (``Value(data, _children, _op)``) cannot be recorded: its value comes from
    Python code the program cannot replay. Python control flow that depended on values when
    the graph was built (``if x.data > 0: ...``) is frozen as it went at recording; ops the
    tape sees (``relu``, ``max``, ``min``, ``abs``) replay correctly for any values.

    >>> from fastgrad import Value, record
    >>> xs = [Value(1.0), Value(2.0)]
    >>> w = Value(0.5)
    >>> prog = record(sum(w * x for x in xs), inputs=xs, params=[w])
    >>> prog.forward([3.0, 4.0])
    3.5
    """
    if not isinstance(output, Value):
        raise TypeError(f"record() needs a Value to record, not "
                        f"{type(output).__name__}{_pure_hint(output)}")
    cdef list in_values = [], out_values = [], par_values = None
    in_shape = out_shape = None
    if inputs is not None:
        in_values, in_shape = _flatten(inputs, "inputs")
    if outputs is not None:
        out_values, out_shape = _flatten(outputs, "outputs")
    if params is not None:
        par_values, par_shape = _flatten(params, "params")
        if len(par_shape) != 1:
            raise ValueError(f"params must be a flat sequence of Values, not of shape {par_shape}")
    seen = {}
    for role, values in (("inputs", in_values), ("params", par_values or [])):
        for k, v in enumerate(values):
            if id(v) in seen:
                raise ValueError(f"{role}[{k}] is listed twice (also as {seen[id(v)]})")
            seen[id(v)] = f"{role}[{k}]"
    cdef Program prog = Program.__new__(Program, _MAKE)
    prog._input_shape = in_shape
    prog._output_shape = out_shape
    # From here slots are read: no Python code may run that could build a Value (and compact the
    # arena), so keep the cyclic collector (and finalizers it could run) out.
    cdef int was_enabled = PyGC_Disable()
    try:
        _record_into(prog, (<Value>output).slot, in_values, par_values, out_values)
    finally:
        if was_enabled:
            PyGC_Enable()
    return prog


cdef int _record_into(Program prog, int32_t root, list in_values, list par_values,
                      list out_values) except -1:
    cdef int32_t n = topo_order(root)  # ascending slots into A.order
    cdef Scratch order_buf = Scratch(n, sizeof(int32_t))
    cdef Scratch pos_buf = Scratch(A.size, sizeof(int32_t))
    cdef Scratch role_buf = Scratch(n, sizeof(int32_t))
    cdef Scratch new_buf = Scratch(n, sizeof(int32_t))
    # order: topological position -> slot; pos: slot -> topological position, -1 outside the
    # graph; role: position -> 1 + parameter index, -1 - input index, or 0; new: position ->
    # index in the program
    cdef int32_t *order = <int32_t *>order_buf.p
    cdef int32_t *pos = <int32_t *>pos_buf.p
    cdef int32_t *role = <int32_t *>role_buf.p
    cdef int32_t *new = <int32_t *>new_buf.p
    cdef int32_t i, s, k, n_params, n_leaves, next_leaf, next_op
    cdef int32_t n_inputs = <int32_t>len(in_values)
    memcpy(order, A.order, <size_t>n * sizeof(int32_t))
    memset(pos, 0xff, <size_t>A.size * sizeof(int32_t))
    memset(role, 0, <size_t>n * sizeof(int32_t))
    for i in range(n):
        pos[order[i]] = i
        if A.flags[order[i]] & FLAG_CLOSURE:
            raise ValueError(
                f"cannot record a graph with a node whose _backward is a Python closure "
                f"({<object>A.handle[order[i]]!r}, op {(<object>A.handle[order[i]])._op!r}): "
                "a program replays compiled rules only")
        if A.op[order[i]] == SOP_OPAQUE:
            raise ValueError(
                "cannot record a graph with a node built as Value(data, _children, _op): its "
                "value comes from Python code that a program cannot replay")
    for k in range(n_inputs):
        i = _leaf_position(in_values[k], pos, f"inputs[{k}]")
        role[i] = -1 - k
    if par_values is None:  # every leaf with a live handle that is not an input
        par_values = []
        for i in range(n):
            s = order[i]
            if A.op[s] == SOP_LEAF and A.handle[s] != NULL and role[i] == 0:
                par_values.append(<Value>A.handle[s])
                role[i] = <int32_t>len(par_values)
    else:
        for k in range(len(par_values)):
            i = _leaf_position(par_values[k], pos, f"params[{k}]")
            role[i] = 1 + k
    n_params = <int32_t>len(par_values)
    # The outputs' positions (their nodes must stay in the program).
    cdef Scratch out_buf = Scratch(len(out_values), sizeof(int32_t))
    cdef int32_t *out_pos = <int32_t *>out_buf.p
    for k in range(len(out_values)):
        s = (<Value>out_values[k]).slot
        if pos[s] < 0:
            raise ValueError(f"outputs[{k}] is not a node of the graph behind the output")
        out_pos[k] = pos[s]
    # Fusion: a product used once, by the sum that is the next op, goes into that sum's MULADD.
    # uses[i] counts the parents of position i, then marks fused products with -1.
    cdef int32_t *uses = new  # reused: `new` is filled only afterwards
    cdef int32_t n_fused = 0, prev_op = -1, a, b, p
    memset(uses, 0, <size_t>n * sizeof(int32_t))
    for i in range(n):
        s = order[i]
        if A.op[s] != SOP_LEAF:
            uses[pos[A.a[s]]] += 1
            if A.b[s] >= 0:
                uses[pos[A.b[s]]] += 1
    for k in range(len(out_values)):
        uses[out_pos[k]] += 2  # never fused away
    for i in range(n):
        s = order[i]
        if A.op[s] == SOP_LEAF:
            continue
        if A.op[s] == SOP_ADD and prev_op >= 0 and _fusable(prev_op, order, uses) and (
                pos[A.a[s]] == prev_op or pos[A.b[s]] == prev_op):
            uses[prev_op] = -1
            n_fused += 1
        prev_op = i
    # Leaves first (parameters, inputs, constants), then the ops in creation order.
    n_leaves = 0
    for i in range(n):
        if A.op[order[i]] == SOP_LEAF:
            n_leaves += 1
    next_leaf = n_params + n_inputs
    next_op = n_leaves
    for i in range(n):
        if role[i] > 0:
            new[i] = role[i] - 1
        elif role[i] < 0:
            new[i] = n_params - 1 - role[i]
        elif A.op[order[i]] == SOP_LEAF:
            new[i] = next_leaf
            next_leaf += 1
        elif uses[i] == -1:
            new[i] = -1  # fused into its sum
        else:
            new[i] = next_op
            next_op += 1
    prog._allocate(n - n_fused, <int32_t>len(out_values))
    prog.n_nodes = n
    prog.n_params = n_params
    prog.n_inputs = n_inputs
    prog.n_leaves = n_leaves
    prog.root = new[pos[root]]
    prog._leaves = tuple(par_values) + tuple(in_values)
    for k in range(len(out_values)):
        prog.out_index[k] = new[out_pos[k]]
    cdef int32_t j
    for i in range(n):
        j = new[i]
        if j < 0:
            continue
        s = order[i]
        prog.op[j] = A.op[s]
        prog.val[j] = A.val[s]
        prog.aux[j] = A.aux[s]
        prog.ca[j] = -1
        prog.cb[j] = -1
        prog.cc[j] = -1
        if A.op[s] == SOP_LEAF:
            continue
        a = pos[A.a[s]]
        b = pos[A.b[s]] if A.b[s] >= 0 else a  # unary ops: b = a, read without a branch
        if A.op[s] == SOP_ADD and (new[a] < 0 or new[b] < 0):
            p = a if new[a] < 0 else b  # the fused product; the other operand is the addend
            prog.op[j] = PROGRAM_MULADD
            prog.ca[j] = new[b] if p == a else new[a]
            prog.cb[j] = new[pos[A.a[order[p]]]]
            prog.cc[j] = new[pos[A.b[order[p]]]]
        else:
            prog.ca[j] = new[a]
            prog.cb[j] = new[b]
            prog.cc[j] = new[b]
    prog._valid = True
    return 0


cdef inline bint _fusable(int32_t p, const int32_t *order, const int32_t *uses) noexcept:
    """Position p holds a product used exactly once."""
    return A.op[order[p]] == SOP_MUL and uses[p] == 1


cdef int32_t _leaf_position(object v, const int32_t *pos, str what) except -1:
    cdef int32_t s = (<Value>v).slot
    cdef int32_t i = pos[s]
    if i < 0:
        raise ValueError(f"{what} ({v!r}) is not in the graph behind the output")
    if A.op[s] != SOP_LEAF:
        raise ValueError(f"{what} ({v!r}) is not a leaf: only leaves can be inputs or params")
    return i


# -------------------------------------------------------------------------------------------------
# Unpickling


def _restore(int version, Py_ssize_t n_nodes, Py_ssize_t n_params, Py_ssize_t n_inputs,
             Py_ssize_t n_leaves, Py_ssize_t root, bytes ops, bytes ca, bytes cb, bytes cc,
             bytes aux, bytes val, bytes out_index, tuple leaves, input_shape, output_shape,
             bint valid):
    """Inverse of Program.__reduce__ (checks everything: a pickle is untrusted data)."""
    if version != _PICKLE_VERSION:
        raise ValueError(f"unsupported fastgrad Program pickle version {version}")
    cdef Py_ssize_t n = len(ops), n_out, k
    if n > INT32_MAX - 64:
        raise ValueError("corrupt fastgrad Program pickle: too many nodes")
    n_out = len(out_index) // <Py_ssize_t>sizeof(int32_t)
    if (len(ca) != n * <Py_ssize_t>sizeof(int32_t) or len(cb) != n * <Py_ssize_t>sizeof(int32_t)
            or len(cc) != n * <Py_ssize_t>sizeof(int32_t) or not (n <= n_nodes <= INT32_MAX)
            or len(aux) != n * <Py_ssize_t>sizeof(double)
            or len(val) != n * <Py_ssize_t>sizeof(double)
            or len(out_index) != n_out * <Py_ssize_t>sizeof(int32_t)
            or not (0 <= n_params and 0 <= n_inputs and n_params + n_inputs <= n_leaves <= n)
            or len(leaves) != n_params + n_inputs or not (0 <= root < n)):
        raise ValueError("corrupt fastgrad Program pickle")
    for v in leaves:
        if not isinstance(v, Value):
            raise ValueError("corrupt fastgrad Program pickle: a leaf is not a Value")
    if len({id(v) for v in leaves}) != len(leaves):
        raise ValueError("corrupt fastgrad Program pickle: a leaf is listed twice")
    for shape, count in ((input_shape, n_inputs), (output_shape, n_out)):
        if shape is None:
            if count:
                raise ValueError("corrupt fastgrad Program pickle: bad shape")
        elif type(shape) is not tuple or _product(shape) != count:
            raise ValueError("corrupt fastgrad Program pickle: bad shape")
    cdef Program prog = Program.__new__(Program, _MAKE)
    prog._allocate(<int32_t>n, <int32_t>n_out)
    memcpy(prog.op, <const char *>ops, <size_t>n)
    memcpy(prog.ca, <const char *>ca, <size_t>n * sizeof(int32_t))
    memcpy(prog.cb, <const char *>cb, <size_t>n * sizeof(int32_t))
    memcpy(prog.cc, <const char *>cc, <size_t>n * sizeof(int32_t))
    memcpy(prog.aux, <const char *>aux, <size_t>n * sizeof(double))
    memcpy(prog.val, <const char *>val, <size_t>n * sizeof(double))
    memcpy(prog.out_index, <const char *>out_index, <size_t>n_out * sizeof(int32_t))
    for k in range(n):
        if not _valid_node(prog, k, n_leaves):
            raise ValueError(f"corrupt fastgrad Program pickle: bad node {k}")
    for k in range(n_out):
        if not (0 <= prog.out_index[k] < n):
            raise ValueError("corrupt fastgrad Program pickle: bad output")
    prog.n_nodes = <int32_t>n_nodes
    prog.n_params = <int32_t>n_params
    prog.n_inputs = <int32_t>n_inputs
    prog.n_leaves = <int32_t>n_leaves
    prog.root = <int32_t>root
    prog._leaves = leaves
    prog._input_shape = input_shape
    prog._output_shape = output_shape
    prog._valid = valid
    return prog


cdef Py_ssize_t _product(tuple shape) except -1:
    cdef Py_ssize_t p = 1
    for d in shape:
        if type(d) is not int or d < 0:
            return -2
        p *= d
    return p


cdef bint _valid_node(Program prog, Py_ssize_t k, Py_ssize_t n_leaves):
    """Leaves first and childless; every op reads only nodes below it, as its rule expects."""
    cdef uint8_t op = prog.op[k]
    cdef int32_t a = prog.ca[k], b = prog.cb[k], c = prog.cc[k]
    if k < n_leaves:
        return op == SOP_LEAF and a == -1 and b == -1 and c == -1
    if not (0 <= a < k and 0 <= b < k and 0 <= c < k):
        return False
    if op == PROGRAM_MULADD:
        return True
    if op in (SOP_ADD, SOP_MUL, SOP_POW, SOP_MAX, SOP_MIN):
        return c == b
    if SOP_POW_CONST <= op < SOP_COUNT:  # the unary ops read only a (b == c == a)
        return b == a and c == a
    return False


# -------------------------------------------------------------------------------------------------
# Bulk updates of any parameters


def sgd_step(params, double lr):
    """``p.data -= lr * p.grad`` for every Value in ``params``, in one C loop.

    The same update as micrograd's ``for p in model.parameters(): p.data -= lr * p.grad``,
    without a Python call per parameter (``Program.sgd_step`` does it for a program's).

    >>> from fastgrad import Value
    >>> from fastgrad.engine import sgd_step
    >>> ps = [Value(1.0), Value(2.0)]
    >>> ps[0].grad = 1.0; ps[1].grad = -2.0
    >>> sgd_step(ps, 0.5); [p.data for p in ps]
    [0.5, 3.0]
    """
    cdef tuple ps = tuple(params)
    cdef Py_ssize_t k
    cdef int32_t s
    for k in range(len(ps)):
        if not isinstance(ps[k], Value):
            raise TypeError(f"params must be Values, not {type(ps[k]).__name__}")
    for k in range(len(ps)):
        s = _slot(ps, k)
        A.val[s] = A.val[s] - lr * A.grad[s]
