"""What an image worker does as it starts, before its first job (`init_worker`).

In order: it arranges to die with the app, limits glibc's malloc arenas, confines itself
for good (`imaging.confine`), caps its address space, then sizes libvips and locks its
loaders down to the allow-list. Every job's code (`imaging.pipeline`) is already loaded
by then; the HEIF decoder, where installed, is loaded last, already confined.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import resource
import signal

import pyvips

# The code every job runs, loaded with this module: as the worker starts, before it is
# confined (Pillow, for one, would otherwise import its WebP writer at the first save).
from mediasvc.imaging import pipeline  # noqa: F401
from mediasvc.imaging.confine import confine_worker
from mediasvc.imaging.formats import HEIF_AVAILABLE, VIPS_LOADERS

# libvips threads per worker. The pool runs one worker per core, so more threads would only
# compete with the other workers; and JPEG decoding, most of the work before the encoders
# (which are single-threaded anyway), does not parallelise.
VIPS_CONCURRENCY = 1

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
# glibc gives threads that allocate their own malloc arenas, and a process keeps the pages
# of every arena it used: with the encoder threads (`Job.threads`) beside libvips' own, a
# service worker grew to 104 MB after a few dozen jobs; with two arenas it stays near 60 MB,
# for no measurable time (docs/performance.md).
_MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # from <malloc.h>


def init_worker(
    memory_limit_mb: int | None = None,
    parent_pid: int | None = None,
    *,
    writable: str | None = None,
    allow_unconfined: bool = False,
) -> None:
    """Harden and size libvips in a fresh worker process.

    Only the loaders on the allow-list stay callable, so even a sniffing mistake can never
    reach SVG, PDF, matload or any other loader libvips ships. With `memory_limit_mb`, the
    process's address space is capped: a runaway decode fails its own job, not the host.
    With `parent_pid`, the worker dies with that parent, however the parent ends. Then the
    process is confined for good (`confine.confine_worker`): no network, no other process,
    no child process; with `writable`, no file-system change outside that directory.
    Where the HEIF extra is installed, its decoder is loaded last, already confined.
    """
    if parent_pid is not None:
        _die_with_parent(parent_pid)
    _limit_malloc_arenas()
    confine_worker(writable=writable, allow_unconfined=allow_unconfined)
    if memory_limit_mb is not None:
        limit = memory_limit_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    pyvips.cache_set_max(0)  # every job reads a new file: the operation cache only holds memory
    pyvips.concurrency_set(VIPS_CONCURRENCY)
    pyvips.block_untrusted_set(True)
    pyvips.operation_block_set("VipsForeignLoad", True)
    for loader in VIPS_LOADERS:
        # By type name: `jpegload` is VipsForeignLoadJpegFile, `gifload` VipsForeignLoadNsgifFile.
        type_name = pyvips.type_name(pyvips.type_find("VipsOperation", loader))
        pyvips.operation_block_set(type_name, False)
    if HEIF_AVAILABLE:
        # pillow-heif and libheif are loaded by every worker, not by its first HEIC job.
        importlib.import_module("mediasvc.imaging.heif")


def _die_with_parent(parent_pid: int) -> None:
    # Linux: the kernel sends SIGKILL to this process when its parent exits. Without it, a
    # SIGKILLed app would leave its workers behind, adopted by init.
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent_pid:  # the parent died before the prctl took effect
        os._exit(1)


def _limit_malloc_arenas() -> None:
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is not None:  # glibc; other C libraries size their heaps their own way
        mallopt(_M_ARENA_MAX, _MALLOC_ARENAS)


def ping() -> int:
    """A no-op job: proves a worker can start and run libvips."""
    return int(pyvips.version(0))
