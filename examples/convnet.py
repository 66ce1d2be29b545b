"""Handwritten digits with a LeNet-style convolutional network, written as a PyTorch script.

scikit-learn's bundled 8x8 digits (1797 images, no download), a stratified 80/20 split, and
LeNet-5's layout adapted to 8x8 inputs: two 5x5 convolutions with padding 2 (so the small
images keep their size until each 2x2 max pool) with 16 and 32 channels (LeNet-5 has 6 and 16:
wider layers make up for the tiny images), then three linear layers 128-120-84-10.
The training images are used five times: as they are and shifted by one pixel up, down, left
and right. Cross-entropy, SGD with momentum and weight decay, a cosine learning-rate schedule,
a shuffled DataLoader, train()/eval(), accuracy under no_grad. Prints the test accuracy (about
99%) and saves a figure of the first layer's 5x5 filters and the test confusion matrix.

Only the import lines differ from the PyTorch script: change `fastgrad` to `torch` and it runs
under PyTorch.

scikit-learn is required; matplotlib (the figure) and tqdm (a progress bar) are optional:
    pip install "fastgrad[examples]"
    python examples/convnet.py [--epochs 8] [--batch 32] [--out convnet.png]

It trains in a few seconds. On a machine busy with other jobs, OPENBLAS_NUM_THREADS=1 keeps
numpy's BLAS threads from waiting for busy cores (that can make the small GEMMs 10x slower).
"""

import argparse
import sys
import time

import numpy as np

import fastgrad as torch
import fastgrad.nn as nn
import fastgrad.nn.functional as F
import fastgrad.optim as optim
from fastgrad.utils.data import DataLoader, TensorDataset


class LeNet(nn.Module):
    """LeNet-5's layers for 1x8x8 images: the 5x5 convolutions pad by 2 ('same' size), so the
    two 2x2 pools take 8x8 to 4x4 to 2x2 and the first linear layer sees 32 * 2 * 2 features."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, kernel_size=5, padding=2)   # 1x8x8   -> 16x8x8
        self.conv2 = nn.Conv2d(16, 32, kernel_size=5, padding=2)  # 16x4x4  -> 32x4x4
        self.fc1 = nn.Linear(32 * 2 * 2, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)                # -> 16x4x4
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)                # -> 32x2x2
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


def shifted(images, dy, dx):
    """The (N, 1, H, W) images moved by dy rows and dx columns, zeros coming in at the edge.

    >>> shifted(np.arange(4.0).reshape(1, 1, 2, 2), 0, 1)[0, 0]
    array([[0., 0.],
           [0., 2.]])
    """
    out = np.zeros_like(images)
    h, w = images.shape[-2:]
    out[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        images[..., max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def load_data(seed):
    """Train and test TensorDatasets of (N, 1, 8, 8) float32 images in 0..1 and int64 labels,
    split 80/20 stratified by class; the training images also shifted by one pixel each way
    (the digits are not all centred alike, and 1437 images are few for 100k weights)."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        sys.exit('this example needs scikit-learn: pip install "fastgrad[examples]"')
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]   # pixels 0..16 -> 0..1
    labels = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=0.2, random_state=seed, stratify=labels)
    moves = [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)]
    x_train = np.concatenate([shifted(x_train, dy, dx) for dy, dx in moves])
    y_train = np.concatenate([y_train] * len(moves))
    return (TensorDataset(torch.from_numpy(x_train), torch.from_numpy(y_train)),
            TensorDataset(torch.from_numpy(x_test), torch.from_numpy(y_test)))


def predict(model, loader):
    """The model's predicted classes and the true labels over a loader, as numpy arrays."""
    model.eval()
    predicted, truth = [], []
    with torch.no_grad():
        for images, labels in loader:
            predicted.append(model(images).argmax(dim=1).numpy())
            truth.append(labels.numpy())
    return np.concatenate(predicted), np.concatenate(truth)


def progress(iterable, total, desc):
    """tqdm's bar when tqdm is installed, else the plain iterable (the epoch lines show
    progress)."""
    try:
        from tqdm import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, total=total, desc=desc, unit="batch", leave=False)


def save_figure(model, confusion, path):
    """The first convolution's filters and the confusion matrix, side by side, as an image."""
    try:
        import matplotlib
        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: skipping the figure (pip install matplotlib)")
        return
    filters = model.conv1.weight.detach().numpy()[:, 0]          # (16, 5, 5)
    fig = plt.figure(figsize=(11, 4.5))
    grid = fig.add_gridspec(4, 7, width_ratios=[1, 1, 1, 1, 0.4, 3, 3])
    for i, f in enumerate(filters):
        ax = fig.add_subplot(grid[i // 4, i % 4])
        ax.imshow(f, cmap="gray")
        ax.set_title(f"filter {i}", fontsize=8)
        ax.axis("off")
    ax = fig.add_subplot(grid[:, 5:])
    image = ax.imshow(confusion, cmap="Blues")
    for (t, p), n in np.ndenumerate(confusion):
        if n:
            ax.text(p, t, str(n), ha="center", va="center", fontsize=8,
                    color="white" if n > confusion.max() / 2 else "black")
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    ax.set_title("test confusion matrix")
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.suptitle("LeNet on scikit-learn's 8x8 digits: conv1 filters and test predictions")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"saved the filters and the confusion matrix to {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="convnet.png",
                        help="where to save the figure ('' for none)")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    train_set, test_set = load_data(args.seed)
    train_loader = DataLoader(train_set, batch_size=args.batch, shuffle=True)
    test_loader = DataLoader(test_set, batch_size=256)

    model = LeNet()
    optimizer = optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                          weight_decay=args.weight_decay)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    print(f"LeNet: {sum(p.numel() for p in model.parameters()):,} parameters; "
          f"{len(train_set)} training images ({len(train_set) // 5} and their shifts), "
          f"{len(test_set)} test images")

    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        model.train()
        total, count = 0.0, 0
        for images, labels in progress(train_loader, len(train_loader), f"epoch {epoch}"):
            optimizer.zero_grad()
            loss = F.cross_entropy(model(images), labels)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(labels)
            count += len(labels)
        scheduler.step()
        print(f"epoch {epoch:2d}: train loss {total / count:.4f}")
    elapsed = time.perf_counter() - start
    print(f"trained {args.epochs} epochs ({args.epochs * len(train_loader)} steps) "
          f"in {elapsed:.1f} s")

    predicted, truth = predict(model, test_loader)
    print(f"test accuracy: {(predicted == truth).mean():.2%} "
          f"({(predicted == truth).sum()}/{len(truth)} images)")
    confusion = np.zeros((10, 10), dtype=np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    if args.out:
        save_figure(model, confusion, args.out)


if __name__ == "__main__":
    main()
