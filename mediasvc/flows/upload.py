"""The upload flow: a spooled file becomes a `ready` media, or leaves no trace.

    admitted (the pool's admission, the owner's in-flight slot; the caller spools the body
      meanwhile: `ingest`, `spool`)
    → reserve (idempotency key, quotas, collection cap, insert `processing`, one transaction)
    → finish: pool makes variants (and the PDQ hash) → refused if on the blocklist →
      (a moderated kind) the hook's verdict, or review → storage.put each → mark `ready` (a
      replacing kind retires the oldest item in the same transaction; `media.ready` is
      recorded there), or `quarantined`

Moderation (`moderation = "hook"`): one variant is stored under `private/` and its signed
URL sent to the hook (`mediasvc.moderation`) before any other file is written; `deny` is
`content_rejected` and undone like any failure, `review` (or a failed hook with
`moderation_fail = "closed"`) stores every variant under `private/`, whatever the media's
visibility, and the row becomes `quarantined` without an event. So no file of a media that
is not allowed is ever at a plain URL (docs/decisions.md, "Moderation").

Any failure on the way undoes what was written (stored objects, then the row) before the
error reaches the client, unless it came after the media became ready (a COMMIT whose
answer was lost): a ready media stays. If the process dies before the undo, the row stays
`processing` and the reaper finishes the job. Upload sessions (`flows.sessions`) use `reserve` (as
`pending`) and `finish` too.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import asyncpg
import structlog

from mediasvc import db
from mediasvc.config import Settings
from mediasvc.contract import codes
from mediasvc.contract.representation import variant_url
from mediasvc.contract.shapes import ModerationRequest
from mediasvc.db import blocklist, queries
from mediasvc.errors import (
    Busy,
    CollectionFull,
    Conflict,
    ContentBlocked,
    ContentRejected,
    MediaError,
    QuotaExceeded,
    TooManyRequests,
    Unprocessable,
    problem_of,
)
from mediasvc.events import outbox
from mediasvc.flows import store
from mediasvc.flows.processing import Processor
from mediasvc.flows.purge import purge, remove_objects
from mediasvc.flows.ready import become_ready, remove_retired
from mediasvc.form import UploadForm, UploadOptions
from mediasvc.ids import new_media_id
from mediasvc.imaging.job import Facts, Pdq, VariantFile
from mediasvc.keys import variant_key
from mediasvc.metrics import Metrics
from mediasvc.models import Media, Placeholder, StoredVariant
from mediasvc.moderation import Decision, Moderator
from mediasvc.spool import SpooledUpload
from mediasvc.storage import Storage, StorageError, StoredFile

log = structlog.get_logger(__name__)

# How long an Idempotency-Key names its upload; after that the key may be used afresh.
IDEMPOTENCY_WINDOW_S = 24 * 3600.0
# The moderation hook gets the largest variant up to this size (else the smallest): enough
# detail for a classifier or a person, without sending a 4096 px file.
MODERATION_VARIANT_MAX = 1024


@dataclass(frozen=True, slots=True)
class Uploaded:
    """The outcome of an upload: the media, whether it was created now (else a replay), and
    the ids of the media it replaced (kinds with `replace`)."""

    media: Media
    created: bool
    replaced: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class UploadFlow:
    """Runs uploads against the app's database, storage and image workers; made once."""

    settings: Settings
    db: asyncpg.Pool
    storage: Storage
    processor: Processor
    form: UploadForm
    metrics: Metrics
    # Asks the moderation hook (kinds with `moderation = "hook"`; `kinds.kind_rules` makes
    # sure it is configured when such a kind exists).
    moderator: Moderator | None = None

    # Uploads in flight on this node, per owner: the event loop is the only writer.
    inflight: Counter[str] = field(default_factory=Counter)

    @contextmanager
    def admitted(self, owner: str) -> Iterator[None]:
        """Let `owner`'s upload in: the block receives and creates it.

        Refused at once (before the caller reads a byte of the body) when the pool could not
        take the job anyway or `owner` has every in-flight slot. Refusals raised in the
        block, here or by `create`, are counted by their code.
        """
        started = time.perf_counter()
        try:
            self.processor.admit()
            with self.slot(owner):
                yield
        except MediaError as exc:
            self.metrics.uploads.labels("refused" if exc.status < 500 else "failed", exc.code).inc()
            raise
        finally:
            self.metrics.upload_seconds.labels("total").observe(time.perf_counter() - started)

    @contextmanager
    def slot(self, owner: str) -> Iterator[None]:
        """Hold one of `owner`'s in-flight slots, so one owner cannot occupy every worker:
        form uploads, a session's signed PUT and its completion (background ones too)."""
        limit = self.settings.owner_max_inflight
        if self.inflight[owner] >= limit:
            raise TooManyRequests(
                f"You already have {limit} uploads in progress; send the next when one ends.",
                limit=limit,
                retry_after=2,
            )
        self.inflight[owner] += 1
        try:
            yield
        finally:
            self.inflight[owner] -= 1
            if not self.inflight[owner]:
                del self.inflight[owner]

    async def create(self, owner: str, upload: SpooledUpload, options: UploadOptions) -> Uploaded:
        """Turn a spooled file into a `ready` media, or leave no trace and raise."""
        self.metrics.received(upload.size, receive_s=upload.receive_s, sniff_s=upload.sniff_s)
        media_id = new_media_id()
        declared = Declared(upload.mime, upload.size, upload.sha256)
        with self.metrics.stage("db"):
            reserved = await self.reserve(media_id, owner, declared, options)
        if not reserved.created:
            self.metrics.uploads.labels("replayed", "").inc()
            return Uploaded(reserved.media, created=False)
        return await self.finish(media_id, owner, upload, options)

    async def finish(
        self,
        media_id: str,
        owner: str,
        upload: SpooledUpload,
        options: UploadOptions,
        *,
        keep_failure: bool = False,
    ) -> Uploaded:
        """Process a reserved (`processing`) media's file, store its variants, mark it ready.

        On failure what was written is removed and the error raised; the row goes too, or
        with `keep_failure` (asynchronous session completions) stays `failed` with its
        problem for the client to read.
        """
        structlog.contextvars.bind_contextvars(media_id=media_id)
        work_dir = self.settings.spool_dir / f"{media_id}.out"
        writes = store.Writes()
        try:
            # Scratch metadata, on the loop rather than a thread hop (docs/decisions.md).
            work_dir.mkdir()
            with self.metrics.stage("process"):
                facts = await self.processor.run(
                    options.kind.name, upload.path, upload.mime, work_dir
                )
            with self.metrics.stage("db"):
                # Before anything is stored: a blocked image is never written or shown.
                await self._check_blocklist(upload.sha256, facts.pdq)
            decision = await self._moderate(media_id, owner, upload, options, facts, writes)
            quarantined = decision == "review"
            with self.metrics.stage("store"):
                files = store.planned(
                    media_id,
                    facts,
                    # Held files stay behind signatures until allowed, whatever the visibility.
                    private=quarantined or options.visibility == "private",
                    source=upload if options.kind.keep_source else None,
                )
                await store.put_all(self.storage, files.files, writes)
                stored = files.variants
            self.metrics.variant_bytes.inc(sum(v.bytes for v in facts.variants))
            with self.metrics.stage("db"):
                media, retired = await self._mark_ready(
                    owner, media_id, facts, stored, options, quarantined=quarantined
                )
        except BaseException as exc:
            failure = exc if keep_failure and isinstance(exc, MediaError) else None
            await asyncio.shield(self._undo(media_id, writes, failure))
            raise
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)
        await asyncio.shield(remove_retired(self.db, self.storage, retired))
        self.metrics.uploads.labels("created", "").inc()
        return Uploaded(media, created=True, replaced=tuple(old.id for old in retired))

    async def _moderate(
        self,
        media_id: str,
        owner: str,
        upload: SpooledUpload,
        options: UploadOptions,
        facts: Facts,
        writes: store.Writes,
    ) -> Decision:
        """What the kind's moderation decides: `allow` without any; `review` for a review
        kind; else the hook's verdict on one variant (stored for it under `private/`), or the
        kind's `moderation_fail`. `deny` raises `ContentRejected`."""
        kind = options.kind
        if kind.moderation is None:
            return "allow"
        if kind.moderation == "review":
            return "review"
        assert self.moderator is not None, "kind_rules requires a URL for hook kinds"
        variant = _moderation_variant(facts)
        path = Path(variant.path)
        key = variant_key(media_id, path.name, private=True)
        # A copy: storage may move the file it is given, and the variant is stored again
        # once the verdict is known.
        copy = path.with_name(f"moderation-{path.name}")
        await asyncio.to_thread(shutil.copyfile, path, copy)
        with self.metrics.stage("store"):
            await store.put_all(self.storage, [StoredFile(key, copy, variant.mime)], writes)
        assert upload.sha256 is not None, "a spooled upload is hashed"
        asked = ModerationRequest(
            id=media_id,
            owner=owner,
            space=options.space,
            kind=kind.name,
            sha256=upload.sha256,
            pdq=facts.pdq.hash if facts.pdq.usable else None,
            url=variant_url(key, self.settings),
        )
        with self.metrics.stage("moderate"):
            verdict = await self.moderator.ask(asked)
        decision = verdict.applied(kind.moderation_fail)
        if decision == "deny":
            detail = "The image was refused by moderation."
            if verdict.reason is None:
                raise ContentRejected(detail)
            raise ContentRejected(detail, reason=verdict.reason)
        if decision == "allow" and options.visibility == "public":
            # Its place is the public prefix now; the copy for the hook is not needed.
            try:
                await self.storage.delete([key])
            except StorageError as exc:
                log.warning("moderation.copy_left", error=str(exc))  # purged with the media
        return decision

    async def _check_blocklist(self, sha256: str, pdq: Pdq) -> None:
        """Refuse an image on the blocklist: its file, or (a distinctive picture) its PDQ
        hash near an entry's. The refusal does not say which entry matched."""
        async with db.connection(self.db) as conn:
            blocked = await blocklist.is_blocked(
                conn,
                sha256,
                pdq.hash if pdq.usable else None,
                self.settings.blocklist_pdq_distance,
            )
        if blocked:
            log.info("upload.blocked")
            raise ContentBlocked("This image may not be uploaded here.")

    async def _mark_ready(
        self,
        owner: str,
        media_id: str,
        facts: Facts,
        stored: dict[str, StoredVariant],
        options: UploadOptions,
        *,
        quarantined: bool,
    ) -> tuple[Media, list[Media]]:
        """Mark the media `ready` (`flows.ready`), or `quarantined`: nobody else hears of
        it, and it replaces nothing, until it is allowed."""
        mark = partial(
            queries.mark_ready,
            media_id=media_id,
            width=facts.width,
            height=facts.height,
            frames=facts.frames,
            variants=stored,
            placeholder=Placeholder(facts.thumbhash, facts.dominant_color),
            processing=facts.processing,
            pdq=facts.pdq,
        )
        if quarantined:
            async with db.connection(self.db) as conn:
                media = await mark(conn, status="quarantined")
            if media is None:
                raise Conflict("The media was removed while it was being processed.")
            return media, []
        kind = options.kind
        return await become_ready(
            self.db,
            self.settings,
            mark,
            owner=owner,
            collection=options.collection if kind.replace else None,
            keep_others=kind.collection_max - 1,
        )

    async def reserve(
        self,
        media_id: str,
        owner: str,
        upload: Declared,
        options: UploadOptions,
        *,
        session_ttl_s: float | None = None,
        auto_complete: bool = False,
    ) -> Reserved:
        """Insert the row: `processing`, or with `session_ttl_s` a `pending` upload session;
        or find the media an idempotent retry refers to.

        Quotas and the collection cap are checked in the same transaction, so an open
        session holds its slot like an upload in progress.
        """
        key = options.idempotency_key
        insert = partial(
            queries.insert_media,
            media_id=media_id,
            owner=owner,
            kind=options.kind.name,
            collection=options.collection,
            visibility=options.visibility,
            mime=upload.mime,
            size=upload.size,
            sha256=upload.sha256,
            idempotency_key=key,
            space=options.space,
            status="processing" if session_ttl_s is None else "pending",
            expires_in_s=session_ttl_s,
            auto_complete=auto_complete,
        )
        settings = self.settings
        quotas = settings.owner_max_media is not None or settings.owner_max_bytes is not None
        if key is None and options.collection is None and not quotas:
            # Nothing to check first: one INSERT is atomic alone, and skipping BEGIN/COMMIT
            # saves two round trips on the most common upload.
            async with db.connection(self.db) as conn:
                return Reserved(await insert(conn), created=True)
        session = session_ttl_s is not None

        async def check_and_insert(conn: db.Connection) -> Reserved:
            # Locks in the one order (docs/decisions.md): owner, then collection, then rows.
            if quotas:
                await queries.lock_owner(conn, owner)
            if options.collection is not None:
                # Replacing kinds too: the next slot is read here.
                await queries.lock_collection(conn, owner, options.collection)
            if key is not None:
                existing = await queries.find_by_idempotency_key(conn, owner, key)
                if existing is not None:
                    return Reserved(_replay(existing, upload, options, session=session), False)
            if quotas:
                self._check_quotas(*await queries.owner_usage(conn, owner), upload.size)
            # A replacing kind makes room when it becomes ready instead.
            if options.collection is not None and not options.kind.replace:
                count = await queries.count_collection(conn, owner, options.collection)
                if count >= options.kind.collection_max:
                    raise CollectionFull(
                        f"The collection {options.collection!r} already holds {count} items.",
                        limit=options.kind.collection_max,
                    )
            slot = None
            if options.collection is not None and options.position is not None:
                # Rows of the collection, under its lock (docs/decisions.md, lock order).
                slot = await queries.make_room(conn, owner, options.collection, options.position)
            return Reserved(await insert(conn, slot=slot), created=True)

        try:
            if key is not None:
                # Alone, before any lock is taken: it touches an old row, which must not be
                # locked ahead of the owner's and the collection's locks.
                async with db.connection(self.db) as conn:
                    await queries.release_expired_key(conn, owner, key, IDEMPOTENCY_WINDOW_S)
            return await db.transaction(self.db, check_and_insert)
        except asyncpg.UniqueViolationError:
            # A concurrent request with the same key inserted first; answer as its retry.
            assert key is not None, "only the idempotency index can clash"
            async with db.connection(self.db) as conn:
                existing = await queries.find_by_idempotency_key(conn, owner, key)
            if existing is None:
                raise Busy("A concurrent upload with this Idempotency-Key failed; retry.") from None
            return Reserved(_replay(existing, upload, options, session=session), created=False)

    def _check_quotas(self, media: int, stored_bytes: int, size: int) -> None:
        """Refuse an upload that would take the owner past a quota (under the owner lock)."""
        max_media, max_bytes = self.settings.owner_max_media, self.settings.owner_max_bytes
        if max_media is not None and media >= max_media:
            raise QuotaExceeded(
                f"You have {media} media; at most {max_media} are allowed.",
                quota="media",
                limit=max_media,
                actual=media,
            )
        if max_bytes is not None and stored_bytes + size > max_bytes:
            raise QuotaExceeded(
                f"Your uploads total {stored_bytes} bytes; this one would take them past "
                f"{max_bytes}.",
                quota="bytes",
                limit=max_bytes,
                actual=stored_bytes + size,
            )

    async def _undo(self, media_id: str, writes: store.Writes, failure: MediaError | None) -> None:
        """Remove whatever this upload may have written, and its row unless `failure` is to
        be kept (the row then becomes `failed` with that problem).

        The row leaves `processing` first, in one conditional statement, and nothing is
        removed if it already had: the error may have come after the COMMIT that made the
        media ready reached the database (its answer lost with the connection, or the
        request cancelled while waiting for it); then the media is ready and announced, and
        stays. Marked `deleting`, the row is invisible to the API and the collection cap, and
        if the storage cannot delete now the reaper finishes it. If the database cannot be
        reached, nothing is removed: the row is `processing` for the reaper, or ready.
        """
        written = writes.may_have_written
        try:
            if failure is None:
                async with db.connection(self.db) as conn:
                    taken = await queries.mark_abandoned(conn, media_id)
            else:
                taken = await self.record_failure(media_id, failure)
            if not taken and await self._is_settled(media_id):
                log.warning("upload.undo_skipped", reason="the media is settled after all")
                return
            if failure is None:
                await purge(self.db, self.storage, media_id, stored=written)
            elif written:
                # The `failed` row stays for its client; the reaper removes it (and these
                # keys again) after the grace period.
                await remove_objects(self.storage, media_id)
        except StorageError as exc:
            log.warning("upload.undo_deferred", error=str(exc))
        except MediaError as exc:
            log.warning("upload.undo_failed", error=str(exc))

    async def record_failure(self, media_id: str, failure: MediaError) -> bool:
        """A `processing` media (or a `pending` session that completes by itself) becomes
        `failed` with the problem, announced as `upload.failed`; False if it was neither."""

        async def fail(conn: db.Connection) -> bool:
            failed = await queries.mark_failed(conn, media_id, problem_of(failure))
            if failed is not None:
                await outbox.record_media(conn, self.settings, "upload.failed", failed)
            return failed is not None

        return await db.transaction(self.db, fail)

    async def _is_settled(self, media_id: str) -> bool:
        async with db.connection(self.db) as conn:
            media = await queries.get_media(conn, media_id)
        return media is not None and media.status in SETTLED


# Where an upload ends when it succeeds: shown, or held for moderation.
SETTLED = ("ready", "quarantined")


def _moderation_variant(facts: Facts) -> VariantFile:
    """The variant the hook sees: the largest up to `MODERATION_VARIANT_MAX`, else the
    smallest (a kind whose every size is larger)."""
    ladder = sorted(facts.variants, key=lambda v: max(v.width, v.height))
    fitting = [v for v in ladder if max(v.width, v.height) <= MODERATION_VARIANT_MAX]
    return fitting[-1] if fitting else ladder[0]


@dataclass(frozen=True, slots=True)
class Reserved:
    """A reserved row: inserted now (`created`), or the one an idempotent retry names."""

    media: Media
    created: bool


@dataclass(frozen=True, slots=True)
class Declared:
    """What an upload is, as far as is known before processing: the sniffed (or, for a
    session, declared) type, its size, and its sha256 if known."""

    mime: str
    size: int
    sha256: str | None


def _replay(existing: Media, upload: Declared, options: UploadOptions, *, session: bool) -> Media:
    """What a retry with an already used Idempotency-Key gets (a session's retry also gets
    the session while it waits for its bytes)."""
    same_file = (existing.original.mime, existing.original.bytes) == (upload.mime, upload.size)
    if (upload.sha256 is not None and existing.original.sha256 != upload.sha256) or not same_file:
        raise Unprocessable(
            "This Idempotency-Key was used for a different file.", code=codes.IDEMPOTENCY_KEY_REUSED
        )
    asked = (options.kind.name, options.collection, options.visibility, options.space)
    if asked != (existing.kind, existing.collection, existing.visibility, existing.space):
        raise Unprocessable(
            "This Idempotency-Key was used with other options "
            "(kind, collection, visibility, space).",
            code=codes.IDEMPOTENCY_KEY_REUSED,
        )
    if session and existing.expires_at is None:
        raise Unprocessable(
            "This Idempotency-Key was used for a form upload, not an upload session.",
            code=codes.IDEMPOTENCY_KEY_REUSED,
        )
    if existing.status not in SETTLED and not (session and existing.status == "pending"):
        raise Conflict(
            "An upload with this Idempotency-Key is still in progress; retry shortly.",
            code=codes.IDEMPOTENCY_IN_PROGRESS,
        )
    return existing
