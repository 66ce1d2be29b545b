"""The examples in the docs run: the docstrings of every module of the package (pytest's
--doctest-modules does not look inside extension modules) and the README's Python code blocks."""

import contextlib
import doctest
import importlib
import io
import os
import pkgutil
import re

import pytest

import fastgrad
from conftest import COMPILED
from fastgrad import engine
from fastgrad._scalar import reference

# every module of the package, compiled or not (pytest's --doctest-modules skips extensions)
MODULES = sorted(m.name for m in pkgutil.walk_packages(fastgrad.__path__, "fastgrad."))
README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def is_compiled(module):
    return module.__file__.endswith((".so", ".pyd"))


@pytest.mark.parametrize("name", MODULES)
def test_module_docstring_examples(name):
    if name == "fastgrad.viz":
        pytest.importorskip("graphviz")
    module = importlib.import_module(name)
    if not COMPILED and (is_compiled(module) or name == "fastgrad.engine"):
        pytest.skip("the compiled engine's examples (FASTGRAD_ENGINE=pure)")
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    out = io.StringIO()
    for test in finder.find(module):
        runner.run(test, out=out.write)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, out.getvalue()


def test_every_public_module_has_examples():
    """The modules a user reads have runnable examples (private helpers need not)."""
    for name in ["fastgrad", "fastgrad.engine", "fastgrad.nn.module", "fastgrad.nn.linear",
                 "fastgrad.nn.micrograd", "fastgrad.nn.functional", "fastgrad.optim.sgd",
                 "fastgrad.optim.adam", "fastgrad.optim.rmsprop",
                 "fastgrad.optim.adagrad", "fastgrad.optim.lr_scheduler",
                 "fastgrad.nn.utils.clip_grad",
                 "fastgrad.autograd.forward_mode",
                 "fastgrad.autograd.gradcheck", "fastgrad._scalar.value",
                 "fastgrad._scalar.replay", "fastgrad._tensor.tensor"]:
        tests = doctest.DocTestFinder(exclude_empty=True).find(importlib.import_module(name))
        assert any(t.examples for t in tests), name


def readme_blocks():
    if not os.path.exists(README):
        return []
    with open(README, encoding="utf-8") as f:
        text = f.read()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@contextlib.contextmanager
def classes_restored(*classes):
    """Undo what a README block does to these classes (it may add methods to Value)."""
    saved = [(c, dict(vars(c))) for c in classes]
    try:
        yield
    finally:
        for c, before in saved:
            for name in set(vars(c)) - set(before):
                delattr(c, name)
            for name, attribute in before.items():
                if vars(c).get(name) is not attribute:
                    setattr(c, name, attribute)


@pytest.mark.skipif(not os.path.exists(README), reason="README.md not found (installed package)")
@pytest.mark.parametrize("index", range(len(readme_blocks())))
def test_readme_python_block(index, tmp_path, monkeypatch):
    """Each block runs; a `print(...)  # expected` line must print what its comment says."""
    source = readme_blocks()[index]
    if not COMPILED and "record(" in source:
        pytest.skip("fastgrad.record needs the compiled engine (FASTGRAD_ENGINE=pure)")
    monkeypatch.chdir(tmp_path)
    expected = [m.group(1).strip() for m in re.finditer(r"^print\(.*\)\s*#\s*(.+)$", source,
                                                            flags=re.M)]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), classes_restored(engine.Value, reference.Value):
        exec(compile(source, f"README.md block {index}", "exec"), {"__name__": "__readme__"})
    printed = out.getvalue().split("\n")
    for want in expected:
        assert want in printed, f"README block {index}: expected {want!r}, got {printed}"


def test_readme_has_python_blocks():
    if not os.path.exists(README):
        pytest.skip("README.md not found (installed package)")
    assert len(readme_blocks()) >= 2
