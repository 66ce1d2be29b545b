"""Training-step time of fastgrad's Tensor vs a pure-Python numpy tape vs PyTorch CPU.

    python benchmarks/bench_tensor.py            # full run (about two minutes)
    python benchmarks/bench_tensor.py --quick    # fewer steps
    python benchmarks/bench_tensor.py --threads 1   # single-threaded BLAS in numpy and torch

Two models, both started from the same weights in every framework:
  * the regression MLP 1-128-128-1 (ReLU, MSE, SGD lr 1e-4), batch 8
  * the digits MLP 64-128-10 (ReLU, cross-entropy, Adam lr 1e-3), batch 256
A step is: build the batch tensor, forward, loss, zero_grad, backward, optimizer step.
All ratios are computed from times measured in this run. Then the per-op overhead for small
tensors: time of one recorded op minus the same numpy call on the same arrays.

The models, step functions and timing loop are the ones `python -m fastgrad.bench` uses
(`fastgrad/bench/tensor.py`); this script adds float32, the tuned numpy tape, --threads and
the per-op overhead study.
"""

import argparse
import os
import platform
import sys
import time


def _threads_from_argv():
    """--threads N must act before numpy loads its BLAS, so it is read before the imports."""
    for i, arg in enumerate(sys.argv):
        if arg == "--threads" and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
        if arg.startswith("--threads="):
            return arg.split("=", 1)[1]
    return None


THREADS = _threads_from_argv()
if THREADS is not None:
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = THREADS

import numpy as np  # noqa: E402

import fastgrad  # noqa: E402
from fastgrad import Tensor  # noqa: E402
from fastgrad.bench.tensor import (CONFIGS, check_same_losses, fastgrad_step,  # noqa: E402
                                   numpy_tape_step, naive_tape_step, setup, time_steps,
                                   torch_step)

try:
    import torch
    if THREADS is not None:
        torch.set_num_threads(int(THREADS))
except ImportError:  # the table then has no PyTorch column
    torch = None


def bench_training(args):
    rows = []
    for cname in CONFIGS:
        for dtype in args.dtypes:
            cfg, weights, x, y, batches = setup(cname, dtype)
            makers = {"fastgrad": fastgrad_step, "numpy tape": numpy_tape_step,
                      "naive tape": naive_tape_step}
            if torch is not None:
                makers["torch"] = torch_step
            check_same_losses({n: m(cfg, weights, dtype) for n, m in makers.items()}, x, y,
                              batches)
            steps = max(20, int(cfg["steps"] * args.scale))
            times = {n: min(ts) for n, ts in time_steps(
                {n: m(cfg, weights, dtype) for n, m in makers.items()}, x, y, batches, steps,
                args.repeats).items()}
            rows.append((cname, cfg, np.dtype(dtype).name, times))
    print("\nTraining step (µs per step, best of %d repeats; ratio = other / fastgrad)"
          % args.repeats)
    head = "| model | batch | dtype | fastgrad | naive numpy tape | ratio | tuned numpy tape | ratio |"
    sep = "|---|---|---|---|---|---|---|---|"
    if torch is not None:
        head += " torch CPU | ratio |"
        sep += "---|---|"
    print(head)
    print(sep)
    for cname, cfg, dname, t in rows:
        arch = "-".join(map(str, cfg["sizes"]))
        line = (f"| {cname} {arch} | {cfg['batch']} | {dname} | {t['fastgrad']:.1f} | "
                f"{t['naive tape']:.1f} | {t['naive tape'] / t['fastgrad']:.2f}x | "
                f"{t['numpy tape']:.1f} | {t['numpy tape'] / t['fastgrad']:.2f}x |")
        if torch is not None:
            line += f" {t['torch']:.1f} | {t['torch'] / t['fastgrad']:.2f}x |"
        print(line)


def best_ns(fns, number=20000, repeats=7):
    """Best-of-`repeats` ns per call for each function; the functions take turns within each
    repeat, so a burst of load on the machine hits all of them alike."""
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter_ns()
            for _ in range(number):
                fn()
            best[i] = min(best[i], (time.perf_counter_ns() - t0) / number)
    return best


def bench_overhead(args):
    """ns per op on small tensors: fastgrad (recorded) and torch (requires_grad) minus numpy."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((8, 1)), rng.standard_normal((1, 128))
    h, w = rng.standard_normal((8, 128)), rng.standard_normal((128, 128))
    ta, tb = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
    th, tw = Tensor(h, requires_grad=True), Tensor(w, requires_grad=True)
    ops = [
        ("add (8,1)+(1,128)", lambda: a + b, lambda: ta + tb, "a + b"),
        ("mul (8,128)*(8,128)", lambda: h * h, lambda: th * th, "h * h"),
        ("relu (8,128)", lambda: np.maximum(h, 0.0), lambda: th.relu(), "h.relu()"),
        ("matmul (8,128)@(128,128)", lambda: h @ w, lambda: th @ tw, "h @ w"),
        ("sum (8,128)", lambda: h.sum(), lambda: th.sum(), "h.sum()"),
    ]
    if torch is not None:
        pa, pb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
        ph, pw = torch.tensor(h, requires_grad=True), torch.tensor(w, requires_grad=True)
        tenv = {"a": pa, "b": pb, "h": ph, "w": pw}
    n = args.op_number
    print("\nForward op on small float64 tensors (ns per op, best of 7 x %d)" % n)
    print("| op | numpy | fastgrad | overhead | torch CPU | torch overhead |"
          if torch else "| op | numpy | fastgrad | overhead |")
    print("|---|---|---|---|---|---|" if torch else "|---|---|---|---|")
    for name, np_fn, fg_fn, expr in ops:
        fns = [np_fn, fg_fn]
        if torch is not None:
            fns.append(eval("lambda: " + expr, tenv))
        times = best_ns(fns, n)
        t_np, t_fg = times[0], times[1]
        line = f"| {name} | {t_np:.0f} | {t_fg:.0f} | {t_fg - t_np:.0f} |"
        if torch is not None:
            line += f" {times[2]:.0f} | {times[2] - t_np:.0f} |"
        print(line)

    # Backward: a chain of N tiny ops, swept once. Per-node cost of the compiled sweep.
    depth = 200
    x = Tensor(np.ones(4), requires_grad=True)
    c = np.full(4, 0.5)

    def fg_chain():
        y = x
        for _ in range(depth):
            y = y * c
        return y

    def fg_backward():
        fg_chain().backward(np.ones(4))

    def np_chain():
        y = c
        for _ in range(depth):
            y = y * c
        return y

    fns = [np_chain, fg_chain, fg_backward]
    if torch is not None:
        px = torch.ones(4, dtype=torch.float64, requires_grad=True)
        pc = torch.full((4,), 0.5, dtype=torch.float64)

        def th_chain():
            y = px
            for _ in range(depth):
                y = y * pc
            return y

        def th_backward():
            th_chain().backward(torch.ones(4, dtype=torch.float64))
        fns += [th_chain, th_backward]
    times = [t / depth for t in best_ns(fns, n // depth + 10)]
    print(f"\nChain of {depth} `y = y * c` on shape (4,), ns per op: numpy alone {times[0]:.0f}; "
          f"fastgrad forward {times[1]:.0f} (overhead {times[1] - times[0]:.0f}), "
          f"backward {times[2] - times[1]:.0f} per node"
          + (f"; torch forward {times[3]:.0f} (overhead {times[3] - times[0]:.0f}), backward "
             f"{times[4] - times[3]:.0f} per node" if torch is not None else ""))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps (noisier)")
    parser.add_argument("--dtype", choices=["float64", "float32", "both"], default="both")
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS/OpenMP threads for numpy and torch (default: libraries' own)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="repeats per training benchmark, best taken (default 5; --quick 3); "
                             "more repeats steady the figures on a busy machine")
    args = parser.parse_args()
    args.scale, repeats, args.op_number = (0.3, 3, 3000) if args.quick else (1.0, 5, 10000)
    args.repeats = args.repeats or repeats
    args.dtypes = [np.float64, np.float32] if args.dtype == "both" else [np.dtype(args.dtype).type]
    print(f"fastgrad {fastgrad.__version__}, numpy {np.__version__}"
          + (f", torch {torch.__version__} ({torch.get_num_threads()} threads)" if torch
             else ", torch not installed")
          + f"; BLAS threads: {THREADS or 'default'}"
          + f"; Python {platform.python_version()}, {platform.machine()}, "
          f"{os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    bench_training(args)
    bench_overhead(args)


if __name__ == "__main__":
    main()
