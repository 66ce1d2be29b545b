"""Optimizers: PyTorch's update rules (checked by hand and against torch when installed),
scalar Value parameters, and argument checks."""

import numpy as np
import pytest

import fastgrad
from crashsafe import run_isolated
from fastgrad import Tensor, Value, optim
from fastgrad.nn import functional as F

# written for float64 numerics: Python floats make float64 tensors here
pytestmark = pytest.mark.usefixtures("float64_default")

CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-2)),
    ("SGD", dict(lr=0.05, weight_decay=0.1)),
    ("Adam", dict(lr=1e-2)),
    ("Adam", dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=1e-2)),
    ("AdamW", dict(lr=1e-2)),
    ("AdamW", dict(lr=1e-2, weight_decay=0.1, betas=(0.85, 0.995))),
]


def test_sgd_momentum_by_hand():
    p = Tensor([1.0], requires_grad=True)
    opt = optim.SGD([p], lr=0.1, momentum=0.5)
    for _ in range(2):
        opt.zero_grad()
        (p * 3.0).sum().backward()
        opt.step()
    # buf1 = 3, p = 1 - 0.3; buf2 = 0.5*3 + 3 = 4.5, p = 0.7 - 0.45
    np.testing.assert_allclose(p.data, [0.25])


def test_adam_first_step_moves_by_lr():
    p = Tensor([1.0, -2.0], requires_grad=True)
    opt = optim.Adam([p], lr=0.01)
    (p * Tensor([5.0, -0.1])).sum().backward()
    opt.step()
    np.testing.assert_allclose(p.data, [0.99, -1.99], rtol=1e-6)


def _mlp_losses(make_opt, steps, seed=0):
    rng = np.random.default_rng(seed)
    np.random.seed(seed)
    model = fastgrad.nn.Sequential(fastgrad.nn.Linear(3, 8), fastgrad.nn.Tanh(), fastgrad.nn.Linear(8, 8),
                                   fastgrad.nn.Tanh(), fastgrad.nn.Linear(8, 2))
    x, y = rng.standard_normal((16, 3)), rng.standard_normal((16, 2))
    init = model.state_dict()
    opt = make_opt(model.parameters())
    losses = []
    for _ in range(steps):
        loss = F.mse_loss(model(Tensor(x)), Tensor(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return init, x, y, losses


@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=str)
def test_loss_decreases(name, kwargs):
    _, _, _, losses = _mlp_losses(lambda ps: getattr(optim, name)(ps, **kwargs), 50)
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=str)
def test_matches_pytorch_loss_curve(name, kwargs):
    torch = pytest.importorskip("torch", reason="PyTorch not installed: comparison skipped")
    init, x, y, losses = _mlp_losses(lambda ps: getattr(optim, name)(ps, **kwargs), 50)
    torch.manual_seed(0)
    layers = [torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 8), torch.nn.Tanh(),
              torch.nn.Linear(8, 2)]
    model = torch.nn.Sequential(*layers).double()
    model.load_state_dict({k: torch.tensor(v) for k, v in init.items()})
    opt = getattr(torch.optim, name)(model.parameters(), **kwargs)
    tx, ty = torch.tensor(x), torch.tensor(y)
    ref = []
    for _ in range(50):
        loss = torch.nn.functional.mse_loss(model(tx), ty)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ref.append(loss.item())
    np.testing.assert_allclose(losses, ref, rtol=1e-8)


@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=str)
def test_scalar_values_follow_the_same_rule(name, kwargs):
    data = [0.5, -1.5, 2.0]
    tensor = Tensor(data, requires_grad=True)
    values = [Value(v) for v in data]
    topt = getattr(optim, name)([tensor], **kwargs)
    vopt = getattr(optim, name)(values, **kwargs)
    for _ in range(5):
        topt.zero_grad()
        vopt.zero_grad()
        (tensor * tensor * tensor).sum().backward()
        sum((v * v * v for v in values), Value(0.0)).backward()
        np.testing.assert_allclose(tensor.grad, [v.grad for v in values])
        topt.step()
        vopt.step()
    np.testing.assert_allclose([v.data for v in values], tensor.data, rtol=1e-12)
    assert all(v.grad == 0 for v in values) is False
    vopt.zero_grad()
    assert all(v.grad == 0 for v in values)


def test_mixed_tensor_and_value_parameters():
    t, v = Tensor([1.0], requires_grad=True), Value(1.0)
    opt = optim.SGD([t, v], lr=0.5)
    (t * 2.0).sum().backward()
    (v * 4.0).backward()
    opt.step()
    assert t.numpy()[0] == 0.0 and v.data == -1.0
    opt.zero_grad()
    assert t.grad is None and v.grad == 0


def test_parameters_without_grad_are_skipped():
    a, b = Tensor([1.0], requires_grad=True), Tensor([1.0], requires_grad=True)
    opt = optim.Adam([a, b], lr=0.1)
    (a * 1.0).sum().backward()
    opt.step()
    assert a.numpy()[0] != 1.0 and b.numpy()[0] == 1.0


def test_float32_parameters_stay_float32():
    p = Tensor(np.ones(3, np.float32), requires_grad=True)
    for opt in [optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.1), optim.AdamW([p])]:
        (p * p).sum().backward()
        opt.step()
        assert p.data.dtype == np.float32


def test_argument_errors():
    p = Tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError):
        optim.SGD(p, lr=0.1)
    with pytest.raises(TypeError, match="str"):
        optim.Adam(["w"])
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([p * 2], lr=0.1)
    with pytest.raises(ValueError, match="lr"):
        optim.SGD([p], lr=-1)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam([p], betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=str)
def test_fused_kernel_and_numpy_fallback_agree(name, kwargs, dtype):
    # C-contiguous parameters take the compiled kernel, Fortran-ordered ones numpy's path:
    # the same rule in the same precision, so the results are identical bit for bit
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((4, 3)).astype(dtype)
    fast = Tensor(w0, requires_grad=True)
    slow = Tensor(w0.T, requires_grad=True)
    slow.data = np.asfortranarray(w0).T.T.copy(order="F")     # same values, not C-contiguous
    assert not slow.numpy().flags.c_contiguous
    opts = [getattr(optim, name)([p], **kwargs) for p in (fast, slow)]
    for _ in range(5):
        for p, opt in zip((fast, slow), opts):
            opt.zero_grad()
            (p * p * p).sum().backward()
            opt.step()
    np.testing.assert_array_equal(fast.data, slow.data)


def test_read_only_parameter_data_raises_instead_of_silently_skipping():
    p = Tensor([1.0, 2.0], requires_grad=True)
    (p * p).sum().backward()
    p.data = np.broadcast_to(np.array([1.0, 2.0]), (2,))       # a read-only view
    with pytest.raises(ValueError, match="read-only"):
        optim.SGD([p], lr=0.1).step()


def test_kernels_check_their_lists_before_indexing_them():
    # in a child process: before the checks, each of these read past the end of a list
    proc = run_isolated("""
        import numpy as np
        from fastgrad.optim import _kernels
        a, g = np.ones(3), np.ones(3)
        for call in (
            lambda: _kernels.sgd_step([a, a.copy()], [g], [None], [False], 0.5, 0.0, 0.0, False),
            lambda: _kernels.adam_step([a], [g], [a.copy()], [a.copy()], [], 0.1, 0.9, 0.99,
                                       1e-8, 0.0, False),
        ):
            try:
                call()
            except ValueError as exc:
                assert "differ in length" in str(exc)
            else:
                raise AssertionError("lists of different lengths were accepted")
        params = [a, a.copy()]

        class Shrinks:  # a "first step" flag whose truth test empties the caller's list
            def __bool__(self):
                params.clear()
                return True

        assert _kernels.sgd_step(params, [g, g], [None, None], [Shrinks(), Shrinks()], 0.5,
                                 0.0, 0.0, False) == []
        assert a.tolist() == [0.5] * 3
        m = np.zeros(3)
        try:  # a step count that is no integer (a damaged pickle's)
            _kernels.adam_step([a], [g], [m], [np.zeros(3)], ["3"], 0.1, 0.9, 0.99, 1e-8, 0.0,
                               False)
        except TypeError:
            pass
        m.resize(5)  # no buffer of it was left exported by the failed call
        print("ok")
    """)
    assert (proc.returncode, proc.stdout) == (0, "ok\n"), proc.stderr


def test_kernels_take_contiguous_arrays_and_report_the_rest():
    from fastgrad.optim import _kernels
    c = np.ones((3, 4))
    f = np.ones((3, 4), order="F")
    g = np.ones((3, 4))
    assert _kernels.sgd_step([c, f], [g, g], [None, None], [False, False], 0.5, 0.0, 0.0,
                             False) == [1]
    np.testing.assert_array_equal(c, 0.5)
    np.testing.assert_array_equal(f, 1.0)                     # untouched: left to numpy
    m32 = np.ones(3, np.float32)
    assert _kernels.sgd_step([m32], [np.ones(3)], [None], [False], 0.5, 0.0, 0.0,
                             False) == [0]                      # mixed dtypes
