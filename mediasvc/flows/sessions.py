"""Upload sessions: the bytes go straight to storage, then `complete` runs the upload flow.

    open: check the declared type and size against the kind, reserve the row as `pending`
          (collection slot and quota held, like an upload in progress)
    → the client sends the bytes where `upload` says: a presigned POST or PUT to the
      bucket, or (local disk) a signed PUT to the app, streamed into storage with the caps
    → complete: read the object back (capped at the declared size, hashed, sniffed),
      `pending` → `processing`, delete the raw object, then the upload flow's `finish`
      (now, or in the background with `Prefer: respond-async`)

Raw objects live under `uploads/` (`keys.upload_key`), which nginx never serves. Expired
sessions, their objects, and raw objects whose session is gone are the reaper's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import asyncpg
import structlog

from mediasvc import db
from mediasvc.auth import Principal
from mediasvc.contract import codes, paths
from mediasvc.contract.shapes import CompleteMode
from mediasvc.db import queries
from mediasvc.errors import (
    BadRequest,
    Busy,
    Conflict,
    Gone,
    MediaError,
    NotFound,
    PayloadTooLarge,
    RetryLater,
    Unprocessable,
    UnsupportedMediaType,
    UploadMissing,
)
from mediasvc.flows.processing import Processor
from mediasvc.flows.purge import purge
from mediasvc.flows.upload import Declared, UploadFlow
from mediasvc.form import FileRules, UploadOptions
from mediasvc.ids import new_media_id
from mediasvc.keys import upload_key
from mediasvc.kinds import KindRules
from mediasvc.models import Media
from mediasvc.signing import sign_path
from mediasvc.spool import SpooledUpload, spooled_stream
from mediasvc.storage import (
    DirectUpload,
    DirectUploadTerms,
    ObjectMissing,
    Storage,
    StorageError,
)

log = structlog.get_logger(__name__)

UploadMethod = Literal["post", "put"]


@dataclass(frozen=True, slots=True)
class SessionRequest:
    """What a client asked to upload: its options, the declared file (`size` None: not
    known yet), how to send it, and whether the session completes by itself."""

    options: UploadOptions
    mime: str
    size: int | None
    sha256: str | None
    method: UploadMethod
    complete: CompleteMode = "explicit"


@dataclass(frozen=True, slots=True)
class Session:
    """An open session, and where its bytes go."""

    media: Media
    upload: DirectUpload
    created: bool


@dataclass(frozen=True, slots=True)
class Completed:
    """The media a complete answers with; `done` False while it is still processing."""

    media: Media
    created: bool
    done: bool


@dataclass
class SessionFlow:
    """Opens, receives and completes upload sessions; made once for the app."""

    db: asyncpg.Pool
    storage: Storage
    processor: Processor
    kinds: Mapping[str, KindRules]
    # The upload flow reserves a session's row, makes its media, and holds the owner's
    # in-flight slots (shared with form uploads).
    uploads: UploadFlow
    spool_dir: Path
    # Signs a local-disk session's PUT URL (`MEDIASVC_URL_SIGNING_SECRET`).
    url_signing_secret: str = field(repr=False)
    # How long a session waits for its bytes (`MEDIASVC_UPLOAD_SESSION_TTL_S`).
    ttl_s: float
    # Asynchronous completions running on this node; awaited when the app stops.
    running: set[asyncio.Task[None]] = field(default_factory=set)

    async def open(self, owner: str, asked: SessionRequest) -> Session:
        """Check the declared file against the kind, reserve the `pending` row, presign.

        Without a declared size the row holds the kind's `max_bytes`: the most the upload
        may be, held against the owner's byte quota until `complete` reads the real size."""
        kind = asked.options.kind
        if asked.mime not in kind.accept:
            raise UnsupportedMediaType(
                f"{asked.mime} is not accepted for kind {kind.name!r}; accepted types are "
                f"{', '.join(sorted(kind.accept))}.",
                actual=asked.mime,
                accepted=sorted(kind.accept),
            )
        if asked.size is not None and asked.size > kind.max_bytes:
            raise PayloadTooLarge(
                f"The file is larger than {kind.max_bytes} bytes for kind {kind.name!r}.",
                limit=kind.max_bytes,
                actual=asked.size,
            )
        if asked.size is None and asked.method == "put" and self.storage.put_needs_size:
            # Unsigned, a PUT to the bucket could store gigabytes before anyone looks.
            raise BadRequest(
                "size is required with upload_method put: the storage caps a presigned PUT "
                "only at its exact length. Send size, or use post.",
                field="size",
            )
        declared = Declared(asked.mime, asked.size or kind.max_bytes, asked.sha256)
        reserved = await self.uploads.reserve(
            new_media_id(),
            owner,
            declared,
            asked.options,
            session_ttl_s=self.ttl_s,
            auto_complete=asked.complete == "auto",
        )
        upload = await self._target(reserved.media, asked.method, exact=asked.size is not None)
        return Session(reserved.media, upload, created=reserved.created)

    async def _target(self, media: Media, method: UploadMethod, *, exact: bool) -> DirectUpload:
        """Where the client sends the bytes: the store itself, or the app's signed URL."""
        ttl_s = max(1, int(_seconds_left(media)))
        try:
            direct = await self.storage.direct_upload(
                upload_key(media.id),
                DirectUploadTerms(
                    content_type=media.original.mime,
                    size=media.original.bytes if exact else None,
                    max_bytes=media.original.bytes,
                    method=method,
                    ttl_s=ttl_s,
                ),
            )
        except StorageError as exc:
            raise Busy("Storage is unavailable; try again shortly.") from exc
        if direct is not None:
            return direct
        path = sign_path(content_path(media.id), self.url_signing_secret, ttl_s)
        return DirectUpload("PUT", path, headers={"Content-Type": media.original.mime})

    async def receive(self, media_id: str, chunks: AsyncIterator[bytes]) -> str:
        """Local disk: stream a signed PUT's body into storage, capped at the declared size;
        the sha256 of what was stored. A session that completes by itself is completed
        then (its processing in the background): refused bytes are the PUT's answer.

        `chunks` is read only once the session is found waiting and the owner's in-flight
        slot is taken."""
        sha256 = await self._store_body(media_id, chunks)
        media = await self._get(media_id)
        if media.auto_complete:
            try:
                await self._complete(media, wait=False)
            except RetryLater as exc:
                # The bytes are stored: the completer tries again shortly.
                log.info("session.auto_complete_deferred", media_id=media_id, code=exc.code)
        return sha256

    async def _store_body(self, media_id: str, chunks: AsyncIterator[bytes]) -> str:
        media = await self._get(media_id)
        if media.status != "pending":
            raise Conflict("This upload session is not waiting for bytes any more.")
        _check_open(media)
        rules = self._rules(media)
        with self.uploads.slot(media.owner):
            try:
                async with spooled_stream(chunks, spool_dir=self.spool_dir, rules=rules) as upload:
                    # Another PUT and a complete may have finished the session meanwhile.
                    if (await self._get(media_id)).status != "pending":
                        raise Conflict("This upload session is not waiting for bytes any more.")
                    try:
                        await self.storage.put(upload_key(media_id), upload.path, upload.mime)
                    except StorageError as exc:
                        raise Busy("Storage is unavailable; try again shortly.") from exc
                    return upload.sha256
            except MediaError as exc:
                if exc.status < 500 and exc.code != codes.INCOMPLETE_BODY.code:
                    await self._refuse(media, exc)
                raise

    async def complete(
        self,
        principal: Principal,
        media_id: str,
        *,
        wait: bool,
        expected: Mapping[str, str | None] | None = None,
    ) -> Completed:
        """Read the bytes back and make the media, now or (not `wait`) in the background.

        `expected` (`space`, `kind`, `collection`) is what the caller knows the session is
        for: any difference is `session_mismatch` and nothing is done, whatever state the
        session is in."""
        media = await self._get(media_id)
        if not principal.may_act_on(media.owner):
            raise NotFound("No such upload session.")
        _check_expected(media, expected or {})
        return await self._complete(media, wait=wait)

    async def complete_due(self, limit: int = 20) -> int:
        """Auto-completing sessions (on S3, whose bytes arrive without telling anyone): claim
        those due for a look, complete the ones whose object is there; how many were looked
        at. Each claim pushes its next look back, doubling, so a session whose client never
        sends anything costs a few reads until it expires."""
        async with db.connection(self.db) as conn:
            due = await queries.claim_auto_complete(conn, limit)
        for media_id in due:
            try:
                await self._complete(await self._get(media_id), wait=False)
            except MediaError as exc:
                # Not there yet, busy, or refused (then kept as `failed`): nobody to answer.
                log.debug("session.auto_complete", media_id=media_id, code=exc.code)
        return len(due)

    async def _complete(self, media: Media, *, wait: bool) -> Completed:
        media_id = media.id
        if media.status != "pending":
            return self._settled(media)
        _check_open(media)
        # Refuse before reading when the pool could not take the job anyway.
        self.processor.admit()
        stack = AsyncExitStack()
        try:
            # Held until the media is made, by the background job if it runs there.
            stack.enter_context(self.uploads.slot(media.owner))
            upload = await stack.enter_async_context(self._read_back(media))
            started = await self._start(media, upload)
            if started is None:
                return self._settled(await self._get(media_id))
            options = self._options(started)
            if wait:
                uploaded = await self.uploads.finish(media_id, media.owner, upload, options)
                return Completed(uploaded.media, created=True, done=True)
            # The spool file and the owner's slot now belong to the background job.
            self._in_background(stack.pop_all(), media_id, media.owner, upload, options)
            return Completed(started, created=True, done=False)
        finally:
            await stack.aclose()

    def _settled(self, media: Media) -> Completed:
        """A complete of a session that is no longer pending: answer what became of it."""
        if media.status in ("ready", "quarantined", "failed"):  # a failed one shows its problem
            return Completed(media, created=False, done=True)
        if media.status == "processing":
            return Completed(media, created=False, done=False)
        if media.status == "pending":  # taken, then given back: only past its expiry
            raise _expired()
        raise NotFound("No such upload session.")

    @asynccontextmanager
    async def _read_back(self, media: Media) -> AsyncIterator[SpooledUpload]:
        """The session's object in the spool, checked as a form's file would be."""
        chunks = self.storage.read(upload_key(media.id))
        try:
            rules = self._rules(media)
            async with spooled_stream(chunks, spool_dir=self.spool_dir, rules=rules) as upload:
                if media.original.sha256 not in (None, upload.sha256):
                    raise Unprocessable(
                        "The bytes do not match the declared sha256.",
                        code=codes.CHECKSUM_MISMATCH,
                        expected=media.original.sha256,
                        actual=upload.sha256,
                    )
                yield upload
        except ObjectMissing:
            raise UploadMissing(
                "No bytes have arrived for this upload session yet; send them as `upload` "
                "says, then complete again."
            ) from None
        except StorageError as exc:
            raise Busy("Storage is unavailable; try again shortly.") from exc
        except MediaError as exc:
            if exc.status < 500:
                await self._refuse(media, exc)
            raise

    async def _start(self, media: Media, upload: SpooledUpload) -> Media | None:
        """`pending` → `processing` with the facts read; the raw object is no longer needed."""
        async with db.connection(self.db) as conn:
            started = await queries.start_processing(
                conn, media.id, mime=upload.mime, size=upload.size, sha256=upload.sha256
            )
        if started is not None:
            try:
                await self.storage.delete([upload_key(media.id)])
            except StorageError as exc:
                log.warning("session.raw_left_to_reaper", error=str(exc))
        return started

    def _in_background(
        self,
        stack: AsyncExitStack,
        media_id: str,
        owner: str,
        upload: SpooledUpload,
        options: UploadOptions,
    ) -> None:
        async def run() -> None:
            async with stack:
                try:
                    await self.uploads.finish(media_id, owner, upload, options, keep_failure=True)
                except MediaError as exc:
                    log.info("session.failed", media_id=media_id, code=exc.code)

        task = asyncio.create_task(run())
        self.running.add(task)
        task.add_done_callback(self.running.discard)

    async def close(self) -> None:
        """Let background completions finish (the pool's timeout bounds each)."""
        if self.running:
            await asyncio.gather(*self.running, return_exceptions=True)

    async def _refuse(self, media: Media, refusal: MediaError) -> None:
        """Bad bytes: the same answer as a form upload, and nothing kept; but a session that
        completes by itself, whose client may not be there to hear the answer, stays
        `failed` with the problem (as an asynchronous completion would)."""
        if not media.auto_complete:
            await self._discard(media)
            return
        try:
            if await self.uploads.record_failure(media.id, refusal):
                await self.storage.delete([upload_key(media.id)])
        except (StorageError, MediaError) as exc:
            log.warning("session.refusal_left_to_reaper", error=str(exc))

    async def _discard(self, media: Media) -> None:
        """Remove a session whose bytes were refused, if it still waits for them: its object,
        then its row. A session another request completed meanwhile is left alone (a late,
        failing second PUT must not delete a ready media)."""
        try:
            async with db.connection(self.db) as conn:
                discarded = await queries.mark_discarded(conn, media.id)
            if discarded is not None:
                await purge(self.db, self.storage, media.id)
        except (StorageError, MediaError) as exc:
            log.warning("session.discard_left_to_reaper", error=str(exc))

    async def _get(self, media_id: str) -> Media:
        async with db.connection(self.db) as conn:
            media = await queries.get_media(conn, media_id)
        if media is None or media.status == "deleting":
            raise NotFound("No such upload session.")
        return media

    def _kind(self, media: Media) -> KindRules:
        kind = self.kinds.get(media.kind)
        if kind is None:
            raise Conflict(f"The kind {media.kind!r} is no longer configured.")
        return kind

    def _rules(self, media: Media) -> FileRules:
        # The declared size is the cap: a bigger object is refused like an oversize form.
        kind = self._kind(media)
        return FileRules(min(kind.max_bytes, media.original.bytes), kind.accept, kind.name)

    def _options(self, media: Media) -> UploadOptions:
        return UploadOptions(
            kind=self._kind(media),
            collection=media.collection,
            visibility=media.visibility,
            idempotency_key=None,
            space=media.space,
        )


def content_path(media_id: str) -> str:
    """The app's URL path a local-disk session's bytes are PUT to (signed)."""
    return paths.UPLOAD_CONTENT.format(media_id=media_id)


def _seconds_left(media: Media) -> float:
    assert media.expires_at is not None, "a pending session has an expiry"
    return (media.expires_at - datetime.now(UTC)).total_seconds()


def _check_open(media: Media) -> None:
    if _seconds_left(media) <= 0:
        raise _expired()


def _expired() -> Gone:
    return Gone("This upload session has expired.", code=codes.UPLOAD_EXPIRED)


def _check_expected(media: Media, expected: Mapping[str, str | None]) -> None:
    actual = {"space": media.space, "kind": media.kind, "collection": media.collection}
    for name, value in expected.items():
        if actual[name] != value:
            raise Conflict(
                f"This upload session is for {name} {actual[name]!r}, not {value!r}.",
                code=codes.SESSION_MISMATCH,
                field=name,
                expected=value,
                actual=actual[name],
            )
