"""A 1-D regression problem on fastgrad tensors: an MLP 1-128-128-1 fits a noisy chirp.

Fit y = cos(2x + 20x^2) + noise with an MLP 1-128-128-1 (ReLU), minibatch SGD (batch 8,
lr 1e-4, large initial weights), then save a plot of the data and the fit
(matplotlib: `pip install "fastgrad[examples]"`; without it the plot is skipped).

    python examples/regression.py [--steps 10000] [--out regression.png]
"""

import argparse
import time

import numpy as np

from fastgrad import Tensor, nn, no_grad, optim
from fastgrad.nn import functional as F


def gen_data(rng, n):
    x = rng.random((n, 1))
    y = np.cos(2 * x + 20 * x ** 2) + 0.1 * rng.standard_normal((n, 1))
    return x, y


def large_init(model, rng):
    """Large initial weights (they suit the small learning rate)."""
    first, hidden, last = model[0], model[2], model[4]
    first.weight.data[...] = np.sign(rng.standard_normal(first.weight.shape))
    first.bias.data[...] = 2 * rng.random(first.bias.shape) - 1
    hidden.weight.data[...] = rng.standard_normal(hidden.weight.shape)
    hidden.bias.data[...] = 0.0
    last.weight.data[...] = rng.standard_normal(last.weight.shape)
    last.bias.data[...] = 0.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="regression.png", help="where to save the plot")
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    x, y = gen_data(rng, 256)
    x_test, y_test = gen_data(rng, 256)
    model = nn.Sequential(nn.Linear(1, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
                          nn.Linear(128, 1))
    large_init(model, rng)
    opt = optim.SGD(model.parameters(), lr=args.lr)

    start = time.perf_counter()
    for step in range(args.steps):
        idx = rng.choice(len(x), size=args.batch, replace=False)
        loss = F.mse_loss(model(Tensor(x[idx])), Tensor(y[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 1000 == 0:
            print(f"step {step:5d}  loss {loss.item():.4f}")
    elapsed = time.perf_counter() - start
    per_step = elapsed / max(args.steps, 1) * 1e6
    print(f"{args.steps} steps in {elapsed:.2f} s ({per_step:.0f} µs/step)")

    with no_grad():
        train_loss = F.mse_loss(model(Tensor(x)), Tensor(y)).item()
        test_loss = F.mse_loss(model(Tensor(x_test)), Tensor(y_test)).item()
        grid = np.linspace(0, 1, 400)[:, None]
        fit = model(Tensor(grid)).numpy()
    print(f"training loss: {train_loss:.4f}")
    print(f"test loss:     {test_loss:.4f}")

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: skipping the plot "
              "(pip install \"fastgrad[examples]\" to get it)")
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.scatter(x, y, s=6, label="training")
    ax.scatter(x_test, y_test, s=6, label="test")
    ax.plot(grid, fit, c="g", label="fastgrad MLP")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"saved the plot to {args.out}")


if __name__ == "__main__":
    main()
