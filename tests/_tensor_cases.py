"""Shared material for the tensor tests: the table of ops and the finite-difference checker.

Each case: a fastgrad function of tensors, the same function in numpy (the forward reference),
the same in torch (used only when torch is installed), and how to draw its inputs.
"""

import numpy as np

import fastgrad

from fastgrad import Tensor, no_grad
from fastgrad._tensor import conv
from fastgrad.nn import functional as F


def draw(rng, shape, kind):
    """Inputs for an op's domain: 'any' normal, 'pos' in [0.5, 2], 'away' |x| in [0.5, 2]
    (away from the kinks of relu/max and the pole of 1/x), 'distinct' for max (no ties)."""
    if kind == "any":
        return rng.standard_normal(shape)
    if kind == "pos":
        return rng.uniform(0.5, 2.0, shape)
    if kind == "away":
        return rng.uniform(0.5, 2.0, shape) * rng.choice([-1.0, 1.0], shape)
    if kind == "distinct":
        n = int(np.prod(shape))
        return (rng.permutation(n) * 0.37 - 1.0).reshape(shape) + 0.01 * rng.random(shape)
    raise ValueError(kind)


def fd_grads(fn, arrays, weight, h=1e-6):
    """Central differences of sum(fn(*arrays) * weight) in float64 (no tape)."""
    grads = []
    with no_grad():
        def f(xs):
            return float((np.asarray(fn(*[Tensor(x) for x in xs]).data) * weight).sum())
        for i, x in enumerate(arrays):
            g = np.zeros_like(x)
            for j in np.ndindex(x.shape):
                xp = [a.copy() for a in arrays]
                xm = [a.copy() for a in arrays]
                xp[i][j] += h
                xm[i][j] -= h
                g[j] = (f(xp) - f(xm)) / (2 * h)
            grads.append(g)
    return grads


TOL = {np.float64: dict(rtol=1e-5, atol=1e-6), np.float32: dict(rtol=2e-3, atol=2e-3)}


def check_op(fn, arrays, dtype, ref=None, seed=0):
    """Forward vs ref and backward (vector-Jacobian product) vs finite differences.

    The inputs are rounded to dtype first, so float32 gradients are compared with float64
    finite differences of the very same inputs."""
    rng = np.random.default_rng(seed)
    arrays = [np.asarray(a, dtype=dtype).astype(np.float64) for a in arrays]
    ts = [Tensor(a, requires_grad=True, dtype=dtype) for a in arrays]
    out = fn(*ts)
    assert isinstance(out, Tensor)
    assert out.dtype == np.dtype(dtype), (out.dtype, dtype)
    if ref is not None:
        expected = np.asarray(ref(*arrays))
        assert out.shape == expected.shape
        np.testing.assert_allclose(out.data, expected, rtol=TOL[dtype]["rtol"] / 10, atol=1e-6)
    weight = rng.standard_normal(out.shape)
    out.backward(weight.astype(dtype))
    for t, g in zip(ts, fd_grads(fn, arrays, weight)):
        assert t.grad is not None and t.grad.shape == t.shape
        assert t.grad.dtype == np.dtype(dtype)
        np.testing.assert_allclose(t.grad, g, **TOL[dtype])
    return ts, out


BROADCAST_SHAPES = [
    ((), ()), ((3,), ()), ((), (2, 3)), ((2, 3), (3,)), ((2, 1), (1, 3)),
    ((4, 1, 3), (2, 1)), ((1,), (2, 3)), ((2, 3), (2, 3)), ((1, 1), (3,)), ((3, 1), (3, 1, 1)),
]
UNARY_SHAPES = [(), (1,), (3,), (2, 3), (2, 1, 3), (1, 1)]
MATMUL_SHAPES = [
    ((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)), ((5, 2, 3), (3, 4)),
    ((2, 3), (5, 3, 4)), ((5, 2, 3), (5, 3, 4)), ((1, 2, 3), (4, 3, 2)), ((3,), (5, 3, 4)),
    ((5, 2, 3), (3,)), ((1, 3), (3, 1)),
]

# name: (fastgrad fn, numpy ref, torch fn, input kinds)
BINARY = {
    "add": (lambda a, b: a + b, np.add, lambda a, b: a + b, ("any", "any")),
    "sub": (lambda a, b: a - b, np.subtract, lambda a, b: a - b, ("any", "any")),
    "mul": (lambda a, b: a * b, np.multiply, lambda a, b: a * b, ("any", "any")),
    "div": (lambda a, b: a / b, np.divide, lambda a, b: a / b, ("any", "away")),
    "pow": (lambda a, b: a ** b, np.power, lambda a, b: a ** b, ("pos", "any")),
}

# name: (fastgrad fn, numpy ref, torch fn, input kind, min ndim)
UNARY = {
    "neg": (lambda x: -x, np.negative, lambda x: -x, "any", 0),
    "relu": (lambda x: x.relu(), lambda x: np.maximum(x, 0), lambda x: x.relu(), "away", 0),
    "tanh": (lambda x: x.tanh(), np.tanh, lambda x: x.tanh(), "any", 0),
    "exp": (lambda x: x.exp(), np.exp, lambda x: x.exp(), "any", 0),
    "log": (lambda x: x.log(), np.log, lambda x: x.log(), "pos", 0),
    "sigmoid": (lambda x: x.sigmoid(), lambda x: 1 / (1 + np.exp(-x)), lambda x: x.sigmoid(),
                "any", 0),
    "pow2": (lambda x: x ** 2, lambda x: x ** 2, lambda x: x ** 2, "any", 0),
    "pow3": (lambda x: x ** 3, lambda x: x ** 3, lambda x: x ** 3, "any", 0),
    "pow-1.5": (lambda x: x ** -1.5, lambda x: x ** -1.5, lambda x: x ** -1.5, "pos", 0),
    "rpow": (lambda x: 2.0 ** x, lambda x: 2.0 ** x, lambda x: 2.0 ** x, "any", 0),
    "radd": (lambda x: 2.5 + x, lambda x: 2.5 + x, lambda x: 2.5 + x, "any", 0),
    "rsub": (lambda x: 2.5 - x, lambda x: 2.5 - x, lambda x: 2.5 - x, "any", 0),
    "rmul": (lambda x: 3 * x, lambda x: 3 * x, lambda x: 3 * x, "any", 0),
    "rdiv": (lambda x: 3 / x, lambda x: 3 / x, lambda x: 3 / x, "away", 0),
    "divc": (lambda x: x / 4, lambda x: x / 4, lambda x: x / 4, "any", 0),
    "softmax": (lambda x: x.softmax(-1), None, lambda x: x.softmax(-1), "any", 1),
    "softmax0": (lambda x: F.softmax(x, 0), None, lambda x: x.softmax(0), "any", 1),
    "log_softmax": (lambda x: x.log_softmax(-1), None, lambda x: x.log_softmax(-1), "any", 1),
    "log_softmax0": (lambda x: F.log_softmax(x, axis=0), None, lambda x: x.log_softmax(0),
                     "any", 1),
    # the elementwise functions and reductions with a diagonal Jacobian (one TOP_LOCAL node)
    "sqrt": (lambda x: x.sqrt(), np.sqrt, lambda x: x.sqrt(), "pos", 0),
    "rsqrt": (lambda x: x.rsqrt(), lambda x: 1 / np.sqrt(x), lambda x: x.rsqrt(), "pos", 0),
    "abs": (lambda x: x.abs(), np.abs, lambda x: x.abs(), "away", 0),
    "log2": (lambda x: x.log2(), np.log2, lambda x: x.log2(), "pos", 0),
    "log10": (lambda x: x.log10(), np.log10, lambda x: x.log10(), "pos", 0),
    "log1p": (lambda x: x.log1p(), np.log1p, lambda x: x.log1p(), "pos", 0),
    "expm1": (lambda x: x.expm1(), np.expm1, lambda x: x.expm1(), "any", 0),
    "sin": (lambda x: x.sin(), np.sin, lambda x: x.sin(), "any", 0),
    "cos": (lambda x: x.cos(), np.cos, lambda x: x.cos(), "any", 0),
    "erf": (lambda x: x.erf(), None, lambda x: x.erf(), "any", 0),
    "reciprocal": (lambda x: x.reciprocal(), lambda x: 1 / x, lambda x: x.reciprocal(),
                   "away", 0),
    "square": (lambda x: x.square(), np.square, lambda x: x.square(), "any", 0),
    "clamp": (lambda x: x.clamp(-0.5, 0.5), lambda x: np.clip(x, -0.5, 0.5),
              lambda x: x.clamp(-0.5, 0.5), "any", 0),
    "where": (lambda x: fastgrad.where(x > 0, x, x * -2.0), lambda x: np.where(x > 0, x, -2 * x),
              lambda x: torch_where(x > 0, x, x * -2.0), "away", 0),
    "maximum": (lambda x: x.maximum(x * 0.5), lambda x: np.maximum(x, x * 0.5),
                lambda x: x.maximum(x * 0.5), "away", 0),
    "var": (lambda x: x.var(-1, unbiased=False), lambda x: x.var(-1), lambda x:
            x.var(-1, unbiased=False), "distinct", 1),
    "logsumexp": (lambda x: x.logsumexp(-1), None, lambda x: x.logsumexp(-1), "any", 1),
    "norm": (lambda x: x.norm(), lambda x: np.sqrt((x * x).sum()), lambda x: x.norm(), "away", 0),
    "prod": (lambda x: x.prod(-1), lambda x: x.prod(-1), lambda x: x.prod(-1), "any", 1),
    "amax": (lambda x: x.amax(-1), lambda x: x.max(-1), lambda x: x.amax(-1), "distinct", 1),
    "max_dim": (lambda x: x.max(-1).values, lambda x: x.max(-1), lambda x: x.max(-1).values,
                "distinct", 1),
}


def torch_where(c, a, b):
    import torch
    return torch.where(c, a, b)

REDUCTIONS = ["sum", "mean", "max"]
REDUCE_SHAPES = [(), (3,), (1, 3), (2, 3, 4), (2, 1, 3)]
REDUCE_AXES = [None, 0, -1, (0, -1)]


def functional_pairs(torch, rng):
    """(fastgrad function, the same in torch, input arrays) for every fastgrad.nn.functional op:
    the cases both the gradient and the forward-mode comparisons with PyTorch run."""
    tf = torch.nn.functional
    x, w, b = rng.standard_normal((8, 3)), rng.standard_normal((4, 3)), rng.standard_normal(4)
    y = rng.standard_normal((8, 4))
    targets = rng.integers(0, 4, 8)
    p, t = rng.uniform(0.05, 0.95, (8, 4)), rng.uniform(0, 1, (8, 4))
    pairs = [
        (F.linear, tf.linear, [x, w, b]),
        (F.linear, tf.linear, [x[0], w, b]),
        (F.mse_loss, tf.mse_loss, [y, rng.standard_normal((8, 4))]),
        (lambda z: F.cross_entropy(z, targets),
         lambda z: tf.cross_entropy(z, torch.tensor(targets)), [y]),
        (lambda z: F.cross_entropy(z * 1000, targets),        # stable for large logits
         lambda z: tf.cross_entropy(z * 1000, torch.tensor(targets)), [y]),
        (F.binary_cross_entropy, tf.binary_cross_entropy, [p, t]),
        (lambda z: F.softmax(z, 1), lambda z: tf.softmax(z, 1), [y]),
        (lambda z: F.log_softmax(z, 0), lambda z: tf.log_softmax(z, 0), [y]),
    ]
    pairs += [(getattr(F, name), getattr(torch, name), [y]) for name in ["relu", "tanh", "sigmoid"]]
    # a gradient as a function (create_graph): its derivatives are second derivatives, and its
    # sum's rule is recorded as a linear map of the sum node (TOP_LINEAR_MAP)
    pairs.append((
        lambda z: fastgrad.autograd.grad((z.sum(1) ** 3).sum(), z, create_graph=True)[0],
        lambda z: torch.func.grad(lambda u: (u.sum(1) ** 3).sum())(z), [y]))
    return pairs + window_pairs(torch, rng)


def window_pairs(torch, rng):
    """The window ops of fastgrad._tensor.conv (convolutions, unfold/fold, pooling) with the
    same in torch: strides, padding, dilation and groups that differ per axis."""
    tf = torch.nn.functional
    img = rng.standard_normal((2, 4, 7, 6))
    w, b = rng.standard_normal((6, 2, 3, 2)), rng.standard_normal(6)
    wt = rng.standard_normal((4, 3, 2, 3))
    cols = rng.standard_normal((2, 4 * 6, 12))
    return [
        (lambda x, w, b: conv.conv2d(x, w, b, (2, 1), (1, 1, 0, 0), (1, 2), 2),
         lambda x, w, b: tf.conv2d(x, w, b, (2, 1), (1, 0), (1, 2), 2), [img, w, b]),
        (lambda x, w: conv.conv2d(x, w, None, (1, 1), (0, 0, 0, 0), (1, 1), 1),
         lambda x, w: tf.conv2d(x, w), [img, w.reshape(3, 4, 3, 2)]),
        (lambda x, w, b: conv.conv_transpose2d(x, w, b, (2, 1), (1, 0), (1, 0), 2, (1, 2)),
         lambda x, w, b: tf.conv_transpose2d(x, w, b, (2, 1), (1, 0), (1, 0), 2, (1, 2)),
         [img, wt, b]),
        (lambda x: conv.unfold(x, (3, 2), (1, 2), (1, 0), (2, 1)),
         lambda x: tf.unfold(x, (3, 2), (1, 2), (1, 0), (2, 1)), [img]),
        (lambda c: conv.fold(c, (5, 6), (3, 2), (1, 1), (0, 1), (1, 2)),
         lambda c: tf.fold(c, (5, 6), (3, 2), (1, 1), (0, 1), (1, 2)), [cols[:, :, :]]),
        (lambda x: conv.max_pool2d(x, (3, 2), (2, 1), (1, 1), (1, 2), True)[0],
         lambda x: tf.max_pool2d(x, (3, 2), (2, 1), (1, 1), (1, 2), True), [img]),
        (lambda x: conv.adaptive_max_pool2d(x, (3, 4))[0],
         lambda x: tf.adaptive_max_pool2d(x, (3, 4)), [img]),
        (lambda x: conv.avg_pool2d(x, (3, 2), (2, 2), (1, 1), True, False, None),
         lambda x: tf.avg_pool2d(x, (3, 2), (2, 2), (1, 1), True, False), [img]),
        (lambda x: conv.adaptive_avg_pool2d(x, (4, 5)),
         lambda x: tf.adaptive_avg_pool2d(x, (4, 5)), [img]),
    ]
