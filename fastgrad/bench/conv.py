"""The conv2d workload: nanoseconds per output element of one convolution's value and of its
backward, fastgrad and PyTorch against the GEMM floor, LeNet's two convolutions at batch 64.

    conv1: input (64, 1, 28, 28), weight (6, 1, 5, 5)  -> (64, 6, 24, 24); the input needs no
           gradient (it is the data), so backward is the weight's and the bias's gradient
    conv2: input (64, 6, 12, 12), weight (16, 6, 5, 5) -> (64, 16, 8, 8); backward also gives
           the input's gradient

The GEMM floor is the matrix products an im2col convolution cannot avoid, in bare numpy on
precomputed columns (K = C*kh*kw rows, N*L columns, L = Ho*Wo output positions):
value ``W.reshape(O, K) @ cols``; backward ``grad_out @ cols.T`` for the weight and, when the
input needs a gradient, ``W.reshape(O, K).T @ grad_out`` for the columns. What a library spends
beyond it is the im2col/col2im copies, the bias, the tape and the Python around them.
float32, one fresh graph per iteration; the value and the backward are timed separately.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from fastgrad.bench.lenet import thread_setters, torch_columns

# name -> (batch, in channels, out channels, image side, kernel side, input needs a gradient)
CASES: dict[str, tuple[int, int, int, int, int, bool]] = {
    "conv1": (64, 1, 6, 28, 5, False),
    "conv2": (64, 6, 16, 12, 5, True),
}
ITERATIONS = 200  # per repeat; --quick takes 1/20 of it, the full run half

# one iteration: a value and a backward, returning their times in seconds
Pass = Callable[[], tuple[float, float]]


def make_arrays(case: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Input, weight, bias and output gradient of a case, float32."""
    n, c, o, h, k, _ = CASES[case]
    side = h - k + 1
    return {"x": rng.standard_normal((n, c, h, h), dtype=np.float32),
            "w": rng.standard_normal((o, c, k, k), dtype=np.float32) / k,
            "b": rng.standard_normal(o, dtype=np.float32),
            "g": rng.standard_normal((n, o, side, side), dtype=np.float32)}


def library_pass(lib: Any, case: str, arrays: dict[str, np.ndarray]) -> Pass:
    """One conv2d value and backward in `lib` (fastgrad or torch: the code is the same).

    >>> import fastgrad
    >>> run = library_pass(fastgrad, "conv2", make_arrays("conv2", np.random.default_rng(0)))
    >>> all(t > 0 for t in run())
    True
    """
    x, w, b, g = (lib.from_numpy(arrays[k].copy()) for k in "xwbg")
    x.requires_grad_(CASES[case][5])
    w.requires_grad_(True)
    b.requires_grad_(True)
    conv2d = lib.nn.functional.conv2d

    def run() -> tuple[float, float]:
        x.grad = w.grad = b.grad = None
        t0 = time.perf_counter()
        out = conv2d(x, w, b)
        t1 = time.perf_counter()
        out.backward(g)
        return t1 - t0, time.perf_counter() - t1
    return run


def gemm_pass(case: str, arrays: dict[str, np.ndarray]) -> Pass:
    """The GEMMs of the same convolution in bare numpy, on precomputed columns."""
    n, c, o, h, k, input_grad = CASES[case]
    side = h - k + 1
    rng = np.random.default_rng(1)  # the columns' values do not change the time
    cols = rng.standard_normal((c * k * k, n * side * side), dtype=np.float32)
    wm = np.ascontiguousarray(arrays["w"].reshape(o, -1))
    g = np.ascontiguousarray(arrays["g"].transpose(1, 0, 2, 3).reshape(o, -1))

    def run() -> tuple[float, float]:
        t0 = time.perf_counter()
        wm @ cols
        t1 = time.perf_counter()
        g @ cols.T
        if input_grad:
            wm.T @ g
        return t1 - t0, time.perf_counter() - t1
    return run


def time_passes(passes: dict[str, Pass], iterations: int, repeats: int, outputs: int,
                before_turn: dict[str, Callable[[], None]]) -> dict[str, list[list[float]]]:
    """[value ns, backward ns] per output element of each repeat, per column; the columns take
    turns within each repeat."""
    times: dict[str, list[list[float]]] = {name: [[], []] for name in passes}
    for name, run in passes.items():
        before_turn.get(name, lambda: None)()
        for _ in range(max(3, iterations // 10)):
            run()
    for _ in range(repeats):
        for name, run in passes.items():
            before_turn.get(name, lambda: None)()
            time.sleep(0.05)  # PyTorch's OpenMP threads spin after its turn: let them idle
            value = backward = 0.0
            for _ in range(iterations):
                dv, db = run()
                value += dv
                backward += db
            times[name][0].append(value / iterations / outputs * 1e9)
            times[name][1].append(backward / iterations / outputs * 1e9)
    return times


def check_same_output(lib_a: Any, lib_b: Any, case: str, arrays: dict[str, np.ndarray]) -> None:
    """The two libraries' outputs and weight gradients agree to float32's precision of a sum
    of many terms (relative to the largest entry: the gradient's entries cancel)."""
    results = []
    for lib in (lib_a, lib_b):
        x, w, b, g = (lib.from_numpy(arrays[k].copy()) for k in "xwbg")
        w.requires_grad_(True)
        out = lib.nn.functional.conv2d(x, w, b)
        out.backward(g)
        results.append((out.detach().numpy(), w.grad.numpy()))
    for a, b_ in zip(*results):
        if np.abs(a - b_).max() > 1e-4 * np.abs(b_).max():
            raise RuntimeError(f"benchmark setup error: {case} differs between the libraries")


def worker(name: str, quick: bool, threads: int = 0) -> dict[str, Any]:
    """For each case, "<case>_value_ns" and "<case>_backward_ns": {column: ns per output
    element of each repeat}; name is "conv" (tensor.worker's signature)."""
    import fastgrad
    torch, columns = torch_columns(threads)
    setters = thread_setters(torch, columns)
    result: dict[str, Any] = {"torch_threads": columns}
    for case, (n, _, o, h, k, _) in CASES.items():
        arrays = make_arrays(case, np.random.default_rng(0))
        if torch is not None:
            check_same_output(fastgrad, torch, case, arrays)
        passes = {"fastgrad": library_pass(fastgrad, case, arrays),
                  **{c: library_pass(torch, case, arrays) for c in columns},
                  "gemm": gemm_pass(case, arrays)}
        times = time_passes(passes, ITERATIONS // (20 if quick else 2), 3 if quick else 9,
                            n * o * (h - k + 1) ** 2, setters)
        result[f"{case}_value_ns"] = {c: t[0] for c, t in times.items()}
        result[f"{case}_backward_ns"] = {c: t[1] for c, t in times.items()}
    return result
