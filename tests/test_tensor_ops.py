"""Every tensor op, forward and gradient, against finite differences in float64 and float32."""

import numpy as np
import pytest

from fastgrad import Tensor, cat, concatenate, stack
from fastgrad.nn import functional as F

from _tensor_cases import (BINARY, BROADCAST_SHAPES, MATMUL_SHAPES, REDUCE_AXES, REDUCE_SHAPES,
                           REDUCTIONS, UNARY, UNARY_SHAPES, check_op, draw)

# written for float64 numerics: Python floats make float64 tensors here
pytestmark = pytest.mark.usefixtures("float64_default")

DTYPES = [np.float64, np.float32]


def _valid_axes(shape, axis):
    if axis is None:
        return True
    axes = axis if isinstance(axis, tuple) else (axis,)
    nd = len(shape)
    if any(not -nd <= a < nd for a in axes):
        return False
    return len({a % nd for a in axes}) == len(axes)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=str)
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_broadcasting(name, shapes, dtype):
    fn, ref, _, kinds = BINARY[name]
    rng = np.random.default_rng(1)
    arrays = [draw(rng, s, k) for s, k in zip(shapes, kinds)]
    check_op(fn, arrays, dtype, ref)


UNARY_CASES = [(n, s) for n in sorted(UNARY) for s in UNARY_SHAPES if len(s) >= UNARY[n][4]]
REDUCE_CASES = [(s, a) for s in REDUCE_SHAPES for a in REDUCE_AXES if _valid_axes(s, a)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,shape", UNARY_CASES, ids=str)
def test_unary(name, shape, dtype):
    fn, ref, _, kind, _ = UNARY[name]
    rng = np.random.default_rng(2)
    check_op(fn, [draw(rng, shape, kind)], dtype, ref)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("shape,axis", REDUCE_CASES, ids=str)
@pytest.mark.parametrize("name", REDUCTIONS)
def test_reductions(name, shape, axis, keepdims, dtype):
    rng = np.random.default_rng(3)
    x = draw(rng, shape, "distinct")
    check_op(lambda t: getattr(t, name)(axis=axis, keepdims=keepdims), [x], dtype,
             lambda a: getattr(np, name if name != "max" else "amax")(a, axis=axis,
                                                                      keepdims=keepdims))


def test_max_splits_gradient_between_ties():
    x = Tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]], requires_grad=True)
    x.max(axis=1).sum().backward()
    np.testing.assert_allclose(x.grad, [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
def test_matmul(shapes, dtype):
    rng = np.random.default_rng(4)
    arrays = [rng.standard_normal(s) for s in shapes]
    check_op(lambda a, b: a @ b, arrays, dtype, np.matmul)


@pytest.mark.parametrize("dtype", DTYPES)
def test_matmul_with_arrays_on_either_side(dtype):
    rng = np.random.default_rng(5)
    w = rng.standard_normal((3, 2)).astype(dtype)   # a float64 array would promote float32
    check_op(lambda a: a @ w, [rng.standard_normal((4, 3))], dtype, lambda a: a @ w)
    check_op(lambda a: w.T @ a, [rng.standard_normal((3, 4))], dtype, lambda a: w.T @ a)


SHAPE_OPS = {
    "reshape": (lambda t: t.reshape(3, 4), lambda a: a.reshape(3, 4)),
    "reshape_tuple": (lambda t: t.reshape((-1,)), lambda a: a.reshape(-1)),
    "transpose": (lambda t: t.transpose(), lambda a: a.transpose()),
    "transpose_perm": (lambda t: t.transpose(1, 0, 2), lambda a: a.transpose(1, 0, 2)),
    "transpose_neg": (lambda t: t.transpose((0, -1, 1)), lambda a: a.transpose(0, 2, 1)),
    "T": (lambda t: t.T, lambda a: a.T),
    "slice": (lambda t: t[1:, ::2], lambda a: a[1:, ::2]),
    "int": (lambda t: t[0, 1], lambda a: a[0, 1]),
    "int_array_repeats": (lambda t: t[np.array([0, 1, 0, 0])], lambda a: a[[0, 1, 0, 0]]),
    "list_index": (lambda t: t[:, [2, 2, 0]], lambda a: a[:, [2, 2, 0]]),
    "ellipsis_newaxis": (lambda t: t[..., None, 1], lambda a: a[..., None, 1]),
    "negative_step": (lambda t: t[::-1, :, -1], lambda a: a[::-1, :, -1]),
    "bool_mask": (lambda t: t[t.data > 0], lambda a: a[a > 0]),
    "transpose_dims": (lambda t: t.transpose(0, 2), lambda a: a.swapaxes(0, 2)),
    "mT": (lambda t: t.mT, lambda a: a.swapaxes(-1, -2)),
    "permute": (lambda t: t.permute(2, 0, 1), lambda a: a.transpose(2, 0, 1)),
    "squeeze_unsqueeze": (lambda t: t.unsqueeze(1).squeeze(), lambda a: a),
    "flatten_dims": (lambda t: t.flatten(1), lambda a: a.reshape(2, 6)),
    "gather": (lambda t: t.gather(1, Tensor(GATHER_INDEX)),
               lambda a: np.take_along_axis(a, GATHER_INDEX, 1)),
    "index_select": (lambda t: t.index_select(1, Tensor(np.array([2, 0, 2]))),
                     lambda a: a[:, [2, 0, 2]]),
    "cumsum": (lambda t: t.cumsum(1), lambda a: np.cumsum(a, 1)),
    "expand": (lambda t: t[:, :1].expand(2, 4, 2), lambda a: np.broadcast_to(a[:, :1], (2, 4, 2))),
    "repeat": (lambda t: t.repeat(1, 2, 1), lambda a: np.tile(a, (1, 2, 1))),
    "flip": (lambda t: t.flip(0, 2), lambda a: np.flip(a, (0, 2))),
    "clone": (lambda t: t.clone(), lambda a: a.copy()),
    "split": (lambda t: t.split(2, 1)[1], lambda a: a[:, 2:]),
}
GATHER_INDEX = np.array([[[0, 1], [2, 2]], [[1, 0], [0, 2]]])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", sorted(SHAPE_OPS))
def test_shape_ops(name, dtype):
    fn, ref = SHAPE_OPS[name]
    x = np.random.default_rng(6).standard_normal((2, 3, 2))
    check_op(fn, [x], dtype, ref)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate_and_stack(axis, dtype):
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    const = rng.standard_normal((2, 3)).astype(dtype)
    check_op(lambda x, y: concatenate([x, y, const], axis=axis), [a, b], dtype,
             lambda x, y: np.concatenate([x, y, const], axis=axis))
    check_op(lambda x, y: stack([x, const, y], axis=axis), [a, b], dtype,
             lambda x, y: np.stack([x, const, y], axis=axis))
    check_op(lambda x: cat([x, x], axis=axis), [a], dtype,
             lambda x: np.concatenate([x, x], axis=axis))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("xshape", [(4, 3), (3,), (2, 4, 3)], ids=str)
@pytest.mark.parametrize("bias", [True, False])
def test_linear(xshape, bias, dtype):
    rng = np.random.default_rng(8)
    arrays = [rng.standard_normal(xshape), rng.standard_normal((5, 3))]
    if bias:
        arrays.append(rng.standard_normal(5))
    check_op(lambda x, w, b=None: F.linear(x, w, b), arrays, dtype,
             lambda x, w, b=0.0: x @ w.T + b)


@pytest.mark.parametrize("dtype", DTYPES)
def test_losses(dtype):
    rng = np.random.default_rng(9)
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    check_op(F.mse_loss, [a, b], dtype, lambda x, y: ((x - y) ** 2).mean())
    targets = np.array([0, 2, 1, 2])

    def ce_ref(x):
        z = x - x.max(1, keepdims=True)
        return (np.log(np.exp(z).sum(1)) - z[np.arange(4), targets]).mean()
    check_op(lambda x: F.cross_entropy(x, targets), [a], dtype, ce_ref)
    p, t = rng.uniform(0.1, 0.9, (4, 3)), rng.uniform(0, 1, (4, 3))
    check_op(F.binary_cross_entropy, [p, t], dtype,
             lambda x, y: -(y * np.log(x) + (1 - y) * np.log(1 - x)).mean())


def test_composite_graph_reuses_nodes():
    # a node used by several parents, some through broadcasting, accumulates all contributions
    rng = np.random.default_rng(10)

    def fn(x, w):
        h = (x @ w).tanh()
        return (h * h + h.sum(axis=0) - h.exp().mean(axis=1, keepdims=True)) / (1 + h ** 2)
    check_op(fn, [rng.standard_normal((4, 3)), rng.standard_normal((3, 2))], np.float64)
