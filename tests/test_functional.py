"""fastgrad.nn.functional: values against numpy formulas, stability, and argument checks."""

import numpy as np
import pytest

from fastgrad import Tensor
from fastgrad.nn import functional as F

from _tensor_cases import check_op

# written for float64 numerics: Python floats make float64 tensors here
pytestmark = pytest.mark.usefixtures("float64_default")


def test_activations_match_methods():
    x = Tensor(np.linspace(-3, 3, 7), requires_grad=True)
    for name in ["relu", "tanh", "sigmoid"]:
        np.testing.assert_array_equal(getattr(F, name)(x).data, getattr(x, name)().data)
    np.testing.assert_allclose(F.softmax(x).data.sum(), 1.0)
    np.testing.assert_allclose(np.exp(F.log_softmax(x).data), F.softmax(x).data)


def test_softmax_and_log_softmax_are_stable():
    x = Tensor([[1000.0, 0.0, -1000.0]], requires_grad=True)
    np.testing.assert_allclose(F.softmax(x, axis=1).data, [[1, 0, 0]])
    np.testing.assert_allclose(F.log_softmax(x, axis=1).data, [[0, -1000, -2000]])


def test_cross_entropy_is_stable_for_huge_logits():
    logits = Tensor([[1000.0, 0.0, -1000.0], [0.0, 1000.0, 999.0]], requires_grad=True)
    loss = F.cross_entropy(logits, np.array([0, 2]))
    expected = (0.0 + 1.0 + np.log1p(np.exp(-1.0))) / 2     # row 2: lse - z_t = log(1+e^-1) + 1
    np.testing.assert_allclose(loss.item(), expected)
    loss.backward()
    assert np.all(np.isfinite(logits.grad))
    np.testing.assert_allclose(logits.grad.sum(axis=1), 0.0, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cross_entropy_gradient(dtype):
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 5, 6)
    check_op(lambda z: F.cross_entropy(z, targets), [rng.standard_normal((6, 5)) * 3], dtype)
    check_op(lambda z: F.cross_entropy(z, list(targets)), [rng.standard_normal((6, 5))], dtype)


def test_cross_entropy_errors():
    z = Tensor(np.zeros((3, 4)), requires_grad=True)
    with pytest.raises(TypeError, match="integer"):
        F.cross_entropy(z, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(2,\)"):
        F.cross_entropy(z, np.array([0, 1]))
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        F.cross_entropy(z, np.array([0, 1, 4]))
    with pytest.raises(TypeError):
        F.cross_entropy(np.zeros((3, 4)), np.array([0, 1, 2]))


def test_mse_loss_with_constant_target_and_errors():
    x = Tensor([1.0, 2.0, 4.0], requires_grad=True)
    loss = F.mse_loss(x, np.array([1.0, 1.0, 1.0]))
    np.testing.assert_allclose(loss.item(), (0 + 1 + 9) / 3)
    loss.backward()
    np.testing.assert_allclose(x.grad, [0, 2 / 3, 2.0])
    with pytest.raises(TypeError):
        F.mse_loss(x, "a")
    with pytest.raises(TypeError):
        F.mse_loss(np.ones(3), np.ones(3))


def test_binary_cross_entropy_clamps_and_checks():
    p = Tensor([0.0, 1.0, 0.5], requires_grad=True)
    loss = F.binary_cross_entropy(p, np.array([1.0, 0.0, 1.0]))
    np.testing.assert_allclose(loss.item(), (100 + 100 + np.log(2)) / 3)
    loss.backward()
    assert np.all(np.isfinite(p.grad))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        F.binary_cross_entropy(Tensor([1.5]), np.array([1.0]))
    with pytest.raises(ValueError, match=r"\(1,\).*\(2,\)"):
        F.binary_cross_entropy(Tensor([0.5]), np.array([1.0, 0.0]))


def test_functional_rejects_non_tensors():
    for name in ["relu", "tanh", "sigmoid", "softmax", "log_softmax"]:
        with pytest.raises(TypeError, match="fastgrad.Tensor"):
            getattr(F, name)(np.ones(3))
    with pytest.raises(TypeError):
        F.linear(np.ones((2, 3)), Tensor(np.ones((4, 3))))
    with pytest.raises(ValueError, match=r"\(5,\).*\(4, 3\)"):
        F.linear(Tensor(np.ones((2, 3))), Tensor(np.ones((4, 3))), Tensor(np.ones(5)))


def test_linear_with_mixed_dtypes_promotes_and_casts_grads_back():
    x = Tensor(np.ones((2, 3), np.float32), requires_grad=True)
    w = Tensor(np.ones((4, 3), np.float32), requires_grad=True)
    b = Tensor(np.ones(4), requires_grad=True)                      # float64
    out = F.linear(x, w, b)
    assert out.dtype == np.float64
    out.sum().backward()
    assert x.grad.dtype == np.float32 and w.grad.dtype == np.float32
    assert b.grad.dtype == np.float64
    np.testing.assert_array_equal(w.grad, np.full((4, 3), 2.0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_compiled_path_matches_numpy_formula(dtype):
    # the compiled row loops (C-contiguous float logits, any integer targets) against the
    # numpy formula; non-contiguous logits and int32/uint8 targets take the same path
    rng = np.random.default_rng(3)
    z = (rng.standard_normal((40, 7)) * 4).astype(dtype)
    t = rng.integers(0, 7, 40)
    lse = np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1)
    ref = np.mean(lse - z[np.arange(40), t])
    p = np.exp(z - lse[:, None])
    p[np.arange(40), t] -= 1
    for logits, tt in [(z, t), (np.asfortranarray(z), t.astype(np.int32)),
                       (z, t.astype(np.uint8)), (z, np.stack([t, t], 1)[:, 0])]:
        x = Tensor(logits, requires_grad=True)
        loss = F.cross_entropy(x, tt)
        assert loss.dtype == dtype
        loss.backward()
        tol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(loss.item(), ref, rtol=tol)
        np.testing.assert_allclose(x.grad, p / 40, rtol=tol, atol=tol / 40)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_backward_in_place_does_not_touch_shared_gradients(dtype):
    # relu's backward writes into its gradient buffer only when the sweep owns it: here the
    # buffer is shared with another input of an add, whose gradient must stay intact
    x = Tensor(np.array([-1.0, 2.0, -3.0, 4.0], dtype=dtype), requires_grad=True)
    w = Tensor(np.zeros(4, dtype=dtype), requires_grad=True)
    (x.relu() + w).backward(np.array([1.0, 2.0, 3.0, 4.0], dtype=dtype))
    np.testing.assert_array_equal(w.grad, [1, 2, 3, 4])
    np.testing.assert_array_equal(x.grad, [0, 2, 0, 4])
    y = x * 1.0
    ((y.relu() * 3.0) + y).sum().backward()
    np.testing.assert_array_equal(x.grad, [1, 6, 1, 8])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_relu_and_bias_add_match_numpy_bits(dtype):
    h = np.array([np.nan, -0.0, 0.0, -np.inf, np.inf, 1.5, -1.5, -np.nan], dtype=dtype)
    r = Tensor(h).relu().data
    ref = np.maximum(h, 0.0)
    assert r.dtype == dtype
    np.testing.assert_array_equal(r, ref)
    np.testing.assert_array_equal(np.signbit(r), np.signbit(ref))
    np.testing.assert_array_equal(Tensor(h.reshape(2, 4).T).relu().data, ref.reshape(2, 4).T)
    rng = np.random.default_rng(5)
    x, w, b = (rng.standard_normal(s).astype(dtype) for s in [(6, 5, 4), (3, 4), (3,)])
    np.testing.assert_array_equal(F.linear(Tensor(x), Tensor(w), Tensor(b)).data, x @ w.T + b)
