"""Higher-order derivatives of Values: fastgrad.autograd.grad with create_graph,
backward(create_graph=True) and grad_value, and fastgrad.autograd.functional (hessian,
jacobian, hvp, vhp, vjp, jvp), against PyTorch float64, finite differences of gradients and
backward()'s floats, on the engine under test (CI runs the file on both engines)."""

import gc
import math
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastgrad
from conftest import COMPILED, RefValue, Value
from fastgrad.autograd import functional as F
from fastgrad.autograd import grad
from test_engine_ops import OPS

try:
    import torch
except ImportError:     # (the installed wheel's test run has only the test extra)
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch not installed: comparison skipped")

# written for float64 numerics: Python floats make float64 tensors here
pytestmark = pytest.mark.usefixtures("float64_default")

# PyTorch's spelling where a Value method has none on tensors (the number operand of max/min)
TORCH_SPELLING = {
    "max_number": lambda x: torch.maximum(x, torch.tensor(0.5, dtype=torch.float64)),
    "min_number": lambda x: torch.minimum(x, torch.tensor(0.5, dtype=torch.float64)),
    "max": lambda x, y: torch.maximum(x, y),
    "min": lambda x, y: torch.minimum(x, y),
}
# points of OPS where a torch float64 reference is meaningful (no overflow to inf on the way)
MODERATE = 50.0


def _op_points():
    for name, (arity, fn, points) in OPS.items():
        for point in points:
            point = point if arity == 2 else (point,)
            if all(abs(p) <= MODERATE for p in point):
                yield pytest.param(name, point, id=f"{name}-{point}")


OP_POINTS = list(_op_points())


def torch_fn(name):
    return TORCH_SPELLING.get(name, OPS[name][1])


def close(a, b, rel=1e-10, abs_=1e-12):
    if math.isnan(a) or math.isnan(b) or math.isinf(a) or math.isinf(b):
        return a == b or (math.isnan(a) and math.isnan(b))
    return abs(a - b) <= abs_ + rel * max(abs(a), abs(b))


def torch_hessian(f, point):
    xs = tuple(torch.tensor(p, dtype=torch.float64) for p in point)
    h = torch.autograd.functional.hessian(f, xs)
    return [[float(h[i][j]) for j in range(len(point))] for i in range(len(point))]


def value_hessian(f, point):
    h = F.hessian(f, tuple(point))
    return [[h[i][j].data for j in range(len(point))] for i in range(len(point))]


def squared(fn):
    # op(x)**2 as a product: its Hessian involves op's first and second derivatives
    return lambda *xs: fn(*xs) * fn(*xs)


# -- every op: second derivatives ---------------------------------------------------------------

@pytest.mark.parametrize("name, point", OP_POINTS)
@pytest.mark.parametrize("shape", [lambda fn: fn, squared], ids=["op", "op_squared"])
@needs_torch
def test_second_derivatives_match_torch(name, point, shape):
    ours = value_hessian(shape(OPS[name][1]), point)
    theirs = torch_hessian(shape(torch_fn(name)), point)
    for i in range(len(point)):
        for j in range(len(point)):
            assert close(ours[i][j], theirs[i][j]), (i, j, ours, theirs)


@pytest.mark.parametrize("name, point", OP_POINTS)
def test_second_derivatives_match_finite_differences_of_gradients(name, point):
    fn = squared(OPS[name][1])
    if (name in ("exp",) and max(abs(p) for p in point) > 5) or min(map(abs, point)) < 1e-6:
        pytest.skip("too steep for a difference quotient")

    def gradient(p):
        xs = [Value(x) for x in p]
        return [g.data for g in grad(fn(*xs), xs)]

    h = 1e-5 * max(abs(p) for p in point)
    ours = value_hessian(fn, point)
    for j in range(len(point)):
        up, down = list(point), list(point)
        up[j] += h
        down[j] -= h
        if min(min(up), min(down)) <= 0 < min(point) or any(
                (u > 0) != (p > 0) or (d > 0) != (p > 0) for u, d, p in zip(up, down, point)):
            continue  # the step crosses a kink or leaves the domain
        column = [(a - b) / (2 * h) for a, b in zip(gradient(up), gradient(down))]
        for i in range(len(point)):
            assert abs(column[i] - ours[i][j]) <= 1e-5 * max(1.0, abs(ours[i][j])), (i, j)


@pytest.mark.parametrize("name, point", OP_POINTS)
def test_first_derivatives_with_a_graph_equal_backward_bit_for_bit(name, point):
    fn = squared(OPS[name][1])
    xs = [Value(p) for p in point]
    out = fn(*xs)
    with_graph = grad(out, xs, create_graph=True)
    without = grad(out, xs)
    out.backward()
    for x, g, h in zip(xs, with_graph, without):
        assert g.data == x.grad or (math.isnan(g.data) and math.isnan(x.grad))
        assert h.data == x.grad or (math.isnan(h.data) and math.isnan(x.grad))


@pytest.mark.parametrize("name, order, point", [
    ("tanh", 3, 0.4), ("tanh", 4, -0.7), ("exp", 3, 1.3), ("pow3", 3, 1.9),
    ("pow_half", 3, 0.4), ("pow_negative_fraction", 4, 1.9), ("sigmoid", 3, -0.7),
    ("log", 3, 0.4), ("rpow", 3, 0.4), ("div", 3, (0.4, 1.9)), ("pow_value", 3, (1.9, 2.3)),
])
@needs_torch
def test_higher_derivatives_match_torch(name, order, point):
    point = point if isinstance(point, tuple) else (point,)
    xs = [Value(p) for p in point]
    ts = [torch.tensor(p, dtype=torch.float64, requires_grad=True) for p in point]
    g = OPS[name][1](*xs)
    t = torch_fn(name)(*ts)
    for _ in range(order):  # d^k/dx^k in the last input
        (g,) = grad(g, xs[-1], create_graph=True)
        (t,) = torch.autograd.grad(t, ts[-1], create_graph=True)
    assert close(g.data, float(t.detach())), (g.data, float(t.detach()))


def test_kinks_follow_the_first_order_conventions():
    x = Value(0.0)
    for out in (x.relu() * x, abs(x) * x, x.max(x) * x, x.min(0.0) * x):
        (g,) = grad(out, x, create_graph=True)
        out.backward()
        assert g.data == x.grad
        x.grad = 0.0
    a, b = Value(1.5), Value(1.5)  # a tie: the derivative follows the first operand
    assert [g.data for g in grad(a.max(b) * a, (a, b))] == [3.0, 0.0]
    assert [g.data for g in grad(a.min(b) * b, (a, b))] == [1.5, 1.5]
    (d,) = grad(Value(0.0) ** Value(2.0), [Value(1.0)], allow_unused=True)
    assert d is None
    z, y = Value(0.0), Value(2.0)
    dz, dy = grad(z ** y, (z, y), create_graph=True)
    assert (dz.data, dy.data) == (0.0, 0.0)  # no derivative in y at x == 0
    (dzz,) = grad(dz, z)
    assert dzz.data == 2.0


# -- random graphs ------------------------------------------------------------------------------

SMOOTH_UNARY = ["tanh", "sigmoid", "square", "cube", "rsqrt_soft", "exp_tanh", "log_soft", "neg",
                "relu", "abs", "rpow"]
BINARY = ["add", "sub", "mul", "div_soft", "max", "min", "pow_soft"]


def apply(op, x, y, lib):
    """One op on nodes of either kind (lib: 'value' or 'torch'), kept in a safe domain."""
    exp = (lambda v: v.exp()) if lib == "value" else torch.exp
    if op == "tanh":
        return x.tanh()
    if op == "sigmoid":
        return x.sigmoid()
    if op == "square":
        return x ** 2
    if op == "cube":
        return x ** 3
    if op == "rsqrt_soft":
        return (x * x + 0.5) ** -0.5
    if op == "rpow":
        return 1.5 ** x.tanh()
    if op == "exp_tanh":
        return exp(x.tanh())
    if op == "log_soft":
        return (x * x + 0.5).log()
    if op == "neg":
        return -x
    if op == "relu":
        return x.relu()
    if op == "abs":
        return abs(x)
    if op == "add":
        return x + y
    if op == "sub":
        return x - y
    if op == "mul":
        return x * y
    if op == "div_soft":
        return x / (y * y + 1.0)
    if op == "pow_soft":
        return (x * x + 0.5) ** (y.tanh())
    if op == "max":
        return x.max(y) if lib == "value" else torch.maximum(x, y)
    if op == "min":
        return x.min(y) if lib == "value" else torch.minimum(x, y)
    raise AssertionError(op)


def run_program(leaves, program, lib):
    nodes = list(leaves)
    for op, i, j in program:
        nodes.append(apply(op, nodes[i % len(nodes)], nodes[j % len(nodes)], lib))
    out = nodes[-1]
    for n in nodes[len(leaves):-1]:  # everything takes part
        out = out + n * 0.25
    return out


programs = st.lists(st.tuples(st.sampled_from(SMOOTH_UNARY + BINARY),
                              st.integers(0, 100), st.integers(0, 100)), min_size=1, max_size=8)
# distinct inputs: max and min of two different nodes that tie take the first operand's
# derivative here and half of each in PyTorch (both are conventions at the kink)
points = st.lists(st.floats(-2.0, 2.0, allow_nan=False).filter(lambda v: abs(v) > 1e-3),
                  min_size=3, max_size=3).filter(
    lambda p: min(abs(a - b) for a, b in ((p[0], p[1]), (p[0], p[2]), (p[1], p[2]))) > 1e-3)


@settings(max_examples=25, deadline=None)
@given(programs, points)
@needs_torch
def test_random_graphs_hessians_match_torch_and_gradients_match_backward(program, point):
    h = value_hessian(lambda *xs: run_program(xs, program, "value"), point)
    theirs = torch_hessian(lambda *ts: run_program(ts, program, "torch"), point)
    for i in range(3):
        for j in range(3):
            assert close(h[i][j], theirs[i][j], rel=1e-9, abs_=1e-10), (i, j, h, theirs)
    xs = [Value(p) for p in point]
    out = run_program(xs, program, "value")
    gs = grad(out, xs, create_graph=True, materialize_grads=True)
    out.backward()
    assert [g.data for g in gs] == [x.grad for x in xs]
    # the reference engine builds the same gradient graphs: the same bits
    ref = F.hessian(lambda *xs: run_program(xs, program, "value"),
                    tuple(RefValue(p) for p in point))
    assert [[v.data for v in row] for row in ref] == h


# -- the API ------------------------------------------------------------------------------------

def test_grad_leaves_micrograd_float_grads_untouched():
    x, y = Value(0.3), Value(-1.2)
    z = (x * y).tanh()
    w = z * x
    x.grad, y.grad, z.grad, w.grad = 5.0, 6.0, 7.0, 8.0
    for create_graph in (False, True):
        grad(w, (x, y), create_graph=create_graph)
        grad((w, z), (x, z), grad_outputs=(2.0, Value(3.0)), create_graph=create_graph)
        assert (x.grad, y.grad, z.grad, w.grad) == (5.0, 6.0, 7.0, 8.0)


@needs_torch
def test_grad_outputs_weight_the_outputs_as_in_torch():
    x, y = Value(0.3), Value(-1.2)
    tx, ty = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (0.3, -1.2))
    for create_graph in (False, True):
        gs = grad([x * y, (x + y).tanh()], [x, y], grad_outputs=[2.0, -0.5],
                  create_graph=create_graph)
        ts = torch.autograd.grad([tx * ty, (tx + ty).tanh()], [tx, ty],
                                 grad_outputs=[torch.tensor(2.0, dtype=torch.float64),
                                               torch.tensor(-0.5, dtype=torch.float64)])
        assert all(close(g.data, float(t)) for g, t in zip(gs, ts))
    # a Value grad_output is differentiated through with create_graph
    v = Value(2.0)
    (g,) = grad(x * x, x, grad_outputs=v, create_graph=True)
    assert grad(g, v)[0].data == 2 * 0.3


def test_grad_argument_errors_mirror_torch():
    x, y = Value(1.0), Value(2.0)
    with pytest.raises(RuntimeError, match="index 1 appears to not have been used"):
        grad(x * 2, [x, y])
    assert grad(x * 2, [x, y], allow_unused=True)[1] is None
    assert grad(x * 2, [x, y], materialize_grads=True)[1].data == 0.0
    with pytest.raises(RuntimeError, match="cannot be empty"):
        grad(x * 2, [])
    with pytest.raises(RuntimeError, match="got 2 outputs and 1 gradients"):
        grad([x * 2, x * 3], [x], grad_outputs=[1.0])
    with pytest.raises(TypeError):
        grad(x * 2, [1.0])


def test_tensors_go_to_the_tensor_engine():
    t = fastgrad.tensor([1.0, 2.0], requires_grad=True)
    assert grad((t * t).sum(), t)[0].tolist() == [2.0, 4.0]
    assert F.jacobian(lambda a: a * a, t).tolist() == [[2.0, 0.0], [0.0, 4.0]]
    assert F.vjp(lambda a: (a * a).sum(), t)[1].tolist() == [2.0, 4.0]
    (g,) = grad((t * t * t).sum(), t, create_graph=True)
    assert grad(g.sum(), t)[0].tolist() == [6.0, 12.0]
    assert F.hessian(lambda a: (a * a).sum(), t).tolist() == [[2.0, 0.0], [0.0, 2.0]]
    assert F.hvp(lambda a: (a * a * a).sum(), t, t)[1].tolist() == [6.0, 24.0]
    with pytest.raises(NotImplementedError, match="cannot be mixed"):
        F.vhp(lambda a: a * a, Value(1.0), t)


def test_closures_have_no_graph_derivative_and_raise_clearly():
    def cube(v):
        out = Value(v.data ** 3, (v,), "cube")

        def _backward():
            v.grad += 3 * v.data ** 2 * out.grad
        out._backward = _backward
        return out

    x = Value(2.0)
    y = cube(x) * 2
    with pytest.raises(RuntimeError, match="'cube'.*closure"):
        grad(y, x, create_graph=True)
    with pytest.raises(RuntimeError, match="'cube'"):
        y.backward(create_graph=True)
    assert x.grad == 0.0 and x.grad_value is None  # nothing changed before the error
    assert grad(y, x)[0].data == 24.0  # without a graph the closure runs, as in backward()
    assert x.grad == 0.0


@needs_torch
def test_backward_create_graph_sets_grad_value_beside_micrograd_grad():
    x, y = Value(0.7), Value(-0.4)
    assert x.grad_value is None and "grad_value" not in vars(x)
    f = (x * y).tanh() * x + y.exp()
    f.backward(create_graph=True)
    tx, ty = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (0.7, -0.4))
    tf = (tx * ty).tanh() * tx + ty.exp()
    tgx, tgy = torch.autograd.grad(tf, (tx, ty), create_graph=True)
    assert (x.grad_value.data, y.grad_value.data) == (x.grad, y.grad)
    assert close(x.grad, float(tgx.detach())) and close(y.grad, float(tgy.detach()))
    assert "grad_value" in vars(x)
    # grad_value is a graph: its derivatives are the Hessian's row
    hx = grad(x.grad_value, (x, y))
    thx = torch.autograd.grad(tgx, (tx, ty))
    assert all(close(a.data, float(b)) for a, b in zip(hx, thx))
    # a second call replaces grad_value (the float grads accumulate, as micrograd's do)
    first = x.grad_value
    f.backward(create_graph=True)
    assert x.grad_value is not first and x.grad_value.data == first.data


@needs_torch
def test_functional_api_matches_torch():
    def f(x, y, z):
        return (x * y).tanh() * z + (z * z + 1.0).log() * x ** 3

    point = (0.3, -0.8, 1.4)
    ts = tuple(torch.tensor(p, dtype=torch.float64) for p in point)
    TF = torch.autograd.functional
    v = (0.5, -1.0, 2.0)
    tv = tuple(torch.tensor(p, dtype=torch.float64) for p in v)
    assert np.allclose(value_hessian(f, point), torch_hessian(f, point), rtol=1e-12)
    jac = F.jacobian(lambda x, y: (x * y, x.tanh() + y), (0.3, -0.8))
    tjac = TF.jacobian(lambda x, y: (x * y, x.tanh() + y), ts[:2])
    assert np.allclose([[d.data for d in row] for row in jac],
                       [[float(d) for d in row] for row in tjac], rtol=1e-12)
    for ours, theirs in ((F.hvp(f, point, v), TF.hvp(f, ts, tv)),
                         (F.vhp(f, point, v), TF.vhp(f, ts, tv)),
                         (F.vjp(f, point), TF.vjp(f, ts)),
                         (F.jvp(f, point, v), TF.jvp(f, ts, tv))):
        assert close(ours[0].data, float(theirs[0]))
        second = ours[1] if isinstance(ours[1], tuple) else (ours[1],)
        theirs1 = theirs[1] if isinstance(theirs[1], tuple) else (theirs[1],)
        assert np.allclose([d.data for d in second], [float(d) for d in theirs1], rtol=1e-12)
    # one input, not a tuple: single Values, as torch gives single tensors
    assert F.hessian(lambda x: x ** 3, Value(2.0)).data == 12.0
    assert F.jacobian(lambda x: x.exp(), 0.0).data == 1.0
    assert F.hvp(lambda x: x ** 3, 2.0)[1].data == 12.0


@needs_torch
def test_functional_create_graph_differentiates_again_and_default_detaches():
    x = Value(0.6)
    h = F.hessian(lambda a: a.tanh(), x, create_graph=True)
    (third,) = grad(h, x)
    t = torch.tensor(0.6, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(t.tanh(), t, create_graph=True)
    (gg,) = torch.autograd.grad(g, t, create_graph=True)
    (ggg,) = torch.autograd.grad(gg, t)
    assert close(third.data, float(ggg))
    h0 = F.hessian(lambda a: a.tanh(), x)
    assert grad(h0, x, allow_unused=True) == (None,)  # a constant: depends on nothing
    assert x.grad == 0.0


def test_functional_strict_and_argument_errors():
    with pytest.raises(RuntimeError, match="independent of input 1"):
        F.jacobian(lambda x, y: x * 2, (1.0, 2.0), strict=True)
    assert F.jacobian(lambda x, y: x * 2, (1.0, 2.0))[1].data == 0.0
    with pytest.raises(RuntimeError, match="hessian.*independent"):
        F.hessian(lambda x, y: x + y, (1.0, 2.0), strict=True)
    with pytest.raises(RuntimeError, match="single Value"):
        F.hessian(lambda x, y: (x, y), (1.0, 2.0))
    with pytest.raises(RuntimeError, match="v can only be None"):
        F.hvp(lambda x, y: x * y, (1.0, 2.0))
    with pytest.raises(RuntimeError, match="not supported together"):
        F.jacobian(lambda x: x, 1.0, strict=True, vectorize=True)
    with pytest.raises(ValueError, match="strategy"):
        F.jacobian(lambda x: x, 1.0, strategy="sideways")
    with pytest.raises(TypeError, match="must be Values"):
        F.jacobian(lambda x: 3.0, 1.0)


# -- in the style of scripts --------------------------------------------------------------------

def test_newton_minimises_rosenbrock_in_a_handful_of_steps():
    def rosenbrock(x, y):
        return (1 - x) ** 2 + 100 * (y - x ** 2) ** 2

    p = np.array([-1.2, 1.0])
    losses = []
    for step in range(20):
        x, y = Value(p[0]), Value(p[1])
        loss = rosenbrock(x, y)
        losses.append(loss.data)
        g = np.array([d.data for d in grad(loss, (x, y))])
        if np.linalg.norm(g) < 1e-10:
            break
        H = np.array([[h.data for h in row] for row in F.hessian(rosenbrock, tuple(p))])
        p = p - np.linalg.solve(H, g)
    assert step <= 8, losses
    assert np.allclose(p, [1.0, 1.0], atol=1e-10) and losses[-1] < 1e-20


def _gradient_penalty_steps(model, n):
    """A WGAN-GP-like loop: the loss penalises the input gradient of the model's output."""
    rng = np.random.default_rng(0)
    params = model.parameters()
    for _ in range(n):
        xs = [Value(float(v)) for v in rng.normal(size=2)]
        out = model(xs)
        gx = grad(out, xs, create_graph=True)
        penalty = sum(g * g for g in gx)
        loss = out * out + 0.1 * (penalty - 1.0) ** 2
        model.zero_grad()
        loss.backward()
        for p in params:
            p.data -= 0.01 * p.grad
    return loss.data


def test_gradient_penalty_loop_frees_its_graphs():
    from fastgrad.nn import MLP
    import random
    random.seed(0)
    model = MLP(2, [8, 1])
    model.layers[-1].neurons[0].nonlin = False
    _gradient_penalty_steps(model, 20)  # warm up (arena growth, caches)
    gc.collect()
    tracemalloc.start()
    try:
        _gradient_penalty_steps(model, 50)
        gc.collect()
        first, _ = tracemalloc.get_traced_memory()
        _gradient_penalty_steps(model, 150)
        gc.collect()
        second, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert second - first < 64 * 1024, (first, second)
    if COMPILED:
        from fastgrad._scalar.value import arena_stats, compact_now
        compact_now()
        live = arena_stats()["live"]
        _gradient_penalty_steps(model, 100)
        compact_now()
        assert arena_stats()["live"] <= live + 50


def test_backward_create_graph_loop_frees_its_graphs():
    x, y = Value(0.5), Value(-0.3)

    def step():
        loss = (x * y).tanh() + (x - y) ** 2
        loss.backward(create_graph=True)
        penalty = x.grad_value ** 2 + y.grad_value ** 2
        gx, gy = grad(penalty, (x, y))
        x.data -= 0.01 * gx.data
        y.data -= 0.01 * gy.data
        x.grad = y.grad = 0.0

    for _ in range(20):
        step()
    gc.collect()
    tracemalloc.start()
    try:
        for _ in range(50):
            step()
        gc.collect()
        first, _ = tracemalloc.get_traced_memory()
        for _ in range(150):
            step()
        gc.collect()
        second, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert second - first < 64 * 1024, (first, second)


def test_deep_chains_need_no_recursion():
    x = Value(0.3)
    y = x
    for _ in range(100_000):
        y = y.tanh()
    (g,) = grad(y, x, create_graph=True)
    y.backward()
    assert g.data == x.grad
    (h,) = grad(g, x)
    assert math.isfinite(h.data)
