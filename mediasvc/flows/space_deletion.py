"""Emptying a space: every media of it removed, whatever its status, by any node.

    start: one transaction records the job (`space_deletions`: the space, a cutoff of now)
    and counts what it covers → the caller answers 202 with that count
    pass: claim up to `BATCH` of the space's ready, pending and failed media created up to
    the cutoff, mark them `deleting` and record `media.deleted` for the ready ones (one
    statement and the events, committed at once) → purge each → again until a claim comes
    back short → end the job if nothing it covers is left (one statement)

Media still `processing` are not claimed: a later pass takes them once they are ready (an
upload reserved before the cutoff that becomes ready after the request is removed too;
its client got its 201, then receivers get `media.deleted`) or failed. Rows already
`deleting` belong to another purge (a single delete, the reaper), whose end the job waits
for. Uploads reserved after the cutoff are kept: a space is a name, and the product
decides whether it lives on.

A node that stops half way leaves the job row and at most one batch of `deleting` rows:
the reaper purges those after its grace period, and any node's next pass does the rest.
Every node runs passes (`run_all`) on a timer; the node that accepted the request is
woken at once (`kick`). Two nodes on one job share it: the claims skip each other's rows.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import asyncpg
import structlog

from mediasvc import db
from mediasvc.config import Settings
from mediasvc.db import queries
from mediasvc.errors import MediaError
from mediasvc.events import outbox
from mediasvc.flows.purge import purge
from mediasvc.storage import Storage, StorageError
from mediasvc.timers import in_background, woken

log = structlog.get_logger(__name__)

# How many media one claim takes: one transaction's events, then as many purges.
BATCH = 100
# While a job waits for uploads still processing, a node looks again after this, doubling
# up to `WATCH_MAX_S` (or the reaper interval, if shorter): uploads end within the job
# timeout, and an idle job costs one indexed query per look.
WATCH_FIRST_S = 0.2
WATCH_MAX_S = 5.0


@dataclass
class SpacePass:
    """What one pass over one space did."""

    space: str
    removed: int = 0
    finished: bool = False
    errors: list[str] = field(default_factory=list)


class SpaceDeletions:
    """Starts and runs the jobs that empty spaces (built once per app, or by the CLI)."""

    def __init__(self, *, db: asyncpg.Pool, storage: Storage, settings: Settings) -> None:
        self._db, self._storage, self._settings = db, storage, settings
        self._wake = asyncio.Event()

    async def start(self, space: str, requested_by: str) -> int:
        """Record the job emptying `space` (or move its cutoff to now); how many media it
        covers that are not already being deleted."""

        async def record(conn: db.Connection) -> int:
            cutoff = await queries.start_space_deletion(conn, space, requested_by)
            return await queries.count_space(conn, space, cutoff)

        count = await db.transaction(self._db, record)
        log.info("space.deletion_started", space=space, media=count, by=requested_by)
        return count

    async def count(self, space: str) -> int:
        """How many media emptying `space` now would remove (a dry run)."""
        async with db.connection(self._db) as conn:
            return await queries.count_space(conn, space)

    async def run(self, space: str, progress: Callable[[int], None] | None = None) -> SpacePass:
        """One pass over `space`'s job: batches until none is full, then end the job if it
        covers nothing more; `progress` hears the running count of media removed. A
        storage failure stops the pass; the rows it leased stay `deleting` for the reaper,
        and the job for the next pass."""
        result = SpacePass(space)
        try:
            while True:
                claimed = await db.transaction(self._db, lambda conn: self._claim(conn, space))
                for media_id in claimed:
                    result.removed += await purge(self._db, self._storage, media_id)
                    if progress is not None:
                        progress(result.removed)
                if len(claimed) < BATCH:
                    break
            async with db.connection(self._db) as conn:
                result.finished = await queries.finish_space_deletion(conn, space)
        except (StorageError, MediaError) as exc:
            result.errors.append(str(exc))
        if result.removed or result.finished or result.errors:
            log.info(
                "space.deletion_pass",
                space=space,
                removed=result.removed,
                finished=result.finished,
                errors=result.errors,
            )
        return result

    async def _claim(self, conn: db.Connection, space: str) -> list[str]:
        claimed = await queries.claim_space_batch(conn, space, BATCH)
        # Receivers heard of ready media only, as for a single delete.
        await outbox.record(
            conn,
            self._settings,
            [
                outbox.media_event("media.deleted", media, self._settings)
                for media, previous in claimed
                if previous == "ready"
            ],
        )
        return [media.id for media, _ in claimed]

    async def run_all(self) -> list[SpacePass]:
        """One pass over every job, whichever node started it."""
        async with db.connection(self._db) as conn:
            spaces = await queries.space_deletions(conn)
        return [await self.run(space) for space in spaces]

    def kick(self) -> None:
        """Run a pass now (this node just accepted a job), not at the next timer."""
        self._wake.set()

    @contextlib.asynccontextmanager
    async def running(self, interval_s: float) -> AsyncIterator[None]:
        """Passes over every job while the block runs: at once when kicked, about every
        `interval_s` otherwise, and more often while a job waits for uploads to end."""
        async with in_background(self._loop(interval_s)):
            yield

    async def _loop(self, interval_s: float) -> None:
        delay = interval_s
        while True:
            kicked = await woken(self._wake, delay)
            self._wake.clear()
            try:
                passes = await self.run_all()
            except Exception:
                log.exception("space.deletion_failed")
                passes = []
            if all(done.finished for done in passes):
                delay = interval_s
            else:
                # A job left: look again soon, backing off while it still waits.
                delay = min(WATCH_FIRST_S if kicked else delay * 2, WATCH_MAX_S, interval_s)
