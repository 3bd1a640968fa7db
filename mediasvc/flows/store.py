"""Writing a media's files: the variants a worker made (with their alternates), and the
kept source, under the keys `mediasvc.keys` gives them.

Two steps, so a caller can record the keys before any is written (a re-render registers
them for cleanup first): `planned` names every file and what the row will say of it,
`put_all` writes them. The upload flow and the re-render share both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import structlog

from mediasvc.errors import Busy
from mediasvc.imaging.job import Facts
from mediasvc.keys import rendered_name, source_key, variant_key
from mediasvc.models import StoredAlternate, StoredVariant
from mediasvc.spool import SpooledUpload
from mediasvc.storage import Storage, StorageError, StoredFile

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Planned:
    """The variants as the row records them, and every file to write for them."""

    variants: dict[str, StoredVariant]
    files: list[StoredFile]

    @property
    def keys(self) -> list[str]:
        return [file.key for file in self.files]


@dataclass
class Writes:
    """How the writes of one `put_all` went, so an undo knows what may exist."""

    started: int = 0
    finished: int = 0
    failed: int = 0

    @property
    def may_have_written(self) -> bool:
        # A write that neither finished nor failed was cancelled mid-flight: it may exist.
        return self.finished > 0 or self.started > self.failed


def planned(
    media_id: str,
    facts: Facts,
    *,
    private: bool,
    render: str | None = None,
    source: SpooledUpload | None = None,
) -> Planned:
    """The keys of the variants in `facts` (tagged with `render`, for a re-render), and of
    `source` (a kind that keeps it) once the worker is done reading it."""

    def key(path: str) -> str:
        return variant_key(media_id, rendered_name(Path(path).name, render), private=private)

    variants = {
        v.name: StoredVariant(
            key=key(v.path),
            size=v.size,
            width=v.width,
            height=v.height,
            bytes=v.bytes,
            mime=v.mime,
            alternates=tuple(StoredAlternate(key(a.path), a.bytes, a.mime) for a in v.alternates),
        )
        for v in facts.variants
    }
    files: list[StoredFile] = []
    for v in facts.variants:
        files.append(StoredFile(key(v.path), Path(v.path), v.mime))
        files.extend(StoredFile(key(a.path), Path(a.path), a.mime) for a in v.alternates)
    if source is not None:
        files.append(StoredFile(source_key(media_id), source.path, source.mime))
    return Planned(variants, files)


async def put_all(storage: Storage, files: list[StoredFile], writes: Writes) -> None:
    """Write every file; `Busy` if the storage refused any (what was written stays, for
    the caller's undo). `writes` counts over every call with it: a media may be written in
    two steps (the variant a moderation hook is shown, then the rest)."""
    writes.started += len(files)
    try:
        await storage.put_all(files)
    except StorageError as exc:
        writes.finished += exc.stored
        writes.failed += len(files) - exc.stored
        log.warning("storage.unavailable", error=str(exc))
        raise Busy("Storage is unavailable; try again shortly.") from None
    writes.finished += len(files)
