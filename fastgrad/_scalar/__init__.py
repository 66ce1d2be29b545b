"""The scalar engine, in two implementations with one API: the compiled one (``value``,
``forward_mode``, ``replay``: Cython over a node arena of flat C arrays) and the pure-Python
``reference``. ``fastgrad.engine`` chooses between them; import the engine from there."""
