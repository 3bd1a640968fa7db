"""LISTEN for NOTIFYs on a connection of its own, as long as the caller runs: the webhook
dispatcher and the nginx cache purger run their rounds (`run_rounds`) as they come instead
of waiting for their poll.

A pooled connection would not do: pooled connections skip asyncpg's reset query
(`db._keep_session`), so a LISTEN on one would stay with whoever borrowed it next; and
through a transaction pooler a LISTEN never works (`MEDIASVC_DATABASE_LISTEN_URL`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import structlog

from mediasvc import db
from mediasvc.config import Settings
from mediasvc.timers import in_background, woken

log = structlog.get_logger(__name__)

# What a lost or refused listening connection may raise.
DB_ERRORS = (*db.UNAVAILABLE, asyncpg.PostgresError)


async def run_rounds(
    settings: Settings,
    channel: str,
    wake: asyncio.Event,
    look: Callable[[], Awaitable[float]],
    *,
    retry_s: float,
    name: str,
) -> None:
    """Call `look` round after round until cancelled, LISTENing on `channel` meanwhile
    (`listen_forever`, where `settings.listen_url` names a connection to do it on). A round
    starts when `wake` is set (by a NOTIFY, as each LISTEN starts, or by the caller) or
    after the seconds the last `look` returned. `wake` is cleared before each look, so a
    wake-up during one is not lost."""
    async with contextlib.AsyncExitStack() as stack:
        if settings.listen_url is not None:
            listening = listen_forever(
                settings.listen_url,
                channel,
                wake,
                timeout_s=settings.db_timeout_s,
                retry_s=retry_s,
                name=name,
            )
            await stack.enter_async_context(in_background(listening))
        while True:
            wake.clear()
            await woken(wake, await look())


async def listen_forever(
    url: str, channel: str, wake: asyncio.Event, *, timeout_s: float, retry_s: float, name: str
) -> None:
    """Set `wake` on every NOTIFY on `channel`, and once as each LISTEN starts (for what
    was recorded before it), on a connection of its own to `url`; until cancelled. A lost
    connection is opened again after `retry_s`: the caller's polling covers meanwhile.
    Failures are logged as `{name}.listen_failed` and `{name}.listen_lost`."""

    while True:
        try:
            conn = await asyncpg.connect(url, timeout=timeout_s)
        except DB_ERRORS as exc:
            log.warning(f"{name}.listen_failed", error=str(exc))
            await asyncio.sleep(retry_s)
            continue
        try:
            await _until_lost(conn, channel, wake)
            log.warning(f"{name}.listen_lost")
        except DB_ERRORS as exc:
            log.warning(f"{name}.listen_failed", error=str(exc))
        finally:
            with contextlib.suppress(*DB_ERRORS):
                await conn.close(timeout=timeout_s)
        await asyncio.sleep(retry_s)


async def _until_lost(conn: asyncpg.Connection, channel: str, wake: asyncio.Event) -> None:
    """LISTEN on `conn`, setting `wake` on each NOTIFY, until the connection is lost."""
    lost = asyncio.Event()
    conn.add_termination_listener(lambda _: lost.set())

    def notified(*_: Any) -> None:
        wake.set()

    await conn.add_listener(channel, notified)
    wake.set()
    await lost.wait()
