"""The pure-Python reference engine: micrograd's Value with the same extra ops as the core.

It is the oracle of the differential tests and the baseline of every benchmark. It builds the
same nodes as the compiled engine (subtraction is a + (-1 * b), division is a * b**-1, as in
micrograd), in the same order, and back-propagates in the same order (latest-created node
first: creation order is a topological order), so it produces the same numbers bit for bit.
Select it for a whole program with ``FASTGRAD_ENGINE=pure``.
"""

import itertools
import math
import numbers

__all__ = ["Value", "linear_combination", "linear_layer"]


def _as_number(x):
    """x as a float if it is a real number (Python or numpy), else None."""
    if isinstance(x, float):
        return float(x)
    if isinstance(x, numbers.Real):
        return float(x)
    return None


def _to_float(x):
    v = _as_number(x)
    if v is None:
        raise TypeError(f"must be real number, not {type(x).__name__}")
    return v


def _checked_pow(x, y):
    """x ** y with Python's errors, and ValueError where Python would go complex."""
    if x < 0.0 and math.isfinite(x) and math.isfinite(y) and y != math.floor(y):
        raise ValueError(
            f"negative number {x!r} cannot be raised to a fractional power {y!r} "
            "(Values are real numbers)")
    try:
        return x ** y
    except OverflowError:
        raise OverflowError(f"{x!r} ** {y!r}: numerical result out of range") from None


def _c_pow(x, y):
    """C's pow(), as the compiled sweep computes it: inf at a pole instead of an exception."""
    try:
        r = x ** y
    except ZeroDivisionError:
        odd = y == math.floor(y) and y % 2 == 1
        return math.copysign(math.inf, x) if odd else math.inf
    except OverflowError:
        odd = y == math.floor(y) and y % 2 == 1
        return -math.inf if (x < 0 and odd) else math.inf
    return math.nan if isinstance(r, complex) else r


def _sigmoid(x):
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


_creation_counter = itertools.count()

# Backward rules: each adds out's contribution to its children's grads (micrograd's closures,
# written as plain functions so Values pickle).

def _no_rule(out):
    pass


def _add_rule(out):
    a, b = out._children
    a.grad += out.grad
    b.grad += out.grad


def _mul_rule(out):
    a, b = out._children
    a.grad += b.data * out.grad
    b.grad += a.data * out.grad


def _pow_const_rule(out):
    (a,) = out._children
    y = out._exponent
    a.grad += (y * _c_pow(a.data, y - 1.0)) * out.grad


def _pow_rule(out):
    a, b = out._children
    x, y = a.data, b.data
    a.grad += (y * _c_pow(x, y - 1.0)) * out.grad
    if x > 0.0:
        b.grad += (out.data * math.log(x)) * out.grad
    elif x < 0.0:
        b.grad += math.nan


def _relu_rule(out):
    (a,) = out._children
    a.grad += (1.0 if out.data > 0.0 else 0.0) * out.grad


def _tanh_rule(out):
    (a,) = out._children
    a.grad += (1.0 - out.data * out.data) * out.grad


def _exp_rule(out):
    (a,) = out._children
    a.grad += out.data * out.grad


def _log_rule(out):
    (a,) = out._children
    a.grad += out.grad / a.data


def _sigmoid_rule(out):
    (a,) = out._children
    a.grad += (out.data * (1.0 - out.data)) * out.grad


def _max_rule(out):
    a, b = out._children
    if b.data > a.data:
        b.grad += out.grad
    else:
        a.grad += out.grad


def _min_rule(out):
    a, b = out._children
    if b.data < a.data:
        b.grad += out.grad
    else:
        a.grad += out.grad


def _abs_rule(out):
    (a,) = out._children
    x = a.data
    a.grad += (1.0 if x > 0.0 else (-1.0 if x < 0.0 else 0.0)) * out.grad


class Value:
    """A scalar and its gradient: micrograd's Value, plus tanh, exp, log, sigmoid, Value**Value,
    max, min and abs.

    >>> a, b = Value(2.0), Value(-3.0)
    >>> c = a * b + a ** 2
    >>> c.backward()
    >>> (c.data, a.grad, b.grad)
    (-2.0, 1.0, 2.0)
    """

    __array_ufunc__ = None  # numpy scalars on the left defer to Value

    def __init__(self, data, _children=(), _op='', label=''):
        self.data = _to_float(data)
        self.grad = 0.0
        self._children = tuple(_children)
        self._op = _op
        self.label = label
        self._rule = _no_rule
        self._exponent = None
        self._created = next(_creation_counter)

    @property
    def _prev(self):
        return set(self._children)

    def _backward(self):
        self._rule(self)

    @staticmethod
    def _node(data, children, op, rule):
        out = Value(data, children, op)
        out._rule = rule
        return out

    def __add__(self, other):
        if not isinstance(other, Value):
            x = _as_number(other)
            if x is None:
                return NotImplemented
            other = Value(x)
        return Value._node(self.data + other.data, (self, other), '+', _add_rule)

    def __mul__(self, other):
        if not isinstance(other, Value):
            x = _as_number(other)
            if x is None:
                return NotImplemented
            other = Value(x)
        return Value._node(self.data * other.data, (self, other), '*', _mul_rule)

    def __pow__(self, other, modulo=None):
        if modulo is not None:
            return NotImplemented
        if isinstance(other, Value):
            data = _checked_pow(self.data, other.data)
            return Value._node(data, (self, other), '**', _pow_rule)
        y = _as_number(other)
        if y is None:
            return NotImplemented
        spelled = int(other) if isinstance(other, numbers.Integral) else y
        out = Value._node(_checked_pow(self.data, y), (self,), f'**{spelled}', _pow_const_rule)
        out._exponent = y
        return out

    def __rpow__(self, other, modulo=None):
        x = _as_number(other)
        if modulo is not None or x is None:
            return NotImplemented
        return Value(x) ** self

    def __neg__(self):  # -self
        return self * -1.0

    def __radd__(self, other):  # other + self
        return self + other

    def __sub__(self, other):  # self - other
        if not isinstance(other, Value) and _as_number(other) is None:
            return NotImplemented
        return self + (-other)

    def __rsub__(self, other):  # other - self
        if _as_number(other) is None:
            return NotImplemented
        return (-self) + other

    def __rmul__(self, other):  # other * self
        return self * other

    def __truediv__(self, other):  # self / other
        if isinstance(other, Value):
            return self * other ** -1
        x = _as_number(other)
        if x is None:
            return NotImplemented
        return self * _checked_pow(x, -1.0)

    def __rtruediv__(self, other):  # other / self
        if _as_number(other) is None:
            return NotImplemented
        return self ** -1 * other

    def _unary(self, data, op, rule):
        return Value._node(data, (self,), op, rule)

    def relu(self):
        return self._unary(0.0 if self.data < 0.0 else self.data, 'ReLU', _relu_rule)

    def tanh(self):
        return self._unary(math.tanh(self.data), 'tanh', _tanh_rule)

    def exp(self):
        try:
            data = math.exp(self.data)
        except OverflowError:
            raise OverflowError(f"exp({self.data!r}): math range error") from None
        return self._unary(data, 'exp', _exp_rule)

    def log(self):
        if not self.data > 0.0 and not math.isnan(self.data):
            raise ValueError(f"log({self.data!r}): math domain error (log needs a positive input)")
        return self._unary(math.log(self.data), 'log', _log_rule)

    def sigmoid(self):
        return self._unary(_sigmoid(self.data), 'sigmoid', _sigmoid_rule)

    def _extremum(self, other, op, rule):
        if not isinstance(other, Value):
            x = _as_number(other)
            if x is None:
                raise TypeError(f"{op}() needs a Value or a real number, not {type(other).__name__}")
            other = Value(x)
        x, y = self.data, other.data
        data = (y if y > x else x) if op == 'max' else (y if y < x else x)
        return Value._node(data, (self, other), op, rule)

    def max(self, other):
        return self._extremum(other, 'max', _max_rule)

    def min(self, other):
        return self._extremum(other, 'min', _min_rule)

    def __abs__(self):
        return self._unary(abs(self.data), 'abs', _abs_rule)

    def backward(self):
        # every node this one depends on (iteratively: graphs may be millions deep)
        reachable = {id(self): self}
        stack = [self]
        while stack:
            for child in stack.pop()._children:
                if id(child) not in reachable:
                    reachable[id(child)] = child
                    stack.append(child)
        # a node is always created after its children: latest first is a topological order
        self.grad = 1.0
        for v in sorted(reachable.values(), key=lambda v: v._created, reverse=True):
            v._backward()

    def __repr__(self):
        return f"Value(data={self.data!r}, grad={self.grad!r})"


def linear_combination(weights, inputs, bias, relu=False):
    """bias + w0*x0 + w1*x1 + ..., as micrograd's Neuron computes it; optionally relu'd."""
    weights = list(weights)
    inputs = list(inputs)
    if len(inputs) != len(weights):
        raise ValueError(f"expected {len(weights)} inputs (one per weight), got {len(inputs)}")
    act = sum((wi * xi for wi, xi in zip(weights, inputs)), bias)
    return act.relu() if relu else act


def linear_layer(neurons, inputs, neuron_type=None):
    """[n(inputs) for n in neurons], each neuron a micrograd Neuron (w, b, nonlin)."""
    neurons = list(neurons)
    if neuron_type is not None and any(type(n) is not neuron_type for n in neurons):
        return NotImplemented
    inputs = list(inputs)
    return [linear_combination(n.w, inputs, n.b, relu=n.nonlin) for n in neurons]
