"""Becoming `ready`: the one transaction every path to `ready` ends with (an upload, and a
quarantined media an admin allows), and what follows it.

    (replacing kind) collection lock → the row's own UPDATE → retire the collection's oldest
    ready items → `media.ready` and `media.replaced` events; one transaction
    → purge what was retired (outside it; the reaper finishes what fails)

A reader sees the old item or the new one, never both or neither, and the events exist if
and only if the change commits.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg
import structlog

from mediasvc import db
from mediasvc.config import Settings
from mediasvc.db import queries
from mediasvc.errors import Conflict, MediaError
from mediasvc.events import outbox
from mediasvc.flows.purge import purge
from mediasvc.models import Media
from mediasvc.storage import Storage, StorageError

log = structlog.get_logger(__name__)


async def become_ready(
    pool: asyncpg.Pool,
    settings: Settings,
    update: Callable[[db.Connection], Awaitable[Media | None]],
    *,
    owner: str,
    collection: str | None,
    keep_others: int,
) -> tuple[Media, list[Media]]:
    """Run `update` (the statement that makes the row `ready`; None: the row was not in the
    state it expects) and, with a `collection` (a replacing kind's), retire all but the
    newest `keep_others` other ready items; the media, and what it retired."""

    async def mark(conn: db.Connection) -> tuple[Media, list[Media]]:
        if collection is not None:
            # The collection before any of its rows (docs/decisions.md, lock order).
            await queries.lock_collection(conn, owner, collection)
        media = await update(conn)
        if media is None:
            raise Conflict("The media was removed or decided while this was under way.")
        retired = []
        if collection is not None:
            retired = await queries.retire_oldest(
                conn, owner, collection, kept=media.id, keep_others=keep_others
            )
        replaced = {"replaced_by": media.id}
        await outbox.record(
            conn,
            settings,
            [
                outbox.media_event("media.ready", media, settings),
                *(outbox.media_event("media.replaced", old, settings, replaced) for old in retired),
            ],
        )
        return media, retired

    return await db.transaction(pool, mark)


async def remove_retired(pool: asyncpg.Pool, storage: Storage, retired: list[Media]) -> None:
    """Purge the media a replacing item retired; the reaper finishes what fails here (the
    new item is `ready` and answered as such)."""
    for old in retired:
        try:
            await purge(pool, storage, old.id)
        except (StorageError, MediaError) as exc:
            log.warning("upload.replaced_left_to_reaper", media=old.id, error=str(exc))
