"""Type stub for the compiled forward-mode sweep (fastgrad/_scalar/forward_mode.pyx)."""

from collections.abc import Mapping
from numbers import Real

from fastgrad._scalar.value import Value

def jvp(output: Value, tangents: Mapping[Value, Real | float]) -> float: ...
