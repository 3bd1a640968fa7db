"""The project's nginx templates, rendered and run in front of the real app."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import aiohttp
import images
import pytest
from support import (
    JWT_SECRET,
    Client,
    bearer,
    oversize_head_answer,
    parametrize_backends,
    running_nginx,
    stored_bytes,
    upload_form,
)

from mediasvc.app import create_app
from mediasvc.auth import mint_token
from mediasvc.config import Settings
from mediasvc.stack.localproc import free_port
from mediasvc.stack.nginxconf import render_template

# Upload limits a test crosses quickly: six a minute with a burst of one, so a client's first
# two uploads pass at once and the next ones are refused.
TIGHT_UPLOADS = {"rate_uploads_per_min": 6, "rate_uploads_burst": 1}


async def upload_through(
    http: aiohttp.ClientSession, nginx: str, data: bytes, **fields: str
) -> dict[str, Any]:
    async with http.post(
        f"{nginx}/v1/media", data=upload_form(data, **fields), headers=bearer()
    ) as response:
        assert response.status == 201, await response.text()
        body: dict[str, Any] = await response.json()
        return body


async def upload_from_own_addresses(nginx: str, authorizations: list[str]) -> list[int]:
    """One tiny upload per Authorization value, each from its own loopback source address,
    so that nginx's per-address zone sees separate clients and only the token zone is shared."""
    return await upload_with_headers(nginx, [{"Authorization": a} for a in authorizations])


async def upload_with_headers(nginx: str, each: list[dict[str, str]]) -> list[int]:
    """One tiny upload per set of headers, each from its own loopback source address."""
    statuses = []
    for index, headers in enumerate(each):
        connector = aiohttp.TCPConnector(local_addr=(f"127.0.0.{index + 2}", 0))
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.post(
                f"{nginx}/v1/media", data=upload_form(images.make_tiny()), headers=headers
            ) as response,
        ):
            statuses.append(response.status)
    return statuses


@parametrize_backends
class TestUploadThroughNginx:
    async def test_upload_streams_through_nginx_and_variants_are_served_from_storage(
        self, nginx: str, http: aiohttp.ClientSession, client: Client
    ) -> None:
        """Every variant URL of a fresh upload is served by nginx with the stored bytes."""
        body = await upload_through(http, nginx, images.make_jpeg(width=1200, height=900))
        for variant in body["variants"].values():
            async with http.get(nginx + variant["url"]) as response:
                assert response.status == 200
                served = await response.read()
            stored = await stored_bytes(client, variant["url"].removeprefix("/media/"))
            assert served == stored
            assert len(served) == variant["bytes"]
            # The app stamps X-Request-Id on everything it answers: nginx alone served this.
            assert "X-Request-Id" not in response.headers

    async def test_variant_responses_carry_the_safe_headers(
        self, nginx: str, http: aiohttp.ClientSession
    ) -> None:
        """Immutable caching, nosniff, a locked-down CSP and the right type."""
        body = await upload_through(http, nginx, images.make_png(alpha=True))
        async with http.get(nginx + body["variants"]["small"]["url"]) as response:
            assert response.headers["Content-Type"] == "image/webp"
            assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
            assert "nginx/" not in response.headers.get("Server", "")

    async def test_get_media_through_nginx_matches_the_upload(
        self, nginx: str, http: aiohttp.ClientSession
    ) -> None:
        """The API answers the owner through nginx with the same JSON."""
        body = await upload_through(http, nginx, images.make_jpeg())
        # As the owner: anonymous readers get less (no sha256, no processing report).
        async with http.get(f"{nginx}/v1/media/{body['id']}", headers=bearer()) as response:
            assert response.status == 200
            assert await response.json() == body

    async def test_missing_variant_is_404_without_immutable_caching(
        self, nginx: str, http: aiohttp.ClientSession
    ) -> None:
        """A well-shaped key that does not exist is not cached for a year."""
        async with http.get(f"{nginx}/media/ab/{'a' * 22}/full.webp") as response:
            assert response.status == 404
            assert "Cache-Control" not in response.headers


class TestOperatorEndpoints:
    @pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "//readyz", "/%72eadyz"])
    async def test_operator_endpoints_are_404_through_nginx(
        self, nginx: str, http: aiohttp.ClientSession, client: Client, path: str
    ) -> None:
        """Health, readiness and metrics answer on each node's own port, never through nginx."""
        async with http.get(nginx + path) as response:
            assert response.status == 404
            # The app stamps X-Request-Id on what it answers: this 404 is nginx's own.
            assert "X-Request-Id" not in response.headers
        direct = await client.get("/healthz")
        assert direct.status == 200


class TestDiskLayout:
    @pytest.mark.parametrize(
        "path",
        [
            "/media/",
            "/media/ab/",
            "/media/ab/{id}/",
            "/media/ab/{id}/.full.webp.0123.tmp",
            "/media/ab/{id}/original.jpg",
            "/media/../etc/passwd",
        ],
    )
    async def test_only_variant_file_names_are_served(
        self, nginx: str, http: aiohttp.ClientSession, path: str, settings: Settings
    ) -> None:
        """Directories, temp files and anything not shaped like a variant are 404."""
        body = await upload_through(http, nginx, images.make_jpeg())
        media_dir = settings.media_dir / body["id"][:2] / body["id"]
        (media_dir / ".full.webp.0123.tmp").write_bytes(b"half-written")
        (media_dir / "original.jpg").write_bytes(b"not ours")
        url = nginx + path.replace("ab/{id}", f"{body['id'][:2]}/{body['id']}")
        async with http.get(url) as response:
            assert response.status == 404
            assert "Cache-Control" not in response.headers


class TestLimitsAtNginx:
    async def test_declared_oversize_body_is_refused_by_nginx_as_a_problem(
        self, nginx: str, http: aiohttp.ClientSession, settings: Settings
    ) -> None:
        """A Content-Length over the body limit never reaches the app; the 413 is a problem."""
        status, headers, payload = await oversize_head_answer(nginx, settings.body_limit_bytes)
        assert status == 413
        assert headers["Content-Type"] == "application/problem+json"
        problem = json.loads(payload)
        assert problem["code"] == "payload_too_large"
        assert problem["limit"] == settings.max_upload_bytes


class TestNoAppNode:
    async def test_no_app_node_is_a_503_problem_with_the_site_headers(
        self, settings: Settings, http: aiohttp.ClientSession
    ) -> None:
        """With nothing behind the upstream: 503 busy with Retry-After, nosniff kept."""
        async with (
            running_nginx(settings, [free_port()]) as base,
            http.get(f"{base}/v1/limits") as response,
        ):
            assert response.status == 503
            assert response.headers["Retry-After"] == "5"
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert response.headers["Referrer-Policy"] == "no-referrer"
            assert (await response.json(content_type="application/problem+json"))["code"] == "busy"


class TestTemplateRendering:
    def test_unknown_placeholder_is_an_error_not_a_blank(self) -> None:
        """A template asking for a value nobody provides fails loudly."""
        with pytest.raises(KeyError, match="MEDIASVC_NOPE"):
            render_template("listen ${MEDIASVC_NOPE};", {})

    def test_nginx_variables_are_left_alone(self) -> None:
        """Only ${MEDIASVC_*} placeholders are filled; nginx's $vars stay."""
        text = "proxy_set_header Host $host; listen ${MEDIASVC_LISTEN};"
        assert render_template(text, {"MEDIASVC_LISTEN": "1"}) == (
            "proxy_set_header Host $host; listen 1;"
        )


class TestTrustedProxies:
    @pytest.fixture
    def settings(self, make_settings: Any) -> Settings:
        """A balancer on loopback in front of nginx, and tight per-address limits."""
        result: Settings = make_settings(**TIGHT_UPLOADS, trusted_proxies=("127.0.0.1/32",))
        return result

    async def test_clients_behind_a_trusted_balancer_are_limited_by_their_own_address(
        self, nginx: str, http: aiohttp.ClientSession
    ) -> None:
        """Through a trusted balancer, four users at four addresses all upload, while two
        more uploads from one of those addresses cross its limit."""

        async def post(user: str, address: str) -> int:
            async with http.post(
                f"{nginx}/v1/media",
                data=upload_form(images.make_tiny()),
                headers={**bearer(user), "X-Forwarded-For": f"{address}, 127.0.0.1"},
            ) as response:
                return response.status

        assert [await post(f"user{n}", f"198.51.100.{n}") for n in range(4)] == [201] * 4
        again = [await post(f"other{n}", "198.51.100.0") for n in range(3)]
        assert again[0] == 201
        assert 429 in again[1:]


class TestAbuseLimits:
    @pytest.fixture
    def settings(self, make_settings: Any) -> Settings:
        """Tight limits so that a test can cross them quickly."""
        result: Settings = make_settings(
            **TIGHT_UPLOADS,
            rate_api_per_s=2,
            rate_api_burst=3,
            client_timeout_s=1,
        )
        return result

    async def test_upload_burst_past_the_rate_is_429_problem_with_retry_after(
        self, nginx: str, http: aiohttp.ClientSession
    ) -> None:
        """Uploads beyond rate + burst are refused by nginx as RFC 9457 problems."""
        statuses = []
        for _ in range(4):
            async with http.post(
                f"{nginx}/v1/media", data=upload_form(images.make_tiny()), headers=bearer()
            ) as response:
                statuses.append(response.status)
                if response.status == 429:
                    assert response.headers["Content-Type"] == "application/problem+json"
                    assert response.headers["Retry-After"] == "10"
                    assert (await response.json())["code"] == "too_many_requests"
        assert statuses[:2] == [201, 201]
        assert 429 in statuses[2:]

    async def test_a_forwarded_for_header_from_an_untrusted_peer_is_ignored(
        self, nginx: str, http: aiohttp.ClientSession
    ) -> None:
        """Without MEDIASVC_TRUSTED_PROXIES, a client cannot escape its address's limit by
        claiming other addresses in X-Forwarded-For."""
        statuses = []
        for n in range(4):
            async with http.post(
                f"{nginx}/v1/media",
                data=upload_form(images.make_tiny()),
                headers={**bearer(f"user{n}"), "X-Forwarded-For": f"198.51.100.{n}"},
            ) as response:
                statuses.append(response.status)
        assert statuses[:2] == [201, 201]
        assert 429 in statuses[2:]

    async def test_refusals_keep_the_site_headers(
        self, nginx: str, http: aiohttp.ClientSession
    ) -> None:
        """nginx's own 429 adds Retry-After without dropping nosniff and Referrer-Policy."""
        for _ in range(10):
            async with http.get(f"{nginx}/v1/limits") as response:
                if response.status == 429:
                    break
        assert response.status == 429
        assert response.headers["Retry-After"] == "10"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"

    async def test_respelled_tokens_share_one_upload_budget(
        self, nginx: str, settings: Settings
    ) -> None:
        """Case of "Bearer", extra spaces and a respelled signature are still one client."""
        header, payload, signature = mint_token(JWT_SECRET, "alice").split(".")
        # 32 signature bytes are 43 base64url characters; the last one's two low bits are
        # padding, so flipping its lowest bit spells the same signature differently.
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        respelled = signature[:-1] + alphabet[alphabet.index(signature[-1]) ^ 1]
        token = f"{header}.{payload}.{signature}"
        spellings = [
            f"Bearer {token}",
            f"bearer {token}",
            f"BEARER    {token}",
            # The app refuses this one (401, non-canonical padding), but as its own client it
            # would reach the app and spend a fresh bucket on every try.
            f"Bearer {header}.{payload}.{respelled}",
        ]
        statuses = await upload_from_own_addresses(nginx, spellings)
        # Rate 6/min with a burst of 1: two uploads of one client pass, the rest wait.
        assert statuses == [201, 201, 429, 429]

    async def test_distinct_tokens_have_budgets_of_their_own(
        self, nginx: str, settings: Settings
    ) -> None:
        """The same four addresses with four owners' tokens all get through."""
        spellings = [bearer(sub)["Authorization"] for sub in ("ann", "bob", "cat", "dan")]
        assert await upload_from_own_addresses(nginx, spellings) == [201] * 4

    async def test_reads_do_not_spend_the_upload_budget(
        self, nginx: str, http: aiohttp.ClientSession
    ) -> None:
        """Listing counts against the API rate only; an upload still goes through after."""
        for _ in range(2):
            async with http.get(f"{nginx}/v1/media", headers=bearer()) as response:
                assert response.status == 200
        async with http.post(
            f"{nginx}/v1/media", data=upload_form(images.make_tiny()), headers=bearer()
        ) as response:
            assert response.status == 201

    async def test_api_flood_from_one_address_is_429(
        self, nginx: str, http: aiohttp.ClientSession
    ) -> None:
        """Ten immediate reads against 2/s with a burst of 3: the tail is refused."""
        statuses = []
        for _ in range(10):
            async with http.get(f"{nginx}/v1/limits") as response:
                statuses.append(response.status)
        assert statuses[:4] == [200] * 4
        assert statuses.count(429) >= 4

    async def test_slow_client_is_cut_off(self, nginx: str) -> None:
        """Headers that never finish (slowloris): nginx closes the connection."""
        host, port = nginx.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"POST /v1/media HTTP/1.1\r\nHost: x\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)  # EOF once nginx gives up
        writer.close()
        assert answer == b"" or b" 408 " in answer.split(b"\r\n")[0]


class TestCookieRateLimit:
    @pytest.fixture
    def settings(self, make_settings: Any) -> Settings:
        """Tight upload limits, and sessions in the `sid` cookie for pages on APP."""
        result: Settings = make_settings(
            **TIGHT_UPLOADS,
            auth_cookie="__Host-sid.v2",
            cors_origins=("https://app.example.com",),
        )
        return result

    async def test_a_token_in_the_cookie_has_one_upload_budget(
        self, nginx: str, settings: Settings
    ) -> None:
        """The same token sent in the session cookie from four addresses is one client, and
        in the Authorization header the same client again: two uploads pass, the rest wait."""
        token = mint_token(JWT_SECRET, "alice")
        from_page = {"Origin": "https://app.example.com"}
        cookie = {"Cookie": f"theme=dark; __Host-sid.v2={token}", **from_page}
        statuses = await upload_with_headers(
            nginx, [cookie, cookie, cookie, {"Authorization": f"Bearer {token}"}]
        )
        assert statuses == [201, 201, 429, 429]

    async def test_cookies_of_other_tokens_have_budgets_of_their_own(
        self, nginx: str, settings: Settings
    ) -> None:
        """Four owners' session cookies from four addresses all get through, and another
        cookie's value is not taken for the token."""
        each = [
            {
                "Cookie": f"__Host-sid.v2={mint_token(JWT_SECRET, sub)}; other=a.b.c",
                "Origin": "https://app.example.com",
            }
            for sub in ("ann", "bob", "cat", "dan")
        ]
        assert await upload_with_headers(nginx, each) == [201] * 4


# Encodings a client may name: some aiohttp cannot decode (br and zstd without their
# modules, compress), some it does not recognise (a list of two).
HOSTILE_ENCODINGS = ["br", "zstd", "compress", "gzip, gzip", "gzip", "identity"]


class TestEncodedBodies:
    @pytest.fixture
    async def two_nodes(self, settings: Settings, aiohttp_client: Any) -> list[int]:
        """Two app nodes on the same settings; their ports."""
        nodes = [await aiohttp_client(create_app(settings)) for _ in range(2)]
        return [node.server.port for node in nodes]

    async def test_encoded_bodies_are_415_at_nginx_and_never_take_a_node_out(
        self, two_nodes: list[int], settings: Settings
    ) -> None:
        """Anonymous 4 MB PUTs with every kind of Content-Encoding, two at a time, between
        probes of GET /v1/limits through one nginx in front of two nodes: every hostile
        request is nginx's own 415 problem and every probe answers 200."""
        body = b"\n" * (16 * 1024 * 1024)
        async with running_nginx(settings, two_nodes) as base, aiohttp.ClientSession() as http:

            async def hostile(encoding: str) -> tuple[int, str, dict[str, Any]]:
                async with http.put(
                    f"{base}/v1/collections/c/order",
                    data=io.BytesIO(body),
                    headers={"Content-Encoding": encoding, "Content-Type": "application/json"},
                ) as response:
                    problem = await response.json(content_type=None)
                    return response.status, response.content_type, problem

            async def probe() -> int:
                async with http.get(f"{base}/v1/limits") as response:
                    await response.read()
                    return response.status

            refusals, probes = [], []
            for encoding in HOSTILE_ENCODINGS * 2:
                refusals += await asyncio.gather(hostile(encoding), hostile(encoding))
                probes.append(await probe())
        assert probes == [200] * len(probes)
        for status, content_type, problem in refusals:
            assert (status, content_type) == (415, "application/problem+json")
            assert problem["code"] == "unsupported_content_encoding"
            assert problem["status"] == 415
