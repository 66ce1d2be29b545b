"""The examples in the docs run: docstrings of the compiled modules (pytest's --doctest-modules
does not look inside extension modules) and the README's Python code blocks.

`.ci/run` also runs `python -m pytest --doctest-modules fastgrad` for the pure-Python modules."""

import contextlib
import doctest
import importlib
import io
import os
import re

import pytest

COMPILED = ["fastgrad._scalar", "fastgrad._tensor", "fastgrad._kernels",
            "fastgrad.bench.__main__"]
README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


@pytest.mark.parametrize("name", COMPILED)
def test_module_docstring_examples(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    out = io.StringIO()
    for test in finder.find(module):
        runner.run(test, out=out.write)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, out.getvalue()
    if name != "fastgrad._kernels":
        assert result.attempted > 0, f"no examples found in {name}"


def readme_blocks():
    if not os.path.exists(README):
        return []
    with open(README, encoding="utf-8") as f:
        text = f.read()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.mark.skipif(not os.path.exists(README), reason="README.md not found (installed package)")
@pytest.mark.parametrize("index", range(len(readme_blocks())))
def test_readme_python_block(index, tmp_path, monkeypatch):
    """Each block runs; a `print(...)  # expected` line must print what its comment says."""
    source = readme_blocks()[index]
    monkeypatch.chdir(tmp_path)
    expected = [m.group(1).strip() for m in re.finditer(r"^print\(.*\)\s*#\s*(.+)$", source,
                                                            flags=re.M)]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(source, f"README.md block {index}", "exec"), {"__name__": "__readme__"})
    printed = out.getvalue().split("\n")
    for want in expected:
        assert want in printed, f"README block {index}: expected {want!r}, got {printed}"


def test_readme_has_python_blocks():
    if not os.path.exists(README):
        pytest.skip("README.md not found (installed package)")
    assert len(readme_blocks()) >= 2
