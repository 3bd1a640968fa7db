"""How an operator command runs its work: at most N objects at once, with one status line on
a terminal."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TextIO, TypeVar

T = TypeVar("T")
# Redrawing more often than this only costs time on a slow terminal.
_REDRAW_S = 0.1


async def each(items: Iterable[T], jobs: int, work: Callable[[T], Awaitable[None]]) -> None:
    """Run `work` on every item, at most `jobs` at once. The first error cancels the rest
    and is raised as itself (so a storage that goes down stops the command at once)."""
    pending = iter(items)

    async def worker() -> None:
        # One shared iterator: each item is taken by exactly one worker.
        for item in pending:
            await work(item)

    tasks = [asyncio.create_task(worker()) for _ in range(max(1, jobs))]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class Progress:
    """A status line (`copy: 120/500 media, 3 objects, 1.2 MB`) rewritten in place on a
    terminal; nothing at all when the stream is not one (cron, a log file), where only the
    command's summary line belongs."""

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = sys.stderr if stream is None else stream
        self.shown = self.stream.isatty()
        self.total: int | None = None
        self.done = 0
        self.objects = 0
        self.bytes = 0
        self._drawn_at = 0.0

    def advance(self, media: int = 0, *, objects: int = 0, size: int = 0) -> None:
        """Count finished work and redraw (at most every 0.1 s)."""
        self.done += media
        self.objects += objects
        self.bytes += size
        now = time.monotonic()
        if self.shown and now - self._drawn_at >= _REDRAW_S:
            self._drawn_at = now
            of = f"/{self.total}" if self.total is not None else ""
            self.stream.write(
                f"\r{self.label}: {self.done}{of} media, {self.objects} objects,"
                f" {human_bytes(self.bytes)}\x1b[K"
            )
            self.stream.flush()

    def close(self) -> None:
        """Clear the line, so the summary that follows starts on a clean one."""
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def human_bytes(size: int) -> str:
    """`1.2 MB`: sizes in a summary line, in powers of 1000 as `df -H` prints them."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")
