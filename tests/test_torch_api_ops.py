"""Every elementwise and linear-algebra op of the tensor contract against PyTorch: values,
gradients and dtypes in float64 and float32, as methods and as top-level functions, with
broadcasting drawn by hypothesis and the edge values PyTorch defines (0 ** 0, relu at NaN, abs,
sign and clamp at their kinks, sqrt at 0, division by zero)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

from _torch_compare import (LIBS, check, check_raises, core_gap, dtype_name, fg, np_operand,
                            rand, torch)

DTYPES = ["float64", "float32"]

# name -> domain of the inputs drawn for it
UNARY = {
    "neg": "any", "sqrt": "positive", "rsqrt": "positive", "abs": "any", "sign": "any",
    "exp": "any", "log": "positive", "log2": "positive", "log10": "positive", "log1p": "positive",
    "expm1": "any", "sin": "any", "cos": "any", "tan": "small", "tanh": "any", "sigmoid": "any",
    "relu": "any", "erf": "any", "floor": "any", "ceil": "any", "round": "any", "trunc": "any",
    "reciprocal": "nonzero", "square": "any",
}
DOMAINS = {"any": (-3.0, 3.0), "positive": (0.1, 4.0), "small": (-1.2, 1.2), "nonzero": (0.2, 3.0)}


def _draw(domain, shape, dtype, seed=0):
    lo, hi = DOMAINS[domain]
    x = np.asarray(rand(shape, dtype, seed, lo, hi))
    if domain == "nonzero":
        x = np.asarray(x * np.where(np.arange(x.size).reshape(shape) % 2, 1, -1).astype(dtype))
    return x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (5,), (2, 3)], ids=str)
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_method_and_function(name, shape, dtype):
    x = _draw(UNARY[name], shape, dtype)
    check(lambda lib, t: (getattr(t, name)(), getattr(lib, name)(t)), x)


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "exp", "sqrt", "abs", "neg"])
def test_unary_on_int_tensor_dtype(name):
    # PyTorch: sqrt/exp/sigmoid/tanh of an int tensor give the default float; abs/neg/relu stay int
    check(lambda lib, t: getattr(t, name)(), np.array([1, 4, 9]), grad=False)


EDGE = np.array([0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 1e-300, -2.5, 0.5, 1.5, 2.5])
# PyTorch's CPU sign(NaN) is 0 (so abs' gradient at NaN is 0): a kernel quirk, not asked of fastgrad
NAN_QUIRK = {"sign", "abs"}


@pytest.mark.parametrize("name", ["abs", "sign", "relu", "sqrt", "exp", "log", "sigmoid", "tanh",
                                  "floor", "ceil", "round", "trunc", "reciprocal", "square",
                                  "neg", "log1p", "expm1", "rsqrt", "erf"])
def test_unary_edge_values(name):
    # NaN in, NaN out; kinks (abs, sign, relu at 0) and infinities give PyTorch's gradients
    x = EDGE[~np.isnan(EDGE)] if name in NAN_QUIRK else EDGE
    check(lambda lib, t: getattr(t, name)(), x)


@pytest.mark.parametrize("lib", [pytest.param(torch, id="torch"), pytest.param(
    fg, id="fastgrad", marks=core_gap(
        "numpy's RuntimeWarnings at edge values (log 0, 0 * inf) are shown, PyTorch is silent"))])
def test_no_numpy_warnings_at_edge_values(lib, recwarn):
    # PyTorch computes log(0), 1/0, 0 ** -1, sqrt(-1) and their gradients silently
    x = lib.tensor([0.0, -1.0, 2.0], requires_grad=True)
    y = lib.tensor([0.0, 0.5, -1.0], requires_grad=True)
    out = (x.log() + 1 / x + x ** -1 + x.sqrt() + x ** y + x.rsqrt() + x.reciprocal()
           + (x * 0) / x + x.log2() + x.log10())
    out.sum().backward()
    assert [str(w.message) for w in recwarn] == []


def test_issue_edge_gradients_as_stated():
    """The values the issue names, asserted directly (and compared with PyTorch)."""
    for lib in (torch, fg):
        x = lib.tensor([0.0], dtype=lib.float64, requires_grad=True)
        y = lib.tensor([0.0], dtype=lib.float64, requires_grad=True)
        (x ** y).sum().backward()
        assert x.grad.tolist() == [0.0] and y.grad.tolist() == [0.0]
        r = lib.tensor([float("nan"), -1.0, 2.0], requires_grad=True)
        r.relu().sum().backward()
        assert r.grad.tolist() == [1.0, 0.0, 1.0]      # relu passes the gradient at NaN
        s = lib.tensor([0.0, 4.0], requires_grad=True)
        out = s.sqrt()
        out.sum().backward()
        assert out.tolist() == [0.0, 2.0] and s.grad.tolist() == [float("inf"), 0.25]


# ---- pow -------------------------------------------------------------------------------------

POW_BASE = np.array([0.0, 0.0, 0.0, 2.0, 0.5, 1.0, -2.0, -0.5, 3.0])
POW_EXP = np.array([0.0, 2.0, 0.5, 0.0, -1.5, 3.0, 2.0, 3.0, 1.0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_pow_tensor_tensor_edges(dtype):
    # gradient of x ** y at x == 0: 0 for y == 0 and y > 1, inf-ish for 0 < y < 1, as PyTorch
    check(lambda lib, x, y: (x ** y, lib.pow(x, y), x.pow(y)), POW_BASE.astype(dtype),
          POW_EXP.astype(dtype))


@pytest.mark.parametrize("exponent", [0, 1, 2, 3, -1, 0.5, 2.5, -0.5, 0.0, 2.0])
def test_pow_scalar_exponent(exponent):
    check(lambda lib, x: (x ** exponent, x.pow(exponent), lib.pow(x, exponent)),
          np.array([0.0, 1.5, 2.0, 0.25, 3.0]))
    if float(exponent).is_integer():
        check(lambda lib, x: x ** exponent, np.array([-1.5, 0.0, -2.0, 1.0]))


@pytest.mark.parametrize("base", [2, 2.5, 0.0, 1])
def test_pow_scalar_base(base):
    check(lambda lib, x: (base ** x, lib.pow(base, x)), np.array([0.0, 1.0, -1.5, 2.5]))


# ---- binary ops with broadcasting ------------------------------------------------------------

BINARY = {
    "add": lambda lib, a, b: (a + b, lib.add(a, b), a.add(b), a.add(b, alpha=2.5),
                              lib.add(a, b, alpha=-1.5)),
    "sub": lambda lib, a, b: (a - b, lib.sub(a, b), a.sub(b), a.sub(b, alpha=3.0),
                              lib.sub(a, b, alpha=0.5)),
    "mul": lambda lib, a, b: (a * b, lib.mul(a, b), a.mul(b)),
    "div": lambda lib, a, b: (a / b, lib.div(a, b), a.div(b)),
    "pow": lambda lib, a, b: (a.abs() ** b, lib.pow(a.abs() + 0.5, b)),
    "minimum": lambda lib, a, b: (lib.minimum(a, b), a.minimum(b)),
    "maximum": lambda lib, a, b: (lib.maximum(a, b), a.maximum(b)),
    "min2": lambda lib, a, b: lib.min(a, b),
    "max2": lambda lib, a, b: lib.max(a, b),
}


@settings(max_examples=25, deadline=None)
@given(shapes=mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3),
       name=st.sampled_from(sorted(BINARY)), dtype=st.sampled_from(DTYPES),
       seed=st.integers(0, 2 ** 16))
def test_binary_broadcasting(shapes, name, dtype, seed):
    a, b = (rand(s, dtype, seed + i) for i, s in enumerate(shapes.input_shapes))
    if name == "div":
        b = np.where(np.abs(b) < 0.2, 0.7, b).astype(dtype)
    check(BINARY[name], a, b, rtol=1e-5 if dtype == "float32" else None)


@pytest.mark.parametrize("name", ["minimum", "maximum", "min2", "max2"])
def test_minimum_maximum_ties_split_the_gradient(name):
    a = np.array([1.0, 2.0, 3.0, -1.0])
    b = np.array([1.0, 5.0, 0.0, -1.0])
    check(BINARY[name], a, b)


@pytest.mark.parametrize("name", ["minimum", "maximum", "min2", "max2"])
def test_minimum_maximum_propagate_nan_and_its_gradient(name):
    # the result is NaN and, as in PyTorch, both operands get the gradient at a NaN position
    check(BINARY[name], np.array([np.nan, 1.0, np.nan]), np.array([1.0, np.nan, np.nan]))


def test_shape_mismatch_raises_runtime_error():
    for fn in (lambda lib, a, b: a + b, lambda lib, a, b: a * b,
               lambda lib, a, b: lib.maximum(a, b),
               lambda lib, a, b: lib.where(a > 0, a, b)):
        check_raises(RuntimeError, fn, np.zeros((2, 3)), np.zeros((3, 2)))


# ---- operators with scalars and numpy --------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_reflected_operators_with_python_scalars(dtype):
    check(lambda lib, x: (2.0 + x, 2.0 - x, 2.0 * x, 2.0 / x, 2.0 ** x, -x, +x, abs(x), x - 1,
                          x / 4, 1 - x, 3 * x), rand((2, 3), dtype, low=0.5, high=2.0))


@pytest.mark.parametrize("dtype", DTYPES)
def test_operators_with_numpy_right_operands(dtype):
    a = rand((3,), dtype, 7)
    s = np.dtype(dtype).type(1.25)
    check(lambda lib, x: (x * s, s * x, s - x, x ** 2, x + a[0], s / x), rand((2, 3), dtype))
    check(lambda lib, x: (x + np_operand(lib, a), x * np_operand(lib, a),
                          x - np_operand(lib, a), x / np_operand(lib, a)), rand((2, 3), dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_augmented_operators_on_non_leaf_keep_the_graph(dtype):
    def fn(lib, x, y):
        z = x * 1.0
        z += y
        z *= y
        z -= 1.5
        z /= 2.0
        return z
    check(fn, rand((2, 3), dtype, 1), rand((3,), dtype, 2))


# ---- clamp, where, masked_fill, gather, index_select -----------------------------------------

CLAMP_X = np.array([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, np.nan, np.inf, -np.inf])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bounds", [(-1.0, 1.0), (None, 0.5), (-0.5, None), (0.0, 0.0)], ids=str)
def test_clamp_and_clip(bounds, dtype):
    # the gradient passes at x == min and x == max, as PyTorch
    lo, hi = bounds
    check(lambda lib, x: (x.clamp(lo, hi), lib.clamp(x, min=lo, max=hi), x.clip(lo, hi),
                          lib.clip(x, lo, hi)), CLAMP_X.astype(dtype))


def test_clamp_keywords_and_int_tensor():
    check(lambda lib, x: (x.clamp(min=-1), x.clamp(max=1), x.clamp(-1, 1)),
          np.array([-3, -1, 0, 1, 4]), grad=False)
    check(lambda lib, x: x.clamp(min=0.5), np.array([-3, 0, 4]), grad=False)  # int -> float


def test_clamp_without_bounds_raises():
    check_raises(RuntimeError, lambda lib, x: x.clamp(), np.array([1.0]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_where(dtype):
    c = np.array([[True, False, True], [False, False, True]])
    a, b = rand((2, 3), dtype, 1), rand((3,), dtype, 2)
    check(lambda lib, m, x, y: (lib.where(m, x, y), lib.where(x > 0, x, 0.0),
                                lib.where(m, 1.0, y), x.where(m, y)), c, a, b)


def test_where_promotes_like_torch():
    check(lambda lib, m, x, i: (lib.where(m, x, i), lib.where(m, i, 2), lib.where(m, i, 2.5)),
          np.array([True, False]), np.array([1.5, 2.5], np.float32), np.array([3, 4]), grad=False)


@pytest.mark.parametrize("dtype", DTYPES)
def test_masked_fill(dtype):
    m = np.array([[True, False, True], [False, False, False]])
    check(lambda lib, x, mask: (x.masked_fill(mask, 0.0), x.masked_fill(mask, -float("inf")),
                                x.masked_fill(mask[0], 3.5), lib.masked_fill(x, mask, 1.0),
                                x.masked_fill(x > 0, lib.tensor(2.0))),
          rand((2, 3), dtype), m)


def test_masked_fill_softmax_attention_style():
    x = rand((2, 4), seed=3)
    mask = np.triu(np.ones((4, 4), bool), 1)[:2]
    check(lambda lib, t, m: t.masked_fill(m, float("-inf")).softmax(dim=-1), x, mask)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_gather(dim):
    x = rand((3, 4), seed=5)
    idx = np.random.default_rng(dim + 1).integers(0, x.shape[dim], size=(3, 4)).astype(np.int64)
    idx = idx[:2] if dim == 0 else idx[:, :3]
    check(lambda lib, t, i: (t.gather(dim, i), lib.gather(t, dim, i)), x, idx)


def test_gather_errors():
    check_raises(RuntimeError, lambda lib, t, i: t.gather(1, i), np.zeros((2, 3)),
                 np.array([[0], [5]]))
    check_raises(IndexError, lambda lib, t, i: t.gather(2, i), np.zeros((2, 3)), np.array([[0]]))


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_index_select(dim):
    x = rand((3, 4), seed=6)
    idx = np.array([2, 0, 2], np.int64) if dim == 0 else np.array([3, 1, 1, 0], np.int64)
    check(lambda lib, t, i: (t.index_select(dim, i), lib.index_select(t, dim, i)), x, idx)


def test_one_hot():
    check(lambda lib, y: (lib.nn.functional.one_hot(y), lib.nn.functional.one_hot(y, 5),
                          lib.nn.functional.one_hot(y, num_classes=4).float()),
          np.array([0, 3, 1, 1]), grad=False)
    check_raises(RuntimeError, lambda lib, y: lib.nn.functional.one_hot(y, 2), np.array([0, 3]))


# ---- softmax ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dim", [0, 1, -1, 2])
def test_softmax_and_log_softmax(dim, dtype):
    x = rand((2, 3, 4), dtype, 8, -5, 5)
    check(lambda lib, t: (t.softmax(dim), t.softmax(dim=dim), t.log_softmax(dim=dim),
                          lib.softmax(t, dim=dim), lib.log_softmax(t, dim)), x)


def test_functional_softmax_takes_dim():
    check(lambda lib, t: (lib.nn.functional.softmax(t, dim=0), lib.nn.functional.softmax(t, 1),
                          lib.nn.functional.log_softmax(t, dim=-1)), rand((2, 3), seed=9))


def test_softmax_with_infinities_and_large_values():
    x = np.array([[0.0, -np.inf, 1.0], [1000.0, 999.0, -1000.0]])
    check(lambda lib, t: (t.softmax(-1), t.log_softmax(-1)), x)


# ---- matmul ----------------------------------------------------------------------------------

MATMUL_SHAPES = [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)),
                 ((5, 2, 3), (3, 4)), ((2, 3), (5, 3, 4)), ((5, 2, 3), (5, 3, 4)),
                 ((1, 2, 3), (5, 3, 4)), ((2, 1, 2, 3), (3, 3, 2)), ((3,), (5, 3, 2))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", MATMUL_SHAPES, ids=str)
def test_matmul(shapes, dtype):
    a, b = rand(shapes[0], dtype, 1), rand(shapes[1], dtype, 2)
    check(lambda lib, x, y: (x @ y, lib.matmul(x, y), x.matmul(y)), a, b,
          rtol=1e-5 if dtype == "float32" else None)


def test_mm_and_bmm():
    check(lambda lib, x, y: (lib.mm(x, y), x.mm(y)), rand((2, 3), seed=1), rand((3, 4), seed=2))
    check(lambda lib, x, y: (lib.bmm(x, y), x.bmm(y)), rand((5, 2, 3), seed=1),
          rand((5, 3, 4), seed=2))
    check(lambda lib, x, y: x @ y, rand((2, 3), "float32", 1), rand((3, 2), "float32", 2),
          rtol=1e-5)


def test_matmul_errors():
    check_raises(RuntimeError, lambda lib, x, y: x @ y, np.zeros((2, 3)), np.zeros((2, 3)))
    check_raises(RuntimeError, lambda lib, x, y: lib.mm(x, y), np.zeros((2, 3, 1)),
                 np.zeros((3, 1)))
    check_raises(RuntimeError, lambda lib, x, y: lib.bmm(x, y), np.zeros((2, 3)), np.zeros((3, 2)))


def test_matmul_does_not_promote_dtypes():
    check_raises(RuntimeError, lambda lib, x, y: x @ y, np.zeros((2, 3)),
                 np.zeros((3, 2), np.float32))


def test_integer_matmul():
    check(lambda lib, x, y: x @ y, np.array([[1, 2], [3, 4]]), np.array([[5], [6]]), grad=False)


# ---- comparisons of whole tensors ------------------------------------------------------------

def test_equal_allclose_isclose():
    a = np.array([1.0, 2.0, np.nan, 4.0])
    b = np.array([1.0, 2.0 + 1e-9, np.nan, 4.1])
    check(lambda lib, x, y: (lib.equal(x, x), lib.equal(x[:2], x[:2].clone()), lib.equal(x, y),
                             x.equal(y), lib.allclose(x[:2], y[:2]), x.allclose(y),
                             lib.allclose(x, y, equal_nan=True, atol=0.2),
                             lib.isclose(x, y), x.isclose(y, rtol=0, atol=1e-6),
                             lib.isclose(x, y, equal_nan=True)), a, b, grad=False)


@pytest.mark.parametrize("lib", LIBS)
def test_results_of_no_grad_inputs_do_not_require_grad(lib):
    x = lib.tensor([1.0, 2.0])
    assert not (x * 2).requires_grad
    y = lib.tensor([1.0, 2.0], requires_grad=True)
    assert (x * y).requires_grad and not (x * y).is_leaf
    assert dtype_name((x > 1).dtype) == "bool"
