"""Record once, replay in C: micrograd's moons training step on four engines.

    python benchmarks/bench_replay.py              # about a minute (micrograd takes ~2 s a step)
    python benchmarks/bench_replay.py --quick      # seconds
    python benchmarks/bench_replay.py --rounds 5 --json out.json

The step is micrograd's demo step: MLP(2, [16, 16, 1]), 100 samples, SVM max-margin loss + L2,
zero_grad, backward, SGD with micrograd's decaying learning rate.

  micrograd         micrograd 0.1.0, rebuilding the graph every step
  fastgrad rebuild  fastgrad.engine/nn, the same script, rebuilding the graph every step
  fastgrad replay   the graph recorded once (fastgrad.record); each step is
                    prog.forward(X), prog.zero_grad(), prog.backward(), prog.sgd_step(lr)
  torch             PyTorch CPU, float64, the same MLP as three nn.Linear layers on the batch
                    matrix (vectorised), from the same weights; skipped if torch is missing

Every engine runs in a fresh interpreter, once per round, and the rounds take turns, so load on
a shared machine spreads over all of them; ratios are of medians over all rounds of this run.
The replay worker also reports forward and backward ns per node of the recorded graph.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

from fastgrad.bench.common import timed
from fastgrad.bench.scalar import moons_loss, moons_step_fn

ENGINES = ["micrograd", "fastgrad rebuild", "fastgrad replay", "torch"]
SAMPLES = 100


def moons():
    from fastgrad.datasets import make_moons
    return make_moons(SAMPLES, noise=0.1, seed=1337)


def seeded_mlp(MLP):
    import random
    random.seed(1337)
    return MLP(2, [16, 16, 1])


def work_rebuild(engine, repeats):
    if engine == "micrograd":
        from micrograd.engine import Value
        from micrograd.nn import MLP
    else:
        from fastgrad.engine import Value
        from fastgrad.nn import MLP
    step = moons_step_fn(Value, MLP, SAMPLES)
    first = step()
    return {"first_loss": float(first), "us_per_step": [t * 1e6 for t in timed(step, repeats)]}


def work_replay(repeats):
    import fastgrad
    from fastgrad.engine import Value
    from fastgrad.nn import MLP

    X, y = moons()
    model = seeded_mlp(MLP)
    t0 = time.perf_counter()
    inputs = [list(map(Value, xrow)) for xrow in X]
    prog = fastgrad.record(moons_loss(model, inputs, y), inputs=inputs,
                           params=model.parameters())
    record_us = (time.perf_counter() - t0) * 1e6
    state = {"k": 0}

    def step():
        loss = prog.forward(X)
        prog.zero_grad()
        prog.backward()
        prog.sgd_step(1.0 - 0.9 * state["k"] / 100)
        state["k"] += 1
        return loss

    first = step()
    steps = timed(step, repeats)
    forward = timed(prog.forward, repeats)
    backward = timed(prog.backward, repeats)  # adds up gradients: harmless for timing
    n = prog.nodes
    return {"first_loss": first, "us_per_step": [t * 1e6 for t in steps],
            "forward_ns_per_node": [t * 1e9 / n for t in forward],
            "backward_ns_per_node": [t * 1e9 / n for t in backward],
            "step_ns_per_node": [t * 1e9 / n for t in steps],
            "nodes": n, "instructions": prog.instructions, "nbytes": prog.nbytes,
            "record_us": record_us}


def work_torch(repeats, threads):
    import torch

    from fastgrad.nn import MLP

    if threads:
        torch.set_num_threads(threads)
    X, y = moons()
    model = seeded_mlp(MLP)  # the same starting weights as the other engines
    layers = []
    for layer in model.layers:
        lin = torch.nn.Linear(len(layer.neurons[0].w), len(layer.neurons), dtype=torch.float64)
        with torch.no_grad():
            lin.weight.copy_(torch.tensor([[w.data for w in n.w] for n in layer.neurons],
                                         dtype=torch.float64))
            lin.bias.copy_(torch.tensor([n.b.data for n in layer.neurons], dtype=torch.float64))
        layers += [lin, torch.nn.ReLU()]
    net = torch.nn.Sequential(*layers[:-1])
    params = list(net.parameters())
    Xt = torch.tensor(X, dtype=torch.float64)
    yt = torch.tensor(y, dtype=torch.float64)
    state = {"k": 0}

    def step():
        scores = net(Xt).squeeze(1)
        data_loss = torch.relu(1 - yt * scores).mean()
        reg_loss = 1e-4 * sum((p * p).sum() for p in params)
        total_loss = data_loss + reg_loss
        for p in params:
            p.grad = None
        total_loss.backward()
        learning_rate = 1.0 - 0.9 * state["k"] / 100
        with torch.no_grad():
            for p in params:
                p.add_(p.grad, alpha=-learning_rate)
        state["k"] += 1
        return total_loss.item()

    first = step()
    for _ in range(20):  # warm up the allocator and dispatcher
        step()
    return {"first_loss": first, "us_per_step": [t * 1e6 for t in timed(step, repeats)],
            "threads": torch.get_num_threads(), "version": torch.__version__}


def worker(engine, repeats, threads):
    if engine in ("micrograd", "fastgrad rebuild"):
        result = work_rebuild(engine, repeats)
    elif engine == "fastgrad replay":
        result = work_replay(repeats)
    elif engine == "torch":
        result = work_torch(repeats, threads)
    else:
        raise SystemExit(f"unknown engine {engine}")
    print(json.dumps(result))


# ---------------------------------------------------------------------------------------------
# Driver


def available(engine):
    module = {"micrograd": "micrograd", "torch": "torch"}.get(engine)
    if module is None:
        return True
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def repeats_for(engine, quick):
    if engine == "micrograd":
        return 1 if quick else 3
    if engine == "fastgrad rebuild":
        return 5 if quick else 30
    return 50 if quick else 500


def run_worker(engine, quick, threads):
    cmd = [sys.executable, __file__, "--worker", engine, str(repeats_for(engine, quick)),
           str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""
        raise SystemExit(f"{engine} worker failed (exit {proc.returncode}): {last}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def ratio(r):
    return f"{r:,.0f}×" if r >= 100 else f"{r:.2f}×"


def fmt(v):
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def main():
    parser = argparse.ArgumentParser(description="moons step: micrograd, fastgrad rebuild, "
                                                 "fastgrad replay, torch")
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes per engine")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (default: torch's default)")
    parser.add_argument("--json", metavar="FILE", help="also write the raw measurements")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        engine, repeats, threads = args.worker
        worker(engine, int(repeats), int(threads))
        return

    engines = [e for e in ENGINES if available(e)]
    results = {e: [] for e in engines}
    for r in range(args.rounds):
        for e in engines:
            print(f"  round {r + 1}/{args.rounds}: {e} ...", file=sys.stderr, flush=True)
            results[e].append(run_worker(e, args.quick, args.threads))

    def all_of(e, key):
        return [x for res in results[e] for x in res[key]]

    med = {e: statistics.median(all_of(e, "us_per_step")) for e in engines}
    replay = "fastgrad replay"
    print(f"moons training step — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{platform.machine()}, {os.cpu_count()} CPUs (nproc), Python "
          f"{platform.python_version()}, {args.rounds} rounds{' (quick)' if args.quick else ''}")
    print()
    print("| engine | µs per step: median (min–max) | micrograd / engine | engine / replay |")
    print("|---|---|---|---|")
    for e in engines:
        xs = all_of(e, "us_per_step")
        label = e
        if e == "torch":
            label = f"torch {results[e][0]['version']} ({results[e][0]['threads']} threads)"
        vs_micrograd = ratio(med["micrograd"] / med[e]) if "micrograd" in med else "–"
        print(f"| {label} | {fmt(med[e])} ({fmt(min(xs))}–{fmt(max(xs))}) | {vs_micrograd} | "
              f"{ratio(med[e] / med[replay])} |")
    rep = results[replay][0]
    fwd = statistics.median(all_of(replay, "forward_ns_per_node"))
    bwd = statistics.median(all_of(replay, "backward_ns_per_node"))
    step_ns = statistics.median(all_of(replay, "step_ns_per_node"))
    record_ms = statistics.median(r["record_us"] for r in results[replay]) / 1e3
    print()
    print(f"Replay: {rep['nodes']:,} graph nodes in {rep['instructions']:,} instructions "
          f"({rep['nbytes']:,} bytes); forward {fwd:.2f} ns/node, backward {bwd:.2f} ns/node, "
          f"forward + backward {fwd + bwd:.2f} ns/node; whole step {step_ns:.2f} ns/node; "
          f"recording (build + record once) {record_ms:.1f} ms.")
    firsts = {e: results[e][0]["first_loss"] for e in engines}
    print("First losses (same starting weights): "
          + ", ".join(f"{e} {v!r}" for e, v in firsts.items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"engines": engines, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
