"""Type stub for grad mode (fastgrad/_tensor/grad_mode.pyx)."""

from collections.abc import Callable
from types import TracebackType
from typing import Any, Literal, TypeVar

from typing_extensions import Self

_F = TypeVar("_F", bound=Callable[..., Any])

def is_grad_enabled() -> bool: ...

class no_grad:
    """Context manager (and decorator): ops inside record nothing."""

    def __enter__(self) -> Self: ...
    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> Literal[False]: ...
    def __call__(self, func: _F) -> _F: ...

class enable_grad(no_grad):
    """Context manager (and decorator): recording on again inside a no_grad() block."""

class set_grad_enabled(no_grad):
    """Switches grad mode when called; as a context manager restores the previous mode."""

    def __init__(self, mode: bool) -> None: ...

class inference_mode(no_grad):
    """PyTorch's inference_mode: here the same as no_grad (inference_mode(False) records)."""

    def __init__(self, mode: bool = True) -> None: ...
