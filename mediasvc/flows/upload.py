"""The upload flow after the file is spooled: record, process, store, mark ready.

    reserve (idempotency key, collection cap, insert `processing`, one transaction)
    → pool makes variants → storage.put each → mark `ready`

Any failure on the way undoes what was written (stored objects, then the row) before the
error reaches the client. If the process dies before the undo, the row stays `processing`
and the reaper finishes the job.
"""

from __future__ import annotations

import asyncio
import errno
import shutil
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import asyncpg
import structlog

from mediasvc import db
from mediasvc.config import Settings
from mediasvc.db import queries
from mediasvc.errors import (
    Busy,
    CollectionFull,
    Conflict,
    InsufficientStorage,
    InvalidImage,
    MediaError,
    ProcessingFailed,
    Unprocessable,
    UnsupportedMediaType,
)
from mediasvc.ids import new_media_id
from mediasvc.imaging.pipeline import Facts, ImageRejected, Job
from mediasvc.imaging.pool import ImagingPool, JobTimedOut, PoolBusy, WorkerCrashed
from mediasvc.imaging.variants import Kind
from mediasvc.ingest import SpooledUpload
from mediasvc.metrics import Metrics
from mediasvc.models import Media, Placeholder, StoredVariant, Visibility
from mediasvc.storage import Storage, StorageError, possible_keys, variant_key

log = structlog.get_logger(__name__)

# How long an Idempotency-Key names its upload; after that the key may be used afresh.
IDEMPOTENCY_WINDOW_S = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class UploadOptions:
    """What the client asked for besides the file."""

    kind: Kind
    collection: str | None
    visibility: Visibility
    idempotency_key: str | None


@dataclass(frozen=True, slots=True)
class Uploader:
    """Runs the upload flow against the app's database, storage and pool."""

    settings: Settings
    db: asyncpg.Pool
    storage: Storage
    pool: ImagingPool
    metrics: Metrics

    async def create(
        self, owner: str, upload: SpooledUpload, options: UploadOptions
    ) -> tuple[Media, bool]:
        """Turn a spooled file into a `ready` media, or leave no trace and raise.

        Returns the media and whether it was created now (False: an idempotent retry).
        """
        media_id = new_media_id()
        self.metrics.received_bytes.inc(upload.size)
        with self.metrics.stage("db"):
            existing = await self._reserve(media_id, owner, upload, options)
        if existing is not None:
            return existing, False
        structlog.contextvars.bind_contextvars(media_id=media_id)
        work_dir = self.settings.spool_dir / f"{media_id}.out"
        writes = _Writes()
        try:
            await asyncio.to_thread(work_dir.mkdir)
            with self.metrics.stage("process"):
                facts = await self._process(upload, options, work_dir)
            with self.metrics.stage("store"):
                stored = await self._store(
                    media_id, facts, private=options.visibility == "private", writes=writes
                )
            self.metrics.variant_bytes.inc(sum(v.bytes for v in facts.variants))
            with self.metrics.stage("db"):
                async with db.connection(self.db) as conn:
                    media = await queries.mark_ready(
                        conn,
                        media_id,
                        width=facts.width,
                        height=facts.height,
                        frames=facts.frames,
                        variants=stored,
                        placeholder=Placeholder(facts.thumbhash, facts.dominant_color),
                        processing=facts.processing,
                    )
            if media is None:
                raise Conflict("The media was removed while it was being processed.")
            return media, True
        except BaseException:
            await asyncio.shield(self._undo(media_id, writes))
            raise
        finally:
            await asyncio.to_thread(shutil.rmtree, work_dir, ignore_errors=True)

    async def _reserve(
        self, media_id: str, owner: str, upload: SpooledUpload, options: UploadOptions
    ) -> Media | None:
        """Insert the `processing` row; or return the media an idempotent retry refers to."""
        key = options.idempotency_key
        insert = partial(
            queries.insert_processing,
            media_id=media_id,
            owner=owner,
            kind=options.kind,
            collection=options.collection,
            visibility=options.visibility,
            mime=upload.mime,
            size=upload.size,
            sha256=upload.sha256,
            idempotency_key=key,
        )
        if key is None and options.collection is None:
            # Nothing to check first: one INSERT is atomic alone, and skipping BEGIN/COMMIT
            # saves two round trips on the most common upload.
            async with db.connection(self.db) as conn:
                await insert(conn)
            return None
        try:
            async with db.connection(self.db) as conn, conn.transaction():
                if key is not None:
                    await queries.release_expired_key(conn, owner, key, IDEMPOTENCY_WINDOW_S)
                    existing = await queries.find_by_idempotency_key(conn, owner, key)
                    if existing is not None:
                        return _replay(existing, upload)
                if options.collection is not None:
                    await queries.lock_collection(conn, owner, options.collection)
                    count = await queries.count_collection(conn, owner, options.collection)
                    if count >= self.settings.collection_max:
                        raise CollectionFull(
                            f"The collection {options.collection!r} already holds {count} items.",
                            limit=self.settings.collection_max,
                        )
                await insert(conn)
        except asyncpg.UniqueViolationError:
            # A concurrent request with the same key inserted first; answer as its retry.
            assert key is not None, "only the idempotency index can clash"
            async with db.connection(self.db) as conn:
                existing = await queries.find_by_idempotency_key(conn, owner, key)
            if existing is None:
                raise Busy("A concurrent upload with this Idempotency-Key failed; retry.") from None
            return _replay(existing, upload)
        return None

    async def _process(
        self, upload: SpooledUpload, options: UploadOptions, work_dir: Path
    ) -> Facts:
        job = Job(
            source=str(upload.path),
            out_dir=str(work_dir),
            mime=upload.mime,
            kind=options.kind,
            output_format=self.settings.output_format,
            quality=self.settings.output_quality,
            max_pixels=self.settings.max_pixels,
            max_frames=self.settings.max_frames,
            max_animation_pixels=self.settings.max_animation_pixels,
        )
        try:
            return await self.pool.process(job)
        except ImageRejected as exc:
            log.info("upload.rejected", code=exc.code, reason=exc.reason)
            error = UnsupportedMediaType if exc.code == "unsupported_media_type" else InvalidImage
            raise error(exc.detail, code=exc.code) from None
        except PoolBusy:
            raise Busy("Every image worker is busy; try again shortly.") from None
        except JobTimedOut:
            raise ProcessingFailed(
                "Processing the image took too long and was stopped.", code="processing_timeout"
            ) from None
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise InsufficientStorage(
                    "The server has no room to process uploads right now; try again later."
                ) from None
            raise
        except WorkerCrashed:
            raise ProcessingFailed(
                "The image worker stopped while processing this file.", code="worker_crashed"
            ) from None

    async def _store(
        self, media_id: str, facts: Facts, *, private: bool, writes: _Writes
    ) -> dict[str, StoredVariant]:
        stored = {
            v.name: StoredVariant(
                key=variant_key(media_id, Path(v.path).name, private=private),
                width=v.width,
                height=v.height,
                bytes=v.bytes,
                mime=v.mime,
            )
            for v in facts.variants
        }

        # Every write runs to its end (each is bounded by the storage timeout) rather than
        # being cancelled when another fails: then the undo knows exactly what exists, and
        # no write can land after the undo removed what was there.
        writes.started = len(facts.variants)
        outcomes = await asyncio.gather(
            *(self.storage.put(stored[v.name].key, Path(v.path), v.mime) for v in facts.variants),
            return_exceptions=True,
        )
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        writes.failed = len(errors)
        writes.finished = len(outcomes) - len(errors)
        if errors:
            if not all(isinstance(e, StorageError) for e in errors):
                raise next(e for e in errors if not isinstance(e, StorageError))
            log.warning("storage.unavailable", error=str(errors[0]))
            raise Busy("Storage is unavailable; try again shortly.")
        return stored

    async def _undo(self, media_id: str, writes: _Writes) -> None:
        """Remove whatever this upload may have written.

        If the storage cannot delete now and some object may exist, the row becomes a
        `deleting` tombstone, invisible to the API and the collection cap, which the
        reaper finishes. Otherwise nothing is recorded.
        """
        try:
            if writes.may_have_written:
                try:
                    await self.storage.delete(possible_keys(media_id))
                except StorageError as exc:
                    log.warning("upload.undo_deferred", error=str(exc))
                    async with db.connection(self.db) as conn:
                        await queries.mark_abandoned(conn, media_id)
                    return
            async with db.connection(self.db) as conn, conn.transaction():
                await queries.remove_row(conn, media_id)
        except MediaError as exc:
            log.warning("upload.undo_failed", error=str(exc))


@dataclass
class _Writes:
    """How the variant writes of one upload went, so the undo knows what may exist."""

    started: int = 0
    finished: int = 0
    failed: int = 0

    @property
    def may_have_written(self) -> bool:
        # A write that neither finished nor failed was cancelled mid-flight: it may exist.
        return self.finished > 0 or self.started > self.failed


def _replay(existing: Media, upload: SpooledUpload) -> Media:
    """What a retry with an already used Idempotency-Key gets."""
    if existing.original.sha256 != upload.sha256:
        raise Unprocessable(
            "This Idempotency-Key was used for a different file.", code="idempotency_key_reused"
        )
    if existing.status != "ready":
        raise Conflict(
            "An upload with this Idempotency-Key is still in progress; retry shortly.",
            code="idempotency_in_progress",
        )
    return existing
