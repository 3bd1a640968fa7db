"""A browser app on its own origin uses mediasvc through nginx, in a real headless Chromium:
the README's upload example with a bearer token and with a cookie session, a plain HTML
form sent back with `303`, and the same requests refused from a third origin."""

from __future__ import annotations

import html
import mimetypes
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import images
import pytest
from aiohttp import web
from browser import browser_context, site
from playwright.async_api import BrowserContext, Page
from support import Client, bearer

from mediasvc.appkeys import DB
from mediasvc.config import Settings
from mediasvc.stack.localproc import free_port

README = Path(__file__).resolve().parents[1] / "README.md"
COOKIE = "access_token"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>' + b" " * 4096

# Runs the README's `uploadImage` on the file chosen in the page; its outcome as data.
UPLOAD = """async ([api, token]) => {
    const progress = [];
    const file = document.querySelector("#file").files[0];
    try {
        const {media, location} = await uploadImage(
            api, file, {token, onProgress: (p) => progress.push(p)});
        return {ok: true, id: media.id, status: media.status, location, progress};
    } catch (error) {
        return {ok: false, message: error.message, problem: error.problem ?? null, progress};
    }
}"""


# A cross-origin POST a browser sends without asking first (no custom header, no upload
# listener), with the cookie: what a forged request from another page looks like.
SIMPLE_POST = """async (api) => {
    const form = new FormData();
    form.append("file", document.querySelector("#file").files[0]);
    await fetch(`${api}/v1/media`,
                {method: "POST", body: form, credentials: "include", mode: "no-cors"});
}"""


def readme_example() -> str:
    """The JavaScript example of "Using mediasvc from a browser app", as printed."""
    section = README.read_text().split("## Using mediasvc from a browser app", 1)[1]
    return section.split("```js\n", 1)[1].split("```", 1)[0]


@dataclass(frozen=True)
class Origins:
    """The browser app's origin (allowed), a third origin (not), and their ports."""

    app_port: int
    third_port: int

    @property
    def app(self) -> str:
        return f"http://127.0.0.1:{self.app_port}"

    @property
    def third(self) -> str:
        return f"http://127.0.0.1:{self.third_port}"


@pytest.fixture
def origins() -> Origins:
    """Two free loopback ports for the pages' sites."""
    return Origins(free_port(), free_port())


@pytest.fixture
def settings(make_settings: Callable[..., Settings], origins: Origins) -> Settings:
    """mediasvc allowing the app's origin, with sessions in the `access_token` cookie."""
    result: Settings = make_settings(cors_origins=(origins.app,), auth_cookie=COOKIE)
    return result


def pages(api: str) -> dict[str, Callable[[web.Request], str]]:
    """The pages each site serves: the script app, the example, a plain form, its landing."""

    def app(_: web.Request) -> str:
        return (
            '<!doctype html><html lang="en"><title>app</title>'
            '<input type="file" id="file" aria-label="Image">'
            '<script src="/upload.js"></script></html>'
        )

    def form(request: web.Request) -> str:
        back = html.escape(f"http://{request.host}/done?from=form")
        return (
            '<!doctype html><html lang="en"><title>form</title>'
            f'<form method="post" enctype="multipart/form-data" action="{api}/v1/media">'
            f'<input type="hidden" name="success_redirect" value="{back}">'
            '<input type="file" name="file" id="file" aria-label="Image">'
            '<button id="send">Upload</button></form></html>'
        )

    return {
        "/": app,
        "/upload.js": lambda _: readme_example(),
        "/form": form,
        "/done": lambda _: '<!doctype html><html lang="en"><title>done</title></html>',
    }


@pytest.fixture
async def sites(nginx: str, origins: Origins) -> AsyncIterator[None]:
    """The app's site and the third site, both serving the same pages."""
    async with site(origins.app_port, pages(nginx)), site(origins.third_port, pages(nginx)):
        yield


@pytest.fixture
async def browser(sites: None, nginx: str, origins: Origins) -> AsyncIterator[BrowserContext]:
    """Chromium that may reach the two sites and mediasvc's nginx, nothing else; no page
    may report a problem."""
    async with browser_context([origins.app, origins.third, nginx]) as (context, problems):
        yield context
        assert problems == []


async def choose(page: Page, name: str, data: bytes) -> None:
    """Put a file `name` holding `data` into the page's file input, typed by its extension
    as the browser types a file chosen from disk."""
    mime, _ = mimetypes.guess_type(name)
    assert mime is not None, name
    await page.locator("#file").set_input_files({"name": name, "mimeType": mime, "buffer": data})


async def sign_in_by_cookie(context: BrowserContext, sub: str, **where: str) -> None:
    """Give the browser `sub`'s session cookie (HttpOnly, SameSite=Lax), set for `where`
    (a `url`, or a `domain` and `path`)."""
    token = bearer(sub)["Authorization"].removeprefix("Bearer ")
    cookie = {"name": COOKIE, "value": token, **where, "httpOnly": True, "sameSite": "Lax"}
    await context.add_cookies([cookie])


async def media_count(client: Client) -> int:
    """How many media rows exist."""
    count: int = await client.app[DB].fetchval("SELECT count(*) FROM media")
    return count


async def test_bearer_upload_from_another_origin(
    client: Client,
    nginx: str,
    origins: Origins,
    browser: BrowserContext,
) -> None:
    """The README example, run on the app's origin with a bearer token, uploads with
    progress and reads Location, then reads a refusal's problem; from a third origin the
    preflight is refused and nothing is sent."""
    token = bearer("alice")["Authorization"].removeprefix("Bearer ")
    page = await browser.new_page()
    await page.goto(f"{origins.app}/")
    await choose(page, "photo.jpg", images.make_noisy_jpeg(width=1200, height=900))
    uploaded = await page.evaluate(UPLOAD, [nginx, token])
    assert uploaded["ok"], uploaded
    assert uploaded["status"] == "ready"
    assert uploaded["location"] == f"/v1/media/{uploaded['id']}"
    assert uploaded["progress"][-1] == 1
    assert uploaded["progress"] == sorted(uploaded["progress"])

    await choose(page, "drawing.svg", SVG)
    refused = await page.evaluate(UPLOAD, [nginx, token])
    assert not refused["ok"]
    assert refused["problem"]["status"] == 415
    assert refused["problem"]["code"] == "unsupported_media_type"
    assert refused["message"] == refused["problem"]["detail"]

    elsewhere = await browser.new_page()
    await elsewhere.goto(f"{origins.third}/")
    await choose(elsewhere, "photo.jpg", images.make_tiny())
    blocked = await elsewhere.evaluate(UPLOAD, [nginx, token])
    assert not blocked["ok"]
    assert blocked["problem"] is None  # the browser shows the third origin nothing
    assert await media_count(client) == 1


async def test_cookie_session_upload_and_csrf_from_a_third_origin(
    client: Client,
    nginx: str,
    origins: Origins,
    browser: BrowserContext,
) -> None:
    """With the session in an HttpOnly cookie the app's script uploads without seeing the
    token; on a third origin (same site, so the browser sends the cookie) the same script is
    refused at its preflight, and a POST that needs none gets the CSRF 403: nothing stored."""
    await sign_in_by_cookie(browser, "carol", domain="127.0.0.1", path="/")
    page = await browser.new_page()
    await page.goto(f"{origins.app}/")
    assert await page.evaluate("document.cookie") == ""
    await choose(page, "photo.jpg", images.make_jpeg())
    uploaded = await page.evaluate(UPLOAD, [nginx, None])
    assert uploaded["ok"], uploaded
    assert uploaded["location"] == f"/v1/media/{uploaded['id']}"
    owner = await client.app[DB].fetchval("SELECT owner FROM media WHERE id = $1", uploaded["id"])
    assert owner == "carol"

    elsewhere = await browser.new_page()
    await elsewhere.goto(f"{origins.third}/")
    await choose(elsewhere, "photo.jpg", images.make_jpeg())
    # The example's upload listener makes even a cookie upload ask first (a preflight,
    # which Playwright does not report): it is refused there, and nothing is sent.
    forged = await elsewhere.evaluate(UPLOAD, [nginx, None])
    assert not forged["ok"]
    assert forged["problem"] is None  # nor can that page read why
    # A request that needs no preflight reaches mediasvc with the cookie: the CSRF check
    # refuses it.
    async with elsewhere.expect_response(f"{nginx}/v1/media") as answer:
        await elsewhere.evaluate(SIMPLE_POST, nginx)
    assert (await answer.value).status == 403
    assert await media_count(client) == 1


async def test_plain_forms_come_back_with_303(
    client: Client,
    nginx: str,
    origins: Origins,
    browser: BrowserContext,
) -> None:
    """A form without script on the app's page, with the cookie session, lands back on the
    app with `media=<id>`, or with `error=<code>` when refused; the same form on a third
    origin gets the CSRF 403 problem."""
    await sign_in_by_cookie(browser, "dave", url=nginx)
    page = await browser.new_page()

    await page.goto(f"{origins.app}/form")
    await choose(page, "photo.jpg", images.make_jpeg())
    await page.locator("#send").click()
    await page.wait_for_url(f"{origins.app}/done?**")
    query = parse_qs(urlsplit(page.url).query)
    assert query["from"] == ["form"]
    (media_id,) = query["media"]
    stored = await client.get(f"/v1/media/{media_id}", headers=bearer("dave"))
    assert (await stored.json())["status"] == "ready"

    await page.goto(f"{origins.app}/form")
    await choose(page, "drawing.svg", SVG)
    await page.locator("#send").click()
    await page.wait_for_url(f"{origins.app}/done?**")
    assert parse_qs(urlsplit(page.url).query)["error"] == ["unsupported_media_type"]

    await page.goto(f"{origins.third}/form")
    await choose(page, "photo.jpg", images.make_jpeg())
    async with page.expect_navigation() as navigation:
        await page.locator("#send").click()
    response = await navigation.value
    assert response is not None
    assert response.status == 403
    assert (await response.json())["code"] == "forbidden"
    assert await media_count(client) == 1
