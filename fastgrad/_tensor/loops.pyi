"""fastgrad/_tensor/loops.pyx has no Python API: the ops cimport its loops (loops.pxd)."""
