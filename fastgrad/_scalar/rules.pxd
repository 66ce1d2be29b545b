# The scalar ops' local rules, in one place: the arena's sweeps (value.pyx) and recorded
# programs (replay.pyx) both inline these, so a replayed node runs the very C expressions a
# freshly built one does (bit-identical results under -ffp-contract=off).
from libc.math cimport NAN, exp, fabs, log, pow, tanh
from libc.stdint cimport int32_t, uint8_t

from fastgrad._scalar.arena cimport *


cdef inline double _sigmoid(double x) noexcept nogil:
    cdef double e
    if x >= 0.0:
        return 1.0 / (1.0 + exp(-x))
    e = exp(x)
    return e / (1.0 + e)


cdef inline double value_rule(uint8_t op, double x, double y, double aux) noexcept nogil:
    """The value of a node with operands x, y (y unused by unary ops) and constant aux."""
    # inline, so that building a node with a known op compiles to just its arithmetic
    if op == SOP_ADD:
        return x + y
    if op == SOP_MUL:
        return x * y
    if op == SOP_POW_CONST:
        return pow(x, aux)
    if op == SOP_POW:
        return pow(x, y)
    if op == SOP_RELU:
        return 0.0 if x < 0.0 else x
    if op == SOP_TANH:
        return tanh(x)
    if op == SOP_EXP:
        return exp(x)
    if op == SOP_LOG:
        return log(x)
    if op == SOP_SIGMOID:
        return _sigmoid(x)
    if op == SOP_MAX:
        return y if y > x else x  # Python's max(x, y): the first unless the second is larger
    if op == SOP_MIN:
        return y if y < x else x
    if op == SOP_ABS:
        return fabs(x)
    return NAN


cdef inline void mul_backward(double g, int32_t a, int32_t b, const double *val,
                              double *grad) noexcept nogil:
    """SOP_MUL's backward rule for a product of a and b whose gradient is g."""
    grad[a] += val[b] * g
    grad[b] += val[a] * g


cdef inline void backward_rule(uint8_t op, int32_t s, int32_t a, int32_t b, const double *val,
                                double *grad, const double *aux) noexcept nogil:
    """micrograd's local rule of node s (children a, b; b < 0 for unary ops): add grad[s]
    times d(s)/d(child) into each child's grad. Leaves and SOP_OPAQUE nodes have no rule."""
    cdef double g = grad[s], x, y, t
    if op == SOP_ADD:
        grad[a] += g
        grad[b] += g
    elif op == SOP_MUL:
        mul_backward(g, a, b, val, grad)
    elif op == SOP_POW_CONST:
        y = aux[s]
        grad[a] += (y * pow(val[a], y - 1.0)) * g
    elif op == SOP_POW:
        x = val[a]
        y = val[b]
        grad[a] += (y * pow(x, y - 1.0)) * g
        if x > 0.0:
            grad[b] += (val[s] * log(x)) * g
        elif x < 0.0:
            grad[b] += NAN  # d/dy x**y has no real value for x < 0
    elif op == SOP_RELU:
        grad[a] += (1.0 if val[s] > 0.0 else 0.0) * g
    elif op == SOP_TANH:
        t = val[s]
        grad[a] += (1.0 - t * t) * g
    elif op == SOP_EXP:
        grad[a] += val[s] * g
    elif op == SOP_LOG:
        grad[a] += g / val[a]
    elif op == SOP_SIGMOID:
        t = val[s]
        grad[a] += (t * (1.0 - t)) * g
    elif op == SOP_MAX:
        if val[b] > val[a]:
            grad[b] += g
        else:
            grad[a] += g
    elif op == SOP_MIN:
        if val[b] < val[a]:
            grad[b] += g
        else:
            grad[a] += g
    elif op == SOP_ABS:
        x = val[a]
        grad[a] += (1.0 if x > 0.0 else (-1.0 if x < 0.0 else 0.0)) * g


cdef inline void muladd_backward(int32_t s, int32_t a, int32_t b, int32_t c, const double *val,
                                 double *grad) noexcept nogil:
    """The backward rule of a recorded program's fused node s = a + b * c (replay.pyx): SOP_ADD's
    rule into a, then SOP_MUL's into b and c for the product, whose gradient starts at 0.0 as a
    fresh node's does, so the fusion changes no bit."""
    cdef double g = grad[s]
    grad[a] += g
    mul_backward(0.0 + g, b, c, val, grad)


cdef inline double tangent_rule(uint8_t op, int32_t s, int32_t a, int32_t b, const double *val,
                                 const double *aux, double ta, double tb) noexcept nogil:
    """Forward mode's local rule of node s: its tangent from its children's tangents ta, tb
    (tb unused by unary ops), with backward_rule's derivatives and conventions at kinks
    (relu and abs 0 at 0, max/min follow the first operand on a tie). Leaves and SOP_OPAQUE
    nodes have no rule: 0."""
    cdef double x, y, t
    if op == SOP_ADD:
        return ta + tb
    if op == SOP_MUL:
        return val[b] * ta + val[a] * tb
    if op == SOP_POW_CONST:
        y = aux[s]
        return (y * pow(val[a], y - 1.0)) * ta
    if op == SOP_POW:
        x = val[a]
        y = val[b]
        t = (y * pow(x, y - 1.0)) * ta
        if x > 0.0:
            return t + (val[s] * log(x)) * tb
        if x < 0.0 and tb != 0.0:
            return NAN  # d/dy x**y has no real value for x < 0 (backward's grad[b] is NaN)
        return t
    if op == SOP_RELU:
        return (1.0 if val[s] > 0.0 else 0.0) * ta
    if op == SOP_TANH:
        t = val[s]
        return (1.0 - t * t) * ta
    if op == SOP_EXP:
        return val[s] * ta
    if op == SOP_LOG:
        return ta / val[a]
    if op == SOP_SIGMOID:
        t = val[s]
        return (t * (1.0 - t)) * ta
    if op == SOP_MAX:
        return tb if val[b] > val[a] else ta
    if op == SOP_MIN:
        return tb if val[b] < val[a] else ta
    if op == SOP_ABS:
        x = val[a]
        return (1.0 if x > 0.0 else (-1.0 if x < 0.0 else 0.0)) * ta
    return 0.0
