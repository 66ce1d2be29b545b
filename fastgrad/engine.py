"""micrograd's import path, ``from fastgrad.engine import Value``, and the one place where the
scalar engine is chosen.

The compiled engine (``fastgrad._scalar``'s extension modules) is used unless
``FASTGRAD_ENGINE=pure`` selects the pure-Python reference engine
(``fastgrad._scalar.reference``: the same API, for tests and comparisons). There is no silent
fallback: without the compiled extension, importing fails and says how to build it. Every other
module of the package imports the scalar engine from here, and the reference engine too
(``engine.reference``: its Values are accepted beside the chosen engine's, as test oracles).

>>> from fastgrad.engine import Value
>>> x = Value(3.0)
>>> y = x * x + 2 * x
>>> y.backward()
>>> y.data, x.grad
(15.0, 8.0)
"""

import os
from typing import TYPE_CHECKING

from fastgrad._scalar import reference

ENGINE = os.environ.get("FASTGRAD_ENGINE", "compiled").strip().lower() or "compiled"

if TYPE_CHECKING:
    # Type checkers see the compiled engine's stubs (.pyi); the reference engine has the same API.
    from fastgrad._scalar.forward_mode import jvp
    from fastgrad._scalar.replay import Program, record, sgd_step
    from fastgrad._scalar.value import Value, graph_nodes, linear_combination, linear_layer
elif ENGINE == "pure":
    Value, jvp, record, sgd_step = reference.Value, reference.jvp, reference.record, \
        reference.sgd_step
    linear_combination, linear_layer = reference.linear_combination, reference.linear_layer
    graph_nodes = reference.graph_nodes
    Program = None  # nothing to record on this engine
elif ENGINE == "compiled":
    try:
        from fastgrad._scalar.forward_mode import jvp
        from fastgrad._scalar.replay import Program, record, sgd_step
        from fastgrad._scalar.value import Value, graph_nodes, linear_combination, linear_layer
    except ImportError as exc:  # pragma: no cover - exercised by a subprocess test
        raise ImportError(
            "fastgrad's compiled core (fastgrad._scalar) is not built or cannot be loaded: "
            f"{exc}. Build it with `pip install .` (or `pip install -e .` in a checkout; "
            "`python setup.py build_ext --inplace` after editing a .pyx). "
            "To run on the slow pure-Python reference engine instead, set FASTGRAD_ENGINE=pure."
        ) from exc
else:
    raise ImportError(f"FASTGRAD_ENGINE must be 'compiled' or 'pure', not {ENGINE!r}")

__all__ = ["Value", "linear_combination", "linear_layer", "jvp", "record", "sgd_step", "Program",
           "graph_nodes", "ENGINE", "reference"]
