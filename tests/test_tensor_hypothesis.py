"""Random shapes and random chains of smooth ops, checked against finite differences."""

import numpy as np
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from fastgrad import Tensor

from _tensor_cases import fd_grads
import pytest

# written for float64 numerics: Python floats make float64 tensors here
pytestmark = pytest.mark.usefixtures("float64_default")

shapes = st.lists(st.integers(1, 3), min_size=0, max_size=3).map(tuple)


def values(shape):
    return arrays(np.float64, shape, elements=st.floats(-2, 2, width=64))


def broadcastable_to(data, shape):
    """A shape that broadcasts against `shape`: some leading dims dropped, some set to 1."""
    keep = data.draw(st.integers(0, len(shape)))
    tail = shape[len(shape) - keep:]
    return tuple(d if data.draw(st.booleans()) else 1 for d in tail)


# Each step: (name, needs ndim >= 1, number of parameters it adds)
STEPS = ["tanh", "sigmoid", "exp_tanh", "square", "scale", "add", "mul", "div", "softmax",
         "log_softmax", "sum", "mean", "reshape", "transpose", "matmul", "slice", "rsub"]


def build_chain(data, shape):
    """Draw a chain of ops; returns (list of leaf arrays, fn(*leaf tensors) -> tensor)."""
    leaves = [data.draw(values(shape))]
    plan = []
    cur = shape
    for _ in range(data.draw(st.integers(1, 6))):
        name = data.draw(st.sampled_from(STEPS))
        nd = len(cur)
        if name in ("softmax", "log_softmax", "matmul", "slice") and nd == 0:
            continue
        arg = None
        if name in ("add", "mul", "div"):
            pshape = broadcastable_to(data, cur)
            leaves.append(data.draw(values(pshape)))
            arg = len(leaves) - 1
            cur = np.broadcast_shapes(cur, pshape)
        elif name == "matmul":
            k = data.draw(st.integers(1, 3))
            leaves.append(data.draw(values((cur[-1], k))))
            arg = len(leaves) - 1
            cur = cur[:-1] + (k,)
        elif name in ("softmax", "log_softmax"):
            arg = data.draw(st.integers(-nd, nd - 1))
        elif name in ("sum", "mean"):
            if nd:
                axes = data.draw(st.lists(st.integers(0, nd - 1), unique=True, max_size=nd))
                arg = (tuple(axes) or None, data.draw(st.booleans()))
            else:
                arg = (None, False)
            ax, keep = arg
            axes = set(range(nd)) if ax is None else set(ax)
            cur = tuple((1 if i in axes else d) for i, d in enumerate(cur) if keep or i not in axes)
        elif name == "reshape":
            cur = (int(np.prod(cur)),)
        elif name == "transpose":
            arg = tuple(data.draw(st.permutations(range(nd))))
            cur = tuple(cur[i] for i in arg)
        elif name == "slice":
            cur = (len(range(0, cur[0], 2)),) + cur[1:]
        plan.append((name, arg))

    def fn(*ts):
        y = ts[0]
        for name, arg in plan:
            p = ts[arg] if isinstance(arg, int) and name in ("add", "mul", "div", "matmul") \
                else None
            if name == "tanh":
                y = y.tanh()
            elif name == "sigmoid":
                y = y.sigmoid()
            elif name == "exp_tanh":
                y = y.tanh().exp()
            elif name == "square":
                y = y ** 2
            elif name == "scale":
                y = 0.5 * y
            elif name == "rsub":
                y = 1.0 - y
            elif name == "add":
                y = y + p
            elif name == "mul":
                y = p * y
            elif name == "div":
                y = y / (1.0 + p * p)
            elif name == "matmul":
                y = y @ p
            elif name == "softmax":
                y = y.softmax(arg)
            elif name == "log_softmax":
                y = y.log_softmax(axis=arg)
            elif name in ("sum", "mean"):
                y = getattr(y, name)(axis=arg[0], keepdims=arg[1])
            elif name == "reshape":
                y = y.reshape(-1)
            elif name == "transpose":
                y = y.permute(*arg) if arg else y
            elif name == "slice":
                y = y[::2]
        return y

    return leaves, fn, cur


@settings(max_examples=200, deadline=None)
@given(shape=shapes, data=st.data())
def test_random_chains_match_finite_differences(shape, data):
    leaves, fn, out_shape = build_chain(data, shape)
    ts = [Tensor(a, requires_grad=True) for a in leaves]
    out = fn(*ts)
    assert out.shape == out_shape
    weight = data.draw(values(out_shape))
    out.backward(weight)
    for t, g in zip(ts, fd_grads(fn, leaves, weight)):
        assert t.grad is not None
        np.testing.assert_allclose(t.grad, g, rtol=1e-5, atol=1e-6)


@settings(max_examples=100, deadline=None)
@given(a=shapes, b=shapes, data=st.data())
def test_random_broadcasting_pairs(a, b, data):
    try:
        out_shape = np.broadcast_shapes(a, b)
    except ValueError:
        x, y = Tensor(np.ones(a)), Tensor(np.ones(b))
        try:
            x * y
        except RuntimeError as exc:     # PyTorch's error type
            assert str(a) in str(exc) and str(b) in str(exc)
        else:
            raise AssertionError("mismatched shapes did not raise")
        return
    xa, ya = data.draw(values(a)), data.draw(values(b))
    fn = lambda x, y: (x * y + x) / (2.0 + y.tanh())  # noqa: E731
    tx, ty = Tensor(xa, requires_grad=True), Tensor(ya, requires_grad=True)
    out = fn(tx, ty)
    assert out.shape == out_shape
    weight = data.draw(values(out_shape))
    out.backward(weight)
    gx, gy = fd_grads(fn, [xa, ya], weight)
    np.testing.assert_allclose(tx.grad, gx, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ty.grad, gy, rtol=1e-5, atol=1e-6)
