"""Takedown: an admin removes a media, blocks it from coming back, and removes its copies.

    block the file's sha256 and (a distinctive picture) its PDQ hash, with the reason
    → delete the media (`flows.delete`: `media.deleted` with `"reason": "takedown"`)
    → delete every other ready media of the same file, or with `similar` of a picture
      within the PDQ distance, across owners and spaces, a page at a time

Blocking comes first, so no new copy becomes ready while the old ones are removed (an
upload already past its blocklist check may still finish: a second takedown removes it).
Each removal is the delete flow's own transaction; a media whose files the storage cannot
remove now is `deleting`, and the reaper finishes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
import structlog

from mediasvc import db
from mediasvc.config import Settings
from mediasvc.db import blocklist, queries
from mediasvc.errors import Busy, Conflict
from mediasvc.flows.delete import delete_media
from mediasvc.models import Media
from mediasvc.storage import Storage

log = structlog.get_logger(__name__)

# Copies read at a time: each page is removed before the next is read.
_PAGE = 100


@dataclass(frozen=True, slots=True)
class TakenDown:
    """The entries that now block the media, and the ids removed (the media's first)."""

    blocked: list[blocklist.Entry]
    removed: list[str]


async def take_down(
    pool: asyncpg.Pool,
    storage: Storage,
    settings: Settings,
    media: Media,
    *,
    reason: str,
    similar: bool,
    by: str,
) -> TakenDown:
    """Block `media`'s hashes with `reason` (the entries say `by` whom), delete it and its
    copies: the same file, or with `similar` the same picture by PDQ."""
    sha256 = media.original.sha256
    if media.status != "ready" or sha256 is None:
        raise Conflict("Only a ready media can be taken down.")
    pdq = media.pdq if media.pdq is not None and media.pdq.usable else None
    async with db.connection(pool) as conn:
        blocked = [
            (await blocklist.add(conn, sha256=sha256, pdq=None, reason=reason, created_by=by))[0]
        ]
        if pdq is not None:
            added, _ = await blocklist.add(
                conn, sha256=None, pdq=pdq.hash, reason=reason, created_by=by
            )
            blocked.append(added)
    removed = [media.id] if await _remove(pool, storage, settings, media) else []
    while True:
        async with db.connection(pool) as conn:
            copies = await queries.find_copies(
                conn,
                sha256,
                pdq if similar else None,
                distance=settings.blocklist_pdq_distance,
                limit=_PAGE,
            )
        if not copies:
            break
        # Each copy leaves `ready` (or was taken by another delete), so pages end.
        removed += [copy.id for copy in copies if await _remove(pool, storage, settings, copy)]
    log.info("media.taken_down", media_id=media.id, removed=len(removed), similar=similar)
    return TakenDown(blocked, removed)


async def _remove(pool: asyncpg.Pool, storage: Storage, settings: Settings, media: Media) -> bool:
    """Delete one media for a takedown; False if another removal took it first."""
    try:
        await delete_media(pool, storage, media, settings, reason="takedown")
    except Conflict:
        return False
    except Busy:
        log.warning("takedown.purge_left_to_reaper", media_id=media.id)
    return True
