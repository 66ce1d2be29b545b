"""fastgrad/_tensor/rules.pyx has no Python API: the sweeps cimport its rules (rules.pxd)."""
