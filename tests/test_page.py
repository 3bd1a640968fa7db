"""The upload page at `/` in a real headless Chromium (Debian's package, driven by Playwright)
against the real stack: nginx, the app, PostgreSQL and files on disk."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import images
import pytest
from browser import CHROMIUM_ARGS, WAIT_MS, chromium_path
from playwright.async_api import Page, Request, Route, async_playwright
from support import Client, bearer

from mediasvc.app import create_app
from mediasvc.config import Settings
from mediasvc.imaging.formats import HEIF_AVAILABLE
from mediasvc.imaging.placeholder import rgba_pixels, thumbhash
from mediasvc.imaging.variants import VARIANTS
from mediasvc.web.page import content_security_policy

SVG = (
    b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
    b"<script>alert(1)</script></svg>"
)


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium; Playwright never downloads a browser of its own here."""
    return chromium_path()


@asynccontextmanager
async def browser_page(chromium: Path, origin: str) -> AsyncIterator[tuple[Page, list[str]]]:
    """A fresh Chromium tab that may only reach `origin`; yields it and a list that
    collects problems: script errors, console errors (CSP refusals among them) and
    requests to anywhere else, which are aborted."""
    problems: list[str] = []

    async def loopback_only(route: Route, request: Request) -> None:
        if request.url.startswith((f"{origin}/", "data:", "blob:")):
            await route.continue_()
        else:
            problems.append(f"request outside {origin}: {request.url}")
            await route.abort()

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(chromium), args=CHROMIUM_ARGS, timeout=WAIT_MS
        )
        try:
            context = await browser.new_context(viewport={"width": 1200, "height": 900})
            await context.route("**/*", loopback_only)
            page = await context.new_page()
            page.set_default_timeout(WAIT_MS)
            page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
            page.on(
                "console",
                lambda message: (
                    problems.append(f"console: {message.text}")
                    # Chromium logs every non-2xx answer; the refusals under test are expected.
                    if message.type == "error" and "Failed to load resource" not in message.text
                    else None
                ),
            )
            yield page, problems
        finally:
            await browser.close()


async def upload_states(page: Page) -> list[str]:
    """The states upload cards went through, in order (recorded by `record_states`)."""
    states: list[str] = await page.evaluate("window.__states")
    return states


async def record_states(page: Page) -> None:
    """Record every `data-state` an upload card takes, however briefly."""
    await page.evaluate(
        """() => {
            window.__states = [];
            new MutationObserver((records) => {
                for (const r of records) {
                    const node = r.type === "attributes" ? r.target : null;
                    if (node && node.matches(".upload")) window.__states.push(node.dataset.state);
                }
            }).observe(document.querySelector("#uploads"),
                       {subtree: true, attributes: true, attributeFilter: ["data-state"]});
        }"""
    )


async def test_page_uploads_shows_variants_and_refusals_and_deletes(
    client: Client, nginx: str, chromium: Path, tmp_path: Path, record_property: Any
) -> None:
    """Through nginx, a browser uploads two images and sees their five variants over a
    placeholder, sees an SVG refused in words, and lists and deletes its media."""
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(images.make_jpeg(width=1600, height=1200, orientation=6, gps=True))
    graphic = tmp_path / "graphic.png"
    graphic.write_bytes(images.make_png(alpha=True))
    drawing = tmp_path / "drawing.svg"
    drawing.write_bytes(SVG)
    screenshot = tmp_path / "page.png"
    token = bearer("alice")["Authorization"].removeprefix("Bearer ")

    async with browser_page(chromium, nginx) as (page, problems):
        response = await page.goto(f"{nginx}/")
        assert response is not None
        assert response.status == 200
        csp = response.headers["content-security-policy"]
        assert "default-src 'self'" in csp
        assert "script-src 'self'" in csp

        await page.get_by_label("Bearer token").fill(token)
        await page.get_by_role("button", name="Use token").click()
        await page.locator("#token-state", has_text="a token for alice").wait_for()
        # The hint is rewritten from GET /v1/limits once the token is in use.
        await page.locator("#limits-hint", has_text="MiB each").wait_for()

        await record_states(page)
        await page.locator("#files").set_input_files([photo, graphic])
        done = page.locator("#uploads li[data-state=done]")
        await done.nth(1).wait_for()
        assert await done.count() == 2
        states = await upload_states(page)
        assert "uploading" in states
        assert "processing" in states  # the progress bar ran to the end of the upload

        photo_card = page.locator("#uploads li[data-state=done]", has_text="photo.jpg")
        assert await photo_card.locator("figure").count() == len(VARIANTS)
        captions = await photo_card.locator(".variant-name").all_text_contents()
        assert captions == [spec.name for spec in VARIANTS]
        # Sizes and bytes are shown, e.g. the full variant of the (upright) 1600x1200 photo.
        assert re.search(r"1024\u00d7768\s*[\d.]+ KiB", await photo_card.inner_text())

        # Every preview is decoded by the browser at the size the API announced.
        await page.wait_for_function(
            """() => [...document.querySelectorAll("#uploads li[data-state=done] img")]
                   .every((img) => img.complete && img.naturalWidth > 0)""",
            timeout=WAIT_MS,
        )
        rendered = await page.eval_on_selector_all(
            "#uploads li[data-state=done] img",
            """(imgs) => imgs.map((img) => ({
                card: img.closest("li").querySelector(".upload-name").textContent,
                natural: [img.naturalWidth, img.naturalHeight],
                announced: [+img.getAttribute("width"), +img.getAttribute("height")],
                placeholder: img.parentElement.style.getPropertyValue("--placeholder-image"),
                color: img.parentElement.style.getPropertyValue("--placeholder-color"),
            }))""",
        )
        assert len(rendered) == 2 * len(VARIANTS)
        for image in rendered:
            assert image["natural"][0] > 0
            assert image["natural"] == image["announced"]
            # The decoded ThumbHash sits behind each image until it has loaded, over the
            # dominant colour where the image is opaque.
            assert image["placeholder"].startswith('url("data:image/png;base64,')
            expected_color = r"#[0-9a-f]{6}" if image["card"] == "photo.jpg" else "transparent"
            assert re.fullmatch(expected_color, image["color"])

        await page.locator("#files").set_input_files(drawing)
        refused = page.locator("#uploads li[data-state=refused]", has_text="drawing.svg")
        await refused.wait_for()
        text = await refused.inner_text()
        assert "Unsupported media type" in text
        # HEIC and HEIF are accepted with the `heic` extra, which `make install` installs.
        heif = "HEIC, HEIF, " if HEIF_AVAILABLE else ""
        accepted = f"AVIF, GIF, {heif}JPEG, PNG and WebP"
        assert f"This file is an SVG; only {accepted} are accepted." in text
        assert "415 · unsupported_media_type" in text
        await page.locator("#status", has_text="drawing.svg was refused").wait_for()

        ids = [await card.get_attribute("data-media-id") for card in await done.all()]
        library = page.locator("#library > li")
        listed = await library.evaluate_all("(items) => items.map((i) => i.dataset.mediaId)")
        assert sorted(listed) == sorted(ids)

        await page.screenshot(path=screenshot, full_page=True)
        record_property("screenshot", str(screenshot))
        print(f"screenshot: {screenshot}")

        # Delete from the keyboard: focus the button, press Enter.
        photo_id = await photo_card.get_attribute("data-media-id")
        await page.get_by_role("button", name=f"Delete media {photo_id}").focus()
        await page.keyboard.press("Enter")
        await page.locator(f'#library > li[data-media-id="{photo_id}"]').wait_for(state="detached")
        assert await library.count() == 1
        focused = await page.evaluate("document.activeElement.getAttribute('aria-label')")
        assert focused is not None
        assert focused.startswith("Delete media ")  # focus stayed in the list
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{nginx}/v1/media/{photo_id}", headers=bearer("alice")) as gone,
        ):
            assert gone.status == 404

        # A reload keeps the token (this tab's sessionStorage) and lists from the server.
        await page.reload()
        await page.locator("#library > li").first.wait_for()
        assert await page.locator("#library > li").count() == 1
        assert problems == []


async def test_thumbhash_decoder_paints_the_reference_quadrants(
    client: Client, chromium: Path
) -> None:
    """The page's ThumbHash decoder turns the server's hash of the four-colour reference
    pattern back into a picture whose quadrants are nearest their own colours."""
    width, height, rgba = rgba_pixels(images.reference_pattern(64, 48))
    encoded = thumbhash(width, height, rgba)
    origin = f"http://{client.host}:{client.port}"  # the app alone: no nginx needed here

    async with browser_page(chromium, origin) as (page, problems):
        await page.goto(f"{origin}/")
        decoded = await page.evaluate(
            """async (hash) => {
                const m = await import("/static/thumbhash.js");
                const {w, h, rgba} = m.thumbHashToRGBA(m.thumbHashFromBase64(hash));
                const at = (x, y) => Array.from(rgba.slice((y * w + x) * 4, (y * w + x) * 4 + 4));
                const [qx, qy] = [Math.floor(w / 4), Math.floor(h / 4)];
                return {w, h, quadrants: [at(qx, qy), at(w - 1 - qx, qy),
                                          at(qx, h - 1 - qy), at(w - 1 - qx, h - 1 - qy)]};
            }""",
            encoded,
        )
        assert problems == []

    assert decoded["w"] == 32
    assert 20 <= decoded["h"] <= 26  # 4:3, as far as the hash's term counts can say
    for i, pixel in enumerate(decoded["quadrants"]):
        assert pixel[3] == 255
        distances = [
            sum((a - b) ** 2 for a, b in zip(pixel[:3], colour, strict=True))
            for colour in images.REFERENCE_COLOURS
        ]
        assert distances.index(min(distances)) == i, (pixel, images.REFERENCE_COLOURS)


async def test_page_fills_in_the_dev_token_when_the_dev_stack_sets_one(
    make_settings: Callable[..., Settings], aiohttp_client: Any, chromium: Path
) -> None:
    """With MEDIASVC_DEV_TOKEN set (as `make run` does), the page starts signed in."""
    token = bearer("dev")["Authorization"].removeprefix("Bearer ")
    client: Client = await aiohttp_client(create_app(make_settings(dev_token=token)))
    origin = f"http://{client.host}:{client.port}"

    async with browser_page(chromium, origin) as (page, problems):
        await page.goto(f"{origin}/")
        await page.locator("#token-state", has_text="the dev token from make run").wait_for()
        assert await page.get_by_label("Bearer token").input_value() == token
        await page.locator("#library-note", has_text="Nothing uploaded yet.").wait_for()
        assert problems == []


class TestPageResponses:
    async def test_page_is_html_with_a_strict_csp_and_no_token(self, client: Client) -> None:
        """GET / is the page, uncached, scripts from its own origin only, no token inside."""
        response = await client.get("/")
        assert response.status == 200
        assert response.content_type == "text/html"
        assert response.headers["Cache-Control"] == "no-store"
        csp = response.headers["Content-Security-Policy"]
        assert csp.startswith("default-src 'self'; script-src 'self'; style-src 'self'; ")
        assert "img-src 'self' blob: data:" in csp
        assert "frame-ancestors 'none'" in csp
        assert "unsafe" not in csp
        assert '<meta name="mediasvc-dev-token" content="">' in await response.text()

    async def test_dev_token_is_written_into_the_page_escaped(
        self, make_settings: Callable[..., Settings], aiohttp_client: Any
    ) -> None:
        """The dev token lands in its meta tag as an attribute value, never as markup."""
        client: Client = await aiohttp_client(create_app(make_settings(dev_token='a"><b')))
        page = await (await client.get("/")).text()
        assert '<meta name="mediasvc-dev-token" content="a&quot;&gt;&lt;b">' in page

    async def test_media_on_another_origin_is_allowed_for_images_only(
        self, make_settings: Callable[..., Settings]
    ) -> None:
        """Variant URLs on a CDN add that origin to img-src and nowhere else."""
        settings = make_settings(public_media_url="https://cdn.example.com/media")
        csp = content_security_policy(settings)
        assert "img-src 'self' https://cdn.example.com blob: data:" in csp
        assert csp.count("cdn.example.com") == 1

    @pytest.mark.parametrize(
        ("name", "content_type"),
        [
            ("app.js", "text/javascript"),
            ("thumbhash.js", "text/javascript"),
            ("app.css", "text/css"),
        ],
    )
    async def test_assets_are_served_with_their_type(
        self, client: Client, name: str, content_type: str
    ) -> None:
        """The page's scripts and stylesheet come from /static/ with the right type."""
        response = await client.get(f"/static/{name}")
        assert response.status == 200
        assert response.content_type == content_type
        assert response.headers["Cache-Control"] == "no-cache"
        assert "ETag" in response.headers or "Last-Modified" in response.headers

    @pytest.mark.parametrize("name", ["index.html", "..%2fpage.py", "missing.js"])
    async def test_anything_else_under_static_is_a_404_problem(
        self, client: Client, name: str
    ) -> None:
        """Only the listed files are served; nothing else in the package is reachable."""
        response = await client.get(f"/static/{name}")
        assert response.status == 404
        assert response.content_type == "application/problem+json"
