"""The makemore-style workload: a training step of a character-level MLP, fastgrad against
PyTorch, written once against the API the two libraries share.

The model is the one of makemore part 2 (examples/torch_scripts/makemore_mlp.py): 3
characters of context, each embedded in 10 dimensions (a 27x10 table), a tanh hidden layer of
200 units, 27 output logits, cross-entropy, batches of 32, plain SGD on the raw parameters:

    emb = C[Xb]; h = (emb.view(-1, 30) @ W1 + b1).tanh(); logits = h @ W2 + b2
    loss = F.cross_entropy(logits, Yb); p.grad = None; loss.backward(); p.data += -lr * p.grad

Both libraries start from the same float64 weights and see the same batches (indices drawn
once with numpy and made into int64 tensors with ``from_numpy`` inside the step, where a
script would call ``randint``). The data are random contexts and targets: the time of a step
does not depend on their values. There is no pure-Python reference for this row (the naive
numpy tape has no embedding lookup).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from fastgrad.bench.tensor import Step, check_same_losses, load_torch, time_steps

VOCAB, BLOCK, EMBED, HIDDEN, BATCH = 27, 3, 10, 200, 32
LEARNING_RATE = 0.1
STEPS = 1000  # per repeat; --quick takes 1/20 of it, the full run half


def make_weights(rng: np.random.Generator) -> list[np.ndarray]:
    """C, W1, b1, W2, b2 with makemore's scaled-normal initialisation (float64)."""
    return [rng.standard_normal((VOCAB, EMBED)),
            rng.standard_normal((BLOCK * EMBED, HIDDEN)) * 0.2,
            rng.standard_normal(HIDDEN) * 0.01,
            rng.standard_normal((HIDDEN, VOCAB)) * 0.01,
            np.zeros(VOCAB)]


def make_data(rng: np.random.Generator, n: int = 2000) -> tuple[np.ndarray, np.ndarray,
                                                                 list[np.ndarray]]:
    """Contexts (n, 3) and next characters (n,) as int64, and 64 batches of 32 indices."""
    x = rng.integers(0, VOCAB, (n, BLOCK))
    y = rng.integers(0, VOCAB, n)
    batches = [rng.integers(0, n, BATCH) for _ in range(64)]
    return x, y, batches


def library_step(lib: Any, functional: Any, weights: list[np.ndarray]) -> Step:
    """A makemore training step in `lib` (fastgrad or torch: the code is the same).

    >>> import fastgrad, fastgrad.nn.functional as F
    >>> rng = np.random.default_rng(0)
    >>> x, y, batches = make_data(rng, 100)
    >>> step = library_step(fastgrad, F, make_weights(rng))
    >>> first = step(x[batches[0]], y[batches[0]])
    >>> all(step(x[batches[0]], y[batches[0]]) < first for _ in range(3))
    True
    """
    parameters = [lib.from_numpy(w.copy()) for w in weights]
    for p in parameters:
        p.requires_grad = True
    C, W1, b1, W2, b2 = parameters

    def step(xb: np.ndarray, yb: np.ndarray) -> float:
        emb = C[lib.from_numpy(xb)]  # (32, 3, 10)
        h = (emb.view(-1, BLOCK * EMBED) @ W1 + b1).tanh()  # (32, 200)
        logits = h @ W2 + b2  # (32, 27)
        loss = functional.cross_entropy(logits, lib.from_numpy(yb))
        for p in parameters:
            p.grad = None
        loss.backward()
        for p in parameters:
            p.data += -LEARNING_RATE * p.grad
        return float(loss.item())
    return step


def fastgrad_step(weights: list[np.ndarray]) -> Step:
    """The step in fastgrad."""
    import fastgrad
    import fastgrad.nn.functional as F
    return library_step(fastgrad, F, weights)


def torch_step(weights: list[np.ndarray]) -> Step:
    """The same step in PyTorch (CPU)."""
    torch = load_torch()
    return library_step(torch, torch.nn.functional, weights)


def worker(name: str, quick: bool, threads: int = 0) -> dict[str, Any]:
    """Step times of the makemore model for fastgrad and PyTorch (when installed), taking
    turns within each repeat. name is "makemore" (tensor.worker's signature); threads > 0
    sets torch's threads (numpy's BLAS threads are set by the environment)."""
    rng = np.random.default_rng(0)
    weights = make_weights(rng)
    x, y, batches = make_data(rng)
    makers: dict[str, Callable[[list[np.ndarray]], Step]] = {"fastgrad": fastgrad_step}
    torch = load_torch()
    if torch is not None:
        if threads > 0:
            torch.set_num_threads(threads)
        makers["torch"] = torch_step
    check_same_losses({n: m(weights) for n, m in makers.items()}, x, y, batches)
    steps = max(20, STEPS // (20 if quick else 2))
    times = time_steps({n: m(weights) for n, m in makers.items()}, x, y, batches, steps,
                       3 if quick else 9, warmup=5 if quick else 20)
    return {"us_per_step": times, "steps": steps}
