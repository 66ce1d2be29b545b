"""Training loops written the way PyTorch users write them by hand (no nn, no optim): manual SGD
with ``p -= lr * p.grad`` under ``no_grad`` and ``p.grad.zero_()``, the older ``.data`` idiom,
masks and integer labels. Each script runs under torch and fastgrad from the same float64
weights, and the losses must agree at every step (1e-9 relative), as must the final weights."""
import numpy as np
import pytest

from _torch_compare import assert_close_arrays, fg, to_numpy, torch

RTOL = 1e-9


def _blobs(n=48, d=4, classes=3, seed=0):
    """Three Gaussian blobs: float64 features and int64 labels."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    centers = rng.normal(0, 2.0, (classes, d))
    x = centers[y] + rng.normal(0, 1.0, (n, d))
    return x, y.astype(np.int64)


def _init(shapes, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.normal(0, 1 / np.sqrt(s[0]), s) for s in shapes]


def mlp_classifier(torch, x_np, y_np, weights, steps=25, lr=0.3):
    """A two-layer tanh MLP with a hand-written cross-entropy, trained by manual SGD."""
    X = torch.tensor(x_np)
    Y = torch.tensor(y_np)
    W1, b1, W2, b2 = (torch.tensor(w, requires_grad=True) for w in weights)
    params = [W1, b1, W2, b2]
    losses, accs = [], []
    for step in range(steps):
        h = torch.tanh(X @ W1 + b1)
        logits = h @ W2 + b2
        logp = logits.log_softmax(dim=1)
        loss = -logp.gather(1, Y.unsqueeze(1)).mean()
        loss.backward()
        with torch.no_grad():
            for p in params:
                p -= lr * p.grad
                p.grad.zero_()
        losses.append(loss.item())
        accs.append((logits.argmax(dim=1) == Y).float().mean().item())
    return losses, accs, params


def test_manual_sgd_mlp_follows_torch_step_by_step():
    x, y = _blobs()
    weights = _init([(4, 16), (16,), (16, 3), (3,)])
    want_losses, want_accs, want_params = mlp_classifier(torch, x, y, weights)
    got_losses, got_accs, got_params = mlp_classifier(fg, x, y, weights)
    assert want_losses[-1] < 0.6 * want_losses[0]            # the script does learn
    for step, (g, w) in enumerate(zip(got_losses, want_losses)):
        assert g == pytest.approx(w, rel=RTOL), f"step {step}: loss {g} != torch's {w}"
    assert got_accs == want_accs
    for g, w in zip(got_params, want_params):
        assert_close_arrays(to_numpy(g), to_numpy(w), "float64", RTOL, "final weight")
        assert_close_arrays(to_numpy(g.grad), to_numpy(w.grad), "float64", RTOL, "last grad")


def regression_data_idiom(torch, x_np, t_np, weights, steps=30, lr=0.05):
    """Old-style PyTorch: relu MLP regression, updates through ``.data`` and ``grad = None``."""
    x = torch.tensor(x_np)
    target = torch.tensor(t_np)
    w1, w2 = (torch.tensor(w, requires_grad=True) for w in weights)
    losses = []
    for _ in range(steps):
        pred = (x.mm(w1)).clamp(min=0).mm(w2)
        loss = (pred - target).pow(2).sum() / x.shape[0]
        losses.append(loss.item())
        loss.backward()
        w1.data -= lr * w1.grad.data
        w2.data.sub_(lr * w2.grad.data)
        w1.grad = None
        w2.grad.data.zero_()
    return losses, [w1, w2]


def test_data_idiom_regression_follows_torch():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(32, 5))
    t = np.sin(x[:, :2]) + 0.1 * rng.normal(size=(32, 2))
    weights = _init([(5, 12), (12, 2)], seed=4)
    want, want_w = regression_data_idiom(torch, x, t, weights)
    got, got_w = regression_data_idiom(fg, x, t, weights)
    assert want[-1] < want[0]
    np.testing.assert_allclose(got, want, rtol=RTOL)
    for g, w in zip(got_w, want_w):
        assert_close_arrays(to_numpy(g), to_numpy(w), "float64", RTOL, "final weight")


def logistic_regression(torch, x_np, y_np, steps=40, lr=0.5):
    """Binary logistic regression with a clamped hand-written BCE, bool masks for the per-class
    loss report, in-place ``sub_`` updates, and a float32 copy for evaluation."""
    x = torch.tensor(x_np)
    y = torch.tensor(y_np)
    w = torch.tensor(np.zeros(x_np.shape[1]), requires_grad=True)
    b = torch.tensor(0.0, dtype=torch.float64, requires_grad=True)
    history = []
    for _ in range(steps):
        p = torch.sigmoid(x @ w + b).clamp(1e-7, 1 - 1e-7)
        yf = y.to(p.dtype)
        loss = -(yf * p.log() + (1 - yf) * (1 - p).log()).mean()
        if w.grad is not None:
            w.grad.zero_()
            b.grad.zero_()
        loss.backward()
        with torch.no_grad():
            w.sub_(lr * w.grad)
            b.sub_(lr * b.grad)
        pos = y == 1
        history.append((loss.item(), p[pos].mean().item(), p[~pos].mean().item()))
    correct = ((x.float() @ w.detach().float() + b.item() > 0) == (y == 1)).sum().item()
    return history, correct, w


def test_logistic_regression_with_masks_follows_torch():
    x, y = _blobs(n=60, d=3, classes=2, seed=5)
    want, want_correct, want_w = logistic_regression(torch, x, y)
    got, got_correct, got_w = logistic_regression(fg, x, y)
    assert want[-1][0] < want[0][0]
    np.testing.assert_allclose(np.array(got), np.array(want), rtol=RTOL)
    assert got_correct == want_correct and isinstance(got_correct, int)
    assert_close_arrays(to_numpy(got_w), to_numpy(want_w), "float64", RTOL, "w")
