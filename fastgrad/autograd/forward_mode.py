"""Forward mode: directional derivatives by a tangent sweep over the recorded graph.

Reverse mode (``backward()``) gives the derivative of one output with respect to every input in
one sweep. Forward mode gives the derivative of every node along one input direction in one
sweep (forward accumulation): ``jvp(output, {x: 1.0})`` is d(output)/dx. Both run over the
same recorded nodes; nothing is rebuilt.

For any direction, ``jvp(out, {v: d_v, ...})`` equals ``sum(v.grad * d_v)`` after
``out.backward()`` (with fresh grads), up to rounding.
"""

import numbers
from collections.abc import Mapping

import numpy as np

from fastgrad import engine
from fastgrad._tensor import Tensor, tensor_jvp

__all__ = ["jvp", "forward_grad", "Dual"]


def jvp(output, tangents):
    """The derivative of ``output`` along ``tangents``, by forward mode.

    ``output`` is a Value or a Tensor.

    - Value: ``tangents`` maps Values to numbers; returns a float, the sum over the dict of
      d(output)/d(v) * tangents[v]. Values not in the dict have tangent 0; a Value that is not
      a leaf is perturbed too (its given tangent adds to the one flowing in from below). The
      sweep uses the same local derivatives as ``backward()``: relu's and abs's is 0 at 0, max
      and min follow the first operand on a tie, an op built as ``Value(data, children, op)``
      passes no derivative, and ``x ** y`` with x < 0 has no derivative in y (NaN if the
      direction moves y).
    - Tensor: ``tangents`` maps input Tensors (leaves with ``requires_grad=True``) to arrays
      of their shape (or numbers, broadcast); returns a numpy array shaped like ``output``.

    >>> from fastgrad import Value
    >>> x = Value(2.0); y = Value(3.0)
    >>> p = x * (x + y + 2) + y * y
    >>> jvp(p, {x: 1.0}), jvp(p, {y: 1.0})
    (9.0, 8.0)
    """
    if not isinstance(tangents, Mapping):
        raise TypeError(f"tangents must be a dict (node -> tangent), not {type(tangents).__name__}")
    if isinstance(output, Tensor):
        return tensor_jvp(output, dict(tangents))
    if isinstance(output, engine.Value):
        return engine.jvp(output, tangents)
    if isinstance(output, engine.reference.Value):  # the reference engine's Values, in any session
        return engine.reference.jvp(output, tangents)
    raise TypeError(f"jvp needs a Value or a Tensor output, not {type(output).__name__}")


def forward_grad(output, inputs):
    """The gradient of a scalar ``output`` with respect to ``inputs``, by forward mode.

    One tangent sweep per input (``jvp(output, {x: 1.0})``), so it costs len(inputs) sweeps
    where ``backward()`` costs one; it leaves every ``grad`` untouched. For Values returns a
    list of floats; for Tensors a list of arrays shaped like each input (one sweep per
    element: meant for small checks).

    >>> from fastgrad import Value
    >>> d = Value(2.0); x = Value(2.0); y = Value(3.0)
    >>> forward_grad(x * (x + y + d) + y * y, [x, y])
    [9.0, 8.0]
    """
    inputs = list(inputs)
    if isinstance(output, Tensor):
        if output.numel() != 1:
            raise ValueError(f"forward_grad needs a one-element output, got shape {output.shape}")
        grads = []
        for x in inputs:
            g = np.zeros(x.shape, dtype=np.float64)
            for idx in np.ndindex(*x.shape):
                e = np.zeros(x.shape, dtype=x.dtype)
                e[idx] = 1
                g[idx] = float(np.asarray(jvp(output, {x: e})).reshape(-1)[0])
            grads.append(g)
        return grads
    return [jvp(output, {x: 1.0}) for x in inputs]


class Dual:
    """A dual number ``primal + tangent·ε`` kept on the tape (forward accumulation).

    ``Dual(x, dx)`` wraps a Value (or makes a leaf from a number) and gives it tangent ``dx``.
    Arithmetic on Duals builds ordinary Values on the tape and remembers which leaves were
    seeded; ``.tangent`` is then one compiled tangent sweep, ``jvp(primal, seeds)``. Nothing
    but the seeds is stored per Dual, so this is forward mode on the same core, with
    dual-number syntax.

    >>> x = Dual(2.0, 1.0); y = Dual(3.0)      # differentiate along x
    >>> p = x * (x + y + 2) + y * y
    >>> p.value, p.tangent
    (23.0, 9.0)
    >>> (x.tanh() + x.exp() / y).tangent == jvp((x.tanh() + x.exp() / y).primal, {x.primal: 1.0})
    True
    """

    __slots__ = ("primal", "_seeds")

    def __init__(self, primal, tangent=0.0):
        if not isinstance(primal, engine.Value):
            primal = engine.Value(primal)
        self.primal = primal
        self._seeds = {primal: float(tangent)} if tangent else {}

    @classmethod
    def _of(cls, primal, seeds):
        out = cls.__new__(cls)
        out.primal = primal
        out._seeds = seeds
        return out

    @property
    def value(self):
        """The primal's value (a float)."""
        return self.primal.data

    @property
    def tangent(self):
        """d(primal) along the seeded tangents, by a forward sweep over the tape."""
        return jvp(self.primal, self._seeds) if self._seeds else 0.0

    def __repr__(self):
        return f"Dual(value={self.value!r}, tangent={self.tangent!r})"

    def _combine(self, other, op):
        if isinstance(other, Dual):
            seeds = self._seeds
            if other._seeds and other._seeds is not seeds:
                seeds = {**seeds, **other._seeds}
            return Dual._of(op(self.primal, other.primal), seeds)
        if isinstance(other, numbers.Real) or isinstance(other, engine.Value):
            return Dual._of(op(self.primal, other), self._seeds)
        return NotImplemented

    def __add__(self, other):
        return self._combine(other, lambda a, b: a + b)

    def __radd__(self, other):
        return self._combine(other, lambda a, b: b + a)

    def __sub__(self, other):
        return self._combine(other, lambda a, b: a - b)

    def __rsub__(self, other):
        return self._combine(other, lambda a, b: b - a)

    def __mul__(self, other):
        return self._combine(other, lambda a, b: a * b)

    def __rmul__(self, other):
        return self._combine(other, lambda a, b: b * a)

    def __truediv__(self, other):
        return self._combine(other, lambda a, b: a / b)

    def __rtruediv__(self, other):
        return self._combine(other, lambda a, b: b / a)

    def __pow__(self, other):
        return self._combine(other, lambda a, b: a ** b)

    def __rpow__(self, other):
        return self._combine(other, lambda a, b: b ** a)

    def __neg__(self):
        return Dual._of(-self.primal, self._seeds)

    def __abs__(self):
        return Dual._of(abs(self.primal), self._seeds)

    def max(self, other):
        """The larger of self and other (its tangent follows the chosen operand)."""
        return self._combine(other, lambda a, b: a.max(b))

    def min(self, other):
        """The smaller of self and other (its tangent follows the chosen operand)."""
        return self._combine(other, lambda a, b: a.min(b))

    def relu(self):
        """max(0, x), as Value.relu."""
        return Dual._of(self.primal.relu(), self._seeds)

    def tanh(self):
        """tanh(x), as Value.tanh."""
        return Dual._of(self.primal.tanh(), self._seeds)

    def exp(self):
        """e**x, as Value.exp."""
        return Dual._of(self.primal.exp(), self._seeds)

    def log(self):
        """log(x), as Value.log."""
        return Dual._of(self.primal.log(), self._seeds)

    def sigmoid(self):
        """1 / (1 + e**-x), as Value.sigmoid."""
        return Dual._of(self.primal.sigmoid(), self._seeds)
