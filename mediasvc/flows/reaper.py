"""The reaper: makes storage and database agree again after crashes.

What a crash can leave, and what the reaper does with it (past a grace period, so it never
races a live request):

- a row still `processing` (the node died mid-upload): remove every object its id could
  have written, then the row;
- a row `deleting` (the node died mid-delete, or an upload's undo found storage down):
  the same, which finishes the deletion;
- an upload session `pending` past its expiry, or `failed` (kept for its client) past the
  grace period: the same, its raw object included;
- objects listed for removal and due (`object_removals`: the files a re-render replaced,
  or wrote and never swapped in): delete them;
- objects whose media id has no row (a write that landed after its undo), and session
  raw objects whose session no longer waits for its bytes: delete them;
- spool files and work directories of this node left by a crash: delete them;
- per-user budgets that are whole again (`budgets`): forget them, like no row.

Rows are leased (marked `deleting` with a fresh `updated_at`, claimed with `FOR UPDATE
SKIP LOCKED`, committed at once) and purged one by one outside any transaction; the orphan
scan runs under a transaction-scoped advisory lock that no other flow takes and holds no
row lock. So every node may run the reaper at once without doing the work twice, and the
reaper never waits on, or blocks, a request's locks.
Run once with `python -m mediasvc gc`; the app also runs it every
`MEDIASVC_REAPER_INTERVAL_S`.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import structlog

from mediasvc import db
from mediasvc.db import queries
from mediasvc.errors import MediaError
from mediasvc.flows.purge import purge, remove_listed
from mediasvc.keys import is_upload, media_id_of
from mediasvc.storage import Storage, StorageError, StoredObject

log = structlog.get_logger(__name__)
# How many stuck rows one transaction claims.
BATCH = 50


@dataclass
class ReaperReport:
    """What one pass did."""

    rows_removed: int = 0
    listed_removed: int = 0
    orphans_removed: int = 0
    spool_removed: int = 0
    errors: list[str] = field(default_factory=list)


async def reap(
    pool: asyncpg.Pool, storage: Storage, spool_dir: Path, *, grace_s: float
) -> ReaperReport:
    """One full pass: stuck rows, orphan objects, stale spool files."""
    report = ReaperReport()
    try:
        report.rows_removed = await _finish_stuck_rows(pool, storage, grace_s)
        report.listed_removed = await remove_listed(pool, storage)
        report.orphans_removed = await _remove_orphans(pool, storage, grace_s)
        async with db.connection(pool) as conn:
            await queries.prune_budgets(conn)  # user budgets full again: like no row
    except (StorageError, MediaError) as exc:
        report.errors.append(str(exc))
    report.spool_removed = await asyncio.to_thread(_clean_spool, spool_dir, grace_s)
    if (
        report.rows_removed
        or report.listed_removed
        or report.orphans_removed
        or report.spool_removed
        or report.errors
    ):
        log.info(
            "reaper.pass",
            rows_removed=report.rows_removed,
            listed_removed=report.listed_removed,
            orphans_removed=report.orphans_removed,
            spool_removed=report.spool_removed,
            errors=report.errors,
        )
    return report


async def _finish_stuck_rows(pool: asyncpg.Pool, storage: Storage, grace_s: float) -> int:
    removed = 0
    while True:
        # The claim commits at once (a lease, not a held lock); each media is then purged on
        # its own, so no transaction spans storage I/O or waits on a collection.
        async with db.connection(pool) as conn:
            stuck = await queries.claim_stuck(conn, grace_s, BATCH)
        for media_id in stuck:
            # Every key the id could have, not only recorded variants: an upload that died
            # before `ready` recorded none.
            removed += await purge(pool, storage, media_id)
        if len(stuck) < BATCH:
            return removed


async def _remove_orphans(pool: asyncpg.Pool, storage: Storage, grace_s: float) -> int:
    # The lock is transaction-scoped, so it can never outlive this scan on a pooled connection.
    async with db.connection(pool) as conn, conn.transaction():
        if not await queries.try_lock_orphan_scan(conn):
            return 0  # another node is scanning right now
        cutoff = datetime.now(UTC) - timedelta(seconds=grace_s)
        # Newer objects may still be being written by a live request.
        settled = [obj async for obj in storage.scan() if obj.modified < cutoff]
        orphans = await orphans_among(conn, settled)
        if orphans:
            await storage.delete(orphans)
    return len(orphans)


async def orphans_among(conn: db.Connection, objects: Iterable[StoredObject]) -> list[str]:
    """The orphan rule (the reaper's, and `storage verify`'s): the keys of `objects` that
    belong to no media any more. Keys that are not ours (a shared bucket) never are.

    Read the rows after listing the objects: a media made after the listing then has
    a row, and its objects are not taken for orphans.
    """
    temp_files: list[str] = []
    by_media: dict[str, list[str]] = {}
    raw: dict[str, str] = {}
    for obj in objects:
        media_id = media_id_of(obj.key)
        if media_id is None:
            continue
        if obj.key.rsplit("/", 1)[-1].startswith("."):
            temp_files.append(obj.key)  # a write that never got renamed
        elif is_upload(obj.key):
            raw[media_id] = obj.key
        else:
            by_media.setdefault(media_id, []).append(obj.key)
    known = await queries.existing_ids(conn, list(by_media))
    # A session's raw bytes are needed only while it waits for `complete`.
    waiting = await queries.pending_ids(conn, list(raw))
    orphans = temp_files + [
        key for media_id, keys in by_media.items() if media_id not in known for key in keys
    ]
    orphans += [key for media_id, key in raw.items() if media_id not in waiting]
    return orphans


def _clean_spool(spool_dir: Path, grace_s: float) -> int:
    if not spool_dir.exists():
        return 0
    cutoff = time.time() - grace_s
    removed = 0
    for entry in spool_dir.iterdir():
        try:
            if entry.stat().st_mtime >= cutoff:
                continue
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed += 1
        except FileNotFoundError:
            continue  # finished by its own request meanwhile
    return removed
