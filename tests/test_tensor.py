"""The Tensor handle: construction, dtypes, properties, errors, no_grad, detach, lifetime."""

import gc
import tracemalloc

import numpy as np
import pytest

import fastgrad
from fastgrad import Tensor, no_grad

# written for float64 numerics: Python floats make float64 tensors here
pytestmark = pytest.mark.usefixtures("float64_default")


# --- construction and properties ---------------------------------------------------------

@pytest.mark.parametrize("data,shape,dtype", [
    (3, (), np.int64), (2.5, (), np.float64), ([1, 2, 3], (3,), np.int64),
    ([[1.0], [2.0]], (2, 1), np.float64), (np.arange(6), (6,), np.int64),
    (np.ones((2, 3), np.int32), (2, 3), np.int32), (True, (), np.bool_)])
def test_construction_takes_pytorchs_dtypes(data, shape, dtype):
    # Python floats take the default dtype (float64 in this module), ints int64, bools bool;
    # numpy data keeps its dtype
    t = Tensor(data)
    assert t.dtype == dtype and t.shape == shape and t.ndim == len(shape)
    assert isinstance(t.numpy(), np.ndarray) and t.data.numpy() is t.numpy()
    np.testing.assert_array_equal(t.numpy(), np.asarray(data, dtype=dtype))


def test_float32_stays_float32_through_ops_and_grads():
    x = Tensor(np.ones((2, 3), np.float32), requires_grad=True)
    y = ((x * 2.5 + 1) ** 2 / 3 - x.exp()).relu().sum() + x.tanh().mean() * np.float64(2.0)
    assert y.dtype == np.float32
    y.backward()
    assert x.grad.dtype == np.float32
    assert Tensor([1, 2], dtype="float32").dtype == np.float32
    assert Tensor(np.ones(2, np.float32), dtype=np.float64).dtype == np.float64


def test_constructor_copies_its_input():
    a = np.zeros(3)
    t = Tensor(a)
    a[0] = 1.0
    assert t.numpy()[0] == 0.0


def test_item_repr_len_float():
    t = Tensor([[2.0]], requires_grad=True)
    assert t.item() == 2.0 and float(t) == 2.0 and len(t) == 1
    assert repr(t) == "tensor([[2.]], requires_grad=True)"
    assert "grad_fn=<MulBackward0>" in repr(t * 2)
    assert "dtype=fastgrad.float32" in repr(Tensor(np.float32(1.5)))
    with pytest.raises(RuntimeError, match="3 elements"):
        Tensor([1.0, 2.0, 3.0]).item()


# --- errors --------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["abc", None, [1, "a"], {"a": 1}, 1 + 2j, np.array(["x"]),
                                 np.array([1 + 1j]), object(), [[1, 2], [3]]])
def test_bad_data_raises_type_error(bad):
    with pytest.raises(TypeError):
        Tensor(bad)


@pytest.mark.parametrize("dtype", [np.complex128, object, "uint16", "float128", "cuda"])
def test_bad_dtype_raises_type_error(dtype):
    with pytest.raises(TypeError, match="dtype"):
        Tensor([1.0], dtype=dtype)


@pytest.mark.parametrize("other", ["a", None, [1.0, 2.0], {1: 2}, object()])
def test_bad_operands_raise_type_error(other):
    t = Tensor([1.0, 2.0])
    for op in [lambda: t + other, lambda: other + t, lambda: t * other, lambda: t - other,
               lambda: other / t, lambda: t ** other, lambda: t @ other]:
        with pytest.raises(TypeError):
            op()


def test_shape_mismatch_names_both_shapes():
    a, b = Tensor(np.ones((2, 3))), Tensor(np.ones((4,)))
    for op in [lambda: a + b, lambda: a * b, lambda: b - a, lambda: a / b, lambda: a ** b]:
        with pytest.raises(RuntimeError, match=r"\(2, 3\).*\(4,\)|\(4,\).*\(2, 3\)"):
            op()
    with pytest.raises(RuntimeError, match=r"\(2, 3\) and \(4,\)"):
        a @ b
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4,\)"):
        fastgrad.nn.functional.mse_loss(a, b)
    with pytest.raises(RuntimeError, match=r"\[5\].*size 6"):
        a.reshape(5)
    with pytest.raises(ValueError, match=r"\[\(2, 3\), \(4,\)\]"):
        fastgrad.concatenate([a, b])
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 4\)"):
        fastgrad.nn.functional.linear(a, Tensor(np.ones((4, 4))))
    with pytest.raises(RuntimeError, match="0D and 0D"):
        Tensor(1.0) @ Tensor(2.0)


def test_bad_axes():
    t = Tensor(np.ones((2, 3)))
    with pytest.raises(IndexError, match="out of range"):
        t.sum(axis=2)
    with pytest.raises(RuntimeError, match="multiple times"):
        t.mean(axis=(1, -1))
    with pytest.raises(TypeError):
        t.max(axis=1.5)
    with pytest.raises(RuntimeError, match="duplicate"):
        t.permute(0, 0)
    assert t.transpose(0, 0).shape == (2, 3)     # swapping a dim with itself, as PyTorch
    with pytest.raises(IndexError):
        t[5]


def test_backward_errors():
    x = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(RuntimeError, match="scalar outputs"):
        (x * 2).backward()
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor(1.0).backward()
    with pytest.raises(RuntimeError, match=r"\[2\].*\[3\]"):
        (x * 2).backward(np.ones(2))
    (x * 2).backward(np.ones(3))          # explicit grad is fine
    np.testing.assert_array_equal(x.grad, [2, 2, 2])


# --- grad semantics ------------------------------------------------------------------------

def test_grads_accumulate_and_intermediates_are_freed():
    x = Tensor([1.0, 2.0], requires_grad=True)
    h = x * x
    y = h.sum()
    y.backward()
    np.testing.assert_array_equal(x.grad, [2, 4])
    assert h.grad is None and y.grad is None        # consumed buffers are dropped
    y.backward()                                     # the graph survives: grads accumulate
    np.testing.assert_array_equal(x.grad, [4, 8])
    x.grad = None
    (x + x).sum().backward()
    np.testing.assert_array_equal(x.grad, [2, 2])


def test_leaf_grads_never_alias_each_other_or_buffers():
    a, b = Tensor(np.ones(3), requires_grad=True), Tensor(np.ones(3), requires_grad=True)
    (a + b).backward(np.ones(3))
    assert a.grad is not b.grad
    a.grad += 1
    np.testing.assert_array_equal(b.grad, [1, 1, 1])
    c = Tensor(np.ones((2, 3)), requires_grad=True)
    c.sum().backward()
    c.grad[0, 0] = 5.0                               # writable, not a broadcast view
    assert c.grad.sum() == 10.0


def test_only_tensors_that_require_grad_are_recorded():
    x = Tensor([1.0, 2.0], requires_grad=True)
    c = Tensor([3.0, 4.0])
    y = x * c + c
    assert y.requires_grad and not y.is_leaf and y._op == "add"
    (z,) = y._prev
    assert z._op == "mul" and z._prev == (x,)
    assert not (c * c).requires_grad
    y.sum().backward()
    assert c.grad is None


def test_no_grad_records_nothing():
    x = Tensor([1.0, 2.0], requires_grad=True)
    with no_grad():
        assert not fastgrad.is_grad_enabled()
        y = (x * 3).exp().sum()
        z = fastgrad.nn.functional.mse_loss(x, Tensor([0.0, 0.0]))
    assert fastgrad.is_grad_enabled()
    assert not y.requires_grad and y.is_leaf and not z.requires_grad
    with pytest.raises(RuntimeError):
        y.backward()

    @no_grad()
    def f(t):
        return t * 2
    assert not f(x).requires_grad and (x * 2).requires_grad


def test_no_grad_restores_state_after_exception():
    with pytest.raises(KeyError):
        with no_grad():
            raise KeyError
    assert fastgrad.is_grad_enabled()


def test_detach():
    x = Tensor([1.0, 2.0], requires_grad=True)
    d = (x * 2).detach()
    assert not d.requires_grad and d.is_leaf
    y = (d * x).sum()
    y.backward()
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])     # d is a constant


def test_array_protocol():
    t = Tensor([1.0, 2.0], requires_grad=True)
    assert np.asarray(t) is t.numpy()
    assert np.asarray(t, dtype=np.float32).dtype == np.float32
    assert np.array(t, copy=True) is not t.numpy()


def test_numpy_arrays_on_the_left_defer_to_tensor():
    x = Tensor([1.0, 2.0], requires_grad=True)
    for y in [np.ones(2) + x, np.ones(2) * x, np.ones(2) - x, np.ones(2) / x,
              np.ones((3, 2)) @ x, np.float64(2.0) * x, 2 ** x]:
        assert isinstance(y, Tensor) and y.requires_grad


def test_data_and_grad_setters():
    x = Tensor([1.0, 2.0], requires_grad=True)
    x.data = np.array([3.0, 4.0])
    x.data -= 1.0               # in place, on a tensor sharing x's memory
    np.testing.assert_array_equal(x.numpy(), [2.0, 3.0])
    x.grad = [1, 1]
    assert x.grad.dtype == np.float64 and isinstance(x.grad, Tensor)
    with pytest.raises(RuntimeError, match=r"\[3\].*\[2\]"):
        x.grad = np.ones(3)
    with pytest.raises(RuntimeError):
        (x * 2).requires_grad = False


# --- lifetime and memory -------------------------------------------------------------------

def _traced(fn):
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        gc.collect()
        return tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()


def test_graph_is_freed_when_dropped():
    x = Tensor(np.ones((100, 100)), requires_grad=True)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        y = x
        for _ in range(50):
            y = (y * 1.01).tanh()
        loss = y.sum()
        held = tracemalloc.get_traced_memory()[0] - base
        assert held > 50 * 100 * 100 * 8              # the graph holds its arrays ...
        loss.backward()
        del y, loss
        freed = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert freed < 100 * 100 * 8 * 2                  # ... and only x.grad outlives it


def test_training_loop_memory_is_flat():
    rng = np.random.default_rng(0)
    model = fastgrad.nn.Sequential(fastgrad.nn.Linear(4, 16), fastgrad.nn.ReLU(), fastgrad.nn.Linear(16, 16),
                                   fastgrad.nn.ReLU(), fastgrad.nn.Linear(16, 1))
    opt = fastgrad.optim.Adam(model.parameters(), lr=1e-3)
    x, y = Tensor(rng.standard_normal((8, 4))), Tensor(rng.standard_normal((8, 1)))

    def steps(n):
        for _ in range(n):
            loss = fastgrad.nn.functional.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

    steps(10)
    gc.collect()
    tracemalloc.start()
    try:
        steps(1000)
        gc.collect()
        after_1000 = tracemalloc.get_traced_memory()[0]
        steps(9000)
        gc.collect()
        after_10000 = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    # a leak of even one small array per step would be > 9000 * 100 bytes
    assert after_10000 - after_1000 < 20_000


def test_dropping_a_deep_chain_does_not_overflow_the_stack():
    x = Tensor(1.0, requires_grad=True)
    y = x
    for _ in range(200_000):
        y = y * 1.0
    y.backward()
    assert x.grad == 1.0
    del y                                            # deallocation without recursion


def test_two_broadcast_contributions_to_a_0d_leaf_both_count():
    # regression: numpy's unbroadcast sum returned a scalar that later "+=" could not update
    x, y = Tensor([1.0], requires_grad=True), Tensor(0.0, requires_grad=True)
    ((x * y + x) / (2.0 + y.tanh())).backward(np.ones(1))
    assert isinstance(y.grad, Tensor) and y.grad.shape == ()
    np.testing.assert_allclose(y.grad, 0.25)


def test_missing_tensor_extension_fails_with_build_instructions():
    import subprocess
    import sys
    code = "import sys; sys.modules['fastgrad._tensor.tensor'] = None; import fastgrad"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0
    assert "fastgrad's compiled tensor core" in proc.stderr and "pip install ." in proc.stderr


def test_graphs_are_freed_by_reference_counting_alone():
    x = Tensor(np.ones((100, 100)), requires_grad=True)
    assert not gc.is_tracked(x)                    # nodes cannot form cycles: no GC needed
    gc.disable()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        y = x
        for _ in range(20):
            y = concatenate_and_index(y)
        y.sum().backward()
        del y
        left = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
        gc.enable()
    assert left < 100 * 100 * 8 * 2                 # x.grad (and small change), no graph


def concatenate_and_index(t):
    return fastgrad.concatenate([t, t * 2.0], axis=0)[::2].tanh()


def test_dropping_deep_concatenate_and_index_chains():
    x = Tensor([1.0], requires_grad=True)
    y = x
    for _ in range(50_000):
        y = fastgrad.concatenate([y, x])[1:]
    y.backward(np.ones(1))
    assert x.grad[0] == 1.0                          # only the last x survives the slicing
    del y


def test_backward_frees_intermediate_buffers_as_it_goes():
    # 50 intermediates of 80 kB: keeping their gradient buffers would add ~4 MB at the peak
    x = Tensor(np.ones((100, 100)), requires_grad=True)
    y = x
    for _ in range(50):
        y = (y * 0.5).tanh()
    loss = y.sum()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        loss.backward()
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    assert peak < 10 * 100 * 100 * 8


def test_constructors_and_shape_helpers():
    t = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    assert Tensor(t).numpy() is not t.numpy() and not Tensor(t).requires_grad
    assert t.view(3, 2).shape == (3, 2) and t.flatten().shape == (6,)
    assert t.permute(1, 0).shape == (3, 2) and t.T.shape == (3, 2) and t.numel() == 6
    assert Tensor([1.0]).T.shape == (1,)
    u = Tensor([1.0]).requires_grad_()
    assert u.requires_grad and u.is_leaf
    with pytest.raises(TypeError):
        len(Tensor(1.0))
    assert +t is t
