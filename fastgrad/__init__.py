"""fastgrad: reverse-mode autograd on a compiled tape.

``fastgrad.Value`` is a drop-in for micrograd's Value (``fastgrad.engine``, ``fastgrad.nn``).
"""

from fastgrad._version import __version__
from fastgrad.engine import Value

__all__ = ["__version__", "Value"]
