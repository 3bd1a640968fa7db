"""Deleting media: files first gone from nginx, then the row; positions stay dense."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import images
import pytest
from gates import wait_until
from support import (
    Client,
    bearer,
    collection_positions,
    parametrize_backends,
    post_media,
    stored_keys,
    through_pgbouncer,
)

from mediasvc.appkeys import DB
from mediasvc.config import Settings

pytestmark = parametrize_backends


@pytest.fixture
def settings(make_settings: Any, data_dir: Path) -> Settings:
    """nginx's cache for ten minutes, purged by the node (the cache beside it)."""
    result: Settings = make_settings(nginx_cache_ttl_s=600, nginx_cache_dir=data_dir / "cache")
    return result


async def create(client: Client, sub: str = "alice", **fields: str) -> dict[str, Any]:
    response = await post_media(client, images.make_jpeg(), sub, **fields)
    assert response.status == 201
    body: dict[str, Any] = await response.json()
    return body


@through_pgbouncer
async def test_delete_removes_files_row_and_nginx_serves_404(
    client: Client, nginx: str, http: aiohttp.ClientSession
) -> None:
    """204, then no row, no object, and every variant URL is 404 through nginx.

    From a bucket, the variants were in nginx's cache (a TTL the test never reaches): the
    node purges them (`mediasvc.nginxcache`); tests/test_cache_purge.py covers two hosts.
    """
    media = await create(client)
    urls = [nginx + variant["url"] for variant in media["variants"].values()]
    for url in urls * 2:
        async with http.get(url) as response:
            assert response.status == 200
    async with http.delete(f"{nginx}/v1/media/{media['id']}", headers=bearer()) as response:
        assert response.status == 204
    assert await client.app[DB].fetchval("SELECT count(*) FROM media") == 0
    assert await stored_keys(client) == []

    async def gone() -> bool:
        for url in urls:
            async with http.get(url) as response:
                if response.status != 404:
                    return False
        return True

    # The purge reaches nginx's cache by a NOTIFY: milliseconds, far from the TTL.
    await wait_until(gone, "nginx serves 404 for every variant", 2.0, poll_s=0.02)
    assert (await client.get(f"/v1/media/{media['id']}")).status == 404


async def test_others_get_403_on_public_and_404_on_private(client: Client) -> None:
    """A stranger may not delete; private media do not even exist for them."""
    public = await create(client)
    private = await create(client, visibility="private")
    response = await client.delete(f"/v1/media/{public['id']}", headers=bearer("mallory"))
    assert response.status == 403
    response = await client.delete(f"/v1/media/{private['id']}", headers=bearer("mallory"))
    assert response.status == 404
    assert await client.app[DB].fetchval("SELECT count(*) FROM media") == 2


async def test_admin_may_delete_anyones_media(client: Client, settings: Settings) -> None:
    """An admin token acts on any owner's media, private included."""
    private = await create(client, visibility="private")
    response = await client.delete(f"/v1/media/{private['id']}", headers=bearer("root", admin=True))
    assert response.status == 204
    assert await stored_keys(client) == []


async def test_delete_needs_a_token(client: Client) -> None:
    """Anonymous deletes are 401."""
    media = await create(client)
    assert (await client.delete(f"/v1/media/{media['id']}")).status == 401


async def test_positions_stay_dense_after_deleting_from_the_middle(client: Client) -> None:
    """Deleting item 1 of 0..3 renumbers the rest 0..2 in the same order."""
    ids = [(await create(client, collection="profile"))["id"] for _ in range(4)]
    assert (await client.delete(f"/v1/media/{ids[1]}", headers=bearer())).status == 204
    assert await collection_positions(client, "profile") == [(ids[0], 0), (ids[2], 1), (ids[3], 2)]


@pytest.mark.parametrize("status", ["processing", "deleting"])
async def test_media_not_ready_cannot_be_deleted_again(client: Client, status: str) -> None:
    """A media mid-upload is 409; one already being deleted is gone for the API (404)."""
    media = await create(client)
    await client.app[DB].execute("UPDATE media SET status = $1", status)
    response = await client.delete(f"/v1/media/{media['id']}", headers=bearer())
    assert response.status == (409 if status == "processing" else 404)
