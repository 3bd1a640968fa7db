"""Spaces: media shared with the members of a conversation or team, and nobody else."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import images
import jwt
import pytest
from support import (
    JWT_SECRET,
    Client,
    assert_nothing_left,
    field_part,
    file_part,
    multipart_body,
    parametrize_backends,
    upload_form,
)

from mediasvc import cli
from mediasvc.appkeys import DB
from mediasvc.auth import DEFAULT_TOKEN_TTL_S, Principal, TokenVerifier, mint_token
from mediasvc.config import Settings
from mediasvc.db import queries
from mediasvc.errors import Unauthorized
from mediasvc.spaces import MAX_HEADER_BYTES, MAX_TOKEN_SPACES

PHOTO = images.make_jpeg()
CHAT = "conversation:8f2c"
OTHER = "conversation:77aa"


def token(
    sub: str, *spaces: str, admin: bool = False, extra: dict[str, Any] | None = None
) -> dict[str, str]:
    """An Authorization header for `sub`, listing `spaces` (and any extra claims)."""
    # Made at import, used until the module's last test: valid for a whole (slow) suite.
    claims: dict[str, Any] = {"sub": sub, "exp": int(time.time()) + DEFAULT_TOKEN_TTL_S}
    if spaces:
        claims["spaces"] = list(spaces)
    if admin:
        claims["mediasvc_admin"] = True
    claims.update(extra or {})
    return {"Authorization": f"Bearer {jwt.encode(claims, JWT_SECRET, algorithm='HS256')}"}


ALICE = token("alice", CHAT)  # the uploader, a member
BOB = token("bob", CHAT)  # another member
CAROL = token("carol", OTHER)  # in another conversation only
ROOT = token("root", admin=True)  # an admin whose token lists no space


async def share(
    client: Client, headers: dict[str, str] = ALICE, space: str = CHAT, **fields: str
) -> dict[str, Any]:
    """Upload a photo into `space` and return its Media JSON."""
    response = await client.post(
        "/v1/media", data=upload_form(PHOTO, space=space, **fields), headers=headers
    )
    assert response.status == 201, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def problem(response: aiohttp.ClientResponse | Any) -> dict[str, Any]:
    body: dict[str, Any] = await response.json()
    return body


class TestTokens:
    def test_a_token_names_the_spaces_it_lists(self) -> None:
        """The spaces claim becomes the principal's set of spaces; without it, none."""
        verifier = TokenVerifier(secret=JWT_SECRET)
        listed = verifier.verify(mint_token(JWT_SECRET, "bob", spaces=[CHAT, OTHER, CHAT]))
        assert listed == Principal("bob", admin=False, spaces=frozenset({CHAT, OTHER}))
        assert verifier.verify(mint_token(JWT_SECRET, "bob")).spaces == frozenset()

    def test_the_claim_name_is_configurable(self) -> None:
        """MEDIASVC_JWT_SPACES_CLAIM names the claim; the default name is then ignored."""
        verifier = TokenVerifier.from_settings(
            Settings(
                database_url="postgresql://x",
                url_signing_secret="s" * 32,
                jwt_secret=JWT_SECRET,
                jwt_spaces_claim="rooms",
            )
        )
        raw = mint_token(JWT_SECRET, "bob", spaces=[CHAT], spaces_claim="rooms")
        assert verifier.verify(raw).spaces == frozenset({CHAT})
        assert verifier.verify(mint_token(JWT_SECRET, "bob", spaces=[CHAT])).spaces == set()

    @pytest.mark.parametrize(
        "claim",
        [
            CHAT,
            None,
            {"a": 1},
            [1],
            [CHAT, None],
            [""],
            ["a/b"],
            ["x" * 129],
            ["caf\u00e9"],
            ["s"] * (MAX_TOKEN_SPACES + 1),
        ],
        ids=[
            "string",
            "null",
            "object",
            "number",
            "null-item",
            "empty-id",
            "slash",
            "too-long",
            "non-ascii",
            "too-many",
        ],
    )
    def test_a_malformed_spaces_claim_refuses_the_token(self, claim: object) -> None:
        """Anything but a list of at most 10 000 valid space ids is a bad token (401)."""
        claims = {"sub": "bob", "exp": int(time.time()) + 60, "spaces": claim}
        with pytest.raises(Unauthorized):
            TokenVerifier(secret=JWT_SECRET).verify(jwt.encode(claims, JWT_SECRET))

    def test_cli_mints_a_token_listing_each_space(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`python -m mediasvc token SUB --space S --space S2` lists both spaces."""
        monkeypatch.setenv("MEDIASVC_JWT_SECRET", JWT_SECRET)
        assert cli.main(["token", "bob", "--space", CHAT, "--space", OTHER]) == 0
        claims = jwt.decode(capsys.readouterr().out.strip(), JWT_SECRET, algorithms=["HS256"])
        assert (claims["sub"], claims["spaces"]) == ("bob", [CHAT, OTHER])

    def test_cli_refuses_a_malformed_space(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A space id the service would refuse is refused before a token is printed."""
        monkeypatch.setenv("MEDIASVC_JWT_SECRET", JWT_SECRET)
        assert cli.main(["token", "bob", "--space", "a b"]) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        assert "--space 'a b'" in captured.err


class TestUpload:
    async def test_upload_into_a_listed_space_is_private_and_names_it(self, client: Client) -> None:
        """The media names its space, is private, and its variants sit behind signatures."""
        media = await share(client)
        assert (media["space"], media["visibility"], media["owner"]) == (CHAT, "private", "alice")
        assert all(v["url"].startswith("/private/") for v in media["variants"].values())
        row = await client.app[DB].fetchrow(
            "SELECT space, visibility FROM media WHERE id = $1", media["id"]
        )
        assert tuple(row) == (CHAT, "private")

    async def test_media_outside_spaces_say_so(self, client: Client) -> None:
        """Media JSON always carries `space`: null when the media is in none."""
        response = await client.post("/v1/media", data=upload_form(PHOTO), headers=ALICE)
        assert (await response.json())["space"] is None

    async def test_a_space_not_in_the_token_is_403_before_the_file_is_read(
        self, client: Client, settings: Settings
    ) -> None:
        """Refused when the field arrives: a non-image file after it is never sniffed (no 415)."""
        response = await client.post(
            "/v1/media",
            data=upload_form(b"not an image at all", space=OTHER),
            headers=ALICE,
        )
        assert response.status == 403
        body = await problem(response)
        assert (body["code"], body["field"]) == ("forbidden", "space")
        await assert_nothing_left(client, settings)

    async def test_a_space_sent_after_the_file_is_checked_before_processing(
        self, client: Client, settings: Settings
    ) -> None:
        """Field order does not open a way around the membership check."""
        body, content_type = multipart_body([file_part(PHOTO), field_part("space", OTHER)])
        response = await client.post(
            "/v1/media", data=body, headers={**ALICE, "Content-Type": content_type}
        )
        assert response.status == 403
        await assert_nothing_left(client, settings)

    async def test_public_with_a_space_is_400(self, client: Client, settings: Settings) -> None:
        """A space's media are private; asking for public is a contradiction."""
        response = await client.post(
            "/v1/media", data=upload_form(PHOTO, space=CHAT, visibility="public"), headers=ALICE
        )
        assert response.status == 400
        assert (await problem(response))["field"] == "visibility"
        await assert_nothing_left(client, settings)

    async def test_private_with_a_space_is_accepted(self, client: Client) -> None:
        """Saying private explicitly is what a space implies anyway."""
        media = await share(client, visibility="private")
        assert media["visibility"] == "private"

    @pytest.mark.parametrize(
        "space", ["a b", "x" * 129, "a/b", "caf\u00e9", "conv;drop"], ids=str.__len__
    )
    async def test_a_malformed_space_is_400(
        self, client: Client, settings: Settings, space: str
    ) -> None:
        """Space ids are 1-128 of A-Z a-z 0-9 _ . : -, whatever the token lists."""
        response = await client.post(
            "/v1/media", data=upload_form(PHOTO, space=space), headers=token("alice", CHAT)
        )
        assert response.status == 400
        assert (await problem(response))["field"] == "space"
        await assert_nothing_left(client, settings)

    async def test_a_128_character_space_is_accepted(self, client: Client) -> None:
        """The longest id, with every allowed kind of character, works end to end."""
        space = ("Az09_.:-" * 16)[:128]
        media = await share(client, token("alice", space), space=space)
        assert media["space"] == space

    async def test_a_media_may_be_in_a_collection_and_a_space(self, client: Client) -> None:
        """Collections stay the owner's: the same collection holds media in and out of spaces."""
        shared = await share(client, collection="trip")
        response = await client.post(
            "/v1/media", data=upload_form(PHOTO, collection="trip"), headers=ALICE
        )
        own = await response.json()
        assert (shared["collection"], shared["position"], own["position"]) == ("trip", 0, 1)
        page = await (await client.get("/v1/media?collection=trip", headers=ALICE)).json()
        assert [m["id"] for m in page["items"]] == [shared["id"], own["id"]]

    async def test_an_idempotent_retry_must_name_the_same_space(self, client: Client) -> None:
        """A replay returns the original only when it asks for the same space."""
        headers = {**token("alice", CHAT, OTHER), "Idempotency-Key": "k-space"}
        first = await share(client, headers)
        replay = await client.post(
            "/v1/media", data=upload_form(PHOTO, space=CHAT), headers=headers
        )
        assert (replay.status, (await replay.json())["id"]) == (200, first["id"])
        for fields in ({"space": OTHER}, {}):
            response = await client.post(
                "/v1/media", data=upload_form(PHOTO, **fields), headers=headers
            )
            assert response.status == 422, fields
            assert (await problem(response))["code"] == "idempotency_key_reused"


class TestQuotas:
    @pytest.fixture
    def settings(self, make_settings: Any) -> Settings:
        """One media per owner."""
        result: Settings = make_settings(owner_max_media=1)
        return result

    async def test_media_in_spaces_count_towards_the_owners_quota(self, client: Client) -> None:
        """A space is no way around the owner's quota."""
        await share(client)
        response = await client.post(
            "/v1/media", data=upload_form(PHOTO, space=CHAT), headers=ALICE
        )
        assert response.status == 409
        assert (await problem(response))["code"] == "quota_exceeded"


class TestVisibility:
    async def test_get_answers_members_owner_and_admin_and_404s_everyone_else(
        self, client: Client
    ) -> None:
        """Non-members and anonymous callers get exactly the answer an unknown id gets."""
        media = await share(client)
        path = f"/v1/media/{media['id']}"
        unknown = await (await client.get("/v1/media/" + "A" * 22, headers=CAROL)).json()
        for headers in (ALICE, BOB, ROOT):
            response = await client.get(path, headers=headers)
            assert response.status == 200
            assert (await response.json())["space"] == CHAT
        for headers in (CAROL, token("dave"), {}):
            response = await client.get(path, headers=headers)
            assert response.status == 404
            assert await response.json() == unknown

    async def test_members_get_the_shared_json_and_not_the_owners_details(
        self, client: Client
    ) -> None:
        """The original's sha256 and the processing report stay with the owner and admins;
        members see who posted it."""
        media = await share(client)
        for headers, full in ((ALICE, True), (ROOT, True), (BOB, False)):
            seen = await (await client.get(f"/v1/media/{media['id']}", headers=headers)).json()
            assert ("sha256" in seen["original"], "processing" in seen) == (full, full)
            assert seen["owner"] == "alice"

    async def test_redirect_answers_members_owner_and_admin_and_404s_everyone_else(
        self, client: Client
    ) -> None:
        """The variant redirect follows the same rule as the JSON, with a fresh signed URL."""
        media = await share(client)
        path = f"/v1/media/{media['id']}/medium"
        for headers in (ALICE, BOB, ROOT):
            response = await client.get(path, headers=headers, allow_redirects=False)
            assert response.status == 302
            assert response.headers["Location"].startswith("/private/")
            assert response.headers["Cache-Control"] == "private, no-store"
        for headers in (CAROL, token("bob"), {}):
            response = await client.get(path, headers=headers, allow_redirects=False)
            assert response.status == 404
            assert (await problem(response))["code"] == "not_found"

    async def test_delete_stays_with_the_owner_and_admins(self, client: Client) -> None:
        """Members may see but not delete (403); non-members do not see it (404)."""
        kept, by_admin = await share(client), await share(client)
        assert (await client.delete(f"/v1/media/{kept['id']}", headers=BOB)).status == 403
        assert (await client.delete(f"/v1/media/{kept['id']}", headers=CAROL)).status == 404
        assert (await client.delete(f"/v1/media/{kept['id']}")).status == 401
        assert (await client.delete(f"/v1/media/{by_admin['id']}", headers=ROOT)).status == 204
        assert (await client.delete(f"/v1/media/{kept['id']}", headers=ALICE)).status == 204
        assert await client.app[DB].fetchval("SELECT count(*) FROM media") == 0

    async def test_the_owner_sees_their_media_after_leaving_the_space(self, client: Client) -> None:
        """Ownership does not depend on the token: the uploader keeps seeing and deleting it."""
        media = await share(client)
        response = await client.get(f"/v1/media/{media['id']}", headers=token("alice"))
        assert response.status == 200
        own = await (await client.get("/v1/media", headers=token("alice"))).json()
        assert [m["id"] for m in own["items"]] == [media["id"]]

    async def test_unfinished_media_in_a_space_are_the_owners_alone(self, client: Client) -> None:
        """A space's members see a media once it is ready; until then only its owner does."""
        async with client.app[DB].acquire() as conn:
            pending = await queries.insert_media(
                conn,
                media_id="P" * 22,
                owner="alice",
                kind="post",
                collection=None,
                visibility="private",
                mime="image/jpeg",
                size=1,
                sha256="0" * 64,
                idempotency_key=None,
                space=CHAT,
            )
        path = f"/v1/media/{pending.id}"
        assert (await client.get(path, headers=ALICE)).status == 200
        assert (await client.get(path, headers=BOB)).status == 404
        page = await (await client.get(f"/v1/media?space={CHAT}", headers=BOB)).json()
        assert page["items"] == []

    async def test_media_being_deleted_are_nobodys(self, client: Client) -> None:
        """Once a delete has begun the media is gone for members, owner and admins alike."""
        media = await share(client)
        async with client.app[DB].acquire() as conn:
            assert await queries.mark_deleting(conn, media["id"]) is not None
        for headers in (ALICE, BOB, ROOT):
            assert (await client.get(f"/v1/media/{media['id']}", headers=headers)).status == 404


class TestListing:
    async def test_a_space_lists_its_ready_media_newest_first_whoever_uploaded(
        self, client: Client
    ) -> None:
        """Only that space's media, from every member, newest first."""
        first = await share(client)
        await share(client, token("alice", OTHER), space=OTHER)
        await client.post("/v1/media", data=upload_form(PHOTO), headers=ALICE)
        second = await share(client, BOB)
        third = await share(client)
        page = await (await client.get(f"/v1/media?space={CHAT}", headers=BOB)).json()
        assert [m["id"] for m in page["items"]] == [third["id"], second["id"], first["id"]]
        assert page["next_cursor"] is None
        # Each item is shown as its viewer may see it: Bob's own in full, Alice's not, and
        # who posted each to every member.
        assert ["sha256" in m["original"] for m in page["items"]] == [False, True, False]
        assert [m["owner"] for m in page["items"]] == ["alice", "bob", "alice"]

    async def test_listing_needs_a_token_listing_the_space(self, client: Client) -> None:
        """Members, and admins, list the space; other tokens get 403 and no token 401."""
        media = await share(client)
        for headers in (ALICE, BOB, ROOT):
            response = await client.get(f"/v1/media?space={CHAT}", headers=headers)
            assert response.status == 200
            assert [m["id"] for m in (await response.json())["items"]] == [media["id"]]
        for headers in (CAROL, token("alice")):
            response = await client.get(f"/v1/media?space={CHAT}", headers=headers)
            assert response.status == 403
            assert (await problem(response))["code"] == "forbidden"
        assert (await client.get(f"/v1/media?space={CHAT}")).status == 401

    @pytest.mark.parametrize(
        "query",
        ["space=a%20b", "space=", f"space={CHAT}&owner=alice", f"space={CHAT}&collection=c"],
    )
    async def test_a_malformed_space_listing_is_400(self, client: Client, query: str) -> None:
        """A bad id, or a space narrowed to an owner or collection, is a bad request."""
        response = await client.get(f"/v1/media?{query}", headers=BOB)
        assert response.status == 400

    async def test_the_cursor_walks_every_page_once_while_new_images_arrive(
        self, client: Client
    ) -> None:
        """Pages never repeat or skip what was there; what arrives meanwhile is newer."""
        before = [(await share(client, (ALICE, BOB)[i % 2]))["id"] for i in range(5)]
        seen: list[str] = []
        arrived: list[str] = []
        url = f"/v1/media?space={CHAT}&limit=2"
        while True:
            page = await (await client.get(url, headers=BOB)).json()
            seen += [m["id"] for m in page["items"]]
            if page["next_cursor"] is None:
                break
            arrived.append((await share(client))["id"])
            url = f"/v1/media?space={CHAT}&limit=2&cursor={page['next_cursor']}"
        assert seen == before[::-1]
        assert len(arrived) == 2
        fresh = await (await client.get(f"/v1/media?space={CHAT}&limit=2", headers=BOB)).json()
        assert [m["id"] for m in fresh["items"]] == arrived[::-1]

    async def test_a_tampered_cursor_is_400(self, client: Client) -> None:
        """The cursor is opaque, but checked."""
        response = await client.get(f"/v1/media?space={CHAT}&cursor=bm9wZQ", headers=BOB)
        assert response.status == 400
        assert (await problem(response))["field"] == "cursor"


def many_spaces(count: int) -> list[str]:
    """`count` realistic conversation ids, 29 characters each."""
    return [f"conversation:{i:016x}" for i in range(count)]


@asynccontextmanager
async def statements(pool: asyncpg.Pool) -> AsyncIterator[list[asyncpg.connection.LoggedQuery]]:
    """What the app sends to PostgreSQL while the block runs.

    The logger goes on the connection the test returns to the pool last, which the pool
    (LIFO, live ones first) lends next; if it lent another, nothing is logged and the
    test's count fails rather than passes.
    """
    logged: list[asyncpg.connection.LoggedQuery] = []
    async with pool.acquire() as conn:
        conn.add_query_logger(logged.append)
    try:
        yield logged
    finally:
        async with pool.acquire() as conn:
            conn.remove_query_logger(logged.append)


def plan_nodes(plan: dict[str, Any]) -> Iterable[dict[str, Any]]:
    """The plan's nodes, without the subplans that compute one returned row's columns."""
    yield plan
    for child in plan.get("Plans", []):
        if child.get("Parent Relationship") != "SubPlan":
            yield from plan_nodes(child)


def subplans(plan: dict[str, Any]) -> Iterable[dict[str, Any]]:
    """Every node of the plan's subplans (per-row columns, such as a collection position)."""
    for child in plan.get("Plans", []):
        if child.get("Parent Relationship") == "SubPlan":
            yield child
            yield from (node for grand in child.get("Plans", []) for node in _all(grand))
        else:
            yield from subplans(child)


def _all(plan: dict[str, Any]) -> Iterable[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _all(child)


class TestManySpaces:
    async def test_a_token_with_1000_spaces_works_through_nginx(
        self, client: Client, nginx: str, http: aiohttp.ClientSession
    ) -> None:
        """A 40 KiB token gets through nginx and the app for upload, get, list and variants."""
        spaces = many_spaces(1000)
        headers = token("alice", *spaces)
        assert len(headers["Authorization"]) > 40_000
        async with http.post(
            f"{nginx}/v1/media", data=upload_form(PHOTO, space=spaces[-1]), headers=headers
        ) as response:
            assert response.status == 201, await response.text()
            media = await response.json()
        reader = token("bob", *spaces)
        async with http.get(f"{nginx}/v1/media?space={spaces[-1]}", headers=reader) as response:
            assert response.status == 200
            assert [m["id"] for m in (await response.json())["items"]] == [media["id"]]
        async with http.get(f"{nginx}/v1/media/{media['id']}", headers=reader) as response:
            shared = await response.json()
        async with http.get(nginx + shared["variants"]["small"]["url"]) as response:
            assert response.status == 200

    async def test_listing_with_1000_spaces_is_one_indexed_query(self, client: Client) -> None:
        """One statement per page, served by the space index, not a scan or a sort."""
        spaces = many_spaces(1000)
        # Enough other media for the planner to prefer an index if it has a suitable one.
        await client.app[DB].execute(
            """
            INSERT INTO media (id, owner, kind, visibility, space, status, original_mime,
                               original_bytes, sha256, created_at)
            SELECT lpad(i::text, 22, 'X'), 'user' || (i % 50), 'post', 'private',
                   'team:' || (i % 500), 'ready', 'image/jpeg', 1, '', now() - i * interval '1s'
            FROM generate_series(1, 20000) AS i;
            ANALYZE media;
            """
        )
        for _ in range(3):
            await share(client, token("alice", spaces[7]), space=spaces[7])
        reader = token("bob", *spaces)
        first = await client.get(f"/v1/media?space={spaces[7]}&limit=2", headers=reader)
        cursor = (await first.json())["next_cursor"]
        async with statements(client.app[DB]) as logged:
            response = await client.get(
                f"/v1/media?space={spaces[7]}&limit=2&cursor={cursor}", headers=reader
            )
            assert response.status == 200
            assert len((await response.json())["items"]) == 1
        assert [q.query for q in logged] == [queries.LIST_SPACE]
        assert len(logged[0].args[2]) == 1000
        explained = await client.app[DB].fetchval(
            f"EXPLAIN (FORMAT JSON) {queries.LIST_SPACE}", *logged[0].args
        )
        nodes = list(plan_nodes(json.loads(explained)[0]["Plan"]))
        scans = [n for n in nodes if "Scan" in n["Node Type"]]
        assert [(n["Node Type"], n.get("Index Name")) for n in scans] == [
            ("Index Scan", "media_space_created_idx")
        ]
        assert "created_at" in scans[0]["Index Cond"]
        assert not any(n["Node Type"] == "Sort" for n in nodes)
        # Per returned row, its collection position is counted on the collection index.
        per_row = [
            n for n in subplans(json.loads(explained)[0]["Plan"]) if "Scan" in n["Node Type"]
        ]
        assert {n.get("Index Name") for n in per_row} <= {"media_owner_collection_idx"}

    async def test_a_token_past_the_header_budget_is_a_400_problem_from_nginx(
        self, client: Client, nginx: str, http: aiohttp.ClientSession
    ) -> None:
        """nginx refuses a header over 64 KiB in the API's problem shape, naming the limit."""
        headers = token("alice", *many_spaces(2500))
        assert len(headers["Authorization"]) > MAX_HEADER_BYTES
        async with http.get(f"{nginx}/v1/media", headers=headers) as response:
            assert response.status == 400
            assert response.headers["Content-Type"] == "application/problem+json"
            body = await response.json(content_type=None)
        assert (body["code"], body["limit"]) == ("header_too_large", MAX_HEADER_BYTES)


@parametrize_backends
class TestSignedUrlsThroughNginx:
    async def test_members_fetch_the_files_nginx_serves_and_others_get_nothing(
        self, client: Client, nginx: str, http: aiohttp.ClientSession
    ) -> None:
        """A member's JSON and redirect give signed URLs nginx serves; others get 404 there."""
        media = await share(client)
        async with http.get(f"{nginx}/v1/media/{media['id']}", headers=BOB) as response:
            assert response.status == 200
            shared = await response.json()
        for variant in shared["variants"].values():
            assert urlsplit(variant["url"]).path.startswith("/private/")
            async with http.get(nginx + variant["url"]) as response:
                assert response.status == 200
                assert response.headers["Cache-Control"].startswith("private")
                assert len(await response.read()) == variant["bytes"]
        path = f"{nginx}/v1/media/{media['id']}/large"
        async with http.get(path, headers=BOB, allow_redirects=False) as response:
            assert response.status == 302
            location = response.headers["Location"]
        async with http.get(nginx + location) as response:
            assert response.status == 200
        for headers in (CAROL, {}):
            async with http.get(path, headers=headers, allow_redirects=False) as response:
                assert response.status == 404
        # Without a signature the file is not at any URL, whoever asks.
        async with http.get(nginx + urlsplit(location).path, headers=BOB) as response:
            assert response.status == 403
