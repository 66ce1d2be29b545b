"""Benchmarks shipped with fastgrad: ``python -m fastgrad.bench`` (see ``__main__``).

``scalar``, ``tensor`` and ``makemore`` hold the workloads, ``numpy_tape`` the pure-Python
tensor reference, ``common`` the timing and reporting helpers. ``benchmarks/`` in the source tree
builds its longer studies on these modules.
"""
