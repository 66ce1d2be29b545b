"""Forward mode (fastgrad.autograd.jvp): tangent sweeps against reverse mode and finite
differences."""

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastgrad
from fastgrad.autograd import forward_grad, jvp

from conftest import COMPILED, RefValue, Value, compiled_only
from test_engine_random_graphs import build, finite, instruction, magnitude
from test_tensor_hypothesis import build_chain, shapes

# written for float64 numerics: Python floats make float64 tensors here
pytestmark = pytest.mark.usefixtures("float64_default")


def test_polynomial():
    # p(d, x, y) = x (x + y + d) + y^2 at (2, 3): dp/dx = 9, dp/dy = 8
    d, x, y = Value(2.0), Value(2.0), Value(3.0)
    p = x * (x + y + d) + y * y
    assert p.data == 23.0
    assert jvp(p, {x: 1.0}) == 9.0
    assert jvp(p, {y: 1.0}) == 8.0
    assert jvp(p, {x: 1.0, y: 1.0}) == 17.0
    assert jvp(p, {x: 2.0, y: -1.0}) == 10.0
    assert forward_grad(p, [x, y, d]) == [9.0, 8.0, 2.0]


def test_jvp_leaves_grads_alone_and_missing_inputs_have_zero_tangent():
    x, y = Value(1.5), Value(-0.5)
    x.grad = 7.0
    z = (x * y).tanh() + y.exp()
    assert jvp(z, {}) == 0.0
    assert jvp(z, {Value(3.0): 1.0}) == 0.0  # a Value not in the graph
    assert x.grad == 7.0 and y.grad == 0.0 and z.grad == 0.0


def test_jvp_of_a_leaf_is_its_tangent():
    x = Value(4.0)
    assert jvp(x, {x: 2.5}) == 2.5
    assert jvp(x, {}) == 0.0


@pytest.mark.parametrize("make", [
    lambda x, y: x + y, lambda x, y: x * y, lambda x, y: x - y, lambda x, y: x / y,
    lambda x, y: x ** 3, lambda x, y: x ** -0.5, lambda x, y: x ** y, lambda x, y: 2.0 ** x,
    lambda x, y: x.relu(), lambda x, y: (-x).relu(), lambda x, y: x.tanh(),
    lambda x, y: x.exp(), lambda x, y: x.log(), lambda x, y: x.sigmoid(),
    lambda x, y: x.max(y), lambda x, y: x.min(y), lambda x, y: abs(-x), lambda x, y: -y,
])
def test_each_op_matches_backward(make):
    x, y = Value(1.7), Value(0.6)
    out = make(x, y)
    out.backward()
    assert jvp(out, {x: 1.0}) == pytest.approx(x.grad, rel=1e-15, abs=0)
    assert jvp(out, {y: 1.0}) == pytest.approx(y.grad, rel=1e-15, abs=0)


def test_conventions_at_kinks_follow_backward():
    x, y = Value(0.0), Value(0.0)
    assert jvp(x.relu(), {x: 1.0}) == 0.0          # relu: 0 at 0
    assert jvp(abs(x), {x: 1.0}) == 0.0            # abs: 0 at 0
    m = x.max(y)                                   # ties go to the first operand
    assert (jvp(m, {x: 1.0}), jvp(m, {y: 1.0})) == (1.0, 0.0)
    m = x.min(y)
    assert (jvp(m, {x: 1.0}), jvp(m, {y: 1.0})) == (1.0, 0.0)
    m = y.max(x)
    assert (jvp(m, {x: 1.0}), jvp(m, {y: 1.0})) == (0.0, 1.0)


def test_pow_with_negative_base_has_no_derivative_in_the_exponent():
    x, y = Value(-2.0), Value(3.0)
    z = x ** y
    z.backward()
    assert jvp(z, {x: 1.0}) == x.grad == 12.0
    assert math.isnan(y.grad)
    assert math.isnan(jvp(z, {y: 1.0}))


def test_opaque_node_passes_no_derivative():
    x = Value(3.0)
    f = Value(x.data ** 2, (x,), 'square')  # built by hand: no derivative rule
    out = f * 2
    assert jvp(out, {x: 1.0}) == 0.0
    assert jvp(out, {f: 1.0}) == 2.0


def test_tangent_on_an_inner_node_perturbs_it():
    # jvp(out, {v: d}) = sum of d(out)/d(v) * d, also for v that are not leaves
    x, y = Value(0.3), Value(-1.1)
    h = x * y + x
    out = (h.tanh() * y).exp()
    out.backward()
    got = jvp(out, {h: 1.0, x: 0.5})
    assert got == pytest.approx(h.grad + 0.5 * x.grad, rel=1e-14)


def test_bad_arguments():
    x = Value(1.0)
    with pytest.raises(TypeError, match="tangents must"):
        jvp(x * 2, [(x, 1.0)])
    with pytest.raises(TypeError, match="tangents must map"):
        jvp(x * 2, {"x": 1.0})
    with pytest.raises(TypeError, match="must be a real number"):
        jvp(x * 2, {x: "one"})
    with pytest.raises(TypeError, match="needs a Value or a Tensor"):
        jvp(3.0, {})


def test_numpy_tangents():
    x = Value(2.0)
    assert jvp(x ** 2, {x: np.float32(0.5)}) == 2.0


@compiled_only
def test_tangent_conversion_that_compacts_the_arena():
    # Converting a tangent runs Python code, which may build Values and move every slot:
    # slots must be read after that.
    from fastgrad._scalar.value import compact_now

    class Noisy(float):
        def __float__(self):
            junk = [Value(i) * 2 for i in range(5000)]
            del junk
            compact_now()
            return 1.0

    xs = [Value(float(i)) for i in range(10)]
    y = xs[7] * xs[7] + xs[3]
    del xs[:3]  # dead slots below y: a compaction moves it
    assert jvp(y, {xs[4]: Noisy(5.0), xs[0]: 0.0}) == 14.0


@compiled_only
def test_deep_chain():
    x = Value(0.5)
    y = x
    for _ in range(200_000):
        y = y * 1.0 + 0.0
    assert jvp(y, {x: 1.0}) == 1.0


# -- dual numbers ---------------------------------------------------------------------------------


def test_dual_numbers_on_the_tape():
    from fastgrad.autograd import Dual
    x, y = Dual(2.0, 1.0), Dual(3.0)
    p = x * (x + y + 2) + y * y
    assert (p.value, p.tangent) == (23.0, 9.0)
    assert isinstance(p.primal, Value)
    assert repr(p) == "Dual(value=23.0, tangent=9.0)"
    # seeds of both operands combine: the derivative along (1, 0.5)
    x, y = Dual(0.7, 1.0), Dual(-0.4, 0.5)
    ops = [lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a * b, lambda a, b: a / b,
           lambda a, b: a ** 2 + 3 ** a, lambda a, b: (a.max(b) - a.min(b)) * abs(b),
           lambda a, b: a.tanh() + b.exp() + a.sigmoid() + b.relu() + a.log(),
           lambda a, b: 2 - a + 1 / b - (-b) * 0.5 + (a ** 1.5), lambda a, b: 2.0 * a + 1]
    for f in ops:
        out = f(x, y)
        vx, vy = Value(0.7), Value(-0.4)
        ref = f(vx, vy)
        ref.backward()
        assert out.value == ref.data
        assert out.tangent == pytest.approx(vx.grad + 0.5 * vy.grad, rel=1e-14, abs=1e-15)
    assert Dual(1.0).tangent == 0.0
    assert (Dual(2.0, 1.0) * Value(5.0)).tangent == 5.0  # a plain Value is a constant
    with pytest.raises(TypeError):
        Dual(1.0) + "a"


# -- random graphs ------------------------------------------------------------------------------

directions = st.lists(st.floats(-2.0, 2.0, allow_nan=False), min_size=4, max_size=4)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(leaves=st.lists(finite, min_size=1, max_size=4),
       program=st.lists(instruction, min_size=1, max_size=25),
       direction=directions)
def test_jvp_equals_reverse_mode_on_random_graphs(leaves, program, direction):
    vs, nodes, out = build(Value, leaves, program)
    tangents = dict(zip(vs, direction))
    forward = jvp(out, tangents)
    out.backward()
    terms = [v.grad * d for v, d in zip(vs, direction)]
    if not all(math.isfinite(t) for t in terms + [forward]):
        return  # poles, overflow and x**y at x < 0: conventions, tested above
    reverse = math.fsum(terms)
    rvs, _, rout = build(RefValue, leaves, program)
    scale = magnitude(rout, dict(zip(rvs, direction)))
    if not math.isfinite(scale):
        return
    # 1e-12 relative to the largest magnitude the sweeps add up (see magnitude)
    assert abs(forward - reverse) <= 1e-12 * max(1.0, scale), (forward, reverse, scale)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(leaves=st.lists(finite, min_size=1, max_size=4),
       program=st.lists(instruction, min_size=1, max_size=25),
       direction=directions)
def test_compiled_sweep_matches_reference_engine_bit_for_bit(leaves, program, direction):
    vs, nodes, out = build(Value, leaves, program)
    rvs, rnodes, rout = build(RefValue, leaves, program)
    got = jvp(out, dict(zip(vs, direction)))
    want = jvp(rout, dict(zip(rvs, direction)))
    assert got == want or (math.isnan(got) and math.isnan(want)), (got, want)


SMOOTH = ["add", "sub", "mul", "tanh", "sigmoid", "exp", "neg", "pow_const",
          "add_number", "rsub", "mul_number", "rmul"]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(leaves=st.lists(st.floats(-1.0, 1.0), min_size=1, max_size=4),
       program=st.lists(instruction, min_size=1, max_size=12),
       direction=directions)
def test_jvp_matches_finite_differences(leaves, program, direction):
    ops = [p for p in program if p[0] in SMOOTH and not (p[0] == "pow_const" and p[4] not in (2, 3))]

    def f(xs):
        return build(RefValue, xs, ops)[2].data

    vs, nodes, out = build(Value, leaves, ops)
    d = direction[:len(leaves)]
    got = jvp(out, dict(zip(vs, d)))
    if not math.isfinite(got) or abs(got) > 1e6:
        return
    h = 1e-6
    up = f([x + h * di for x, di in zip(leaves, d)])
    down = f([x - h * di for x, di in zip(leaves, d)])
    numeric = (up - down) / (2 * h)
    assert got == pytest.approx(numeric, rel=1e-4, abs=1e-4)


# -- tensors: fastgrad._tensor.tensor_jvp (the tensor engine's sweep) -----------------------------

needs_tensor_jvp = pytest.mark.skipif(
    not hasattr(fastgrad._tensor, "tensor_jvp"),
    reason="fastgrad._tensor.tensor_jvp (tensor forward mode) is not in this build")


@needs_tensor_jvp
def test_tensor_jvp_of_a_scalar_output_is_grad_dot_direction():
    rng = np.random.default_rng(0)
    a = fastgrad.Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    b = fastgrad.Tensor(rng.standard_normal((4, 2)), requires_grad=True)
    out = ((a @ b).tanh() * 2.0).sum()
    da, db = rng.standard_normal((3, 4)), rng.standard_normal((4, 2))
    got = np.asarray(jvp(out, {a: da, b: db}))
    assert got.shape == out.shape
    out.backward()
    ga, gb = a.grad.numpy().copy(), b.grad.numpy().copy()
    want = (ga * da).sum() + (gb * db).sum()
    assert float(got) == pytest.approx(want, rel=1e-12, abs=1e-12)
    # a missing input has zero tangent; a number broadcasts
    assert float(np.asarray(jvp(out, {a: da}))) == pytest.approx((ga * da).sum(), rel=1e-12)
    assert float(np.asarray(jvp(out, {b: 1.0}))) == pytest.approx(gb.sum(), rel=1e-12)


@needs_tensor_jvp
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_tensor_jvp_matches_vector_jacobian_products(data):
    shape = data.draw(shapes)
    arrays, fn, _ = build_chain(data, shape)
    ts = [fastgrad.Tensor(x, requires_grad=True) for x in arrays]
    out = fn(*ts)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    dirs = [rng.standard_normal(x.shape) for x in arrays]
    w = rng.standard_normal(out.shape)
    forward = np.asarray(jvp(out, dict(zip(ts, dirs))))
    assert forward.shape == out.shape
    (out * fastgrad.Tensor(w)).sum().backward()
    # <w, J d> computed two ways: by the tangent sweep and from the reverse sweep's w^T J
    lhs = float((w * forward).sum())
    terms = [(t.grad * d).sum() if t.grad is not None else 0.0 for t, d in zip(ts, dirs)]
    rhs = float(sum(terms))
    # 1e-12 relative to norm bounds of both sides (|<w, J d>| <= |w|_1 |J d|_inf, and the
    # same for the reverse side), so near-cancelling sums are not held to their tiny result
    scale = max(1.0, float(np.abs(w).sum() * np.abs(forward).max(initial=0.0)),
                sum(float(np.abs(t.grad).sum() * np.abs(d).max(initial=0.0))
                    for t, d in zip(ts, dirs) if t.grad is not None))
    assert abs(lhs - rhs) <= 1e-12 * scale, (lhs, rhs, scale)


@needs_tensor_jvp
def test_tensor_forward_grad_equals_backward():
    rng = np.random.default_rng(1)
    a = fastgrad.Tensor(rng.standard_normal((2, 3)), requires_grad=True)
    b = fastgrad.Tensor(rng.standard_normal(3), requires_grad=True)
    out = (a * b).sigmoid().mean()
    ga, gb = forward_grad(out, [a, b])
    out.backward()
    np.testing.assert_allclose(ga, a.grad, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(gb, b.grad, rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="one-element"):
        forward_grad(a * 2, [a])
