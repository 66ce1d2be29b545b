"""Scalar engine benchmark: fastgrad vs the pure-Python reference engine vs micrograd.

Every (engine, workload) pair runs in a fresh interpreter, so one engine's garbage never
slows another; all ratios are computed from measurements taken in this one run.

    python benchmarks/bench_scalar.py            # full run (a few minutes, micrograd is slow)
    python benchmarks/bench_scalar.py --quick    # smaller sizes, fewer repeats
    python benchmarks/bench_scalar.py --json out.json

Workloads
  binary op     `x + y` on two existing Values, from Python (ns per op)
  chain         y = y * a + b repeated: 100,000 ops; forward ns/op, backward ns/node
  moons step    micrograd's demo step: MLP(2, [16, 16, 1]), 100 samples, svm loss + L2, SGD
  memory        peak bytes per node for a 1,000,000-node graph (forward + backward)
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ENGINES = ["fastgrad", "reference", "micrograd"]


# ---------------------------------------------------------------------------------------------
# Worker side: one workload on one engine, printing JSON


def load_engine(name):
    """(Value, MLP) of an engine."""
    if name == "micrograd":
        from micrograd.engine import Value
        from micrograd.nn import MLP
    else:
        os.environ["FASTGRAD_ENGINE"] = "pure" if name == "reference" else "compiled"
        from fastgrad.engine import Value
        from fastgrad.nn import MLP
    return Value, MLP


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def work_binary_op(Value, MLP, quick):
    x, y = Value(1.5), Value(-0.5)
    n = 20_000 if quick else 200_000

    def loop():
        for _ in range(n):
            x + y

    def empty():
        for _ in range(n):
            pass

    loop_overhead = min(timed(empty, 5))
    return {"ns_per_op": [(t - loop_overhead) / n * 1e9 for t in timed(loop, 7 if quick else 15)]}


def work_chain(Value, MLP, quick):
    sys.setrecursionlimit(1_000_000)  # micrograd's backward recurses once per node
    n_ops = 20_000 if quick else 100_000
    forward, backward = [], []
    for _ in range(3 if quick else 7):
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


def moons_step_fn(Value, MLP, samples):
    import random

    from fastgrad.datasets import make_moons

    random.seed(1337)
    X, y = make_moons(samples, noise=0.1, seed=1337)
    model = MLP(2, [16, 16, 1])
    state = {"k": 0}

    def step():
        inputs = [list(map(Value, xrow)) for xrow in X]
        scores = list(map(model, inputs))
        losses = [(1 + -yi * scorei).relu() for yi, scorei in zip(y, scores)]
        data_loss = sum(losses) * (1.0 / len(losses))
        reg_loss = 1e-4 * sum((p * p for p in model.parameters()))
        total_loss = data_loss + reg_loss
        model.zero_grad()
        total_loss.backward()
        learning_rate = 1.0 - 0.9 * state["k"] / 100
        for p in model.parameters():
            p.data -= learning_rate * p.grad
        state["k"] += 1
        return total_loss.data

    return step


def work_moons_step(Value, MLP, quick, engine):
    step = moons_step_fn(Value, MLP, 100)
    slow = engine != "fastgrad"
    repeats = (2 if quick else 5) if slow else (10 if quick else 50)
    step()  # warm up
    return {"ms_per_step": [t * 1e3 for t in timed(step, repeats)]}


def peak_rss_bytes():
    import resource
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def work_memory(Value, MLP, quick):
    sys.setrecursionlimit(3_000_000)
    n = 200_000 if quick else 1_000_000
    x, one = Value(0.5), Value(1e-9)
    y = x * one  # touch everything an op needs before the baseline
    y.backward()
    base = peak_rss_bytes()
    y = x
    for _ in range(n):
        y = y + one
    y.backward()
    return {"bytes_per_node": [(peak_rss_bytes() - base) / n], "nodes": n}


def worker(engine, workload, quick):
    Value, MLP = load_engine(engine)
    if workload == "binary_op":
        result = work_binary_op(Value, MLP, quick)
    elif workload == "chain":
        result = work_chain(Value, MLP, quick)
    elif workload == "moons_step":
        result = work_moons_step(Value, MLP, quick, engine)
    elif workload == "memory":
        result = work_memory(Value, MLP, quick)
    else:
        raise SystemExit(f"unknown workload {workload}")
    print(json.dumps(result))


# ---------------------------------------------------------------------------------------------
# Driver side


def available(engine):
    if engine != "micrograd":
        return True
    try:
        import micrograd  # noqa: F401
    except ImportError:
        return False
    return True


def run_worker(engine, workload, quick):
    cmd = [sys.executable, __file__, "--worker", engine, workload] + (["--quick"] if quick else [])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


METRICS = [
    # (workload, metric, label, unit, lower is better)
    ("binary_op", "ns_per_op", "binary op x + y", "ns/op"),
    ("chain", "forward_ns_per_op", "chain forward", "ns/op"),
    ("chain", "backward_ns_per_node", "chain backward", "ns/node"),
    ("moons_step", "ms_per_step", "moons training step", "ms/step"),
    ("memory", "bytes_per_node", "peak memory, 1M-node graph", "bytes/node"),
]


def fmt(v):
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}" if v < 10 else f"{v:.1f}"


def report(results, engines):
    lines = []
    header = f"| {'workload':<28} | {'unit':<10} | " + " | ".join(f"{e:>24}" for e in engines)
    header += " | " + " | ".join(f"{e + ' / fastgrad':>22}" for e in engines if e != "fastgrad") + " |"
    lines.append(header)
    lines.append("|" + "|".join("-" * (len(c) + 0) for c in header.split("|")[1:-1]) + "|")
    for workload, metric, label, unit in METRICS:
        cells, medians = [], {}
        for e in engines:
            r = results[e][workload]
            if "error" in r:
                cells.append(f"{'error':>24}")
                continue
            xs = r[metric]
            med = statistics.median(xs)
            medians[e] = med
            spread = f" ({fmt(min(xs))}–{fmt(max(xs))})" if len(xs) > 1 else ""
            cells.append(f"{fmt(med) + spread:>24}")
        ratios = []
        for e in engines:
            if e == "fastgrad":
                continue
            if e in medians and "fastgrad" in medians and medians["fastgrad"] > 0:
                ratios.append(f"{medians[e] / medians['fastgrad']:>21.1f}×")
            else:
                ratios.append(f"{'–':>22}")
        lines.append(f"| {label:<28} | {unit:<10} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description="fastgrad scalar benchmark")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    parser.add_argument("--json", metavar="FILE", help="also write the raw measurements as JSON")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--worker", nargs=2, metavar=("ENGINE", "WORKLOAD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker, args.quick)
        return

    engines = [e for e in args.engines.split(",") if available(e)]
    results = {e: {} for e in engines}
    workloads = sorted({w for w, *_ in METRICS}, key=[w for w, *_ in METRICS].index)
    for workload in workloads:
        for e in engines:
            print(f"  running {workload} on {e} ...", file=sys.stderr, flush=True)
            results[e][workload] = run_worker(e, workload, args.quick)
    print(f"fastgrad scalar benchmark — {time.strftime('%Y-%m-%d')}, {platform.machine()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}"
          f"{' (quick)' if args.quick else ''}")
    print("median (min–max) over repeats; ratio = other engine's median / fastgrad's median")
    print(report(results, engines))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"engines": engines, "results": results, "quick": args.quick}, f, indent=1)


if __name__ == "__main__":
    main()
