"""Type stubs for fastgrad._scalar.replay (recorded scalar programs, replayed in C)."""

from typing import Any, Iterable, Optional, Tuple, final

import numpy as np
import numpy.typing as npt

from fastgrad._scalar.value import Value

# A Value, or a (nested, rectangular) sequence of them.
_NestedValues = Any

__all__ = ["Program", "record", "sgd_step"]


@final
class Program:
    """A recorded scalar graph, replayed in C (make one with record())."""

    def __init__(self, *args: Any, **kwargs: Any) -> None: ...  # raises TypeError: use record()
    def forward(self, X: Optional[npt.ArrayLike] = ...) -> float: ...
    def backward(self) -> None: ...
    def zero_grad(self) -> None: ...
    def sgd_step(self, lr: float) -> None: ...
    @property
    def value(self) -> float: ...
    @property
    def outputs(self) -> Optional[np.ndarray]: ...
    @property
    def params(self) -> Tuple[Value, ...]: ...
    @property
    def inputs(self) -> Tuple[Value, ...]: ...
    @property
    def input_shape(self) -> Optional[Tuple[int, ...]]: ...
    @property
    def nodes(self) -> int: ...
    @property
    def instructions(self) -> int: ...
    @property
    def constants(self) -> int: ...
    @property
    def nbytes(self) -> int: ...
    def __reduce__(self) -> Tuple[Any, Tuple[Any, ...]]: ...


def record(
    output: Value,
    inputs: Optional[_NestedValues] = ...,
    params: Optional[Iterable[Value]] = ...,
    outputs: Optional[_NestedValues] = ...,
) -> Program: ...


def sgd_step(params: Iterable[Value], lr: float) -> None: ...
