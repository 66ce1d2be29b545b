"""Timing, memory and reporting helpers shared by the benchmark workloads."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

_T = TypeVar("_T")


def timed(fn: Callable[[], object], repeats: int) -> list[float]:
    """Seconds taken by each of `repeats` calls of fn.

    >>> len(timed(lambda: None, 3))
    3
    """
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def peak_rss_bytes() -> int:
    """This process's peak resident set size in bytes (0 where the OS does not report it)."""
    try:
        import resource
    except ImportError:  # Windows
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def summarize(samples: list[float]) -> dict[str, Any]:
    """Median, min and max of a list of measurements, and the measurements.

    >>> summarize([3.0, 1.0, 2.0])
    {'median': 2.0, 'min': 1.0, 'max': 3.0, 'samples': [3.0, 1.0, 2.0]}
    """
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples),
            "samples": list(samples)}


def fmt(v: float) -> str:
    """A measurement with about three significant digits and thousands separators.

    >>> fmt(1234.5), fmt(45.67), fmt(3.14159)
    ('1,234', '45.7', '3.14')
    """
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}" if v < 10 else f"{v:.1f}"


def machine() -> dict[str, Any]:
    """What a result depends on: date, Python, platform, cores, library versions."""
    import numpy as np

    import fastgrad

    info: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "system": platform.system(),
        "cores": os.cpu_count(),
        "fastgrad": fastgrad.__version__,
        "numpy": np.__version__,
    }
    return info


class _TextBar:
    """A minimal progress bar on stderr, for when tqdm is not installed."""

    def __init__(self, total: int, desc: str) -> None:
        self.total, self.desc, self.n = total, desc, 0
        self.postfix = ""
        self._draw()

    def _draw(self) -> None:
        width = 24
        done = width * self.n // max(self.total, 1)
        sys.stderr.write(f"\r{self.desc} [{'#' * done}{'.' * (width - done)}] "
                         f"{self.n}/{self.total} {self.postfix:<40}")
        sys.stderr.flush()

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text
        self._draw()

    def update(self, n: int = 1) -> None:
        self.n += n
        self._draw()

    def close(self) -> None:
        sys.stderr.write("\n")
        sys.stderr.flush()


def progress(items: Iterable[_T], total: int, desc: str, label: Callable[[_T], str],
             enabled: bool = True) -> Iterator[_T]:
    """Yield items while a progress bar on stderr (tqdm if installed) shows which one runs."""
    if not enabled:
        yield from items
        return
    try:
        from tqdm import tqdm
        bar: Any = tqdm(total=total, desc=desc, file=sys.stderr, leave=False)
    except ImportError:
        bar = _TextBar(total, desc)
    try:
        for item in items:
            bar.set_postfix_str(label(item))
            yield item
            bar.update(1)
    finally:
        bar.close()


THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def run_worker(kind: str, engine: str, workload: str, quick: bool,
               threads: int = 0) -> dict[str, Any]:
    """``python -m fastgrad.bench --worker KIND ENGINE WORKLOAD`` in a fresh interpreter: its
    measurements, or {"error": last line of its stderr}. The interpreter selects its scalar
    engine (FASTGRAD_ENGINE) and, with threads > 0, its BLAS threads before importing fastgrad."""
    cmd = [sys.executable, "-m", "fastgrad.bench", "--worker", kind, engine, workload]
    cmd += ["--threads", str(threads)] + (["--quick"] if quick else [])
    env = dict(os.environ)
    env["FASTGRAD_ENGINE"] = "pure" if engine == "reference" else "compiled"
    if threads > 0:
        env.update({var: str(threads) for var in THREAD_VARIABLES})
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        return {"error": lines[-1] if lines else f"exit status {proc.returncode}"}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result
