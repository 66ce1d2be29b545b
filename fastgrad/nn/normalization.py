"""``LayerNorm``, ``BatchNorm1d`` and ``BatchNorm2d`` with PyTorch's arguments, parameters,
buffers and repr.

The batch norms keep ``running_mean``, ``running_var`` and ``num_batches_tracked`` as buffers
(in the state_dict under PyTorch's names); in training it normalises with the batch's
statistics and updates the running ones, in eval it uses the running ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fastgrad._tensor import Tensor
from fastgrad.nn import functional as F
from fastgrad.nn._factory import factory_dtype, filled
from fastgrad.nn.module import Module, Parameter

__all__ = ["LayerNorm", "BatchNorm1d", "BatchNorm2d"]


class LayerNorm(Module):
    """Normalise over the last dimensions (``normalized_shape``), then scale by ``weight``
    (ones) and shift by ``bias`` (zeros) when ``elementwise_affine``.

    >>> import fastgrad
    >>> ln = LayerNorm(4)
    >>> ln
    LayerNorm((4,), eps=1e-05, elementwise_affine=True, bias=True)
    >>> [n for n, _ in ln.named_parameters()]
    ['weight', 'bias']
    """

    def __init__(self, normalized_shape: int | Sequence[int], eps: float = 1e-5,
                 elementwise_affine: bool = True, bias: bool = True, device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        np_dtype = factory_dtype(dtype, device)
        if elementwise_affine:
            self.weight = Parameter(filled(self.normalized_shape, 1.0, np_dtype))
            if bias:
                self.bias = Parameter(filled(self.normalized_shape, 0.0, np_dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, input: Tensor) -> Tensor:
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}")


class BatchNorm1d(Module):
    """Batch normalisation of (N, C) or (N, C, L) input over N (and L), per channel C.

    >>> import fastgrad
    >>> bn = BatchNorm1d(3)
    >>> bn
    BatchNorm1d(3, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)
    >>> list(bn.state_dict())
    ['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, device: Any = None,
                 dtype: Any = None, *, bias: bool = True) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        np_dtype = factory_dtype(dtype, device)
        if affine:
            self.weight = Parameter(filled((num_features,), 1.0, np_dtype))
            if bias:
                self.bias = Parameter(filled((num_features,), 0.0, np_dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", filled((num_features,), 0.0, np_dtype))
            self.register_buffer("running_var", filled((num_features,), 1.0, np_dtype))
            self.register_buffer("num_batches_tracked", Tensor(np.array(0, dtype=np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, no batches counted."""
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def _check_input_dim(self, input: Tensor) -> None:
        if input.ndim not in (2, 3):
            raise ValueError(f"expected 2D or 3D input (got {input.ndim}D input)")

    def forward(self, input: Tensor) -> Tensor:
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # a cumulative average of every batch seen
                factor = 1.0 / float(self.num_batches_tracked.item())
        # eval without running statistics normalises with the batch's own, as PyTorch does
        use_batch = self.training or self.running_mean is None
        track = not self.training or self.track_running_stats
        return F.batch_norm(input, self.running_mean if track else None,
                            self.running_var if track else None, self.weight, self.bias,
                            use_batch, factor, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm2d(BatchNorm1d):
    """Batch normalisation of (N, C, H, W) input over N, H and W, per channel C (the machinery
    of BatchNorm1d; only the expected rank differs).

    >>> import fastgrad
    >>> BatchNorm2d(8, momentum=None)
    BatchNorm2d(8, eps=1e-05, momentum=None, affine=True, bias=True, track_running_stats=True)
    """

    def _check_input_dim(self, input: Tensor) -> None:
        if input.ndim != 4:
            raise ValueError(f"expected 4D input (got {input.ndim}D input)")
