"""The examples in the docstrings of forward mode, draw_dot and gradcheck run as written."""

import doctest
import importlib

import pytest

from conftest import compiled_only

MODULES = ["fastgrad.forward", "fastgrad.gradcheck", "fastgrad.viz"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    if name == "fastgrad.viz":
        pytest.importorskip("graphviz")
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


@compiled_only
def test_compiled_jvp_docstring_example():
    import fastgrad._forward as module
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
