"""AVIF beside WebP (issue 28): nginx answers a WebP variant's URL with its AVIF sibling when
the client's Accept lists image/avif and the sibling exists, else with the WebP, with
`Vary: Accept`; on local disk and from a bucket, public and signed, through nginx's cache.

The pipeline does not write AVIF siblings yet: tests upload through the app, then store an
AVIF of the same pixels next to each WebP variant through the app's own storage.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import images
import pytest
import pyvips
from aiohttp import web
from support import Client, parametrize_backends, post_media, running_nginx, signed, stored_bytes

from mediasvc.appkeys import STORAGE
from mediasvc.config import Settings
from mediasvc.stack.localproc import free_port

# What browsers send for images (Chrome, Firefox), and the other Accept classes.
AVIF = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
AVIF_OTHER_SPELLING = "image/avif;q=0.9,*/*"
WEBP = "image/webp,*/*"
AVIF_REFUSED = "image/avif;q=0,image/webp,*/*"


def vary(headers: Any) -> list[str]:
    """The header names a response varies on, in lower case, over all Vary lines."""
    return [n.strip().lower() for v in headers.getall("Vary", []) for n in v.split(",")]


def avif_of(webp: bytes) -> bytes:
    """The same pixels as `webp`, encoded as AVIF (AV1)."""
    image = pyvips.Image.new_from_buffer(webp, "")
    data: bytes = image.heifsave_buffer(compression="av1", Q=60, effort=0)
    return data


def variant_key(url: str) -> str:
    """The storage key of a variant URL (public or signed private)."""
    path = urlsplit(url).path
    return path.removeprefix("/media/") if path.startswith("/media/") else path[1:]


async def add_avif_siblings(client: Client, media: dict[str, Any]) -> dict[str, bytes]:
    """Store `<name>.avif` next to each `<name>.webp` of `media`, as the pipeline will;
    the AVIF bytes by variant URL."""
    storage = client.app[STORAGE]
    siblings = {}
    for variant in media["variants"].values():
        key = variant_key(variant["url"])
        assert key.endswith(".webp")
        avif = avif_of(await stored_bytes(client, key))
        # Written as the workers write variants (umask 022): nginx's workers read them.
        with tempfile.TemporaryDirectory() as scratch:
            source = Path(scratch) / "variant.avif"
            source.write_bytes(avif)
            await storage.put(key.removesuffix(".webp") + ".avif", source, "image/avif")
        siblings[variant["url"]] = avif
    return siblings


async def upload(client: Client, **fields: str) -> dict[str, Any]:
    """A photo uploaded through the app as alice; its JSON (owner's view: signed URLs)."""
    response = await post_media(client, images.make_jpeg(width=800, height=600), **fields)
    assert response.status == 201, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def fetch(
    http: aiohttp.ClientSession, url: str, accept: str | None, **headers: str
) -> tuple[int, Any, bytes]:
    """GET `url` with `accept` (None: no Accept header at all); status, headers, body."""
    sent = dict(headers)
    skip = ()
    if accept is None:
        skip = ("Accept",)
    else:
        sent["Accept"] = accept
    async with http.get(url, headers=sent, skip_auto_headers=skip) as response:
        return response.status, response.headers, await response.read()


@parametrize_backends
class TestServedByAccept:
    @pytest.mark.parametrize("visibility", ["public", "private"])
    async def test_avif_client_gets_the_avif_sibling_from_the_webp_url(
        self, client: Client, nginx: str, http: aiohttp.ClientSession, visibility: str
    ) -> None:
        """Every variant URL, public or signed, answers an AVIF-taking client with the AVIF
        bytes as image/avif, varying by Accept and Origin, cached as the WebP is."""
        media = await upload(client, visibility=visibility)
        siblings = await add_avif_siblings(client, media)
        for url, avif in siblings.items():
            status, headers, body = await fetch(http, nginx + url, AVIF)
            assert status == 200
            assert body == avif
            assert headers["Content-Type"] == "image/avif"
            assert sorted(vary(headers)) == ["accept", "origin"]
            assert headers["X-Content-Type-Options"] == "nosniff"
            expected = "public, max-age=31536000" if visibility == "public" else "private"
            assert headers["Cache-Control"].startswith(expected)

    @pytest.mark.parametrize("accept", [WEBP, None, AVIF_REFUSED])
    async def test_other_clients_get_the_webp_from_the_same_url(
        self, client: Client, nginx: str, http: aiohttp.ClientSession, accept: str | None
    ) -> None:
        """A client that does not list image/avif (or refuses it with q=0) gets the WebP,
        still with Vary: Accept."""
        media = await upload(client)
        await add_avif_siblings(client, media)
        for variant in media["variants"].values():
            status, headers, body = await fetch(http, nginx + variant["url"], accept)
            assert status == 200
            assert body == await stored_bytes(client, variant_key(variant["url"]))
            assert headers["Content-Type"] == "image/webp"
            assert sorted(vary(headers)) == ["accept", "origin"]

    @pytest.mark.parametrize("visibility", ["public", "private"])
    async def test_media_without_avif_answers_webp_to_an_avif_client(
        self, client: Client, nginx: str, http: aiohttp.ClientSession, visibility: str
    ) -> None:
        """Without a sibling (every media today) an AVIF client gets the WebP as before."""
        media = await upload(client, visibility=visibility)
        for variant in media["variants"].values():
            status, headers, body = await fetch(http, nginx + variant["url"], AVIF)
            assert status == 200
            assert body == await stored_bytes(client, variant_key(variant["url"]))
            assert headers["Content-Type"] == "image/webp"
            assert "accept" in vary(headers)

    async def test_direct_avif_url_is_served_as_it_is_without_vary_accept(
        self, client: Client, nginx: str, http: aiohttp.ClientSession
    ) -> None:
        """The sibling's own URL answers the AVIF to any client: nothing varies but Origin."""
        media = await upload(client)
        siblings = await add_avif_siblings(client, media)
        for url, avif in siblings.items():
            for accept in (AVIF, WEBP):
                status, headers, body = await fetch(
                    http, nginx + url.removesuffix(".webp") + ".avif", accept
                )
                assert (status, body) == (200, avif)
                assert headers["Content-Type"] == "image/avif"
                assert vary(headers) == ["origin"]

    async def test_missing_variant_is_404_for_an_avif_client_too(
        self, nginx: str, http: aiohttp.ClientSession
    ) -> None:
        """Neither sibling nor WebP: the same 404 as before, not cached for a year."""
        status, headers, _ = await fetch(http, f"{nginx}/media/ab/{'a' * 22}/full.webp", AVIF)
        assert status == 404
        assert "Cache-Control" not in headers

    async def test_avif_answer_is_revalidated_by_its_own_etag(
        self, client: Client, nginx: str, http: aiohttp.ClientSession
    ) -> None:
        """The AVIF answer carries its own ETag and Last-Modified; a browser's conditional
        request with them is a 304."""
        media = await upload(client)
        url = nginx + media["variants"]["small"]["url"]
        await add_avif_siblings(client, media)
        _, webp_headers, _ = await fetch(http, url, WEBP)
        _, headers, _ = await fetch(http, url, AVIF)
        assert headers["ETag"] != webp_headers["ETag"]
        assert "Last-Modified" in headers
        status, again, body = await fetch(http, url, AVIF, **{"If-None-Match": headers["ETag"]})
        assert (status, body) == (304, b"")
        assert "accept" in vary(again)


class TestBucketCache:
    @pytest.fixture
    def backend(self) -> str:
        """nginx's cache is for bucket reads."""
        return "s3"

    async def test_the_two_accept_classes_are_cached_apart(
        self, client: Client, nginx: str, http: aiohttp.ClientSession
    ) -> None:
        """Each class is a miss then a hit with its own bytes, and another spelling of
        "takes AVIF" hits the AVIF entry instead of making a third."""
        media = await upload(client)
        url = media["variants"]["medium"]["url"]
        avif = (await add_avif_siblings(client, media))[url]
        webp = await stored_bytes(client, variant_key(url))
        seen = []
        for accept in (AVIF, AVIF, WEBP, WEBP, AVIF_OTHER_SPELLING, None):
            status, headers, body = await fetch(http, nginx + url, accept)
            assert status == 200
            seen.append((headers["X-Cache-Status"], "avif" if body == avif else "webp"))
            assert body in (avif, webp)
        assert seen == [
            ("MISS", "avif"),
            ("HIT", "avif"),
            ("MISS", "webp"),
            ("HIT", "webp"),
            ("HIT", "avif"),
            ("HIT", "webp"),
        ]

    async def test_avif_client_without_sibling_is_cached_under_its_own_class(
        self, client: Client, nginx: str, http: aiohttp.ClientSession
    ) -> None:
        """An AVIF client's WebP (no sibling) is kept for that class: the next is a hit."""
        media = await upload(client)
        url = nginx + media["variants"]["small"]["url"]
        webp = await stored_bytes(client, variant_key(media["variants"]["small"]["url"]))
        statuses = []
        for _ in range(2):
            status, headers, body = await fetch(http, url, AVIF)
            assert (status, body, headers["Content-Type"]) == (200, webp, "image/webp")
            statuses.append(headers["X-Cache-Status"])
        assert statuses == ["MISS", "HIT"]


class PathBucket:
    """A bucket that answers each object key with its own status (200: a WebP-ish body,
    typed by the key's extension; missing keys 404) and logs the requests."""

    def __init__(self, statuses: dict[str, int]) -> None:
        self.statuses = statuses
        self.requests: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        key = request.path.split("/", 2)[2]
        self.requests.append(key)
        status = self.statuses.get(key, 404)
        if status == 200:
            kind = key.rsplit(".", 1)[1]
            return web.Response(body=kind.encode(), content_type=f"image/{kind}")
        return web.Response(status=status, text="<Error>bucket says no</Error>")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app


class TestBucketRequests:
    """What the fallback costs the bucket, and that its failures are answered as before."""

    KEY = f"ab/{'a' * 22}/full"

    @pytest.fixture
    def backend(self) -> str:
        """A bucket stands behind nginx."""
        return "s3"

    @pytest.fixture
    def ask(
        self,
        aiohttp_server: Any,
        make_settings: Callable[..., Settings],
        http: aiohttp.ClientSession,
    ) -> Callable[..., Any]:
        """nginx in front of a PathBucket whose statuses are by file name, the same for the
        public and the private key; GETs the public and the signed URL of KEY.webp with
        `accept`, `times` each; (answers, bucket requests)."""

        async def run(
            statuses: dict[str, int], accept: str, times: int = 1
        ) -> tuple[list[tuple[int, bytes]], list[str]]:
            directory = self.KEY.rsplit("/", 1)[0]
            bucket = PathBucket(
                {
                    f"{prefix}{directory}/{name}": status
                    for name, status in statuses.items()
                    for prefix in ("", "private/")
                }
            )
            server = await aiohttp_server(bucket.app())
            settings = make_settings(
                s3_endpoint_url=f"http://127.0.0.1:{server.port}", s3_bucket="media-fake"
            )
            answers = []
            async with running_nginx(settings, [free_port()]) as base:
                for path in (f"/media/{self.KEY}.webp", signed(f"{self.KEY}.webp")):
                    for _ in range(times):
                        status, _, body = await fetch(http, base + path, accept)
                        answers.append((status, body))
            return answers, bucket.requests

        return run

    async def test_missing_sibling_costs_one_bucket_request_per_cache_miss(
        self, ask: Callable[..., Any]
    ) -> None:
        """An AVIF client of a WebP-only variant: the sibling's 404 then the WebP, once for
        the public URL (then cached), each time for the uncached private one."""
        answers, requests = await ask({"full.webp": 200}, AVIF, times=2)
        assert answers == [(200, b"webp")] * 4
        assert requests == [
            f"{self.KEY}.avif",
            f"{self.KEY}.webp",
            *[f"private/{self.KEY}.avif", f"private/{self.KEY}.webp"] * 2,
        ]

    async def test_webp_client_asks_the_bucket_for_the_webp_only(
        self, ask: Callable[..., Any]
    ) -> None:
        """A client without AVIF costs what it did before: one request, none for a sibling."""
        answers, requests = await ask({"full.webp": 200}, WEBP)
        assert answers == [(200, b"webp")] * 2
        assert requests == [f"{self.KEY}.webp", f"private/{self.KEY}.webp"]

    @pytest.mark.parametrize(
        ("statuses", "expected"),
        [
            # Neither file: the plain 404, after asking for both.
            ({}, 404),
            # The bucket fails for the sibling: busy, not a silent WebP.
            ({"full.avif": 503, "full.webp": 200}, 503),
            # The sibling is missing and the bucket fails for the WebP: busy.
            ({"full.webp": 500}, 503),
            # The bucket refuses the WebP: the same 404 as any refusal.
            ({"full.webp": 403}, 404),
        ],
        ids=["neither", "sibling-fails", "webp-fails", "webp-refused"],
    )
    async def test_bucket_failures_on_either_key_are_answered_as_before(
        self, ask: Callable[..., Any], statuses: dict[str, int], expected: int
    ) -> None:
        """The fallback keeps the read path's answers: 404 for a refusal or nothing, 503
        busy for a failure, never the bucket's body."""
        answers, _ = await ask(statuses, AVIF)
        for status, body in answers:
            assert status == expected
            assert b"<Error>" not in body
            if expected == 503:
                assert b'"code": "busy"' in body
