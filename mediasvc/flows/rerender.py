"""Re-rendering: a ready media's variants made again under its kind's current rules.

    select ready media (kind, owner, space, since; in id order, a page at a time)
    → for each, at most `concurrency` at once through the image worker pool:
      up to date (the ladder's names and sizes, the output and alternate formats)? skip
      → the kept source (`keys.source_key`), or with `from_largest` the largest stored
        variant, spooled as an upload's file is (capped, hashed, sniffed)
      → the pool makes the variants (the same sandboxed workers and rules as uploads)
      → their keys, tagged with a fresh render tag, are listed for removal (due after the
        reaper's grace period), then written
      → swap, one transaction: the row takes the new variants only if still `ready` with
        the variants it had; the new keys come off the removal list (unless a reaper is
        already removing them: then it rolls back), the old keys go on it (due now), and
        `media.rerendered` is recorded
      → the old files are removed and taken off the list

Locks (docs/decisions.md, "Locks"): the swap takes its own row, then the removal rows,
then inserts events; no collection or owner lock (membership does not change). Storage
I/O is never inside it.

Interrupted anywhere, nothing is lost or leaked: before the swap the media keeps its old
files and the new ones, listed, are removed by the reaper once due; after it the old ones
are due at once. A second run skips what the first finished. A swap that finds the row
changed (deleted, replaced, re-rendered by another run) drops its own files.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Literal

import asyncpg
import structlog

from mediasvc import db
from mediasvc.config import Settings
from mediasvc.db import queries
from mediasvc.db.queries import RerenderSelection
from mediasvc.errors import Busy, MediaError
from mediasvc.events import outbox
from mediasvc.flows import store
from mediasvc.flows.processing import Processor
from mediasvc.flows.purge import remove_listed
from mediasvc.form import FileRules
from mediasvc.imaging.formats import LOADERS, OUTPUT_FORMATS
from mediasvc.imaging.job import Facts, ImageRules
from mediasvc.keys import new_render_tag, source_key
from mediasvc.kinds import KindRules
from mediasvc.models import Media, Placeholder
from mediasvc.spool import SpooledUpload, spooled_stream
from mediasvc.storage import ObjectMissing, Storage, StorageError

log = structlog.get_logger(__name__)

# Media read per query while walking the selection.
PAGE = 100

Outcome = Literal[
    "rerendered",  # done: the new set is live, the old one removed (or due)
    "would_rerender",  # a dry run's answer
    "up_to_date",  # the ladder and formats match the kind's rules already
    "no_source",  # no kept source (and no `from_largest`): listed and skipped
    "unknown_kind",  # the kind is no longer configured
    "changed",  # deleted, replaced or re-rendered by someone else while this ran
    "failed",  # the worker refused the file, or storage/the database failed: kept as it was
]
Origin = Literal["source", "largest variant"]
# The file read back is checked as an upload is, against every type the service takes (the
# kind's `accept` may have narrowed since: it applies to new uploads).
_ANY_IMAGE = frozenset(LOADERS)


@dataclass(frozen=True, slots=True)
class Rendered:
    """What became of one media: its outcome, what it was (or would be) made from, and a
    few words for the operator."""

    media_id: str
    outcome: Outcome
    origin: Origin | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Options:
    """How a run treats each media."""

    # Media without a kept source are re-derived from their largest variant (never upscaled:
    # no variant is made larger than the file it comes from).
    from_largest: bool = False
    dry_run: bool = False
    # Re-render media whose ladder and formats match too (a `quality` change is not visible
    # in what is stored).
    force: bool = False


class _FilesTaken(Exception):
    """A reaper is removing some of the new files (the render outlasted the grace period)."""


@dataclass(frozen=True, slots=True)
class Rerenderer:
    """Re-renders media against the database, storage and image workers it is given."""

    settings: Settings
    db: asyncpg.Pool
    storage: Storage
    processor: Processor
    kinds: Mapping[str, KindRules]

    async def count(self, selection: RerenderSelection) -> int:
        """How many ready media `selection` matches (for progress)."""
        async with db.connection(self.db) as conn:
            return await queries.rerender_count(conn, selection)

    async def run(
        self,
        selection: RerenderSelection,
        options: Options,
        *,
        concurrency: int,
        limit: int | None = None,
    ) -> AsyncGenerator[Rendered, None]:
        """Each matching media's outcome as it is known (at most `limit` media are looked
        at), with at most `concurrency` in flight. Use with `contextlib.aclosing`: closing
        it early cancels what is in flight, which the next run or the reaper finishes."""
        running: set[asyncio.Task[Rendered]] = set()
        try:
            async for media in self._select(selection, limit):
                if len(running) >= concurrency:
                    done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        yield task.result()
                running.add(asyncio.create_task(self.one(media, options)))
            while running:
                done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    yield task.result()
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    async def _select(
        self, selection: RerenderSelection, limit: int | None
    ) -> AsyncIterator[Media]:
        after, seen = "", 0
        while limit is None or seen < limit:
            size = PAGE if limit is None else min(PAGE, limit - seen)
            async with db.connection(self.db) as conn:
                page = await queries.rerender_page(conn, selection, after=after, limit=size)
            for media in page:
                yield media
            seen += len(page)
            if len(page) < size:
                return
            after = page[-1].id

    async def one(self, media: Media, options: Options) -> Rendered:
        """Re-render one media (see the module doc); failures are outcomes, not raised."""
        kind = self.kinds.get(media.kind)
        if kind is None:
            return Rendered(media.id, "unknown_kind", detail=f"kind {media.kind!r} not configured")
        if not options.force and matches(media, kind.image):
            return Rendered(media.id, "up_to_date")
        structlog.contextvars.bind_contextvars(media_id=media.id)
        try:
            if options.dry_run:
                for key, _, origin in self._candidates(media, options):
                    if await self._exists(key):
                        return Rendered(media.id, "would_rerender", origin)
                return Rendered(media.id, "no_source", detail="no kept source")
            async with self._spooled(media, options) as found:
                if found is None:
                    return Rendered(media.id, "no_source", detail="no kept source")
                upload, origin = found
                return await self._render(media, kind, upload, origin)
        except MediaError as exc:
            return Rendered(media.id, "failed", detail=f"{exc.code}: {exc}")

    def _candidates(self, media: Media, options: Options) -> list[tuple[str, int, Origin]]:
        """What a media may be rendered from, in order of preference: its kept source, then
        (`from_largest`) its largest variant in the output format; each key with its size."""
        found: list[tuple[str, int, Origin]] = [
            (source_key(media.id), media.original.bytes, "source")
        ]
        if options.from_largest and media.variants:
            largest = max(media.variants.values(), key=lambda v: (v.width * v.height, v.size))
            found.append((largest.key, largest.bytes, "largest variant"))
        return found

    async def _exists(self, key: str) -> bool:
        """Whether `key` is stored (its first chunk is read, no more)."""
        chunks = self.storage.read(key)
        try:
            async for _ in chunks:
                break
        except ObjectMissing:
            return False
        except StorageError as exc:
            raise Busy("Storage is unavailable; try again shortly.") from exc
        finally:
            if isinstance(chunks, AsyncGenerator):
                await chunks.aclose()
        return True

    @asynccontextmanager
    async def _spooled(
        self, media: Media, options: Options
    ) -> AsyncIterator[tuple[SpooledUpload, Origin] | None]:
        """The first of the `_candidates` that is stored, in the spool (capped at its recorded
        size, hashed, sniffed, as an upload's file); None if none is."""
        for key, size, origin in self._candidates(media, options):
            rules = FileRules(max_bytes=size, accept=_ANY_IMAGE, kind=media.kind)
            stack = AsyncExitStack()
            try:
                upload = await stack.enter_async_context(
                    spooled_stream(
                        self.storage.read(key), spool_dir=self.settings.spool_dir, rules=rules
                    )
                )
            except ObjectMissing:
                continue
            except StorageError as exc:
                raise Busy("Storage is unavailable; try again shortly.") from exc
            async with stack:
                yield upload, origin
            return
        yield None

    async def _render(
        self, media: Media, kind: KindRules, upload: SpooledUpload, origin: Origin
    ) -> Rendered:
        tag = new_render_tag()
        work_dir = self.settings.spool_dir / f"{media.id}.{tag}.out"
        try:
            work_dir.mkdir()  # scratch metadata: on the loop (docs/decisions.md)
            facts = await self.processor.run(kind.name, upload.path, upload.mime, work_dir)
            files = store.planned(media.id, facts, private=media.is_private, render=tag)
            # Listed before any is written: if this process dies before the swap, they go.
            async with db.connection(self.db) as conn:
                await queries.list_removals(
                    conn, media.id, files.keys, due_in_s=self.settings.reaper_grace_s
                )
            try:
                await store.put_all(self.storage, files.files, store.Writes())
                swapped = await self._swap(media, facts, files, origin)
            except (MediaError, _FilesTaken) as exc:
                await self._drop(files.keys)
                detail = (
                    "a reaper removed the new files first" if isinstance(exc, _FilesTaken) else ""
                )
                return Rendered(media.id, "failed", origin, detail or f"{exc}")
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)
        if swapped is None:
            await self._drop(files.keys)
            return Rendered(media.id, "changed", origin, "changed while it was re-rendered")
        await self._drop([key for key in _keys(media) if key not in set(files.keys)])
        sizes = ", ".join(f"{name} {v.width}x{v.height}" for name, v in files.variants.items())
        return Rendered(media.id, "rerendered", origin, sizes)

    async def _swap(
        self, media: Media, facts: Facts, files: store.Planned, origin: Origin
    ) -> Media | None:
        """The one transaction that makes the new set live (see the module doc)."""
        processing = facts.processing
        if origin == "largest variant":
            # The report describes what was done to the upload (rotation, metadata removed),
            # which a variant no longer shows: only how the new files were encoded changes.
            encoded = {k: v for k, v in facts.processing.items() if k in _ENCODING_FACTS}
            processing = {**(media.processing or {}), **encoded}
        old = [key for key in _keys(media) if key not in set(files.keys)]

        async def swap(conn: db.Connection) -> Media | None:
            swapped = await queries.swap_variants(
                conn,
                media.id,
                was=media.variants,
                variants=files.variants,
                placeholder=Placeholder(facts.thumbhash, facts.dominant_color),
                processing=processing,
            )
            if swapped is None:
                return None
            if await queries.take_off_removals(conn, files.keys) != len(files.keys):
                raise _FilesTaken
            await queries.list_removals(conn, media.id, old, due_in_s=0)
            await outbox.record_media(conn, self.settings, "media.rerendered", swapped)
            return swapped

        return await db.transaction(self.db, swap)

    async def _drop(self, keys: list[str]) -> None:
        """Remove listed files now, if still listed (a key a committed swap took off is live
        and stays); what fails here the reaper removes once due."""
        try:
            async with db.connection(self.db) as conn:
                await queries.make_due(conn, keys)
            await remove_listed(self.db, self.storage, among=keys)
        except (StorageError, MediaError) as exc:
            log.warning("rerender.removal_left_to_reaper", error=str(exc))


# The members of a processing report that describe the encoding (`imaging.report`).
_ENCODING_FACTS = frozenset({"encoding", "lossless_variants"})


def matches(media: Media, rules: ImageRules) -> bool:
    """Whether the media's variants are what `rules` make now: the ladder's names and sizes,
    the output format, and the alternate formats (stills only: an animation keeps its one
    animated file)."""
    if {name: v.size for name, v in media.variants.items()} != {
        spec.name: spec.size for spec in rules.sizes
    }:
        return False
    animated = rules.animated and (media.original.frames or 1) > 1
    alternates = [] if animated else sorted(OUTPUT_FORMATS[f].mime for f in rules.alternates)
    output = OUTPUT_FORMATS[rules.output_format].mime
    return all(
        v.mime == output and sorted(a.mime for a in v.alternates) == alternates
        for v in media.variants.values()
    )


def _keys(media: Media) -> list[str]:
    """Every stored key of the media's variants, alternates included."""
    return [key for v in media.variants.values() for key in (v.key, *(a.key for a in v.alternates))]


def describe(selection: RerenderSelection) -> str:
    """The selection in words, for the command's first line."""
    parts = [
        f"{name} {value}"
        for name, value in (
            ("kind", selection.kind),
            ("owner", selection.owner),
            ("space", selection.space),
            ("since", selection.since.isoformat() if selection.since else None),
        )
        if value is not None
    ]
    return "ready media" + (" of " + ", ".join(parts) if parts else "")
