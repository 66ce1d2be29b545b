"""The scalar demos (examples/polynomial.py, graph.py, moons.py) run and print the expected
numbers."""

import os
import re
import shutil
import subprocess
import sys

import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
pytestmark = pytest.mark.skipif(not os.path.isdir(EXAMPLES),
                                reason="examples/ not found (tests run outside the source tree)")

# Runs a script with some optional packages made unimportable (as after a bare `pip install .`).
WITHOUT = ("import runpy, sys\n"
           "for name in sys.argv[1].split(','): sys.modules[name] = None\n"
           "script = sys.argv[2]; sys.argv = sys.argv[2:]\n"
           "runpy.run_path(script, run_name='__main__')\n")


def run(script, *args, cwd, without=(), env=None):
    path = os.path.join(EXAMPLES, script)
    cmd = [sys.executable, path, *args]
    if without:
        cmd = [sys.executable, "-c", WITHOUT, ",".join(without), path, *args]
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300,
                            env=None if env is None else {**os.environ, **env})
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_polynomial(tmp_path):
    out = run("polynomial.py", cwd=tmp_path)
    assert "p(2, 3) = 23.0" in out
    assert "forward mode: dp/dx = 9.0, dp/dy = 8.0, dp/dd = 2.0" in out
    assert "reverse mode: dp/dx = 9.0, dp/dy = 8.0, dp/dd = 2.0" in out
    assert "forward mode along (1, 1): 17.0" in out
    p = float(re.search(r"after 5000 steps: p = (-?[\d.]+)", out).group(1))
    assert abs(p - (-4 / 3)) < 1e-3
    assert "reached the minimum within 1e-3" in out


def grads(out):
    table = dict(re.findall(r"^\s*(\S[^:]*): data\s+(?:-?[\d.]+)\s+grad\s+(-?[\d.]+)$", out, re.M))
    return {k: float(v) for k, v in table.items()}


@pytest.mark.parametrize("flags", [(), ("--tanh-from-exp",)])
def test_graph(tmp_path, flags):
    pytest.importorskip("graphviz")
    out = run("graph.py", *flags, cwd=tmp_path)
    g = grads(out)
    expected = {"o": 1.0, "n": 0.5, "b": 0.5, "x1": -1.5, "w1": 1.0, "x2": 0.5, "w2": 0.0,
                "x1*w1": 0.5, "x2*w2": 0.5, "x1*w1 + x2*w2": 0.5}
    assert g == expected, g
    assert re.search(r"^\s*o: data\s+0\.7071", out, re.M)
    assert "o.grad=1, x1.grad=-1.5, w1.grad=1, x2.grad=0.5, w2.grad=0" in out
    if shutil.which("dot"):
        svg = (tmp_path / "neuron.svg").read_text()
        assert "<svg" in svg and "grad &#45;1.5000" in svg and "x1*w1 + x2*w2" in svg
        assert ("tanh" in svg) == (not flags)
    else:
        assert "wrote the DOT source to neuron.dot" in out
        assert "grad -1.5000" in (tmp_path / "neuron.dot").read_text()


def test_graph_without_the_dot_program_writes_dot_source(tmp_path):
    pytest.importorskip("graphviz")
    empty = tmp_path / "bin"
    empty.mkdir()
    out = run("graph.py", "--out", "g", cwd=tmp_path, env={"PATH": str(empty)})
    assert "wrote the DOT source to g.dot" in out
    source = (tmp_path / "g.dot").read_text()
    assert source.startswith("digraph") and "{ x1 | data 2.0000 | grad -1.5000 }" in source


def test_graph_without_graphviz(tmp_path):
    out = run("graph.py", cwd=tmp_path, without=["graphviz"])
    assert "pip install fastgrad[viz]" in out
    assert "o.grad=1, x1.grad=-1.5" in out
    assert not list(tmp_path.iterdir())


STEP_LINE = re.compile(r"^step (\d+) loss (\S+), accuracy (\S+)%$", re.M)


def test_moons_plots_the_decision_boundary(tmp_path):
    out = run("moons.py", "--steps", "3", "--plot", str(tmp_path / "boundary.png"), cwd=tmp_path)
    steps = STEP_LINE.findall(out)
    assert [int(k) for k, _, _ in steps] == [0, 1, 2]
    assert all(float(loss) > 0 for _, loss, _ in steps)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "skipping the decision-boundary plot" in out
    else:
        assert (tmp_path / "boundary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_moons_without_matplotlib_or_tqdm(tmp_path):
    # what .ci/run does right after `pip install .`
    out = run("moons.py", "--steps", "2", cwd=tmp_path, without=["matplotlib", "tqdm"])
    assert len(STEP_LINE.findall(out)) == 2
    assert "skipping the decision-boundary plot" in out
    assert not (tmp_path / "moons.png").exists()
