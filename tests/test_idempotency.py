"""Idempotency-Key: retries return the original, races create one media, reuse is refused."""

from __future__ import annotations

import asyncio
from typing import Any

import images
import pytest
from support import Client, bearer, parametrize_backends, stored_keys, upload_form

from mediasvc.appkeys import DB
from mediasvc.config import Settings

PHOTO = images.make_jpeg()
pytestmark = parametrize_backends


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    """Room in the queue for concurrent retries."""
    result: Settings = make_settings(queue_max=32)
    return result


async def post(client: Client, key: str, data: bytes = PHOTO, sub: str = "alice") -> Any:
    return await client.post(
        "/v1/media", data=upload_form(data), headers={**bearer(sub), "Idempotency-Key": key}
    )


async def test_retry_with_the_same_key_returns_the_original(client: Client) -> None:
    """The second POST answers 200 with the same media, and no second row exists."""
    first = await post(client, "k-1")
    assert first.status == 201
    second = await post(client, "k-1")
    assert second.status == 200
    assert await second.json() == await first.json()
    assert await client.app[DB].fetchval("SELECT count(*) FROM media") == 1


async def test_same_key_with_a_different_file_is_422(client: Client) -> None:
    """A key names one file; reusing it for another is a client bug worth reporting."""
    assert (await post(client, "k-2")).status == 201
    response = await post(client, "k-2", images.make_png())
    assert response.status == 422
    assert (await response.json())["code"] == "idempotency_key_reused"


@pytest.mark.parametrize(
    "changed", [{"visibility": "private"}, {"kind": "avatar"}, {"collection": "profile"}]
)
async def test_same_key_and_file_with_other_options_is_422(
    client: Client, changed: dict[str, str]
) -> None:
    """A replay must ask what the first upload asked: a private retry never gets a public media."""
    assert (await post(client, "k-opts")).status == 201
    response = await client.post(
        "/v1/media",
        data=upload_form(PHOTO, **changed),
        headers={**bearer(), "Idempotency-Key": "k-opts"},
    )
    assert response.status == 422
    assert (await response.json())["code"] == "idempotency_key_reused"
    assert await client.app[DB].fetchval("SELECT count(*) FROM media") == 1


async def test_keys_are_per_owner(client: Client) -> None:
    """Bob's key does not collide with Alice's."""
    assert (await post(client, "k-3")).status == 201
    assert (await post(client, "k-3", sub="bob")).status == 201


async def test_concurrent_requests_with_one_key_create_exactly_one_media(
    client: Client, settings: Settings
) -> None:
    """Ten racing retries: one 201, the rest 200 (done) or 409 (still in progress)."""
    responses = await asyncio.gather(*(post(client, "k-race") for _ in range(10)))
    statuses = sorted(r.status for r in responses)
    assert statuses.count(201) == 1
    assert set(statuses) <= {200, 201, 409}
    assert await client.app[DB].fetchval("SELECT count(*) FROM media") == 1
    assert len(await stored_keys(client)) == 5


async def test_keys_expire_after_24_hours(client: Client) -> None:
    """A key older than a day may be used again, for a new media."""
    first = await (await post(client, "k-old")).json()
    await client.app[DB].execute("UPDATE media SET created_at = now() - interval '25 hours'")
    response = await post(client, "k-old", images.make_png())
    assert response.status == 201
    assert (await response.json())["id"] != first["id"]
