"""fastgrad.nn.utils.clip_grad_norm_ and clip_grad_value_ against torch.nn.utils: clipped
gradients, the returned norm and its dtype, non-finite norms, Values."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastgrad import Tensor, Value, nn

# written for float64 numerics: Python floats make float64 tensors here
pytestmark = pytest.mark.usefixtures("float64_default")

torch = pytest.importorskip("torch", reason="PyTorch not installed: comparisons skipped")

NORM_TYPES = [2.0, 1.0, math.inf, 3.5, 0.5, 2]


@st.composite
def grads(draw):
    shapes = draw(st.lists(st.lists(st.integers(1, 4), max_size=2).map(tuple), min_size=1,
                           max_size=4))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    scale = draw(st.sampled_from([1e-3, 1.0, 50.0]))
    return [np.asarray(scale * rng.standard_normal(s)) for s in shapes]


def _pair(gs, dtype, with_grad=None):
    """The same parameters and gradients in both libraries (None: that one has no grad)."""
    ours, ref = [], []
    for i, g in enumerate(gs):
        p = Tensor(np.zeros_like(g, dtype=dtype), requires_grad=True)
        t = torch.zeros(g.shape, dtype=getattr(torch, np.dtype(dtype).name), requires_grad=True)
        if with_grad is None or with_grad[i]:
            p.grad = g.astype(dtype)
            t.grad = torch.from_numpy(g.astype(dtype))
        ours.append(p)
        ref.append(t)
    return ours, ref


@settings(max_examples=100, deadline=None)
@given(grads(), st.sampled_from(NORM_TYPES), st.sampled_from([0.1, 1.0, 1e4]),
       st.sampled_from([np.float64, np.float32]))
def test_clip_grad_norm_matches_pytorch(gs, norm_type, max_norm, dtype):
    ours, ref = _pair(gs, dtype)
    total = nn.utils.clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(ref, max_norm, norm_type=norm_type)
    tol = dict(rtol=1e-12, atol=0) if dtype == np.float64 else dict(rtol=2e-6, atol=0)
    assert isinstance(total, Tensor) and total.shape == () and total.dtype == dtype
    np.testing.assert_allclose(total.item(), ttotal.item(), **tol)
    for p, t in zip(ours, ref):
        assert p.grad.dtype == dtype
        np.testing.assert_allclose(p.grad, t.grad.numpy(), **tol)


@settings(max_examples=50, deadline=None)
@given(grads(), st.sampled_from([1e-3, 0.5, 10.0]))
def test_clip_grad_value_matches_pytorch(gs, clip):
    ours, ref = _pair(gs, np.float64)
    assert nn.utils.clip_grad_value_(ours, clip) is None
    torch.nn.utils.clip_grad_value_(ref, clip)
    for p, t in zip(ours, ref):
        np.testing.assert_array_equal(p.grad, t.grad.numpy())


def test_parameters_without_grads_a_single_tensor_and_a_generator():
    gs = [np.array([3.0, 4.0]), np.array([1.0]), np.array([[2.0, -2.0]])]
    ours, ref = _pair(gs, np.float64, with_grad=[True, False, True])
    total = nn.utils.clip_grad_norm_((p for p in ours), 1.0)
    ttotal = torch.nn.utils.clip_grad_norm_((t for t in ref), 1.0)
    assert total.item() == pytest.approx(ttotal.item(), rel=1e-12) and ours[1].grad is None
    single, tsingle = _pair([np.array([6.0, 8.0])], np.float64)
    assert nn.utils.clip_grad_norm_(single[0], 5.0).item() == \
        torch.nn.utils.clip_grad_norm_(tsingle[0], 5.0).item()
    np.testing.assert_allclose(single[0].grad, tsingle[0].grad.numpy(), rtol=1e-15)
    # no gradients at all: a zero norm, nothing clipped
    none, _ = _pair(gs, np.float64, with_grad=[False] * 3)
    assert nn.utils.clip_grad_norm_(none, 1.0).item() == 0.0


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_nonfinite_norms(bad):
    gs = [np.array([1.0, bad]), np.array([2.0])]
    for lib, (ps, _) in ((nn, _pair(gs, np.float64)), (torch.nn, _pair(gs, np.float64)[::-1])):
        with pytest.raises(RuntimeError, match="non-finite"):
            lib.utils.clip_grad_norm_(ps, 1.0, error_if_nonfinite=True)
    ours, ref = _pair(gs, np.float64)
    total = nn.utils.clip_grad_norm_(ours, 1.0)               # scaled anyway, as torch does
    ttotal = torch.nn.utils.clip_grad_norm_(ref, 1.0)
    assert math.isnan(total.item()) == math.isnan(ttotal.item())
    for p, t in zip(ours, ref):
        np.testing.assert_array_equal(p.grad, t.grad.numpy())


def test_values_are_clipped_with_tensors():
    w = Tensor([3.0], requires_grad=True)
    v = Value(0.0)
    w.grad, v.grad = np.array([3.0]), 4.0
    total = nn.utils.clip_grad_norm_([w, v], max_norm=1.0)
    assert total.item() == 5.0
    assert w.grad[0] == pytest.approx(0.6) and v.grad == pytest.approx(0.8)
    v.grad = 7.0
    nn.utils.clip_grad_value_([v], 2.0)
    assert v.grad == 2.0
