"""Two app nodes on one PostgreSQL and one storage: nothing lives in a node's memory."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import images
import pytest
from support import (
    Client,
    bearer,
    collection_positions,
    parametrize_backends,
    running_nginx,
    stored_keys,
    upload_form,
    upload_tiny,
)

from mediasvc.app import create_app
from mediasvc.appkeys import DB
from mediasvc.config import Settings

pytestmark = parametrize_backends


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    """Room in each node's queue for the concurrent uploads below."""
    result: Settings = make_settings(queue_max=32, workers=1)
    return result


@pytest.fixture
async def nodes(settings: Settings, aiohttp_client: Any) -> tuple[Client, Client]:
    """Two separate app instances (own pools, own database pools) on the same settings."""
    first: Client = await aiohttp_client(create_app(settings))
    second: Client = await aiohttp_client(create_app(settings))
    return first, second


async def test_collection_cap_holds_across_nodes(nodes: tuple[Client, Client]) -> None:
    """Ten concurrent uploads alternating between nodes into a cap of five: exactly five."""
    responses = await asyncio.gather(
        *(upload_tiny(nodes[i % 2], collection="profile") for i in range(10))
    )
    assert sorted(r.status for r in responses) == [201] * 5 + [409] * 5
    assert [p for _, p in await collection_positions(nodes[0], "profile")] == [0, 1, 2, 3, 4]


async def test_list_delete_and_reorder_through_the_other_node(
    nodes: tuple[Client, Client],
) -> None:
    """What one node created, the other lists, reorders and deletes."""
    first, second = nodes
    created = []
    for i in range(4):
        response = await upload_tiny(nodes[i % 2], collection="gallery")
        created.append((await response.json())["id"])
    listed = await (await second.get("/v1/media?collection=gallery", headers=bearer())).json()
    assert [item["id"] for item in listed["items"]] == created
    reordered = created[::-1]
    response = await second.put(
        "/v1/collections/gallery/order", json={"ids": reordered}, headers=bearer()
    )
    assert response.status == 200
    assert (await first.delete(f"/v1/media/{created[1]}", headers=bearer())).status == 204
    listed = await (await first.get("/v1/media?collection=gallery", headers=bearer())).json()
    assert [item["id"] for item in listed["items"]] == [i for i in reordered if i != created[1]]
    assert len(await stored_keys(second)) == 15


async def test_idempotency_key_holds_across_nodes(nodes: tuple[Client, Client]) -> None:
    """The same key sent to both nodes at once creates one media."""
    data = images.make_jpeg()
    responses = await asyncio.gather(
        *(
            node.post(
                "/v1/media",
                data=upload_form(data),
                headers={**bearer(), "Idempotency-Key": "same-key"},
            )
            for node in (*nodes, *nodes)
        )
    )
    assert sorted(r.status for r in responses).count(201) == 1
    assert await nodes[0].app[DB].fetchval("SELECT count(*) FROM media") == 1


async def test_nginx_balances_uploads_over_both_nodes(
    nodes: tuple[Client, Client], settings: Settings
) -> None:
    """Through one nginx upstream of two nodes, every upload lands and is served."""
    ports = [node.server.port for node in nodes]
    async with running_nginx(settings, ports) as base, aiohttp.ClientSession() as http:

        async def post() -> dict[str, Any]:
            async with http.post(
                f"{base}/v1/media", data=upload_form(images.make_jpeg()), headers=bearer()
            ) as response:
                assert response.status == 201
                body: dict[str, Any] = await response.json()
                return body

        bodies = await asyncio.gather(*(post() for _ in range(6)))
        for body in bodies:
            async with http.get(base + body["variants"]["small"]["url"]) as response:
                assert response.status == 200
    assert await nodes[1].app[DB].fetchval("SELECT count(*) FROM media") == 6
