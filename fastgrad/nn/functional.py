"""Functions on tensors, named as in ``torch.nn.functional``.

Losses and ``linear`` are single tape nodes in the core (one forward, one backward rule), which
keeps the per-step overhead of small models low and makes ``cross_entropy`` stable by
construction (it works on shifted logits and never forms probabilities in the forward pass).

>>> import numpy as np
>>> from fastgrad import Tensor
>>> import fastgrad.nn.functional as F
>>> logits = Tensor([[2.0, 0.0], [0.0, 2.0]], requires_grad=True)
>>> loss = F.cross_entropy(logits, np.array([0, 1]))
>>> round(loss.item(), 6)
0.126928
>>> loss.backward()
>>> [[round(v, 4) for v in row] for row in logits.grad.tolist()]
[[-0.0596, 0.0596], [0.0596, -0.0596]]
"""

from fastgrad._tensor import Tensor, binary_cross_entropy, cross_entropy, linear, mse_loss

_Axis = int | tuple[int, ...] | None

__all__ = [
    "linear", "mse_loss", "cross_entropy", "binary_cross_entropy",
    "relu", "tanh", "sigmoid", "softmax", "log_softmax",
]


def _tensor_arg(x: object, name: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a fastgrad.Tensor, got {type(x).__name__}")
    return x


def relu(x: Tensor) -> Tensor:
    """max(x, 0) elementwise (``x.relu()``).

    >>> relu(Tensor([-1.0, 0.5])).numpy().tolist()
    [0.0, 0.5]
    """
    return _tensor_arg(x, "relu").relu()


def tanh(x: Tensor) -> Tensor:
    """Hyperbolic tangent elementwise (``x.tanh()``).

    >>> tanh(Tensor([0.0])).item()
    0.0
    """
    return _tensor_arg(x, "tanh").tanh()


def sigmoid(x: Tensor) -> Tensor:
    """1 / (1 + exp(-x)) elementwise (``x.sigmoid()``).

    >>> sigmoid(Tensor([0.0])).item()
    0.5
    """
    return _tensor_arg(x, "sigmoid").sigmoid()


def softmax(x: Tensor, axis: _Axis = -1) -> Tensor:
    """exp(x) normalised to sum to 1 along axis (computed from x - max, so it never overflows).

    >>> softmax(Tensor([0.0, 0.0, 1000.0])).numpy().tolist()
    [0.0, 0.0, 1.0]
    """
    return _tensor_arg(x, "softmax").softmax(axis)


def log_softmax(x: Tensor, axis: _Axis = -1) -> Tensor:
    """log(softmax(x)) along axis, computed stably.

    >>> [round(v, 6) for v in log_softmax(Tensor([0.0, 0.0])).tolist()]
    [-0.693147, -0.693147]
    """
    return _tensor_arg(x, "log_softmax").log_softmax(axis)
