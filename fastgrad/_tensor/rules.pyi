"""Type stub for the derivative rules (fastgrad/_tensor/rules.pyx): the sweeps cimport its rules
(rules.pxd); its only Python-visible name is the sweep's state type."""

from typing_extensions import disjoint_base

@disjoint_base
class Sweep:
    """One reverse sweep's private state (C fields only)."""
