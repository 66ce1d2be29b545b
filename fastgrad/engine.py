"""micrograd's import path: ``from fastgrad.engine import Value``.

The compiled core is used unless ``FASTGRAD_ENGINE=pure`` selects the pure-Python reference
engine (the same API, for tests and comparisons). There is no silent fallback: without the
compiled extension, importing fails and says how to build it.

>>> from fastgrad.engine import Value
>>> x = Value(3.0)
>>> y = x * x + 2 * x
>>> y.backward()
>>> y.data, x.grad
(15.0, 8.0)
"""

import os
from typing import TYPE_CHECKING

ENGINE = os.environ.get("FASTGRAD_ENGINE", "compiled").strip().lower() or "compiled"

if TYPE_CHECKING:
    # Type checkers see the compiled core's stubs (_scalar.pyi); the reference engine has the
    # same API.
    from fastgrad._scalar import Value, linear_combination, linear_layer
elif ENGINE == "pure":
    from fastgrad.pure import Value, linear_combination, linear_layer
elif ENGINE == "compiled":
    try:
        from fastgrad._scalar import Value, linear_combination, linear_layer
    except ImportError as exc:  # pragma: no cover - exercised by a subprocess test
        raise ImportError(
            "fastgrad's compiled core (fastgrad._scalar) is not built or cannot be loaded: "
            f"{exc}. Build it with `pip install .` (or `pip install -e .` in a checkout; "
            "`python setup.py build_ext --inplace` after editing a .pyx). "
            "To run on the slow pure-Python reference engine instead, set FASTGRAD_ENGINE=pure."
        ) from exc
else:
    raise ImportError(f"FASTGRAD_ENGINE must be 'compiled' or 'pure', not {ENGINE!r}")

__all__ = ["Value", "linear_combination", "linear_layer", "ENGINE"]
