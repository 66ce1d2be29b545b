"""Two builds of fastgrad timed in one run: ``python -m fastgrad.bench`` on each, interleaved.

Each round runs the benchmark command once per build (in alternating order, so drifting machine
load hits both alike) from that build's checkout. The first table gives, for every row and
engine, the median over rounds of the base build's time divided by this build's (> 1: this
build is faster), with the spread over rounds. The second gives the benchmark's own ratios
(each other engine's time / fastgrad's, measured in the same run, so machine load mostly
cancels) for both builds, and this build's over the base's. A checkout needs its extensions
built in place (``python setup.py build_ext --inplace``).

    python benchmarks/compare_builds.py --base ../old-checkout            # full, 3 rounds
    python benchmarks/compare_builds.py --base ../old-checkout --quick --rounds 5
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_bench(checkout, args):
    """The JSON report of `python -m fastgrad.bench` run from checkout (its fastgrad first)."""
    env = {**os.environ, "PYTHONPATH": checkout}
    cmd = [sys.executable, "-m", "fastgrad.bench", "--json", "--no-progress", *args]
    out = subprocess.run(cmd, cwd=checkout, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def medians(report):
    """(workload, metric, engine) -> median time, the same -> other engine / fastgrad, and the
    rows' labels."""
    times = {(row["workload"], row["metric"], engine): r["median"] for row in report["rows"]
             for engine, r in row["results"].items() if "median" in r}  # not failed runs
    ratios = {(row["workload"], row["metric"], engine): ratio for row in report["rows"]
              for engine, ratio in row.get("ratios", {}).items()}
    labels = {(row["workload"], row["metric"]): row["label"] for row in report["rows"]}
    return times, ratios, labels


def spread(values):
    """median (min-max)"""
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", required=True, help="the checkout to compare against")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="pass --quick to the benchmark")
    parser.add_argument("--only", choices=["scalar", "tensor"])
    args = parser.parse_args()
    bench_args = (["--quick"] if args.quick else []) + (["--only", args.only] if args.only else [])
    builds = {"this": HERE, "base": os.path.abspath(args.base)}
    runs: dict[str, list] = {name: [] for name in builds}
    engine_ratios: dict[str, list] = {name: [] for name in builds}
    labels = {}
    for k in range(args.rounds):
        order = list(builds) if k % 2 == 0 else list(reversed(builds))
        for name in order:
            times, ratios, row_labels = medians(run_bench(builds[name], bench_args))
            runs[name].append(times)
            engine_ratios[name].append(ratios)
            labels.update(row_labels if name == "this" else {})
            print(f"round {k + 1}/{args.rounds}: {name} done", file=sys.stderr)
    print(f"base / this, median (min-max) over {args.rounds} interleaved rounds; > 1: this "
          "build is faster")
    print("| row | engine | this | base | base / this |")
    print("|---|---|---|---|---|")
    for key in runs["this"][0]:
        if not all(key in r for r in runs["this"] + runs["base"]):
            continue
        ratios = [b[key] / t[key] for t, b in zip(runs["this"], runs["base"])]
        this = statistics.median(r[key] for r in runs["this"])
        base = statistics.median(r[key] for r in runs["base"])
        print(f"| {labels[key[:2]]} | {key[2]} | {this:.4g} | {base:.4g} | {spread(ratios)} |")
    print()
    print("other engine / fastgrad, measured within each run: median (min-max) over rounds")
    print("| row | engine | this | base | this / base |")
    print("|---|---|---|---|---|")
    for key in engine_ratios["this"][0]:
        if not all(key in r for r in engine_ratios["this"] + engine_ratios["base"]):
            continue
        this_r = [r[key] for r in engine_ratios["this"]]
        base_r = [r[key] for r in engine_ratios["base"]]
        change = [t / b for t, b in zip(this_r, base_r)]
        print(f"| {labels[key[:2]]} | {key[2]} | {spread(this_r)} | {spread(base_r)} | "
              f"{spread(change)} |")


if __name__ == "__main__":
    main()
