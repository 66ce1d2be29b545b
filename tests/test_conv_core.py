"""The compiled window ops (fastgrad._tensor.conv, loops in windows.pyx) as the engine's other
ops are held to: hostile arguments and shapes raise a clear exception and never crash (run in a
child process), saved values changed in place are caught in backward, graphs are not pickled,
forward mode agrees with reverse mode, threads share nothing, and a training loop keeps memory
flat. Values and gradients against PyTorch are in tests/test_nn_conv*.py and test_nn_pool.py;
here the core is called directly, with the normalised arguments nn.functional gives it."""

import pickle
import threading
import tracemalloc

import numpy as np
import pytest

import fastgrad
from crashsafe import run_isolated
from fastgrad import Tensor
from fastgrad._tensor import conv

RNG = np.random.default_rng(14)


def tensor(shape, requires_grad=True, dtype=np.float64):
    return Tensor(RNG.standard_normal(shape).astype(dtype), requires_grad=requires_grad)


def conv2d(x, w, b=None, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1), groups=1):
    return conv.conv2d(x, w, b, stride, padding, dilation, groups)


# --- hostile arguments: a clear exception, never a crash --------------------------------------

HOSTILE_CALLS = [
    # (the call, with x (2, 3, 6, 6) and w (4, 3, 3, 3) defined; the exception's type name)
    ("conv.conv2d(x, w, None, (0, 1), (0, 0, 0, 0), (1, 1), 1)", "RuntimeError"),
    ("conv.conv2d(x, w, None, (1, 1), (-1, 0, 0, 0), (1, 1), 1)", "RuntimeError"),
    ("conv.conv2d(x, w, None, (1, 1), (0, 0, 0, 0), (0, 1), 1)", "RuntimeError"),
    ("conv.conv2d(x, w, None, (1, 1), (0, 0, 0, 0), (1, 1), 0)", "RuntimeError"),
    ("conv.conv2d(x, w, None, (1, 1), (0, 0, 0, 0), (1, 1), 2)", "RuntimeError"),
    ("conv.conv2d(x, w, None, (1, 1), (0, 0), (1, 1), 1)", "RuntimeError"),
    ("conv.conv2d(x, w, None, (1, 1), (0, 0, 0, 0), (1 << 70, 1), 1)", "RuntimeError"),
    ("conv.conv2d(x, w, None, (1, 1), (1 << 62,) * 4, (1 << 61, 1), 1)", "Error"),
    ("conv.max_pool2d(x, (2, 2), (1, 1), (1, 1), (1 << 62, 1), False)", "Error"),
    # paddings and strides near 2**63 (index arithmetic in the loops must not wrap)
    ("conv.unfold(x, (1, 1), (1, 1), (3 << 60, 0), ((1 << 63) - 1, 1))", "RuntimeError"),
    ("conv.conv2d(x, w[:, :, :1, :1], None, ((1 << 63) - 1, 1), (3 << 60, 3 << 60, 0, 0),"
     " (1, 1), 1)", "RuntimeError"),
    ("conv.fold(Tensor(np.ones((1, 1, 6))), (6, 6), (1, 1), (1, 1), (3 << 60, 0),"
     " ((1 << 63) - 1, 1))", "RuntimeError"),
    ("conv.max_pool2d(x, (1, 1), (1 << 62, 1), (0, 0), (1, 1), False)", "RuntimeError"),
    ("conv.avg_pool2d(x, (1, 1), (1 << 62, 1), (0, 0), True, True, None)", "RuntimeError"),
    ("conv.conv_transpose2d(Tensor(np.ones((2, 3, 0, 4))), w.transpose(0, 1), None, (1, 1),"
     " (0, 0), (0, 0), 1, (1, 1))", "RuntimeError"),
    ("conv.conv2d(x, w, None, (1, 1), (1 << 40,) * 4, (1, 1), 1)", "Error"),
    ("conv.conv2d(x, w, None, (1, 1), (0, 0, 0, 0), (9, 9), 1)", "RuntimeError"),
    ("conv.conv2d(x, w, None, (1.5, 1), (0, 0, 0, 0), (1, 1), 1)", "TypeError"),
    ("conv.conv2d(x, w, Tensor(np.ones(3)), (1, 1), (0, 0, 0, 0), (1, 1), 1)", "RuntimeError"),
    ("conv.conv2d(x, Tensor(np.ones((4, 3, 3, 3), np.float32)), None, (1, 1), (0,) * 4,"
     " (1, 1), 1)", "RuntimeError"),
    ("conv.conv2d(Tensor(np.ones((2, 3, 6, 6), np.int64)), w, None, (1, 1), (0,) * 4, (1, 1),"
     " 1)", "RuntimeError"),
    ("conv.conv2d(x[0], w, None, (1, 1), (0,) * 4, (1, 1), 1)", "RuntimeError"),
    ("conv.conv2d(x, w[0], None, (1, 1), (0,) * 4, (1, 1), 1)", "RuntimeError"),
    ("conv.conv2d(x.numpy(), w, None, (1, 1), (0,) * 4, (1, 1), 1)", "TypeError"),
    ("conv.conv_transpose2d(x, w.transpose(0, 1), None, (1, 1), (9, 9), (0, 0), 1, (1, 1))",
     "RuntimeError"),
    ("conv.conv_transpose2d(x, w.transpose(0, 1), None, (1, 1), (0, 0), (1, 1), 1, (1, 1))",
     "RuntimeError"),
    ("conv.conv_transpose2d(x, w, None, (1, 1), (0, 0), (0, 0), 1, (1, 1))", "RuntimeError"),
    ("conv.unfold(x, (7, 7), (1, 1), (0, 0), (1, 1))", "RuntimeError"),
    ("conv.unfold(x, (0, 3), (1, 1), (0, 0), (1, 1))", "RuntimeError"),
    ("conv.fold(Tensor(np.ones((2, 12, 5))), (4, 4), (2, 2), (1, 1), (0, 0), (1, 1))",
     "RuntimeError"),
    ("conv.fold(Tensor(np.ones((2, 10, 9))), (4, 4), (2, 2), (1, 1), (0, 0), (1, 1))",
     "RuntimeError"),
    ("conv.fold(x, (4, 4), (2, 2), (1, 1), (0, 0), (1, 1))", "RuntimeError"),
    ("conv.max_pool2d(x, (2, 2), (2, 2), (2, 2), (1, 1), False)", "RuntimeError"),
    ("conv.max_pool2d(x, (9, 9), (1, 1), (0, 0), (1, 1), False)", "RuntimeError"),
    ("conv.max_pool2d(x, (2, 2), (0, 2), (0, 0), (1, 1), False)", "RuntimeError"),
    ("conv.max_pool2d(Tensor(np.ones((1, 1, 0, 4))), (1, 1), (1, 1), (0, 0), (1, 1), False)",
     "RuntimeError"),
    ("conv.avg_pool2d(x, (2, 2), (2, 2), (0, 0), False, True, 0)", "RuntimeError"),
    ("conv.avg_pool2d(x, (3, 3), (1, 1), (2, 2), False, True, None)", "RuntimeError"),
    ("conv.adaptive_avg_pool2d(x, (-1, 2))", "RuntimeError"),
    ("conv.adaptive_max_pool2d(Tensor(np.ones((1, 1, 3, 0))), (1, 1))", "RuntimeError"),
]


def test_hostile_arguments_raise_clear_exceptions_in_a_child():
    """Each call raises the named exception; the child finishes (no crash) and says so."""
    lines = ["import numpy as np", "from fastgrad import Tensor",
             "from fastgrad._tensor import conv",
             "x = Tensor(np.ones((2, 3, 6, 6)), requires_grad=True)",
             "w = Tensor(np.ones((4, 3, 3, 3)), requires_grad=True)", "bad = []"]
    for call, error in HOSTILE_CALLS:
        lines += ["try:", f"    {call}", f"    bad.append(('no exception', {call!r}))",
                  "except Exception as e:",
                  f"    if {error!r} not in type(e).__name__ or not str(e):",
                  f"        bad.append((type(e).__name__, str(e), {call!r}))"]
    lines.append("print('bad', bad)")
    proc = run_isolated("\n".join(lines))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "bad []", proc.stdout


def test_non_contiguous_read_only_and_broadcast_inputs():
    x = tensor((2, 3, 8, 7))
    xt = Tensor(np.swapaxes(x.numpy(), 2, 3), requires_grad=True)          # a strided view
    w = tensor((4, 3, 3, 2))
    ro = x.numpy().copy()
    ro.setflags(write=False)
    wide = Tensor(np.broadcast_to(RNG.standard_normal((1, 3, 1, 7)), (2, 3, 8, 7)),
                  requires_grad=True)
    for inp in (xt, Tensor(ro, requires_grad=True), wide):
        out = conv2d(inp, w, None, (2, 1), (1, 0, 0, 1))
        ref = conv2d(Tensor(np.ascontiguousarray(inp.numpy())), w, None, (2, 1), (1, 0, 0, 1))
        np.testing.assert_array_equal(out.numpy(), ref.numpy())
        out.sum().backward()
        pooled, _ = conv.max_pool2d(inp, (2, 2), (2, 2), (1, 0), (1, 1), True)
        pooled.sum().backward()


# --- the tape's rules: versions, pickling, forward mode -----------------------------------------

def test_changing_a_saved_input_in_place_is_caught_in_backward():
    x, w = tensor((1, 2, 5, 5)), tensor((3, 2, 3, 3))
    h = x * 1.0
    y = conv2d(h, w).sum()
    with fastgrad.no_grad():
        h.add_(1.0)             # the weight's gradient reads h's columns
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()
    y2 = conv2d(h, w).sum()
    with fastgrad.no_grad():
        w.mul_(2.0)             # the input's gradient reads the weight
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y2.backward()


def test_graphs_of_window_ops_are_not_pickled_but_their_values_are():
    y = conv2d(tensor((1, 2, 5, 5)), tensor((3, 2, 3, 3)))
    with pytest.raises(pickle.PicklingError, match="conv"):
        pickle.dumps(y)
    back = pickle.loads(pickle.dumps(y.detach()))
    np.testing.assert_array_equal(back.numpy(), y.numpy())


@pytest.mark.parametrize("op", ["conv", "conv_transpose", "unfold", "fold", "max_pool",
                                "avg_pool", "adaptive_avg", "adaptive_max"])
def test_forward_mode_is_the_transpose_of_reverse_mode(op):
    """jvp(f, v) . u == vjp(f, u) . v for random u, v: the tangent and backward rules agree."""
    from fastgrad._tensor import tensor_jvp
    x, w, b = tensor((2, 4, 7, 6)), tensor((6, 2, 3, 2)), tensor(6)
    fns = {
        "conv": lambda: conv.conv2d(x, w, b, (2, 1), (1, 0, 1, 1), (1, 2), 2),
        "conv_transpose": lambda: conv.conv_transpose2d(x, w.reshape(4, 3, 3, 2), b,
                                                        (2, 1), (1, 0), (1, 0), 2, (1, 2)),
        "unfold": lambda: conv.unfold(x, (3, 2), (2, 1), (1, 1), (1, 2)),
        "fold": lambda: conv.fold(x.reshape(2, 4, 42), (8, 7), (2, 2), (1, 1), (0, 0), (1, 1)),
        "max_pool": lambda: conv.max_pool2d(x, (3, 2), (2, 1), (1, 1), (1, 2), True)[0],
        "avg_pool": lambda: conv.avg_pool2d(x, (3, 2), (2, 2), (1, 1), True, False, None),
        "adaptive_avg": lambda: conv.adaptive_avg_pool2d(x, (4, 5)),
        "adaptive_max": lambda: conv.adaptive_max_pool2d(x, (4, 5))[0],
    }
    out = fns[op]()
    leaves = [t for t in (x, w, b) if t.requires_grad]
    tangents = {t: RNG.standard_normal(t.shape) for t in leaves}
    u = RNG.standard_normal(out.shape)
    forward = tensor_jvp(out, tangents)
    (out * Tensor(u)).sum().backward()
    backward = sum(float((t.grad.numpy() * tangents[t]).sum()) for t in leaves
                   if t.grad is not None)
    assert np.isclose(float((np.asarray(forward) * u).sum()), backward, rtol=1e-10)


# --- threads and memory ---------------------------------------------------------------------

def test_threads_training_their_own_convs_agree_with_one_thread():
    def run(seed, out, i):
        rng = np.random.default_rng(seed)
        x = Tensor(rng.standard_normal((4, 1, 12, 12)))
        w = Tensor(rng.standard_normal((3, 1, 3, 3)), requires_grad=True)
        for _ in range(20):
            h, _ = conv.max_pool2d(conv2d(x, w).relu(), (2, 2), (2, 2), (0, 0), (1, 1), False)
            loss = conv.adaptive_avg_pool2d(h, (1, 1)).sum()
            w.grad = None
            loss.backward()
            with fastgrad.no_grad():
                w -= 0.01 * w.grad
        out[i] = w.numpy().copy()

    alone = [None]
    run(3, alone, 0)
    results = [None] * 4
    threads = [threading.Thread(target=run, args=(3, results, i)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        np.testing.assert_array_equal(r, alone[0])


def test_memory_stays_flat_over_a_cnn_training_loop():
    x = Tensor(RNG.standard_normal((8, 1, 16, 16)))
    targets = RNG.integers(0, 5, 8)
    w1, w2 = tensor((4, 1, 3, 3)), tensor((5, 4 * 7 * 7))
    opt = fastgrad.optim.SGD([w1, w2], lr=0.01, momentum=0.9)

    def step():
        h = conv2d(x, w1, None, (1, 1), (1, 1, 1, 1)).relu()
        h, _ = conv.max_pool2d(h, (2, 2), (2, 2), (0, 0), (1, 1), False)
        h = conv.avg_pool2d(h, (2, 2), (1, 1), (0, 0), False, True, None)
        loss = fastgrad.nn.functional.cross_entropy(h.reshape(8, -1) @ w2.T, Tensor(targets))
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(5):
        step()
    tracemalloc.start()
    try:
        step()
        first = tracemalloc.get_traced_memory()[0]
        for _ in range(50):
            step()
        grown = tracemalloc.get_traced_memory()[0] - first
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024, f"memory grew by {grown} bytes over 50 steps"
