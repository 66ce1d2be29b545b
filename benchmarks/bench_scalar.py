"""Scalar engine benchmark: fastgrad vs the pure-Python reference engine vs micrograd.

The workloads and the driver live in the package (``fastgrad/bench/scalar.py``), so that an
installed fastgrad can run them too; this script runs the scalar half of that command:

    python benchmarks/bench_scalar.py            # = python -m fastgrad.bench --only scalar
    python benchmarks/bench_scalar.py --quick    # smaller sizes, fewer repeats
    python benchmarks/bench_scalar.py --json > out.json

Every (engine, workload) pair runs in a fresh interpreter, so one engine's garbage never
slows another; all ratios are computed from measurements taken in this one run.
"""

import sys

from fastgrad.bench.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["--only", "scalar", *sys.argv[1:]]))
