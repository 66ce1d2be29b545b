"""Type stub for grad mode (fastgrad/_tensor/grad_mode.pyx)."""

from collections.abc import Callable
from types import TracebackType
from typing import Any, Literal, TypeVar

_F = TypeVar("_F", bound=Callable[..., Any])

def is_grad_enabled() -> bool: ...

class no_grad:
    """Context manager (and decorator): ops inside record nothing."""

    def __enter__(self) -> no_grad: ...
    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> Literal[False]: ...
    def __call__(self, func: _F) -> _F: ...
