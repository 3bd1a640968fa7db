"""The upload page passes axe-core (every rule it runs by default, colour contrast among them)
in a real headless Chromium, in the light and the dark colour scheme, once it shows an
upload and a refusal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import images
import pytest
from aiohttp.test_utils import TestClient
from browser import browser_context
from support import bearer, npm_tools

# Pinned, so a new axe release with new rules cannot fail an unchanged page overnight.
AXE_CORE = "axe-core@4.14.1"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>' + b" " * 4096

# axe's findings, each rule with its impact and the elements that break it.
AXE_RUN = """async () => {
    const results = await axe.run(document, {resultTypes: ["violations"]});
    return results.violations.map((v) => ({
        rule: v.id, impact: v.impact,
        nodes: v.nodes.map((n) => `${n.target.join(" ")}: ${n.failureSummary}`),
    }));
}"""


@pytest.fixture(scope="session")
def axe_source() -> str:
    """axe-core's script, installed with npm into the checkout's cache (never globally)."""
    return (npm_tools("axe", AXE_CORE) / "axe-core" / "axe.min.js").read_text()


async def test_page_after_an_upload_and_a_refusal_has_no_violation(
    client: TestClient[Any, Any], nginx: str, axe_source: str, tmp_path: Path
) -> None:
    """No axe violation in either colour scheme, with a finished upload and a refusal on
    the page (the states with the most on it)."""
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(images.make_jpeg())
    drawing = tmp_path / "drawing.svg"
    drawing.write_bytes(SVG)
    token = bearer("alice")["Authorization"].removeprefix("Bearer ")

    # The page's CSP admits its own scripts only; axe is injected past it.
    async with browser_context([nginx], bypass_csp=True) as (context, problems):
        page = await context.new_page()
        await page.goto(f"{nginx}/")
        await page.get_by_label("Bearer token").fill(token)
        await page.get_by_role("button", name="Use token").click()
        await page.locator("#token-state", has_text="a token for alice").wait_for()
        await page.locator("#files").set_input_files(photo)
        await page.locator("#uploads li[data-state=done]").wait_for()
        await page.locator("#files").set_input_files(drawing)
        await page.locator("#uploads li[data-state=refused]").wait_for()
        await page.locator("#library > li").first.wait_for()
        await page.add_script_tag(content=axe_source)

        found = {}
        for scheme in ("light", "dark"):
            await page.emulate_media(color_scheme=scheme)
            assert await page.evaluate(f"matchMedia('(prefers-color-scheme: {scheme})').matches")
            found[scheme] = await page.evaluate(AXE_RUN)
        assert found == {"light": [], "dark": []}
        assert problems == []
