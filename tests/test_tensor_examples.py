"""The tensor examples run end to end (short settings) and digits reaches its accuracy."""

import os
import re
import subprocess
import sys

import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
pytestmark = pytest.mark.skipif(not os.path.isdir(EXAMPLES),
                                reason="examples/ not found (tests run outside the source tree)")


def run(script, *args, cwd):
    result = subprocess.run([sys.executable, os.path.join(EXAMPLES, script), *args], cwd=cwd,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_regression_example(tmp_path):
    out = run("regression.py", "--steps", "300", "--out", str(tmp_path / "fit.png"), cwd=tmp_path)
    assert "test loss:" in out
    assert (tmp_path / "fit.png").exists() or "skipping the plot" in out


def test_digits_example_reaches_95_percent(tmp_path):
    pytest.importorskip("sklearn", reason="scikit-learn not installed: digits example skipped")
    out = run("digits.py", cwd=tmp_path)
    accuracy = float(re.search(r"test accuracy:\s+([\d.]+)%", out).group(1))
    assert accuracy >= 95.0, out
