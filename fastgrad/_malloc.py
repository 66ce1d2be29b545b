"""glibc's malloc set to keep, for the next training step, the memory a step frees.

A training step allocates and frees the same megabytes of arrays every time (a convolution's
columns, activations, gradients). glibc hands large freed blocks back to the operating system:
blocks above M_MMAP_THRESHOLD are unmapped when freed, and the top of the heap is trimmed once
more than M_TRIM_THRESHOLD of it is free. The next step then faults every page back in, zeroed
by the kernel: a LeNet step at batch 64 took ~2,500 page faults and twice its time
(docs/benchmarks.md). glibc raises both thresholds by itself after it unmaps a large block, but
only to the size of that block, which stays below what a step frees in all.

``keep_freed_memory()`` sets them at once to the largest values glibc's own adjustment would
reach (32 MB and 64 MB; setting them also ends that adjustment): blocks up to 32 MB come from
the heap, and up to 64 MB of free space at the top of the heap stays mapped for reuse. It does
nothing on other C libraries, under a sanitizer's allocator, when the user set either threshold
through glibc's environment variables, or when ``FASTGRAD_MALLOC_TUNING=0``.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys

# glibc's mallopt parameters (malloc.h) and the ceilings of its dynamic adjustment (malloc.c:
# DEFAULT_MMAP_THRESHOLD_MAX on 64-bit, and twice that for trimming).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD

_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds (see the module's docstring); True if set."""
    if os.environ.get("FASTGRAD_MALLOC_TUNING", "1") == "0":
        return False
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return False
    if any(name in os.environ for name in _USER_SETTINGS):
        return False                    # the user's own malloc settings win
    if "asan" in os.environ.get("LD_PRELOAD", ""):
        return False                    # a sanitizer's allocator, not glibc's
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and \
        bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
