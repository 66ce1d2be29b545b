"""Scalar workloads: the same code runs on fastgrad's Value, the reference engine and micrograd.

``python -m fastgrad.bench`` runs each (engine, workload) pair in a fresh interpreter, so one engine's garbage never
slows another and peak memory is the workload's own.

Workloads
  binary_op   ``x + y`` on two existing Values, from Python (ns per op, loop overhead subtracted)
  chain       ``y = y * a + b`` repeated; forward ns per op, backward ns per node
  moons_step  micrograd's demo step: MLP(2, [16, 16, 1]), 100 samples, SVM loss + L2, SGD
  memory      peak bytes per node of a graph built and back-propagated
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from fastgrad.bench.common import peak_rss_bytes, timed

ENGINES = ["fastgrad", "reference", "micrograd"]
WORKLOADS = ["binary_op", "chain", "moons_step", "memory"]

# (workload, metric, label, unit): one table row each
METRICS = [
    ("binary_op", "ns_per_op", "scalar: binary op x + y", "ns/op"),
    ("chain", "forward_ns_per_op", "scalar: chain forward", "ns/op"),
    ("chain", "backward_ns_per_node", "scalar: chain backward", "ns/node"),
    ("moons_step", "ms_per_step", "scalar: moons training step", "ms/step"),
    ("memory", "bytes_per_node", "scalar: peak memory per node", "bytes/node"),
]

# Sizes: (full, quick)
SIZES = {
    "binary_ops": (200_000, 20_000), "binary_repeats": (15, 5),
    "chain_ops": (100_000, 10_000), "chain_repeats": (7, 3),
    "moons_samples": (100, 20), "moons_repeats_fast": (50, 10), "moons_repeats_slow": (5, 2),
    "memory_nodes": (1_000_000, 50_000),
}


def size(name: str, quick: bool) -> int:
    """A workload size from SIZES, full or quick.

    >>> size("chain_ops", quick=True) < size("chain_ops", quick=False)
    True
    """
    return SIZES[name][1 if quick else 0]


def available(engine: str) -> bool:
    """fastgrad and its reference engine always are; micrograd when it is installed."""
    if engine != "micrograd":
        return True
    try:
        import micrograd  # noqa: F401
    except ImportError:
        return False
    return True


def load_engine(name: str) -> tuple[Any, Any]:
    """(Value, MLP) of an engine. fastgrad.engine reads FASTGRAD_ENGINE when first imported,
    so the worker's environment selects the reference engine (common.run_worker)."""
    if name == "micrograd":
        from micrograd.engine import Value
        from micrograd.nn import MLP
        return Value, MLP
    from fastgrad import engine
    from fastgrad.nn import MLP as FastMLP
    want = "pure" if name == "reference" else "compiled"
    if engine.ENGINE != want:
        raise RuntimeError(f"engine {name!r} needs FASTGRAD_ENGINE={want} before fastgrad loads")
    return engine.Value, FastMLP


def work_binary_op(Value: Any, MLP: Any, quick: bool, engine: str) -> dict[str, Any]:
    """ns per ``x + y`` of two existing Values, the empty loop's time subtracted."""
    x, y = Value(1.5), Value(-0.5)
    n = size("binary_ops", quick)

    def loop() -> None:
        for _ in range(n):
            x + y

    def empty() -> None:
        for _ in range(n):
            pass

    loop_overhead = min(timed(empty, 5))
    runs = timed(loop, size("binary_repeats", quick))
    return {"ns_per_op": [(t - loop_overhead) / n * 1e9 for t in runs]}


def work_chain(Value: Any, MLP: Any, quick: bool, engine: str) -> dict[str, Any]:
    """Forward ns per op and backward ns per node of a chain ``y = y * a + b``."""
    sys.setrecursionlimit(1_000_000)  # micrograd's backward recurses once per node
    n_ops = size("chain_ops", quick)
    forward, backward = [], []
    for _ in range(size("chain_repeats", quick)):
        a, b, x = Value(1.0000001), Value(1e-7), Value(0.5)
        t0 = time.perf_counter()
        y = x
        for _ in range(n_ops // 2):
            y = y * a + b
        t1 = time.perf_counter()
        y.backward()
        t2 = time.perf_counter()
        forward.append((t1 - t0) / n_ops * 1e9)
        backward.append((t2 - t1) / (n_ops + 3) * 1e9)
        del y
    return {"forward_ns_per_op": forward, "backward_ns_per_node": backward}


def moons_loss(model: Any, inputs: list[list[Any]], y: Any) -> Any:
    """micrograd's demo loss: mean SVM max-margin loss plus 1e-4 L2 regularization."""
    scores = list(map(model, inputs))
    losses = [(1 + -yi * scorei).relu() for yi, scorei in zip(y, scores)]
    data_loss = sum(losses) * (1.0 / len(losses))
    reg_loss = 1e-4 * sum((p * p for p in model.parameters()))
    return data_loss + reg_loss


def moons_step_fn(Value: Any, MLP: Any, samples: int) -> Callable[[], float]:
    """micrograd's demo training step (demo.ipynb) on `samples` moons, as a closure."""
    import random

    from fastgrad.datasets import make_moons

    random.seed(1337)
    X, y = make_moons(samples, noise=0.1, seed=1337)
    model = MLP(2, [16, 16, 1])
    state = {"k": 0}

    def step() -> float:
        total_loss = moons_loss(model, [list(map(Value, xrow)) for xrow in X], y)
        model.zero_grad()
        total_loss.backward()
        learning_rate = 1.0 - 0.9 * state["k"] / 100
        for p in model.parameters():
            p.data -= learning_rate * p.grad
        state["k"] += 1
        return float(total_loss.data)

    return step


def work_moons_step(Value: Any, MLP: Any, quick: bool, engine: str) -> dict[str, Any]:
    """ms per step of micrograd's moons demo (after one warm-up step)."""
    samples = size("moons_samples", quick)
    step = moons_step_fn(Value, MLP, samples)
    repeats = size("moons_repeats_fast" if engine == "fastgrad" else "moons_repeats_slow", quick)
    step()  # warm up
    return {"ms_per_step": [t * 1e3 for t in timed(step, repeats)], "samples": samples}


def work_memory(Value: Any, MLP: Any, quick: bool, engine: str) -> dict[str, Any]:
    """Growth of the peak RSS per node while a long sum is built and back-propagated."""
    sys.setrecursionlimit(3_000_000)
    n = size("memory_nodes", quick)
    x, one = Value(0.5), Value(1e-9)
    y = x * one  # touch everything an op needs before the baseline
    y.backward()
    base = peak_rss_bytes()
    y = x
    for _ in range(n):
        y = y + one
    y.backward()
    peak = peak_rss_bytes()
    if not base:
        return {"error": "peak memory is not reported on this platform"}
    return {"bytes_per_node": [(peak - base) / n], "nodes": n}


WORK = {"binary_op": work_binary_op, "chain": work_chain, "moons_step": work_moons_step,
        "memory": work_memory}


# micrograd's backward recurses once per node. Before Python 3.11 every Python-level call also
# takes C stack, so a deep graph overflows the main thread's stack (8 MB): micrograd runs in a
# thread with a stack this large (virtual memory; only the part used becomes resident).
MICROGRAD_STACK = 1 << 30


def worker(engine: str, workload: str, quick: bool) -> dict[str, Any]:
    """Run one workload on one engine in this process."""
    Value, MLP = load_engine(engine)
    if engine != "micrograd":
        return WORK[workload](Value, MLP, quick, engine)
    result: dict[str, Any] = {}
    failure: list[BaseException] = []

    def run() -> None:
        try:
            result.update(WORK[workload](Value, MLP, quick, engine))
        except BaseException as exc:  # re-raised in the calling thread
            failure.append(exc)

    threading.stack_size(MICROGRAD_STACK)
    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result
