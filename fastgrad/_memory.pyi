"""Type stub for the compiled memory helpers (fastgrad/_memory.pyx); C-level API in _memory.pxd."""

from typing_extensions import disjoint_base

@disjoint_base
class Scratch:
    """A scratch buffer of n items of itemsize bytes that frees itself."""

    def __new__(cls, n: int, itemsize: int) -> Scratch: ...
