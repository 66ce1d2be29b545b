"""Where nn's random numbers come from (layer initialisation, dropout masks): one function, so
the source can follow fastgrad's own generators (``fastgrad.manual_seed``, ``Generator``)."""

from __future__ import annotations

from typing import Any

import numpy as np


def numpy_generator(generator: Any = None) -> Any:
    """The numpy random source to draw from: ``generator``'s if one is given, else numpy's
    global one (seeded by ``np.random.seed``). Both have ``random``, ``uniform`` and
    ``standard_normal``."""
    if generator is None:
        return np.random.mtrand._rand
    if isinstance(generator, (np.random.Generator, np.random.RandomState)):
        return generator
    raise TypeError(f"expected a numpy Generator or None, got {type(generator).__name__}")
