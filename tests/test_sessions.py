"""Upload sessions on both backends: bytes straight to storage (presigned POST/PUT, or a
signed PUT to the app), then `complete` runs the same pipeline, and nothing is left over."""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

import images
import pytest
from gates import DEADLINE_S, wait_until
from support import (
    Client,
    assert_nothing_left,
    bearer,
    parametrize_backends,
    post_media,
    stored_keys,
    through_pgbouncer,
    upload_form,
)
from support import (
    send_direct as send,
)

from mediasvc.appkeys import DB, KINDS, SESSIONS, STORAGE, UPLOADS
from mediasvc.config import Settings
from mediasvc.flows.processing import Processor
from mediasvc.flows.reaper import reap
from mediasvc.flows.sessions import content_path
from mediasvc.keys import upload_key
from mediasvc.signing import sign_path

PHOTO = images.make_jpeg(width=800, height=600)


async def open_session(client: Client, data: bytes = PHOTO, **overrides: Any) -> Any:
    """POST /v1/uploads for `data` as a JPEG; the response."""
    body = {"kind": "post", "content_type": "image/jpeg", "size": len(data), **overrides}
    headers = bearer(overrides.pop("sub", "alice")) if "sub" in overrides else bearer()
    body.pop("sub", None)
    if body["size"] is None:  # `size=None`: the client does not say
        del body["size"]
    return await client.post("/v1/uploads", json=body, headers=headers)


async def complete(client: Client, media_id: str, **headers: str) -> Any:
    return await client.post(f"/v1/uploads/{media_id}/complete", headers={**bearer(), **headers})


async def opened(client: Client, data: bytes = PHOTO, **overrides: Any) -> dict[str, Any]:
    response = await open_session(client, data, **overrides)
    assert response.status == 201, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def row_status(client: Client, media_id: str) -> str | None:
    status: str | None = await client.app[DB].fetchval(
        "SELECT status FROM media WHERE id = $1", media_id
    )
    return status


@parametrize_backends
class TestFlow:
    @through_pgbouncer
    @pytest.mark.parametrize("method", ["post", "put"])
    async def test_open_send_complete_gives_the_same_media_as_a_form_upload(
        self, client: Client, method: str, backend: str
    ) -> None:
        """The session answers where to send; after complete the media is ready, raw gone."""
        session = await opened(client, upload_method=method)
        assert session["status"] == "pending"
        assert session["complete_url"] == f"/v1/uploads/{session['id']}/complete"
        assert session["expires_at"].endswith("Z")
        # The URL (or POST policy) is signed for the session's time left.
        assert session["upload"]["expires_at"] == session["expires_at"]
        # What each store answers: S3's POST 204 (no success_action_status), its PUT 200, and
        # the app's signed PUT (local disk, whatever was asked) 204.
        stored = {("s3", "post"): 204, ("s3", "put"): 200}.get((backend, method), 204)
        assert await send(client, session["upload"], PHOTO) == stored
        assert upload_key(session["id"]) in await stored_keys(client)
        response = await complete(client, session["id"])
        assert response.status == 201, await response.text()
        media = await response.json()
        assert media["status"] == "ready"
        assert (media["original"]["width"], media["original"]["height"]) == (800, 600)
        assert media["original"]["sha256"] == hashlib.sha256(PHOTO).hexdigest()
        assert set(media["variants"]) == {"thumbnail", "small", "medium", "large", "full"}
        keys = await stored_keys(client)
        assert upload_key(session["id"]) not in keys
        assert len(keys) == 5

    async def test_completing_twice_returns_the_same_media(self, client: Client) -> None:
        """A second complete answers 200 with the media the first made; no second one."""
        session = await opened(client)
        await send(client, session["upload"], PHOTO)
        first = await (await complete(client, session["id"])).json()
        again = await complete(client, session["id"])
        assert again.status == 200
        assert (await again.json())["id"] == first["id"]
        assert await client.app[DB].fetchval("SELECT count(*) FROM media") == 1

    async def test_respond_async_answers_202_then_the_media_becomes_ready(
        self, client: Client
    ) -> None:
        """`Prefer: respond-async`: 202 + Location at once; GET then shows ready."""
        session = await opened(client)
        await send(client, session["upload"], PHOTO)
        response = await complete(client, session["id"], Prefer="respond-async")
        assert response.status == 202
        assert response.headers["Location"] == f"/v1/media/{session['id']}"
        assert (await response.json())["status"] == "processing"
        # The background job is this node's: wait for it, not for a guess.
        await asyncio.wait_for(asyncio.gather(*client.app[SESSIONS].running), 30)
        media = await (await client.get(f"/v1/media/{session['id']}", headers=bearer())).json()
        assert len(media["variants"]) == 5

    async def test_an_asynchronous_failure_is_kept_with_its_problem_until_reaped(
        self, client: Client, settings: Settings
    ) -> None:
        """Bad bytes completed with respond-async: GET shows `failed` and the problem; gc
        later removes the row, and no object is ever left."""
        data = PHOTO[: len(PHOTO) // 2]
        session = await opened(client, data)
        await send(client, session["upload"], data)
        response = await complete(client, session["id"], Prefer="respond-async")
        assert response.status == 202
        await asyncio.wait_for(asyncio.gather(*client.app[SESSIONS].running), 30)
        failed = await (await client.get(f"/v1/media/{session['id']}", headers=bearer())).json()
        assert failed["status"] == "failed"
        assert (failed["problem"]["status"], failed["problem"]["code"]) == (422, "invalid_image")
        assert failed["variants"] == {}
        assert await stored_keys(client) == []
        again = await complete(client, session["id"])
        assert again.status == 200
        assert (await again.json())["status"] == "failed"
        await reap(client.app[DB], client.app[STORAGE], settings.spool_dir, grace_s=0)
        await assert_nothing_left(client, settings)

    async def test_complete_refuses_a_session_opened_for_something_else(
        self, client: Client
    ) -> None:
        """`complete` with what the product expects (kind, collection, space): a difference
        is 409 session_mismatch naming the member, and the session stays pending; the same
        expectations complete it; once made, a mismatch is still refused."""
        session = await opened(client, collection="chat-a")
        await send(client, session["upload"], PHOTO)
        url = f"/v1/uploads/{session['id']}/complete"
        wrong = await client.post(url, json={"collection": "chat-b"}, headers=bearer())
        assert wrong.status == 409
        problem = await wrong.json()
        assert (problem["code"], problem["field"]) == ("session_mismatch", "collection")
        assert (problem["expected"], problem["actual"]) == ("chat-b", "chat-a")
        assert await row_status(client, session["id"]) == "pending"
        nowhere = await client.post(url, json={"space": None, "kind": "avatar"}, headers=bearer())
        assert (await nowhere.json())["field"] == "kind"
        right = {"space": None, "kind": "post", "collection": "chat-a"}
        made = await client.post(url, json=right, headers=bearer())
        assert made.status == 201, await made.text()
        again = await client.post(url, json={"collection": "chat-b"}, headers=bearer())
        assert again.status == 409

    async def test_an_idempotent_open_returns_the_same_session(self, client: Client) -> None:
        """The same Idempotency-Key and file: the same pending session, not a second."""
        headers = {**bearer(), "Idempotency-Key": "s-1"}
        body = {"kind": "post", "content_type": "image/jpeg", "size": len(PHOTO)}
        first = await client.post("/v1/uploads", json=body, headers=headers)
        second = await client.post("/v1/uploads", json=body, headers=headers)
        assert (first.status, second.status) == (201, 200)
        assert (await first.json())["id"] == (await second.json())["id"]


@parametrize_backends
class TestRefusals:
    async def test_complete_before_the_bytes_is_409_and_the_session_stays_open(
        self, client: Client
    ) -> None:
        """upload_missing keeps the session: send the bytes and complete again."""
        session = await opened(client)
        missing = await complete(client, session["id"])
        assert missing.status == 409
        assert (await missing.json())["code"] == "upload_missing"
        await send(client, session["upload"], PHOTO)
        assert (await complete(client, session["id"])).status == 201

    @through_pgbouncer
    async def test_after_expiry_complete_is_410_and_the_reaper_removes_everything(
        self, client: Client, settings: Settings
    ) -> None:
        """An expired session answers upload_expired; gc removes the row and raw object."""
        session = await opened(client)
        await send(client, session["upload"], PHOTO)
        await client.app[DB].execute(
            "UPDATE media SET expires_at = now() - interval '1 second' WHERE id = $1",
            session["id"],
        )
        expired = await complete(client, session["id"])
        assert expired.status == 410
        assert (await expired.json())["code"] == "upload_expired"
        report = await reap(client.app[DB], client.app[STORAGE], settings.spool_dir, grace_s=3600)
        assert report.rows_removed == 1
        await assert_nothing_left(client, settings)

    @pytest.mark.parametrize(
        ("data", "status", "code"),
        [
            (b"<html><script>alert(1)</script></html>" + b" " * 200, 415, "unsupported_media_type"),
            (PHOTO[: len(PHOTO) // 2], 422, "invalid_image"),
        ],
        ids=["html", "truncated"],
    )
    async def test_bad_bytes_get_the_form_answer_and_nothing_is_kept(
        self, client: Client, settings: Settings, data: bytes, status: int, code: str
    ) -> None:
        """What a form upload would answer; row, raw object and spool are all gone."""
        session = await opened(client, data)
        sent = await send(client, session["upload"], data)
        if settings.storage == "local" and status == 415:
            # Through the app, the bytes are sniffed as they arrive: refused at once.
            assert sent == 415
            await assert_nothing_left(client, settings)
            return
        response = await complete(client, session["id"])
        assert response.status == status, await response.text()
        assert (await response.json())["code"] == code
        await assert_nothing_left(client, settings)

    async def test_a_wrong_declared_sha256_is_checksum_mismatch(
        self, client: Client, settings: Settings
    ) -> None:
        """The bytes must be the ones declared; nothing is kept when they are not."""
        session = await opened(client, sha256="0" * 64)
        await send(client, session["upload"], PHOTO)
        response = await complete(client, session["id"])
        assert response.status == 422
        assert (await response.json())["code"] == "checksum_mismatch"
        await assert_nothing_left(client, settings)

    async def test_the_declared_type_and_size_are_checked_at_open(
        self, client: Client, settings: Settings
    ) -> None:
        """A type outside the kind is 415, a size over its cap 413, before any byte moves."""
        tiff = await open_session(client, content_type="image/tiff")
        assert tiff.status == 415
        huge = await open_session(client, size=settings.max_upload_bytes + 1)
        assert huge.status == 413
        assert (await huge.json())["limit"] == settings.max_upload_bytes
        await assert_nothing_left(client, settings)

    async def test_open_sessions_hold_collection_slots(self, client: Client) -> None:
        """Five open sessions fill a collection of five: the sixth is collection_full."""
        for _ in range(5):
            await opened(client, collection="profile")
        sixth = await open_session(client, collection="profile")
        assert sixth.status == 409
        assert (await sixth.json())["code"] == "collection_full"

    async def test_the_owner_may_cancel_a_session_and_free_its_slot(
        self, client: Client, settings: Settings
    ) -> None:
        """DELETE on a pending session removes it and its raw object; the slot is free."""
        for _ in range(5):
            session = await opened(client, collection="profile")
        await send(client, session["upload"], PHOTO)
        deleted = await client.delete(f"/v1/media/{session['id']}", headers=bearer())
        assert deleted.status == 204
        assert upload_key(session["id"]) not in await stored_keys(client)
        assert (await open_session(client, collection="profile")).status == 201

    async def test_someone_elses_session_is_404(self, client: Client) -> None:
        """Only the owner completes a session; others cannot tell it exists."""
        session = await opened(client)
        response = await client.post(
            f"/v1/uploads/{session['id']}/complete", headers=bearer("mallory")
        )
        assert response.status == 404

    @pytest.mark.parametrize(
        "body",
        [
            {"kind": "post", "size": 12},
            {"kind": "post", "content_type": "image/jpeg", "size": "12"},
            {"kind": "post", "content_type": "image/jpeg", "complete": "later"},
            {"kind": "post", "content_type": "image/jpeg", "size": True},
            {"kind": "post", "content_type": "image/jpeg", "size": 5, "sha256": "XYZ"},
            {"kind": "post", "content_type": "image/jpeg", "size": 5, "upload_method": "get"},
            {"kind": "post", "content_type": "image/jpeg", "size": 5, "extra": 1},
            {"kind": "nope", "content_type": "image/jpeg", "size": 5},
            {"kind": 3, "content_type": "image/jpeg", "size": 5},
        ],
    )
    async def test_malformed_session_requests_are_400(
        self, client: Client, body: dict[str, Any]
    ) -> None:
        """Every malformed member is a 400 naming it; no row is made."""
        response = await client.post("/v1/uploads", json=body, headers=bearer())
        assert response.status == 400
        assert (await response.json())["field"]
        assert await client.app[DB].fetchval("SELECT count(*) FROM media") == 0


@parametrize_backends
class TestReaper:
    async def test_raw_objects_whose_session_is_gone_are_removed(
        self, client: Client, settings: Settings
    ) -> None:
        """An `uploads/` object with no session row (a crash after its row went) is an
        orphan; a live session's object is not touched."""
        live = await opened(client)
        await send(client, live["upload"], PHOTO)
        gone = await opened(client)
        await send(client, gone["upload"], PHOTO)
        await client.app[DB].execute("DELETE FROM media WHERE id = $1", gone["id"])
        report = await reap(client.app[DB], client.app[STORAGE], settings.spool_dir, grace_s=0)
        assert report.orphans_removed == 1
        assert await stored_keys(client) == [upload_key(live["id"])]
        assert (await complete(client, live["id"])).status == 201


class TestLocalContentUrl:
    """On local disk (the default backend) the app receives the bytes itself."""

    async def test_the_signed_put_answers_an_etag_like_s3(self, client: Client) -> None:
        """204 with a quoted ETag (the stored bytes' sha256), which uploaders that speak
        S3 wait for."""
        session = await opened(client)
        response = await client.put(session["upload"]["url"], data=PHOTO)
        assert response.status == 204
        assert response.headers["ETag"] == f'"{hashlib.sha256(PHOTO).hexdigest()}"'

    async def test_a_wrong_or_missing_signature_is_403(self, client: Client) -> None:
        """The content URL is the credential: tampered or absent, it is refused."""
        session = await opened(client)
        url = session["upload"]["url"]
        path = url.split("?")[0]
        assert (await client.put(path, data=PHOTO)).status == 403
        tampered = url.replace("md5=", "md5=A")
        assert (await client.put(tampered, data=PHOTO)).status == 403

    async def test_an_expired_signature_is_410(self, client: Client, settings: Settings) -> None:
        """A URL past its time is gone, even with a good signature."""
        session = await opened(client)
        # The same path signed an hour ago for a minute: what a replayed old URL holds.
        old = sign_path(
            content_path(session["id"]), settings.url_signing_secret, 60, now=time.time() - 3600
        )
        assert (await client.put(old, data=PHOTO)).status == 410
        assert await stored_keys(client) == []

    async def test_more_bytes_than_declared_are_413_and_nothing_is_stored(
        self, client: Client, settings: Settings
    ) -> None:
        """The declared size caps the PUT as it streams."""
        session = await opened(client, size=len(PHOTO) - 1)
        response = await client.put(session["upload"]["url"], data=PHOTO)
        assert response.status == 413
        await assert_nothing_left(client, settings)


class TestOwnerSlotsAndLateBodies:
    """Sessions obey the in-flight cap per owner, and a late failing body never removes
    what another request finished."""

    @pytest.fixture
    def settings(self, make_settings: Any) -> Settings:
        """Two uploads in flight per owner, as in production; room in the queue."""
        result: Settings = make_settings(owner_max_inflight=2, queue_max=16)
        return result

    async def test_background_completes_hold_the_owners_slots(
        self, client: Client, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Two asynchronous completes held in processing fill alice's two slots: a third
        complete, a signed PUT and a form upload of hers get 429 and keep her session
        open; bob is not held up; once the two finish, her third completes."""
        entered: asyncio.Queue[None] = asyncio.Queue()
        go = asyncio.Event()
        real_run = Processor.run

        async def held_run(self: Processor, *args: Any) -> Any:
            entered.put_nowait(None)
            await go.wait()
            return await real_run(self, *args)

        sessions = [await opened(client) for _ in range(4)]
        for session in sessions[:3]:
            assert await send(client, session["upload"], PHOTO) == 204
        monkeypatch.setattr(Processor, "run", held_run)
        for session in sessions[:2]:
            response = await complete(client, session["id"], Prefer="respond-async")
            assert response.status == 202
        for _ in range(2):
            await asyncio.wait_for(entered.get(), DEADLINE_S)
        third = await complete(client, sessions[2]["id"])
        assert third.status == 429
        assert third.headers["Retry-After"]
        assert (await third.json())["code"] == "too_many_requests"
        put = await client.put(sessions[3]["upload"]["url"], data=PHOTO)
        assert put.status == 429
        form = await post_media(client, PHOTO, filename="p.jpg")
        assert form.status == 429
        assert await row_status(client, sessions[2]["id"]) == "pending"
        assert await row_status(client, sessions[3]["id"]) == "pending"
        go.set()
        other = await post_media(client, PHOTO, "bob", filename="p.jpg")
        assert other.status == 201
        await client.app[SESSIONS].close()  # the two background completes have finished
        assert (await complete(client, sessions[2]["id"])).status == 201

    async def test_a_late_failing_put_leaves_the_media_another_put_completed(
        self, client: Client, settings: Settings
    ) -> None:
        """A PUT that started first and fails after a second PUT and `complete` made the
        media ready (413: more bytes than declared) leaves that media and its files."""
        session = await opened(client)
        resume = asyncio.Event()

        async def slow_body() -> Any:
            yield PHOTO[:4096]  # a JPEG's first bytes: the sniff lets it through
            await resume.wait()
            yield PHOTO[4096:] + b"one byte too many"

        late = asyncio.ensure_future(client.put(session["upload"]["url"], data=slow_body()))
        uploads = client.app[UPLOADS]
        await wait_until(lambda: uploads.inflight["alice"] == 1, "the first PUT is streaming")
        assert await send(client, session["upload"], PHOTO) == 204
        made = await complete(client, session["id"])
        assert made.status == 201
        resume.set()
        assert (await late).status == 413
        media = await client.get(f"/v1/media/{session['id']}", headers=bearer())
        assert media.status == 200
        assert (await media.json())["status"] == "ready"
        keys = await stored_keys(client)
        assert len(keys) == 5
        assert all(session["id"] in key for key in keys)

    async def test_a_form_uploads_idempotency_key_cannot_open_a_session(
        self, client: Client
    ) -> None:
        """An Idempotency-Key used for a form upload, sent again to open a session: 422
        idempotency_key_reused, not a 500."""
        headers = {**bearer(), "Idempotency-Key": "form-then-session"}
        form = await client.post(
            "/v1/media", data=upload_form(PHOTO, filename="p.jpg"), headers=headers
        )
        assert form.status == 201
        body = {"kind": "post", "content_type": "image/jpeg", "size": len(PHOTO)}
        response = await client.post("/v1/uploads", json=body, headers=headers)
        assert response.status == 422
        assert (await response.json())["code"] == "idempotency_key_reused"


async def media_of(client: Client, media_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/media/{media_id}", headers=bearer())
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


@parametrize_backends
class TestSizeLater:
    """Clients that do not know the size before reading the file may leave it out."""

    @pytest.fixture
    def settings(self, make_settings: Any) -> Settings:
        result: Settings = make_settings(owner_max_bytes=30 * 2**20)
        return result

    async def test_a_session_without_size_holds_the_kinds_maximum_until_complete(
        self, client: Client, settings: Settings, backend: str
    ) -> None:
        """The row holds the kind's max_bytes against the byte quota while pending; after
        complete it holds the real size, and the media is the same as with a size."""
        session = await opened(client, size=None)
        held = await client.app[DB].fetchval(
            "SELECT original_bytes FROM media WHERE id = $1", session["id"]
        )
        assert held == client.app[KINDS]["post"].max_bytes
        if backend == "s3":
            policy_fields = session["upload"]["fields"]
            assert "policy" in policy_fields
        # A second size-less session would hold 2 x 25 MiB: over the 30 MiB quota.
        refused = await open_session(client, size=None)
        assert refused.status == 409, await refused.text()
        assert (await refused.json())["code"] == "quota_exceeded"
        assert await send(client, session["upload"], PHOTO) in (200, 204)
        response = await complete(client, session["id"])
        assert response.status == 201, await response.text()
        media = await response.json()
        assert media["original"]["bytes"] == len(PHOTO)
        assert media["original"]["sha256"] == hashlib.sha256(PHOTO).hexdigest()
        assert (await open_session(client, size=None)).status == 201

    async def test_a_presigned_put_needs_the_size_on_s3(self, client: Client, backend: str) -> None:
        """S3 caps a presigned PUT only at a signed exact length: without one, 400 naming
        `size` and no row. Local disk caps the PUT itself, so it needs none."""
        response = await open_session(client, size=None, upload_method="put")
        if backend == "local":
            session = await response.json()
            assert response.status == 201, session
            assert await send(client, session["upload"], PHOTO) == 204
            assert (await complete(client, session["id"])).status == 201
            return
        assert response.status == 400
        assert (await response.json())["field"] == "size"
        assert await client.app[DB].fetchval("SELECT count(*) FROM media") == 0


@parametrize_backends
class TestPlannedUrls:
    async def test_the_session_names_the_media_and_its_future_variant_urls(
        self, client: Client
    ) -> None:
        """`media_url` is the Location; the public variants' URLs, known at open, are the
        ones the ready media has."""
        response = await open_session(client)
        session = await response.json()
        assert session["media_url"] == response.headers["Location"]
        assert session["media_url"] == f"/v1/media/{session['id']}"
        planned = session["variant_urls"]
        assert set(planned) == {"thumbnail", "small", "medium", "large", "full"}
        await send(client, session["upload"], PHOTO)
        media = await (await complete(client, session["id"])).json()
        assert planned == {name: v["url"] for name, v in media["variants"].items()}

    async def test_a_private_session_plans_no_urls(self, client: Client) -> None:
        """Private variants' URLs are signed when read: none are promised at open."""
        session = await opened(client, visibility="private")
        assert session["variant_urls"] is None


@parametrize_backends
class TestAutoComplete:
    """`"complete": "auto"`: the session completes once its bytes are stored."""

    @pytest.fixture
    def settings(self, make_settings: Any) -> Settings:
        """The completer's timer out of the way: each test runs its rounds itself."""
        result: Settings = make_settings(auto_complete_interval_s=3600.0)
        return result

    async def _finished(self, client: Client, media_id: str, backend: str) -> None:
        """The object stored: on local disk the PUT completed it; on S3 a completer round
        finds it. Then the background processing ends."""
        if backend == "s3":
            assert await client.app[SESSIONS].complete_due() == 1
        await asyncio.wait_for(asyncio.gather(*client.app[SESSIONS].running), DEADLINE_S)

    async def test_the_media_becomes_ready_without_a_complete_call(
        self, client: Client, backend: str
    ) -> None:
        session = await opened(client, complete="auto")
        assert session["complete"] == "auto"
        assert await row_status(client, session["id"]) == "pending"
        assert await send(client, session["upload"], PHOTO) in (200, 204)
        await self._finished(client, session["id"], backend)
        media = await media_of(client, session["id"])
        assert media["status"] == "ready"
        assert set(media["variants"]) == set(session["variant_urls"])
        assert upload_key(session["id"]) not in await stored_keys(client)
        # complete_url still answers, with what became of it.
        again = await complete(client, session["id"])
        assert again.status == 200
        assert (await again.json())["status"] == "ready"

    async def test_refused_bytes_are_kept_as_failed_with_their_problem(
        self, client: Client, settings: Settings, backend: str
    ) -> None:
        """Nobody may be waiting for the answer: the row stays `failed` with the problem
        (as an asynchronous completion's), the raw object goes, and the reaper ends it."""
        data = b"not an image at all" * 50
        session = await opened(client, data, complete="auto")
        sent = await send(client, session["upload"], data)
        if backend == "local":
            assert sent == 415  # the PUT itself sniffs the bytes, and answers
        else:
            await self._finished(client, session["id"], backend)
        failed = await media_of(client, session["id"])
        assert failed["status"] == "failed"
        assert failed["problem"]["code"] == "unsupported_media_type"
        assert await stored_keys(client) == []
        await reap(client.app[DB], client.app[STORAGE], settings.spool_dir, grace_s=0)
        await assert_nothing_left(client, settings)

    async def test_looks_for_a_missing_object_back_off(self, client: Client) -> None:
        """A session whose bytes have not come is looked at again later, each time later
        (1, 2, 4 ... up to 30 s), and not by two nodes at once."""
        session = await opened(client, complete="auto")
        sessions = client.app[SESSIONS]
        delays = []
        for _ in range(3):
            # Make the next look due now, and see how far the round pushes it back.
            await client.app[DB].execute(
                "UPDATE media SET auto_check_at = now() WHERE id = $1", session["id"]
            )
            assert await sessions.complete_due() == 1
            assert await sessions.complete_due() == 0  # claimed: not due again yet
            delays.append(
                await client.app[DB].fetchval(
                    "SELECT extract(epoch FROM auto_check_at - now()) FROM media WHERE id = $1",
                    session["id"],
                )
            )
        assert [round(float(d)) for d in delays] == [1, 2, 4]
        assert await row_status(client, session["id"]) == "pending"
        explicit = await opened(client)
        await client.app[DB].execute("UPDATE media SET auto_check_at = now()")
        assert await sessions.complete_due() == 1  # the explicit session is never looked at
        assert explicit["complete"] == "explicit"


class TestAutoCompleteTimer:
    @pytest.fixture
    def settings(self, make_settings: Any) -> Settings:
        result: Settings = make_settings(auto_complete_interval_s=0.05)
        return result

    @through_pgbouncer
    @pytest.mark.parametrize("backend", ["s3"], indirect=True)
    async def test_every_node_completes_due_sessions_by_itself(self, client: Client) -> None:
        """The app's own completer finds the object a client POSTed to the bucket."""
        session = await opened(client, complete="auto")
        assert await send(client, session["upload"], PHOTO) == 204

        async def ready() -> bool:
            return await row_status(client, session["id"]) == "ready"

        await wait_until(ready, "the completer made the media")
