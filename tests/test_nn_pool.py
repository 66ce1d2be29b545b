"""max_pool2d, avg_pool2d, adaptive_avg_pool2d, adaptive_max_pool2d, interpolate and
dropout2d of fastgrad.nn.functional against torch.nn.functional: values, indices and
gradients in float64 (1e-10) and float32 (1e-5) over hypothesis-drawn windows, central
differences, and the error types of impossible arguments."""

import warnings

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

import fastgrad
import fastgrad.nn.functional as F
from fastgrad.autograd import gradcheck
from _torch_compare import check, check_raises, distinct, rand, torch

RTOL = {"float64": 1e-10, "float32": 1e-5}
SETTINGS = settings(max_examples=25, deadline=None)
DTYPES = st.sampled_from(["float64", "float32"])


def nnf(lib):
    return lib.nn.functional


@st.composite
def windows(draw, dilated=True):
    """(input shape, kernel, stride, padding, dilation) PyTorch's pooling accepts: padding at
    most half the effective kernel, the padded input at least the effective kernel."""
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(2))
    dilation = tuple(draw(st.integers(1, 2)) if dilated else 1 for _ in range(2))
    effective = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)   # PyTorch's bound
    stride = tuple(draw(st.integers(1, 3)) for _ in range(2))
    sizes = tuple(max(1, e - 2 * p + draw(st.integers(0, 4)))
                  for e, p in zip(effective, padding))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3))) + sizes
    if draw(st.booleans()):
        shape = shape[1:]   # unbatched
    return shape, kernel, stride, padding, dilation


def _all_windows_touch_the_image(shape, kernel, stride, padding, dilation, ceil_mode):
    """False if some window (dilated) sees only padding: PyTorch gives -inf there."""
    for n, k, s, p, d in zip(shape[-2:], kernel, stride, padding, dilation):
        span = n + 2 * p - d * (k - 1) - 1
        count = (span + (s - 1 if ceil_mode else 0)) // s + 1
        if ceil_mode and (count - 1) * s >= n + p:
            count -= 1
        for i in range(count):
            if not any(0 <= i * s - p + d * j < n for j in range(k)):
                return False
    return True


@SETTINGS
@given(windows(), st.booleans(), DTYPES, st.integers(0, 2**16))
def test_max_pool2d_matches_torch(case, ceil_mode, dtype, seed):
    shape, kernel, stride, padding, dilation = case
    assume(_all_windows_touch_the_image(shape, kernel, stride, padding, dilation, ceil_mode))
    check(lambda lib, x: nnf(lib).max_pool2d(x, kernel, stride, padding, dilation,
                                             ceil_mode=ceil_mode, return_indices=True),
          distinct(shape, dtype, seed), rtol=RTOL[dtype])


@SETTINGS
@given(windows(dilated=False), st.booleans(), st.booleans(),
       st.sampled_from([None, 1, 3]), DTYPES, st.integers(0, 2**16))
def test_avg_pool2d_matches_torch(case, ceil_mode, count_include_pad, divisor, dtype, seed):
    shape, kernel, stride, padding, _ = case
    check(lambda lib, x: nnf(lib).avg_pool2d(x, kernel, stride, padding, ceil_mode,
                                             count_include_pad, divisor),
          rand(shape, dtype, seed), rtol=RTOL[dtype])


@st.composite
def adaptive_cases(draw):
    sizes = (draw(st.integers(1, 9)), draw(st.integers(1, 9)))
    out = tuple(draw(st.one_of(st.integers(1, s + 2), st.none())) for s in sizes)
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3))) + sizes
    return shape, (out if draw(st.booleans()) or None in out else out[0])


@SETTINGS
@given(adaptive_cases(), DTYPES, st.integers(0, 2**16))
def test_adaptive_pools_match_torch(case, dtype, seed):
    shape, out = case
    check(lambda lib, x: nnf(lib).adaptive_avg_pool2d(x, out), rand(shape, dtype, seed),
          rtol=RTOL[dtype])
    check(lambda lib, x: nnf(lib).adaptive_max_pool2d(x, out, return_indices=True),
          distinct(shape, dtype, seed), rtol=RTOL[dtype])


@pytest.mark.parametrize("fn", [
    lambda lib, x: nnf(lib).max_pool2d(x, 5),                        # kernel = input size
    lambda lib, x: nnf(lib).max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True),
    lambda lib, x: nnf(lib).max_pool2d(x, [2, 3], dilation=2, padding=(1, 1)),
    lambda lib, x: nnf(lib).max_pool2d(x, 1),
    lambda lib, x: nnf(lib).max_pool2d(x, 2, stride=[]),             # empty stride = kernel
    lambda lib, x: nnf(lib).avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True,
                                       count_include_pad=False),
    lambda lib, x: nnf(lib).avg_pool2d(x, 5),
    lambda lib, x: nnf(lib).adaptive_avg_pool2d(x, 1),
    lambda lib, x: nnf(lib).adaptive_avg_pool2d(x, (7, 3)),          # larger than the input
    lambda lib, x: nnf(lib).adaptive_max_pool2d(x, (None, 2)),
])
def test_pool_edge_cases(fn):
    check(fn, distinct((2, 3, 5, 5)), rtol=1e-10)


def test_max_pool2d_window_of_padding_only():
    # PyTorch returns -inf there, with an index outside the window; fastgrad refuses the
    # window by name (a documented difference)
    x = fastgrad.tensor(rand((1, 1, 1, 1)))
    with pytest.raises(RuntimeError, match="reads only padding"):
        F.max_pool2d(x, (1, 2), 1, (0, 1), (1, 2))


def test_adaptive_pools_to_an_empty_output():
    # PyTorch computes the empty result but refuses its backward; fastgrad's gradient is zeros
    check(lambda lib, x: nnf(lib).adaptive_avg_pool2d(x, 0), distinct((2, 3, 5, 5)), grad=False)
    check(lambda lib, x: nnf(lib).adaptive_max_pool2d(x, (0, 2), True), distinct((2, 3, 5, 5)),
          grad=False)


def test_max_pool2d_indices_are_flat_plane_positions():
    x = fastgrad.tensor(distinct((1, 2, 4, 6)))
    out, idx = F.max_pool2d(x, 2, return_indices=True)
    assert idx.dtype == fastgrad.int64
    flat = x.numpy().reshape(1, 2, -1)
    np.testing.assert_array_equal(np.take_along_axis(flat, idx.numpy().reshape(1, 2, -1), 2),
                                  out.numpy().reshape(1, 2, -1))


def test_pool_gradients_against_finite_differences():
    rng = np.random.default_rng(0)
    # distinct values far apart, so that no window's maximum is within eps of another value
    x = fastgrad.tensor(rng.permutation(2 * 3 * 6 * 7).reshape(2, 3, 6, 7) * 0.1,
                        requires_grad=True)
    assert gradcheck(lambda x: F.max_pool2d(x, 3, 2, 1, 1, True), [x])
    assert gradcheck(lambda x: F.adaptive_max_pool2d(x, (4, 3)), [x])
    y = fastgrad.tensor(rng.standard_normal((2, 3, 6, 7)), requires_grad=True)
    assert gradcheck(lambda y: F.avg_pool2d(y, 3, 2, 1, True, False), [y])
    assert gradcheck(lambda y: F.adaptive_avg_pool2d(y, (4, 5)), [y])
    assert gradcheck(lambda y: F.interpolate(y, scale_factor=1.5, mode="bilinear"), [y])
    assert gradcheck(lambda y: F.interpolate(y, size=(3, 9)), [y])


X = rand((2, 3, 5, 5))


@pytest.mark.parametrize("exc, fn", [
    (RuntimeError, lambda lib, x: nnf(lib).max_pool2d(x, 2, padding=2)),
    (RuntimeError, lambda lib, x: nnf(lib).max_pool2d(x, 2, padding=2, dilation=3)),
    (RuntimeError, lambda lib, x: nnf(lib).max_pool2d(x, 2, stride=0)),
    (RuntimeError, lambda lib, x: nnf(lib).max_pool2d(x, 2, padding=-1)),
    (RuntimeError, lambda lib, x: nnf(lib).max_pool2d(x, 0)),
    (RuntimeError, lambda lib, x: nnf(lib).max_pool2d(x, 2, dilation=0)),
    (RuntimeError, lambda lib, x: nnf(lib).max_pool2d(x, (2, 2, 2))),
    (RuntimeError, lambda lib, x: nnf(lib).max_pool2d(x, 7)),                 # too large
    (RuntimeError, lambda lib, x: nnf(lib).max_pool2d(x[0, 0], 2)),           # 2-D input
    (RuntimeError, lambda lib, x: nnf(lib).avg_pool2d(x, 2, padding=2)),
    (RuntimeError, lambda lib, x: nnf(lib).avg_pool2d(x, 7)),
    (RuntimeError, lambda lib, x: nnf(lib).avg_pool2d(x, 2, stride=0)),
    (RuntimeError, lambda lib, x: nnf(lib).avg_pool2d(x, 2, padding=-1)),
    (RuntimeError, lambda lib, x: nnf(lib).avg_pool2d(x, 2, divisor_override=0)),
    (IndexError, lambda lib, x: nnf(lib).avg_pool2d(x[0, 0], 2)),
    (RuntimeError, lambda lib, x: nnf(lib).adaptive_avg_pool2d(x, -1)),
    (RuntimeError, lambda lib, x: nnf(lib).adaptive_avg_pool2d(x, (1, 2, 3))),
    (RuntimeError, lambda lib, x: nnf(lib).adaptive_avg_pool2d(x[0, 0], 2)),
    (RuntimeError, lambda lib, x: nnf(lib).adaptive_max_pool2d(x[0, 0], 2)),
    (ValueError, lambda lib, x: nnf(lib).interpolate(x, size=3, scale_factor=2)),
    (ValueError, lambda lib, x: nnf(lib).interpolate(x)),
    (ValueError, lambda lib, x: nnf(lib).interpolate(x, scale_factor=2, align_corners=True)),
    (ValueError, lambda lib, x: nnf(lib).interpolate(x, size=(2, 2, 2))),
    (ValueError, lambda lib, x: nnf(lib).interpolate(x, size=3, recompute_scale_factor=True)),
    (NotImplementedError, lambda lib, x: nnf(lib).interpolate(x[0], scale_factor=2,
                                                              mode="bilinear")),
    (NotImplementedError, lambda lib, x: nnf(lib).interpolate(x, scale_factor=2,
                                                              mode="linear")),
    (RuntimeError, lambda lib, x: nnf(lib).interpolate(x, size=0)),
    (RuntimeError, lambda lib, x: nnf(lib).interpolate(x, scale_factor=0.1)),
    (ValueError, lambda lib, x: nnf(lib).dropout2d(x, 1.5)),
])
def test_errors_have_torchs_types(exc, fn):
    check_raises(exc, fn, X)


# -- interpolate ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kwargs", [
    dict(scale_factor=2), dict(scale_factor=3), dict(scale_factor=0.5), dict(size=(7, 3)),
    dict(scale_factor=(1.7, 0.6)), dict(scale_factor=1.7, recompute_scale_factor=True),
    dict(size=4, mode="bilinear"), dict(scale_factor=2, mode="bilinear"),
    dict(scale_factor=(0.6, 2.5), mode="bilinear"),
    dict(scale_factor=1.3, mode="bilinear", recompute_scale_factor=True),
    dict(size=(9, 2), mode="bilinear", align_corners=True),
    dict(size=(1, 1), mode="bilinear", align_corners=True),
    dict(scale_factor=2.5, mode="bilinear", align_corners=False),
    dict(size=(2, 3), mode="area"),
])
def test_interpolate_4d_matches_torch(kwargs, dtype):
    check(lambda lib, x: nnf(lib).interpolate(x, **kwargs), rand((2, 3, 5, 4), dtype),
          rtol=RTOL[dtype])


@pytest.mark.parametrize("kwargs", [
    dict(scale_factor=2), dict(size=9), dict(scale_factor=0.7), dict(size=[2]),
    dict(size=7, mode="linear"), dict(scale_factor=1.5, mode="linear", align_corners=True),
    dict(scale_factor=1.2),
])
def test_interpolate_3d_matches_torch(kwargs):
    check(lambda lib, x: nnf(lib).interpolate(x, **kwargs), rand((2, 3, 5)), rtol=1e-10)


@pytest.mark.parametrize("factor", [1.1, 2.1])
def test_interpolate_3d_nearest_to_the_input_size_or_twice_it(factor):
    # PyTorch's 1-D nearest kernel reads floor(dst / factor) even when the output has the
    # input's size (or twice it), where its 2-D kernel reads dst (or dst // 2). fastgrad's
    # values follow; its gradient is the one of those values, while PyTorch's 1-D backward
    # takes the shortcut (it sends each output's gradient to dst or dst // 2), so gradients
    # are compared with the reads, not with PyTorch
    x = rand((2, 3, 5))
    check(lambda lib, t: nnf(lib).interpolate(t, scale_factor=factor), x, rtol=1e-10,
          grad=False)
    t = fastgrad.tensor(x, requires_grad=True)
    out = F.interpolate(t, scale_factor=factor)
    weights = np.random.default_rng(3).standard_normal(out.shape)
    (out * fastgrad.tensor(weights)).sum().backward()
    reads = np.minimum(np.floor(np.arange(out.shape[2], dtype=np.float32)
                                * np.float32(1 / factor)).astype(int), 4)
    expected = np.zeros_like(x)
    np.add.at(expected, (slice(None), slice(None), reads), weights)
    np.testing.assert_allclose(t.grad.numpy(), expected, rtol=1e-12)


@SETTINGS
@given(st.integers(1, 6), st.integers(1, 6), st.floats(0.3, 3.5), st.booleans(),
       st.sampled_from(["nearest", "bilinear"]), DTYPES)
def test_interpolate_scale_factors_match_torch(h, w, factor, recompute, mode, dtype):
    if int(h * factor) < 1 or int(w * factor) < 1:
        return
    check(lambda lib, x: nnf(lib).interpolate(x, scale_factor=factor, mode=mode,
                                              recompute_scale_factor=recompute),
          rand((1, 2, h, w), dtype), rtol=RTOL[dtype])


# -- dropout2d -----------------------------------------------------------------------------

def test_dropout2d_zeroes_whole_channels_and_scales_the_rest():
    fastgrad.manual_seed(0)
    x = fastgrad.tensor(np.ones((8, 16, 3, 3)), requires_grad=True)
    y = F.dropout2d(x, 0.25)
    v = y.numpy()
    assert set(np.unique(v)) <= {0.0, 1 / 0.75}
    assert (v == v[:, :, :1, :1]).all()                      # one draw per channel
    assert 0 < (v[:, :, 0, 0] == 0).sum() < 8 * 16
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), v)        # the gradient is the mask
    assert F.dropout2d(x, 0.25, training=False) is x
    assert F.dropout2d(x, 0.0) is x
    assert (F.dropout2d(x, 1.0).numpy() == 0).all()


def test_dropout2d_3d_input_is_channelwise_1d_with_torchs_warning():
    fastgrad.manual_seed(1)
    x = fastgrad.tensor(np.ones((4, 5, 6)))
    with pytest.warns(UserWarning, match="Received a 3D input to dropout2d"):
        v = F.dropout2d(x, 0.5).numpy()
    assert (v == v[:, :, :1]).all()                          # (N, C, L): mask over N and C
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.warns(UserWarning, match="Received a 3D input"):
            torch.nn.functional.dropout2d(torch.ones(4, 5, 6), 0.5)


def test_dropout2d_other_ranks_warn_as_torch():
    x = fastgrad.tensor(np.ones((4, 5)))
    with pytest.warns(UserWarning, match="Received a 2-D input to dropout2d"):
        F.dropout2d(x, 0.5)
