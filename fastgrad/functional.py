"""Functions on tensors, named as in ``torch.nn.functional``.

Losses and ``linear`` are single tape nodes in the core (one forward, one backward rule), which
keeps the per-step overhead of small models low and makes ``cross_entropy`` stable by
construction (it works on shifted logits and never forms probabilities in the forward pass).
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
    return _tensor_arg(x, "relu").relu()


def tanh(x: Tensor) -> Tensor:
    return _tensor_arg(x, "tanh").tanh()


def sigmoid(x: Tensor) -> Tensor:
    return _tensor_arg(x, "sigmoid").sigmoid()


def softmax(x: Tensor, axis: _Axis = -1) -> Tensor:
    return _tensor_arg(x, "softmax").softmax(axis)


def log_softmax(x: Tensor, axis: _Axis = -1) -> Tensor:
    return _tensor_arg(x, "log_softmax").log_softmax(axis)
