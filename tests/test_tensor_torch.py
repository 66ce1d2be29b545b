"""The same op table against PyTorch (float64 and float32): values and gradients."""

import numpy as np
import pytest

from fastgrad import Tensor, concatenate, stack
from fastgrad.nn import functional as F

from _tensor_cases import (BINARY, BROADCAST_SHAPES, MATMUL_SHAPES, REDUCE_AXES, REDUCE_SHAPES,
                           UNARY, UNARY_SHAPES, draw, functional_pairs)

# written for float64 numerics: Python floats make float64 tensors here
pytestmark = pytest.mark.usefixtures("float64_default")

torch = pytest.importorskip("torch", reason="PyTorch not installed: comparison tests skipped")

DTYPES = [np.float64, np.float32]
TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=1e-4, atol=1e-5)}


def compare(fg_fn, th_fn, arrays, dtype, seed=0):
    arrays = [np.asarray(a, dtype=dtype) for a in arrays]
    ts = [Tensor(a, requires_grad=True) for a in arrays]
    ths = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, th_out = fg_fn(*ts), th_fn(*ths)
    assert out.shape == tuple(th_out.shape)
    np.testing.assert_allclose(out.data, th_out.detach().numpy(), **TOL[dtype])
    weight = np.random.default_rng(seed).standard_normal(out.shape).astype(dtype)
    out.backward(weight)
    th_out.backward(torch.tensor(weight))
    for t, th in zip(ts, ths):
        np.testing.assert_allclose(t.grad, th.grad.numpy(), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=str)
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary(name, shapes, dtype):
    fn, _, th, kinds = BINARY[name]
    rng = np.random.default_rng(1)
    compare(fn, th, [draw(rng, s, k) for s, k in zip(shapes, kinds)], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", UNARY_SHAPES, ids=str)
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary(name, shape, dtype):
    fn, _, th, kind, min_ndim = UNARY[name]
    if len(shape) >= min_ndim:
        compare(fn, th, [draw(np.random.default_rng(2), shape, kind)], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", REDUCE_AXES, ids=str)
@pytest.mark.parametrize("shape", REDUCE_SHAPES, ids=str)
def test_reductions(shape, axis, keepdims, dtype):
    nd = len(shape)
    axes = () if axis is None else (axis if isinstance(axis, tuple) else (axis,))
    if any(not -nd <= a < nd for a in axes) or len({a % max(nd, 1) for a in axes}) < len(axes):
        return
    dim = tuple(range(nd)) if axis is None else axis
    x = draw(np.random.default_rng(3), shape, "distinct")
    compare(lambda t: t.sum(axis=axis, keepdims=keepdims),
            lambda t: t.sum(dim=dim, keepdim=keepdims), [x], dtype)
    compare(lambda t: t.mean(axis=axis, keepdims=keepdims),
            lambda t: t.mean(dim=dim, keepdim=keepdims), [x], dtype)
    compare(lambda t: t.max(axis=axis, keepdims=keepdims),
            lambda t: t.amax(dim=dim, keepdim=keepdims), [x], dtype)


def test_max_ties_like_amax():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    compare(lambda t: t.max(axis=1), lambda t: t.amax(dim=1), [x], np.float64)
    compare(lambda t: t.max(), lambda t: t.amax(), [x], np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
def test_matmul(shapes, dtype):
    rng = np.random.default_rng(4)
    compare(lambda a, b: a @ b, lambda a, b: a @ b, [rng.standard_normal(s) for s in shapes],
            dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_shape_ops_and_indexing(dtype):
    x = np.random.default_rng(5).standard_normal((2, 3, 4))
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
    for fg_fn, th_fn in cases:
        compare(fg_fn, th_fn, [x], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_functional(dtype):
    for fg_fn, th_fn, arrays in functional_pairs(torch, np.random.default_rng(6)):
        compare(fg_fn, th_fn, arrays, dtype)


def test_sigmoid_and_bce_at_extremes():
    x = np.array([-800.0, -40.0, 0.0, 40.0, 800.0])
    compare(lambda t: t.sigmoid(), torch.sigmoid, [x], np.float64)
    p = np.array([0.0, 1e-30, 0.5, 1.0])
    t = np.array([1.0, 0.0, 1.0, 0.0])
    np.testing.assert_allclose(
        F.binary_cross_entropy(Tensor(p), Tensor(t)).item(),
        torch.nn.functional.binary_cross_entropy(torch.tensor(p), torch.tensor(t)).item())
