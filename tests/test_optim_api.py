"""torch.optim's API: every optimizer and option against PyTorch (same initial weights, same
gradient rule, several steps), parameter groups, state_dict round trips, argument errors."""

import copy
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastgrad
from fastgrad import Tensor, Value, optim

# written for float64 numerics: Python floats make float64 tensors here
pytestmark = pytest.mark.usefixtures("float64_default")

torch = pytest.importorskip("torch", reason="PyTorch not installed: comparisons skipped")

# Options per optimizer, drawn by hypothesis (keys that PyTorch's constructor takes as is).
OPTIONS = {
    "SGD": dict(lr=st.sampled_from([0.1, 0.03]), momentum=st.sampled_from([0.0, 0.9, 0.5]),
                dampening=st.sampled_from([0.0, 0.3]), weight_decay=st.sampled_from([0.0, 0.1]),
                nesterov=st.booleans(), maximize=st.booleans()),
    "Adam": dict(lr=st.sampled_from([1e-2, 0.1]), betas=st.sampled_from([(0.9, 0.999),
                                                                         (0.3, 0.8)]),
                 eps=st.sampled_from([1e-8, 1e-3]), weight_decay=st.sampled_from([0.0, 0.1]),
                 amsgrad=st.booleans(), maximize=st.booleans()),
    "AdamW": dict(lr=st.sampled_from([1e-2, 0.1]), weight_decay=st.sampled_from([0.0, 1e-2, 0.3]),
                  amsgrad=st.booleans(), maximize=st.booleans()),
    "RMSprop": dict(lr=st.sampled_from([1e-2, 0.1]), alpha=st.sampled_from([0.99, 0.5]),
                    eps=st.sampled_from([1e-8, 1e-2]), weight_decay=st.sampled_from([0.0, 0.1]),
                    momentum=st.sampled_from([0.0, 0.9]), centered=st.booleans(),
                    maximize=st.booleans()),
    "Adagrad": dict(lr=st.sampled_from([1e-2, 0.5]), lr_decay=st.sampled_from([0.0, 0.1]),
                    weight_decay=st.sampled_from([0.0, 0.1]),
                    initial_accumulator_value=st.sampled_from([0.0, 0.5]),
                    eps=st.sampled_from([1e-10, 1e-3]), maximize=st.booleans()),
}


def _valid(name, kwargs):
    # PyTorch refuses nesterov without momentum or with dampening (tested separately)
    return not (name == "SGD" and kwargs["nesterov"]
                and (kwargs["momentum"] <= 0 or kwargs["dampening"] != 0))


@st.composite
def configs(draw, names=tuple(OPTIONS)):
    name = draw(st.sampled_from(names))
    kwargs = {k: draw(s) for k, s in OPTIONS[name].items()}
    if not _valid(name, kwargs):
        kwargs["nesterov"] = False
    shapes = draw(st.lists(st.lists(st.integers(1, 4), max_size=2).map(tuple), min_size=1,
                           max_size=3))
    seed = draw(st.integers(0, 2**16))
    return name, kwargs, shapes, seed


def _gradient(w, k):
    # a non-quadratic loss's gradient, different at each step: the trajectory depends on the
    # whole update rule, moments included
    g = 2.0 * (w - 0.5) + 0.3 * np.sin(3.0 * w) + 0.1 * np.cos(k + w)
    return np.array(g, dtype=w.dtype)


def _initial(shapes, seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def run_fastgrad(name, kwargs, w0, steps, start=None, make=None):
    params = [Tensor(w.copy(), requires_grad=True) for w in w0]
    opt = (make or getattr(optim, name))(params, **kwargs)
    for k in range(steps):
        opt.zero_grad()
        for p in params:
            p.grad = _gradient(p.numpy(), k)
        opt.step()
    return [p.numpy() for p in params], opt, params


def run_torch(name, kwargs, w0, steps):
    params = [torch.tensor(w.copy(), requires_grad=True) for w in w0]
    opt = getattr(torch.optim, name)(params, **kwargs)
    for k in range(steps):
        opt.zero_grad()
        for p in params:
            p.grad = torch.from_numpy(_gradient(p.detach().numpy(), k))
        opt.step()
    return [p.detach().numpy() for p in params], opt, params


@settings(max_examples=120, deadline=None)
@given(configs())
def test_every_option_matches_pytorch_float64(config):
    name, kwargs, shapes, seed = config
    w0 = _initial(shapes, seed)
    ours, _, _ = run_fastgrad(name, kwargs, w0, 6)
    ref, _, _ = run_torch(name, kwargs, w0, 6)
    for a, b in zip(ours, ref):
        assert a.dtype == b.dtype == np.float64
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@settings(max_examples=40, deadline=None)
@given(configs())
def test_every_option_matches_pytorch_float32(config):
    name, kwargs, shapes, seed = config
    w0 = _initial(shapes, seed, np.float32)
    ours, _, _ = run_fastgrad(name, kwargs, w0, 6)
    ref, _, _ = run_torch(name, kwargs, w0, 6)
    for a, b in zip(ours, ref):
        assert a.dtype == b.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)


@settings(max_examples=40, deadline=None)
@given(configs())
def test_values_follow_the_tensor_rule(config):
    # the scalar engine's Values, in one group, take the same rule as a flat Tensor
    name, kwargs, shapes, seed = config
    w0 = np.concatenate([w.ravel() for w in _initial(shapes, seed)])
    ref, _, _ = run_fastgrad(name, kwargs, [w0], 4)
    values = [Value(float(x)) for x in w0]
    opt = getattr(optim, name)(values, **kwargs)
    for k in range(4):
        opt.zero_grad()
        for v, g in zip(values, _gradient(np.array([v.data for v in values]), k)):
            v.grad = float(g)
        opt.step()
    np.testing.assert_allclose([v.data for v in values], ref[0], rtol=1e-13, atol=1e-15)


@settings(max_examples=40, deadline=None)
@given(configs(), st.integers(1, 5))
def test_state_dict_round_trip_continues_as_uninterrupted(config, split):
    name, kwargs, shapes, seed = config
    w0 = _initial(shapes, seed)
    whole, _, _ = run_fastgrad(name, kwargs, w0, 7)
    half, opt, _ = run_fastgrad(name, kwargs, w0, split)
    saved = pickle.loads(pickle.dumps(opt.state_dict()))     # as torch.save would keep it
    params = [Tensor(w.copy(), requires_grad=True) for w in half]
    fresh = getattr(optim, name)(params, **kwargs)
    fresh.load_state_dict(saved)
    for k in range(split, 7):
        fresh.zero_grad()
        for p in params:
            p.grad = _gradient(p.data, k)
        fresh.step()
    for a, b in zip(whole, params):
        np.testing.assert_array_equal(a, b.data)


@pytest.mark.parametrize("steps", [0, 3])
@pytest.mark.parametrize("name,kwargs", [("SGD", dict(lr=0.1, momentum=0.9)),
                                         ("Adam", dict(lr=0.1, amsgrad=True)),
                                         ("AdamW", dict(lr=0.1)),
                                         ("RMSprop", dict(momentum=0.5, centered=True)),
                                         ("Adagrad", dict(initial_accumulator_value=0.1))])
def test_state_dict_layout_matches_pytorch(name, kwargs, steps):
    w0 = _initial([(2,), (3, 2)], 0)
    _, opt, _ = run_fastgrad(name, kwargs, w0, steps)
    _, topt, _ = run_torch(name, kwargs, w0, steps)
    ours, ref = opt.state_dict(), topt.state_dict()
    assert list(ours) == ["state", "param_groups"]
    assert sorted(ours["state"]) == sorted(ref["state"]) == ([0, 1] if ref["state"] else [])
    for i in ours["state"]:
        assert set(ours["state"][i]) == set(ref["state"][i])
        for key, value in ref["state"][i].items():
            np.testing.assert_allclose(np.asarray(ours["state"][i][key]), value.numpy(),
                                       rtol=1e-12)
    assert [g["params"] for g in ours["param_groups"]] == [[0, 1]]
    for key in ours["param_groups"][0]:
        assert ours["param_groups"][0][key] == ref["param_groups"][0][key], key


@pytest.mark.parametrize("name,kwargs", [("SGD", dict(lr=0.1, momentum=0.9, dampening=0.2)),
                                         ("Adam", dict(lr=0.1, amsgrad=True)),
                                         ("AdamW", dict(lr=0.1)),
                                         ("RMSprop", dict(momentum=0.5, centered=True)),
                                         ("Adagrad", dict(lr_decay=0.1))])
def test_values_state_dict_round_trip_every_optimizer(name, kwargs):
    def run(values, opt, steps):
        for k in steps:
            opt.zero_grad()
            for v, g in zip(values, _gradient(np.array([v.data for v in values]), k)):
                v.grad = float(g)
            opt.step()

    whole = [Value(x) for x in (0.5, -1.0, 2.0)]
    run(whole, getattr(optim, name)(whole, **kwargs), range(6))
    half = [Value(x) for x in (0.5, -1.0, 2.0)]
    opt = getattr(optim, name)(half, **kwargs)
    run(half, opt, range(3))
    saved = pickle.loads(pickle.dumps(opt.state_dict()))
    fresh_values = [Value(v.data) for v in half]
    fresh = getattr(optim, name)(fresh_values, **kwargs)
    fresh.load_state_dict(saved)
    run(fresh_values, fresh, range(3, 6))
    assert [v.data for v in fresh_values] == [v.data for v in whole]


def test_values_state_dict_round_trip():
    values = [Value(1.0), Value(-2.0)]
    opt = optim.Adam(values, lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        (values[0] * values[0] + values[1] * values[1]).backward()
        opt.step()
    saved = opt.state_dict()
    assert saved["state"][1]["step"] == 2 and saved["state"][1]["exp_avg"].shape == ()
    copies = [Value(v.data) for v in values]
    fresh = optim.Adam(copies, lr=0.1)
    fresh.load_state_dict(saved)
    for o, vs in ((opt, values), (fresh, copies)):
        o.zero_grad()
        (vs[0] * vs[0] + vs[1] * vs[1]).backward()
        o.step()
    assert [v.data for v in values] == [v.data for v in copies]


# -- parameter groups --------------------------------------------------------------------------

def _two_group_run(lib, make, w0, edit_at=3, steps=6):
    tensor = (lambda w: Tensor(w.copy(), requires_grad=True)) if lib is fastgrad else (
        lambda w: torch.tensor(w.copy(), requires_grad=True))
    a, b, c = (tensor(w) for w in w0)
    opt = make(lib.optim, [{"params": [a]}, {"params": b, "lr": 0.01, "momentum": 0.5}])
    opt.add_param_group({"params": [c], "weight_decay": 0.2})
    for k in range(steps):
        if k == edit_at:
            for group in opt.param_groups:
                group["lr"] *= 0.5
        opt.zero_grad()
        for p in (a, b, c):
            data = p.data if lib is fastgrad else p.detach().numpy()
            g = _gradient(data, k)
            p.grad = g if lib is fastgrad else torch.from_numpy(g)
        opt.step()
    return [np.asarray(p.data) if lib is fastgrad else p.detach().numpy() for p in (a, b, c)]


@pytest.mark.parametrize("make", [lambda o, g: o.SGD(g, lr=0.1, momentum=0.9),
                                  lambda o, g: o.Adam(g, lr=0.05, amsgrad=True)],
                         ids=["SGD", "Adam"])
def test_param_groups_and_lr_edits_match_pytorch(make):
    w0 = _initial([(3,), (2, 2), (4,)], 1)
    ours = _two_group_run(fastgrad, make, w0)
    ref = _two_group_run(torch, make, w0)
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_param_group_defaults_and_duplicates():
    a, b = Tensor([1.0], requires_grad=True), Tensor([2.0], requires_grad=True)
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1, momentum=0.9)
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[1]["lr"] == 0.5
    assert opt.param_groups[1]["momentum"] == 0.9 and opt.param_groups[1]["params"] == [b]
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.Adam([{"params": [a]}, {"params": [a, b]}])
    with pytest.raises(TypeError):
        opt.add_param_group({"params": {b}})                 # a set has no order
    with pytest.raises(TypeError):
        opt.add_param_group([b])
    c = Tensor([3.0], requires_grad=True)
    group = {"params": c, "lr": 0.25}                      # a single Tensor is a list of one
    opt.add_param_group(group)
    assert opt.param_groups[-1] is group and group["params"] == [c]
    for lib, p in ((optim, Tensor([1.0], requires_grad=True)), (torch.optim, torch.ones(1))):
        with pytest.warns(UserWarning, match="duplicate"):
            lib.SGD([p, p], lr=0.1)


def test_load_state_dict_checks_groups_like_pytorch():
    a, b = Tensor([1.0], requires_grad=True), Tensor([2.0], requires_grad=True)
    one = optim.SGD([a, b], lr=0.1).state_dict()
    two = optim.SGD([{"params": [a]}, {"params": [b]}], lr=0.1).state_dict()
    with pytest.raises(ValueError, match="number of parameter groups"):
        optim.SGD([a, b], lr=0.1).load_state_dict(two)
    with pytest.raises(ValueError, match="size of optimizer's group"):
        optim.SGD([a], lr=0.1).load_state_dict(one)
    ta, tb = torch.ones(1, requires_grad=True), torch.ones(1, requires_grad=True)
    with pytest.raises(ValueError, match="size of optimizer's group"):
        torch.optim.SGD([ta], lr=0.1).load_state_dict(torch.optim.SGD([ta, tb]).state_dict())
    # hyperparameters come from the saved groups
    opt = optim.SGD([a, b], lr=0.7)
    opt.load_state_dict(one)
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[0]["params"] == [a, b]


def test_zero_grad_set_to_none_and_closure():
    p = Tensor([1.0, 2.0], requires_grad=True)
    opt = optim.SGD([p], lr=0.1)
    (p * p).sum().backward()
    opt.zero_grad(set_to_none=False)
    assert p.grad.tolist() == [0.0, 0.0]
    opt.zero_grad()
    assert p.grad is None

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == 5.0 and p.data.tolist() == pytest.approx([0.8, 1.6])


def test_argument_errors_match_pytorch():
    p = Tensor([1.0], requires_grad=True)
    tp = torch.ones(1, requires_grad=True)
    bad = [("SGD", dict(lr=-0.1)), ("SGD", dict(lr=0.1, momentum=-1)),
           ("SGD", dict(lr=0.1, weight_decay=-1)), ("SGD", dict(lr=0.1, nesterov=True)),
           ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True)),
           ("Adam", dict(lr=-1.0)), ("Adam", dict(eps=-1.0)), ("Adam", dict(betas=(1.0, 0.9))),
           ("Adam", dict(betas=(0.9, -0.1))), ("Adam", dict(weight_decay=-1.0)),
           ("AdamW", dict(lr=-1.0)), ("RMSprop", dict(lr=-1.0)), ("RMSprop", dict(alpha=-1.0)),
           ("RMSprop", dict(eps=-1.0)), ("RMSprop", dict(momentum=-1.0)),
           ("RMSprop", dict(weight_decay=-1.0)), ("Adagrad", dict(lr=-1.0)),
           ("Adagrad", dict(lr_decay=-1.0)), ("Adagrad", dict(weight_decay=-1.0)),
           ("Adagrad", dict(initial_accumulator_value=-1.0)), ("Adagrad", dict(eps=-1.0))]
    for name, kwargs in bad:
        with pytest.raises(ValueError):
            getattr(torch.optim, name)([tp], **kwargs)
        with pytest.raises(ValueError):
            getattr(optim, name)([p], **kwargs)
    for params in ([], p):
        for lib in (optim, torch.optim):
            with pytest.raises((ValueError, TypeError)):
                lib.SGD(params if lib is optim else ([] if params == [] else tp), lr=0.1)


def test_pickled_optimizer_keeps_training():
    w0 = _initial([(3,)], 2)
    _, opt, params = run_fastgrad("Adam", dict(lr=0.1), w0, 2)
    opt2, params2 = pickle.loads(pickle.dumps((opt, params)))
    for o, ps in ((opt, params), (opt2, params2)):
        for k in range(2, 4):
            o.zero_grad()
            ps[0].grad = _gradient(ps[0].data, k)
            o.step()
    np.testing.assert_array_equal(params[0].data, params2[0].data)
    assert copy.deepcopy(opt).param_groups[0]["lr"] == 0.1


# -- a training script, as a user writes it, run with each library as `torch` ------------------

def _train(torch_, model, X, y, epochs=6, batch=16):
    """Param groups (no decay on biases), AdamW, OneCycleLR per batch, clipping, then a
    plateau schedule on the epoch loss: the code is the same for both libraries."""
    nn, F, optim_ = torch_.nn, torch_.nn.functional, torch_.optim
    # fastgrad.tensor makes floats of integer data (not this branch's part of the API), and its
    # cross_entropy takes integer arrays: the one line that differs
    labels = torch_.tensor if torch_ is torch else np.asarray
    decay = [p for n, p in model.named_parameters() if n.endswith("weight")]
    no_decay = [p for n, p in model.named_parameters() if n.endswith("bias")]
    opt = optim_.AdamW([{"params": decay, "weight_decay": 0.05},
                        {"params": no_decay, "weight_decay": 0.0}], lr=1e-2, amsgrad=True)
    steps = epochs * (len(X) // batch)
    sched = optim_.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=steps)
    log = []
    for epoch in range(epochs):
        total = 0.0
        for i in range(0, len(X) - batch + 1, batch):
            xb, yb = torch_.tensor(X[i:i + batch]), labels(y[i:i + batch])
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            norm = nn.utils.clip_grad_norm_(model.parameters(), max_norm=0.5)
            opt.step()
            sched.step()
            total += loss.item()
            log.append((loss.item(), norm.item(), sched.get_last_lr()[0]))
    # then fine-tune with SGD and a plateau schedule
    opt = optim_.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    plateau = optim_.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0)
    for epoch in range(4):
        loss = F.cross_entropy(model(torch_.tensor(X)), labels(y))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_value_(model.parameters(), 0.1)
        opt.step()
        plateau.step(round(loss.item(), 1))
        log.append((loss.item(), 0.0, opt.param_groups[0]["lr"]))
    return log


def test_training_script_matches_pytorch():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 4))
    y = (X[:, 0] + X[:, 1] ** 2 > 0.5).astype(np.int64) + (X[:, 2] > 1).astype(np.int64)
    model = fastgrad.nn.Sequential(fastgrad.nn.Linear(4, 16), fastgrad.nn.Tanh(),
                                   fastgrad.nn.Linear(16, 3))
    tmodel = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(),
                                 torch.nn.Linear(16, 3)).double()
    tmodel.load_state_dict({k: torch.tensor(v) for k, v in model.state_dict().items()})
    ours = _train(fastgrad, model, X, y)
    ref = _train(torch, tmodel, X, y)
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-14)
    for k, v in model.state_dict().items():
        np.testing.assert_allclose(v, tmodel.state_dict()[k].numpy(), rtol=1e-12, atol=1e-14)
    assert ours[-1][0] < ours[0][0]


def test_damaged_pickled_state_is_refused():
    # state arrays are pickled as checked bytes, not through numpy's pickles (which can fail
    # with a SystemError on damaged input)
    w0 = _initial([(3,)], 2)
    _, opt, params = run_fastgrad("Adam", dict(lr=0.1), w0, 2)
    state = opt.__getstate__()
    (p, packed), = state["state"]
    kind, dtype, shape, data = packed["exp_avg"]
    for bad in [(kind, dtype, (4,), data), (kind, "|O", shape, data), (kind, dtype, (-3,), data),
                (kind, dtype, shape, data[:-1])]:
        damaged = dict(state, state=[(p, dict(packed, exp_avg=bad))])
        with pytest.raises(ValueError, match="damaged"):
            optim.Adam.__new__(optim.Adam).__setstate__(damaged)
    restored = optim.Adam.__new__(optim.Adam)
    restored.__setstate__(state)
    np.testing.assert_array_equal(restored.state[p]["exp_avg"], opt.state[p]["exp_avg"])
