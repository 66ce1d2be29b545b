"""Losses (functional and modules) against torch: every reduction and option, values and
gradients, PyTorch's error types for bad shapes and targets, and a training loop whose loss
curve follows torch's from the same weights."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastgrad
import fastgrad.nn.functional as F
from fastgrad import nn, optim
from nn_helpers import close, copy_weights, grads_close, ones, pair, torch, zeros

TF = torch.nn.functional
REDUCTIONS = ["mean", "sum", "none"]


def run(fn, tfn, input, target, kwargs=None, tkwargs=None, target_grad=False):
    """Our loss and torch's on the same data: equal values, input (and target) gradients."""
    kwargs = kwargs or {}
    tkwargs = kwargs if tkwargs is None else tkwargs
    x, tx = pair(input, requires_grad=True)
    t, tt = pair(target, requires_grad=target_grad)
    out, tout = fn(x, t, **kwargs), tfn(tx, tt, **tkwargs)
    close(out, tout)
    g = np.random.default_rng(0).standard_normal(tuple(out.shape)).astype(input.dtype)
    out.backward(fastgrad.tensor(g))
    tout.backward(torch.tensor(g))
    close(x.grad, tx.grad)
    if target_grad:
        close(t.grad, tt.grad)
    return out


def weights(kw):
    """kwargs with numpy values as fastgrad Tensors, and the same for torch."""
    ours = {k: fastgrad.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
    theirs = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
    return ours, theirs


# -- regression losses -------------------------------------------------------------------------

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name,kwargs", [("mse_loss", {}), ("l1_loss", {}),
                                         ("smooth_l1_loss", {}), ("smooth_l1_loss", {"beta": 0.3}),
                                         ("smooth_l1_loss", {"beta": 0.0}), ("huber_loss", {}),
                                         ("huber_loss", {"delta": 0.4})])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_regression_losses(name, kwargs, reduction, dtype):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((4, 3)).astype(dtype)
    b = rng.standard_normal((4, 3)).astype(dtype)
    b[0, 0] = a[0, 0]        # d = 0 exactly, where |d| has its kink
    run(getattr(F, name), getattr(TF, name), a, b, dict(kwargs, reduction=reduction),
        target_grad=True)


def test_regression_losses_broadcast_with_torchs_warning():
    a = np.random.default_rng(2).standard_normal((3, 1))
    b = np.random.default_rng(3).standard_normal((3,))
    for name in ["mse_loss", "l1_loss"]:
        with pytest.warns(UserWarning, match="different to the input size"):
            ours = getattr(F, name)(fastgrad.tensor(a), fastgrad.tensor(b))
        with pytest.warns(UserWarning):
            close(ours, getattr(TF, name)(torch.tensor(a), torch.tensor(b)))


def test_bad_reduction_and_bad_parameters():
    a = zeros(3)
    for fn in [F.mse_loss, F.l1_loss, F.smooth_l1_loss, F.huber_loss]:
        with pytest.raises(ValueError, match="not a valid value for reduction"):
            fn(a, a, reduction="avg")
    with pytest.raises(RuntimeError):
        F.huber_loss(a, a, delta=0.0)
    with pytest.raises(RuntimeError):
        F.smooth_l1_loss(a, a, beta=-1.0)
    with pytest.raises(RuntimeError), pytest.warns(UserWarning, match="target size"):
        F.mse_loss(zeros(3), zeros(2))


def test_legacy_size_average_and_reduce():
    a, b = np.arange(4.0), np.ones(4)
    with pytest.warns(UserWarning):
        ours = F.mse_loss(fastgrad.tensor(a), fastgrad.tensor(b), size_average=False)
    with pytest.warns(UserWarning):
        close(ours, TF.mse_loss(torch.tensor(a), torch.tensor(b), size_average=False))


# -- cross-entropy and nll -----------------------------------------------------------------------

CE_OPTIONS = [{}, {"ignore_index": 1}, {"label_smoothing": 0.2},
              {"weight": np.array([0.2, 1.0, 3.0, 0.5])},
              {"weight": np.array([0.2, 1.0, 3.0, 0.5]), "label_smoothing": 0.1,
               "ignore_index": 2}]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("options", CE_OPTIONS)
@pytest.mark.parametrize("shape", [(5, 4), (3, 4, 2, 3), (4,)])
def test_cross_entropy_class_indices(shape, options, reduction):
    rng = np.random.default_rng(4)
    logits = rng.standard_normal(shape) * 2
    target_shape = (shape[0],) + shape[2:] if len(shape) > 1 else ()
    target = rng.integers(0, 4, target_shape)
    if target.ndim:
        target.flat[0] = 1          # one ignored position when ignore_index=1
    kw, tkw = weights(dict(options, reduction=reduction))
    run(F.cross_entropy, TF.cross_entropy, logits, target, kw, tkw)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("options", [{}, {"label_smoothing": 0.3},
                                     {"weight": np.array([0.5, 2.0, 1.0])}])
@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 5), (3,)])
def test_cross_entropy_class_probabilities(shape, options, reduction):
    rng = np.random.default_rng(5)
    logits = rng.standard_normal(shape)
    probs = rng.random(shape)
    probs /= probs.sum(axis=1 if len(shape) > 1 else 0, keepdims=True)
    kw, tkw = weights(dict(options, reduction=reduction))
    run(F.cross_entropy, TF.cross_entropy, logits, probs, kw, tkw, target_grad=True)


def test_cross_entropy_every_target_ignored_is_nan_with_zero_gradient_like_torch():
    x = zeros(2, 3, requires_grad=True)
    out = F.cross_entropy(x, fastgrad.tensor([-100, -100]))
    tx = torch.zeros(2, 3, requires_grad=True)
    tout = TF.cross_entropy(tx, torch.tensor([-100, -100]))
    assert np.isnan(out.item()) and np.isnan(tout.item())
    out.backward()
    tout.backward()
    assert not x.grad.numpy().any() and not tx.grad.numpy().any()


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 6), c=st.integers(1, 5), seed=st.integers(0, 1000),
       smoothing=st.sampled_from([0.0, 0.25]))
def test_cross_entropy_float32_fast_and_general_paths(n, c, seed, smoothing):
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal((n, c)) * 3).astype(np.float32)
    target = rng.integers(0, c, n)
    run(F.cross_entropy, TF.cross_entropy, logits, target, {"label_smoothing": smoothing})


@pytest.mark.parametrize("logits,target,error", [
    (np.zeros((3, 4)), np.array([0, 1]), ValueError),             # batch sizes differ
    (np.zeros((3, 4)), np.array([0, 1, 7]), IndexError),          # class out of range
    (np.zeros((3, 4)), np.array([0, 1, -3]), IndexError),
    (np.zeros((3, 4)), np.zeros((3, 3)), RuntimeError),           # probabilities of wrong shape
    (np.zeros((3, 4)), np.array([0, 1, 2], np.int32), RuntimeError),  # int32 targets
    (np.zeros((2, 3, 5)), np.zeros((2, 4), np.int64), RuntimeError),  # spatial size differs
])
def test_cross_entropy_errors_as_torch(logits, target, error):
    with pytest.raises(error):
        TF.cross_entropy(torch.tensor(logits), torch.tensor(target))
    with pytest.raises(error):
        F.cross_entropy(fastgrad.tensor(logits), fastgrad.tensor(target))


def test_cross_entropy_option_errors():
    x = zeros(3, 4)
    with pytest.raises(RuntimeError, match="ignore_index"):
        F.cross_entropy(x, zeros(3, 4), ignore_index=1)
    with pytest.raises(RuntimeError, match="weight tensor"):
        F.cross_entropy(x, fastgrad.tensor([0, 1, 2]), weight=ones(3))
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(x, fastgrad.tensor([0, 1, 2]), reduction="avg")


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("options", CE_OPTIONS[:2] + CE_OPTIONS[3:4])
@pytest.mark.parametrize("shape", [(5, 4), (2, 4, 3), (4,)])
def test_nll_loss(shape, options, reduction):
    rng = np.random.default_rng(6)
    logp = np.log(rng.random(shape))
    target = rng.integers(0, 4, (shape[0],) + shape[2:] if len(shape) > 1 else ())
    kw, tkw = weights(dict(options, reduction=reduction))
    run(F.nll_loss, TF.nll_loss, logp, target, kw, tkw)


# -- binary cross-entropy ----------------------------------------------------------------------

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_binary_cross_entropy(reduction, weighted, dtype):
    rng = np.random.default_rng(7)
    p = rng.uniform(0.01, 0.99, (4, 3)).astype(dtype)
    t = rng.random((4, 3)).astype(dtype)
    kw = {"reduction": reduction}
    if weighted:
        kw["weight"] = rng.random(3).astype(dtype)
    ours, theirs = weights(kw)
    run(F.binary_cross_entropy, TF.binary_cross_entropy, p, t, ours, theirs, target_grad=True)


def test_binary_cross_entropy_clamps_the_log_at_minus_100():
    p, t = np.array([0.0, 1.0, 0.5]), np.array([1.0, 0.0, 1.0])
    for reduction in REDUCTIONS:
        close(F.binary_cross_entropy(fastgrad.tensor(p), fastgrad.tensor(t),
                                     reduction=reduction),
              TF.binary_cross_entropy(torch.tensor(p), torch.tensor(t), reduction=reduction))
    x = fastgrad.tensor(p, requires_grad=True)
    F.binary_cross_entropy(x, fastgrad.tensor(t), reduction="sum").backward()
    assert np.all(np.isfinite(x.grad.numpy()))


def test_binary_cross_entropy_errors_as_torch():
    with pytest.raises(ValueError, match="target size"):
        F.binary_cross_entropy(fastgrad.tensor([0.5, 0.5]), fastgrad.tensor([[1.0], [0.0]]))
    with pytest.raises(RuntimeError, match="between 0 and 1"):
        F.binary_cross_entropy(fastgrad.tensor([1.5]), fastgrad.tensor([1.0]))
    with pytest.raises(ValueError, match="Target size"):
        F.binary_cross_entropy_with_logits(fastgrad.tensor([0.5, 0.5]),
                                           fastgrad.tensor([[1.0], [0.0]]))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("options", ["plain", "weight", "pos_weight", "both"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_binary_cross_entropy_with_logits(reduction, options, dtype):
    rng = np.random.default_rng(8)
    x = (rng.standard_normal((5, 3)) * 4).astype(dtype)
    x[0] = [0.0, 40.0, -40.0]            # zero logit, saturated logits
    t = rng.random((5, 3)).astype(dtype)
    kw = {"reduction": reduction}
    if options in ("weight", "both"):
        kw["weight"] = rng.random((5, 1)).astype(dtype)
    if options in ("pos_weight", "both"):
        kw["pos_weight"] = (rng.random(3) * 3).astype(dtype)
    ours, theirs = weights(kw)
    run(F.binary_cross_entropy_with_logits, TF.binary_cross_entropy_with_logits, x, t, ours,
        theirs, target_grad=True)


# -- loss modules --------------------------------------------------------------------------------

MODULES = [
    ("MSELoss", {}), ("L1Loss", {"reduction": "sum"}), ("SmoothL1Loss", {"beta": 0.5}),
    ("HuberLoss", {"delta": 0.5, "reduction": "none"}),
    ("CrossEntropyLoss", {"label_smoothing": 0.1, "ignore_index": 0}),
    ("CrossEntropyLoss", {"weight": np.array([1.0, 2.0, 0.5])}),
    ("NLLLoss", {"weight": np.array([1.0, 2.0, 0.5]), "reduction": "sum"}),
    ("BCELoss", {"weight": np.array([1.0, 2.0, 0.5])}),
    ("BCEWithLogitsLoss", {"pos_weight": np.array([1.0, 2.0, 0.5])}),
]


@pytest.mark.parametrize("name,options", MODULES)
def test_loss_modules_match_torch(name, options):
    rng = np.random.default_rng(9)
    kw, tkw = weights(options)
    ours, theirs = getattr(nn, name)(**kw), getattr(torch.nn, name)(**tkw)
    assert repr(ours) == repr(theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())    # weights are buffers
    x = rng.random((4, 3))
    if name in ("CrossEntropyLoss", "NLLLoss"):
        target = rng.integers(0, 3, 4)
    else:
        target = rng.random((4, 3))
    run(ours, theirs, x, target)


def test_loss_module_weight_follows_to():
    loss = nn.CrossEntropyLoss(weight=fastgrad.tensor([1.0, 2.0]))
    assert loss.to(fastgrad.float64).weight.dtype == fastgrad.float64


# -- training ----------------------------------------------------------------------------------

def classifier(lib, dtype):
    return lib.Sequential(lib.Linear(4, 16, dtype=dtype), lib.LayerNorm(16, dtype=dtype),
                          lib.GELU(), lib.Dropout(0.2), lib.Linear(16, 3, dtype=dtype))


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 1e-5)])
def test_classifier_training_follows_torchs_loss_curve(dtype, tol):
    """An MLP with LayerNorm, GELU and Dropout (in eval mode) trained 20 steps with SGD and
    momentum on a label-smoothed CrossEntropyLoss: torch's losses and weights."""
    np.random.seed(0)
    model = classifier(nn, getattr(fastgrad, dtype)).eval()
    tmodel = classifier(torch.nn, getattr(torch, dtype)).eval()
    copy_weights(model, tmodel)
    rng = np.random.default_rng(10)
    x = rng.standard_normal((32, 4)).astype(dtype)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 1)
    loss_fn, tloss_fn = nn.CrossEntropyLoss(label_smoothing=0.05), \
        torch.nn.CrossEntropyLoss(label_smoothing=0.05)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    topt = torch.optim.SGD(tmodel.parameters(), lr=0.1, momentum=0.9)
    losses, tlosses = [], []
    for _ in range(20):
        loss = loss_fn(model(fastgrad.tensor(x)), fastgrad.tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        tloss = tloss_fn(tmodel(torch.from_numpy(x)), torch.from_numpy(y))
        topt.zero_grad()
        tloss.backward()
        topt.step()
        losses.append(loss.item())
        tlosses.append(tloss.item())
    np.testing.assert_allclose(losses, tlosses, rtol=tol)
    assert losses[-1] < losses[0] / 2
    if dtype == "float64":
        grads_close(model, tmodel)


def test_binary_classifier_with_bce_with_logits_follows_torch():
    np.random.seed(1)

    def build(lib, float64):
        return lib.Sequential(lib.Linear(2, 8, dtype=float64), lib.SiLU(),
                              lib.Linear(8, 1, dtype=float64))

    model, tmodel = build(nn, fastgrad.float64), build(torch.nn, torch.float64)
    copy_weights(model, tmodel)
    rng = np.random.default_rng(11)
    x = rng.standard_normal((40, 2))
    y = ((x ** 2).sum(1, keepdims=True) < 1).astype(np.float64)
    pw = np.array([2.0])
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=fastgrad.tensor(pw))
    tloss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pw))
    opt = optim.Adam(model.parameters(), lr=0.05)
    topt = torch.optim.Adam(tmodel.parameters(), lr=0.05)
    for _ in range(20):
        loss = loss_fn(model(fastgrad.tensor(x)), fastgrad.tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        tloss = tloss_fn(tmodel(torch.from_numpy(x)), torch.from_numpy(y))
        topt.zero_grad()
        tloss.backward()
        topt.step()
        assert loss.item() == pytest.approx(tloss.item(), rel=1e-12)
