"""Scalar ops and random graphs against PyTorch's autograd (float64), when torch is installed."""

import math

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from conftest import Value
from test_engine_ops import OPS
from test_engine_random_graphs import BINARY, UNARY, WITH_NUMBER, apply, build, instructions, reference_errors

torch = pytest.importorskip("torch", reason="PyTorch is not installed: comparisons with it are skipped")


class TorchScalar:
    """A 0-d float64 tensor wrapped with the Value methods the test graphs use."""

    __array_ufunc__ = None

    def __init__(self, t):
        self.t = t if isinstance(t, torch.Tensor) else torch.tensor(float(t), dtype=torch.float64)

    @staticmethod
    def leaf(x):
        return TorchScalar(torch.tensor(float(x), dtype=torch.float64, requires_grad=True))

    def _t(self, other):
        return other.t if isinstance(other, TorchScalar) else other

    def __add__(self, o): return TorchScalar(self.t + self._t(o))
    def __radd__(self, o): return TorchScalar(o + self.t)
    def __sub__(self, o): return TorchScalar(self.t - self._t(o))
    def __rsub__(self, o): return TorchScalar(o - self.t)
    def __mul__(self, o): return TorchScalar(self.t * self._t(o))
    def __rmul__(self, o): return TorchScalar(o * self.t)
    def __truediv__(self, o): return TorchScalar(self.t / self._t(o))
    def __rtruediv__(self, o): return TorchScalar(o / self.t)
    def __pow__(self, o): return TorchScalar(self.t ** self._t(o))
    def __rpow__(self, o): return TorchScalar(torch.tensor(float(o), dtype=torch.float64) ** self.t)
    def __neg__(self): return TorchScalar(-self.t)
    def relu(self): return TorchScalar(torch.relu(self.t))
    def tanh(self): return TorchScalar(torch.tanh(self.t))
    def exp(self): return TorchScalar(torch.exp(self.t))
    def log(self): return TorchScalar(torch.log(self.t))
    def sigmoid(self): return TorchScalar(torch.sigmoid(self.t))
    def max(self, o): return TorchScalar(torch.maximum(self.t, torch.as_tensor(self._t(o), dtype=torch.float64)))
    def min(self, o): return TorchScalar(torch.minimum(self.t, torch.as_tensor(self._t(o), dtype=torch.float64)))
    def __abs__(self): return TorchScalar(torch.abs(self.t))

    @property
    def data(self):
        return self.t.item()


def close(a, b):
    """Equal to 1e-12 relative; the absolute floor covers cancellation (1 - tanh(x)**2 at x = 12)."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)


@pytest.mark.parametrize("name", sorted(OPS))
def test_op_matches_torch(name):
    arity, fn, points = OPS[name]
    for point in points:
        point = point if arity == 2 else (point,)
        leaves = [Value(x) for x in point]
        out = fn(*leaves)
        out.backward()
        tleaves = [TorchScalar.leaf(x) for x in point]
        tout = fn(*tleaves)
        tout.t.backward()
        assert close(out.data, tout.data), (name, point)
        for v, t in zip(leaves, tleaves):
            assert close(v.grad, t.t.grad.item()), (name, point)


# PyTorch divides where micrograd multiplies by a reciprocal, so compare on well-conditioned
# inputs: no magnitudes where the two formulas' rounding dominates the result.
moderate = st.floats(min_value=-3.0, max_value=3.0).filter(lambda x: abs(x) >= 1e-2)
# PyTorch splits a max/min tie's gradient between the operands (a Max op and fastgrad give it
# to the first), and relu(x).max(relu(y)) ties often: those two are compared in the op table.
instruction = instructions(moderate, [op for op in UNARY + BINARY + WITH_NUMBER if op not in ("max", "min")])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(leaves=st.lists(moderate, min_size=1, max_size=4), program=st.lists(instruction, min_size=1, max_size=15))
def test_random_graphs_match_torch(leaves, program):
    assume(not reference_errors(leaves, program))
    vs, nodes, out = build(Value, leaves, program)
    tvs = [TorchScalar.leaf(x) for x in leaves]
    tnodes = list(tvs)
    for op, i, j, number, exponent in program:
        tnodes.append(apply(op, tnodes[i % len(tnodes)], tnodes[j % len(tnodes)], number, exponent))
    assume(all(math.isfinite(n.data) and abs(n.data) < 1e6 for n in nodes))
    out.backward()
    tout = tnodes[-1].t
    if not tout.requires_grad:
        return
    tout.backward()
    grads = [t.t.grad.item() if t.t.grad is not None else 0.0 for t in tvs]
    # relu's rule is micrograd's `(out > 0) * grad`, so a NaN upstream stays NaN where PyTorch
    # masks it to 0: compare only where both are finite
    assume(all(math.isfinite(g) for g in grads + [v.grad for v in vs]))
    scale = max([abs(g) for g in grads] + [1.0])
    for n, t in zip(nodes, tnodes):
        assert math.isclose(n.data, t.data, rel_tol=1e-9, abs_tol=1e-12)
    # PyTorch's kernels (and accumulation order) differ from libm's, so allow rounding
    assert all(math.isclose(v.grad, g, rel_tol=1e-7, abs_tol=1e-9 * scale) for v, g in zip(vs, grads))
