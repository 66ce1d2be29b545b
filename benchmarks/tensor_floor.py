"""How close is fastgrad's digits step (batch 256) to the same step written by hand in numpy?

    python benchmarks/tensor_floor.py               # libraries' default BLAS threads
    python benchmarks/tensor_floor.py --threads 1   # single-threaded BLAS

"numpy by hand" is the digits MLP's training step with no autograd at all: the forward pass,
cross-entropy, the backward pass written out (only the gradients that are needed, in place
where numpy allows) and the same Adam update as the naive numpy tape (`NAdam`). It is what a
perfect framework could at best do with numpy's kernels, so it bounds how much faster than
the naive numpy tape any numpy-backed engine can be. The three take turns within each repeat and
start from the same weights (their first losses are checked to agree).
"""

import argparse
import os
import sys
import types

if "--threads" in sys.argv:  # must act before numpy loads its BLAS
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = sys.argv[sys.argv.index("--threads") + 1]

import numpy as np  # noqa: E402

from fastgrad.bench.numpy_tape import NAdam  # noqa: E402
from fastgrad.bench.tensor import (check_same_losses, fastgrad_step, naive_tape_step,  # noqa: E402
                                   setup, time_steps)


def numpy_by_hand_step(cfg, weights, dtype):
    """The digits step (Linear-ReLU-Linear, cross-entropy, Adam) with hand-written gradients."""
    (w1, b1), (w2, b2) = [(w.astype(dtype), b.astype(dtype)) for w, b in weights]
    params = [types.SimpleNamespace(value=a, grad=None) for a in (w1, b1, w2, b2)]
    adam = NAdam(params, lr=cfg["lr"])

    def step(xb, yb):
        n = xb.shape[0]
        h = xb @ w1.T
        h += b1
        np.maximum(h, 0, out=h)
        z = h @ w2.T
        z += b2
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=1, keepdims=True)
        loss = (np.log(s[:, 0]) - z[np.arange(n), yb]).mean()
        g = e / s                                  # d loss / d logits
        g[np.arange(n), yb] -= 1.0
        g /= n
        dh = g @ w2
        dh *= h > 0
        for p, grad in zip(params, (dh.T @ xb, dh.sum(axis=0), g.T @ h, g.sum(axis=0))):
            p.grad = grad
        adam.step()
        return float(loss)
    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS threads (default: numpy's own)")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    cfg, weights, x, y, batches = setup("digits")
    makers = {"fastgrad": fastgrad_step, "naive tape": naive_tape_step,
              "numpy by hand": numpy_by_hand_step}
    check_same_losses({k: m(cfg, weights, np.float64) for k, m in makers.items()}, x, y, batches)
    times = time_steps({k: m(cfg, weights, np.float64) for k, m in makers.items()}, x, y, batches,
                       steps=100, repeats=args.repeats)
    best = {k: min(v) for k, v in times.items()}
    print(f"digits MLP 64-128-10, batch 256, float64, BLAS threads: {args.threads or 'default'}; "
          f"µs per step, best of {args.repeats}")
    print("| step | µs | naive tape / step |")
    print("|---|---|---|")
    for k, t in best.items():
        print(f"| {k} | {t:.1f} | {best['naive tape'] / t:.2f}x |")


if __name__ == "__main__":
    main()
