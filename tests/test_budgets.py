"""Per-user budgets: counted per verified user (not per address), shared by every node,
told in the IETF draft's RateLimit headers, spent by nothing a forged token sends."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import images
import jwt
import pytest
from support import Client, bearer, through_pgbouncer, upload_form, upload_tiny

from mediasvc.app import create_app
from mediasvc.appkeys import DB
from mediasvc.config import Settings


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """Three uploads, two deletes and four reads per user and minute; chat has one upload."""
    result: Settings = make_settings(
        user_uploads_per_min=3,
        user_deletes_per_min=2,
        user_reads_per_min=4,
        kinds_table={"kinds": {"chat": {"uploads_per_minute": 1}}},
    )
    return result


async def statuses(client: Client, count: int, sub: str = "alice", **fields: str) -> list[int]:
    return [(await upload_tiny(client, sub, **fields)).status for _ in range(count)]


class TestUploads:
    async def test_users_behind_one_address_have_budgets_of_their_own(self, client: Client) -> None:
        """Alice's fourth upload in a minute is 429 with Retry-After and the budget named;
        Bob, from the same address, still uploads."""
        assert await statuses(client, 3) == [201, 201, 201]
        refused = await upload_tiny(client)
        assert refused.status == 429
        assert int(refused.headers["Retry-After"]) >= 1
        problem = await refused.json()
        assert (problem["code"], problem["budget"], problem["limit"]) == (
            "too_many_requests",
            "uploads",
            3,
        )
        assert await statuses(client, 1, "bob") == [201]
        assert await client.app[DB].fetchval("SELECT count(*) FROM media") == 4

    async def test_answers_carry_the_ratelimit_headers(self, client: Client) -> None:
        """Each answer names the policy (`q` per `w` seconds) and what is left (`r`), with
        the seconds until the budget is whole again (`t`)."""
        first = await upload_tiny(client)
        assert first.headers["RateLimit-Policy"] == '"uploads";q=3;w=60'
        assert re.fullmatch(r'"uploads";r=2;t=(19|20)', first.headers["RateLimit"])
        await upload_tiny(client)
        third = await upload_tiny(client)
        assert re.fullmatch(r'"uploads";r=0;t=(59|60)', third.headers["RateLimit"])
        refused = await upload_tiny(client)
        assert refused.headers["RateLimit"].startswith('"uploads";r=0;')

    async def test_a_kinds_own_budget_adds_to_the_global_one(self, client: Client) -> None:
        """chat allows one upload per minute: the second is 429 naming `uploads.chat`, and a
        post still goes through (the global budget had room)."""
        assert await statuses(client, 1, kind="chat") == [201]
        refused = await upload_tiny(client, kind="chat")
        assert refused.status == 429
        assert (await refused.json())["budget"] == "uploads.chat"
        assert refused.headers["RateLimit-Policy"] == '"uploads";q=3;w=60, "uploads.chat";q=1;w=60'
        assert await statuses(client, 1) == [201]

    async def test_a_session_is_one_upload_counted_when_it_opens(self, client: Client) -> None:
        """Opening a session spends one upload; its complete spends none."""
        photo = images.make_jpeg(width=120, height=90)
        body = {"kind": "post", "content_type": "image/jpeg", "size": len(photo)}
        opened = await client.post("/v1/uploads", json=body, headers=bearer())
        assert opened.status == 201
        session = await opened.json()
        assert (await client.put(session["upload"]["url"], data=photo)).status == 204
        done = await client.post(session["complete_url"], headers=bearer())
        assert done.status == 201
        assert "RateLimit" not in done.headers
        assert await statuses(client, 3) == [201, 201, 429]

    async def test_a_forged_token_spends_nothing(self, client: Client) -> None:
        """Requests with Alice's name on a token signed with another key are 401 and leave
        her whole budget."""
        forged = jwt.encode({"sub": "alice", "exp": 2**31}, "x" * 40, algorithm="HS256")
        for _ in range(5):
            response = await client.post(
                "/v1/media",
                data=upload_form(images.make_tiny(), filename="t.png"),
                headers={"Authorization": f"Bearer {forged}"},
            )
            assert response.status == 401
        assert await statuses(client, 3) == [201, 201, 201]

    async def test_admins_have_no_budget(self, client: Client) -> None:
        """A product's backend with an admin token is not limited per user."""
        responses = [
            await client.post(
                "/v1/media",
                data=upload_form(images.make_tiny(), filename="t.png"),
                headers=bearer("backend", admin=True),
            )
            for _ in range(5)
        ]
        assert [r.status for r in responses] == [201] * 5
        assert "RateLimit" not in responses[-1].headers


class TestNodes:
    @through_pgbouncer
    async def test_one_user_is_limited_once_across_two_nodes(
        self, settings: Settings, aiohttp_client: Any
    ) -> None:
        """Two uploads on one node and one on the other use up Alice's three."""
        first: Client = await aiohttp_client(create_app(settings))
        second: Client = await aiohttp_client(create_app(settings))
        assert await statuses(first, 2) == [201, 201]
        assert await statuses(second, 1) == [201]
        assert await statuses(first, 1) == [429]
        assert await statuses(second, 1) == [429]


class TestDeletesAndReads:
    async def test_deletes_and_reads_have_budgets_of_their_own(self, client: Client) -> None:
        """Two deletes, then 429; four signed-in reads, then 429; anonymous reads are not
        counted (nginx guards them per address)."""
        ids = [(await (await upload_tiny(client)).json())["id"] for _ in range(3)]
        deletes = [
            (await client.delete(f"/v1/media/{media_id}", headers=bearer())).status
            for media_id in ids
        ]
        assert deletes == [204, 204, 429]
        reads = [
            (await client.get(f"/v1/media/{ids[2]}", headers=bearer())).status for _ in range(5)
        ]
        assert reads == [200] * 4 + [429]
        assert (await client.get(f"/v1/media/{ids[2]}")).status == 200
