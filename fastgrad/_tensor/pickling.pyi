"""Type stub for Tensor pickling (fastgrad/_tensor/pickling.pyx)."""

from typing import Any

from fastgrad._tensor.tensor import Tensor

def restore_tensor(cls: type[Tensor], prefix: list[Tensor] | None, data: Any, grad: Any,
                   requires_grad: bool, op: int, a: Tensor | None, b: Tensor | None,
                   c: Tensor | None, x0: Any, x1: Any, aux: Any) -> Tensor: ...
