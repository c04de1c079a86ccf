"""glibc malloc settings for tensor-heavy processes (every molgnn entry point applies them at start).

A forward pass allocates and frees tensors of a few MB per batch (edge states [E, d]). glibc serves blocks
above its mmap threshold with fresh ``mmap`` pages and returns freed heap tops to the system past its trim
threshold, so every batch page-faults its tensors in again: gathers (``index_select``) ran at ~3 GB/s and
took 12% of inference. Raising both thresholds keeps freed memory in the process for the next batch
(bench/bench_speed.py: inference ~10% faster). Peak memory is unchanged; memory freed at the end of a stage
stays with the process until exit (at most what the largest stage held).
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # <malloc.h> mallopt parameters
MMAP_THRESHOLD = 32 * 2**20  # glibc's upper limit on 64-bit systems (DEFAULT_MMAP_THRESHOLD_MAX)
TRIM_THRESHOLD = 1 * 2**30


def keep_freed_memory() -> bool:
    """Set glibc's mmap threshold to 32 MiB and trim threshold to 1 GiB (``mallopt``) -> True when applied;
    False (nothing changed) off Linux or on a C library without ``mallopt`` (e.g. musl)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
