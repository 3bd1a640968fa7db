"""Headless Chromium for tests whose pages span several origins (Debian's package, driven
by Playwright: never `playwright install`), and pages served on origins of the test's own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import BrowserContext, Request, async_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # tests may run as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--no-first-run",
]
WAIT_MS = 15_000  # every wait in a page is bounded by this


def chromium_path() -> Path:
    """Debian's Chromium, or the test fails saying how to get it."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make install` installs the chromium package")
    return CHROMIUM


@asynccontextmanager
async def browser_context(
    origins: Sequence[str], **options: Any
) -> AsyncIterator[tuple[BrowserContext, list[str]]]:
    """A fresh Chromium context; yields it and a list collecting problems: script errors,
    and requests to anywhere but `origins`.

    Requests are watched, not intercepted: with Playwright's routing on, Chromium leaves
    CORS preflights to Playwright, which allows them all, and CORS would go untested. Host
    names do not resolve, so nothing but loopback addresses can be reached anyway.
    """
    problems: list[str] = []
    reachable = (*(f"{origin}/" for origin in origins), "data:", "blob:")

    def watch(request: Request) -> None:
        if not request.url.startswith(reachable):
            problems.append(f"request outside {list(origins)}: {request.url}")

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(chromium_path()),
            args=[*CHROMIUM_ARGS, "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"],
            timeout=WAIT_MS,
        )
        try:
            context = await browser.new_context(**options)
            context.set_default_timeout(WAIT_MS)
            context.on("request", watch)
            context.on(
                "page",
                lambda page: page.on("pageerror", lambda e: problems.append(f"script: {e}")),
            )
            yield context, problems
        finally:
            await browser.close()


@asynccontextmanager
async def site(
    port: int, pages: dict[str, Callable[[web.Request], str]], content_type: str = "text/html"
) -> AsyncIterator[str]:
    """A small site on 127.0.0.1:`port`: each path answers its page's text; yields the origin.

    Paths ending in `.js` are served as JavaScript.
    """
    app = web.Application()
    for path, page in pages.items():

        async def handler(request: web.Request, page: Callable[[web.Request], str] = page) -> Any:
            kind = "text/javascript" if request.path.endswith(".js") else content_type
            return web.Response(text=page(request), content_type=kind)

        app.router.add_get(path, handler)
    server = TestServer(app, host="127.0.0.1", port=port)
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await server.close()
