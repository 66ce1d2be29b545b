"""fastgrad/_tensor/windows.pyx has no Python API: conv.pyx and rules.pyx cimport its loops
(windows.pxd)."""
