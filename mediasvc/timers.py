"""Work that runs in the background while a block runs: one task, cancelled and awaited
when the block ends (`in_background`), or a round of work about every interval (`every`);
and the sleep of a loop that may be woken early (`woken`)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import structlog

log = structlog.get_logger(__name__)


@contextlib.asynccontextmanager
async def in_background(work: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """Runs `work` as a task while the block runs; cancels it, and waits for it, after."""
    task = asyncio.create_task(work)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def every(
    interval_s: float, work: Callable[[], Awaitable[None]], failure: str
) -> AsyncIterator[None]:
    """Runs `work` about every `interval_s` while the block runs; a failing round is logged
    as `failure` and the next one runs anyway."""

    # Its own generator: the process-wide one belongs to whoever else runs here (a test's
    # Hypothesis checks that nothing draws from it behind its back).
    jitter = random.Random()  # noqa: S311 - jitter, not a secret

    async def loop() -> None:
        while True:
            # Jitter, so nodes started together do not all work at once.
            await asyncio.sleep(interval_s * jitter.uniform(0.5, 1.5))
            try:
                await work()
            except Exception:
                log.exception(failure)

    async with in_background(loop()):
        yield


async def woken(wake: asyncio.Event, timeout_s: float) -> bool:
    """Wait until `wake` is set or `timeout_s` have passed; whether it was set."""
    # Not `wait_for`: on 3.11 it loses a cancel that meets a wake-up.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            await wake.wait()
    return wake.is_set()
