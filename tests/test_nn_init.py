"""fastgrad.nn.init against torch.nn.init: gains, fans, bounds and statistics of each fill."""
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fastgrad
from fastgrad.nn import init

torch = pytest.importorskip("torch", reason="PyTorch not installed: comparisons skipped")
tinit = torch.nn.init

NONLINEARITIES = ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                  "conv_transpose3d", "sigmoid", "tanh", "relu", "leaky_relu", "selu"]


def same_error(ours, theirs):
    with pytest.raises(Exception) as their_exc:
        theirs()
    with pytest.raises(their_exc.type):
        ours()


@pytest.mark.parametrize("name", NONLINEARITIES)
def test_calculate_gain_as_torch(name):
    assert init.calculate_gain(name) == tinit.calculate_gain(name)
    if name == "leaky_relu":
        for slope in [0, 0.2, 1, 3.5]:
            assert init.calculate_gain(name, slope) == tinit.calculate_gain(name, slope)


@pytest.mark.parametrize("args", [("softmax",), ("leaky_relu", True), ("leaky_relu", "0.1")])
def test_calculate_gain_errors_as_torch(args):
    same_error(lambda: init.calculate_gain(*args), lambda: tinit.calculate_gain(*args))


@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(1, 5), min_size=2, max_size=4))
def test_fans_as_torch(shape):
    ours = init._calculate_fan_in_and_fan_out(fastgrad.zeros(*shape))
    assert ours == tinit._calculate_fan_in_and_fan_out(torch.zeros(*shape))
    for mode in ["fan_in", "fan_out", "FAN_IN"]:
        assert init._calculate_correct_fan(fastgrad.zeros(*shape), mode) == \
            tinit._calculate_correct_fan(torch.zeros(*shape), mode)


@pytest.mark.parametrize("fill", ["xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
                                  "kaiming_normal_"])
def test_fan_errors_as_torch(fill):
    for shape in [(3,), ()]:
        same_error(lambda: getattr(init, fill)(fastgrad.zeros(shape)),
                   lambda: getattr(tinit, fill)(torch.zeros(shape)))
    if fill.startswith("kaiming"):
        same_error(lambda: getattr(init, fill)(fastgrad.zeros(3, 3), mode="fan_avg"),
                   lambda: getattr(tinit, fill)(torch.zeros(3, 3), mode="fan_avg"))
        same_error(lambda: getattr(init, fill)(fastgrad.zeros(3, 3), nonlinearity="softmax"),
                   lambda: getattr(tinit, fill)(torch.zeros(3, 3), nonlinearity="softmax"))


def big(*shape, dtype=None):
    return fastgrad.empty(*shape, dtype=dtype)


def test_uniform_and_normal():
    g = fastgrad.Generator().manual_seed(0)
    w = big(300, 400)
    assert init.uniform_(w, -2.0, 3.0, generator=g) is w
    a = w.numpy()
    assert a.dtype == np.float32 and a.min() >= -2.0 and a.max() < 3.0
    assert abs(a.mean() - 0.5) < 0.02 and abs(a.std() - 5 / math.sqrt(12)) < 0.02
    init.normal_(w, 1.0, 0.5, generator=g)
    assert abs(w.numpy().mean() - 1.0) < 0.005 and abs(w.numpy().std() - 0.5) < 0.005
    d = big(100_000, dtype=fastgrad._tensor.dtype.float64)
    init.normal_(d, generator=g)
    assert d.numpy().dtype == np.float64 and abs(d.numpy().std() - 1.0) < 0.01


def test_fills_are_seeded():
    for fill in [init.uniform_, init.normal_, init.xavier_uniform_, init.xavier_normal_,
                 init.kaiming_uniform_, init.kaiming_normal_, init.trunc_normal_,
                 init.orthogonal_]:
        a = fill(big(4, 5), generator=fastgrad.Generator().manual_seed(1)).numpy().copy()
        b = fill(big(4, 5), generator=fastgrad.Generator().manual_seed(1)).numpy()
        np.testing.assert_array_equal(a, b)
        fastgrad.manual_seed(2)
        c = fill(big(4, 5)).numpy().copy()
        fastgrad.manual_seed(2)
        np.testing.assert_array_equal(fill(big(4, 5)).numpy(), c)
        assert not np.array_equal(a, c)


@pytest.mark.parametrize("shape", [(200, 300), (64, 32, 3, 3), (500, 40, 5)])
@pytest.mark.parametrize("gain", [1.0, 2.5])
def test_xavier_bounds_and_std(shape, gain):
    fan_in, fan_out = tinit._calculate_fan_in_and_fan_out(torch.empty(shape))
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    u = init.xavier_uniform_(big(*shape), gain=gain).numpy()
    bound = math.sqrt(3.0) * std
    assert np.abs(u).max() <= bound and np.abs(u).max() > 0.99 * bound
    assert abs(u.std() / std - 1) < 0.02
    n = init.xavier_normal_(big(*shape), gain=gain).numpy()
    assert abs(n.std() / std - 1) < 0.02 and abs(n.mean()) < 0.02 * std


@pytest.mark.parametrize("shape", [(200, 300), (64, 32, 3, 3), (500, 40, 5)])
@pytest.mark.parametrize("a, mode, nonlinearity", [(0, "fan_in", "leaky_relu"),
                                                   (math.sqrt(5), "fan_in", "leaky_relu"),
                                                   (0, "fan_out", "relu"),
                                                   (0.1, "fan_out", "tanh")])
def test_kaiming_bounds_and_std(shape, a, mode, nonlinearity):
    fan = tinit._calculate_correct_fan(torch.empty(shape), mode)
    std = tinit.calculate_gain(nonlinearity, a) / math.sqrt(fan)
    u = init.kaiming_uniform_(big(*shape), a=a, mode=mode, nonlinearity=nonlinearity).numpy()
    bound = math.sqrt(3.0) * std
    assert np.abs(u).max() <= bound and np.abs(u).max() > 0.99 * bound
    assert abs(u.std() / std - 1) < 0.02
    n = init.kaiming_normal_(big(*shape), a=a, mode=mode, nonlinearity=nonlinearity).numpy()
    assert abs(n.std() / std - 1) < 0.02


def test_kaiming_on_zero_element_tensors_warns_as_torch():
    for fill in ["kaiming_uniform_", "kaiming_normal_"]:
        with pytest.warns(UserWarning, match="zero-element"):
            getattr(tinit, fill)(torch.empty(0, 3))
        with pytest.warns(UserWarning, match="zero-element"):
            t = fastgrad.empty(0, 3)
            assert getattr(init, fill)(t) is t


def test_linear_layer_default_init_bound():
    """PyTorch's Linear draws weights with kaiming_uniform_(a=sqrt(5)): U(+-1/sqrt(fan_in))."""
    w = init.kaiming_uniform_(big(64, 256), a=math.sqrt(5)).numpy()
    assert np.abs(w).max() <= 1 / math.sqrt(256) and np.abs(w).max() > 0.99 / math.sqrt(256)


@pytest.mark.parametrize("mean, std, a, b", [(0.0, 1.0, -2.0, 2.0), (0.0, 0.02, -0.04, 0.04),
                                             (1.0, 2.0, 0.0, 10.0), (0.0, 1.0, -0.5, 3.0),
                                             (0.0, 1.0, 0.5, 0.6)])
def test_trunc_normal_bounds_and_moments(mean, std, a, b):
    t = init.trunc_normal_(big(100_000, dtype=fastgrad._tensor.dtype.float64), mean, std, a, b,
                           generator=fastgrad.Generator().manual_seed(0)).numpy()
    assert t.min() >= a and t.max() <= b
    alpha, beta = (a - mean) / std, (b - mean) / std
    pdf = lambda x: math.exp(-x * x / 2) / math.sqrt(2 * math.pi)
    cdf = lambda x: 0.5 * (1 + math.erf(x / math.sqrt(2)))
    z = cdf(beta) - cdf(alpha)
    expected_mean = mean + std * (pdf(alpha) - pdf(beta)) / z
    expected_var = std ** 2 * (1 + (alpha * pdf(alpha) - beta * pdf(beta)) / z
                               - ((pdf(alpha) - pdf(beta)) / z) ** 2)
    assert abs(t.mean() - expected_mean) < 0.02 * math.sqrt(expected_var) + 1e-12
    assert abs(t.var() / expected_var - 1) < 0.03


def test_trunc_normal_far_in_the_tail_warns_as_torch_and_stays_in_bounds():
    with pytest.warns(UserWarning, match="more than 2 std"):
        tinit.trunc_normal_(torch.empty(10), mean=0.0, std=1.0, a=5.0, b=6.0)
    with pytest.warns(UserWarning, match="more than 2 std"):
        t = init.trunc_normal_(big(20_000, dtype=fastgrad._tensor.dtype.float64), 0.0, 1.0,
                               5.0, 6.0).numpy()
    assert t.min() >= 5.0 and t.max() <= 6.0
    assert abs(t.mean() - 5.1865) < 0.01     # E[Z | 5 <= Z <= 6]


def test_constant_ones_zeros_eye_dirac_as_torch():
    for shape in [(3, 4), (2, 3, 5)]:
        for ours, theirs in [(lambda t: init.constant_(t, 0.25), lambda t: tinit.constant_(t, 0.25)),
                             (init.ones_, tinit.ones_), (init.zeros_, tinit.zeros_)]:
            t = fastgrad.empty(*shape)
            assert ours(t) is t
            np.testing.assert_array_equal(t.numpy(), theirs(torch.empty(shape)).numpy())
    for shape in [(3, 4), (4, 3), (2, 2)]:
        np.testing.assert_array_equal(init.eye_(fastgrad.empty(*shape)).numpy(),
                                      tinit.eye_(torch.empty(shape)).numpy())
    same_error(lambda: init.eye_(fastgrad.empty(2, 2, 2)), lambda: tinit.eye_(torch.empty(2, 2, 2)))
    for shape, groups in [((4, 4, 3), 1), ((6, 3, 3, 3), 2), ((4, 2, 3, 3, 3), 1), ((2, 5, 1), 1)]:
        np.testing.assert_array_equal(init.dirac_(fastgrad.empty(*shape), groups).numpy(),
                                      tinit.dirac_(torch.empty(shape), groups).numpy())
    same_error(lambda: init.dirac_(fastgrad.empty(3, 3)), lambda: tinit.dirac_(torch.empty(3, 3)))
    same_error(lambda: init.dirac_(fastgrad.empty(5, 3, 3), 2),
               lambda: tinit.dirac_(torch.empty(5, 3, 3), 2))


@pytest.mark.parametrize("shape", [(5, 5), (3, 7), (7, 3), (4, 2, 3, 3)])
def test_orthogonal(shape):
    w = init.orthogonal_(fastgrad.empty(*shape, dtype=fastgrad._tensor.dtype.float64), gain=2.0)
    flat = w.numpy().reshape(shape[0], -1) / 2.0
    rows, cols = flat.shape
    gram = flat @ flat.T if rows <= cols else flat.T @ flat
    np.testing.assert_allclose(gram, np.eye(min(rows, cols)), atol=1e-12)
    same_error(lambda: init.orthogonal_(fastgrad.empty(3)),
               lambda: tinit.orthogonal_(torch.empty(3)))


def test_random_fills_refuse_integer_tensors_as_torch():
    for fill in ["uniform_", "normal_", "xavier_uniform_", "kaiming_normal_"]:
        same_error(lambda: getattr(init, fill)(fastgrad.zeros(3, 3, dtype=fastgrad._tensor.dtype.int64)),
                   lambda: getattr(tinit, fill)(torch.zeros(3, 3, dtype=torch.int64)))


def test_init_writes_in_place_without_recording():
    w = fastgrad.zeros(4, 3, requires_grad=True)
    data = w.numpy()
    init.kaiming_uniform_(w, a=math.sqrt(5))
    assert w.numpy() is data and w.requires_grad and w.is_leaf
    assert np.any(data != 0)
    (w * 2.0).sum().backward()
    np.testing.assert_array_equal(np.asarray(w.grad), np.full((4, 3), 2.0))


def test_a_model_initialized_by_a_script():
    """How scripts use nn.init: a module-free MLP initialized by hand, then trained a step."""
    fastgrad.manual_seed(0)
    w1 = fastgrad.empty(8, 4, requires_grad=True)
    b1 = fastgrad.empty(8, requires_grad=True)
    w2 = fastgrad.empty(1, 8, requires_grad=True)
    init.kaiming_normal_(w1, nonlinearity="relu")
    init.zeros_(b1)
    init.xavier_uniform_(w2, gain=init.calculate_gain("linear"))
    x = fastgrad.randn(16, 4)
    hidden = (x @ w1.T + b1).relu()
    loss = ((hidden @ w2.T) ** 2).mean()
    loss.backward()
    assert w1.grad is not None and np.all(np.isfinite(np.asarray(w1.grad)))
    assert b1.numpy().tolist() == [0.0] * 8
