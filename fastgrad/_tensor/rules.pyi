"""Type stub for the derivative rules (fastgrad/_tensor/rules.pyx): the sweeps cimport its rules
(rules.pxd); Python sees the sweep's state type and what create_graph's rules use
(fastgrad/_tensor/graph_rules.py)."""

from typing import Any

from typing_extensions import disjoint_base

from fastgrad._tensor.tensor import Tensor

@disjoint_base
class Sweep:
    """One reverse sweep's private state (C fields only)."""

def linear_map(node: Tensor, k: int, u: Tensor, transposed: bool) -> Tensor: ...
def node_parts(node: Tensor) -> tuple[int, Tensor | None, Tensor | None, Tensor | None, Any, Any,
                                      Any]: ...
