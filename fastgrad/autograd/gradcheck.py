"""gradcheck: analytic gradients (backward) against central differences."""

import math

import numpy as np

from fastgrad import engine
from fastgrad._tensor import Tensor, no_grad

__all__ = ["gradcheck", "GradcheckError"]


class GradcheckError(AssertionError):
    """An analytic gradient disagrees with its central difference.

    Attributes name the worst entry: ``input_index``, ``element`` (an index tuple, ``()`` for
    a Value), ``analytic``, ``numeric``, ``abs_error`` and ``rel_error``.
    """

    def __init__(self, message, input_index, element, analytic, numeric, abs_error, rel_error):
        super().__init__(message)
        self.input_index = input_index
        self.element = element
        self.analytic = analytic
        self.numeric = numeric
        self.abs_error = abs_error
        self.rel_error = rel_error


def gradcheck(f, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0):
    """Check ``backward()``'s gradients of ``f(*inputs)`` against central differences.

    ``inputs`` are all Values or all Tensors (Tensors with ``requires_grad=True``; use float64,
    float32 is too coarse for eps=1e-6). ``f(*inputs)`` returns a Value, or a Tensor. A
    Tensor output with more than one element is checked through a random projection: the
    scalar ``(f(*inputs) * v).sum()`` with ``v`` drawn from a standard normal seeded with
    ``seed`` (with probability 1 a wrong Jacobian entry changes that scalar's gradient).

    Each entry passes if ``|analytic - numeric| <= atol + rtol * |numeric|``, numeric being
    ``(g(x + eps) - g(x - eps)) / (2 eps)``. Returns True when all pass; otherwise raises
    GradcheckError naming the worst entry (input index, element index, both values, absolute
    and relative error). The inputs' data is restored afterwards, and their ``grad`` too.

    >>> from fastgrad import Value
    >>> gradcheck(lambda x, y: (x * y + y.exp()).tanh(), [Value(0.3), Value(-0.7)])
    True
    >>> broken = lambda x: Value(x.data ** 2, (x,), 'square')  # no derivative rule
    >>> gradcheck(broken, [Value(1.5)])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    fastgrad.autograd.gradcheck.GradcheckError: gradcheck failed at input 0 (a Value): analytic 0.0, numeric ..., abs error 3, rel error 1 (atol=1e-05, rtol=0.001, eps=1e-06)
    """
    inputs = list(inputs)
    if not inputs:
        raise ValueError("gradcheck needs at least one input")
    if all(isinstance(x, Tensor) for x in inputs):
        entries = _tensor_entries(f, inputs, eps, seed)
    elif not any(isinstance(x, Tensor) for x in inputs):
        entries = _value_entries(f, inputs, eps)
    else:
        raise TypeError("gradcheck: inputs must be all Values or all Tensors")

    def badness(entry):
        """The error over what the tolerances allow (above 1: fails; NaN counts as inf)."""
        analytic, numeric = entry[2], entry[3]
        ratio = abs(analytic - numeric) / (atol + rtol * abs(numeric))
        return math.inf if math.isnan(ratio) else ratio

    if not entries:
        return True  # inputs without elements: nothing to check
    worst = max(entries, key=badness)
    if badness(worst) <= 1.0:
        return True
    i, element, analytic, numeric = worst
    abs_error = abs(analytic - numeric)
    rel_error = abs_error / abs(numeric) if numeric != 0 else math.inf
    where = f"input {i} (a Value)" if element == () and not isinstance(inputs[i], Tensor) \
        else f"input {i}, element {element}"
    raise GradcheckError(
        f"gradcheck failed at {where}: analytic {analytic!r}, numeric {numeric!r}, "
        f"abs error {abs_error:.3g}, rel error {rel_error:.3g} "
        f"(atol={atol}, rtol={rtol}, eps={eps})",
        i, element, analytic, numeric, abs_error, rel_error)


_VALUE_TYPES = (engine.Value, engine.reference.Value)


def _value_entries(f, inputs, eps):
    for x in inputs:
        if not isinstance(x, _VALUE_TYPES):
            raise TypeError(f"gradcheck: inputs must be Values or Tensors, not {type(x).__name__}")
    saved_grads = [x.grad for x in inputs]
    try:
        for x in inputs:
            x.grad = 0.0
        out = f(*inputs)
        if not isinstance(out, _VALUE_TYPES):
            raise TypeError(f"gradcheck: f returned {type(out).__name__}, not a Value")
        out.backward()
        analytic = [x.grad for x in inputs]
    finally:
        for x, saved in zip(inputs, saved_grads):
            x.grad = saved

    def scalar_output():
        return f(*inputs).data

    entries = []
    for i, x in enumerate(inputs):
        x0 = x.data
        try:
            x.data = x0 + eps
            up = scalar_output()
            x.data = x0 - eps
            down = scalar_output()
        finally:
            x.data = x0
        entries.append((i, (), analytic[i], (up - down) / (2 * eps)))
    return entries


def _tensor_entries(f, inputs, eps, seed):
    for x in inputs:
        if not x.requires_grad:
            raise ValueError("gradcheck: every input Tensor needs requires_grad=True")
    probe = f(*inputs)
    if not isinstance(probe, Tensor):
        raise TypeError(f"gradcheck: f returned {type(probe).__name__}, not a Tensor")
    if probe.numel() == 1:
        v = None
        scalar = probe.sum()
    else:
        v = np.random.default_rng(seed).standard_normal(probe.shape)
        scalar = (probe * Tensor(v)).sum()

    saved_grads = [x.grad for x in inputs]
    try:
        for x in inputs:
            x.grad = None
        scalar.backward()
        analytic = [np.zeros(x.shape) if x.grad is None else np.array(x.grad, dtype=np.float64)
                    for x in inputs]
    finally:
        for x, saved in zip(inputs, saved_grads):
            x.grad = saved

    def projected_output():
        with no_grad():
            y = np.asarray(f(*inputs).numpy(), dtype=np.float64)
        return float(y.sum() if v is None else (y * v).sum())

    entries = []
    for i, x in enumerate(inputs):
        original = x.numpy()
        try:
            for element in np.ndindex(*original.shape):
                moved = original.copy()
                moved[element] = original[element] + eps
                x.data = moved
                up = projected_output()
                moved[element] = original[element] - eps
                x.data = moved
                down = projected_output()
                entries.append((i, element, float(analytic[i][element]), (up - down) / (2 * eps)))
        finally:
            x.data = original
    return entries
