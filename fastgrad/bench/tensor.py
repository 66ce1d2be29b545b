"""Tensor workloads: a training step of fastgrad's Tensor, a pure-Python numpy tape and PyTorch.

Two models, both started from the same weights in every framework:
  * the regression MLP 1-128-128-1 (ReLU, MSE, SGD lr 1e-4), batch 8
  * the digits MLP 64-128-10 (ReLU, cross-entropy, Adam lr 1e-3), batch 256
A step is: build the batch tensor, forward, loss, zero_grad, backward, optimizer step.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from fastgrad import Tensor, nn, optim
from fastgrad.nn import functional as F
from fastgrad.bench.numpy_tape import NAdam, NLinear, NTensor, sgd_step

Step = Callable[[np.ndarray, np.ndarray], float]

CONFIGS: dict[str, dict[str, Any]] = {
    "regression": dict(sizes=[1, 128, 128, 1], batch=8, loss="mse", opt="sgd", lr=1e-4,
                       steps=1000),
    "digits": dict(sizes=[64, 128, 10], batch=256, loss="ce", opt="adam", lr=1e-3, steps=200),
}


def load_torch() -> Any:
    """The torch module, or None when PyTorch is not installed."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def make_weights(sizes: list[int], rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """PyTorch-style U(-1/sqrt(fan_in), 1/sqrt(fan_in)) weights and biases for each layer."""
    out = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = 1 / np.sqrt(fan_in)
        out.append((rng.uniform(-bound, bound, (fan_out, fan_in)),
                    rng.uniform(-bound, bound, fan_out)))
    return out


def make_data(cfg: dict[str, Any], rng: np.random.Generator,
              n: int = 512) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Inputs, targets and 64 random batches of indices for a config."""
    x: np.ndarray
    y: np.ndarray
    if cfg["loss"] == "mse":
        x = rng.random((n, 1))
        y = np.cos(2 * x + 20 * x ** 2) + 0.1 * rng.standard_normal((n, 1))
    else:
        x = rng.random((n, cfg["sizes"][0]))
        y = rng.integers(0, cfg["sizes"][-1], n)
    batches = [rng.choice(n, cfg["batch"], replace=False) for _ in range(64)]
    return x, y, batches


def fastgrad_step(cfg: dict[str, Any], weights: list[tuple[np.ndarray, np.ndarray]],
                  dtype: Any) -> Step:
    """A training step of fastgrad's Tensor model with the given weights."""
    layers: list[nn.Module] = []
    for i, (w, b) in enumerate(weights):
        lin = nn.Linear(w.shape[1], w.shape[0], dtype=dtype)
        assert lin.bias is not None
        lin.weight.data[...] = w
        lin.bias.data[...] = b
        layers.append(lin)
        if i != len(weights) - 1:
            layers.append(nn.ReLU())
    model = nn.Sequential(*layers)
    opt: optim.Optimizer = (optim.SGD(model.parameters(), lr=cfg["lr"]) if cfg["opt"] == "sgd"
                            else optim.Adam(model.parameters(), lr=cfg["lr"]))
    mse = cfg["loss"] == "mse"

    def step(xb: np.ndarray, yb: np.ndarray) -> float:
        out = model(Tensor(xb))
        loss = F.mse_loss(out, Tensor(yb)) if mse else F.cross_entropy(out, yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()
    return step


def numpy_tape_step(cfg: dict[str, Any], weights: list[tuple[np.ndarray, np.ndarray]],
                    dtype: Any, naive: bool = False) -> Step:
    """A training step on the pure-Python numpy tape (tuned, or the naive one)."""
    layers = [NLinear(w.astype(dtype), b.astype(dtype)) for w, b in weights]
    params = [p for lin in layers for p in (lin.weight, lin.bias)]
    adam = NAdam(params, lr=cfg["lr"]) if cfg["opt"] == "adam" else None

    def step(xb: np.ndarray, yb: np.ndarray) -> float:
        h = NTensor(xb)
        for i, lin in enumerate(layers):
            h = lin(h)
            if i != len(layers) - 1:
                h = h.relu()
        loss = h.mse(yb) if cfg["loss"] == "mse" else h.cross_entropy(yb)
        loss.backward(naive=naive)
        if adam is None:
            sgd_step(params, cfg["lr"])
        else:
            adam.step()
        return float(loss.value)
    return step


def naive_tape_step(cfg: dict[str, Any], weights: list[tuple[np.ndarray, np.ndarray]],
                    dtype: Any) -> Step:
    """The naive numpy tape: a zeroed gradient buffer for every node, data included."""
    return numpy_tape_step(cfg, weights, dtype, naive=True)


def torch_step(cfg: dict[str, Any], weights: list[tuple[np.ndarray, np.ndarray]],
               dtype: Any) -> Step:
    """A training step of the same model in PyTorch (CPU)."""
    torch = load_torch()
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    layers = []
    for i, (w, b) in enumerate(weights):
        lin = torch.nn.Linear(*w.shape[::-1], dtype=tdtype)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w))
            lin.bias.copy_(torch.from_numpy(b))
        layers.append(lin)
        if i != len(weights) - 1:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    opt = (torch.optim.SGD(model.parameters(), lr=cfg["lr"]) if cfg["opt"] == "sgd"
           else torch.optim.Adam(model.parameters(), lr=cfg["lr"]))
    loss_fn = (torch.nn.functional.mse_loss if cfg["loss"] == "mse"
               else torch.nn.functional.cross_entropy)

    def step(xb: np.ndarray, yb: np.ndarray) -> float:
        out = model(torch.from_numpy(xb))
        loss = loss_fn(out, torch.from_numpy(yb))
        opt.zero_grad()
        loss.backward()
        opt.step()
        return float(loss.item())
    return step


def setup(name: str, dtype: Any = np.float64, seed: int = 0) -> tuple[
        dict[str, Any], list[tuple[np.ndarray, np.ndarray]], np.ndarray, np.ndarray,
        list[np.ndarray]]:
    """A config with its weights, data and batches, all cast to dtype."""
    cfg = CONFIGS[name]
    rng = np.random.default_rng(seed)
    weights = [(w.astype(dtype), b.astype(dtype)) for w, b in make_weights(cfg["sizes"], rng)]
    x, y, batches = make_data(cfg, rng)
    x = x.astype(dtype)
    if cfg["loss"] == "mse":
        y = y.astype(dtype)
    return cfg, weights, x, y, batches


def time_steps(steps_by_name: dict[str, Step], x: np.ndarray, y: np.ndarray,
               batches: list[np.ndarray], steps: int, repeats: int, warmup: int = 20,
               before_turn: dict[str, Callable[[], None]] | None = None
               ) -> dict[str, list[float]]:
    """Mean time per step in microseconds of each repeat, per framework. The frameworks take
    turns within each repeat, so a burst of load on the machine hits all of them.
    before_turn[name], if given, runs (untimed) before each of that framework's turns: it sets
    process-wide state such as PyTorch's thread count when two columns share one library."""
    xs = [np.ascontiguousarray(x[i]) for i in batches]
    ys = [np.ascontiguousarray(y[i]) for i in batches]
    hooks = before_turn or {}
    times: dict[str, list[float]] = {name: [] for name in steps_by_name}
    for name, step in steps_by_name.items():
        hooks.get(name, _nothing)()
        for k in range(warmup):
            step(xs[k % len(xs)], ys[k % len(ys)])
    for _ in range(repeats):
        for name, step in steps_by_name.items():
            hooks.get(name, _nothing)()
            # Let the previous framework's worker threads go idle first: PyTorch's OpenMP
            # threads spin for a while after a step, and on a small machine that spinning
            # takes the cores from whichever framework is timed next.
            time.sleep(0.05)
            t0 = time.perf_counter()
            for k in range(steps):
                step(xs[k % len(xs)], ys[k % len(ys)])
            times[name].append((time.perf_counter() - t0) / steps * 1e6)
    return times


def _nothing() -> None:
    return None


def check_same_losses(steps_by_name: dict[str, Step], x: np.ndarray, y: np.ndarray,
                      batches: list[np.ndarray]) -> None:
    """All frameworks start from the same weights: their first losses must agree."""
    losses = {name: [s(x[b], y[b]) for b in batches[:3]] for name, s in steps_by_name.items()}
    ref = losses["fastgrad"]
    for name, ls in losses.items():
        if not np.allclose(ls, ref, rtol=1e-4):
            raise RuntimeError(f"benchmark setup error: {name} losses {ls} differ from {ref}")


def worker(name: str, quick: bool, threads: int = 0) -> dict[str, Any]:
    """Training-step times of one model (float64) for fastgrad, the reference tape and torch.
    threads > 0 sets torch's threads (numpy's BLAS threads are set by the environment)."""
    cfg, weights, x, y, batches = setup(name)
    makers: dict[str, Callable[..., Step]] = {"fastgrad": fastgrad_step,
                                              "reference": naive_tape_step}
    torch = load_torch()
    if torch is not None:
        if threads > 0:
            torch.set_num_threads(threads)
        makers["torch"] = torch_step
    check_same_losses({n: m(cfg, weights, np.float64) for n, m in makers.items()}, x, y, batches)
    steps = max(20, cfg["steps"] // (20 if quick else 2))
    times = time_steps({n: m(cfg, weights, np.float64) for n, m in makers.items()}, x, y,
                       batches, steps, 3 if quick else 9, warmup=5 if quick else 20)
    return {"us_per_step": times, "steps": steps}
