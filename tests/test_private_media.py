"""Private media: no plain URL, short-lived signed URLs that nginx itself verifies."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import images
from support import SIGNING_SECRET, Client, bearer, parametrize_backends, post_media

from mediasvc.config import Settings
from mediasvc.signing import sign_path

pytestmark = parametrize_backends


def flip_first(signature: str) -> str:
    """The signature with its first character changed. (Not the last: of a 16-byte digest's
    22 base64 characters, the last carries 2 data bits, so changing it may change nothing.)"""
    return ("B" if signature[0] == "A" else "A") + signature[1:]


async def create_private(client: Client) -> dict[str, Any]:
    response = await post_media(client, images.make_jpeg(), "alice", visibility="private")
    assert response.status == 201
    body: dict[str, Any] = await response.json()
    return body


class TestSignedUrls:
    async def test_owner_gets_signed_urls_that_nginx_serves_privately(
        self, client: Client, nginx: str, http: aiohttp.ClientSession, settings: Settings
    ) -> None:
        """Each variant URL in the owner's JSON works through nginx, not cacheable publicly."""
        media = await create_private(client)
        for variant in media["variants"].values():
            url = urlsplit(variant["url"])
            assert url.path.startswith("/private/")
            assert set(parse_qs(url.query)) == {"md5", "expires"}
            async with http.get(nginx + variant["url"]) as response:
                assert response.status == 200
                assert response.headers["Content-Type"] == "image/webp"
                assert response.headers["Cache-Control"].startswith("private")
                assert "immutable" not in response.headers["Cache-Control"]
                assert response.headers["X-Content-Type-Options"] == "nosniff"
                assert len(await response.read()) == variant["bytes"]

    async def test_private_files_are_not_at_any_plain_url(
        self, client: Client, nginx: str, http: aiohttp.ClientSession
    ) -> None:
        """Neither the public path nor the private path without a signature serves them."""
        media = await create_private(client)
        path = urlsplit(media["variants"]["full"]["url"]).path
        # The private path unsigned is refused as unsigned; the others are not ours to serve.
        for url, status in (
            (path, 403),
            (path.replace("/private/", "/media/"), 404),
            ("/media/private" + path[8:], 404),
        ):
            async with http.get(nginx + url) as response:
                assert response.status == status, url

    async def test_tampered_signature_is_403_and_expired_is_410(
        self, client: Client, nginx: str, http: aiohttp.ClientSession
    ) -> None:
        """nginx refuses a changed signature, a changed expiry, a wrong secret and old URLs,
        each as a problem with its code."""
        media = await create_private(client)
        path = urlsplit(media["variants"]["small"]["url"]).path
        good = sign_path(path, SIGNING_SECRET, 60)
        query = parse_qs(urlsplit(good).query)
        tampered = [
            f"{path}?md5={flip_first(query['md5'][0])}&expires={query['expires'][0]}",
            f"{path}?md5={query['md5'][0]}&expires={int(query['expires'][0]) + 3600}",
            sign_path(path, "wrong-secret-" + "z" * 32, 60),
            sign_path(path.replace("small", "full"), SIGNING_SECRET, 60).replace("full", "small"),
        ]
        for url in tampered:
            async with http.get(nginx + url) as response:
                assert response.status == 403, url
                assert response.headers["Content-Type"] == "application/problem+json"
                assert (await response.json(content_type=None))["code"] == "signature_invalid"
        expired = sign_path(path, SIGNING_SECRET, 60, now=time.time() - 3600)
        async with http.get(nginx + expired) as response:
            assert response.status == 410
            assert (await response.json(content_type=None))["code"] == "url_expired"

    async def test_signed_url_lasts_the_configured_ttl(
        self, client: Client, settings: Settings
    ) -> None:
        """The expiry in the URL is now + MEDIASVC_SIGNED_URL_TTL."""
        media = await create_private(client)
        expires = int(parse_qs(urlsplit(media["variants"]["full"]["url"]).query)["expires"][0])
        assert abs(expires - (time.time() + settings.signed_url_ttl_s)) < 10


class TestVariantRedirect:
    async def test_private_redirect_is_a_fresh_signed_url_for_the_owner_only(
        self, client: Client, nginx: str, http: aiohttp.ClientSession
    ) -> None:
        """302 to a signed URL that nginx serves; strangers get 404."""
        media = await create_private(client)
        path = f"/v1/media/{media['id']}/medium"
        async with http.get(nginx + path, headers=bearer(), allow_redirects=False) as response:
            assert response.status == 302
            location = response.headers["Location"]
        assert location.startswith("/private/")
        async with http.get(nginx + location) as response:
            assert response.status == 200
        async with http.get(nginx + path, headers=bearer("mallory"), allow_redirects=False) as r:
            assert r.status == 404

    async def test_public_redirect_is_the_plain_url(self, client: Client) -> None:
        """For public media the redirect goes to the immutable plain URL."""
        response = await post_media(client, images.make_jpeg())
        media = await response.json()
        response = await client.get(f"/v1/media/{media['id']}/thumbnail", allow_redirects=False)
        assert response.status == 302
        assert response.headers["Location"] == media["variants"]["thumbnail"]["url"]

    async def test_unknown_variant_is_404(self, client: Client) -> None:
        """Only the five variant names exist."""
        media = await create_private(client)
        response = await client.get(
            f"/v1/media/{media['id']}/original", headers=bearer(), allow_redirects=False
        )
        assert response.status == 404

    async def test_listing_hides_private_media_from_others(self, client: Client) -> None:
        """Another user's listing with ?owner= is refused; their own listing is empty."""
        await create_private(client)
        assert (await client.get("/v1/media?owner=alice", headers=bearer("bob"))).status == 403
        page = await (await client.get("/v1/media", headers=bearer("bob"))).json()
        assert page["items"] == []
