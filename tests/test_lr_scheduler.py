"""fastgrad.optim.lr_scheduler against torch.optim.lr_scheduler: the lr (and momentum) sequence
over many epochs, two parameter groups, state_dict round trips, argument errors."""

import math
import pickle
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastgrad
from fastgrad import Tensor, optim

# written for float64 numerics: Python floats make float64 tensors here
pytestmark = pytest.mark.usefixtures("float64_default")

torch = pytest.importorskip("torch", reason="PyTorch not installed: comparisons skipped")


def _optimizer(lib, name="SGD", lrs=(0.1, 0.03), **kwargs):
    if lib is fastgrad:
        ps = [Tensor([1.0, 2.0], requires_grad=True) for _ in lrs]
    else:
        ps = [torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True) for _ in lrs]
    groups = [{"params": [p], "lr": lr} for p, lr in zip(ps, lrs)]
    return getattr(lib.optim, name)(groups, **kwargs)


def _sequence(lib, make, epochs, metrics=None, opt_name="SGD", opt_kwargs=None):
    """Per epoch: (each group's lr, momentum or beta1), after an optimizer step and a
    scheduler step, as a training loop runs them."""
    opt = _optimizer(lib, opt_name, **(opt_kwargs or {}))
    sched = make(lib.optim.lr_scheduler, opt)
    seen = [(sched.get_last_lr(), _momenta(opt))]
    for epoch in range(epochs):
        opt.step()
        if metrics is None:
            sched.step()
        else:
            sched.step(metrics[epoch])
        seen.append((list(sched.get_last_lr()), _momenta(opt)))
        assert [g["lr"] for g in opt.param_groups] == seen[-1][0]
    return seen


def _momenta(opt):
    return [g["betas"][0] if "betas" in g else g.get("momentum") for g in opt.param_groups]


def _same(ours, ref):
    assert len(ours) == len(ref)
    for (lrs, moms), (tlrs, tmoms) in zip(ours, ref):
        np.testing.assert_allclose(lrs, tlrs, rtol=1e-12, atol=0)
        assert all(isinstance(x, float) for x in lrs)
        np.testing.assert_allclose(moms, tmoms, rtol=1e-12, atol=0)


SCHEDULES = st.one_of(
    st.builds(lambda s, g: lambda m, o: m.StepLR(o, step_size=s, gamma=g),
              st.integers(1, 7), st.floats(0.1, 0.99)),
    st.builds(lambda ms, g: lambda m, o: m.MultiStepLR(o, milestones=ms, gamma=g),
              st.lists(st.integers(1, 40), max_size=5), st.floats(0.1, 0.99)),
    st.builds(lambda g: lambda m, o: m.ExponentialLR(o, gamma=g), st.floats(0.5, 0.999)),
    st.builds(lambda t, e: lambda m, o: m.CosineAnnealingLR(o, T_max=t, eta_min=e),
              st.integers(1, 15), st.sampled_from([0.0, 1e-3])),
    st.builds(lambda a: lambda m, o: m.LambdaLR(o, lambda epoch: 1.0 / (1.0 + a * epoch)),
              st.floats(0.0, 2.0)),
    st.builds(lambda a: lambda m, o: m.LambdaLR(o, [lambda e: 0.9 ** e,
                                                     lambda e: 1.0 / (1.0 + a * e)]),
              st.floats(0.0, 2.0)),
)


@settings(max_examples=80, deadline=None)
@given(SCHEDULES)
def test_schedules_match_pytorch_for_many_epochs(make):
    _same(_sequence(fastgrad, make, 60), _sequence(torch, make, 60))


@settings(max_examples=60, deadline=None)
@given(total=st.integers(2, 60), pct=st.sampled_from([0.1, 0.3, 0.5, 0.9]),
       strategy=st.sampled_from(["cos", "linear"]), three_phase=st.booleans(),
       cycle_momentum=st.booleans(), opt_name=st.sampled_from(["SGD", "Adam", "AdamW"]))
def test_one_cycle_matches_pytorch(total, pct, strategy, three_phase, cycle_momentum, opt_name):
    def make(m, o):
        return m.OneCycleLR(o, max_lr=[0.5, 0.2], total_steps=total, pct_start=pct,
                            anneal_strategy=strategy, three_phase=three_phase,
                            cycle_momentum=cycle_momentum, base_momentum=0.8,
                            max_momentum=0.9)

    kwargs = {"momentum": 0.9} if opt_name == "SGD" else {}
    try:
        ref = _sequence(torch, make, total - 1, opt_name=opt_name, opt_kwargs=kwargs)
    except ZeroDivisionError:   # a phase of zero steps (pct_start * total_steps == 1)
        with pytest.raises(ZeroDivisionError):
            _sequence(fastgrad, make, total - 1, opt_name=opt_name, opt_kwargs=kwargs)
        return
    _same(_sequence(fastgrad, make, total - 1, opt_name=opt_name, opt_kwargs=kwargs), ref)
    # one step past the end is an error in both
    for lib in (fastgrad, torch):
        opt = _optimizer(lib, opt_name, **kwargs)
        sched = make(lib.optim.lr_scheduler, opt)
        for _ in range(total):
            opt.step()
            sched.step()
        with pytest.raises(ValueError, match="Tried to step"):
            sched.step()


@settings(max_examples=60, deadline=None)
@given(metrics=st.lists(st.sampled_from([1.0, 0.9, 0.95, 0.5, 0.4999, 2.0]), min_size=1,
                        max_size=60),
       mode=st.sampled_from(["min", "max"]), threshold_mode=st.sampled_from(["rel", "abs"]),
       patience=st.integers(0, 4), cooldown=st.integers(0, 3),
       factor=st.sampled_from([0.1, 0.5]), min_lr=st.sampled_from([0.0, 1e-3, [0.01, 0.0]]))
def test_reduce_on_plateau_matches_pytorch(metrics, mode, threshold_mode, patience, cooldown,
                                           factor, min_lr):
    def make(m, o):
        return m.ReduceLROnPlateau(o, mode=mode, factor=factor, patience=patience,
                                   threshold=1e-2, threshold_mode=threshold_mode,
                                   cooldown=cooldown, min_lr=min_lr)

    _same(_sequence(fastgrad, make, len(metrics), metrics),
          _sequence(torch, make, len(metrics), metrics))


def test_initial_lr_base_lrs_and_last_epoch_as_pytorch():
    for lib in (fastgrad, torch):
        opt = _optimizer(lib)
        sched = lib.optim.lr_scheduler.StepLR(opt, step_size=2)
        assert sched.last_epoch == 0 and sched.base_lrs == [0.1, 0.03]
        assert [g["initial_lr"] for g in opt.param_groups] == [0.1, 0.03]
        with pytest.raises(KeyError):
            lib.optim.lr_scheduler.StepLR(_optimizer(lib), step_size=2, last_epoch=3)
        with pytest.raises(TypeError):
            lib.optim.lr_scheduler.StepLR(object(), step_size=2)


def test_step_with_an_epoch_uses_the_closed_form_and_warns():
    for cls, kwargs in [("StepLR", dict(step_size=3, gamma=0.5)),
                        ("MultiStepLR", dict(milestones=[2, 5, 5], gamma=0.5)),
                        ("ExponentialLR", dict(gamma=0.9)),
                        ("CosineAnnealingLR", dict(T_max=7))]:
        got = []
        for lib in (fastgrad, torch):
            opt = _optimizer(lib)
            sched = getattr(lib.optim.lr_scheduler, cls)(opt, **kwargs)
            opt.step()
            with pytest.warns(UserWarning, match="deprecated"):
                sched.step(6)
            got.append(sched.get_last_lr())
        np.testing.assert_allclose(got[0], got[1], rtol=1e-12)


SAVEABLE = [
    lambda m, o: m.StepLR(o, step_size=3, gamma=0.5),
    lambda m, o: m.MultiStepLR(o, milestones=[4, 9], gamma=0.3),
    lambda m, o: m.ExponentialLR(o, gamma=0.9),
    lambda m, o: m.CosineAnnealingLR(o, T_max=6, eta_min=1e-3),
    lambda m, o: m.OneCycleLR(o, max_lr=1.0, total_steps=20, anneal_strategy="linear"),
]


@pytest.mark.parametrize("make", SAVEABLE)
def test_state_dict_round_trip_continues_as_uninterrupted(make):
    whole = _sequence(fastgrad, make, 15)
    opt = _optimizer(fastgrad, momentum=0.9)
    sched = make(fastgrad.optim.lr_scheduler, opt)
    for _ in range(6):
        opt.step()
        sched.step()
    saved = pickle.loads(pickle.dumps((opt.state_dict(), sched.state_dict())))
    assert "optimizer" not in saved[1] and saved[1]["last_epoch"] == 6
    fresh = _optimizer(fastgrad, momentum=0.9)
    fresh_sched = make(fastgrad.optim.lr_scheduler, fresh)
    fresh.load_state_dict(saved[0])
    fresh_sched.load_state_dict(saved[1])
    rest = []
    for _ in range(6, 15):
        fresh.step()
        fresh_sched.step()
        rest.append(fresh_sched.get_last_lr())
    assert rest == [lrs for lrs, _ in whole[7:]]


def test_plateau_and_lambda_state_dicts():
    opt = _optimizer(fastgrad)
    sched = fastgrad.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=1)
    for metric in (1.0, 1.0, 1.0):
        sched.step(metric)
    state = sched.state_dict()
    fresh = fastgrad.optim.lr_scheduler.ReduceLROnPlateau(_optimizer(fastgrad), patience=1)
    fresh.load_state_dict(state)
    assert (fresh.best, fresh.num_bad_epochs, fresh.last_epoch) == (1.0, 0, 3)

    class Halve:        # a callable object's attributes are saved, a function is not
        def __init__(self):
            self.base = 0.5

        def __call__(self, epoch):
            return self.base ** epoch

    sched = fastgrad.optim.lr_scheduler.LambdaLR(_optimizer(fastgrad), [Halve(), lambda e: 1.0])
    sched.lr_lambdas[0].base = 0.25
    state = sched.state_dict()
    assert state["lr_lambdas"] == [{"base": 0.25}, None]
    other = fastgrad.optim.lr_scheduler.LambdaLR(_optimizer(fastgrad), [Halve(), lambda e: 1.0])
    other.load_state_dict(state)
    assert other.lr_lambdas[0].base == 0.25


def test_argument_errors_match_pytorch():
    cases = [
        lambda m, o: m.ReduceLROnPlateau(o, factor=1.0),
        lambda m, o: m.ReduceLROnPlateau(o, mode="sideways"),
        lambda m, o: m.ReduceLROnPlateau(o, threshold_mode="log"),
        lambda m, o: m.ReduceLROnPlateau(o, min_lr=[0.1]),
        lambda m, o: m.LambdaLR(o, [lambda e: 1.0]),
        lambda m, o: m.OneCycleLR(o, max_lr=1.0),
        lambda m, o: m.OneCycleLR(o, max_lr=1.0, total_steps=0),
        lambda m, o: m.OneCycleLR(o, max_lr=1.0, epochs=2, steps_per_epoch=0),
        lambda m, o: m.OneCycleLR(o, max_lr=1.0, total_steps=5, pct_start=1.5),
        lambda m, o: m.OneCycleLR(o, max_lr=1.0, total_steps=5, anneal_strategy="step"),
        lambda m, o: m.OneCycleLR(o, max_lr=[1.0], total_steps=5),
    ]
    for make in cases:
        for lib in (fastgrad, torch):
            with pytest.raises(ValueError):
                make(lib.optim.lr_scheduler, _optimizer(lib))
    for lib in (fastgrad, torch):      # cycle_momentum needs momentum or betas
        opt = _optimizer(lib, "Adagrad") if hasattr(lib.optim, "Adagrad") else None
        if opt is not None:
            with pytest.raises(ValueError, match="momentum"):
                lib.optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=5)


def test_no_warnings_in_the_usual_loop():
    opt = _optimizer(fastgrad)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sched = fastgrad.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=4)
        for _ in range(5):
            opt.step()
            sched.step()
