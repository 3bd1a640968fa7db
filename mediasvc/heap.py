"""The app process's heap: freed body buffers kept for the next read, not unmapped.

An upload reaches the app as socket reads of 100-250 KB and leaves as 1 MiB spool writes.
glibc serves allocations that large with a fresh `mmap` (its threshold starts at 128 KiB),
so each read faulted in zeroed pages and each free gave them back: about 1.3 ms of CPU
of the ~9 ms the app spends receiving a 4 MB upload, measured side by side
(docs/performance.md, "The app's own CPU"). Raising the mmap and trim thresholds keeps
freed buffers in the heap for the next read, at the cost of up to `TRIM_THRESHOLD` bytes
kept resident after a burst.
"""

from __future__ import annotations

import ctypes
import ctypes.util

# mallopt(3) parameters, from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Allocations below this come from the heap: every buffer an upload passes through.
MMAP_THRESHOLD = 16 * 1024 * 1024
# Free memory at the heap's top kept rather than returned to the kernel.
TRIM_THRESHOLD = 64 * 1024 * 1024


def keep_freed_buffers() -> bool:
    """Set this process's glibc thresholds; False where the C library has no `mallopt`
    that takes them (musl's accepts nothing), and the defaults stay."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
