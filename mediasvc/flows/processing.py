"""Running the imaging job of an upload, and what its failures mean to the client.

The pool and the pipeline raise their own exceptions (they know nothing of HTTP); this
is the boundary where they become problems, by type, in one table.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import structlog

from mediasvc.config import Settings
from mediasvc.contract import codes
from mediasvc.errors import (
    Busy,
    InsufficientStorage,
    InvalidImage,
    MediaError,
    ProcessingFailed,
    UnsupportedMediaType,
)
from mediasvc.imaging.job import BadImage, Facts, ImageRejected, ImageRules, Job, NotAccepted
from mediasvc.imaging.pool import ImagingPool, JobTimedOut, PoolBusy, PoolError, WorkerCrashed
from mediasvc.kinds import KindRules

log = structlog.get_logger(__name__)

BUSY = "Every image worker is busy; try again shortly."

_POOL_ERRORS: dict[type[PoolError], Callable[[], MediaError]] = {
    PoolBusy: lambda: Busy(BUSY),
    JobTimedOut: lambda: ProcessingFailed(
        "Processing the image took too long and was stopped.", code=codes.PROCESSING_TIMEOUT
    ),
    WorkerCrashed: lambda: ProcessingFailed(
        "The image worker stopped while processing this file.", code=codes.WORKER_CRASHED
    ),
}
_REJECTIONS: dict[type[ImageRejected], type[MediaError]] = {
    NotAccepted: UnsupportedMediaType,
    BadImage: InvalidImage,
    ImageRejected: InvalidImage,
}


@dataclass(frozen=True, slots=True)
class Processor:
    """The worker pool and the image rules of every kind, made once for the app."""

    pool: ImagingPool
    rules: Mapping[str, ImageRules]

    def admit(self) -> None:
        """Refuse at once when the pool could not take a job now (before reading a body)."""
        if not self.pool.has_room:
            raise Busy(BUSY)

    @classmethod
    def for_kinds(cls, pool: ImagingPool, kinds: Mapping[str, KindRules]) -> Processor:
        """A processor with every kind's image rules."""
        return cls(pool, {name: kind.image for name, kind in kinds.items()})

    async def run(self, kind: str, source: Path, mime: str, out_dir: Path) -> Facts:
        """Make the variants of `source` into `out_dir`, or raise the problem for the client."""
        job = Job(source=str(source), out_dir=str(out_dir), mime=mime, rules=self.rules[kind])
        try:
            return await self.pool.process(job)
        except ImageRejected as exc:
            log.info("upload.rejected", code=exc.code, reason=exc.reason)
            raise _REJECTIONS[type(exc)](exc.detail, code=exc.problem, **exc.extra) from None
        except PoolError as exc:
            raise _POOL_ERRORS[type(exc)]() from None
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            raise InsufficientStorage(
                "The server has no room to process uploads right now; try again later."
            ) from None


def imaging_pool(settings: Settings) -> ImagingPool:
    """The image worker pool `settings` ask for (the app's, or a command's own)."""
    return ImagingPool(
        workers=settings.workers,
        queue_max=settings.queue_max,
        timeout_s=settings.job_timeout_s,
        memory_limit_mb=settings.worker_memory_mb,
        allow_unconfined=settings.allow_unconfined_workers,
        # Beside the spool, on its file system: variants are renamed into a job's out_dir.
        work_dir=settings.spool_dir.parent,
    )
