"""Purge: the last step of every removal, in the one order that never leaves a row
pointing at missing files.

    remove every object the media may have → delete its row (one statement)

Neither step holds a lock while the other runs: storage I/O happens outside any
transaction, and the DELETE touches no other row (collection positions are counted on
read, so a removal leaves no gap to close). Delete, upload undo, a replacing upload's
retirement, a refused session and the reaper all end with this.
"""

from __future__ import annotations

import asyncpg

from mediasvc import db
from mediasvc.db import queries
from mediasvc.keys import media_keys, media_prefixes
from mediasvc.storage import Storage


async def purge(
    pool: asyncpg.Pool, storage: Storage, media_id: str, *, stored: bool = True
) -> bool:
    """Remove every object `media_id` could have written (unless nothing was `stored`),
    then its row; False if the row was gone already (purged by someone else).

    A `StorageError` leaves the row as it was, so the media can be purged again later.
    """
    if stored:
        await remove_objects(storage, media_id)
    async with db.connection(pool) as conn:
        return await queries.remove_row(conn, media_id)


async def remove_objects(storage: Storage, media_id: str) -> None:
    """Remove every object of `media_id`: all under its variant prefixes (whatever its kind's
    ladder and formats were when they were written), and its other keys."""
    await storage.delete(media_keys(media_id))
    for prefix in media_prefixes(media_id):
        await storage.delete_under(prefix)
