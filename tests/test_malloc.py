"""fastgrad keeps the memory a training step frees for the next one (fastgrad/_malloc.py): in a
child process, freeing and reallocating arrays of a few megabytes faults far fewer pages in
after `import fastgrad` than with the tuning turned off (FASTGRAD_MALLOC_TUNING=0)."""

import os
import platform
import sys

import pytest

from crashsafe import run_isolated

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc"
    or "asan" in os.environ.get("LD_PRELOAD", "")
    or any(v in os.environ for v in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_",
                                     "GLIBC_TUNABLES")),
    reason="glibc's own allocator only, as the tuning itself")

CHURN = """
import resource
import numpy as np
import fastgrad
from fastgrad._malloc import keep_freed_memory

def step():
    # what a CNN step does to memory: several large temporaries, freed at the end
    arrays = [np.ones(n) for n in (600_000, 450_000, 300_000, 120_000, 40_000)]
    return sum(float(a[0]) for a in arrays)

for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(keep_freed_memory(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(tuning):
    env = {"FASTGRAD_MALLOC_TUNING": tuning}
    proc = run_isolated(CHURN, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    applied, faults = proc.stdout.split()
    return applied, int(faults)


def test_a_training_step_reuses_freed_memory_instead_of_faulting_it_back_in():
    applied, tuned = _faults("1")
    assert applied == "True"
    off, untuned = _faults("0")
    assert off == "False"
    # 20 steps of ~12 MB: thousands of page faults untuned, next to none tuned
    assert untuned > 2000 and tuned < untuned / 10, (tuned, untuned)
