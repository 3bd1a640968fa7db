"""Caches purged on delete: a removed public variant leaves nginx's cache on every host at
once (`mediasvc.nginxcache`), for both Accept classes, whatever removed it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import images
import pytest
from gates import wait_until
from support import Client, bearer, post_media, running_nginx

from mediasvc.app import create_app
from mediasvc.appkeys import DB
from mediasvc.config import Settings
from mediasvc.nginxcache import CachePurger, cache_file, cache_keys, proxy_host

# Far beyond the test: only a purge can explain a 404 from a cached entry.
CACHE_TTL_S = 600
# How long "at once" may take on another node: a NOTIFY and an unlink, milliseconds.
PURGE_DEADLINE_S = 2.0
ACCEPTS = {"webp": "image/webp,*/*;q=0.8", "avif": "image/avif,image/webp,*/*;q=0.8"}


@pytest.fixture
def backend() -> str:
    """Only bucket variants go through nginx's cache."""
    return "s3"


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    """A cache TTL the test never reaches; avatars that replace the one before."""
    avatar = {"crop": "square", "collection_max": 1, "replace": True}
    result: Settings = make_settings(
        nginx_cache_ttl_s=CACHE_TTL_S, kinds_table={"kinds": {"avatar": avatar}}
    )
    return result


@dataclass
class Node:
    """One host: an app node and the nginx beside it, with the cache the node purges."""

    client: Client
    nginx: str
    cache_dir: Path


@pytest.fixture
async def nodes(
    settings: Settings, aiohttp_client: Any, data_dir: Path
) -> AsyncIterator[list[Node]]:
    """Two hosts on one database and one bucket, each nginx with its own cache."""
    async with contextlib.AsyncExitStack() as stack:
        result = []
        for name in ("a", "b"):
            cache_dir = data_dir / f"cache-{name}"
            node_settings = replace(settings, nginx_cache_dir=cache_dir)
            client: Client = await aiohttp_client(create_app(node_settings))
            nginx = await stack.enter_async_context(
                running_nginx(node_settings, [client.server.port])
            )
            result.append(Node(client, nginx, cache_dir))
        yield result


async def upload(node: Node, **fields: str) -> dict[str, Any]:
    response = await post_media(node.client, images.make_jpeg(), **fields)
    assert response.status == 201, await response.text()
    body: dict[str, Any] = await response.json()
    return body


def urls_of(media: dict[str, Any]) -> list[str]:
    return [variant["url"] for variant in media["variants"].values()]


async def get(http: aiohttp.ClientSession, url: str, accept: str) -> tuple[int, str | None]:
    async with http.get(url, headers={"Accept": accept}) as response:
        await response.read()
        return response.status, response.headers.get("X-Cache-Status")


async def warm(http: aiohttp.ClientSession, nodes: list[Node], urls: list[str]) -> None:
    """Every URL served twice by every nginx for each Accept class: the second from cache."""
    for node in nodes:
        for url in urls:
            for accept in ACCEPTS.values():
                await get(http, node.nginx + url, accept)
                assert await get(http, node.nginx + url, accept) == (200, "HIT")


async def all_gone(http: aiohttp.ClientSession, nodes: list[Node], urls: list[str]) -> None:
    """Wait (briefly: far below the TTL) until every nginx answers 404 for every URL."""

    async def gone() -> bool:
        for node in nodes:
            for url in urls:
                for accept in ACCEPTS.values():
                    if (await get(http, node.nginx + url, accept))[0] != 404:
                        return False
        return True

    await wait_until(gone, "every nginx drops the removed variants", PURGE_DEADLINE_S, 0.02)


def cached_files(cache_dir: Path) -> list[Path]:
    return [path for path in cache_dir.rglob("*") if path.is_file()]


class TestCacheFiles:
    async def test_the_app_names_the_files_nginx_writes(
        self, nodes: list[Node], http: aiohttp.ClientSession, settings: Settings
    ) -> None:
        """For each public variant, the cache files the app computes are those nginx wrote,
        one per Accept class, each holding that key."""
        node = nodes[0]
        media = await upload(node)
        await warm(http, [node], urls_of(media))
        expected = set()
        for url in urls_of(media):
            key = url.removeprefix(settings.public_media_url + "/")
            for cache_key in cache_keys(settings, key):
                if not cache_key.startswith("https"):  # nginx here listens on http
                    path = cache_file(node.cache_dir, cache_key)
                    assert f"\nKEY: {cache_key}\n".encode() in path.read_bytes()
                    expected.add(path)
        assert set(cached_files(node.cache_dir)) == expected
        assert len(expected) == 2 * len(urls_of(media))

    async def test_private_variants_are_never_cached(
        self, nodes: list[Node], http: aiohttp.ClientSession
    ) -> None:
        """A private variant fetched twice through nginx leaves nothing in its cache."""
        node = nodes[0]
        media = await upload(node, visibility="private")
        for url in urls_of(media):
            for _ in range(2):
                assert await get(http, node.nginx + url, ACCEPTS["avif"]) == (200, None)
        assert cached_files(node.cache_dir) == []

    def test_proxy_host_leaves_out_the_default_port(self) -> None:
        """`$proxy_host` spells a default port as nginx does: not at all."""
        assert proxy_host("http://s3.example:80") == "s3.example"
        assert proxy_host("https://s3.example") == "s3.example"
        assert proxy_host("http://127.0.0.1:9000") == "127.0.0.1:9000"
        assert proxy_host("https://[::1]:443") == "[::1]"


class TestPurgedOnEveryNode:
    async def test_deleted_variant_is_404_at_once_on_both_nodes(
        self, nodes: list[Node], http: aiohttp.ClientSession
    ) -> None:
        """Cached on both hosts for both Accept classes, deleted through one nginx: every
        URL answers 404 on both within milliseconds, long before the TTL."""
        media = await upload(nodes[0])
        urls = urls_of(media)
        await warm(http, nodes, urls)
        url = f"{nodes[1].nginx}/v1/media/{media['id']}"
        async with http.delete(url, headers=bearer()) as response:
            assert response.status == 204
        await all_gone(http, nodes, urls)
        assert [cached_files(node.cache_dir) for node in nodes] == [[], []]

    async def test_replaced_avatars_old_files_are_404_at_once(
        self, nodes: list[Node], http: aiohttp.ClientSession
    ) -> None:
        """A new avatar replaces the old one: the old one's cached files go on both hosts,
        the new one's are served."""
        old = await upload(nodes[0], kind="avatar")
        await warm(http, nodes, urls_of(old))
        new = await upload(nodes[1], kind="avatar")
        await all_gone(http, nodes, urls_of(old))
        for node in nodes:
            for url in urls_of(new):
                assert (await get(http, node.nginx + url, ACCEPTS["avif"]))[0] == 200

    async def test_a_purger_that_starts_later_catches_up(
        self, nodes: list[Node], http: aiohttp.ClientSession, settings: Settings, data_dir: Path
    ) -> None:
        """A host whose node was down during the delete: its purger, at start, applies the
        purges of the last TTL, so its nginx stops serving the old files too."""
        first = nodes[0]
        cache_dir = data_dir / "cache-c"
        late_settings = replace(settings, nginx_cache_dir=cache_dir)
        async with running_nginx(late_settings, [first.client.server.port]) as nginx:
            late = Node(first.client, nginx, cache_dir)
            media = await upload(first)
            await warm(http, [late], urls_of(media))
            async with http.delete(f"{first.nginx}/v1/media/{media['id']}", headers=bearer()):
                pass
            for url in urls_of(media):
                assert await get(http, late.nginx + url, ACCEPTS["webp"]) == (200, "HIT")
            purger = CachePurger(late_settings, first.client.app[DB], cache_dir)
            assert await purger.apply_recorded() == 2 * len(urls_of(media))
            for url in urls_of(media):
                for accept in ACCEPTS.values():
                    assert (await get(http, late.nginx + url, accept))[0] == 404
