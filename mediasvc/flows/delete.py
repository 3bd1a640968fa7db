"""Deleting a media: the order of steps that never leaves a row pointing at missing files.

    mark `deleting` (and record `media.deleted`), one transaction → purge (remove every
    stored object → delete the row)

A crash after the first step leaves a `deleting` row whose files may be partly gone; it is
no longer listed or served, and the reaper purges it.
"""

from __future__ import annotations

from typing import Literal

import asyncpg

from mediasvc import db
from mediasvc.config import Settings
from mediasvc.db import queries
from mediasvc.errors import Busy, Conflict
from mediasvc.events import outbox
from mediasvc.flows.purge import purge
from mediasvc.models import Media
from mediasvc.storage import Storage, StorageError

# Why a media was deleted, when its owner did not ask (`media.deleted`'s `reason`).
DeleteReason = Literal["takedown"]


async def delete_media(
    pool: asyncpg.Pool,
    storage: Storage,
    media: Media,
    settings: Settings,
    *,
    announce: bool | None = None,
    reason: DeleteReason | None = None,
) -> None:
    """Delete a ready or quarantined media and all its variants, or cancel an upload
    session. `media.deleted` is recorded if `announce` (default: if it was ready), with
    `reason` when it was not the owner's own choice."""
    if announce is None:
        # Receivers heard of ready media only: a cancelled session is no news to them.
        announce = media.status == "ready"
    extra = None if reason is None else {"reason": reason}

    async def mark(conn: db.Connection) -> Media | None:
        marked = await queries.mark_deleting(conn, media.id)
        if marked is not None and announce:
            await outbox.record_media(conn, settings, "media.deleted", marked, extra=extra)
        return marked

    if await db.transaction(pool, mark) is None:
        raise Conflict("The media is still processing or already being deleted.")
    try:
        await purge(pool, storage, media.id)
    except StorageError as exc:
        raise Busy("Storage is unavailable; the deletion will be completed later.") from exc
