"""fastgrad.autograd.grad and autograd.functional's vjp, jvp and jacobian on Tensors, first
order, against PyTorch's: the same values, the same structure of results (tensors or tuples,
nested as PyTorch nests them), the same errors; the caller's .grad never changes."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fastgrad
from fastgrad.autograd import functional as AF

torch = pytest.importorskip("torch", reason="PyTorch not installed: comparison skipped")

RNG = np.random.default_rng(15)


def both(*arrays, requires_grad=True):
    """The same float64 data as fastgrad and torch leaves."""
    fg = [fastgrad.tensor(a, requires_grad=requires_grad) for a in arrays]
    th = [torch.tensor(a, requires_grad=requires_grad) for a in arrays]
    return fg, th


def close(ours, theirs):
    if theirs is None:
        assert ours is None
        return
    if isinstance(theirs, (tuple, list)):     # (PyTorch's vectorized forward mode gives lists)
        assert isinstance(ours, tuple) and len(ours) == len(theirs)
        for o, t in zip(ours, theirs):
            close(o, t)
        return
    assert isinstance(ours, fastgrad.Tensor)
    assert tuple(ours.shape) == tuple(theirs.shape)
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-12, atol=1e-14)


def model(lib, x, w1, b1, w2):
    """A small MLP's loss and hidden layer (the same code for both libraries)."""
    h = (x @ w1 + b1).tanh()
    return ((h @ w2) ** 2).mean(), h


def mlp_arrays():
    return (RNG.standard_normal((5, 3)), RNG.standard_normal((3, 4)), RNG.standard_normal(4),
            RNG.standard_normal((4, 2)))


# --- autograd.grad ----------------------------------------------------------------------------

def test_grad_of_a_loss_equals_torchs_and_leaves_dot_grad_alone():
    (x, w1, b1, w2), (tx, tw1, tb1, tw2) = both(*mlp_arrays())
    loss, h = model(fastgrad, x, w1, b1, w2)
    tloss, th = model(torch, tx, tw1, tb1, tw2)
    ours = fastgrad.autograd.grad(loss, [w1, b1, h, w2])
    theirs = torch.autograd.grad(tloss, [tw1, tb1, th, tw2])
    close(ours, theirs)
    assert all(p.grad is None for p in (x, w1, b1, w2))
    loss.backward()                     # the graph is kept: backward still works afterwards
    close(w1.grad, theirs[0])


def test_several_outputs_with_grad_outputs():
    (x, w1, b1, w2), (tx, tw1, tb1, tw2) = both(*mlp_arrays())
    loss, h = model(fastgrad, x, w1, b1, w2)
    tloss, th = model(torch, tx, tw1, tb1, tw2)
    v = RNG.standard_normal(h.shape)
    ours = fastgrad.autograd.grad([loss, h], (w1, x), grad_outputs=[None, fastgrad.tensor(v)])
    theirs = torch.autograd.grad([tloss, th], (tw1, tx), grad_outputs=[None, torch.tensor(v)])
    close(ours, theirs)


def test_unused_inputs_and_errors_as_pytorch():
    (x, y), (tx, ty) = both(RNG.standard_normal(3), RNG.standard_normal(2))
    out, tout = (x * 2).sum(), (tx * 2).sum()
    for kwargs in ({}, {"allow_unused": False}):
        with pytest.raises(RuntimeError, match="appears to not have been used"):
            fastgrad.autograd.grad(out, [x, y], **kwargs)
    close(fastgrad.autograd.grad(out, [x, y], allow_unused=True),
          torch.autograd.grad(tout, [tx, ty], allow_unused=True, retain_graph=True))
    close(fastgrad.autograd.grad(out, [x, y], materialize_grads=True),
          torch.autograd.grad(tout, [tx, ty], materialize_grads=True, retain_graph=True))
    with pytest.raises(RuntimeError, match="implicitly created only for scalar outputs"):
        fastgrad.autograd.grad(x * 2, x)
    with pytest.raises(RuntimeError, match="does not require grad"):
        fastgrad.autograd.grad(out, fastgrad.tensor([1.0]))
    with pytest.raises(RuntimeError, match="does not require grad"):
        fastgrad.autograd.grad(fastgrad.tensor([1.0]).sum(), x)
    with pytest.raises(RuntimeError, match="Mismatch in shape"):
        fastgrad.autograd.grad(x * 2, x, grad_outputs=fastgrad.ones(4))
    # the gradient of a linear function is constant: not recorded, in PyTorch either
    (g,) = fastgrad.autograd.grad(out, x, create_graph=True)
    (tg,) = torch.autograd.grad(tout, tx, create_graph=True)
    assert g.requires_grad == tg.requires_grad


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(1, 4), cols=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_grad_matches_backward_on_random_shapes(rows, cols, seed):
    """grad() returns exactly what backward() accumulates, for leaves used several times."""
    rng = np.random.default_rng(seed)
    a = fastgrad.tensor(rng.standard_normal((rows, cols)), requires_grad=True)
    b = fastgrad.tensor(rng.standard_normal(cols), requires_grad=True)
    out = ((a * b).sigmoid() @ b.exp() + (a - b).abs().sum(1)).sum()
    ga, gb = fastgrad.autograd.grad(out, [a, b])
    out.backward()
    np.testing.assert_array_equal(ga.numpy(), a.grad.numpy())
    np.testing.assert_array_equal(gb.numpy(), b.grad.numpy())


def test_a_training_loop_written_with_autograd_grad():
    """SGD on a regression with grads from autograd.grad, step for step as PyTorch's."""
    X, y = RNG.standard_normal((32, 3)), RNG.standard_normal((32, 1))
    (w, b), (tw, tb) = both(RNG.standard_normal((3, 1)) * 0.1, np.zeros(1))
    Xf, yf, Xt, yt = fastgrad.tensor(X), fastgrad.tensor(y), torch.tensor(X), torch.tensor(y)
    for _ in range(20):
        loss = ((Xf @ w + b - yf) ** 2).mean()
        tloss = ((Xt @ tw + tb - yt) ** 2).mean()
        gw, gb = fastgrad.autograd.grad(loss, [w, b])
        tgw, tgb = torch.autograd.grad(tloss, [tw, tb])
        with fastgrad.no_grad():
            w -= 0.1 * gw
            b -= 0.1 * gb
        with torch.no_grad():
            tw -= 0.1 * tgw
            tb -= 0.1 * tgb
        assert loss.item() == pytest.approx(tloss.item(), rel=1e-12)
    close(w, tw)


# --- autograd.functional ---------------------------------------------------------------------

def two_outputs(x, y):
    return (x @ y).tanh() * 2, (x * x).sum()


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("strategy", ["reverse-mode", "forward-mode"])
def test_jacobian_nesting_and_values(strategy):
    (a, b), (ta, tb) = both(RNG.standard_normal((3, 2)), RNG.standard_normal(2),
                            requires_grad=False)
    vectorize = strategy == "forward-mode"     # (PyTorch's forward mode needs it)
    close(AF.jacobian(two_outputs, (a, b), strategy=strategy),
          torch.autograd.functional.jacobian(two_outputs, (ta, tb), strategy=strategy,
                                             vectorize=vectorize))
    close(AF.jacobian(lambda t: t.exp() * t.sum(), b, strategy=strategy),
          torch.autograd.functional.jacobian(lambda t: t.exp() * t.sum(), tb,
                                             strategy=strategy, vectorize=vectorize))
    assert a.grad is None and not a.requires_grad


def test_vjp_and_jvp():
    (a, b), (ta, tb) = both(RNG.standard_normal((3, 2)), RNG.standard_normal(2),
                            requires_grad=False)
    v = (RNG.standard_normal(3), np.array(0.7))
    close(AF.vjp(two_outputs, (a, b), tuple(fastgrad.tensor(t) for t in v)),
          torch.autograd.functional.vjp(two_outputs, (ta, tb), tuple(torch.tensor(t) for t in v)))
    u = (RNG.standard_normal((3, 2)), RNG.standard_normal(2))
    close(AF.jvp(two_outputs, (a, b), tuple(fastgrad.tensor(t) for t in u)),
          torch.autograd.functional.jvp(two_outputs, (ta, tb), tuple(torch.tensor(t) for t in u)))
    close(AF.vjp(lambda t: (t * t).sum(), b), torch.autograd.functional.vjp(
        lambda t: (t * t).sum(), tb))


def test_functional_errors_as_pytorch():
    b = fastgrad.tensor(RNG.standard_normal(2))
    with pytest.raises(RuntimeError, match="can only be None"):
        AF.vjp(lambda t: t * 2, b)
    with pytest.raises(RuntimeError, match="independent of input 1"):
        AF.jacobian(lambda s, t: s * 2, (b, b.clone()), strict=True)
    zero = AF.jacobian(lambda s, t: s * 2, (b, b.clone()))[1]
    assert not zero.numpy().any()
    with pytest.raises(TypeError, match="Tensor or a tuple of Tensors"):
        AF.jacobian(lambda t: t, [b])
    out, g = AF.vjp(lambda t: (t * t).sum(), b, create_graph=True)
    assert g.requires_grad and out.requires_grad
