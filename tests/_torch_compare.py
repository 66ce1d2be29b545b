"""Run the same PyTorch-style code under fastgrad and under PyTorch, and compare the results.

A test writes its body once as a function of the library (``lib`` is the ``fastgrad`` module or
the ``torch`` module, used as a PyTorch script uses ``torch``) and hands it to ``check``, which
runs it under both libraries from the same numpy inputs and compares what comes back: values,
shapes and dtype names of every tensor in the result (tuples, lists and namedtuples recursively),
Python scalars and their types, and the gradients of the inputs after a backward pass from a
fixed random weighting of every floating output. ``check_raises`` asserts that a bad call raises
the same exception class in both.

Tolerances: float64 1e-12 relative, float32 5e-6 relative (a few float32 ulps: PyTorch and
numpy round differently, and a gradient compounds two or three roundings); the absolute part
scales with the largest expected magnitude so that entries that cancel to ~0 are judged against
the array they belong to. Integer and bool results must be
exact. NaNs must sit in the same places, infinities with the same sign.

Self-check: with ``FASTGRAD_TORCH_SELF_CHECK=1`` the library under test is PyTorch itself, so a
run validates every expectation a test states on its own (an error class, a value it asserts)
against PyTorch without needing fastgrad to be complete. Tests of fastgrad-only behaviour carry
``fastgrad_only`` and are skipped in that mode.

>>> out = check(lambda lib, x: (x * 2).sum(), np.array([1.0, 2.0]))
>>> out.item()
6.0
"""
from __future__ import annotations

import os
import warnings
from typing import Any, Callable

import numpy as np
import pytest

import fastgrad

torch = pytest.importorskip("torch", reason="PyTorch not installed: comparison tests skipped")

SELF_CHECK = os.environ.get("FASTGRAD_TORCH_SELF_CHECK") == "1"
fg: Any = torch if SELF_CHECK else fastgrad          # the library under test
LIBS = [pytest.param(torch, id="torch"), pytest.param(fg, id="fastgrad")]

fastgrad_only = pytest.mark.skipif(SELF_CHECK, reason="fastgrad-only behaviour (self-check run)")


def core_gap(reason: str) -> pytest.MarkDecorator:
    """A known difference of fastgrad's core from PyTorch (listed in the core failures note):
    a strict xfail, so the test reports when the core is fixed. Off in a self-check run."""
    return pytest.mark.xfail(not SELF_CHECK, reason=reason, strict=True)

RTOL = {"float64": 1e-12, "float32": 5e-6, "float16": 1e-3}


def dtype_name(x: Any) -> str:
    """'float32' for a tensor or dtype of either library (or a numpy dtype)."""
    d = getattr(x, "dtype", x)
    if isinstance(d, np.dtype):
        return d.name
    return str(d).split(".")[-1]


def is_tensor(x: Any) -> bool:
    return isinstance(x, (torch.Tensor, fastgrad.Tensor))


def to_numpy(t: Any) -> np.ndarray:
    """The values of a tensor of either library as a numpy array (a copy)."""
    return np.array(t.detach().numpy(), copy=True)


def make(lib: Any, a: Any, requires_grad: bool | None = None) -> Any:
    """``lib.tensor(a)``; floating arrays require grad unless ``requires_grad`` says otherwise."""
    a = np.asarray(a)
    if requires_grad is None:
        requires_grad = a.dtype.kind == "f"
    return lib.tensor(a.copy(), requires_grad=requires_grad)


def assert_close_arrays(got: np.ndarray, want: np.ndarray, dtype: str, rtol: float | None = None,
                        what: str = "") -> None:
    """Exact for integer/bool dtypes, relative (with a magnitude-scaled absolute part) for
    floating ones; NaN and inf placement must agree."""
    assert got.shape == want.shape, f"{what}: shape {got.shape} != torch's {want.shape}"
    if want.dtype.kind != "f":
        np.testing.assert_array_equal(got, want, err_msg=what)
        return
    r = RTOL.get(dtype, 1e-6) if rtol is None else rtol
    finite = np.abs(want[np.isfinite(want)])
    scale = float(finite.max()) if finite.size else 0.0
    np.testing.assert_allclose(got, want, rtol=r, atol=r * max(scale, 1e-30), equal_nan=True,
                               err_msg=what)


def assert_same(got: Any, want: Any, rtol: float | None = None, what: str = "result") -> None:
    """Compare a fastgrad result with PyTorch's: tensors (dtype name, shape, values), sequences
    and namedtuples (recursively, field names too), dtypes, Python scalars (type and value)."""
    if is_tensor(want):
        assert is_tensor(got), f"{what}: {type(got).__name__} where torch gives a Tensor"
        assert dtype_name(got) == dtype_name(want), \
            f"{what}: dtype {dtype_name(got)} != torch's {dtype_name(want)}"
        assert tuple(got.shape) == tuple(want.shape), \
            f"{what}: shape {tuple(got.shape)} != torch's {tuple(want.shape)}"
        assert_close_arrays(to_numpy(got), to_numpy(want), dtype_name(want), rtol, what)
    elif isinstance(want, torch.Size):
        assert tuple(got) == tuple(want), f"{what}: {got} != torch's {want}"
    elif isinstance(want, torch.dtype):
        assert dtype_name(got) == dtype_name(want), f"{what}: {got} != torch's {want}"
    elif isinstance(want, (tuple, list)):
        assert isinstance(got, (tuple, list)), f"{what}: {type(got).__name__} is not a sequence"
        assert len(got) == len(want), f"{what}: length {len(got)} != torch's {len(want)}"
        for name in getattr(want, "_fields", ()):          # (values, indices) namedtuples
            assert_same(getattr(got, name), getattr(want, name), rtol, f"{what}.{name}")
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, rtol, f"{what}[{i}]")
    elif isinstance(want, (bool, int, float)):
        assert type(got) is type(want), \
            f"{what}: {type(got).__name__} {got!r} where torch gives {type(want).__name__} {want!r}"
        if isinstance(want, float):
            assert_close_arrays(np.array(got), np.array(want), "float64", rtol or 1e-6, what)
        else:
            assert got == want, f"{what}: {got!r} != torch's {want!r}"
    else:
        assert got == want, f"{what}: {got!r} != torch's {want!r}"


def _tensors(out: Any) -> list:
    if is_tensor(out):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _tensors(o)]
    return []


def run_torch(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` with PyTorch's numpy-2 DeprecationWarning (its ``__array_wrap__``) silenced:
    pytest turns warnings into errors here and the warning is PyTorch's, not the test's."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*__array_wrap__", category=DeprecationWarning)
        return fn(*args)


def _run(lib: Any, fn: Callable[..., Any], arrays: tuple, grad: bool, seed: int):
    inputs = [make(lib, a, requires_grad=grad and np.asarray(a).dtype.kind == "f")
              if isinstance(a, np.ndarray) else a for a in arrays]
    with warnings.catch_warnings():
        # numpy's "divide by zero encountered in log" and the like: PyTorch is silent there, and
        # whether fastgrad is too is one test of its own (test_no_numpy_warnings_at_edge_values)
        # rather than a failure of every value test that touches an edge
        warnings.filterwarnings("ignore", message=".* encountered in ", category=RuntimeWarning)
        out = run_torch(fn, lib, *inputs) if lib is torch else fn(lib, *inputs)
        if grad:
            rng = np.random.default_rng(seed)
            for t in _tensors(out):
                if t.requires_grad:
                    w = rng.standard_normal(tuple(t.shape)).astype(dtype_name(t))
                    t.backward(lib.tensor(w), retain_graph=True)
    grads = [x.grad if is_tensor(x) else None for x in inputs]
    return out, grads


def check(fn: Callable[..., Any], *arrays: Any, grad: bool = True, rtol: float | None = None,
          seed: int = 0) -> Any:
    """Run ``fn(lib, *inputs)`` under PyTorch and fastgrad and compare results and gradients.

    ``arrays``: numpy arrays become ``lib.tensor`` inputs (floating ones require grad when
    ``grad``); anything else is passed as is. After the forward results are compared, every
    output that requires grad gets ``backward`` with fixed random weights and the inputs'
    ``.grad`` are compared (both None, or the same tensors). Returns fastgrad's result.
    """
    want, want_grads = _run(torch, fn, arrays, grad, seed)
    got, got_grads = _run(fg, fn, arrays, grad, seed)
    assert_same(got, want, rtol)
    for i, (g, w) in enumerate(zip(got_grads, want_grads)):
        if w is None:
            assert g is None, f"input {i}: .grad is {g!r} where torch's is None"
        else:
            assert g is not None, f"input {i}: .grad is None where torch has one"
            assert_same(g, w, rtol, f"input {i} .grad")
    return got


def check_raises(exc: type[BaseException], fn: Callable[..., Any], *arrays: Any,
                 match: str | None = None) -> None:
    """``fn(lib, *inputs)`` raises ``exc`` under PyTorch (the test's expectation is right) and
    under fastgrad (``match`` is checked against fastgrad's message only when given)."""
    for lib in (torch, fg):
        inputs = [make(lib, a, requires_grad=False) if isinstance(a, np.ndarray) else a
                  for a in arrays]
        with pytest.raises(exc, match=match if lib is fg else None):
            run_torch(fn, lib, *inputs)


def check_same_outcome(fn: Callable[..., Any], *arrays: Any, grad: bool = False,
                       rtol: float | None = None) -> Any:
    """``check`` where PyTorch may refuse the call: then fastgrad must raise the same class.

    PyTorch's NotImplementedError ("not implemented for 'Bool'") marks a kernel it lacks rather
    than an API promise, so there fastgrad may raise or compute: nothing is compared.
    """
    try:
        _run(torch, fn, arrays, grad, 0)
    except NotImplementedError:
        return None
    except Exception as exc:  # the expectation is PyTorch's refusal
        with pytest.raises(type(exc)):
            _run(fg, fn, arrays, grad, 0)
        return None
    return check(fn, *arrays, grad=grad, rtol=rtol)


def np_operand(lib: Any, a: np.ndarray) -> Any:
    """``a`` itself under fastgrad, ``torch.tensor(a)`` under PyTorch: PyTorch refuses an ndarray
    operand next to a tensor that requires grad ("Can't call numpy() on Tensor that requires
    grad"), fastgrad's contract takes it as a tensor operand, which is what the reference does."""
    return torch.tensor(a) if lib is torch else a


def rand(shape: tuple, dtype: str = "float64", seed: int = 0, low: float = -2.0,
         high: float = 2.0) -> np.ndarray:
    """Uniform numbers in [low, high) of a shape and dtype (reproducible)."""
    return np.random.default_rng(seed).uniform(low, high, size=shape).astype(dtype)


def distinct(shape: tuple, dtype: str = "float64", seed: int = 0) -> np.ndarray:
    """Values without ties (a shuffled range, scaled), for max/sort/topk whose indices would be
    ambiguous under ties."""
    n = int(np.prod(shape, dtype=np.int64))
    v = np.random.default_rng(seed).permutation(n).astype(dtype) * 0.5 - n / 4
    return v.reshape(shape)
