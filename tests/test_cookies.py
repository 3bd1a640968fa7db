"""Cookie sessions: the token may come in the `MEDIASVC_AUTH_COOKIE` cookie, and requests it
authenticates that change state must come from an allowed origin (CSRF)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import images
import pytest
from support import Client, assert_nothing_left, bearer, upload_form

from mediasvc.app import create_app
from mediasvc.appkeys import DB
from mediasvc.config import Settings

APP = "https://app.example.com"
SIBLING = "https://forum.example.com"  # same site, so SameSite=Lax still sends the cookie
COOKIE = "access_token"


def token(sub: str = "alice") -> str:
    """A valid session token for `sub`."""
    return bearer(sub)["Authorization"].removeprefix("Bearer ")


def session(sub: str = "alice") -> dict[str, str]:
    """The Cookie header a browser holding `sub`'s session sends."""
    return {"Cookie": f"{COOKIE}={token(sub)}"}


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """The app on APP, with its session in the `access_token` cookie."""
    result: Settings = make_settings(cors_origins=(APP,), auth_cookie=COOKIE)
    return result


async def upload(client: Client, **headers: str) -> Any:
    """POST one small image with `headers`; the response."""
    return await client.post("/v1/media", data=upload_form(images.make_tiny()), headers=headers)


class TestCookieToken:
    async def test_cookie_authenticates_reads_without_an_origin(self, client: Client) -> None:
        """A GET changes nothing: the cookie alone is enough."""
        response = await client.get("/v1/media", headers=session())
        assert response.status == 200
        assert (await response.json())["items"] == []

    async def test_bad_cookie_token_is_401(self, client: Client) -> None:
        """A cookie holding no valid token is refused like a bad bearer token."""
        response = await client.get("/v1/media", headers={"Cookie": f"{COOKIE}=nonsense"})
        assert response.status == 401
        assert (await response.json())["code"] == "unauthorized"

    async def test_other_cookies_are_not_tokens(self, client: Client) -> None:
        """Only the configured cookie name is read, and the refusal names it."""
        response = await client.get("/v1/media", headers={"Cookie": f"session={token()}"})
        assert response.status == 401
        assert f"{COOKIE!r} cookie" in (await response.json())["detail"]

    async def test_without_the_setting_cookies_are_ignored(
        self, make_settings: Callable[..., Settings], aiohttp_client: Any
    ) -> None:
        """Unset MEDIASVC_AUTH_COOKIE: a cookie never authenticates."""
        client: Client = await aiohttp_client(create_app(make_settings(cors_origins=(APP,))))
        response = await client.get("/v1/media", headers=session())
        assert response.status == 401
        assert "cookie" not in (await response.json())["detail"]

    async def test_authorization_header_wins_over_the_cookie(self, client: Client) -> None:
        """With both, the bearer header names the caller, and no CSRF check applies: no
        other origin's page can set that header."""
        response = await upload(client, **session("mallory"), **bearer("alice"), Origin=SIBLING)
        assert response.status == 201
        assert (await response.json())["owner"] == "alice"


class TestCookieTossing:
    @pytest.mark.parametrize(
        "cookies",
        [
            [f"{COOKIE}={token('mallory')}; {COOKIE}={token('alice')}"],
            [f"{COOKIE}={token('alice')}; theme=dark; {COOKIE}={token('mallory')}"],
            [f"{COOKIE}={token('alice')}", f"{COOKIE}={token('mallory')}"],
        ],
        ids=["tossed-first", "tossed-last", "two-headers"],
    )
    async def test_two_session_cookies_are_401_whichever_comes_first(
        self, client: Client, cookies: list[str]
    ) -> None:
        """A second cookie of the session's name (set by a sibling subdomain) makes the
        request 401 duplicate_cookie: neither token is taken, in any order or header."""
        headers = [("Cookie", cookie) for cookie in cookies]
        response = await client.get("/v1/media", headers=headers)
        assert response.status == 401
        problem = await response.json()
        assert problem["code"] == "duplicate_cookie"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")

    async def test_a_bearer_header_is_read_whatever_the_cookies(self, client: Client) -> None:
        """With an Authorization header the cookies are not read, so two of them do not matter."""
        cookies = f"{COOKIE}={token('mallory')}; {COOKIE}={token('eve')}"
        response = await client.get("/v1/media", headers={"Cookie": cookies, **bearer()})
        assert response.status == 200


class TestCsrf:
    async def test_upload_from_the_allowed_origin_is_accepted(self, client: Client) -> None:
        """The app's own page uploads with the cookie."""
        response = await upload(client, **session(), Origin=APP)
        assert response.status == 201
        assert (await response.json())["owner"] == "alice"

    async def test_referer_stands_in_for_a_missing_origin(self, client: Client) -> None:
        """Without Origin, the Referer's origin is checked instead."""
        response = await upload(client, **session(), Referer=f"{APP}/settings/photo?tab=1")
        assert response.status == 201

    @pytest.mark.parametrize(
        "where",
        [
            {"Origin": SIBLING},
            {"Origin": "null"},
            {"Referer": f"{SIBLING}/{APP}"},
            {"Referer": "not a url"},
            {},
        ],
        ids=["sibling-origin", "null-origin", "sibling-referer", "bad-referer", "neither"],
    )
    async def test_upload_from_elsewhere_is_403_and_stores_nothing(
        self, client: Client, settings: Settings, where: dict[str, str]
    ) -> None:
        """A cookie-authenticated upload from another origin, or from nowhere it says, is a
        cross-site request forgery: 403 forbidden, before a byte is stored."""
        response = await upload(client, **session(), **where)
        assert response.status == 403
        assert (await response.json())["code"] == "forbidden"
        await assert_nothing_left(client, settings)

    async def test_delete_from_elsewhere_is_403_and_keeps_the_media(self, client: Client) -> None:
        """DELETE is checked like POST: the media stays."""
        created = await (await upload(client, **bearer())).json()
        response = await client.delete(
            f"/v1/media/{created['id']}", headers={**session(), "Origin": SIBLING}
        )
        assert response.status == 403
        assert await client.app[DB].fetchval("SELECT count(*) FROM media") == 1
        response = await client.delete(
            f"/v1/media/{created['id']}", headers={**session(), "Origin": APP}
        )
        assert response.status == 204

    async def test_put_order_from_elsewhere_is_403(self, client: Client) -> None:
        """PUT is checked like POST."""
        response = await client.put(
            "/v1/collections/profile/order",
            json={"ids": []},
            headers={**session(), "Origin": SIBLING},
        )
        assert response.status == 403
