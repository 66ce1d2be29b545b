"""The LeNet workload: a training step of LeNet-5 on 28x28 images, fastgrad against PyTorch
with one thread and with its default threads, written once against the API the libraries share.

    conv 1->6 5x5 -> relu -> max pool 2 -> conv 6->16 5x5 -> relu -> max pool 2 -> flatten (256)
    -> linear 120 -> relu -> linear 84 -> relu -> linear 10 -> cross-entropy
    zero_grad, backward, SGD (lr 0.01, momentum 0.9); float32; batches of 8 and of 64

Every library starts from the same float32 weights (PyTorch's default uniform bounds, drawn
with numpy) and sees the same batches of random images and labels (a step's time does not
depend on the values). PyTorch runs twice, taking turns with fastgrad: once with the
command's thread count (``--threads``, 1 by default, as fastgrad's BLAS) and once with the
threads PyTorch picks by itself when no thread variable is set (its "default threads").
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from fastgrad.bench.common import THREAD_VARIABLES
from fastgrad.bench.tensor import Step, check_same_losses, time_steps

# (out, in, kh, kw) of the convolutions and (out, in) of the linear layers, in model order
SHAPES = [(6, 1, 5, 5), (16, 6, 5, 5), (120, 16 * 4 * 4), (84, 120), (10, 84)]
IMAGE = 28
BATCHES = (8, 64)
LEARNING_RATE, MOMENTUM = 0.01, 0.9
STEPS = {8: 400, 64: 100}  # per repeat; --quick takes 1/40 of it (at least 5), the full run half


def make_weights(rng: np.random.Generator) -> list[np.ndarray]:
    """Weight and bias of each layer, float32, uniform in +-1/sqrt(fan_in) as PyTorch's default
    initialisation of Conv2d and Linear draws them."""
    out = []
    for shape in SHAPES:
        bound = 1 / np.sqrt(np.prod(shape[1:]))
        out.append(rng.uniform(-bound, bound, shape).astype(np.float32))
        out.append(rng.uniform(-bound, bound, shape[0]).astype(np.float32))
    return out


def make_data(rng: np.random.Generator, batch: int,
              n: int = 512) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Images (n, 1, 28, 28) float32, labels (n,) int64 and 64 batches of indices."""
    x = rng.random((n, 1, IMAGE, IMAGE), dtype=np.float32)
    y = rng.integers(0, 10, n)
    batches = [rng.choice(n, batch, replace=False) for _ in range(64)]
    return x, y, batches


def library_step(lib: Any, weights: list[np.ndarray]) -> Step:
    """A LeNet training step in `lib` (fastgrad or torch: the code is the same).

    >>> import fastgrad
    >>> rng = np.random.default_rng(0)
    >>> weights = make_weights(rng)
    >>> x, y, batches = make_data(rng, 4, n=8)
    >>> step = library_step(fastgrad, weights)
    >>> first = step(x[batches[0]], y[batches[0]])
    >>> step(x[batches[0]], y[batches[0]]) < first
    True
    """
    nn, f32 = lib.nn, lib.float32
    model = nn.Sequential(
        nn.Conv2d(1, 6, 5, dtype=f32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5, dtype=f32), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(256, 120, dtype=f32), nn.ReLU(), nn.Linear(120, 84, dtype=f32), nn.ReLU(),
        nn.Linear(84, 10, dtype=f32))
    with lib.no_grad():
        for p, w in zip(model.parameters(), weights):
            p.copy_(lib.from_numpy(w))
    opt = lib.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)
    cross_entropy = nn.functional.cross_entropy

    def step(xb: np.ndarray, yb: np.ndarray) -> float:
        loss = cross_entropy(model(lib.from_numpy(xb)), lib.from_numpy(yb))
        opt.zero_grad()
        loss.backward()
        opt.step()
        return float(loss.item())
    return step


def import_torch_with_default_threads() -> tuple[Any, int]:
    """torch and the thread count it picks by itself, or (None, 0) without PyTorch.

    The benchmark's worker runs with the thread variables set to --threads, which torch would
    take as its default; they are dropped before torch is imported (numpy's BLAS has read them
    already) so that torch.get_num_threads() is what a plain `import torch` gives."""
    saved = {v: os.environ.pop(v) for v in THREAD_VARIABLES if v in os.environ}
    try:
        import torch
    except ImportError:
        return None, 0
    finally:
        os.environ.update(saved)
    return torch, torch.get_num_threads()


def torch_columns(threads: int) -> tuple[Any, dict[str, int]]:
    """torch and its columns: {"torch": --threads (or its default when 0), "torch_default":
    its default} — the second only when it differs from the first."""
    torch, default = import_torch_with_default_threads()
    if torch is None:
        return None, {}
    columns = {"torch": threads if threads > 0 else default}
    if columns["torch"] != default:
        columns["torch_default"] = default
    return torch, columns


def thread_setters(torch: Any, columns: dict[str, int]) -> dict[str, Callable[[], None]]:
    """For each torch column, a function that sets torch's threads to that column's count."""
    def setter(n: int) -> Callable[[], None]:
        return lambda: torch.set_num_threads(n)
    return {name: setter(n) for name, n in columns.items()}


def worker(name: str, quick: bool, threads: int = 0) -> dict[str, Any]:
    """Step times at each batch size ("batch8_us_per_step", ...) for fastgrad and the torch
    columns, taking turns within each repeat; name is "lenet" (tensor.worker's signature)."""
    import fastgrad
    torch, columns = torch_columns(threads)
    libraries: dict[str, Any] = {"fastgrad": fastgrad, **{c: torch for c in columns}}
    setters = thread_setters(torch, columns)
    result: dict[str, Any] = {"torch_threads": columns}
    for batch in BATCHES:
        rng = np.random.default_rng(batch)
        weights = make_weights(rng)
        x, y, batches = make_data(rng, batch)
        check_same_losses({n: library_step(lib, weights) for n, lib in libraries.items()},
                          x, y, batches)
        steps = max(5, STEPS[batch] // (40 if quick else 2))
        result[f"batch{batch}_us_per_step"] = time_steps(
            {n: library_step(lib, weights) for n, lib in libraries.items()}, x, y, batches,
            steps, 3 if quick else 9, warmup=3 if quick else 20, before_turn=setters)
    return result
