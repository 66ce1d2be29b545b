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

import numpy

from fastgrad._scalar.attributes import ValueAttributes

__all__ = ["Value", "linear_combination", "linear_layer", "jvp", "record", "sgd_step", "RULES",
           "graph_nodes"]


def _as_number(x):
    """x as a float if it is a real number (Python or numpy, numpy's bool too), else None."""
    if isinstance(x, float):
        return float(x)
    if isinstance(x, (numbers.Real, numpy.bool_)):
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

# -- the ops' rules ---------------------------------------------------------------------------
#
# One class per op, holding its value, backward and tangent rule side by side (the compiled
# engine's twin is fastgrad/_scalar/rules.pxd; the two are written to give the same bits). A
# node keeps its op class in `_rule` (a class pickles by name).
#   value(x, y, aux):            the node's value from its operands (y, aux unused by some ops)
#   backward(out):               add out.grad times d(out)/d(child) into each child's grad
#   tangent(out, ta, tb):        the node's forward-mode tangent from its children's


class _NoDerivative:
    """A number, or a node built as Value(data, _children, _op): no derivative flows through."""

    symbol = ''  # how Value._op spells it

    @staticmethod
    def backward(out):
        pass

    @staticmethod
    def tangent(out, ta, tb):
        return 0.0


class _Add:
    """a + b"""

    symbol = '+'  # how Value._op spells it

    @staticmethod
    def value(x, y, aux=None):
        return x + y

    @staticmethod
    def backward(out):
        a, b = out._children
        a.grad += out.grad
        b.grad += out.grad

    @staticmethod
    def tangent(out, ta, tb):
        return ta + tb


class _Mul:
    """a * b"""

    symbol = '*'  # how Value._op spells it

    @staticmethod
    def value(x, y, aux=None):
        return x * y

    @staticmethod
    def backward(out):
        a, b = out._children
        a.grad += b.data * out.grad
        b.grad += a.data * out.grad

    @staticmethod
    def tangent(out, ta, tb):
        a, b = out._children
        return b.data * ta + a.data * tb


class _PowConst:
    """a ** aux, aux a number"""

    symbol = '**'  # how Value._op spells it

    @staticmethod
    def value(x, y, aux):
        return _checked_pow(x, aux)

    @staticmethod
    def backward(out):
        (a,) = out._children
        y = out._exponent
        a.grad += (y * _c_pow(a.data, y - 1.0)) * out.grad

    @staticmethod
    def tangent(out, ta, tb):
        (a,) = out._children
        y = out._exponent
        return (y * _c_pow(a.data, y - 1.0)) * ta


class _Pow:
    """a ** b, both Values; no derivative in b where a < 0 (NaN) or a == 0 (none)"""

    symbol = '**'  # how Value._op spells it

    @staticmethod
    def value(x, y, aux=None):
        return _checked_pow(x, y)

    @staticmethod
    def backward(out):
        a, b = out._children
        x, y = a.data, b.data
        a.grad += (y * _c_pow(x, y - 1.0)) * out.grad
        if x > 0.0:
            b.grad += (out.data * math.log(x)) * out.grad
        elif x < 0.0:
            b.grad += math.nan

    @staticmethod
    def tangent(out, ta, tb):
        a, b = out._children
        x, y = a.data, b.data
        t = (y * _c_pow(x, y - 1.0)) * ta
        if x > 0.0:
            return t + (out.data * math.log(x)) * tb
        if x < 0.0 and tb != 0.0:
            return math.nan
        return t


class _Relu:
    """max(a, 0); derivative 0 at 0"""

    symbol = 'ReLU'  # how Value._op spells it

    @staticmethod
    def value(x, y=None, aux=None):
        return 0.0 if x < 0.0 else x

    @staticmethod
    def backward(out):
        (a,) = out._children
        a.grad += (1.0 if out.data > 0.0 else 0.0) * out.grad

    @staticmethod
    def tangent(out, ta, tb):
        return (1.0 if out.data > 0.0 else 0.0) * ta


class _Tanh:
    """tanh(a)"""

    symbol = 'tanh'  # how Value._op spells it

    @staticmethod
    def value(x, y=None, aux=None):
        return math.tanh(x)

    @staticmethod
    def backward(out):
        (a,) = out._children
        a.grad += (1.0 - out.data * out.data) * out.grad

    @staticmethod
    def tangent(out, ta, tb):
        return (1.0 - out.data * out.data) * ta


class _Exp:
    """e ** a"""

    symbol = 'exp'  # how Value._op spells it

    @staticmethod
    def value(x, y=None, aux=None):
        try:
            return math.exp(x)
        except OverflowError:
            raise OverflowError(f"exp({x!r}): math range error") from None

    @staticmethod
    def backward(out):
        (a,) = out._children
        a.grad += out.data * out.grad

    @staticmethod
    def tangent(out, ta, tb):
        return out.data * ta


class _Log:
    """log(a), a > 0"""

    symbol = 'log'  # how Value._op spells it

    @staticmethod
    def value(x, y=None, aux=None):
        if not x > 0.0 and not math.isnan(x):
            raise ValueError(f"log({x!r}): math domain error (log needs a positive input)")
        return math.log(x)

    @staticmethod
    def backward(out):
        (a,) = out._children
        a.grad += out.grad / a.data

    @staticmethod
    def tangent(out, ta, tb):
        (a,) = out._children
        return ta / a.data


class _Sigmoid:
    """1 / (1 + e ** -a)"""

    symbol = 'sigmoid'  # how Value._op spells it

    @staticmethod
    def value(x, y=None, aux=None):
        return _sigmoid(x)

    @staticmethod
    def backward(out):
        (a,) = out._children
        a.grad += (out.data * (1.0 - out.data)) * out.grad

    @staticmethod
    def tangent(out, ta, tb):
        return (out.data * (1.0 - out.data)) * ta


class _Max:
    """a if a >= b else b; the derivative follows the chosen operand (a on a tie)"""

    symbol = 'max'  # how Value._op spells it

    @staticmethod
    def value(x, y, aux=None):
        return y if y > x else x

    @staticmethod
    def backward(out):
        a, b = out._children
        if b.data > a.data:
            b.grad += out.grad
        else:
            a.grad += out.grad

    @staticmethod
    def tangent(out, ta, tb):
        a, b = out._children
        return tb if b.data > a.data else ta


class _Min:
    """a if a <= b else b; the derivative follows the chosen operand (a on a tie)"""

    symbol = 'min'  # how Value._op spells it

    @staticmethod
    def value(x, y, aux=None):
        return y if y < x else x

    @staticmethod
    def backward(out):
        a, b = out._children
        if b.data < a.data:
            b.grad += out.grad
        else:
            a.grad += out.grad

    @staticmethod
    def tangent(out, ta, tb):
        a, b = out._children
        return tb if b.data < a.data else ta


class _Abs:
    """|a|; derivative sign(a), 0 at 0"""

    symbol = 'abs'  # how Value._op spells it

    @staticmethod
    def value(x, y=None, aux=None):
        return abs(x)

    @staticmethod
    def backward(out):
        (a,) = out._children
        x = a.data
        a.grad += (1.0 if x > 0.0 else (-1.0 if x < 0.0 else 0.0)) * out.grad

    @staticmethod
    def tangent(out, ta, tb):
        (a,) = out._children
        x = a.data
        return (1.0 if x > 0.0 else (-1.0 if x < 0.0 else 0.0)) * ta


# The ops by the name the compiled engine's op enum gives them (SOP_ADD -> "ADD"); a test
# checks that the two inventories agree.
RULES = {"LEAF": _NoDerivative, "OPAQUE": _NoDerivative, "ADD": _Add, "MUL": _Mul,
         "POW_CONST": _PowConst, "POW": _Pow, "RELU": _Relu, "TANH": _Tanh, "EXP": _Exp,
         "LOG": _Log, "SIGMOID": _Sigmoid, "MAX": _Max, "MIN": _Min, "ABS": _Abs}


class _Node:
    """Gives Value its instance dict, which Value's ``__dict__`` shows as micrograd lists it."""


_instance_dict = _Node.__dict__["__dict__"].__get__  # a Value's real attribute dict
# What ``vars(v)`` leaves out of that dict: the engine's own bookkeeping, and what it lists
# under micrograd's names already.
_PRIVATE = frozenset({"_children", "_rule", "_exponent", "_created", "_closure", "data", "grad",
                      "_op", "label"})


class Value(_Node):
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
        children = tuple(_children)
        if len(children) > 2:  # as the compiled engine, which stores two children per node
            raise ValueError(f"a fastgrad Value records at most two children, got {len(children)}")
        for c in children:
            if not isinstance(c, Value):
                raise TypeError(f"_children must be Values, not {type(c).__name__}")
            if c is self:
                raise ValueError("a Value cannot be its own child")
        if not isinstance(_op, str) or not isinstance(label, str):
            raise TypeError(f"{'_op' if not isinstance(_op, str) else 'label'} must be a str")
        self.data = _to_float(data)
        self.grad = 0.0
        self._children = children
        self._op = str(_op)
        self.label = str(label)
        self._rule = _NoDerivative
        self._exponent = None
        self._closure = None  # micrograd's __init__ gives every Value a no-op _backward
        self._created = next(_creation_counter)

    @property
    def __dict__(self):  # type: ignore[override]  # a view in place of the real dict
        """micrograd's attributes, then the script's own (a live view)."""
        return ValueAttributes(self, _instance_dict(self), _PRIVATE)

    def __dir__(self):
        # object.__dir__ finds no instance attributes in the view __dict__ gives
        return sorted(set(object.__dir__(self)) | set(self.__dict__) | {"label"})

    @property
    def _prev(self):
        return set(self._children)

    @property
    def _backward(self):
        """The closure assigned to this node, or else its op's rule as a callable."""
        return self._apply_rule if self._closure is None else self._closure

    @_backward.setter
    def _backward(self, fn):
        if getattr(fn, "__func__", None) is Value._apply_rule and fn.__self__ is self:
            self._closure = None  # its own rule back
        elif not callable(fn):
            raise TypeError(f"_backward must be callable, not {type(fn).__name__}")
        else:
            self._closure = fn

    @_backward.deleter
    def _backward(self):
        if self._closure is None:
            raise AttributeError("_backward: this Value has no closure of its own to delete")
        self._closure = None

    def _apply_rule(self):
        self._rule.backward(self)

    @staticmethod
    def _node(rule, data, children, op=None):
        """A node of op class `rule` over `children`, of value `data` (from rule.value)."""
        # __init__'s attributes, set directly: data is already a float, children a tuple
        out = object.__new__(Value)
        out.data = data
        out.grad = 0.0
        out._children = children
        out._op = rule.symbol if op is None else op
        out.label = ''
        out._rule = rule
        out._exponent = None
        out._closure = None
        out._created = next(_creation_counter)
        return out

    def __add__(self, other):
        if not isinstance(other, Value):
            x = _as_number(other)
            if x is None:
                return NotImplemented
            other = Value(x)
        return Value._node(_Add, _Add.value(self.data, other.data), (self, other))

    def __mul__(self, other):
        if not isinstance(other, Value):
            x = _as_number(other)
            if x is None:
                return NotImplemented
            other = Value(x)
        return Value._node(_Mul, _Mul.value(self.data, other.data), (self, other))

    def __pow__(self, other, modulo=None):
        if modulo is not None:
            return NotImplemented
        if isinstance(other, Value):
            return Value._node(_Pow, _Pow.value(self.data, other.data), (self, other))
        y = _as_number(other)
        if y is None:
            return NotImplemented
        spelled = int(other) if isinstance(other, numbers.Integral) else y
        out = Value._node(_PowConst, _PowConst.value(self.data, None, y), (self,), f'**{spelled}')
        out._exponent = y
        return out

    def __rpow__(self, other, modulo=None):  # other ** self
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

    def relu(self):
        return Value._node(_Relu, _Relu.value(self.data), (self,))

    def tanh(self):
        return Value._node(_Tanh, _Tanh.value(self.data), (self,))

    def exp(self):
        return Value._node(_Exp, _Exp.value(self.data), (self,))

    def log(self):
        return Value._node(_Log, _Log.value(self.data), (self,))

    def sigmoid(self):
        return Value._node(_Sigmoid, _Sigmoid.value(self.data), (self,))

    def _extremum(self, other, rule):
        if not isinstance(other, Value):
            x = _as_number(other)
            if x is None:
                raise TypeError(f"{rule.symbol}() needs a Value or a real number, "
                                f"not {type(other).__name__}")
            other = Value(x)
        return Value._node(rule, rule.value(self.data, other.data), (self, other))

    def max(self, other):
        return self._extremum(other, _Max)

    def min(self, other):
        return self._extremum(other, _Min)

    def __abs__(self):
        return Value._node(_Abs, _Abs.value(self.data), (self,))

    # The gradient of the last backward(create_graph=True) as a Value one can differentiate
    # again, on each leaf it reached (an instance attribute then; None until then).
    grad_value = None

    def backward(self, create_graph=False):
        if create_graph:  # the float grads as below, and each leaf's grad_value
            from fastgrad._scalar.graph_rules import backward_creating_graph
            backward_creating_graph(self)
            return
        # a node is always created after its children: latest first is a topological order
        self.grad = 1.0
        for v in reversed(_topological(self)):
            if v._closure is None:
                v._rule.backward(v)
            else:
                v._closure()

    def __repr__(self):
        return f"Value(data={self.data!r}, grad={self.grad!r})"


def _topological(*roots):
    """Every node the roots depend on, children before parents (iteratively: graphs may be
    millions deep)."""
    reachable = {id(root): root for root in roots}
    stack = list(roots)
    while stack:
        for child in stack.pop()._children:
            if id(child) not in reachable:
                reachable[id(child)] = child
                stack.append(child)
    return sorted(reachable.values(), key=lambda v: v._created)


_RULE_NAMES = {rule: name for name, rule in RULES.items() if rule is not _NoDerivative}


def graph_nodes(roots):
    """Every node the given Values depend on, in creation order (children before parents), as
    the compiled twin (value.pyx's graph_nodes) lists them: ``(node, op, first, second, aux,
    closure)`` with the children's positions in the list (-1 for none).

    >>> x = Value(2.0); y = x * x + 1
    >>> [(op, first, second) for _, op, first, second, _, _ in graph_nodes([y])]
    [('LEAF', -1, -1), ('MUL', 0, 0), ('LEAF', -1, -1), ('ADD', 1, 2)]
    """
    roots = list(roots)
    for r in roots:
        if not isinstance(r, Value):
            raise TypeError(f"graph_nodes needs Values, not {type(r).__name__}")
    order = _topological(*roots) if roots else []
    position = {id(v): i for i, v in enumerate(order)}
    nodes = []
    for v in order:
        kids = v._children
        if v._rule is _NoDerivative:
            op = "OPAQUE" if kids else "LEAF"
        else:
            op = _RULE_NAMES[v._rule]
        nodes.append((v, op, position[id(kids[0])] if kids else -1,
                      position[id(kids[1])] if len(kids) > 1 else -1,
                      v._exponent if v._exponent is not None else 0.0, v._closure))
    return nodes


def jvp(output, tangents):
    """Forward mode: d(output) along ``tangents`` (a dict Value -> number), one tangent sweep
    over the recorded nodes with each op's tangent rule; the compiled twin is
    fastgrad/_scalar/forward_mode.pyx.

    >>> x = Value(2.0); y = Value(3.0)
    >>> jvp(x * y + x, {x: 1.0})
    4.0
    """
    if not isinstance(output, Value):
        raise TypeError(f"jvp needs a Value or a Tensor output, not {type(output).__name__}")
    seeds = {}
    for key, number in tangents.items():
        if not isinstance(key, Value):
            raise TypeError(f"tangents must map Values to numbers; got a key of type "
                            f"{type(key).__name__}")
        if not isinstance(number, numbers.Real):
            raise TypeError(f"the tangent of {key!r} must be a real number, "
                            f"not {type(number).__name__}")
        seeds[id(key)] = float(number)
    tangent: dict[int, float] = {}
    for v in _topological(output):
        if v._closure is not None:
            raise_for_closure(v)
        kids = v._children
        ta = tangent[id(kids[0])] if kids else 0.0
        tb = tangent[id(kids[1])] if len(kids) > 1 else 0.0
        t = v._rule.tangent(v, ta, tb)
        if id(v) in seeds:
            t = t + seeds[id(v)]
        tangent[id(v)] = t
    return tangent[id(output)]


def raise_for_closure(node):
    """Forward mode has each op's tangent rule; a node's own _backward closure gives none."""
    raise RuntimeError(
        f"jvp: the node {node!r} (op {node._op!r}) has a _backward closure of its own; forward "
        "mode needs a tangent rule, which a closure does not give (use backward() instead)")


def record(output, inputs=None, params=None, outputs=None):
    """Needs the compiled engine: the reference engine has no tape to record."""
    raise RuntimeError("fastgrad.record replays the compiled engine's graphs; it is not "
                       "available with FASTGRAD_ENGINE=pure")


def sgd_step(params, lr):
    """``p.data -= lr * p.grad`` for every parameter."""
    for p in params:
        p.data -= lr * p.grad


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
