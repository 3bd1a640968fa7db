"""Per-owner limits: media count and bytes (checked in the insert's transaction), and
uploads in flight per node."""

from __future__ import annotations

import asyncio
from typing import Any

import images
import pytest
from support import Client, bearer, post_media, stored_keys

from mediasvc.appkeys import DB, UPLOADS
from mediasvc.config import Settings

TINY = images.make_tiny()


async def upload(client: Client, sub: str = "alice", data: bytes = TINY) -> Any:
    return await post_media(client, data, sub, filename="t.png")


async def rows(client: Client, owner: str) -> int:
    count: int = await client.app[DB].fetchval("SELECT count(*) FROM media WHERE owner = $1", owner)
    return count


class TestMediaQuota:
    @pytest.fixture
    def settings(self, make_settings: Any) -> Settings:
        """At most three media per owner; room in the queue for a race."""
        result: Settings = make_settings(owner_max_media=3, queue_max=16)
        return result

    async def test_the_upload_past_the_count_is_409_with_limit_and_actual(
        self, client: Client
    ) -> None:
        """Three uploads pass; the fourth is quota_exceeded and leaves no row or file."""
        for _ in range(3):
            assert (await upload(client)).status == 201
        keys = await stored_keys(client)
        response = await upload(client)
        assert response.status == 409
        problem = await response.json()
        assert (problem["code"], problem["limit"], problem["actual"]) == ("quota_exceeded", 3, 3)
        assert await rows(client, "alice") == 3
        assert await stored_keys(client) == keys

    async def test_quotas_are_per_owner_and_a_delete_frees_room(self, client: Client) -> None:
        """Bob is not counted against Alice, and deleting one of hers lets her upload again."""
        ids = [(await (await upload(client)).json())["id"] for _ in range(3)]
        assert (await upload(client, "bob")).status == 201
        assert (await upload(client)).status == 409
        assert (await client.delete(f"/v1/media/{ids[0]}", headers=bearer())).status == 204
        assert (await upload(client)).status == 201

    async def test_concurrent_uploads_cannot_pass_the_count(self, client: Client) -> None:
        """Eight racing uploads against a quota of three: exactly three rows."""
        responses = await asyncio.gather(*(upload(client) for _ in range(8)))
        assert sorted(r.status for r in responses) == [201] * 3 + [409] * 5
        assert await rows(client, "alice") == 3


class TestBytesQuota:
    @pytest.fixture
    def settings(self, make_settings: Any) -> Settings:
        """Room for exactly two copies of the tiny image's bytes."""
        result: Settings = make_settings(owner_max_bytes=2 * len(TINY))
        return result

    async def test_bytes_received_count_against_the_quota(self, client: Client) -> None:
        """Two tiny files fill the quota; a third is refused with the total it would make."""
        assert (await upload(client)).status == 201
        assert (await upload(client)).status == 201
        response = await upload(client)
        assert response.status == 409
        problem = await response.json()
        assert problem["code"] == "quota_exceeded"
        assert (problem["limit"], problem["actual"]) == (2 * len(TINY), 3 * len(TINY))

    async def test_limits_lists_the_quotas(self, client: Client) -> None:
        """Clients can see the quotas in force."""
        limits = await (await client.get("/v1/limits")).json()
        assert limits["owner_max_bytes"] == 2 * len(TINY)
        assert limits["owner_max_media"] is None
        assert limits["owner_max_inflight"] == 100


class TestInflight:
    @pytest.fixture
    def settings(self, make_settings: Any) -> Settings:
        """The production default: two uploads in flight per owner and node."""
        result: Settings = make_settings(owner_max_inflight=2)
        return result

    async def test_a_third_upload_in_flight_is_429_and_others_are_not_held_up(
        self, client: Client
    ) -> None:
        """Two of Alice's uploads mid-stream: her third is 429 with Retry-After, Bob's passes."""
        release = asyncio.Event()
        held = [asyncio.create_task(stalled_upload(client, release)) for _ in range(2)]
        flow = client.app[UPLOADS]
        # The server side is the outside world here: wait, with a deadline, until it holds
        # both uploads open (the client cannot tell when its bytes were read).
        async with asyncio.timeout(10):
            while flow.inflight["alice"] < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        response = await upload(client)
        assert response.status == 429
        assert response.headers["Retry-After"] == "2"
        problem = await response.json()
        assert (problem["code"], problem["limit"]) == ("too_many_requests", 2)
        assert (await upload(client, "bob")).status == 201
        release.set()
        assert [await task for task in held] == [201, 201]
        assert (await upload(client)).status == 201
        assert not flow.inflight
        assert await rows(client, "alice") == 3


async def stalled_upload(client: Client, release: asyncio.Event) -> int:
    """Upload TINY, stopping mid-file until `release` is set; the status it got."""

    async def body() -> Any:
        yield (
            b'--B\r\nContent-Disposition: form-data; name="file"; filename="t.png"\r\n'
            b"Content-Type: image/png\r\n\r\n" + TINY[:64]
        )
        await release.wait()
        yield TINY[64:] + b"\r\n--B--\r\n"

    response = await client.post(
        "/v1/media",
        data=body(),
        headers={**bearer(), "Content-Type": "multipart/form-data; boundary=B"},
    )
    return response.status
