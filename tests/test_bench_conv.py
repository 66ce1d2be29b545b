"""The convolutional rows of `python -m fastgrad.bench` (fastgrad/bench/lenet.py and conv.py):
their steps and passes run, fastgrad and PyTorch compute the same numbers from the same
weights, and the table heads the extra columns. No timing assertions (the whole command runs
in tests/test_bench.py)."""

import os

import numpy as np
import pytest

import fastgrad
from fastgrad.bench import conv, lenet
from fastgrad.bench.__main__ import table
from fastgrad.bench.common import THREAD_VARIABLES


def test_lenet_weights_have_the_model_shapes_and_pytorch_bounds():
    weights = lenet.make_weights(np.random.default_rng(0))
    shapes = [w.shape for w in weights]
    assert shapes == [(6, 1, 5, 5), (6,), (16, 6, 5, 5), (16,), (120, 256), (120,),
                      (84, 120), (84,), (10, 84), (10,)]
    assert all(w.dtype == np.float32 for w in weights)
    assert np.abs(weights[0]).max() <= 1 / 5 and np.abs(weights[4]).max() <= 1 / 16


@pytest.mark.parametrize("batch", lenet.BATCHES)
def test_lenet_step_follows_pytorch_from_the_same_weights(batch):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(batch)
    weights = lenet.make_weights(rng)
    x, y, batches = lenet.make_data(rng, batch, n=128)
    steps = {lib.__name__: lenet.library_step(lib, weights) for lib in (fastgrad, torch)}
    order = batches[:4] + [batches[0]] * 4  # four batches, then one of them again and again
    losses = {name: [step(x[b], y[b]) for b in order] for name, step in steps.items()}
    np.testing.assert_allclose(losses["fastgrad"], losses["torch"], rtol=1e-4)
    assert losses["fastgrad"][-1] < losses["fastgrad"][4]  # it learns the repeated batch


def test_lenet_step_trains_fastgrad_in_float32_whatever_the_default(float64_default):
    rng = np.random.default_rng(0)
    weights = lenet.make_weights(rng)
    x, y, batches = lenet.make_data(rng, 8, n=16)
    step = lenet.library_step(fastgrad, weights)
    first = step(x[batches[0]], y[batches[0]])
    assert np.isfinite(first) and step(x[batches[0]], y[batches[0]]) < first


@pytest.mark.parametrize("case", sorted(conv.CASES))
def test_conv_pass_matches_pytorch_and_times_both_halves(case):
    torch = pytest.importorskip("torch")
    arrays = conv.make_arrays(case, np.random.default_rng(0))
    conv.check_same_output(fastgrad, torch, case, arrays)  # raises if they differ
    for run in (conv.library_pass(fastgrad, case, arrays), conv.library_pass(torch, case, arrays),
                conv.gemm_pass(case, arrays)):
        value, backward = run()
        assert value > 0 and backward > 0


def test_conv_check_catches_a_wrong_library():
    pytest.importorskip("torch")
    import torch

    class Shifted:
        """torch whose conv2d adds 1 to the output: the check must refuse it."""
        from_numpy = staticmethod(torch.from_numpy)

        class nn:
            class functional:
                @staticmethod
                def conv2d(x, w, b):
                    return torch.nn.functional.conv2d(x, w, b) + 1

    arrays = conv.make_arrays("conv2", np.random.default_rng(0))
    with pytest.raises(RuntimeError, match="conv2 differs"):
        conv.check_same_output(fastgrad, Shifted, "conv2", arrays)


def test_conv_case_gradients_follow_the_input_flag():
    arrays = conv.make_arrays("conv1", np.random.default_rng(0))
    assert arrays["g"].shape == (64, 6, 24, 24)
    assert conv.CASES["conv1"][5] is False and conv.CASES["conv2"][5] is True


def test_time_passes_reports_each_column_per_repeat():
    calls = []
    passes = {"a": lambda: (1e-6, 2e-6), "b": lambda: (3e-6, 4e-6)}
    times = conv.time_passes(passes, iterations=4, repeats=2, outputs=1000,
                             before_turn={"b": lambda: calls.append("b")})
    assert times["a"] == [[pytest.approx(1.0)] * 2, [pytest.approx(2.0)] * 2]  # ns per output
    assert times["b"] == [[pytest.approx(3.0)] * 2, [pytest.approx(4.0)] * 2]
    assert calls == ["b"] * 3  # before the warm-up and before each of the two turns


def test_torch_default_threads_ignore_the_thread_variables(monkeypatch):
    pytest.importorskip("torch")
    for var in THREAD_VARIABLES:
        monkeypatch.setenv(var, "1")
    torch, default = lenet.import_torch_with_default_threads()
    assert default >= 1
    assert all(os.environ[var] == "1" for var in THREAD_VARIABLES)  # put back afterwards
    _, columns = lenet.torch_columns(1)
    assert columns["torch"] == 1
    assert columns.get("torch_default", 1) == default
    previous = torch.get_num_threads()
    try:
        lenet.thread_setters(torch, {"torch": 1})["torch"]()
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(previous)


def test_table_titles_the_default_threads_and_gemm_columns():
    def result(v):
        return {"median": v, "min": v, "max": v, "samples": [v]}
    report = {"rows": [{"label": "tensor: conv2d", "unit": "ns/output",
                        "results": {"fastgrad": result(4.0), "torch": result(2.0),
                                    "torch_default": result(8.0), "gemm": result(1.0)},
                        "ratios": {"torch": 0.5, "torch_default": 2.0, "gemm": 0.25}}]}
    head, _, line = table(report).splitlines()
    assert "torch, default threads / fastgrad" in head and "numpy GEMMs / fastgrad" in head
    assert line.endswith("| 0.5× | 2.0× | 0.2× |")
