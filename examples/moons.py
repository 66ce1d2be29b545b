"""micrograd's moons demo on fastgrad: the same script with `micrograd` changed to `fastgrad`.

Trains MLP(2, [16, 16, 1]) with an SVM max-margin loss and L2 regularisation by SGD, printing
loss and accuracy per step, exactly as micrograd's demo.ipynb does. Then it saves the decision
boundary to a PNG as the notebook draws it (--plot PATH, default moons.png; --plot '' for none).
matplotlib (the plot) and tqdm (a progress bar on a terminal) are optional, `pip install
"fastgrad[examples]"`: without them the plot is skipped and the per-step lines are the progress.

    python examples/moons.py [--steps 100] [--samples 100] [--seed 1337] [--replay]

With --replay the graph is built once, recorded, and every step replays it in C (same losses).
"""

import argparse
import random
import sys
import time

import numpy as np

import fastgrad
from fastgrad.datasets import make_moons
from fastgrad.engine import Value
from fastgrad.nn import MLP


def loss(model, X, y, batch_size=None):
    # inline DataLoader :)
    if batch_size is None:
        Xb, yb = X, y
    else:
        ri = np.random.permutation(X.shape[0])[:batch_size]
        Xb, yb = X[ri], y[ri]
    inputs = [list(map(Value, xrow)) for xrow in Xb]

    # forward the model to get scores
    scores = list(map(model, inputs))

    # svm "max-margin" loss
    losses = [(1 + -yi * scorei).relu() for yi, scorei in zip(yb, scores)]
    data_loss = sum(losses) * (1.0 / len(losses))
    # L2 regularization
    alpha = 1e-4
    reg_loss = alpha * sum((p * p for p in model.parameters()))
    total_loss = data_loss + reg_loss

    # also get accuracy
    accuracy = [(yi > 0) == (scorei.data > 0) for yi, scorei in zip(yb, scores)]
    return total_loss, sum(accuracy) / len(accuracy)


def train_replay(model, X, y, steps):
    """The same training, but the graph is built once and each step replays it in C."""
    start = time.perf_counter()
    # build one step's graph as loss() does, keeping the input Values X is streamed into
    inputs = [list(map(Value, xrow)) for xrow in X]
    scores = list(map(model, inputs))
    losses = [(1 + -yi * scorei).relu() for yi, scorei in zip(y, scores)]
    data_loss = sum(losses) * (1.0 / len(losses))
    reg_loss = 1e-4 * sum((p * p for p in model.parameters()))
    program = fastgrad.record(data_loss + reg_loss, inputs=inputs, params=model.parameters(),
                              outputs=scores)
    print(program)

    for k in range(steps):
        total_loss = program.forward(X)         # any (samples, 2) batch: nothing is rebuilt
        program.zero_grad()
        program.backward()
        program.sgd_step(1.0 - 0.9 * k / 100)   # p.data -= lr * p.grad for all, in C

        accuracy = [(yi > 0) == (scorei > 0) for yi, scorei in zip(y, program.outputs.tolist())]
        acc = sum(accuracy) / len(accuracy)
        print(f"step {k} loss {total_loss}, accuracy {acc*100}%")
    elapsed = time.perf_counter() - start
    print(f"{steps} steps in {elapsed:.2f} s ({1e3 * elapsed / max(steps, 1):.2f} ms per step, "
          "recording included)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plot", default="moons.png",
                        help="where to save the decision boundary ('' for no plot)")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--replay", action="store_true",
                        help="record the graph once and replay it in C (fastgrad.record)")
    args = parser.parse_args()

    np.random.seed(args.seed)
    random.seed(args.seed)
    X, y = make_moons(n_samples=args.samples, noise=0.1, seed=args.seed)

    model = MLP(2, [16, 16, 1])  # 2-layer neural network
    print(model)
    print("number of parameters", len(model.parameters()))

    if args.replay:
        return train_replay(model, X, y, args.steps)

    start = time.perf_counter()
    for k in progress(range(args.steps)):
        # forward
        total_loss, acc = loss(model, X, y)

        # backward
        model.zero_grad()
        total_loss.backward()

        # update (sgd)
        learning_rate = 1.0 - 0.9 * k / 100
        for p in model.parameters():
            p.data -= learning_rate * p.grad

        log(f"step {k} loss {total_loss.data}, accuracy {acc*100}%")
    elapsed = time.perf_counter() - start
    print(f"{args.steps} steps in {elapsed:.2f} s ({1e3 * elapsed / max(args.steps, 1):.2f} ms per step)")
    if args.plot:
        plot_decision_boundary(model, X, y, args.plot)


# -- optional extras: progress bar and decision-boundary plot -----------------------------------


def progress(steps):
    """steps with a tqdm progress bar when tqdm is installed and stderr is a terminal."""
    if not sys.stderr.isatty():
        return steps
    try:
        from tqdm import tqdm
    except ImportError:
        return steps
    return tqdm(steps, unit="step", leave=False)


def log(line):
    """print, without breaking a tqdm bar if one is showing."""
    tqdm = sys.modules.get("tqdm")
    if tqdm is not None and sys.stderr.isatty():
        tqdm.tqdm.write(line)
    else:
        print(line)


def plot_decision_boundary(model, X, y, path, h=0.25):
    """Save the model's decision regions and the data to path (micrograd's demo plot)."""
    try:
        import matplotlib
        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: skipping the decision-boundary plot "
              "(pip install matplotlib)")
        return None
    x_min, x_max = X[:, 0].min() - 1, X[:, 0].max() + 1
    y_min, y_max = X[:, 1].min() - 1, X[:, 1].max() + 1
    xx, yy = np.meshgrid(np.arange(x_min, x_max, h), np.arange(y_min, y_max, h))
    Xmesh = np.c_[xx.ravel(), yy.ravel()]
    scores = [model(list(map(Value, xrow))) for xrow in Xmesh]
    Z = np.array([s.data > 0 for s in scores]).reshape(xx.shape)
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.contourf(xx, yy, Z, cmap=plt.cm.Spectral, alpha=0.8)
    ax.scatter(X[:, 0], X[:, 1], c=y, s=40, cmap=plt.cm.Spectral)
    ax.set_xlim(xx.min(), xx.max())
    ax.set_ylim(yy.min(), yy.max())
    ax.set_title("fastgrad MLP(2, [16, 16, 1]) on moons")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"saved the decision boundary to {path}")
    return path


if __name__ == "__main__":
    main()
