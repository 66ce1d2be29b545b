"""Type stub for the compiled forward-mode sweep (fastgrad/_forward.pyx)."""

from collections.abc import Mapping
from numbers import Real

from fastgrad._scalar import Value

def jvp(output: Value, tangents: Mapping[Value, Real | float]) -> float: ...
