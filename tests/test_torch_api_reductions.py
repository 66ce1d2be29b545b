"""Reductions with PyTorch's ``dim=``/``keepdim=``: sum mean var std prod, min/max (0-d without
dim, ``(values, indices)`` with), amin amax argmin argmax, logsumexp, norm, cumsum, all any,
topk sort argsort. Values, gradients (ties included), dtypes and errors against PyTorch."""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from _torch_compare import LIBS, check, check_raises, core_gap, distinct, rand

DTYPES = ["float64", "float32"]


@st.composite
def shape_and_dim(draw, max_dims=3):
    """A shape of 1..max_dims dims and a dim argument for it: None, an int (maybe negative) or a
    tuple of distinct dims."""
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=max_dims)))
    nd = len(shape)
    kind = draw(st.sampled_from(["none", "int", "tuple"]))
    if kind == "none":
        return shape, None
    if kind == "int":
        return shape, draw(st.integers(-nd, nd - 1))
    dims = draw(st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd, unique=True))
    return shape, tuple(d - nd if draw(st.booleans()) else d for d in dims)


def _count(shape, dim):
    if dim is None:
        return int(np.prod(shape))
    dims = dim if isinstance(dim, tuple) else (dim,)
    return int(np.prod([shape[d] for d in dims]))


REDUCE = {
    "sum": lambda t, dim, keep: t.sum(dim=dim, keepdim=keep) if dim is not None else t.sum(),
    "mean": lambda t, dim, keep: t.mean(dim=dim, keepdim=keep) if dim is not None else t.mean(),
    "var": lambda t, dim, keep: t.var(dim=dim, keepdim=keep),
    "var0": lambda t, dim, keep: t.var(dim=dim, keepdim=keep, correction=0),
    "std": lambda t, dim, keep: t.std(dim=dim, keepdim=keep),
    "std_biased": lambda t, dim, keep: t.std(dim=dim, keepdim=keep, unbiased=False),
    "amax": lambda t, dim, keep: t.amax(dim=dim, keepdim=keep) if dim is not None else t.amax(),
    "amin": lambda t, dim, keep: t.amin(dim=dim, keepdim=keep) if dim is not None else t.amin(),
    "logsumexp": lambda t, dim, keep: t.logsumexp(dim=tuple(range(t.dim())) if dim is None
                                                  else dim, keepdim=keep),
    "norm": lambda t, dim, keep: t.norm(dim=dim, keepdim=keep),
    "norm1": lambda t, dim, keep: t.norm(p=1, dim=dim, keepdim=keep),
}


@settings(max_examples=30, deadline=None)
@given(sd=shape_and_dim(), name=st.sampled_from(sorted(REDUCE)), keep=st.booleans(),
       dtype=st.sampled_from(DTYPES), seed=st.integers(0, 1000))
def test_reductions_with_dim_and_keepdim(sd, name, keep, dtype, seed):
    shape, dim = sd
    if name.startswith(("var", "std")) and not name.endswith(("0", "biased")):
        assume(_count(shape, dim) > 1)      # one element with correction=1: PyTorch warns, nan
    if name.startswith("std"):
        assume(_count(shape, dim) > 1)      # std 0: test_std_of_constant_has_torch_gradient
    if name == "norm":
        assume(not (isinstance(dim, tuple) and len(dim) > 2))   # test_frobenius_norm_dims
    check(lambda lib, t: REDUCE[name](t, dim, keep), rand(shape, dtype, seed),
          rtol=1e-5 if dtype == "float32" else 1e-11)


def test_frobenius_norm_dims():
    # PyTorch's default norm ('fro') is a vector or a matrix norm: three dims are an error,
    # while a numeric p takes any number of dims
    check_raises(RuntimeError, lambda lib, t: t.norm(dim=(0, 1, 2)), rand((2, 2, 2), "float64", 1))
    check(lambda lib, t: t.norm(p=2, dim=(0, 1, -1)), rand((2, 2, 2), "float64", 1))


@pytest.mark.parametrize("dtype", DTYPES)
def test_reductions_as_functions_and_positional_dim(dtype):
    x = rand((3, 4), dtype, 1)
    check(lambda lib, t: (lib.sum(t), lib.sum(t, 1), lib.sum(t, dim=0, keepdim=True),
                          lib.mean(t, -1), lib.var(t, 0), lib.std(t), lib.var(t, 1, unbiased=False),
                          lib.std(t, dim=1, correction=2), lib.prod(t, 1), lib.amax(t, 1),
                          lib.amin(t, (0, 1)), lib.logsumexp(t, 1), lib.norm(t),
                          lib.cumsum(t, 1), t.sum(1), t.mean((0, 1)), t.var(1, keepdim=True),
                          t.std(0, True)), x,
          rtol=1e-5 if dtype == "float32" else None)


def test_integer_and_bool_reduction_dtypes():
    i32 = np.array([[1, 2, 3], [4, 5, 6]], np.int32)
    check(lambda lib, t: (t.sum(), t.sum(0), t.prod(), t.cumsum(1), t.amax(1), t.max(), t.min(0),
                          t.argmax(), (t > 2).sum(), (t > 2).sum(1), (t > 2).any(1),
                          (t > 2).all(), t.float().mean()), i32, grad=False)
    check_raises(RuntimeError, lambda lib, t: t.mean(), np.array([1, 2]))


@pytest.mark.parametrize("correction", [0, 1, 2])
def test_var_std_correction(correction):
    check(lambda lib, t: (t.var(correction=correction), t.std(correction=correction),
                          t.var(dim=1, correction=correction), t.std(1, correction=correction),
                          lib.var(t, unbiased=bool(correction == 1))), rand((3, 5), seed=4))


def test_std_of_constant_has_torch_gradient():
    check(lambda lib, t: (t.std(), t.var(dim=0), t.std(dim=1)), np.ones((3, 2)))


# ---- min / max ------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("keep", [False, True])
@pytest.mark.parametrize("name", ["max", "min"])
def test_min_max_with_dim_returns_values_and_indices(name, dim, keep, dtype):
    def fn(lib, t):
        res = getattr(t, name)(dim, keepdim=keep)
        values, indices = res
        fn_res = getattr(lib, name)(t, dim=dim, keepdim=keep)
        return res, res.values, res.indices, values, indices, fn_res, res[0], res[1]
    check(fn, distinct((3, 4), dtype, 2))


@pytest.mark.parametrize("name", ["max", "min", "amax", "amin"])
def test_min_max_without_dim_are_0d(name):
    check(lambda lib, t: (getattr(t, name)(), getattr(lib, name)(t)), distinct((3, 4), seed=3))


def test_max_dim_sends_the_gradient_to_the_returned_index_amax_splits_ties():
    x = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [5.0, -1.0, 5.0, 5.0]])
    check(lambda lib, t: t.max(dim=1), x)
    check(lambda lib, t: t.min(dim=0), x)
    check(lambda lib, t: t.amax(dim=1), x)
    check(lambda lib, t: t.amin(dim=0), x)
    check(lambda lib, t: t.max(), x)        # full max: PyTorch spreads over ties
    check(lambda lib, t: t.amax(), x)


def test_argmax_argmin_ties_take_the_first_index():
    x = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [5.0, -1.0, 5.0, -1.0]])
    check(lambda lib, t: (t.argmax(), t.argmin(), t.argmax(1), t.argmin(dim=1),
                          t.argmax(dim=0, keepdim=True), lib.argmax(t, 1), lib.argmin(t),
                          t.argmax(-1), t.max(1).indices, t.min(1).indices), x, grad=False)


def test_max_min_with_nan_propagate():
    x = np.array([[1.0, np.nan, 3.0], [0.0, 2.0, -1.0]])
    check(lambda lib, t: (t.amax(1), t.max(1).values, t.argmax(1), t.min(dim=1)), x)


def test_full_max_min_with_nan_send_the_gradient_to_the_nan():
    x = np.array([[1.0, np.nan, 3.0], [0.0, 2.0, -1.0]])
    check(lambda lib, t: (t.max(), t.min()), x)


@pytest.mark.parametrize("lib", LIBS)
def test_max_dim_result_is_a_named_pair(lib):
    res = lib.tensor([[1.0, 5.0], [7.0, 2.0]]).max(dim=1)
    assert len(res) == 2
    assert res.values.tolist() == [5.0, 7.0] and res.indices.tolist() == [1, 0]
    v, i = res
    assert v.tolist() == res[0].tolist() and i.tolist() == res[1].tolist()


# ---- logsumexp, norm, prod, cumsum ----------------------------------------------------------

def test_logsumexp_with_infinities():
    x = np.array([[-np.inf, -np.inf, -np.inf], [0.0, -np.inf, 1.0], [1000.0, 1000.0, -np.inf],
                  [np.inf, 0.0, 1.0]])
    check(lambda lib, t: (t.logsumexp(dim=1), lib.logsumexp(t, dim=1, keepdim=True)), x)
    check(lambda lib, t: t.logsumexp(dim=0), x[1:3])


@pytest.mark.parametrize("p", [1, 2, float("inf"), 3, 2.0])
def test_norm_p(p):
    x = np.array([[3.0, -4.0, 0.0], [0.0, 0.0, 0.0], [-1.0, 2.0, -2.0]])
    check(lambda lib, t: (t.norm(p=p, dim=1), t.norm(p, 1, True), lib.norm(t[0], p=p),
                          t[2].norm(p)), x)


def test_norm_default_is_frobenius_and_zero_has_zero_grad():
    check(lambda lib, t: (t.norm(), lib.norm(t, dim=(0, 1))), rand((2, 3), seed=5))
    check(lambda lib, t: t.norm(), np.zeros((2, 2)))


@pytest.mark.parametrize("zeros", [0, 1, 2])
def test_prod_gradient_with_zeros(zeros):
    x = np.array([[2.0, -3.0, 0.5, 4.0], [1.5, 2.0, -1.0, 3.0]])
    x[0, :zeros] = 0.0
    x[1, 1:1 + zeros] = 0.0
    check(lambda lib, t: (t.prod(), t.prod(dim=1), t.prod(0, keepdim=True), lib.prod(t, -1)), x)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_cumsum(dim):
    check(lambda lib, t: (t.cumsum(dim), lib.cumsum(t, dim=dim)), rand((3, 4), seed=6))
    check(lambda lib, t: t.cumsum(dim=dim), rand((3, 4), "float32", 6))


def test_all_any():
    x = np.array([[0.0, 1.0, 2.0], [3.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    check(lambda lib, t: (t.all(), t.any(), t.all(dim=1), t.any(1), t.all(0, keepdim=True),
                          (t > 0).all(1), (t > 5).any(), lib.all(t > -1), lib.any(t, dim=0)), x,
          grad=False)


# ---- topk, sort, argsort --------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("largest", [True, False])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_topk(dim, largest, dtype):
    def fn(lib, t):
        res = t.topk(2, dim=dim, largest=largest)
        return res, res.values, res.indices, lib.topk(t, 1, dim, largest)
    check(fn, distinct((3, 4), dtype, 7))


@pytest.mark.parametrize("lib", LIBS)
def test_topk_unsorted_gives_the_same_set(lib):
    t = lib.tensor(distinct((6,), seed=8))
    v, i = t.topk(3, sorted=False)
    assert sorted(v.tolist()) == sorted(t.topk(3).values.tolist())
    assert sorted(t[i].tolist()) == sorted(v.tolist())


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_sort_and_argsort(dim, descending):
    def fn(lib, t):
        res = t.sort(dim=dim, descending=descending)
        return (res, res.values, res.indices, t.argsort(dim=dim, descending=descending),
                lib.sort(t, dim), lib.argsort(t, dim))
    check(fn, distinct((3, 4), seed=9))
    check(lambda lib, t: (t.sort(), t.argsort()), np.array([3, 1, 2]), grad=False)


# ---- errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["sum", "mean", "var", "std", "amax", "cumsum", "softmax",
                                  "argmax", "max", "logsumexp", "prod", "all"])
def test_dim_out_of_range_raises_index_error(name):
    check_raises(IndexError, lambda lib, t: getattr(t, name)(dim=2), np.zeros((2, 3)))
    check_raises(IndexError, lambda lib, t: getattr(t, name)(dim=-3), np.zeros((2, 3)))


def test_repeated_dim_and_bad_k_raise_runtime_error():
    check_raises(RuntimeError, lambda lib, t: t.sum(dim=(0, 0)), np.zeros((2, 3)))
    check_raises(RuntimeError, lambda lib, t: t.topk(4, dim=1), np.zeros((2, 3)))
