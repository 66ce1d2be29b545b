"""fastgrad.nn.functional against torch.nn.functional: values, gradients, dtypes, the edge
points where PyTorch defines a particular derivative, and the errors for bad input."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastgrad
import fastgrad.nn.functional as F
from nn_helpers import close, ones, pair, torch, zeros

TF = torch.nn.functional

ACTIVATIONS = [
    ("relu", {}), ("relu6", {}), ("leaky_relu", {}), ("leaky_relu", {"negative_slope": 0.2}),
    ("elu", {}), ("elu", {"alpha": 0.5}), ("gelu", {}), ("gelu", {"approximate": "tanh"}),
    ("silu", {}), ("mish", {}), ("softplus", {}), ("softplus", {"beta": 2.0, "threshold": 3.0}),
    ("hardswish", {}), ("tanh", {}), ("sigmoid", {}),
]

# points where the derivative is a convention: both sides of each kink, and the kinks
EDGES = np.array([-30.0, -4.0, -3.0, -2.5, -1.0, -1e-300, 0.0, 1e-300, 0.5, 1.5, 3.0, 4.0,
                  6.0, 7.0, 10.0, 20.0, 25.0, 60.0])


def check_unary(name, kwargs, x, upstream=None):
    ours, theirs = pair(x, requires_grad=True)
    out = getattr(F, name)(ours, **kwargs)
    tout = getattr(TF, name)(theirs, **kwargs)
    close(out, tout)
    g = np.random.default_rng(0).standard_normal(x.shape) if upstream is None else upstream
    out.backward(fastgrad.tensor(g.astype(x.dtype)))
    tout.backward(torch.tensor(g.astype(x.dtype)))
    close(ours.grad, theirs.grad)


@pytest.mark.parametrize("name,kwargs", ACTIVATIONS)
def test_activation_at_its_edge_points(name, kwargs):
    check_unary(name, kwargs, EDGES.copy(), upstream=np.ones_like(EDGES))


@pytest.mark.parametrize("name,kwargs", ACTIVATIONS)
@settings(max_examples=20, deadline=None)
@given(x=hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=4),
                    elements=st.floats(-8, 8)))
def test_activation_matches_torch(name, kwargs, x):
    check_unary(name, kwargs, x)


@pytest.mark.parametrize("name,kwargs", ACTIVATIONS)
def test_activation_in_float32(name, kwargs):
    x = np.random.default_rng(1).standard_normal((3, 5)).astype(np.float32) * 3
    check_unary(name, kwargs, x)


def test_gelu_refuses_other_approximations():
    with pytest.raises(RuntimeError, match="approximate"):
        F.gelu(fastgrad.tensor([1.0]), approximate="erf")


def test_inplace_flag_gives_the_same_result():
    x = fastgrad.tensor([-1.0, 2.0])
    assert F.relu(x, inplace=True).tolist() == [0.0, 2.0]


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dim", [0, 1, -1, 2])
def test_softmax_along_each_dim(fn, dim):
    x = np.random.default_rng(2).standard_normal((2, 3, 4))
    check_unary(fn, {"dim": dim}, x)


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
def test_softmax_without_dim_warns_and_picks_pytorchs(fn):
    for shape in [(4,), (2, 3), (2, 3, 4)]:
        x = np.random.default_rng(3).standard_normal(shape)
        ours, theirs = pair(x)
        with pytest.warns(UserWarning, match="Implicit dimension"):
            out = getattr(F, fn)(ours)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            close(out, getattr(TF, fn)(theirs))


def test_softmax_dtype_argument():
    ours, theirs = pair(np.arange(3.0, dtype=np.float32))
    close(F.softmax(ours, 0, dtype=fastgrad.float64), TF.softmax(theirs, 0, dtype=torch.float64))


def test_linear_matches_torch():
    rng = np.random.default_rng(4)
    x, tx = pair(rng.standard_normal((5, 3)), requires_grad=True)
    w, tw = pair(rng.standard_normal((2, 3)), requires_grad=True)
    b, tb = pair(rng.standard_normal(2), requires_grad=True)
    out, tout = F.linear(x, w, b), TF.linear(tx, tw, tb)
    close(out, tout)
    out.sum().backward()
    tout.sum().backward()
    for ours, theirs in [(x, tx), (w, tw), (b, tb)]:
        close(ours.grad, theirs.grad)
    close(F.linear(x, w), TF.linear(tx, tw))


# -- dropout -----------------------------------------------------------------------------------

def test_dropout_masks_and_scales_like_torch():
    np.random.seed(0)
    x, tx = pair(np.random.default_rng(5).standard_normal((200, 50)), requires_grad=True)
    out = F.dropout(x, 0.3)
    kept = out.numpy() != 0
    assert 0.65 < kept.mean() < 0.75
    # torch's formula with the same mask: x * (mask / (1 - p))
    tout = tx * (torch.from_numpy(kept.astype(np.float64)) / (1 - 0.3))
    close(out, tout)
    out.sum().backward()
    tout.sum().backward()
    close(x.grad, tx.grad)


def test_dropout_float32_scale_is_computed_in_float32():
    np.random.seed(1)
    x, tx = pair(np.ones((50, 50), np.float32))
    out = F.dropout(x, 0.1)
    kept = torch.from_numpy((out.numpy() != 0).astype(np.float32))
    assert np.array_equal(out.numpy(), (tx * (kept / (1 - 0.1))).numpy())


def test_dropout_edge_cases():
    x = ones(3, 4)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    assert F.dropout(x, 1.0).tolist() == [[0.0] * 4] * 3
    for p in [-0.1, 1.1]:
        with pytest.raises(ValueError, match="dropout probability"):
            F.dropout(x, p)


def test_dropout_is_reproducible_from_the_seed():
    x = ones(10, 10)
    np.random.seed(7)
    first = F.dropout(x).numpy().copy()
    np.random.seed(7)
    assert np.array_equal(F.dropout(x).numpy(), first)


# -- embedding, one_hot ------------------------------------------------------------------------

@pytest.mark.parametrize("padding_idx", [None, 2, -1])
def test_embedding_values_and_gradients(padding_idx):
    rng = np.random.default_rng(6)
    w, tw = pair(rng.standard_normal((5, 3)), requires_grad=True)
    idx = np.array([[0, 2, 2], [4, 1, 2]])
    out = F.embedding(fastgrad.tensor(idx), w, padding_idx)
    tout = TF.embedding(torch.tensor(idx), tw, padding_idx)
    close(out, tout)
    g = rng.standard_normal(out.shape)
    out.backward(fastgrad.tensor(g))
    tout.backward(torch.tensor(g))
    close(w.grad, tw.grad)


def test_embedding_errors():
    w = fastgrad.tensor(np.zeros((3, 2)))
    with pytest.raises(IndexError):
        F.embedding(fastgrad.tensor([3]), w)
    with pytest.raises(RuntimeError):
        F.embedding(fastgrad.tensor([1.0]), w)
    with pytest.raises(AssertionError):
        F.embedding(fastgrad.tensor([1]), w, padding_idx=3)


def test_one_hot_matches_torch():
    idx = np.array([[0, 3], [1, 1]])
    for n in [-1, 5]:
        ours = F.one_hot(fastgrad.tensor(idx), n)
        theirs = TF.one_hot(torch.tensor(idx), n)
        assert ours.dtype == fastgrad.int64
        assert np.array_equal(ours.numpy(), theirs.numpy())
    assert F.one_hot(fastgrad.tensor(np.zeros(0, np.int64)), 3).shape == (0, 3)


@pytest.mark.parametrize("data,n", [([1.0], -1), (np.array([1], np.int32), -1), ([-1], -1),
                                    ([3], 2), (np.zeros(0, np.int64), -1)])
def test_one_hot_errors_as_torch(data, n):
    with pytest.raises(RuntimeError):
        TF.one_hot(torch.tensor(np.asarray(data)), n)
    with pytest.raises(RuntimeError):
        F.one_hot(fastgrad.tensor(np.asarray(data)), n)


# -- pad, normalize ----------------------------------------------------------------------------

@pytest.mark.parametrize("padding,mode,value", [
    ((1, 2), "constant", None), ((1, 2, 0, 1), "constant", 3.5), ((-1, 2), "constant", None),
    ((0, 0, 1, -1, 2, 0), "constant", -1.0), ((2, 1), "reflect", None),
    ((1, 2, 2, 1), "reflect", None), ((2, 3), "replicate", None),
    ((1, 1, 2, 0), "replicate", None), ((2, 1), "circular", None),
    ((1, 2, 1, 0), "circular", None)])
def test_pad_matches_torch(padding, mode, value):
    x = np.random.default_rng(7).standard_normal((2, 3, 4))
    if mode == "circular" and len(padding) == 4:
        x = x[None]   # torch's circular mode pads 2 dims of a 4-D input
    ours, theirs = pair(x, requires_grad=True)
    kwargs = {} if value is None else {"value": value}
    out = F.pad(ours, padding, mode=mode, **kwargs)
    tout = TF.pad(theirs, padding, mode=mode, **kwargs)
    close(out, tout)
    g = np.random.default_rng(8).standard_normal(tuple(out.shape))
    out.backward(fastgrad.tensor(g))
    tout.backward(torch.tensor(g))
    close(ours.grad, theirs.grad)


def test_pad_errors():
    x = zeros(2, 3)
    with pytest.raises(RuntimeError, match="divisible by 2"):
        F.pad(x, (1,))
    with pytest.raises(RuntimeError, match="two times"):
        F.pad(x, (1, 1, 1, 1, 1, 1))
    with pytest.raises(NotImplementedError):
        F.pad(x, (1, 1), mode="mirror")
    with pytest.raises(RuntimeError):
        F.pad(x, (3, 0), mode="reflect")


@pytest.mark.parametrize("p,dim", [(2.0, 1), (1.0, 0), (3.0, -1)])
def test_normalize_matches_torch(p, dim):
    x = np.random.default_rng(9).standard_normal((3, 4))
    x[0] = 0.0   # a zero row: divided by eps
    ours, theirs = pair(x, requires_grad=True)
    out, tout = F.normalize(ours, p, dim), TF.normalize(theirs, p, dim)
    close(out, tout)
    g = np.random.default_rng(10).standard_normal(x.shape)
    out.backward(fastgrad.tensor(g))
    tout.backward(torch.tensor(g))
    close(ours.grad, theirs.grad)


# -- layer_norm, batch_norm --------------------------------------------------------------------

@pytest.mark.parametrize("shape,normalized", [((4, 5), (5,)), ((2, 3, 4), (3, 4)),
                                              ((3, 6), 6)])
@pytest.mark.parametrize("affine", [False, True])
def test_layer_norm_matches_torch(shape, normalized, affine):
    rng = np.random.default_rng(11)
    x, tx = pair(rng.standard_normal(shape) * 3 + 1, requires_grad=True)
    ns = (normalized,) if isinstance(normalized, int) else normalized
    w, tw = pair(rng.standard_normal(ns), requires_grad=True)
    b, tb = pair(rng.standard_normal(ns), requires_grad=True)
    args, targs = ((w, b), (tw, tb)) if affine else ((None, None), (None, None))
    out = F.layer_norm(x, normalized if isinstance(normalized, tuple) else (normalized,), *args)
    tout = TF.layer_norm(tx, list(ns), *targs)
    close(out, tout)
    g = rng.standard_normal(shape)
    out.backward(fastgrad.tensor(g))
    tout.backward(torch.tensor(g))
    close(x.grad, tx.grad)
    if affine:
        close(w.grad, tw.grad)
        close(b.grad, tb.grad)


def test_layer_norm_shape_error():
    with pytest.raises(RuntimeError, match="normalized_shape"):
        F.layer_norm(zeros(3, 4), (3,))


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5)])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_matches_torch(shape, training):
    rng = np.random.default_rng(12)
    x, tx = pair(rng.standard_normal(shape) * 2 + 0.5, requires_grad=True)
    w, tw = pair(rng.standard_normal(3), requires_grad=True)
    b, tb = pair(rng.standard_normal(3), requires_grad=True)
    rm, trm = pair(rng.standard_normal(3))
    rv, trv = pair(rng.random(3) + 0.5)
    out = F.batch_norm(x, rm, rv, w, b, training, 0.2, 1e-3)
    tout = TF.batch_norm(tx, trm, trv, tw, tb, training, 0.2, 1e-3)
    close(out, tout)
    close(rm, trm)
    close(rv, trv)
    g = rng.standard_normal(shape)
    out.backward(fastgrad.tensor(g))
    tout.backward(torch.tensor(g))
    for ours, theirs in [(x, tx), (w, tw), (b, tb)]:
        close(ours.grad, theirs.grad)


def test_batch_norm_needs_two_values_per_channel_in_training():
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        F.batch_norm(zeros(1, 3), zeros(3), ones(3), training=True)
