"""Purge: the last step of every removal, in the one order that never leaves a row
pointing at missing files.

    remove every object the media may have → delete its row → close its collection gap

Upload undo, delete and the reaper all end with this.
"""

from __future__ import annotations

from collections.abc import Sequence

from mediasvc.db import Connection, queries
from mediasvc.storage import Storage


async def purge(conn: Connection, storage: Storage, media_id: str, keys: Sequence[str]) -> None:
    """Remove `keys`, then the row, in the caller's transaction on `conn`.

    A `StorageError` leaves the row as it was (the caller's transaction rolls back), so
    the media can be purged again later. The connection is held while storage deletes,
    which the storage timeout bounds.
    """
    if keys:
        await storage.delete(keys)
    await queries.remove_row(conn, media_id)
