"""Forward mode for tensors (`tensor_jvp`): every op against reverse mode in float64 and
float32, random chains and graphs, PyTorch's forward AD, lifetime and the error cases.

Reverse mode is the reference: for inputs x_i with tangents v_i and a weight w of the output's
shape, jvp . w must equal sum_i grad_i . v_i where (out * w).sum().backward() gave grad_i, and
jvp itself must equal J v with J's rows taken one by one from backward. Rounding is relative to
the size of the terms summed, so the tolerances scale with sum |terms| (1e-12 in float64).
"""

import tracemalloc
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fastgrad import Tensor, concatenate, no_grad, stack
from fastgrad.nn import functional as F
from fastgrad._tensor import tensor_jvp

from _tensor_cases import (BINARY, BROADCAST_SHAPES, MATMUL_SHAPES, REDUCE_AXES, REDUCE_SHAPES,
                           UNARY, UNARY_SHAPES, draw, functional_pairs)
from test_tensor_hypothesis import build_chain, shapes, values

# written for float64 numerics: Python floats make float64 tensors here
pytestmark = pytest.mark.usefixtures("float64_default")

DTYPES = [np.float64, np.float32]
RTOL = {np.float64: 1e-12, np.float32: 1e-4}


def assert_scaled_close(got, want, scale, rtol, what=""):
    got, want, scale = (np.asarray(a, dtype=np.float64) for a in (got, want, scale))
    err = np.abs(got - want)
    bad = ~(err <= rtol * scale + 1e-300)
    assert not bad.any(), (f"{what}: jvp {got[bad]} vs reverse {want[bad]} "
                           f"(|err| {err[bad]}, allowed {rtol * scale[bad]})")


def reverse_jacobian(out, ts):
    """J_i[k] = d out[k] / d ts[i], row by row from backward (the graph is reused)."""
    jac = [np.zeros(out.shape + t.shape) for t in ts]
    for k in np.ndindex(out.shape):
        for t in ts:
            t.grad = None
        seed = np.zeros(out.shape, dtype=out.dtype)
        seed[k] = 1.0
        out.backward(seed)
        for j, t in zip(jac, ts):
            if t.grad is not None:
                j[k] = t.grad
    for t in ts:
        t.grad = None
    return jac


def check_against_reverse(out, ts, vs, w, dtype, floor=0.0):
    """tensor_jvp(out) against reverse mode: the dot test, then elementwise against J v; also
    checks that the backward calls in between change nothing. `floor` is added to the scale:
    in a chain, terms can cancel inside (softmax of a constant row, then a mean) so that the
    composite Jacobian is ~0 while the rounding is relative to the inner terms."""
    rtol = RTOL[dtype]
    tangents = {t: v for t, v in zip(ts, vs) if v is not None}
    jv = tensor_jvp(out, tangents)
    assert type(jv) is np.ndarray and jv.shape == out.shape and jv.dtype == out.dtype
    grads_before = [t.grad for t in ts]
    assert all(g is None for g in grads_before), "jvp must not write .grad"

    # dot test: jvp . w == sum_i grad_i . v_i, grads from (out * w).sum().backward()
    (out * w).sum().backward()
    lhs = np.asarray(jv, np.float64) * w
    rhs = [(0.0 if t.grad is None else np.asarray(t.grad, np.float64)) * v  # None: unused
           for t, v in zip(ts, vs) if v is not None]
    scale = np.abs(lhs).sum() + sum(np.abs(r).sum() for r in rhs)
    assert_scaled_close(lhs.sum(), sum(r.sum() for r in rhs), scale + floor, rtol, "jvp . w")

    # elementwise: jvp == J v, J from one backward per output element
    active = [(t, v) for t, v in zip(ts, vs) if v is not None]
    jac = reverse_jacobian(out, [t for t, _ in active])
    inner = lambda j, v: np.sum(j * v, axis=tuple(range(out.ndim, j.ndim)))  # noqa: E731
    terms = [(j, np.asarray(v, np.float64)) for j, (_, v) in zip(jac, active)]
    jvr = sum(inner(j, v) for j, v in terms)
    scale = sum(inner(np.abs(j), np.abs(v)) for j, v in terms)
    assert_scaled_close(jv, np.broadcast_to(jvr, out.shape), np.abs(jv) + scale + floor, rtol,
                        "J v")

    # the graph is intact after all those backward calls: the same numbers again
    np.testing.assert_array_equal(tensor_jvp(out, tangents), jv)
    return jv


def check_op(fn, arrays, dtype, seed=0, skip=()):
    """Build fn on tensors from arrays (rounded to dtype) and check its jvp along a random
    direction; inputs whose index is in `skip` get no tangent."""
    rng = np.random.default_rng(seed)
    ts = [Tensor(np.asarray(a), requires_grad=True, dtype=dtype) for a in arrays]
    out = fn(*ts)
    assert out.dtype == np.dtype(dtype)
    vs = [None if i in skip else rng.standard_normal(t.shape).astype(dtype)
          for i, t in enumerate(ts)]
    w = rng.standard_normal(out.shape).astype(dtype)
    return check_against_reverse(out, ts, vs, w, dtype)


# --- every op over the shared shape tables ----------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=str)
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_broadcasting(name, shapes, dtype):
    fn, _, _, kinds = BINARY[name]
    rng = np.random.default_rng(1)
    arrays = [draw(rng, s, k) for s, k in zip(shapes, kinds)]
    check_op(fn, arrays, dtype)
    check_op(fn, arrays, dtype, seed=1, skip=(0,))     # one operand's tangent, broadcast
    check_op(fn, arrays, dtype, seed=2, skip=(1,))


UNARY_CASES = [(n, s) for n in sorted(UNARY) for s in UNARY_SHAPES if len(s) >= UNARY[n][4]]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,shape", UNARY_CASES, ids=str)
def test_unary(name, shape, dtype):
    fn, _, _, kind, _ = UNARY[name]
    check_op(fn, [draw(np.random.default_rng(2), shape, kind)], dtype)


def _valid_axes(shape, axis):
    if axis is None:
        return True
    axes = axis if isinstance(axis, tuple) else (axis,)
    nd = len(shape)
    return all(-nd <= a < nd for a in axes) and len({a % nd for a in axes}) == len(axes)


REDUCE_CASES = [(s, a) for s in REDUCE_SHAPES for a in REDUCE_AXES if _valid_axes(s, a)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("shape,axis", REDUCE_CASES, ids=str)
@pytest.mark.parametrize("name", ["sum", "mean", "max"])
def test_reductions(name, shape, axis, keepdims, dtype):
    x = draw(np.random.default_rng(3), shape, "distinct")
    check_op(lambda t: getattr(t, name)(axis=axis, keepdims=keepdims), [x], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_ties_take_the_mean_tangent_like_backward_splits(dtype):
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    v = np.array([[10.0, 1.0, 4.0], [3.0, 6.0, 9.0]], dtype=dtype)
    t = Tensor(x, requires_grad=True, dtype=dtype)
    np.testing.assert_allclose(tensor_jvp(t.max(axis=1), {t: v}), [2.5, 6.0], rtol=1e-6)
    np.testing.assert_allclose(tensor_jvp(t.max(), {t: v}), 2.5, rtol=1e-6)
    for axis in (None, 0, 1, (0, 1)):
        check_op(lambda a: a.max(axis=axis, keepdims=True), [x], dtype, seed=axis is None)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
def test_matmul(shapes, dtype):
    rng = np.random.default_rng(4)
    arrays = [rng.standard_normal(s) for s in shapes]
    check_op(lambda a, b: a @ b, arrays, dtype)
    check_op(lambda a, b: a @ b, arrays, dtype, seed=1, skip=(0,))
    check_op(lambda a, b: a @ b, arrays, dtype, seed=2, skip=(1,))


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_with_arrays_on_either_side(dtype):
    rng = np.random.default_rng(5)
    w = rng.standard_normal((3, 2)).astype(dtype)
    check_op(lambda a: a @ w, [rng.standard_normal((4, 3))], dtype)
    check_op(lambda a: w.T @ a, [rng.standard_normal((3, 4))], dtype)
    check_op(lambda a: a.matmul(w[:, 0]), [rng.standard_normal((5, 4, 3))], dtype)


SHAPE_OPS = {
    "reshape": lambda t: t.reshape(3, 4),
    "reshape_tuple": lambda t: t.reshape((-1,)),
    "view_flatten": lambda t: t.view(6, 2).flatten(),
    "transpose": lambda t: t.transpose(),
    "transpose_perm": lambda t: t.transpose(1, 0, 2),
    "transpose_neg": lambda t: t.transpose((0, -1, 1)),
    "permute": lambda t: t.permute(2, 0, 1),
    "T": lambda t: t.T,
    "slice": lambda t: t[1:, ::2],
    "int": lambda t: t[0, 1],
    "int_array_repeats": lambda t: t[np.array([0, 1, 0, 0])],
    "list_index": lambda t: t[:, [2, 2, 0]],
    "ellipsis_newaxis": lambda t: t[..., None, 1],
    "negative_step": lambda t: t[::-1, :, -1],
    "bool_mask": lambda t: t[t.data > 0],
    "empty_slice": lambda t: t[2:],
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(SHAPE_OPS))
def test_shape_ops_and_indexing(name, dtype):
    x = np.random.default_rng(6).standard_normal((2, 3, 2))
    check_op(SHAPE_OPS[name], [x], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate_and_stack(axis, dtype):
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    const = rng.standard_normal((2, 3)).astype(dtype)
    check_op(lambda x, y: concatenate([x, y, const], axis=axis), [a, b], dtype)
    check_op(lambda x, y: concatenate([x, const, y], axis=axis), [a, b], dtype, skip=(1,))
    check_op(lambda x, y: stack([x, const, y], axis=axis), [a, b], dtype)
    check_op(lambda x, y: stack([const, y, x], axis=axis), [a, b], dtype, skip=(0,))
    check_op(lambda x: concatenate([x, x * 2.0], axis=axis), [a], dtype)
    check_op(lambda x: stack([x, x], axis=axis), [a], dtype)


def test_concatenate_of_constants_only_through_a_tangent_free_branch():
    x = Tensor(np.ones((2, 2)), requires_grad=True)
    y = Tensor(np.ones((2, 2)), requires_grad=True)
    out = concatenate([x, np.zeros((1, 2))]) * 2.0 + concatenate([y, y[:1]])
    np.testing.assert_array_equal(tensor_jvp(out, {y: 1.0}), np.ones((3, 2)))
    np.testing.assert_array_equal(tensor_jvp(out, {x: 1.0}), [[2, 2], [2, 2], [0, 0]])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xshape", [(4, 3), (3,), (2, 4, 3)], ids=str)
@pytest.mark.parametrize("bias", [True, False])
def test_linear(xshape, bias, dtype):
    rng = np.random.default_rng(8)
    arrays = [rng.standard_normal(xshape), rng.standard_normal((5, 3))]
    if bias:
        arrays.append(rng.standard_normal(5))
    fn = lambda x, w, b=None: F.linear(x, w, b)  # noqa: E731
    check_op(fn, arrays, dtype)
    for i in range(len(arrays)):
        check_op(fn, arrays, dtype, seed=i + 1, skip=tuple(j for j in range(3) if j != i))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("wshape", [(1, 3), (5, 1), (1, 1)], ids=str)
def test_linear_with_one_input_or_output_feature(wshape, dtype):
    rng = np.random.default_rng(9)
    arrays = [rng.standard_normal((4, wshape[1])), rng.standard_normal(wshape),
              rng.standard_normal(wshape[0])]
    check_op(F.linear, arrays, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_losses(dtype):
    rng = np.random.default_rng(9)
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    check_op(F.mse_loss, [a, b], dtype)
    check_op(F.mse_loss, [a, b], dtype, seed=1, skip=(0,))
    check_op(lambda x: F.mse_loss(x, b.astype(dtype)), [a], dtype)
    targets = np.array([0, 2, 1, 2])
    check_op(lambda x: F.cross_entropy(x, targets), [a], dtype)
    check_op(lambda x: F.cross_entropy(x * 1000.0, targets), [a], dtype)
    # non-contiguous int32 targets: the numpy path instead of the compiled loops
    check_op(lambda x: F.cross_entropy(x, np.array([0, 9, 2, 9, 1, 9, 2, 9], np.int32)[::2]),
             [a], dtype)
    p, t = rng.uniform(0.1, 0.9, (4, 3)), rng.uniform(0, 1, (4, 3))
    check_op(F.binary_cross_entropy, [p, t], dtype)
    check_op(F.binary_cross_entropy, [p, t], dtype, seed=1, skip=(1,))
    check_op(lambda x: F.binary_cross_entropy(x, t.astype(dtype)), [p], dtype)


def test_bce_clamped_logs_and_probabilities_at_the_ends():
    p = np.array([0.0, 1e-30, 0.5, 1.0])
    t = np.array([1.0, 0.0, 1.0, 0.0])
    check_op(F.binary_cross_entropy, [p, t], np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_functional_elementwise_and_softmaxes(dtype):
    x = np.random.default_rng(10).standard_normal((3, 4))
    for fn in (F.relu, F.tanh, F.sigmoid, lambda t: F.softmax(t, 0),
               lambda t: F.log_softmax(t, -1), lambda t: t.softmax(axis=(0, 1)),
               lambda t: t.log_softmax(axis=(0, 1))):
        check_op(fn, [x], dtype)


def test_conventions_at_kinks_match_backward():
    # relu'(0) = 0, d(x**y)/dy = 0 at x == 0, sigmoid far out in the tails
    check_op(lambda x: x.relu(), [np.array([-1.0, 0.0, -0.0, 2.0])], np.float64)
    check_op(lambda x, y: x ** y, [np.array([0.0, 0.5, 2.0]), np.array([2.0, 3.0, 0.5])],
             np.float64)
    check_op(lambda x: x.sigmoid(), [np.array([-800.0, -40.0, 0.0, 40.0, 800.0])], np.float64)
    x = Tensor(np.array([0.0, 4.0]), requires_grad=True)
    y = Tensor(np.array([2.0, 0.5]), requires_grad=True)
    np.testing.assert_allclose(tensor_jvp(x ** y, {y: 1.0}), [0.0, 2.0 * np.log(4.0)])


def test_composite_graph_reuses_nodes():
    rng = np.random.default_rng(11)

    def fn(x, w):
        h = (x @ w).tanh()
        return (h * h + h.sum(axis=0) - h.exp().mean(axis=1, keepdims=True)) / (1 + h ** 2)
    for dtype in DTYPES:
        check_op(fn, [rng.standard_normal((4, 3)), rng.standard_normal((3, 2))], dtype)
    check_op(lambda x: x * x - x / (x * x + 1.0), [rng.standard_normal(5)], np.float64)


def test_a_small_network_and_its_loss():
    rng = np.random.default_rng(12)
    targets = rng.integers(0, 3, 8)

    def net(x, w1, b1, w2, b2):
        h = F.linear(x, w1, b1).relu()
        return F.cross_entropy(F.linear(h, w2, b2), targets)
    arrays = [rng.standard_normal((8, 4)), rng.standard_normal((6, 4)), rng.standard_normal(6),
              rng.standard_normal((3, 6)), rng.standard_normal(3)]
    for dtype in DTYPES:
        check_op(net, arrays, dtype)
        check_op(net, arrays, dtype, skip=(0,))


# --- semantics ---------------------------------------------------------------------------

def test_scalar_function_of_two_inputs_like_the_issue():
    x = Tensor(2.0, requires_grad=True)
    y = Tensor(3.0, requires_grad=True)
    out = x * y + x.exp()
    np.testing.assert_allclose(tensor_jvp(out, {x: 1.0, y: 0.0}), 3.0 + np.exp(2.0))
    np.testing.assert_allclose(tensor_jvp(out, {y: 1.0}), 2.0)
    np.testing.assert_allclose(tensor_jvp(out, {x: 0.5, y: 2.0}), 0.5 * (3.0 + np.exp(2.0)) + 4.0)


def test_linear_in_the_tangents_and_numbers_broadcast():
    rng = np.random.default_rng(13)
    x = Tensor(rng.standard_normal((3, 4)), requires_grad=True)
    y = Tensor(rng.standard_normal(4), requires_grad=True)
    out = (x * y).tanh() @ y + x.sum(axis=1)
    vx, vy = rng.standard_normal((3, 4)), rng.standard_normal(4)
    both = tensor_jvp(out, {x: vx, y: vy})
    np.testing.assert_allclose(both, tensor_jvp(out, {x: vx}) + tensor_jvp(out, {y: vy}),
                               rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(tensor_jvp(out, {x: 2.0 * vx}), 2.0 * tensor_jvp(out, {x: vx}),
                               rtol=1e-12)
    np.testing.assert_array_equal(tensor_jvp(out, {x: 1.5}), tensor_jvp(out, {x: np.full((3, 4),
                                                                                     1.5)}))
    np.testing.assert_array_equal(tensor_jvp(out, {x: np.float32(1.5), y: True}),
                                  tensor_jvp(out, {x: 1.5, y: 1.0}))


def test_inputs_outside_the_dict_or_the_graph_have_zero_tangent():
    x = Tensor(np.ones(3), requires_grad=True)
    unused = Tensor(np.ones(3), requires_grad=True)
    out = (x * 2.0).sum()
    r = tensor_jvp(out, {})
    assert r.shape == () and r.dtype == np.float64 and r == 0.0
    assert tensor_jvp(out, {unused: 1.0}) == 0.0
    np.testing.assert_array_equal(tensor_jvp(x * 2.0, {unused: np.ones(3)}), np.zeros(3))


def test_tangent_free_branches_are_skipped():
    # p's branch with a zero tangent would still divide by zero in p ** 0.5's rule: branches
    # that no tangent reaches never run their rules
    p = Tensor(np.zeros(3), requires_grad=True)
    q = Tensor(np.ones(3), requires_grad=True)
    out = (p ** 0.5 + q.exp()).sum()
    with np.errstate(all="raise"):
        np.testing.assert_allclose(tensor_jvp(out, {q: 1.0}), 3.0 * np.e)
    # p's own branch does run: d sqrt(p)/dp at 0 is inf (PyTorch's value, without a warning)
    assert np.isinf(tensor_jvp(out, {p: 1.0}))


def test_a_leaf_output_is_its_own_tangent_in_a_fresh_array():
    x = Tensor(np.arange(3.0), requires_grad=True)
    v = np.array([1.0, 2.0, 3.0])
    r = tensor_jvp(x, {x: v})
    np.testing.assert_array_equal(r, v)
    assert r is not v and not np.shares_memory(r, v)
    np.testing.assert_array_equal(tensor_jvp(x, {}), np.zeros(3))
    # a view of the caller's tangent is copied too, and so is a broadcast one
    for r in (tensor_jvp(x.reshape(3, 1), {x: v}), tensor_jvp(x + np.zeros((2, 3)), {x: v}),
              tensor_jvp(x + 0.0, {x: v}), tensor_jvp(x[::2], {x: v})):
        assert not np.shares_memory(r, v) and r.flags.writeable
        r[...] = 7.0
    np.testing.assert_array_equal(v, [1.0, 2.0, 3.0])


def test_dtypes():
    x32 = Tensor(np.ones((2, 3), np.float32), requires_grad=True)
    out = ((x32 * 2.5 + 1) ** 2 / 3 - x32.exp()).relu().sum(axis=0) + x32.tanh().mean()
    assert out.dtype == np.float32
    assert tensor_jvp(out, {x32: np.ones((2, 3))}).dtype == np.float32   # float64 tangent cast
    assert tensor_jvp(out, {x32: 1}).dtype == np.float32
    assert tensor_jvp(out, {}).dtype == np.float32
    # a float64 constant promotes, as in the forward pass
    mixed = x32 * np.ones(3)
    assert mixed.dtype == np.float64
    r = tensor_jvp(mixed, {x32: np.full((2, 3), 0.1, np.float32)})
    assert r.dtype == np.float64
    np.testing.assert_array_equal(r, np.full((2, 3), np.float32(0.1), np.float64))
    x64 = Tensor(np.ones(3), requires_grad=True)
    both = x32 + x64
    assert tensor_jvp(both, {x32: 1.0}).dtype == np.float64


def test_works_before_and_after_backward_and_leaves_grads_alone():
    rng = np.random.default_rng(14)
    x = Tensor(rng.standard_normal((4, 3)), requires_grad=True)
    w = Tensor(rng.standard_normal((3, 2)), requires_grad=True)
    h = (x @ w).tanh()
    out = (h * h).sum() + h.max()
    v = {x: rng.standard_normal((4, 3)), w: rng.standard_normal((3, 2))}
    before = tensor_jvp(out, v)
    assert x.grad is None and w.grad is None
    out.backward()
    gx, gw = x.grad.numpy().copy(), w.grad.numpy().copy()
    np.testing.assert_array_equal(tensor_jvp(out, v), before)
    np.testing.assert_array_equal(x.grad, gx)
    np.testing.assert_array_equal(w.grad, gw)
    out.backward()
    np.testing.assert_array_equal(tensor_jvp(h, v), tensor_jvp(h, v))
    np.testing.assert_array_equal(tensor_jvp(out, v), before)
    np.testing.assert_allclose(before, (gx * v[x]).sum() + (gw * v[w]).sum(), rtol=1e-12)
    # an intermediate's handle dropped: the output still holds the graph
    del h
    np.testing.assert_array_equal(tensor_jvp(out, v), before)


def test_values_are_those_recorded_not_later_updates():
    # like backward, jvp differentiates at the recorded point, even if a leaf's data is
    # replaced afterwards (an optimizer step)
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    out = x * x
    x.data = np.array([10.0, 20.0])
    np.testing.assert_array_equal(tensor_jvp(out, {x: 1.0}), [2.0, 4.0])


def test_deep_chain_does_not_recurse():
    x = Tensor(np.array([0.5, -0.25]), requires_grad=True)
    y = x
    for _ in range(50_000):
        y = y * 1.0 + 0.0
    np.testing.assert_array_equal(tensor_jvp(y, {x: np.array([1.0, 2.0])}), [1.0, 2.0])


def test_tangents_are_freed_once_used():
    # a chain of 40 ops on 1 MB arrays: only a couple of tangents may be alive at a time
    x = Tensor(np.random.default_rng(15).standard_normal(125_000), requires_grad=True)
    y = x
    for _ in range(40):
        y = (y * 0.5).tanh()
    v = np.ones(125_000)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        r = tensor_jvp(y, {x: v})
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert r.shape == (125_000,)
    assert peak < 10 * v.nbytes, f"peak {peak / 1e6:.1f} MB for 1 MB tangents"


# --- random graphs --------------------------------------------------------------------------

def chain_floor(vs):
    """Scale floor for random graphs: the tangents' size (inner derivatives are O(1): inputs
    lie in [-2, 2] and the steps keep values bounded), so 1e-12 of it is ~1e4 ulps."""
    return 1.0 + sum(float(np.abs(v).sum()) for v in vs if v is not None)


@settings(max_examples=200, deadline=None)
@given(shape=shapes, data=st.data())
def test_random_chains_match_reverse_mode(shape, data):
    leaves, fn, out_shape = build_chain(data, shape)
    ts = [Tensor(a, requires_grad=True) for a in leaves]
    out = fn(*ts)
    assert out.shape == out_shape
    vs = [data.draw(values(a.shape)) for a in leaves]
    if len(vs) > 1 and data.draw(st.booleans()):
        vs[data.draw(st.integers(0, len(vs) - 1))] = None
    check_against_reverse(out, ts, vs, data.draw(values(out_shape)), np.float64,
                          floor=chain_floor(vs))


# Graph steps on a pool of same-shaped nodes: any earlier node can be an operand again, so
# the graphs have shared subexpressions, diamonds and x * x. Steps keep values bounded.
DAG_STEPS = ["add", "sub", "mul", "div", "pow2", "tanh", "sigmoid", "exp_tanh", "relu",
             "log_pos", "softmax", "log_softmax", "max_bcast", "sum_bcast", "mean_bcast",
             "matmul_sq", "concat_slice", "stack_index", "transpose_back", "neg",
             "tensor_pow"]


@settings(max_examples=150, deadline=None)
@given(n=st.integers(1, 3), m=st.integers(1, 3), data=st.data())
def test_random_graphs_match_reverse_mode(n, m, data):
    shape = (n, m)
    leaves = [data.draw(values(shape)) for _ in range(data.draw(st.integers(1, 3)))]
    ts = [Tensor(a, requires_grad=True) for a in leaves]
    pool = list(ts)
    pick = lambda: pool[data.draw(st.integers(0, len(pool) - 1))]  # noqa: E731
    for _ in range(data.draw(st.integers(1, 10))):
        step = data.draw(st.sampled_from(DAG_STEPS))
        a, b = pick(), pick()
        if step == "add":
            y = (a + b) * 0.5
        elif step == "sub":
            y = (a - b) * 0.5
        elif step == "mul":
            y = a * b.tanh()
        elif step == "div":
            y = a / (1.0 + b * b)
        elif step == "pow2":
            y = a.tanh() ** 2
        elif step == "tanh":
            y = a.tanh()
        elif step == "sigmoid":
            y = a.sigmoid()
        elif step == "exp_tanh":
            y = a.tanh().exp()
        elif step == "relu":
            y = a.relu()
        elif step == "log_pos":
            y = (a * a + 1.0).log()
        elif step == "softmax":
            y = a.softmax(data.draw(st.sampled_from([0, 1, -1])))
        elif step == "log_softmax":
            y = a.log_softmax(data.draw(st.sampled_from([0, 1, (0, 1)])))
        elif step == "max_bcast":
            y = a - a.max(axis=data.draw(st.sampled_from([0, 1, None])), keepdims=True)
        elif step == "sum_bcast":
            y = b.tanh() * a.sum(axis=1, keepdims=True) / m
        elif step == "mean_bcast":
            y = a + b.mean(axis=0)
        elif step == "matmul_sq":
            y = ((a @ b.T) / 4.0).tanh() @ a / n
        elif step == "concat_slice":
            y = concatenate([a, b], axis=1)[:, m // 2:m // 2 + m]
        elif step == "stack_index":
            y = stack([a, b, a])[data.draw(st.integers(0, 2))]
        elif step == "transpose_back":
            y = a.T.reshape(m * n).reshape(m, n).T
        elif step == "neg":
            y = -a
        else:
            y = (a.tanh() ** 2 + 0.5) ** b.tanh()
        assert y.shape == shape
        pool.append(y)
    out = pool[-1] + 0.5 * pick() if data.draw(st.booleans()) else pool[-1]
    if data.draw(st.booleans()):
        out = out.sum(axis=data.draw(st.sampled_from([0, 1, None])))
    vs = [data.draw(values(shape)) for _ in ts]
    if len(vs) > 1 and data.draw(st.booleans()):
        vs[0] = None
    check_against_reverse(out, ts, vs, data.draw(values(out.shape)), np.float64,
                          floor=chain_floor(vs))


# --- errors ---------------------------------------------------------------------------------

def test_output_must_be_a_tensor():
    x = Tensor(1.0, requires_grad=True)
    for bad in (1.0, np.ones(2), None, [x]):
        with pytest.raises(TypeError, match="output must be a fastgrad.Tensor"):
            tensor_jvp(bad, {x: 1.0})


def test_keys_must_be_tensors_and_tangents_a_dict():
    x = Tensor(np.ones(2), requires_grad=True)
    out = x * 2.0
    with pytest.raises(TypeError, match="keyed by fastgrad.Tensor.*float"):
        tensor_jvp(out, {1.0: 1.0})
    with pytest.raises(TypeError, match="keyed by fastgrad.Tensor.*str"):
        tensor_jvp(out, {x: 1.0, "x": 1.0})
    with pytest.raises(TypeError, match="must be a dict"):
        tensor_jvp(out, [(x, 1.0)])
    with pytest.raises(TypeError, match="must be a dict"):
        tensor_jvp(out, None)


@pytest.mark.parametrize("bad", ["abc", None, np.array([1 + 1j, 2j]), object(), 1 + 2j])
def test_tangents_must_be_real_numbers(bad):
    x = Tensor(np.ones(2), requires_grad=True)
    with pytest.raises(TypeError, match=r"tangent for a tensor of shape \(2,\)"):
        tensor_jvp(x * 2.0, {x: bad})


@pytest.mark.parametrize("tangent_shape", [(3,), (2, 1), (1, 2), (), (2, 2)], ids=str)
def test_tangent_shape_must_match_and_the_error_names_both(tangent_shape):
    x = Tensor(np.ones(2), requires_grad=True)
    with pytest.raises(ValueError) as info:
        tensor_jvp(x * 2.0, {x: np.ones(tangent_shape)})
    msg = str(info.value)
    assert str(tangent_shape) in msg and "(2,)" in msg


def test_keys_must_be_inputs_that_require_grad():
    x = Tensor(np.ones(2), requires_grad=True)
    h = x * 2.0
    with pytest.raises(ValueError, match="leaf.*computed by mul"):
        tensor_jvp(h + 1.0, {h: 1.0})
    c = Tensor(np.ones(2))
    with pytest.raises(ValueError, match="does not require grad"):
        tensor_jvp(h * c, {c: 1.0})


def test_output_without_a_recorded_graph_raises():
    x = Tensor(np.ones(2), requires_grad=True)
    with no_grad():
        y = x * 2.0
    with pytest.raises(RuntimeError, match="does not require grad.*no_grad"):
        tensor_jvp(y, {x: 1.0})
    with pytest.raises(RuntimeError, match="does not require grad"):
        tensor_jvp(Tensor(np.ones(2)) * 3.0, {x: 1.0})
    with pytest.raises(RuntimeError, match="does not require grad"):
        tensor_jvp((x * 2.0).detach(), {})


# --- PyTorch's forward-mode AD -----------------------------------------------------------

TORCH_TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-4, atol=1e-5)}


def compare_torch(fg_fn, th_fn, arrays, dtype, seed=0):
    torch = pytest.importorskip("torch", reason="PyTorch not installed: comparison skipped")
    from torch.func import jvp as torch_jvp
    rng = np.random.default_rng(seed)
    arrays = [np.asarray(a, dtype=dtype) for a in arrays]
    vs = [rng.standard_normal(a.shape).astype(dtype) for a in arrays]
    ts = [Tensor(a, requires_grad=True) for a in arrays]
    out = fg_fn(*ts)
    ours = tensor_jvp(out, dict(zip(ts, vs)))
    with warnings.catch_warnings():
        # torch's first forward-AD call scripts its decompositions with the deprecated
        # torch.jit.script, which warns (an error here); nothing of fastgrad's is involved
        warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated",
                                category=DeprecationWarning)
        th_out, theirs = torch_jvp(th_fn, tuple(torch.tensor(a) for a in arrays),
                                   tuple(torch.tensor(v) for v in vs))
    assert ours.shape == tuple(theirs.shape) and ours.dtype == np.dtype(dtype)
    np.testing.assert_allclose(out.data, th_out.numpy(), **TORCH_TOL[dtype])
    np.testing.assert_allclose(ours, theirs.numpy(), **TORCH_TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_elementwise_and_broadcasting(dtype):
    rng = np.random.default_rng(16)
    for _, (fn, _, th, kinds) in sorted(BINARY.items()):
        for shapes in BROADCAST_SHAPES:
            compare_torch(fn, th, [draw(rng, s, k) for s, k in zip(shapes, kinds)], dtype)
    for _, (fn, _, th, kind, min_nd) in sorted(UNARY.items()):
        for shape in UNARY_SHAPES:
            if len(shape) >= min_nd:
                compare_torch(fn, th, [draw(rng, shape, kind)], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_reductions_matmul_and_shapes(dtype):
    torch = pytest.importorskip("torch", reason="PyTorch not installed: comparison skipped")
    rng = np.random.default_rng(17)
    for shape, axis in REDUCE_CASES:
        dim = tuple(range(len(shape))) if axis is None else axis
        x = draw(rng, shape, "distinct")
        for keep in (False, True):
            compare_torch(lambda t: t.sum(axis=axis, keepdims=keep),
                          lambda t: t.sum(dim=dim, keepdim=keep), [x], dtype)
            compare_torch(lambda t: t.mean(axis=axis, keepdims=keep),
                          lambda t: t.mean(dim=dim, keepdim=keep), [x], dtype)
            compare_torch(lambda t: t.max(axis=axis, keepdims=keep),
                          lambda t: t.amax(dim=dim, keepdim=keep), [x], dtype)
    for shapes in MATMUL_SHAPES:
        compare_torch(lambda a, b: a @ b, lambda a, b: a @ b,
                      [rng.standard_normal(s) for s in shapes], dtype)
    idx = np.array([0, 2, 2, 1])
    cases = [
        (lambda t: t.reshape(6, 4), lambda t: t.reshape(6, 4)),
        (lambda t: t.transpose(2, 0, 1), lambda t: t.permute(2, 0, 1)),
        (lambda t: t[1:, ::2], lambda t: t[1:, ::2]),
        (lambda t: t[:, idx], lambda t: t[:, torch.tensor(idx)]),
        (lambda t: t[0].T, lambda t: t[0].T),
        (lambda t: concatenate([t, t * 2], axis=1), lambda t: torch.cat([t, t * 2], dim=1)),
        (lambda t: stack([t, t.exp()], axis=-1), lambda t: torch.stack([t, t.exp()], dim=-1)),
    ]
    x = rng.standard_normal((2, 3, 4))
    for fg_fn, th_fn in cases:
        compare_torch(fg_fn, th_fn, [x], dtype)


def test_torch_max_with_ties():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    compare_torch(lambda t: t.max(axis=1), lambda t: t.amax(dim=1), [x], np.float64)
    compare_torch(lambda t: t.max(), lambda t: t.amax(), [x], np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_functional(dtype):
    torch = pytest.importorskip("torch", reason="PyTorch not installed: comparison skipped")
    tf = torch.nn.functional
    rng = np.random.default_rng(18)
    for fg_fn, th_fn, arrays in functional_pairs(torch, rng):
        compare_torch(fg_fn, th_fn, arrays, dtype)
    x, w, b = rng.standard_normal((8, 3)), rng.standard_normal((4, 3)), rng.standard_normal(4)

    def net(x, w1, b1, w2):
        return F.linear(F.linear(x, w1, b1).tanh(), w2).softmax(-1)

    def th_net(x, w1, b1, w2):
        return tf.linear(tf.linear(x, w1, b1).tanh(), w2).softmax(-1)
    compare_torch(net, th_net, [x, w, b, rng.standard_normal((2, 4))], dtype)
