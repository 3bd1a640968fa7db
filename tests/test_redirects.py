"""Plain HTML forms: `success_redirect` turns an upload's answer into `303 See Other` back to
the product's page, `media=<id>` on success and `error=<code>` on a refusal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import images
import pytest
from support import (
    Client,
    assert_nothing_left,
    bearer,
    field_part,
    file_part,
    multipart_body,
    upload_form,
)

from mediasvc.app import create_app
from mediasvc.appkeys import DB
from mediasvc.config import Settings
from mediasvc.web.redirects import see_other

APP = "https://app.example.com"
COOKIE = "access_token"
PAGE = f"{APP}/profile/photo?tab=avatar"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"/>' + b" " * 5000


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """The app on APP, with its session in a cookie."""
    result: Settings = make_settings(cors_origins=(APP,), auth_cookie=COOKIE)
    return result


def form_post(sub: str = "alice") -> dict[str, str]:
    """The headers a browser sends with a form posted from APP by `sub`'s session."""
    token = bearer(sub)["Authorization"].removeprefix("Bearer ")
    return {"Cookie": f"{COOKIE}={token}", "Origin": APP}


def redirected(response: Any) -> tuple[str, dict[str, list[str]]]:
    """Where a 303 points, without its query, and its query."""
    assert response.status == 303
    parts = urlsplit(response.headers["Location"])
    return parts._replace(query="").geturl(), parse_qs(parts.query)


async def post(client: Client, data: Any, **headers: str) -> Any:
    """POST /v1/media without following redirects (they go to another origin)."""
    return await client.post(
        "/v1/media", data=data, headers={**form_post(), **headers}, allow_redirects=False
    )


async def test_success_is_303_to_the_page_with_the_media_id(client: Client) -> None:
    """The stored media's id is added to the page's query; the page's own query is kept."""
    response = await post(client, upload_form(images.make_tiny(), success_redirect=PAGE))
    where, query = redirected(response)
    assert where == f"{APP}/profile/photo"
    assert query["tab"] == ["avatar"]
    (media_id,) = query["media"]
    assert "error" not in query
    stored = await client.get(f"/v1/media/{media_id}", headers=bearer("alice"))
    assert (await stored.json())["status"] == "ready"


async def test_refusal_while_the_file_streams_is_303_with_its_code(
    client: Client, settings: Settings
) -> None:
    """An SVG is refused while its bytes arrive, after the redirect was read: 303 with
    error=unsupported_media_type, and nothing kept."""
    data = upload_form(
        SVG,
        filename="x.svg",
        content_type="image/svg+xml",
        success_redirect=PAGE,
    )
    _, query = redirected(await post(client, data))
    assert query["error"] == ["unsupported_media_type"]
    assert "media" not in query
    await assert_nothing_left(client, settings)


async def test_refusal_by_the_image_workers_is_303_with_its_code(
    client: Client, settings: Settings
) -> None:
    """A truncated JPEG fails in processing, long after the body was read: still a 303."""
    data = upload_form(images.make_jpeg()[:600], success_redirect=PAGE)
    _, query = redirected(await post(client, data))
    assert query["error"] == ["invalid_image"]
    await assert_nothing_left(client, settings)


async def test_refusal_of_a_later_field_is_303(client: Client) -> None:
    """A bad field after the redirect is refused as a redirect too."""
    body, content_type = multipart_body(
        [field_part("success_redirect", PAGE), field_part("visibility", "everyone")]
    )
    response = await post(client, body, **{"Content-Type": content_type})
    _, query = redirected(response)
    assert query["error"] == ["bad_request"]


async def test_redirect_read_after_the_refusal_does_not_apply(client: Client) -> None:
    """A refusal raised before the field arrives is the usual problem: the redirect was
    never read (send it before the file)."""
    svg = file_part(SVG, filename="x.svg", content_type="image/svg+xml")
    body, content_type = multipart_body([svg, field_part("success_redirect", PAGE)])
    response = await post(client, body, **{"Content-Type": content_type})
    assert response.status == 415
    assert response.content_type == "application/problem+json"


@pytest.mark.parametrize(
    "page",
    [
        "https://evil.example.net/phish",
        "http://app.example.com/",  # another scheme is another origin
        "https://app.example.com.evil.net/",
        "//app.example.com/",
        "/profile",
        "javascript:alert(1)",
        "https://alice@app.example.com/",
    ],
)
async def test_redirect_anywhere_else_is_400(client: Client, settings: Settings, page: str) -> None:
    """Only absolute URLs on an allowed origin: anything else is a 400 problem naming the
    field, never a redirect, and nothing is stored."""
    response = await post(client, upload_form(images.make_tiny(), success_redirect=page))
    assert response.status == 400
    problem = await response.json()
    assert problem["code"] == "bad_request"
    assert problem["field"] == "success_redirect"
    assert "Location" not in response.headers
    await assert_nothing_left(client, settings)


async def test_redirect_without_configured_origins_is_400(
    make_settings: Callable[..., Settings], aiohttp_client: Any
) -> None:
    """With no allowed origin there is nowhere to go back to."""
    client: Client = await aiohttp_client(create_app(make_settings()))
    response = await client.post(
        "/v1/media",
        data=upload_form(images.make_tiny(), success_redirect=PAGE),
        headers=bearer(),
        allow_redirects=False,
    )
    assert response.status == 400
    assert await client.app[DB].fetchval("SELECT count(*) FROM media") == 0


async def test_without_the_field_answers_stay_json(client: Client) -> None:
    """A cookie session without success_redirect gets the usual 201 JSON."""
    response = await post(client, upload_form(images.make_tiny()))
    assert response.status == 201
    assert response.content_type == "application/json"


def test_see_other_replaces_its_own_parameters() -> None:
    """A page that already carries `media` or `error` gets the new value, not a second one."""
    response = see_other(f"{APP}/done?error=old&media=old&keep=1#frag", media="new")
    parts = urlsplit(response.headers["Location"])
    assert parse_qs(parts.query) == {"keep": ["1"], "media": ["new"]}
    assert parts.fragment == "frag"
    assert response.headers["Cache-Control"] == "no-store"
