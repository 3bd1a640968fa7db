"""The upload flow after the file is spooled: record, process, store, mark ready.

    insert row `processing` → pool makes variants → storage.put each → mark `ready`

Any failure on the way undoes what was written (stored objects, then the row) before the
error reaches the client. If the process dies before the undo, the row stays `processing`
and the reaper finishes the job.
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import structlog

from mediasvc import db
from mediasvc.config import Settings
from mediasvc.db import queries
from mediasvc.errors import (
    Busy,
    Conflict,
    InvalidImage,
    MediaError,
    ProcessingFailed,
    UnsupportedMediaType,
)
from mediasvc.ids import new_media_id
from mediasvc.imaging.formats import OUTPUT_FORMATS
from mediasvc.imaging.pipeline import Facts, ImageRejected, Job
from mediasvc.imaging.pool import ImagingPool, JobTimedOut, PoolBusy, WorkerCrashed
from mediasvc.imaging.variants import VARIANTS, Kind
from mediasvc.ingest import SpooledUpload
from mediasvc.models import Media, StoredVariant, Visibility
from mediasvc.storage import Storage, StorageError, variant_key

log = structlog.get_logger(__name__)


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

    async def create(self, owner: str, upload: SpooledUpload, options: UploadOptions) -> Media:
        """Turn a spooled file into a `ready` media, or leave no trace and raise."""
        media_id = new_media_id()
        async with db.connection(self.db) as conn:
            await queries.insert_processing(
                conn,
                media_id=media_id,
                owner=owner,
                kind=options.kind,
                collection=options.collection,
                visibility=options.visibility,
                mime=upload.mime,
                size=upload.size,
                sha256=upload.sha256,
                idempotency_key=options.idempotency_key,
            )
        structlog.contextvars.bind_contextvars(media_id=media_id)
        work_dir = self.settings.spool_dir / f"{media_id}.out"
        try:
            await asyncio.to_thread(work_dir.mkdir)
            facts = await self._process(upload, options, work_dir)
            stored = await self._store(media_id, facts)
            async with db.connection(self.db) as conn:
                media = await queries.mark_ready(
                    conn,
                    media_id,
                    width=facts.width,
                    height=facts.height,
                    frames=facts.frames,
                    variants=stored,
                )
            if media is None:
                raise Conflict("The media was removed while it was being processed.")
            return media
        except BaseException:
            await asyncio.shield(self._undo(media_id))
            raise
        finally:
            await asyncio.to_thread(shutil.rmtree, work_dir, ignore_errors=True)

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
        except WorkerCrashed:
            raise ProcessingFailed(
                "The image worker stopped while processing this file.", code="worker_crashed"
            ) from None

    async def _store(self, media_id: str, facts: Facts) -> dict[str, StoredVariant]:
        stored = {
            v.name: StoredVariant(
                key=variant_key(media_id, Path(v.path).name),
                width=v.width,
                height=v.height,
                bytes=v.bytes,
                mime=v.mime,
            )
            for v in facts.variants
        }
        try:
            await asyncio.gather(
                *(
                    self.storage.put(stored[v.name].key, Path(v.path), v.mime)
                    for v in facts.variants
                )
            )
        except StorageError as exc:
            log.warning("storage.unavailable", error=str(exc))
            raise Busy("Storage is unavailable; try again shortly.") from None
        return stored

    async def _undo(self, media_id: str) -> None:
        """Remove whatever this upload may have written; the reaper retries what fails here."""
        extension = OUTPUT_FORMATS[self.settings.output_format].extension
        keys = [variant_key(media_id, f"{spec.name}{extension}") for spec in VARIANTS]
        try:
            await self.storage.delete(keys)
            async with db.connection(self.db) as conn:
                await queries.delete_media(conn, media_id)
        except (StorageError, MediaError) as exc:
            log.warning("upload.undo_failed", error=str(exc))
