"""``python -m fastgrad.bench``: fastgrad against its reference engines, micrograd and PyTorch.

Runs the scalar workloads (fastgrad's Value, the pure-Python reference engine, micrograd) and
the tensor workloads (fastgrad's Tensor, a naive pure-Python numpy tape, PyTorch
CPU), each in a fresh interpreter, and prints one table: median (min-max) over repeats, and each
engine's median divided by fastgrad's. micrograd and PyTorch are included when installed.
The convolutional rows (lenet.py, conv.py) also run PyTorch on its default threads, and the
conv2d rows the bare numpy GEMMs of the convolution (its floor).

    python -m fastgrad.bench            # about three minutes on 2 cores (micrograd's moons step is slow)
    python -m fastgrad.bench --quick    # about 40 s on 2 cores (mostly starting interpreters and importing PyTorch), noisy
    python -m fastgrad.bench --json     # the measurements as JSON on stdout
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib import metadata
from typing import Any

from fastgrad.bench import conv, lenet, makemore, scalar, tensor
from fastgrad.bench.common import fmt, machine, progress, run_worker, summarize

COLUMNS = ["fastgrad", "reference", "micrograd", "torch", "torch_default", "gemm"]
# how the table heads the columns whose key is not a plain name
COLUMN_TITLES = {"torch_default": "torch, default threads", "gemm": "numpy GEMMs"}
# (workload, metric, label, unit): one worker per workload, one row per metric it reports
TENSOR_ROWS = [
    ("regression", "us_per_step", "tensor: regression MLP 1-128-128-1, batch 8", "µs/step"),
    ("digits", "us_per_step", "tensor: digits MLP 64-128-10, batch 256", "µs/step"),
    ("makemore", "us_per_step", "tensor: makemore MLP emb 27x10, 30-200-27 tanh, batch 32",
     "µs/step"),
    ("lenet", "batch8_us_per_step", "tensor: LeNet-5 28x28 float32, SGD momentum, batch 8",
     "µs/step"),
    ("lenet", "batch64_us_per_step", "tensor: LeNet-5 28x28 float32, SGD momentum, batch 64",
     "µs/step"),
    ("conv", "conv1_value_ns", "tensor: conv2d 1->6 5x5, 64x1x28x28: value", "ns/output"),
    ("conv", "conv1_backward_ns", "tensor: conv2d 1->6 5x5, 64x1x28x28: backward (w, b)",
     "ns/output"),
    ("conv", "conv2_value_ns", "tensor: conv2d 6->16 5x5, 64x6x12x12: value", "ns/output"),
    ("conv", "conv2_backward_ns", "tensor: conv2d 6->16 5x5, 64x6x12x12: backward (x, w, b)",
     "ns/output"),
]
# the tensor workloads that live in their own module (the rest are tensor.worker's configs)
TENSOR_WORKERS = {"makemore": makemore.worker, "lenet": lenet.worker, "conv": conv.worker}


def installed(dist: str) -> str | None:
    """The installed version of a distribution, or None."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def measure(quick: bool, show_progress: bool, threads: int = 1,
            only: str | None = None) -> dict[str, Any]:
    """Every workload on every available engine; the table's rows with their ratios.
    only="scalar" or "tensor" runs one half."""
    engines = [e for e in scalar.ENGINES if scalar.available(e)]
    have_torch = installed("torch") is not None
    tasks: list[tuple[str, str, str]] = []
    if only != "tensor":
        tasks += [("scalar", e, w) for w in scalar.WORKLOADS for e in engines]
    if only != "scalar":
        tasks += [("tensor", "all", w) for w in dict.fromkeys(row[0] for row in TENSOR_ROWS)]
    raw: dict[tuple[str, str, str], dict[str, Any]] = {}
    for kind, engine, workload in progress(tasks, len(tasks), "fastgrad.bench",
                                           lambda t: f"{t[2]} on {t[1]}", show_progress):
        raw[kind, engine, workload] = run_worker(kind, engine, workload, quick, threads)

    rows: list[dict[str, Any]] = []
    results: dict[str, dict[str, Any]]
    for workload, metric, label, unit in scalar.METRICS if only != "tensor" else []:
        results = {}
        for e in engines:
            r = raw["scalar", e, workload]
            results[e] = {"error": r["error"]} if "error" in r else summarize(r[metric])
        rows.append({"workload": workload, "metric": metric, "label": label, "unit": unit,
                     "results": results})
    torch_threads: dict[str, int] = {}
    for model, metric, label, unit in TENSOR_ROWS if only != "scalar" else []:
        r = raw["tensor", "all", model]
        if "error" in r:
            results = {e: {"error": r["error"]} for e in ["fastgrad", "reference"]}
        else:
            results = {e: summarize(xs) for e, xs in r[metric].items()}
            torch_threads.update(r.get("torch_threads", {}))
        rows.append({"workload": model, "metric": metric, "label": label,
                     "unit": unit, "results": results})
    for row in rows:
        fast = row["results"].get("fastgrad", {})
        row["ratios"] = {
            e: r["median"] / fast["median"] for e, r in row["results"].items()
            if e != "fastgrad" and "median" in r and fast.get("median", 0) > 0
        }
    info = machine()
    info.update({"micrograd": installed("micrograd"), "torch": installed("torch") if have_torch
                 else None})
    info["threads"] = threads if threads > 0 else "library defaults"
    if "torch_default" in torch_threads:
        info["torch_default_threads"] = torch_threads["torch_default"]
    return {"machine": info, "quick": quick, "engines": engines + (["torch"] if have_torch else []),
            "rows": rows}


def cell(r: dict[str, Any] | None) -> str:
    """A table cell: "median (min–max)", one number, "error" or "–".

    >>> cell({"median": 2.0, "min": 1.0, "max": 3.5, "samples": [1.0, 2.0, 3.5]})
    '2 (1–3.5)'
    >>> cell(None)
    '–'
    """
    if r is None:
        return "–"
    if "error" in r:
        return "error"
    if len(r["samples"]) == 1:
        return fmt(r["median"])
    return f"{fmt(r['median'])} ({fmt(r['min'])}–{fmt(r['max'])})"


def table(report: dict[str, Any]) -> str:
    """The report as a Markdown table: one row per workload and metric."""
    cols = [c for c in COLUMNS if any(c in row["results"] for row in report["rows"])]
    others = [c for c in cols if c != "fastgrad"]
    titles = [COLUMN_TITLES.get(c, c) for c in cols]
    head = ["workload", "unit"] + titles + [f"{t} / fastgrad" for t in titles[1:]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * 2 + "--:|" * (len(head) - 2)]
    for row in report["rows"]:
        cells = [row["label"], row["unit"]] + [cell(row["results"].get(c)) for c in cols]
        cells += [f"{row['ratios'][c]:.1f}×" if c in row["ratios"] else "–" for c in others]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def header(report: dict[str, Any]) -> str:
    """What was measured where: the lines above the table."""
    m = report["machine"]
    versions = [f"fastgrad {m['fastgrad']}", f"numpy {m['numpy']}"]
    versions += [f"{k} {m[k]}" for k in ("micrograd", "torch") if m.get(k)]
    return (f"fastgrad.bench{' --quick' if report['quick'] else ''} — {m['date']}, "
            f"{m['system']} {m['machine']}, {m['cores']} cores, Python {m['python']}, "
            f"tensor threads: {m['threads']}"
            + (f" (torch's default: {m['torch_default_threads']})"
               if "torch_default_threads" in m else "") + "; "
            + ", ".join(versions) + "\n"
            "median (min–max) over repeats; ratio = other engine's median / fastgrad's median; "
            "reference = pure-Python engine (scalar) or the naive numpy tape (tensor); "
            "numpy GEMMs = the convolution's matrix products alone (the GEMM floor)")


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m fastgrad.bench",
                                     description="fastgrad against its pure-Python reference "
                                     "engines, micrograd and PyTorch, in one table.")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and few repeats: about 40 s on 2 cores, noisy")
    parser.add_argument("--json", action="store_true",
                        help="print the measurements as JSON instead of the table")
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS and torch threads of the tensor workloads (default 1: the "
                             "models are small; 0 keeps the libraries' defaults)")
    parser.add_argument("--only", choices=["scalar", "tensor"],
                        help="run only the scalar or only the tensor workloads")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument("--worker", nargs=3, metavar=("KIND", "ENGINE", "WORKLOAD"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        kind, engine, workload = args.worker
        if kind == "scalar":
            result = scalar.worker(engine, workload, args.quick)
        else:
            result = TENSOR_WORKERS.get(workload, tensor.worker)(workload, args.quick,
                                                                 args.threads)
        print(json.dumps(result))
        return 0
    report = measure(args.quick, not args.no_progress, args.threads, args.only)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(header(report))
        print()
        print(table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
