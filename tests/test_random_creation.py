"""Devices, generators and tensor factories against PyTorch.

Deterministic factories (zeros, arange, linspace, eye, tensor, full, ...) must give PyTorch's
values and dtypes. Random factories cannot give PyTorch's numbers (another generator): they are
checked for shapes, dtypes, ranges, repeatability under a seed, and statistics.
"""
import pickle

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fastgrad
from fastgrad import _creation, _random

torch = pytest.importorskip("torch", reason="PyTorch not installed: comparisons skipped")
from fastgrad._device import check_device

NP = {torch.float32: np.float32, torch.float64: np.float64, torch.float16: np.float16,
      torch.int64: np.int64, torch.int32: np.int32, torch.int16: np.int16, torch.int8: np.int8,
      torch.uint8: np.uint8, torch.bool: np.bool_}


def fg_dtype(torch_dtype):
    return getattr(fastgrad._tensor.dtype, str(torch_dtype).split(".")[1])


def assert_like_torch(ours, theirs, rtol=0.0):
    """Same dtype, shape and values (exactly, or to rtol)."""
    expected = theirs.numpy()
    got = ours.numpy()
    assert ours.dtype == NP[theirs.dtype], (ours.dtype, theirs.dtype)
    assert got.dtype == expected.dtype
    assert got.shape == expected.shape
    if rtol:
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol)
    else:
        np.testing.assert_array_equal(got, expected)


def same_or_error(ours, theirs, rtol=0.0):
    """Both give the same tensor, or both raise the same error class."""
    try:
        expected = theirs()
    except Exception as exc:
        with pytest.raises(type(exc)):
            ours()
        return
    assert_like_torch(ours(), expected, rtol)


def same_error(ours, theirs):
    """Both calls raise, and ours raises the class PyTorch raises (or a subclass of it)."""
    with pytest.raises(Exception) as their_exc:
        theirs()
    with pytest.raises(their_exc.type):
        ours()


# ---------------------------------------------------------------------------------------------
# device and cuda


def test_device_construction_repr_and_equality_as_torch():
    for args in [("cpu",), ("cpu", 0), ("cpu:0",), ("cuda",), ("cuda:1",), ("cuda", 2),
                 ("mps",), ("meta",)]:
        ours, theirs = fastgrad.device(*args), torch.device(*args)
        assert repr(ours) == repr(theirs)
        assert str(ours) == str(theirs)
        assert (ours.type, ours.index) == (theirs.type, theirs.index)
    assert fastgrad.device("cpu") == fastgrad.device("cpu")
    assert fastgrad.device("cpu") != fastgrad.device("cpu", 0)   # as in PyTorch
    assert fastgrad.device("cpu:0") == fastgrad.device("cpu", 0)
    # a device never equals a string in PyTorch either
    assert (fastgrad.device("cpu") == "cpu") == (torch.device("cpu") == "cpu")
    assert fastgrad.device(fastgrad.device("cuda:1")) == fastgrad.device("cuda", 1)
    assert len({fastgrad.device("cpu"), fastgrad.device("cpu"), fastgrad.device("cuda")}) == 2
    assert pickle.loads(pickle.dumps(fastgrad.device("cpu", 0))) == fastgrad.device("cpu", 0)
    with pytest.raises(AttributeError):
        fastgrad.device("cpu").type = "cuda"


@pytest.mark.parametrize("bad", ["foo", "cpu:x", "cuda:-1", "CPU", " cpu", "cpu:0:1", "cuda:01"])
def test_device_bad_strings_raise_as_torch(bad):
    same_error(lambda: fastgrad.device(bad), lambda: torch.device(bad))


def test_device_bad_arguments():
    same_error(lambda: fastgrad.device("cpu", -1), lambda: torch.device("cpu", -1))
    same_error(lambda: fastgrad.device(("cpu",)), lambda: torch.device(("cpu",)))
    with pytest.raises(RuntimeError):
        fastgrad.device(0)          # an accelerator index, and there is none


def test_check_device_accepts_the_cpu_and_names_other_devices():
    for ok in [None, "cpu", "cpu:0", fastgrad.device("cpu"), fastgrad.device("cpu", 0)]:
        check_device(ok)
    for bad in ["cuda", "cuda:0", "mps", fastgrad.device("cuda", 1), 0]:
        with pytest.raises(RuntimeError, match="CPU only") as exc:
            check_device(bad)
        if isinstance(bad, str):
            assert bad in str(exc.value)
    with pytest.raises(TypeError):
        check_device(1.5)


def test_factories_take_device_and_refuse_gpus():
    assert fastgrad.zeros(2, device="cpu").shape == (2,)
    assert fastgrad.ones(2, device=fastgrad.device("cpu")).shape == (2,)
    assert fastgrad.tensor([1.0], device="cpu").shape == (1,)
    for make in [lambda: fastgrad.zeros(2, device="cuda"), lambda: fastgrad.randn(2, device="mps"),
                 lambda: fastgrad.tensor([1.0], device="cuda:0"),
                 lambda: fastgrad.arange(3, device="cuda"), lambda: fastgrad.Generator("cuda")]:
        with pytest.raises(RuntimeError, match="CPU only"):
            make()


def test_cuda_module_answers_as_a_cpu_only_torch():
    assert fastgrad.cuda.is_available() is False
    assert fastgrad.cuda.device_count() == 0
    assert fastgrad.cuda.manual_seed(1) is None
    assert fastgrad.cuda.manual_seed_all(1) is None
    device = fastgrad.device("cuda" if fastgrad.cuda.is_available() else "cpu")
    assert fastgrad.zeros(3, device=device).shape == (3,)


# ---------------------------------------------------------------------------------------------
# Generator


def test_generator_seeds_as_torch():
    ours, theirs = fastgrad.Generator(), torch.Generator()
    assert ours.initial_seed() == theirs.initial_seed()
    assert ours.manual_seed(5) is ours
    for seed in [0, 1, 2 ** 63, 2 ** 64 - 1, -1, -(2 ** 63)]:
        assert ours.manual_seed(seed).initial_seed() == theirs.manual_seed(seed).initial_seed()
    assert repr(ours.device) == repr(theirs.device)
    for bad in [1.5, "3", True, None, 2 ** 64, -(2 ** 63) - 1]:
        same_error(lambda: ours.manual_seed(bad), lambda: theirs.manual_seed(bad))


def test_module_seeding_returns_the_default_generator():
    assert fastgrad.manual_seed(3) is fastgrad.default_generator
    assert fastgrad.initial_seed() == 3
    assert fastgrad.manual_seed(1.9).initial_seed() == torch.manual_seed(1.9).initial_seed()
    s = fastgrad.seed()
    assert isinstance(s, int) and 0 <= s < 2 ** 64 and fastgrad.initial_seed() == s
    g = fastgrad.Generator()
    assert g.seed() == g.initial_seed()


def test_manual_seed_repeats_every_random_factory():
    def draw():
        return [fastgrad.rand(3).numpy().copy(), fastgrad.randn(2, 2).numpy().copy(),
                fastgrad.randint(0, 100, (5,)).numpy().copy(), fastgrad.randperm(6).numpy().copy(),
                fastgrad.normal(0.0, 2.0, (3,)).numpy().copy(),
                fastgrad.multinomial(fastgrad.ones(5), 3).numpy().copy(),
                fastgrad.bernoulli(fastgrad.full((8,), 0.5)).numpy().copy()]
    fastgrad.manual_seed(123)
    first = draw()
    fastgrad.manual_seed(123)
    second = draw()
    third = draw()
    for a, b, c in zip(first, second, third):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, c) for a, c in zip(first, third))


def test_generator_argument_is_independent_of_the_default():
    g = fastgrad.Generator().manual_seed(9)
    a = fastgrad.randn(4, generator=g).numpy().copy()
    fastgrad.manual_seed(0)
    fastgrad.randn(10)      # drawing from the default generator does not move g
    g.manual_seed(9)
    np.testing.assert_array_equal(fastgrad.randn(4, generator=g).numpy(), a)
    with pytest.raises(TypeError):
        fastgrad.rand(2, generator=np.random.default_rng(0))


def test_state_round_trips():
    g = fastgrad.Generator().manual_seed(42)
    fastgrad.rand(3, generator=g)
    state = g.get_state()
    assert state.dtype == fastgrad._tensor.dtype.uint8 and state.numpy().ndim == 1
    a = fastgrad.rand(5, generator=g).numpy().copy()
    assert g.set_state(state) is g
    np.testing.assert_array_equal(fastgrad.rand(5, generator=g).numpy(), a)
    assert g.initial_seed() == 42
    # the default generator's state through the module functions
    fastgrad.manual_seed(7)
    saved = fastgrad.get_rng_state()
    b = fastgrad.randn(3).numpy().copy()
    fastgrad.set_rng_state(saved)
    np.testing.assert_array_equal(fastgrad.randn(3).numpy(), b)
    # a state survives save/load (a uint8 tensor)
    other = fastgrad.Generator().set_state(pickle.loads(pickle.dumps(state)))
    g.set_state(state)
    np.testing.assert_array_equal(fastgrad.rand(4, generator=other).numpy(),
                                  fastgrad.rand(4, generator=g).numpy())


def test_state_errors():
    g = fastgrad.Generator()
    with pytest.raises(TypeError):
        g.set_state(bytes(g.get_state().numpy()))
    with pytest.raises(TypeError):
        g.set_state(fastgrad.zeros(_random.STATE_SIZE))       # not uint8
    with pytest.raises(RuntimeError):
        g.set_state(fastgrad.from_numpy(np.zeros(10, dtype=np.uint8)))
    with pytest.raises(RuntimeError):
        g.set_state(fastgrad.from_numpy(np.zeros(_random.STATE_SIZE, dtype=np.uint8)))


def test_numpy_generator_is_the_hook_for_other_modules():
    g = fastgrad.Generator()
    assert _random.numpy_generator(g) is g._rng
    assert _random.numpy_generator(None) is fastgrad.default_generator._rng
    assert isinstance(_random.numpy_generator(), np.random.Generator)


# ---------------------------------------------------------------------------------------------
# tensor, as_tensor, from_numpy


TENSOR_DATA = [1.5, 3, True, [1.0, 2.0], [1, 2], [True, False], [1, 2.5], [[1, 2], [3, 4]],
               [], [[]], [True, 2], np.array([1, 2], dtype=np.int32), np.float64(2.0),
               np.array([1.0], dtype=np.float64), np.array([1.0], dtype=np.float16),
               np.array([True]), np.array([[1, 2]], dtype=np.uint8), np.int64(4),
               np.array(3.0, dtype=np.float32)]


@pytest.mark.parametrize("data", TENSOR_DATA, ids=repr)
def test_tensor_infers_dtype_as_torch(data):
    assert_like_torch(fastgrad.tensor(data), torch.tensor(data))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int64, torch.int32,
                                   torch.bool, torch.uint8])
def test_tensor_dtype_argument_as_torch(dtype):
    data = [[0, 1.7], [-2.2, 3]] if dtype != torch.uint8 else [[0, 1.7], [2.2, 3]]
    assert_like_torch(fastgrad.tensor(data, dtype=fg_dtype(dtype)), torch.tensor(data, dtype=dtype))


def test_tensor_default_dtype_follows_set_default_dtype():
    fastgrad._tensor.dtype.set_default_dtype(fastgrad._tensor.dtype.float64)
    try:
        assert fastgrad.tensor([1.0]).dtype == np.float64
        assert fastgrad.zeros(2).dtype == np.float64
        assert fastgrad.arange(0.0, 1.0, 0.5).dtype == np.float64
        assert fastgrad.rand(2).dtype == np.float64
        assert fastgrad.tensor([1]).dtype == np.int64
    finally:
        fastgrad._tensor.dtype.set_default_dtype(fastgrad._tensor.dtype.float32)
    assert fastgrad.tensor([1.0]).dtype == np.float32


def test_tensor_copies_and_requires_grad():
    a = np.array([1.0, 2.0])
    t = fastgrad.tensor(a, requires_grad=True)
    a[0] = 9.0
    assert t.numpy()[0] == 1.0 and t.requires_grad
    with pytest.warns(UserWarning, match="clone"):
        u = fastgrad.tensor(t)
    assert u.numpy() is not t.numpy() and not u.requires_grad


@pytest.mark.parametrize("make_ours, make_theirs", [
    (lambda: fastgrad.tensor([1, 2], requires_grad=True),
     lambda: torch.tensor([1, 2], requires_grad=True)),
    (lambda: fastgrad.zeros(2, dtype=fastgrad._tensor.dtype.int64, requires_grad=True),
     lambda: torch.zeros(2, dtype=torch.int64, requires_grad=True)),
    (lambda: fastgrad.arange(3, requires_grad=True), lambda: torch.arange(3, requires_grad=True)),
    (lambda: fastgrad.randint(0, 3, (2,), requires_grad=True),
     lambda: torch.randint(0, 3, (2,), requires_grad=True)),
    (lambda: fastgrad.tensor("a"), lambda: torch.tensor("a")),
    (lambda: fastgrad.tensor(None), lambda: torch.tensor(None)),
    (lambda: fastgrad.tensor([[1, 2], [3]]), lambda: torch.tensor([[1, 2], [3]])),
    (lambda: fastgrad.tensor([2 ** 64]), lambda: torch.tensor([2 ** 64])),
])
def test_tensor_errors_as_torch(make_ours, make_theirs):
    same_error(make_ours, make_theirs)


def test_integer_tensors_cannot_require_grad_message():
    with pytest.raises(RuntimeError, match="Only Tensors of floating point"):
        fastgrad.tensor([1, 2], requires_grad=True)


def test_from_numpy_shares_memory_and_keeps_dtype():
    for dtype in [np.float32, np.float64, np.int64, np.int32, np.bool_, np.uint8]:
        a = np.zeros(3, dtype=dtype)
        t = fastgrad.from_numpy(a)
        assert t.dtype == dtype
        a[1] = 1
        assert t.numpy()[1] == 1 and np.shares_memory(t.numpy(), a)
    same_error(lambda: fastgrad.from_numpy([1, 2]), lambda: torch.from_numpy([1, 2]))
    with pytest.raises(TypeError):
        fastgrad.from_numpy(np.array(["a"]))


def test_as_tensor_shares_when_it_can():
    a = np.arange(3.0)
    assert np.shares_memory(fastgrad.as_tensor(a).numpy(), a)
    assert not np.shares_memory(fastgrad.as_tensor(a, dtype=fastgrad._tensor.dtype.float32)
                                .numpy(), a)
    t = fastgrad.tensor([1.0, 2.0])
    assert fastgrad.as_tensor(t) is t
    assert fastgrad.as_tensor(t, dtype=fastgrad._tensor.dtype.float64).dtype == np.float64
    assert_like_torch(fastgrad.as_tensor([1, 2]), torch.as_tensor([1, 2]))
    assert_like_torch(fastgrad.as_tensor(a), torch.as_tensor(a))


# ---------------------------------------------------------------------------------------------
# Filled tensors


@pytest.mark.parametrize("name", ["zeros", "ones"])
@pytest.mark.parametrize("args", [(2, 3), ((2, 3),), ([4],), ((),), (0,), (np.int64(2), 1)])
def test_zeros_ones_as_torch(name, args):
    assert_like_torch(getattr(fastgrad, name)(*args), getattr(torch, name)(*args))
    assert_like_torch(getattr(fastgrad, name)(*args, dtype=fastgrad._tensor.dtype.int32),
                      getattr(torch, name)(*args, dtype=torch.int32))


def test_size_keyword_and_empty():
    assert_like_torch(fastgrad.zeros(size=(2, 1)), torch.zeros(size=(2, 1)))
    e = fastgrad.empty(3, 2, dtype=fastgrad._tensor.dtype.float64)
    assert e.shape == (3, 2) and e.dtype == np.float64
    assert fastgrad.empty((0, 4)).shape == (0, 4)


@pytest.mark.parametrize("args", [(), (2, -1), (2.0,), ("a",), ([2.0],)])
def test_size_errors_as_torch(args):
    same_error(lambda: fastgrad.zeros(*args), lambda: torch.zeros(*args))
    same_error(lambda: fastgrad.empty(*args), lambda: torch.empty(*args))


@pytest.mark.parametrize("fill", [True, 3, 3.5, np.float64(2.5), np.int32(3), -0.0])
def test_full_infers_dtype_as_torch(fill):
    assert_like_torch(fastgrad.full((2, 2), fill), torch.full((2, 2), fill))
    assert_like_torch(fastgrad.full([3], fill, dtype=fastgrad._tensor.dtype.float64),
                      torch.full([3], fill, dtype=torch.float64))


def test_full_errors_as_torch():
    same_error(lambda: fastgrad.full(2, 3.0), lambda: torch.full(2, 3.0))
    same_error(lambda: fastgrad.full((2,), "a"), lambda: torch.full((2,), "a"))


def test_like_factories_as_torch():
    for data in [[[1.5, 2.0]], [1, 2, 3], [True]]:
        ours, theirs = fastgrad.tensor(data), torch.tensor(data)
        for name in ["zeros_like", "ones_like"]:
            assert_like_torch(getattr(fastgrad, name)(ours), getattr(torch, name)(theirs))
            assert_like_torch(getattr(fastgrad, name)(ours, dtype=fastgrad._tensor.dtype.float64),
                              getattr(torch, name)(theirs, dtype=torch.float64))
        assert_like_torch(fastgrad.full_like(ours, 7), torch.full_like(theirs, 7))
        e = fastgrad.empty_like(ours)
        assert e.shape == tuple(theirs.shape) and e.dtype == NP[theirs.dtype]
    x = fastgrad.zeros(2, 3, dtype=fastgrad._tensor.dtype.float64)
    assert fastgrad.rand_like(x).dtype == np.float64 and fastgrad.randn_like(x).shape == (2, 3)
    r = fastgrad.randint_like(x, 5)
    assert r.dtype == np.float64 and set(np.unique(r.numpy())) <= set(range(5))
    assert fastgrad.ones_like(x, requires_grad=True).requires_grad
    same_error(lambda: fastgrad.zeros_like([1.0]), lambda: torch.zeros_like([1.0]))
    same_error(lambda: fastgrad.rand_like(fastgrad.tensor([1])),
               lambda: torch.rand_like(torch.tensor([1])))
    same_error(lambda: fastgrad.randn_like(fastgrad.tensor([1])),
               lambda: torch.randn_like(torch.tensor([1])))


# ---------------------------------------------------------------------------------------------
# Ranges


@pytest.mark.parametrize("args", [(5,), (5.0,), (1, 4), (1, 2, 0.3), (0, 1, 0.1), (10, 0, -3),
                                  (-2.5, 2.5, 0.5), (0,), (3, 3), (np.int64(4),), (True,),
                                  (0.0, 1.0, 1 / 3), (1, 10, 4)])
def test_arange_as_torch(args):
    assert_like_torch(fastgrad.arange(*args), torch.arange(*args), rtol=3e-7)
    for dtype in [torch.float64, torch.int64, torch.int32, torch.int16, torch.float32]:
        same_or_error(lambda: fastgrad.arange(*args, dtype=fg_dtype(dtype)),
                      lambda: torch.arange(*args, dtype=dtype),
                      rtol=3e-7 if dtype == torch.float32 else 1e-15)


def test_arange_keywords_and_tensor_arguments():
    assert_like_torch(fastgrad.arange(start=1, end=4), torch.arange(start=1, end=4))
    assert_like_torch(fastgrad.arange(end=3), torch.arange(end=3))
    assert_like_torch(fastgrad.arange(fastgrad.tensor(4)), torch.arange(torch.tensor(4)))


@pytest.mark.parametrize("args", [(0, 5, 0), (0, 5, -1), (5, 0, 1), (0, float("inf")),
                                  (0, float("nan")), ("a",)])
def test_arange_errors_as_torch(args):
    same_error(lambda: fastgrad.arange(*args), lambda: torch.arange(*args))
    same_error(lambda: fastgrad.arange(3, dtype=fastgrad._tensor.dtype.bool),
               lambda: torch.arange(3, dtype=torch.bool))


@settings(max_examples=25, deadline=None)
@given(start=st.floats(-100, 100), length=st.floats(0.01, 200), step=st.floats(0.01, 10),
       negative=st.booleans(), f64=st.booleans())
def test_arange_hypothesis(start, length, step, negative, f64):
    end = start + length
    if negative:
        start, end, step = end, start, -step
    dtype = torch.float64 if f64 else torch.float32
    # PyTorch's vectorized kernel adds steps to a base in the result's type: the last bit may
    # differ (it depends on the machine's vector width)
    scale = max(abs(start), abs(end), 1.0)
    assert_like_torch(fastgrad.arange(start, end, step, dtype=fg_dtype(dtype)),
                      torch.arange(start, end, step, dtype=dtype),
                      rtol=(1e-15 if f64 else 1e-6) * scale)


@pytest.mark.parametrize("args", [(0, 10, 4), (0, 1, 5), (0, 10, 1), (0, 10, 0), (3, -7, 6),
                                  (-1.5, 2.25, 9), (0, 1, 2), (5, 5, 3)])
def test_linspace_as_torch(args):
    assert_like_torch(fastgrad.linspace(*args), torch.linspace(*args), rtol=1e-6)
    assert_like_torch(fastgrad.linspace(*args, dtype=fastgrad._tensor.dtype.float64),
                      torch.linspace(*args, dtype=torch.float64), rtol=1e-15)
    for dtype in [torch.int64, torch.int32]:
        assert_like_torch(fastgrad.linspace(*args, dtype=fg_dtype(dtype)),
                          torch.linspace(*args, dtype=dtype))


@settings(max_examples=25, deadline=None)
@given(start=st.floats(-1e3, 1e3), end=st.floats(-1e3, 1e3), steps=st.integers(0, 50))
def test_linspace_hypothesis(start, end, steps):
    assert_like_torch(fastgrad.linspace(start, end, steps, dtype=fastgrad._tensor.dtype.float64),
                      torch.linspace(start, end, steps, dtype=torch.float64), rtol=1e-12)
    ours = fastgrad.linspace(start, end, steps)
    theirs = torch.linspace(start, end, steps)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6,
                               atol=1e-6 * max(abs(start), abs(end)))


def test_linspace_errors_as_torch():
    same_error(lambda: fastgrad.linspace(0, 1, -1), lambda: torch.linspace(0, 1, -1))
    same_error(lambda: fastgrad.linspace(0, 1, 2.0), lambda: torch.linspace(0, 1, 2.0))


@pytest.mark.parametrize("args", [(3,), (2, 4), (4, 2), (0,), (1, 0)])
def test_eye_as_torch(args):
    assert_like_torch(fastgrad.eye(*args), torch.eye(*args))
    assert_like_torch(fastgrad.eye(*args, dtype=fastgrad._tensor.dtype.bool),
                      torch.eye(*args, dtype=torch.bool))
    same_error(lambda: fastgrad.eye(-1), lambda: torch.eye(-1))
    same_error(lambda: fastgrad.eye(2, -3), lambda: torch.eye(2, -3))


# ---------------------------------------------------------------------------------------------
# Random factories


def test_rand_and_randn_shapes_dtypes_and_statistics():
    g = fastgrad.Generator().manual_seed(0)
    u = fastgrad.rand(200, 500, generator=g)
    assert u.shape == (200, 500) and u.dtype == np.float32
    a = u.numpy()
    assert a.min() >= 0.0 and a.max() < 1.0
    assert abs(a.mean() - 0.5) < 0.005 and abs(a.std() - (1 / 12) ** 0.5) < 0.005
    n = fastgrad.randn((100_000,), generator=g, dtype=fastgrad._tensor.dtype.float64)
    assert n.dtype == np.float64
    b = n.numpy()
    assert abs(b.mean()) < 0.02 and abs(b.std() - 1.0) < 0.02
    assert fastgrad.randn(()).shape == () and fastgrad.rand(0, 3).shape == (0, 3)
    assert fastgrad.rand(2, requires_grad=True).requires_grad
    h = fastgrad.rand(5000, dtype=fastgrad._tensor.dtype.float16, generator=g).numpy()
    assert h.dtype == np.float16 and h.max() < 1.0 and h.min() >= 0.0


@pytest.mark.parametrize("name", ["rand", "randn"])
def test_rand_randn_refuse_integer_dtypes_as_torch(name):
    same_error(lambda: getattr(fastgrad, name)(2, dtype=fastgrad._tensor.dtype.int64),
               lambda: getattr(torch, name)(2, dtype=torch.int64))


def test_randint_as_torch_in_signature_and_dtype():
    for args, kwargs in [((5, (3,)), {}), ((2, 9, (4, 2)), {}), ((), dict(high=5, size=(2,))),
                         ((0, 5, (2,)), dict(dtype=torch.float32)),
                         ((-3, 3, (100,)), dict(dtype=torch.int32))]:
        theirs = torch.randint(*args, **kwargs)
        fk = dict(kwargs)
        if "dtype" in fk:
            fk["dtype"] = fg_dtype(fk["dtype"])
        ours = fastgrad.randint(*args, **fk)
        assert ours.shape == tuple(theirs.shape) and ours.dtype == NP[theirs.dtype]
    t = fastgrad.randint(-3, 4, (10_000,), generator=fastgrad.Generator().manual_seed(1)).numpy()
    assert set(np.unique(t)) == set(range(-3, 4))
    assert abs(np.mean(t)) < 0.1


@pytest.mark.parametrize("args, kwargs", [
    ((5, 5, (2,)), {}), ((5, 2), {}), ((0.5, 5.5, (20,)), {}),
    ((0, 5, (2,)), dict(dtype=torch.bool)), ((-3, 300, (2,)), dict(dtype=torch.uint8)),
    ((0, 300, (2,)), dict(dtype=torch.uint8)), ((0, 2, (-1,)), {})])
def test_randint_errors_as_torch(args, kwargs):
    fk = {k: fg_dtype(v) for k, v in kwargs.items()}
    same_error(lambda: fastgrad.randint(*args, **fk), lambda: torch.randint(*args, **kwargs))


def test_randperm_is_a_permutation():
    for n in [0, 1, 7, 1000]:
        p = fastgrad.randperm(n)
        assert p.dtype == np.int64 and sorted(p.numpy().tolist()) == list(range(n))
    assert fastgrad.randperm(4, dtype=fastgrad._tensor.dtype.float32).dtype == np.float32
    g = fastgrad.Generator().manual_seed(3)
    first = fastgrad.randperm(50, generator=g).numpy().copy()
    assert not np.array_equal(first, np.arange(50))
    same_error(lambda: fastgrad.randperm(-1), lambda: torch.randperm(-1))
    same_error(lambda: fastgrad.randperm(2.0), lambda: torch.randperm(2.0))


def test_normal_overloads_as_torch():
    g = fastgrad.Generator().manual_seed(0)
    big = fastgrad.normal(3.0, 2.0, (100_000,), generator=g)
    assert big.dtype == np.float32
    assert abs(big.numpy().mean() - 3.0) < 0.03 and abs(big.numpy().std() - 2.0) < 0.03
    assert fastgrad.normal(0, 1, (2,), dtype=fastgrad._tensor.dtype.float64).dtype == np.float64
    mean = fastgrad.tensor([[0.0], [100.0]], dtype=fastgrad._tensor.dtype.float64)
    std = fastgrad.tensor([0.0, 1.0, 2.0], dtype=fastgrad._tensor.dtype.float64)
    out = fastgrad.normal(mean, std)
    assert out.shape == (2, 3) and out.dtype == np.float64
    assert out.numpy()[0, 0] == 0.0 and out.numpy()[1, 0] == 100.0
    assert fastgrad.normal(fastgrad.zeros(4)).shape == (4,)
    assert fastgrad.normal(2.0, fastgrad.ones(3)).shape == (3,)
    assert fastgrad.normal(fastgrad.zeros(2), 1.0).dtype == np.float32


@pytest.mark.parametrize("ours, theirs", [
    (lambda: fastgrad.normal(0.0, 1.0), lambda: torch.normal(0.0, 1.0)),
    (lambda: fastgrad.normal(0.0, -1.0, (2,)), lambda: torch.normal(0.0, -1.0, (2,))),
    (lambda: fastgrad.normal(fastgrad.zeros(2), -1.0), lambda: torch.normal(torch.zeros(2), -1.0)),
    (lambda: fastgrad.normal(fastgrad.tensor([0, 1])), lambda: torch.normal(torch.tensor([0, 1]))),
    (lambda: fastgrad.normal(fastgrad.zeros(2), 1.0, (3,)),
     lambda: torch.normal(torch.zeros(2), 1.0, (3,))),
])
def test_normal_errors_as_torch(ours, theirs):
    same_error(ours, theirs)


def test_normal_is_differentiable_in_mean_and_std_as_torch():
    fastgrad.manual_seed(0)
    mean = fastgrad.tensor([1.0, 2.0, 3.0], requires_grad=True)
    std = fastgrad.tensor([0.5, 1.0, 2.0], requires_grad=True)
    out = fastgrad.normal(mean, std)
    out.sum().backward()
    eps = (out.detach().numpy() - mean.detach().numpy()) / std.detach().numpy()
    np.testing.assert_allclose(np.asarray(mean.grad), np.ones(3))
    np.testing.assert_allclose(np.asarray(std.grad), eps, rtol=1e-5, atol=1e-6)


def test_bernoulli():
    g = fastgrad.Generator().manual_seed(5)
    p = fastgrad.tensor([0.0, 1.0, 0.25]).numpy()
    draws = np.stack([fastgrad.bernoulli(fastgrad.tensor(p), generator=g).numpy()
                      for _ in range(4000)])
    assert draws.dtype == np.float32 and set(np.unique(draws)) <= {0.0, 1.0}
    assert draws[:, 0].sum() == 0 and draws[:, 1].min() == 1
    assert abs(draws[:, 2].mean() - 0.25) < 0.03
    x = fastgrad.zeros(20_000, dtype=fastgrad._tensor.dtype.float64)
    b = fastgrad.bernoulli(x, 0.7, generator=g)
    assert b.dtype == np.float64 and abs(b.numpy().mean() - 0.7) < 0.02
    same_error(lambda: fastgrad.bernoulli(fastgrad.full((3,), 1.5)),
               lambda: torch.bernoulli(torch.full((3,), 1.5)))
    same_error(lambda: fastgrad.bernoulli(fastgrad.tensor([1, 0])),
               lambda: torch.bernoulli(torch.tensor([1, 0])))


def test_multinomial_with_replacement_follows_the_weights():
    g = fastgrad.Generator().manual_seed(11)
    w = fastgrad.tensor([1.0, 0.0, 3.0])
    s = fastgrad.multinomial(w, 40_000, replacement=True, generator=g)
    assert s.dtype == np.int64 and s.shape == (40_000,)
    counts = np.bincount(s.numpy(), minlength=3) / 40_000
    assert counts[1] == 0 and abs(counts[0] - 0.25) < 0.01 and abs(counts[2] - 0.75) < 0.01
    rows = fastgrad.multinomial(fastgrad.tensor([[0.0, 1.0], [1.0, 0.0]]), 5, True, generator=g)
    assert rows.numpy().tolist() == [[1] * 5, [0] * 5]


def test_multinomial_without_replacement():
    g = fastgrad.Generator().manual_seed(2)
    for _ in range(20):
        s = fastgrad.multinomial(fastgrad.rand(10, generator=g) + 0.01, 10, generator=g)
        assert sorted(s.numpy().tolist()) == list(range(10))
    # zero weights come only after every positive one, as in PyTorch
    s = fastgrad.multinomial(fastgrad.tensor([1.0, 0.0, 2.0]), 3, generator=g).numpy().tolist()
    assert s[2] == 1 and sorted(s) == [0, 1, 2]
    # the first draw follows the weights
    first = [fastgrad.multinomial(fastgrad.tensor([1.0, 3.0]), 2, generator=g).numpy()[0]
             for _ in range(4000)]
    assert abs(np.mean(first) - 0.75) < 0.03
    two_d = fastgrad.multinomial(fastgrad.ones(3, 4), 2, generator=g)
    assert two_d.shape == (3, 2) and all(len(set(r)) == 2 for r in two_d.numpy().tolist())


@pytest.mark.parametrize("data, n, replacement", [
    ([1.0, 0, 2], 4, False), ([1.0, 0, 2], 0, True), ([1.0, -1, 2], 1, False),
    ([1.0, float("nan"), 2], 1, True), ([1.0, float("inf"), 2], 1, False), ([0.0, 0], 1, True),
    ([[0.0, 1], [0, 0]], 1, False), ([1, 2], 1, True), (1.0, 1, True),
    ([[[1.0, 2]]], 1, True), ([[1.0, 2]], -1, True), ([1.0, 2], 2.0, True)])
def test_multinomial_errors_as_torch(data, n, replacement):
    same_error(lambda: fastgrad.multinomial(fastgrad.tensor(data), n, replacement),
               lambda: torch.multinomial(torch.tensor(data), n, replacement))


# ---------------------------------------------------------------------------------------------
# A script as people write it


def test_a_seeded_training_script_repeats():
    """Weights from randn, data from rand/randint, a few SGD steps: the same seed gives the
    same losses, another seed other losses."""
    def run(seed):
        fastgrad.manual_seed(seed)
        x = fastgrad.rand(64, 3)
        labels = fastgrad.randint(0, 2, (64,))
        w = fastgrad.randn(3, 2, requires_grad=True)
        b = fastgrad.zeros(2, requires_grad=True)
        losses = []
        for _ in range(5):
            logits = x @ w + b
            loss = fastgrad._tensor.cross_entropy(logits, labels)
            loss.backward()
            with fastgrad.no_grad():
                w -= 0.5 * w.grad
                b -= 0.5 * b.grad
            w.grad.zero_()
            b.grad.zero_()
            losses.append(loss.item())
        return losses
    assert run(0) == run(0)
    assert run(0) != run(1)
    assert run(0)[-1] < run(0)[0]
