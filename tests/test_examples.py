"""The scalar demos (examples/polynomial.py, graph.py, moons.py) and the convolutional network
(examples/convnet.py) run and print the expected numbers."""

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


# numpy's BLAS on one thread: on a machine shared with other jobs, BLAS threads waiting for
# busy cores make the small GEMMs of the example ten times slower. The accuracy is the same.
ONE_BLAS_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
TEST_ACCURACY = re.compile(r"^test accuracy: ([\d.]+)% \((\d+)/360 images\)$", re.M)


def test_convnet_reaches_98_percent_and_saves_its_figure(tmp_path):
    pytest.importorskip("sklearn", reason="scikit-learn not installed: convnet example skipped")
    out = run("convnet.py", "--out", str(tmp_path / "lenet.png"), cwd=tmp_path, env=ONE_BLAS_THREAD)
    assert "trained 8 epochs (1800 steps)" in out
    accuracy = float(TEST_ACCURACY.search(out).group(1))
    assert accuracy >= 98.0, out
    epochs = re.findall(r"^epoch +(\d+): train loss ([\d.]+)$", out, re.M)
    assert [int(e) for e, _ in epochs] == list(range(1, 9))
    assert float(epochs[-1][1]) < float(epochs[0][1]) / 10
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "skipping the figure" in out
    else:
        assert (tmp_path / "lenet.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_convnet_without_matplotlib_or_tqdm(tmp_path):
    pytest.importorskip("sklearn", reason="scikit-learn not installed: convnet example skipped")
    out = run("convnet.py", "--epochs", "1", cwd=tmp_path, without=["matplotlib", "tqdm"],
              env=ONE_BLAS_THREAD)
    assert "epoch  1: train loss" in out and TEST_ACCURACY.search(out)
    assert "matplotlib is not installed: skipping the figure" in out
    assert not (tmp_path / "convnet.png").exists()


def test_convnet_runs_under_pytorch_with_the_import_lines_changed(tmp_path):
    pytest.importorskip("sklearn", reason="scikit-learn not installed: convnet example skipped")
    pytest.importorskip("torch")
    with open(os.path.join(EXAMPLES, "convnet.py"), encoding="utf-8") as f:
        source = f.read()
    imports = ["import fastgrad as torch", "import fastgrad.nn as nn",
               "import fastgrad.nn.functional as F", "import fastgrad.optim as optim",
               "from fastgrad.utils.data import DataLoader, TensorDataset"]
    assert all(f"\n{line}\n" in source for line in imports)
    for line in imports:
        source = source.replace(f"\n{line}\n", "\n" + line.replace("fastgrad", "torch") + "\n")
    code = source.split('"""', 2)[2]
    assert "import fastgrad" not in code and "fastgrad." not in code  # no other fastgrad use
    script = tmp_path / "convnet_torch.py"
    script.write_text(source, encoding="utf-8")
    proc = subprocess.run([sys.executable, str(script), "--epochs", "1", "--out", ""],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **ONE_BLAS_THREAD})
    assert proc.returncode == 0, proc.stderr
    assert float(TEST_ACCURACY.search(proc.stdout).group(1)) > 50
