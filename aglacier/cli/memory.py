"""Keep the process's memory flat however large the archive (glibc's allocator only).

Part bodies (megabytes each) are allocated in worker threads. glibc gives each
thread an arena and keeps freed blocks there, so how much stays resident varied
from run to run (peak RSS 1 GiB vs 4 GiB backups: up to 13.7 % apart). One arena
and thresholds above the part size keep it steady (94 vs 99 MiB in
``benchmarks/bench_backup.py --only rss``) at no CPU cost. A small mmap
threshold would also work but costs ~0.7 s of system time per GiB.
"""

from __future__ import annotations

import ctypes
import ctypes.util

from aglacier.units import MiB

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def tune_allocator() -> None:
    """Set glibc's malloc options; does nothing on another C library."""
    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_ARENA_MAX, 1)
    mallopt(_M_MMAP_THRESHOLD, 32 * MiB)
    mallopt(_M_TRIM_THRESHOLD, 64 * MiB)
