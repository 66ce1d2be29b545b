"""Shared test helpers: the engine under test, the reference engine, finite differences."""

import os

import pytest

from fastgrad import engine
from fastgrad._scalar import reference

# The engine under test is what `fastgrad.engine` selected (FASTGRAD_ENGINE); the reference
# engine is always the pure-Python one.
Value = engine.Value
RefValue = reference.Value
COMPILED = engine.ENGINE == "compiled"

compiled_only = pytest.mark.skipif(not COMPILED, reason="checks the compiled core (FASTGRAD_ENGINE=pure)")

SHARED_DIR = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "shared")


def central_difference(f, xs, i, h=1e-6):
    """d f(xs) / d xs[i] by central differences, f taking and returning floats."""
    up = list(xs)
    down = list(xs)
    up[i] += h
    down[i] -= h
    return (f(up) - f(down)) / (2 * h)


@pytest.fixture(scope="module")
def float64_default():
    """Python floats make float64 tensors for the test (the tests written for float64 numerics
    against float64 references); the default goes back to float32 afterwards."""
    import fastgrad
    fastgrad.set_default_dtype(fastgrad.float64)
    try:
        yield
    finally:
        fastgrad.set_default_dtype(fastgrad.float32)
