"""Moderation (issue 30): a real moderator on loopback that allows, denies, defers, times
out and fails, for form uploads (through nginx) and upload sessions on both backends;
quarantined media seen by their owner and admins only; admins' decisions and their events.

The moderator verifies every request with the `standardwebhooks` package and, like a real
one, fetches the variant it is sent through nginx while it decides.
"""

from __future__ import annotations

import asyncio
import base64
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import images
import pytest
from aiohttp import web
from gates import DEADLINE_S, wait_listening
from standardwebhooks import Webhook
from support import (
    JWT_SECRET,
    Client,
    assert_nothing_left,
    bearer,
    parametrize_backends,
    post_media,
    readme_program,
    send_direct,
    serving,
    stored_keys,
    upload_form,
)
from webhooks import FAST, Receiver, receiving

from mediasvc.app import create_app
from mediasvc.appkeys import DB, SESSIONS, STORAGE
from mediasvc.auth import mint_token
from mediasvc.config import ConfigError, Settings
from mediasvc.flows.reaper import reap
from mediasvc.stack.localproc import free_port

KEY = bytes(range(100, 132))
SECRET = "whsec_" + base64.b64encode(KEY).decode()
PHOTO = images.make_jpeg(width=800, height=600)
SPACE = "conversation:8f2c"
KINDS = {
    "kinds": {
        "chat": {"moderation": "hook"},
        "lenient": {"moderation": "hook", "moderation_fail": "open"},
        "queue": {"moderation": "review"},
    }
}


@dataclass
class Moderator:
    """The hook: answers `answer` (a decision, or `hang`, `500`, `garbage`), after fetching
    the variant it was sent through nginx at `fetch_base` when that is set."""

    url: str = ""
    answer: str = "allow"
    reason: str | None = None
    fetch_base: str | None = None
    asked: list[dict[str, Any]] = field(default_factory=list)
    # What the fetch of each request's variant answered: status and Content-Type.
    fetched: list[tuple[int, str]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.asked.append(Webhook(SECRET).verify(body, dict(request.headers)))
        if self.fetch_base is not None:
            url = self.fetch_base + self.asked[-1]["url"]
            async with aiohttp.ClientSession() as http, http.get(url) as response:
                await response.read()
                self.fetched.append((response.status, response.content_type))
        if self.answer == "hang":
            await asyncio.Event().wait()  # until the service gives up and disconnects
        if self.answer == "500":
            return web.Response(status=500, text="moderator down")
        if self.answer == "garbage":
            return web.Response(text="<html>looks fine</html>", content_type="text/html")
        return web.json_response({"decision": self.answer, "reason": self.reason})


@pytest.fixture
async def moderator() -> AsyncIterator[Moderator]:
    async with serving(Moderator()) as hook:
        yield hook


@pytest.fixture
async def events() -> AsyncIterator[Receiver]:
    async with receiving() as receiver:
        yield receiver


@pytest.fixture
def settings(make_settings: Any, moderator: Moderator, events: Receiver) -> Settings:
    """The moderated kinds, the hook (1 s to answer), and webhooks to `events`."""
    result: Settings = make_settings(
        kinds_table=KINDS,
        moderation_url=moderator.url,
        moderation_secret=KEY,
        moderation_timeout_s=1.0,
        webhook_urls=(events.url,),
        auto_complete_interval_s=3600.0,
        **FAST,
    )
    return result


def member(sub: str, *spaces: str, admin: bool = False) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(JWT_SECRET, sub, spaces=spaces, admin=admin)}"}


async def upload(
    http: aiohttp.ClientSession, nginx: str, kind: str, **fields: str
) -> tuple[int, dict[str, Any]]:
    """A form upload of PHOTO through nginx as alice (a member of SPACE)."""
    async with http.post(
        nginx + "/v1/media",
        data=upload_form(PHOTO, kind=kind, **fields),
        headers=member("alice", SPACE),
    ) as response:
        return response.status, await response.json(content_type=None)


async def status_of(http: aiohttp.ClientSession, url: str, **headers: str) -> int:
    async with http.get(url, headers=headers, allow_redirects=False) as response:
        await response.read()
        return response.status


@parametrize_backends
class TestHook:
    async def test_allow_shows_the_media_and_the_hook_saw_one_signed_variant(
        self, client: Client, nginx: str, http: aiohttp.ClientSession, moderator: Moderator
    ) -> None:
        """The hook gets the media's facts and a signed URL nginx serves (the original
        never), before the media is shown; `allow` makes it ready at its plain URLs, and
        the copy made for the hook is gone."""
        moderator.fetch_base = nginx
        status, media = await upload(http, nginx, "chat")
        assert status == 201, media
        assert media["status"] == "ready"
        [asked] = moderator.asked
        assert asked == {
            "id": media["id"],
            "owner": "alice",
            "space": None,
            "kind": "chat",
            "sha256": media["original"]["sha256"],
            "pdq": None,
            "url": asked["url"],
        }
        assert asked["url"].startswith(f"/private/{media['id'][:2]}/{media['id']}/full.webp?")
        assert moderator.fetched == [(200, "image/webp")]
        for variant in media["variants"].values():
            assert await status_of(http, nginx + variant["url"]) == 200
        assert not [key for key in await stored_keys(client) if key.startswith("private/")]

    async def test_deny_is_content_rejected_with_the_reason_and_nothing_is_kept(
        self,
        client: Client,
        nginx: str,
        http: aiohttp.ClientSession,
        moderator: Moderator,
        settings: Settings,
    ) -> None:
        """422 `content_rejected` carrying the moderator's reason; no row, file or spool."""
        moderator.answer, moderator.reason = "deny", "nudity"
        status, problem = await upload(http, nginx, "chat")
        assert status == 422
        assert (problem["code"], problem["reason"]) == ("content_rejected", "nudity")
        await assert_nothing_left(client, settings)

    @pytest.mark.parametrize("failure", ["hang", "500", "garbage"])
    @pytest.mark.parametrize(("kind", "outcome"), [("chat", "quarantined"), ("lenient", "ready")])
    async def test_a_failing_hook_follows_moderation_fail(
        self,
        client: Client,
        nginx: str,
        http: aiohttp.ClientSession,
        moderator: Moderator,
        failure: str,
        kind: str,
        outcome: str,
    ) -> None:
        """A timeout, a 500 or an answer that is no decision is never a 5xx: `closed`
        quarantines the upload, `open` shows it; the latency is counted by outcome."""
        moderator.answer = failure
        status, media = await upload(http, nginx, kind)
        assert status == 201, media
        assert media["status"] == outcome
        metrics = await (await client.get("/metrics")).text()
        label = {"hang": "timeout", "500": "error", "garbage": "invalid"}[failure]
        assert f'mediasvc_moderation_hook_duration_seconds_count{{outcome="{label}"}} 1.0' in (
            metrics
        )


@parametrize_backends
class TestQuarantine:
    async def test_only_the_owner_and_admins_see_a_quarantined_media(
        self, client: Client, nginx: str, http: aiohttp.ClientSession, moderator: Moderator
    ) -> None:
        """`review`: not in the space's listing, 404 to a member and to anonymous readers
        (JSON, variant redirect, every file URL through nginx); the owner and admins get it
        with signed URLs that nginx serves."""
        moderator.answer = "review"
        status, shared = await upload(http, nginx, "chat", space=SPACE)
        assert (status, shared["status"]) == (201, "quarantined")
        status, public = await upload(http, nginx, "chat")
        assert (status, public["status"]) == (201, "quarantined")
        bob = member("bob", SPACE)
        for media in (shared, public):
            item = f"{nginx}/v1/media/{media['id']}"
            assert await status_of(http, item, **bob) == 404
            assert await status_of(http, item) == 404
            assert await status_of(http, f"{item}/full", **bob) == 404
            assert await status_of(http, f"{item}/full") == 404
            for variant in media["variants"].values():
                assert variant["url"].startswith("/private/")
                unsigned = variant["url"].split("?")[0]
                assert await status_of(http, nginx + unsigned) == 403
                assert (
                    await status_of(http, nginx + unsigned.replace("/private/", "/media/")) == 404
                )
            for reader in (member("alice"), member("root", admin=True)):
                async with http.get(item, headers=reader) as response:
                    seen = await response.json()
                assert seen["status"] == "quarantined"
                assert await status_of(http, nginx + seen["variants"]["small"]["url"]) == 200
        async with http.get(f"{nginx}/v1/media?space={SPACE}", headers=bob) as response:
            assert (await response.json())["items"] == []
        async with http.get(f"{nginx}/v1/media", headers=member("alice")) as response:
            listed = {item["id"] for item in (await response.json())["items"]}
        assert listed == {shared["id"], public["id"]}

    async def test_admins_list_the_queue_and_allow_or_deny(
        self,
        client: Client,
        nginx: str,
        http: aiohttp.ClientSession,
        events: Receiver,
        settings: Settings,
    ) -> None:
        """A review kind asks no hook; the queue lists its uploads for admins only (paged);
        `allow` makes one ready at its public URLs with `media.ready`, `deny` deletes the
        other with `media.deleted`, and only the allowed media's files remain."""
        first = (await upload(http, nginx, "queue"))[1]
        second = (await upload(http, nginx, "queue"))[1]
        assert first["status"] == second["status"] == "quarantined"
        admin = member("root", admin=True)
        queue = f"{nginx}/v1/moderation?status=quarantined&limit=1"
        assert await status_of(http, queue, **member("alice")) == 403
        async with http.get(queue, headers=admin) as response:
            page = await response.json()
        assert [item["id"] for item in page["items"]] == [first["id"]]
        async with http.get(f"{queue}&cursor={page['next_cursor']}", headers=admin) as response:
            assert [item["id"] for item in (await response.json())["items"]] == [second["id"]]

        decide = f"{nginx}/v1/media/{first['id']}/moderation"
        refused = await http.post(decide, json={"decision": "allow"}, headers=member("alice"))
        assert refused.status == 403
        async with http.post(decide, json={"decision": "allow"}, headers=admin) as response:
            assert response.status == 200
            allowed = await response.json()
        assert allowed["status"] == "ready"
        for variant in allowed["variants"].values():
            assert variant["url"].startswith("/media/")
            assert await status_of(http, nginx + variant["url"]) == 200
        assert (await events.accepted_of(first["id"]))[0].type == "media.ready"
        async with http.post(decide, json={"decision": "deny"}, headers=admin) as response:
            assert response.status == 409  # decided already

        deny = f"{nginx}/v1/media/{second['id']}/moderation"
        async with http.post(deny, json={"decision": "deny"}, headers=admin) as response:
            assert response.status == 204
        assert (await events.accepted_of(second["id"]))[0].type == "media.deleted"
        assert await status_of(http, f"{nginx}/v1/media/{second['id']}", **admin) == 404
        keys = await stored_keys(client)
        assert keys
        assert all(key.startswith(f"{first['id'][:2]}/{first['id']}/") for key in keys)


async def open_session(client: Client, kind: str, **extra: Any) -> dict[str, Any]:
    body = {"kind": kind, "content_type": "image/jpeg", "size": len(PHOTO), **extra}
    response = await client.post("/v1/uploads", json=body, headers=bearer())
    assert response.status == 201, await response.text()
    session: dict[str, Any] = await response.json()
    return session


@parametrize_backends
class TestSessions:
    async def test_a_denied_session_complete_is_422_and_nothing_is_kept(
        self, client: Client, moderator: Moderator, settings: Settings
    ) -> None:
        """A synchronous complete answers as a form upload does."""
        moderator.answer = "deny"
        session = await open_session(client, "chat")
        assert await send_direct(client, session["upload"], PHOTO) in (200, 204)
        response = await client.post(session["complete_url"], headers=bearer())
        assert response.status == 422
        assert (await response.json())["code"] == "content_rejected"
        await assert_nothing_left(client, settings)

    @pytest.mark.parametrize("answer", ["allow", "review"])
    async def test_a_session_complete_follows_the_hook(
        self, client: Client, moderator: Moderator, answer: str
    ) -> None:
        response_status = {"allow": "ready", "review": "quarantined"}[answer]
        moderator.answer = answer
        session = await open_session(client, "chat")
        assert await send_direct(client, session["upload"], PHOTO) in (200, 204)
        response = await client.post(session["complete_url"], headers=bearer())
        assert response.status == 201
        assert (await response.json())["status"] == response_status
        again = await client.post(session["complete_url"], headers=bearer())
        assert (again.status, (await again.json())["status"]) == (200, response_status)

    async def test_a_denied_auto_complete_is_an_upload_failed_event(
        self,
        client: Client,
        moderator: Moderator,
        events: Receiver,
        settings: Settings,
        backend: str,
    ) -> None:
        """Nobody waits for an auto-completing session: `upload.failed` carries
        `content_rejected`, the files are gone at once and the row after the reaper."""
        moderator.answer, moderator.reason = "deny", "spam"
        session = await open_session(client, "chat", complete="auto")
        assert await send_direct(client, session["upload"], PHOTO) in (200, 204)
        if backend == "s3":
            assert await client.app[SESSIONS].complete_due() == 1
        await asyncio.wait_for(asyncio.gather(*client.app[SESSIONS].running), DEADLINE_S)
        [failed] = await events.accepted_of(session["id"])
        assert failed.type == "upload.failed"
        assert failed.payload is not None
        problem = failed.payload["data"]["problem"]
        assert (problem["code"], problem["reason"]) == ("content_rejected", "spam")
        assert await stored_keys(client) == []
        await reap(client.app[DB], client.app[STORAGE], settings.spool_dir, grace_s=0)
        await assert_nothing_left(client, settings)


class TestContract:
    async def test_limits_describe_each_kinds_moderation(self, client: Client) -> None:
        kinds = (await (await client.get("/v1/limits")).json())["kinds"]
        described = {name: (k["moderation"], k["moderation_fail"]) for name, k in kinds.items()}
        assert described == {
            "post": (None, "closed"),
            "avatar": (None, "closed"),
            "chat": ("hook", "closed"),
            "lenient": ("hook", "open"),
            "queue": ("review", "closed"),
        }

    def test_a_hook_kind_without_a_url_stops_startup(self, settings: Settings) -> None:
        """One line naming the kind and the missing setting."""
        unset = replace(settings, moderation_url=None, moderation_secret=None)
        with pytest.raises(ConfigError) as raised:
            create_app(unset)
        assert str(raised.value) == (
            'MEDIASVC_KINDS_FILE: kinds.chat.moderation: "hook" needs MEDIASVC_MODERATION_URL '
            "(and MEDIASVC_MODERATION_SECRET)"
        )


def doc_program() -> str:
    """The Python moderator of the README's Moderation section."""
    return readme_program("python", "async def moderate(")


class TestDocumentedReceiver:
    @pytest.fixture
    async def receiver(self, tmp_path: Path) -> AsyncIterator[int]:
        """The documented receiver, on a free port with the test's secret."""
        source = tmp_path / "moderator.py"
        source.write_text(doc_program())
        port = free_port()
        env = {"MEDIASVC_MODERATION_SECRET": SECRET, "PORT": str(port), "PATH": "/usr/bin:/bin"}
        process = await asyncio.create_subprocess_exec(sys.executable, str(source), env=env)
        try:
            await wait_listening(port, "the documented receiver listens")
            yield port
        finally:
            process.kill()
            await process.wait()

    @pytest.fixture
    def settings(self, make_settings: Any, receiver: int) -> Settings:
        result: Settings = make_settings(
            kinds_table=KINDS,
            moderation_url=f"http://127.0.0.1:{receiver}/moderate",
            moderation_secret=KEY,
        )
        return result

    @pytest.mark.parametrize(
        ("owner", "status", "outcome"),
        [
            ("alice", 201, "ready"),
            ("mallory", 422, "content_rejected"),
            ("carol", 201, "quarantined"),
        ],
    )
    async def test_it_approves_rejects_and_defers(
        self, client: Client, owner: str, status: int, outcome: str
    ) -> None:
        """The documented receiver allows a trusted owner's upload, denies a suspended
        one's with its reason, and sends anyone else's to the review queue."""
        response = await post_media(client, PHOTO, owner, kind="chat")
        body = await response.json()
        assert response.status == status, body
        if status == 422:
            assert (body["code"], body["reason"]) == (outcome, "account suspended")
        else:
            assert body["status"] == outcome
