"""`python -m fastgrad.bench --quick --json`: runs, and reports every workload with its ratios.

No timing assertions: only the shape of the report (a smoke test of the shipped command)."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from fastgrad.bench import common
from fastgrad.bench.__main__ import table

# written for float64 numerics: Python floats make float64 tensors here
pytestmark = pytest.mark.usefixtures("float64_default")

SCALAR_ROWS = ["binary_op", "chain", "chain", "moons_step", "memory"]
TENSOR_ROWS = ["regression", "digits", "makemore", "lenet", "lenet", "conv", "conv", "conv",
               "conv"]
# fastgrad against PyTorch only: the numpy tape has no embedding or convolution
WITHOUT_REFERENCE = {"makemore", "lenet", "conv"}
# also PyTorch on its default threads (when they are not --threads' 1), and the GEMM floor
WITH_DEFAULT_THREADS = {"lenet", "conv"}


@pytest.fixture(scope="module")
def report():
    env = {k: v for k, v in os.environ.items() if k != "FASTGRAD_ENGINE"}
    proc = subprocess.run([sys.executable, "-m", "fastgrad.bench", "--quick", "--json"],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_report_lists_every_workload(report):
    assert report["quick"] is True
    assert [row["workload"] for row in report["rows"]] == SCALAR_ROWS + TENSOR_ROWS
    for key in ("date", "python", "cores", "fastgrad", "numpy", "threads"):
        assert key in report["machine"]


def test_every_engine_measured_with_ratios(report):
    expected = ["reference"]
    if importlib.util.find_spec("micrograd"):
        expected.append("micrograd")
    for row in report["rows"]:
        results = row["results"]
        if row["workload"] == "memory" and sys.platform == "win32":
            continue  # no peak-RSS counter without the resource module
        assert "error" not in results["fastgrad"], results["fastgrad"]
        fast = results["fastgrad"]
        assert fast["min"] <= fast["median"] <= fast["max"]
        assert fast["samples"] and all(x == x for x in fast["samples"])  # no NaN
        others = [] if row["workload"] in WITHOUT_REFERENCE else ["reference"]
        if row["workload"] in TENSOR_ROWS:
            others += ["torch"] if "torch" in report["engines"] else []
            if row["workload"] in WITH_DEFAULT_THREADS and "torch" in report["engines"] \
                    and report["machine"].get("torch_default_threads", 1) != 1:
                others.append("torch_default")
            others += ["gemm"] if row["workload"] == "conv" else []
        else:
            others = expected
        for engine in others:
            assert "median" in results[engine], (row["label"], engine, results.get(engine))
            assert row["ratios"][engine] > 0


def test_table_has_a_row_per_workload(report):
    text = table(report)
    lines = text.splitlines()
    assert len(lines) == 2 + len(report["rows"])
    assert "reference / fastgrad" in lines[0]
    assert "ns/op" in text and "bytes/node" in text and "µs/step" in text
    assert "ns/output" in text and "numpy GEMMs / fastgrad" in text


def test_text_progress_bar_without_tqdm(capsys):
    bar = common._TextBar(2, "bench")
    bar.set_postfix_str("one")
    bar.update()
    bar.update()
    bar.close()
    err = capsys.readouterr().err
    assert "2/2" in err and "bench" in err
