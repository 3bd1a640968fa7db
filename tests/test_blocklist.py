"""The blocklist and takedowns (issue 30): admins block files (sha256) and pictures (PDQ);
every upload path refuses a match with `422 content_blocked` before anything is stored or
shown; a takedown removes a media and its copies across owners, with events, and keeps
them from coming back."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import images
import pytest
from aiohttp import web
from gates import wait_until
from support import (
    JWT_SECRET,
    Client,
    assert_nothing_left,
    bearer,
    parametrize_backends,
    post_media,
    send_direct,
    stored_keys,
    upload_form,
    webhook_receiver,
)

from mediasvc.app import create_app
from mediasvc.appkeys import DB
from mediasvc.auth import mint_token
from mediasvc.config import Settings
from mediasvc.contract import shapes

ROOT = Path(__file__).resolve().parents[1]
ADMIN = bearer("root", admin=True)
PHOTO = images.make_scene_jpeg(seed=1)
SHA256 = hashlib.sha256(PHOTO).hexdigest()
# The same picture, not the same file: re-encoded, and resized to 95% and re-encoded.
REENCODED = images.make_scene_jpeg(seed=1, quality=55)
RESIZED = images.make_scene_jpeg(seed=1, scale=0.95, quality=80)
# Another picture of the same size.
UNRELATED = images.make_scene_jpeg(seed=2)


async def uploaded(client: Client, data: bytes, sub: str = "alice", **fields: str) -> Any:
    response = await post_media(client, data, sub, **fields)
    assert response.status == 201, await response.text()
    return await response.json()


async def block(client: Client, **body: Any) -> Any:
    response = await client.post("/v1/blocklist", json={"reason": "test", **body}, headers=ADMIN)
    assert response.status == 201, await response.text()
    return await response.json()


async def assert_blocked(response: Any) -> None:
    assert response.status == 422, await response.text()
    problem = await response.json()
    assert problem["code"] == "content_blocked"
    # Which entry matched is not said: no hash, id or reason in the problem.
    assert set(problem) == {"type", "title", "status", "detail", "code"}


async def media_count(client: Client) -> int:
    count: int = await client.app[DB].fetchval("SELECT count(*) FROM media")
    return count


# --------------------------------------------------------------------------
# The hash shown to owners and admins
# --------------------------------------------------------------------------


async def test_owners_and_admins_see_the_pdq_hash_others_do_not(client: Client) -> None:
    """The upload's answer, its owner's and an admin's reads carry `pdq`; an anonymous
    reader of the public media gets none."""
    media = await uploaded(client, PHOTO)
    assert len(media["pdq"]["hash"]) == 64
    assert media["pdq"]["quality"] >= 50

    for headers in (bearer("alice"), ADMIN):
        read = await (await client.get(f"/v1/media/{media['id']}", headers=headers)).json()
        assert read["pdq"] == media["pdq"]
    anonymous = await (await client.get(f"/v1/media/{media['id']}")).json()
    assert "pdq" not in anonymous
    stranger = await (await client.get(f"/v1/media/{media['id']}", headers=bearer("bob"))).json()
    assert "pdq" not in stranger


# --------------------------------------------------------------------------
# The blocklist API
# --------------------------------------------------------------------------


async def test_only_admins_may_read_or_change_the_blocklist(client: Client) -> None:
    """Every blocklist operation is 401 without a token and 403 for a non-admin."""
    body = {"sha256": SHA256, "reason": "x"}
    for headers, status in (({}, 401), (bearer("alice"), 403)):
        assert (await client.post("/v1/blocklist", json=body, headers=headers)).status == status
        assert (await client.get("/v1/blocklist", headers=headers)).status == status
        assert (await client.delete("/v1/blocklist/1", headers=headers)).status == status
        takedown = await client.post(
            "/v1/media/k3Jx9QmT2vLr8WcA5nYpZb/takedown", json={"reason": "x"}, headers=headers
        )
        assert takedown.status == status
    assert await client.app[DB].fetchval("SELECT count(*) FROM blocklist") == 0


async def test_admins_add_list_and_remove_entries(client: Client) -> None:
    """201 with the entry (and its Location), 200 with the same entry when the hash is
    blocked already, listed oldest first a page at a time, 204 on removal then 404."""
    pdq = "f" * 64
    first = await block(client, sha256=SHA256, reason="report 1")
    assert first["sha256"] == SHA256
    assert first["pdq"] is None
    assert first["reason"] == "report 1"
    assert first["created_by"] == "root"
    again = await client.post(
        "/v1/blocklist", json={"sha256": SHA256, "reason": "report 2"}, headers=ADMIN
    )
    assert again.status == 200
    assert (await again.json())["id"] == first["id"]
    assert again.headers["Location"] == f"/v1/blocklist/{first['id']}"
    second = await block(client, pdq=pdq)

    page = await (await client.get("/v1/blocklist?limit=1", headers=ADMIN)).json()
    assert [item["id"] for item in page["items"]] == [first["id"]]
    rest = await client.get(f"/v1/blocklist?limit=1&cursor={page['next_cursor']}", headers=ADMIN)
    assert [item["pdq"] for item in (await rest.json())["items"]] == [pdq]

    assert (await client.delete(f"/v1/blocklist/{second['id']}", headers=ADMIN)).status == 204
    assert (await client.delete(f"/v1/blocklist/{second['id']}", headers=ADMIN)).status == 404
    assert (await client.delete("/v1/blocklist/not-a-number", headers=ADMIN)).status == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"reason": "x"}, "sha256"),  # neither hash
        ({"sha256": "a" * 64, "pdq": "b" * 64, "reason": "x"}, "sha256"),  # both
        ({"sha256": "A" * 64, "reason": "x"}, "sha256"),  # not lowercase hex
        ({"pdq": "b" * 63, "reason": "x"}, "pdq"),
        ({"sha256": "a" * 64}, "reason"),
        ({"sha256": "a" * 64, "reason": ""}, "reason"),
        ({"sha256": "a" * 64, "reason": "x", "owner": "bob"}, "owner"),
    ],
)
async def test_a_bad_entry_is_refused_naming_its_member(
    client: Client, body: dict[str, Any], field: str
) -> None:
    """One of sha256 or pdq, 64 lowercase hex digits, and a reason: else 400 naming it."""
    response = await client.post("/v1/blocklist", json=body, headers=ADMIN)

    assert response.status == 400
    assert (await response.json())["field"] == field


# --------------------------------------------------------------------------
# Uploads refused, nothing left
# --------------------------------------------------------------------------


async def test_a_blocked_file_is_refused_and_nothing_is_left(
    client: Client, settings: Settings
) -> None:
    """A form upload of a blocked sha256 is 422 content_blocked: no row, object or spool."""
    await block(client, sha256=SHA256)

    await assert_blocked(await post_media(client, PHOTO))
    await assert_nothing_left(client, settings)


async def test_near_copies_of_a_blocked_picture_are_refused_others_are_not(
    client: Client, settings: Settings
) -> None:
    """A PDQ entry refuses the picture re-encoded and resized, not another of its size."""
    media = await uploaded(client, PHOTO)
    await block(client, pdq=media["pdq"]["hash"])
    before = await stored_keys(client)

    for copy in (PHOTO, REENCODED, RESIZED):
        await assert_blocked(await post_media(client, copy, "bob"))
    assert await media_count(client) == 1
    assert await stored_keys(client) == before
    assert list(settings.spool_dir.iterdir()) == []
    await uploaded(client, UNRELATED, "bob")


async def test_a_flat_picture_is_matched_by_its_file_only(client: Client) -> None:
    """A picture too flat for PDQ (quality under 50) is not refused by a PDQ entry, whatever
    its hash: flat pictures look alike to PDQ."""
    flat = images.make_jpeg()
    media = await uploaded(client, flat)
    assert media["pdq"]["quality"] < 50
    await block(client, pdq=media["pdq"]["hash"])

    await uploaded(client, flat, "bob")


async def test_the_distance_is_a_setting(make_settings: Any, aiohttp_client: Any) -> None:
    """With MEDIASVC_BLOCKLIST_PDQ_DISTANCE=0 only the identical picture is refused."""
    client = await aiohttp_client(create_app(make_settings(blocklist_pdq_distance=0)))
    media = await uploaded(client, RESIZED)
    await block(client, pdq=media["pdq"]["hash"])

    await uploaded(client, PHOTO, "bob")
    await assert_blocked(await post_media(client, RESIZED, "bob"))


async def test_a_blocked_upload_through_nginx_is_a_problem(
    client: Client, nginx: str, http: aiohttp.ClientSession
) -> None:
    """Through nginx the refusal arrives as the app's problem document."""
    await block(client, sha256=SHA256)
    async with http.post(
        f"{nginx}/v1/media", data=upload_form(PHOTO), headers=bearer()
    ) as response:
        await assert_blocked(response)


@parametrize_backends
class TestSessions:
    """Upload sessions on both backends are checked as form uploads are."""

    async def open_and_send(self, client: Client, **body: Any) -> str:
        opened = await client.post(
            "/v1/uploads",
            json={"content_type": "image/jpeg", "size": len(PHOTO), **body},
            headers=bearer(),
        )
        assert opened.status == 201, await opened.text()
        session = await opened.json()
        assert await send_direct(client, session["upload"], PHOTO) in (200, 204)
        media_id: str = session["id"]
        return media_id

    async def assert_ends_failed_as_blocked(self, client: Client, media_id: str, what: str) -> None:
        """Wait (for `what`) until the media is `failed`; its problem is content_blocked."""

        async def failed() -> bool:
            read = await client.get(f"/v1/media/{media_id}", headers=bearer())
            return bool((await read.json())["status"] == "failed")

        await wait_until(failed, what)
        read = await (await client.get(f"/v1/media/{media_id}", headers=bearer())).json()
        assert read["problem"]["code"] == "content_blocked"

    async def test_a_blocked_session_complete_is_refused_and_leaves_nothing(
        self, client: Client, settings: Settings
    ) -> None:
        """`complete` of blocked bytes is 422 content_blocked; the session is gone, with its
        raw object and every variant."""
        await block(client, sha256=SHA256)
        media_id = await self.open_and_send(client)

        await assert_blocked(
            await client.post(f"/v1/uploads/{media_id}/complete", headers=bearer())
        )
        await assert_nothing_left(client, settings)

    async def test_an_asynchronous_complete_keeps_the_refusal(self, client: Client) -> None:
        """With `respond-async` the media becomes `failed` with the content_blocked problem,
        and no object is kept."""
        media = await uploaded(client, PHOTO, "bob")
        await block(client, pdq=media["pdq"]["hash"])
        before = await stored_keys(client)
        media_id = await self.open_and_send(client)

        answer = await client.post(
            f"/v1/uploads/{media_id}/complete",
            headers={**bearer(), "Prefer": "respond-async"},
        )
        assert answer.status == 202
        await self.assert_ends_failed_as_blocked(client, media_id, "the completion to fail")
        assert await stored_keys(client) == before

    async def test_an_auto_complete_session_keeps_the_refusal(
        self, client: Client, settings: Settings
    ) -> None:
        """A session that completes by itself (locally at the PUT's end, on S3 when a node
        finds the object) ends `failed` with content_blocked, with nothing stored."""
        await block(client, sha256=SHA256)
        media_id = await self.open_and_send(client, complete="auto")
        await self.assert_ends_failed_as_blocked(
            client, media_id, "the automatic completion to fail"
        )
        assert await stored_keys(client) == []


# --------------------------------------------------------------------------
# Takedown
# --------------------------------------------------------------------------


@pytest.fixture
async def deliveries() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A webhook receiver on loopback, and the events it received."""
    received: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=204)

    async with webhook_receiver(handle) as url:
        yield url, received


@pytest.fixture
def settings(
    make_settings: Any, deliveries: tuple[str, list[dict[str, Any]]]
) -> Settings:  # the module's app sends webhooks to `deliveries`
    result: Settings = make_settings(
        webhook_urls=(deliveries[0],), webhook_secret=bytes(32), webhook_backoff_s=0.01
    )
    return result


async def take_down(client: Client, media_id: str, **body: Any) -> Any:
    response = await client.post(
        f"/v1/media/{media_id}/takedown", json={"reason": "report 7", **body}, headers=ADMIN
    )
    assert response.status == 200, await response.text()
    return await response.json()


async def test_a_takedown_removes_copies_across_owners_and_keeps_them_out(
    client: Client, deliveries: tuple[str, list[dict[str, Any]]]
) -> None:
    """The media and every other owner's copy of the file are removed with
    `media.deleted` events saying `takedown`; the file and the picture are blocked, so the
    same file, a re-encoded and a resized copy are refused afterwards; a near-copy already
    up stays without `similar`, and another picture of the same size is still accepted."""
    original = await uploaded(client, PHOTO, "alice")
    copy = await uploaded(client, PHOTO, "bob")
    near = await uploaded(client, REENCODED, "dave")

    done = await take_down(client, original["id"])

    assert done["removed"] == [original["id"], copy["id"]]
    assert {(e["sha256"], e["pdq"]) for e in done["blocked"]} == {
        (SHA256, None),
        (None, original["pdq"]["hash"]),
    }
    assert {e["reason"] for e in done["blocked"]} == {"report 7"}
    for media_id in done["removed"]:
        assert (await client.get(f"/v1/media/{media_id}", headers=ADMIN)).status == 404
    assert (await client.get(f"/v1/media/{near['id']}", headers=ADMIN)).status == 200

    received = deliveries[1]

    def deleted() -> dict[str, dict[str, Any]]:
        return {e["data"]["id"]: e for e in received if e["type"] == "media.deleted"}

    await wait_until(lambda: len(deleted()) == 2, "two media.deleted events")
    for event in deleted().values():
        assert event["data"]["reason"] == "takedown"
        shapes.MediaDeleted.model_validate(event)

    for again in (PHOTO, REENCODED, RESIZED):
        await assert_blocked(await post_media(client, again, "erin"))
    await uploaded(client, UNRELATED, "erin")


async def test_a_similar_takedown_removes_near_copies_of_every_owner(client: Client) -> None:
    """With `similar`, media within the PDQ distance go too (re-encoded, resized), whoever
    and wherever they are; another picture stays."""
    original = await uploaded(client, PHOTO, "alice")
    near = await uploaded(client, REENCODED, "bob")
    resized = await uploaded(client, RESIZED, "carol", visibility="private")
    other = await uploaded(client, UNRELATED, "dave")

    done = await take_down(client, original["id"], similar=True)

    assert sorted(done["removed"]) == sorted([original["id"], near["id"], resized["id"]])
    assert (await client.get(f"/v1/media/{other['id']}")).status == 200
    assert await media_count(client) == 1


async def test_a_takedown_reaches_copies_in_a_space(client: Client) -> None:
    """Copies in a space, private to its members, are found and removed all the same."""
    member = {"Authorization": f"Bearer {mint_token(JWT_SECRET, 'carol', spaces=['team'])}"}
    in_space = await client.post("/v1/media", data=upload_form(PHOTO, space="team"), headers=member)
    assert in_space.status == 201, await in_space.text()
    original = await uploaded(client, PHOTO, "alice")

    done = await take_down(client, original["id"])

    assert (await in_space.json())["id"] in done["removed"]


async def test_only_a_ready_media_is_taken_down(client: Client) -> None:
    """A session still waiting for its bytes cannot be taken down (409); an unknown id is 404."""
    opened = await client.post(
        "/v1/uploads", json={"content_type": "image/jpeg", "size": 10}, headers=bearer()
    )
    session = await opened.json()
    response = await client.post(
        f"/v1/media/{session['id']}/takedown", json={"reason": "x"}, headers=ADMIN
    )
    assert response.status == 409
    unknown = await client.post(
        "/v1/media/k3Jx9QmT2vLr8WcA5nYpZb/takedown", json={"reason": "x"}, headers=ADMIN
    )
    assert unknown.status == 404


# --------------------------------------------------------------------------
# The command line
# --------------------------------------------------------------------------


async def cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "mediasvc", "blocklist", *args],
        env={**os.environ, "MEDIASVC_DATABASE_URL": database_url},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_the_command_line_adds_lists_and_removes(
    client: Client, database_url: str, tmp_path: Path
) -> None:
    """`blocklist add --file` blocks the file for the running app, `list` shows it, and
    `remove` lifts it; a bad hash is refused by the command itself."""
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(PHOTO)

    added = await cli(database_url, "add", "--file", str(photo), "--reason", "seen twice")
    assert added.returncode == 0, added.stderr
    assert SHA256 in added.stdout
    await assert_blocked(await post_media(client, PHOTO))

    listed = await cli(database_url, "list")
    assert "seen twice" in listed.stdout
    assert "1 entries" in listed.stdout
    entry_id = await client.app[DB].fetchval("SELECT id FROM blocklist")
    removed = await cli(database_url, "remove", str(entry_id))
    assert removed.returncode == 0, removed.stderr
    await uploaded(client, PHOTO)
    assert (await cli(database_url, "remove", str(entry_id))).returncode == 1
    bad = await cli(database_url, "add", "--sha256", "xyz", "--reason", "x")
    assert bad.returncode == 2
    assert "not 64 hex digits" in bad.stderr
