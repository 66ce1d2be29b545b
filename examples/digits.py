"""Handwritten digits with a fastgrad MLP: scikit-learn's bundled 8x8 digits (no download),
MLP 64-128-10, cross-entropy, Adam; prints the test accuracy.

Needs scikit-learn (and shows a tqdm progress bar if tqdm is installed):
    pip install "fastgrad[examples]"
    python examples/digits.py [--epochs 30] [--batch 64]
"""

import argparse
import sys
import time

import numpy as np

from fastgrad import Tensor, nn, no_grad, optim
from fastgrad.nn import functional as F


def progress(iterable, total, desc):
    """tqdm if available, else a one-line text counter."""
    try:
        from tqdm import tqdm
        return tqdm(iterable, total=total, desc=desc)
    except ImportError:
        return _text_progress(iterable, total, desc)


def _text_progress(iterable, total, desc):
    for i, item in enumerate(iterable, 1):
        yield item
        print(f"\r{desc}: {i}/{total}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)


def accuracy(model, x, y):
    with no_grad():
        return float((model(Tensor(x)).numpy().argmax(axis=1) == y).mean())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    try:
        from sklearn.datasets import load_digits
    except ImportError:
        sys.exit("this example needs scikit-learn: pip install \"fastgrad[examples]\"")
    digits = load_digits()
    x = digits.data / 16.0                      # pixels 0..16 -> 0..1
    y = digits.target.astype(np.int64)
    rng = np.random.default_rng(args.seed)
    np.random.seed(args.seed)                   # the layers' initialisation
    order = rng.permutation(len(x))
    n_test = len(x) // 5
    test, train = order[:n_test], order[n_test:]
    x_train, y_train, x_test, y_test = x[train], y[train], x[test], y[test]

    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = optim.Adam(model.parameters(), lr=args.lr)
    batches_per_epoch = (len(x_train) + args.batch - 1) // args.batch

    start = time.perf_counter()
    for epoch in progress(range(args.epochs), args.epochs, "epochs"):
        perm = rng.permutation(len(x_train))
        for b in range(batches_per_epoch):
            idx = perm[b * args.batch:(b + 1) * args.batch]
            loss = F.cross_entropy(model(Tensor(x_train[idx])), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    elapsed = time.perf_counter() - start

    print(f"trained {args.epochs} epochs ({args.epochs * batches_per_epoch} steps) in "
          f"{elapsed:.2f} s; last batch loss {loss.item():.4f}")
    print(f"train accuracy: {accuracy(model, x_train, y_train):.2%}")
    print(f"test accuracy:  {accuracy(model, x_test, y_test):.2%}  ({len(x_test)} images)")


if __name__ == "__main__":
    main()
