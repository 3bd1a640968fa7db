"""Purge: the last step of every removal, in the one order that never leaves a row
pointing at missing files.

    remove every object the media may have → ask nginx caches to drop the public ones
    (`nginxcache`) → delete its row (one statement)

Caches are asked only once the objects are gone: asked earlier, a request in between would
fetch the object again and cache it anew; they are asked in the row's DELETE transaction.
Storage I/O happens outside any transaction, and the DELETE touches no other row
(collection positions are counted on read, so a removal leaves no gap to close). Delete,
upload undo, a replacing upload's retirement, a refused session and the reaper all end
with this.

Objects that outlive a change of their media's row (the files a re-render replaced, or
wrote and never swapped in) are listed in `object_removals` instead, in the transaction
that makes them superfluous or before they are written; `remove_listed` removes those due.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import asyncpg

from mediasvc import db
from mediasvc.db import cache_purges, queries
from mediasvc.keys import is_public_variant, media_keys, media_prefixes
from mediasvc.storage import Storage

# How many listed keys one claim takes, and how long a claim keeps other removers off them.
REMOVAL_BATCH = 500
REMOVAL_LEASE_S = 300.0


async def purge(
    pool: asyncpg.Pool, storage: Storage, media_id: str, *, stored: bool = True
) -> bool:
    """Remove every object `media_id` could have written (unless nothing was `stored`),
    then its row; False if the row was gone already (purged by someone else).

    A `StorageError` leaves the row as it was, so the media can be purged again later.
    """
    removed = await remove_objects(storage, media_id) if stored else []

    async def forget(conn: db.Connection) -> bool:
        await cache_purges.record(conn, [key for key in removed if is_public_variant(key)])
        return await queries.remove_row(conn, media_id)

    return await db.transaction(pool, forget)


async def remove_objects(storage: Storage, media_id: str) -> list[str]:
    """Remove every object of `media_id`: all under its variant prefixes (whatever its kind's
    ladder and formats were when they were written), and its other keys; the keys found
    under the prefixes."""
    await storage.delete(media_keys(media_id))
    removed = []
    for prefix in media_prefixes(media_id):
        removed += await storage.delete_under(prefix)
    return removed


async def remove_listed(
    pool: asyncpg.Pool, storage: Storage, among: Sequence[str] | None = None
) -> int:
    """Remove the listed objects that are due (only those `among` these keys, if given):
    each batch is leased, removed from storage, then taken off the list; how many.

    A `StorageError` leaves the batch listed; its lease runs out and it is tried again.
    """
    removed = 0
    while True:
        # The claim commits at once (a lease, not a held lock), as the reaper's stuck rows.
        async with db.connection(pool) as conn:
            keys = await queries.claim_removals(
                conn, lease_s=REMOVAL_LEASE_S, limit=REMOVAL_BATCH, among=among
            )
        if keys:
            await storage.delete(keys)
            await db.transaction(pool, partial(_forget_listed, keys=keys))
        removed += len(keys)
        if len(keys) < REMOVAL_BATCH:
            return removed


async def _forget_listed(conn: db.Connection, *, keys: list[str]) -> None:
    """Take removed keys off the list, and ask caches to drop the public ones."""
    await cache_purges.record(conn, [key for key in keys if is_public_variant(key)])
    await queries.forget_removals(conn, keys)
