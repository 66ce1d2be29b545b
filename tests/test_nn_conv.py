"""conv1d, conv2d, conv_transpose2d, unfold and fold of fastgrad.nn.functional against
torch.nn.functional: values and gradients of input, weight and bias in float64 (1e-10) and
float32 (1e-5) over hypothesis-drawn shapes and arguments (kernel = padded input size, 1x1
kernels, groups = channels, 'same' with even kernels), central differences, and the error
types of impossible arguments and shapes."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fastgrad
import fastgrad.nn.functional as F
from fastgrad.autograd import gradcheck
from _torch_compare import check, check_raises, rand, torch

RTOL = {"float64": 1e-10, "float32": 1e-5}
SETTINGS = settings(max_examples=25, deadline=None)
# PyTorch's performance note for 'same' with an even kernel (it pads a copy; fastgrad's core
# takes the asymmetric padding directly, so fastgrad has nothing to warn about)
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
DTYPES = st.sampled_from(["float64", "float32"])


def nnf(lib):
    return lib.nn.functional


@st.composite
def conv_cases(draw, spatial=2):
    """(input shape, weight shape, stride, padding, dilation, groups, bias?) that PyTorch
    accepts: the padded input is at least the effective kernel."""
    groups = draw(st.integers(1, 3))
    c_in = groups * draw(st.integers(1, 2))
    c_out = groups * draw(st.integers(1, 2))
    n = draw(st.integers(1, 3))
    kernel = [draw(st.integers(1, 4)) for _ in range(spatial)]
    dilation = [draw(st.integers(1, 2)) for _ in range(spatial)]
    if draw(st.integers(0, 4)) == 0:
        padding = draw(st.sampled_from(["same", "valid"]))
        stride = [1] * spatial
    else:
        stride = [draw(st.integers(1, 3)) for _ in range(spatial)]
        padding = [draw(st.integers(0, 3)) for _ in range(spatial)]
    sizes = []
    for i in range(spatial):
        effective = dilation[i] * (kernel[i] - 1) + 1
        pad = 2 * padding[i] if isinstance(padding, list) else 0
        sizes.append(max(1, effective - pad + draw(st.integers(0, 4))))
    return ((n, c_in, *sizes), (c_out, c_in // groups, *kernel), tuple(stride),
            tuple(padding) if isinstance(padding, list) else padding, tuple(dilation), groups,
            draw(st.booleans()))


@SETTINGS
@given(conv_cases(), DTYPES, st.integers(0, 2**16))
def test_conv2d_matches_torch(case, dtype, seed):
    x_shape, w_shape, stride, padding, dilation, groups, has_bias = case
    arrays = [rand(x_shape, dtype, seed), rand(w_shape, dtype, seed + 1)]
    if has_bias:
        arrays.append(rand((w_shape[0],), dtype, seed + 2))
    check(lambda lib, x, w, *b: nnf(lib).conv2d(x, w, *b, stride=stride, padding=padding,
                                                dilation=dilation, groups=groups),
          *arrays, rtol=RTOL[dtype])


@SETTINGS
@given(conv_cases(spatial=1), DTYPES, st.integers(0, 2**16))
def test_conv1d_matches_torch(case, dtype, seed):
    x_shape, w_shape, stride, padding, dilation, groups, has_bias = case
    arrays = [rand(x_shape, dtype, seed), rand(w_shape, dtype, seed + 1)]
    if has_bias:
        arrays.append(rand((w_shape[0],), dtype, seed + 2))
    # ints where the case has 1-tuples: conv1d's arguments as scripts usually write them
    check(lambda lib, x, w, *b: nnf(lib).conv1d(
        x, w, *b, stride=stride[0], padding=padding if isinstance(padding, str) else padding[0],
        dilation=dilation[0], groups=groups), *arrays, rtol=RTOL[dtype])


@st.composite
def transpose_cases(draw):
    groups = draw(st.integers(1, 3))
    c_in = groups * draw(st.integers(1, 2))
    c_out = groups * draw(st.integers(1, 2))
    kernel = [draw(st.integers(1, 4)) for _ in range(2)]
    stride = [draw(st.integers(1, 3)) for _ in range(2)]
    dilation = [draw(st.integers(1, 2)) for _ in range(2)]
    extra = [draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation)]
    sizes = [draw(st.integers(1, 5)) for _ in range(2)]
    # padding up to what keeps the output at least 1 wide
    padding = []
    for i in range(2):
        full = (sizes[i] - 1) * stride[i] + dilation[i] * (kernel[i] - 1) + extra[i] + 1
        padding.append(draw(st.integers(0, (full - 1) // 2)))
    return ((draw(st.integers(1, 2)), c_in, *sizes), (c_in, c_out // groups, *kernel),
            tuple(stride), tuple(padding), tuple(extra), groups, tuple(dilation),
            draw(st.booleans()))


@SETTINGS
@given(transpose_cases(), DTYPES, st.integers(0, 2**16))
def test_conv_transpose2d_matches_torch(case, dtype, seed):
    x_shape, w_shape, stride, padding, extra, groups, dilation, has_bias = case
    arrays = [rand(x_shape, dtype, seed), rand(w_shape, dtype, seed + 1)]
    if has_bias:
        arrays.append(rand((w_shape[1] * groups,), dtype, seed + 2))
    check(lambda lib, x, w, *b: nnf(lib).conv_transpose2d(
        x, w, *b, stride=stride, padding=padding, output_padding=extra, groups=groups,
        dilation=dilation),
          *arrays, rtol=RTOL[dtype])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kwargs, x_shape, w_shape", [
    (dict(), (2, 3, 5, 5), (4, 3, 5, 5)),                      # kernel = input size
    (dict(padding=2), (1, 2, 3, 3), (3, 2, 7, 7)),             # kernel = padded input size
    (dict(), (2, 3, 4, 5), (6, 3, 1, 1)),                      # 1x1
    (dict(groups=4), (2, 4, 6, 6), (8, 1, 3, 3)),              # depthwise: groups = channels
    (dict(padding="same"), (1, 2, 6, 7), (3, 2, 4, 2)),        # 'same' with even kernels
    (dict(padding="same", dilation=(2, 3)), (1, 2, 9, 9), (3, 2, 2, 3)),
    (dict(padding=(0, 2), stride=(3, 1)), (2, 1, 7, 3), (2, 1, 2, 4)),
    (dict(padding=[1], stride=[2], dilation=[2]), (1, 2, 7, 7), (2, 2, 3, 3)),  # 1-lists
    (dict(), (3, 5, 5), (4, 3, 3, 3)),                         # unbatched
    (dict(), (0, 3, 5, 5), (4, 3, 3, 3)),                      # empty batch
])
def test_conv2d_edge_cases(dtype, kwargs, x_shape, w_shape):
    bias = rand((w_shape[0],), dtype, 3)
    check(lambda lib, x, w, b: nnf(lib).conv2d(x, w, b, **kwargs),
          rand(x_shape, dtype, 1), rand(w_shape, dtype, 2), bias, rtol=RTOL[dtype])


@pytest.mark.parametrize("kwargs, x_shape, w_shape", [
    (dict(padding="same"), (2, 3, 7), (4, 3, 4)),
    (dict(), (3, 6), (2, 3, 2)),                               # unbatched
    (dict(groups=3, stride=2), (1, 3, 9), (6, 1, 3)),
])
def test_conv1d_edge_cases(kwargs, x_shape, w_shape):
    check(lambda lib, x, w: nnf(lib).conv1d(x, w, **kwargs), rand(x_shape, "float64", 1),
          rand(w_shape, "float64", 2), rtol=1e-10)


def test_conv_transpose2d_unbatched_and_int_args():
    check(lambda lib, x, w, b: nnf(lib).conv_transpose2d(x, w, b, stride=2, padding=1,
                                                         output_padding=1),
          rand((3, 4, 4), "float64", 1), rand((3, 2, 3, 3), "float64", 2),
          rand((2,), "float64", 3), rtol=1e-10)


@st.composite
def block_cases(draw):
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(2))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(2))
    padding = tuple(draw(st.integers(0, 2)) for _ in range(2))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(2))
    sizes = tuple(max(1, d * (k - 1) + 1 - 2 * p + draw(st.integers(0, 4)))
                  for k, d, p in zip(kernel, dilation, padding))
    return (draw(st.integers(1, 2)), draw(st.integers(1, 3))) + sizes, kernel, dilation, \
        padding, stride


@SETTINGS
@given(block_cases(), DTYPES, st.integers(0, 2**16))
def test_unfold_and_fold_match_torch(case, dtype, seed):
    shape, kernel, dilation, padding, stride = case
    out = check(lambda lib, x: nnf(lib).unfold(x, kernel, dilation, padding, stride),
                rand(shape, dtype, seed), rtol=RTOL[dtype])
    # fold takes unfold's output shape back to the image (summing overlaps)
    check(lambda lib, c: nnf(lib).fold(c, shape[2:], kernel, dilation, padding, stride),
          rand(tuple(out.shape), dtype, seed + 1), rtol=RTOL[dtype])


def test_unfold_fold_unbatched():
    check(lambda lib, x: nnf(lib).unfold(x, 2, padding=1), rand((2, 3, 3)), rtol=1e-10)
    check(lambda lib, c: nnf(lib).fold(c, (3, 4), 2), rand((8, 6)), rtol=1e-10)


def test_conv_gradients_against_finite_differences():
    rng = np.random.default_rng(0)

    def t(*shape):
        return fastgrad.tensor(rng.standard_normal(shape), requires_grad=True)

    x, w, b = t(2, 4, 5, 5), t(6, 2, 3, 2), t(6)
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=(1, 2),
                                              dilation=(1, 2), groups=2), [x, w, b])
    assert gradcheck(lambda x, w: F.conv2d(x, w, padding="same"), [t(1, 2, 4, 4),
                                                                    t(2, 2, 2, 2)])
    assert gradcheck(lambda x, w: F.conv1d(x, w, stride=2, padding=1), [t(2, 3, 7),
                                                                        t(2, 3, 3)])
    assert gradcheck(lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1,
                                                        output_padding=1, groups=2),
                     [t(1, 4, 3, 3), t(4, 1, 3, 3), t(2)])
    assert gradcheck(lambda x: F.unfold(x, 2, dilation=2, padding=1, stride=2),
                     [t(1, 2, 5, 5)])
    assert gradcheck(lambda c: F.fold(c, (4, 5), 2, stride=(2, 1)), [t(2, 8, 8)])


def test_float32_gradients_stay_float32():
    x = fastgrad.tensor(rand((1, 2, 4, 4), "float32"), requires_grad=True)
    w = fastgrad.tensor(rand((3, 2, 2, 2), "float32", 1), requires_grad=True)
    F.conv2d(x, w).sum().backward()
    assert x.grad.dtype == fastgrad.float32 and w.grad.dtype == fastgrad.float32


X = rand((2, 3, 5, 5))
W = rand((4, 3, 3, 3), seed=1)


@pytest.mark.parametrize("exc, fn, arrays", [
    (RuntimeError, lambda lib, x, w: nnf(lib).conv2d(x, w, padding=-1), (X, W)),
    (RuntimeError, lambda lib, x, w: nnf(lib).conv2d(x, w, stride=0), (X, W)),
    (RuntimeError, lambda lib, x, w: nnf(lib).conv2d(x, w, dilation=0), (X, W)),
    (RuntimeError, lambda lib, x, w: nnf(lib).conv2d(x, w, groups=0), (X, W)),
    (RuntimeError, lambda lib, x, w: nnf(lib).conv2d(x, w, padding="same", stride=2), (X, W)),
    (RuntimeError, lambda lib, x, w: nnf(lib).conv2d(x, w, padding="full"), (X, W)),
    (RuntimeError, lambda lib, x, w: nnf(lib).conv2d(x, w, stride=(1, 1, 1)), (X, W)),
    (TypeError, lambda lib, x, w: nnf(lib).conv2d(x, w, stride=1.5), (X, W)),
    (RuntimeError, lambda lib, x, w: nnf(lib).conv2d(x[0, 0], w), (X, W)),      # 2-D input
    (RuntimeError, lambda lib, x, w: nnf(lib).conv2d(x[None], w), (X, W)),      # 5-D input
    (RuntimeError, lambda lib, x, w: nnf(lib).conv2d(x[:, :2], w), (X, W)),     # channels
    (RuntimeError, lambda lib, x, w: nnf(lib).conv2d(x, w, groups=2), (X, W)),
    (RuntimeError, lambda lib, x, w: nnf(lib).conv2d(x[:, :, :2, :2], w), (X, W)),  # kernel
    (RuntimeError, lambda lib, x, w: nnf(lib).conv2d(x, w, w[0, 0, 0]), (X, W)),  # bias size
    (RuntimeError, lambda lib, x, w: nnf(lib).conv2d(x, w), (X.astype("float32"), W)),  # dtypes
    (RuntimeError, lambda lib, x, w: nnf(lib).conv1d(x, w[:, :, 0]), (X, W)),   # 4-D input
    (RuntimeError, lambda lib, x, w: nnf(lib).conv1d(x[0], w[0, 0]), (X, W)),   # 2-D weight
    (RuntimeError, lambda lib, x, w: nnf(lib).conv_transpose2d(x, w.transpose(0, 1),
                                                               output_padding=1), (X, W)),
    (RuntimeError, lambda lib, x, w: nnf(lib).conv_transpose2d(x, w.transpose(0, 1),
                                                               stride=2, output_padding=-1),
     (X, W)),
    (RuntimeError, lambda lib, x, w: nnf(lib).conv_transpose2d(x, w.transpose(0, 1),
                                                               padding=-1), (X, W)),
    (RuntimeError, lambda lib, x, w: nnf(lib).conv_transpose2d(x, w), (X, W)),  # channels
    (RuntimeError, lambda lib, x, w: nnf(lib).conv_transpose2d(x[:, :, :1, :1],
                                                               w.transpose(0, 1), padding=2),
     (X, W)),                                                    # output smaller than 1
    (RuntimeError, lambda lib, x, w: nnf(lib).unfold(x, 7), (X, W)),
    (RuntimeError, lambda lib, x, w: nnf(lib).unfold(x, 2, padding=-1), (X, W)),
    (RuntimeError, lambda lib, x, w: nnf(lib).unfold(x, 2, stride=0), (X, W)),
    (RuntimeError, lambda lib, x, w: nnf(lib).fold(x[0, 0, 0], (3, 3), 2), (X, W)),  # 1-D
    (RuntimeError, lambda lib, x, w: nnf(lib).fold(x[:, :, 0], (3, 3), 2), (X, W)),  # C*k
    (RuntimeError, lambda lib, x, w: nnf(lib).fold(x[:1, :4, 0], (4, 4), 2), (X, W)),  # L
])
def test_errors_have_torchs_types(exc, fn, arrays):
    check_raises(exc, fn, *arrays)


def test_shape_errors_name_the_sizes():
    x = fastgrad.tensor(rand((2, 3, 5, 5)))
    with pytest.raises(RuntimeError, match="3"):
        F.conv2d(x, fastgrad.tensor(rand((4, 2, 3, 3))))
    with pytest.raises(RuntimeError, match="negative padding"):
        F.conv2d(x, fastgrad.tensor(rand((4, 3, 3, 3))), padding=(1, -1))
