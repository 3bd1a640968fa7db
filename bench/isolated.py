"""Worker processes for contestants, kept for the whole run so rounds can interleave them.

Each contestant lives in its own process started with `forkserver` (as the service's pool
does), so one contestant's libvips settings, caches and heap never affect another's, and
the bench process itself is never hardened by `worker.init_worker`. Timing happens inside
the worker: pickling arguments and results is not measured.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def new_executor(
    workers: int, initializer: Callable[..., object] | None = None, initargs: tuple[Any, ...] = ()
) -> ProcessPoolExecutor:
    """A process pool like the service's: forkserver, optional initializer."""
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("forkserver"),
        initializer=initializer,
        initargs=initargs,
    )


class Isolated:
    """One long-lived worker process; `call` runs a function there and waits for it."""

    def __init__(
        self, initializer: Callable[..., object] | None = None, initargs: tuple[Any, ...] = ()
    ) -> None:
        self._executor = new_executor(1, initializer, initargs)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in the worker; its exceptions are raised here."""
        return self._executor.submit(fn, *args).result()

    def close(self) -> None:
        """Stop the worker."""
        self._executor.shutdown(wait=True, cancel_futures=True)
