"""CORS: which origins may call the API from a browser, and what they are told, from the app
and from nginx's own refusals."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import images
import pytest
from site_checks import assert_nginx_accepts, gixy_findings, rendered_site
from support import (
    Client,
    bearer,
    oversize_head_answer,
    running_nginx,
    upload_form,
    upload_tiny,
)

from mediasvc.app import create_app
from mediasvc.config import ConfigError, Settings
from mediasvc.origins import origin_of, parse_origin

APP = "https://app.example.com"
DEV = "http://localhost:5173"
OTHER = "https://evil.example.net"


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """Two browser apps allowed."""
    result: Settings = make_settings(cors_origins=(APP, DEV))
    return result


def preflight_headers(origin: str, method: str = "POST", headers: str = "") -> dict[str, str]:
    """What a browser sends before a cross-origin request it may not send unasked."""
    sent = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        sent["Access-Control-Request-Headers"] = headers
    return sent


def vary(headers: Any) -> list[str]:
    """The header names a response varies on, in lower case."""
    return [name.strip().lower() for name in headers.get("Vary", "").split(",") if name.strip()]


class TestPreflight:
    @pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
    @pytest.mark.parametrize("origin", [APP, DEV])
    async def test_allowed_origin_may_send_the_api_headers(
        self, client: Client, origin: str, method: str
    ) -> None:
        """A preflight from an allowed origin is answered with the methods and request
        headers the API takes, credentials allowed, the origin echoed, cached a while."""
        # The API's headers, and what Dropzone sends by default.
        asked = (
            "authorization, content-type, idempotency-key, prefer, cache-control, x-requested-with"
        )
        response = await client.options(
            "/v1/media", headers=preflight_headers(origin, method, asked)
        )
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == origin
        assert response.headers["Access-Control-Allow-Credentials"] == "true"
        methods = response.headers["Access-Control-Allow-Methods"].split(", ")
        assert {"POST", "PUT", "DELETE"} <= set(methods)
        allowed = response.headers["Access-Control-Allow-Headers"].lower().split(", ")
        assert set(asked.split(", ")) <= set(allowed)
        assert int(response.headers["Access-Control-Max-Age"]) > 0
        assert "origin" in vary(response.headers)

    async def test_preflight_for_any_api_path_is_answered(self, client: Client) -> None:
        """Collections and single media are preflighted like uploads."""
        for path in ("/v1/collections/profile/order", "/v1/media/k3Jx9QmT2vLr8WcA5nYpZb"):
            response = await client.options(path, headers=preflight_headers(APP, "PUT"))
            assert response.status == 204
            assert response.headers["Access-Control-Allow-Origin"] == APP

    @pytest.mark.parametrize(
        "origin", [OTHER, "null", "https://app.example.com.evil.net", "http://app.example.com"]
    )
    async def test_other_origins_are_refused_without_cors_headers(
        self, client: Client, origin: str
    ) -> None:
        """Any origin not listed exactly (another scheme or a longer host too) gets a 403
        problem and no Access-Control-Allow-* header, so the browser sends nothing more."""
        response = await client.options("/v1/media", headers=preflight_headers(origin))
        assert response.status == 403
        assert (await response.json(content_type="application/problem+json"))["code"] == (
            "forbidden"
        )
        assert not [name for name in response.headers if name.startswith("Access-Control-")]
        assert "origin" in vary(response.headers)


class TestActualResponses:
    async def test_success_exposes_location_and_request_id(self, client: Client) -> None:
        """An upload from an allowed origin shows its Location and X-Request-Id to the app."""
        response = await client.post(
            "/v1/media",
            data=upload_form(images.make_tiny()),
            headers={**bearer(), "Origin": APP},
        )
        assert response.status == 201
        assert response.headers["Access-Control-Allow-Origin"] == APP
        assert response.headers["Access-Control-Allow-Credentials"] == "true"
        exposed = response.headers["Access-Control-Expose-Headers"].split(", ")
        assert {"Location", "X-Request-Id", "Retry-After"} <= set(exposed)
        assert "Location" in response.headers
        assert "X-Request-Id" in response.headers
        assert "origin" in vary(response.headers)

    @pytest.mark.parametrize(
        ("method", "path", "status"),
        [
            ("POST", "/v1/media", 401),  # no token
            ("GET", "/v1/media/k3Jx9QmT2vLr8WcA5nYpZb", 404),
            ("GET", "/v1/nowhere", 404),  # no route at all
            ("PATCH", "/v1/media", 405),
        ],
    )
    async def test_problems_carry_the_cors_headers(
        self, client: Client, method: str, path: str, status: int
    ) -> None:
        """Refusals are readable by the app too: its script can show the problem's words."""
        response = await client.request(method, path, headers={"Origin": DEV})
        assert response.status == status
        assert response.content_type == "application/problem+json"
        assert response.headers["Access-Control-Allow-Origin"] == DEV
        assert response.headers["Access-Control-Allow-Credentials"] == "true"

    async def test_other_origin_gets_the_answer_but_no_cors_headers(self, client: Client) -> None:
        """The server still answers; without Access-Control-Allow-Origin the browser keeps the
        answer from the other origin's script."""
        response = await client.get("/v1/limits", headers={"Origin": OTHER})
        assert response.status == 200
        assert "Access-Control-Allow-Origin" not in response.headers
        assert "Access-Control-Allow-Credentials" not in response.headers
        assert "origin" in vary(response.headers)

    async def test_requests_without_origin_vary_on_it_too(self, client: Client) -> None:
        """A cache in between must not hand an answer without CORS headers to a browser app."""
        response = await client.get("/v1/limits")
        assert "Access-Control-Allow-Origin" not in response.headers
        assert "origin" in vary(response.headers)


async def test_without_configured_origins_there_is_no_cors(
    make_settings: Callable[..., Settings], aiohttp_client: Any
) -> None:
    """Unset MEDIASVC_CORS_ORIGINS: no origin is allowed and no CORS header is sent."""
    client: Client = await aiohttp_client(create_app(make_settings()))
    response = await client.options("/v1/media", headers=preflight_headers(APP))
    assert response.status == 405
    assert "Access-Control-Allow-Origin" not in response.headers
    response = await client.get("/v1/limits", headers={"Origin": APP})
    assert "Access-Control-Allow-Origin" not in response.headers


class TestNginxRefusals:
    async def test_nginx_413_carries_the_cors_headers(
        self, client: Client, settings: Settings
    ) -> None:
        """A declared oversize body refused by nginx itself is readable by an allowed app."""
        async with running_nginx(settings, [client.server.port]) as base:
            status, headers, payload = await oversize_head_answer(
                base, settings.body_limit_bytes, f"Origin: {APP}"
            )
        assert status == 413
        assert json.loads(payload)["code"] == "payload_too_large"
        assert headers["Access-Control-Allow-Origin"] == APP
        assert headers["Access-Control-Allow-Credentials"] == "true"
        assert "Retry-After" in headers["Access-Control-Expose-Headers"]
        assert "origin" in vary(headers)
        assert headers["X-Content-Type-Options"] == "nosniff"

    @pytest.mark.parametrize(("origin", "echoed"), [(APP, APP), (OTHER, None)])
    async def test_nginx_429_carries_the_cors_headers_for_allowed_origins_only(
        self,
        make_settings: Callable[..., Settings],
        aiohttp_client: Any,
        http: aiohttp.ClientSession,
        origin: str,
        echoed: str | None,
    ) -> None:
        """nginx's rate-limit refusal shows its Retry-After to an allowed app, and nothing
        to another origin."""
        settings = make_settings(cors_origins=(APP,), rate_api_per_s=1, rate_api_burst=1)
        client: Client = await aiohttp_client(create_app(settings))
        async with running_nginx(settings, [client.server.port]) as base:
            for _ in range(10):
                async with http.get(f"{base}/v1/limits", headers={"Origin": origin}) as response:
                    if response.status == 429:
                        break
        assert response.status == 429
        assert response.headers.get("Access-Control-Allow-Origin") == echoed
        if echoed is not None:
            assert response.headers["Access-Control-Allow-Credentials"] == "true"
            assert "Retry-After" in response.headers["Access-Control-Expose-Headers"]
        else:
            assert "Access-Control-Allow-Credentials" not in response.headers
        assert "origin" in vary(response.headers)
        assert response.headers["Retry-After"]

    async def test_preflight_passes_through_nginx(
        self, client: Client, settings: Settings, http: aiohttp.ClientSession
    ) -> None:
        """nginx hands OPTIONS to the app, which answers the preflight."""
        async with (
            running_nginx(settings, [client.server.port]) as base,
            http.options(
                f"{base}/v1/media", headers=preflight_headers(APP, "POST", "authorization")
            ) as response,
        ):
            assert response.status == 204
            assert response.headers["Access-Control-Allow-Origin"] == APP


class TestOrigins:
    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            ("https://app.example.com,http://localhost:5173", (APP, DEV)),
            (" https://App.Example.com:443 , https://app.example.com ", (APP,)),
            ("http://127.0.0.1:8080", ("http://127.0.0.1:8080",)),
            ("http://[::1]:5173", ("http://[::1]:5173",)),
        ],
    )
    def test_configured_origins_are_read_in_one_spelling(
        self, raw: str, expected: tuple[str, ...]
    ) -> None:
        """Case and default ports do not matter; duplicates collapse."""
        env = {
            "MEDIASVC_DATABASE_URL": "postgresql://x/db",
            "MEDIASVC_URL_SIGNING_SECRET": "k" * 32,
            "MEDIASVC_JWT_SECRET": "s" * 32,
            "MEDIASVC_CORS_ORIGINS": raw,
        }
        assert Settings.from_env(env).cors_origins == expected

    @pytest.mark.parametrize(
        ("raw", "message"),
        [
            ("*", "wildcard"),
            ("https://*.example.com", "wildcard"),
            ("https://app.example.com/", "not an origin"),
            ("app.example.com", "not an origin"),
            ("ftp://app.example.com", "not an origin"),
            ('https://app.example.com";', "not an origin"),
        ],
    )
    def test_wildcards_and_non_origins_stop_startup(self, raw: str, message: str) -> None:
        """Only exact origins are accepted; anything else stops startup naming the variable."""
        env = {
            "MEDIASVC_DATABASE_URL": "postgresql://x/db",
            "MEDIASVC_URL_SIGNING_SECRET": "k" * 32,
            "MEDIASVC_JWT_SECRET": "s" * 32,
            "MEDIASVC_CORS_ORIGINS": raw,
        }
        with pytest.raises(ConfigError, match=f"MEDIASVC_CORS_ORIGINS.*{message}"):
            Settings.from_env(env)

    @pytest.mark.parametrize(
        ("url", "origin"),
        [
            ("https://app.example.com/uploaded?x=1#top", APP),
            ("HTTPS://APP.EXAMPLE.COM:443/", APP),
            ("http://localhost:5173/", DEV),
            ("https://user:pw@app.example.com/", None),
            ("//app.example.com/", None),
            ("/uploaded", None),
            ("javascript:alert(1)", None),
            ("https://app.example.com:99999/", None),
        ],
    )
    def test_origin_of_a_url(self, url: str, origin: str | None) -> None:
        """A URL's origin in the configured spelling, or None for anything but an absolute
        http(s) URL without credentials."""
        assert origin_of(url) == origin

    def test_parse_origin_refuses_paths(self) -> None:
        """A configured origin is exactly scheme://host[:port]."""
        assert parse_origin("http://localhost:80") == "http://localhost"
        with pytest.raises(ValueError, match="not an origin"):
            parse_origin("https://app.example.com/path")


def test_site_with_allowed_origins_passes_gixy(tmp_path: Path) -> None:
    """The origin map nginx is given passes gixy-ng (origin checks among them) and nginx -t."""
    config = rendered_site(tmp_path, "local", "one", cors_origins=(APP, DEV, "http://[::1]:5173"))
    assert f'"{APP}" "{APP}";' in (config.parent / "mediasvc.conf").read_text()
    assert gixy_findings(config) == []
    assert_nginx_accepts(config)


@pytest.mark.parametrize("backend", ["local", "s3"], indirect=True)
class TestVariantFiles:
    async def test_files_are_readable_by_allowed_apps_and_embeddable_anywhere(
        self, client: Client, settings: Settings
    ) -> None:
        """A public variant served by nginx echoes an allowed origin (a script may read it),
        sends no CORS header to another origin, and lets any page embed it (CORP)."""
        response = await upload_tiny(client)
        url = (await response.json())["variants"]["small"]["url"]
        async with (
            running_nginx(settings, [client.server.port]) as base,
            aiohttp.ClientSession() as http,
        ):
            async with http.get(base + url, headers={"Origin": APP}) as allowed:
                assert allowed.status == 200
                assert allowed.headers["Access-Control-Allow-Origin"] == APP
                assert allowed.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
                assert "origin" in vary(allowed.headers)
            async with http.get(base + url, headers={"Origin": OTHER}) as other:
                assert other.status == 200
                assert "Access-Control-Allow-Origin" not in other.headers
                assert other.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
