"""The README's recipes for popular uploaders run as printed, with their defaults: Uppy's XHR
uploader, Uppy's S3 plugin through an upload session, FilePond and Dropzone. Each recipe is
taken from the README (not a copy), bundled by esbuild with the pinned npm packages, served
on the app's own origin and run in Debian's Chromium against mediasvc behind nginx. A photo
ends ready with its variants; a text file is refused once, never retried, and what the user
sees is the problem's `detail`."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import images
import pytest
from browser import browser_context, site
from conftest import apply_cors_rules
from playwright.async_api import BrowserContext, Page, Request, Response
from support import Client, bearer, npm_tools, parametrize_backends, readme_program

from mediasvc.appkeys import DB
from mediasvc.config import Settings
from mediasvc.imaging.variants import VARIANTS
from mediasvc.stack.localproc import free_port

# Pinned, so a new release cannot fail an unchanged recipe; the majors the README names.
PACKAGES = (
    "@uppy/core@6.3.1",
    "@uppy/xhr-upload@6.0.0",
    "@uppy/aws-s3@6.3.1",
    "filepond@4.32.12",
    "dropzone@6.3.5",
    "esbuild@0.28.2",
)
# Each recipe by the function it exports (how its README block is found).
RECIPES = {
    "uppy": "mediasvcUppy",
    "uppy-session": "mediasvcSessionUppy",
    "filepond": "mediasvcFilePond",
    "dropzone": "mediasvcDropzone",
}
PHOTO = images.make_jpeg(width=1200, height=900)
NOTES = b"Notes in plain text and not an image.\n" * 40
ALL_VARIANTS = sorted(spec.name for spec in VARIANTS)
TOKEN = bearer("alice")["Authorization"].removeprefix("Bearer ")

# Runs an Uppy recipe on the file chosen in the page, to the end of `uppy.upload()` (which
# waits for every retry): the counts of its result, and what the recipe showed the user.
UPPY_RUN = """async ([factory, api, token]) => {
    const said = document.querySelector("#said");
    const uppy = recipe[factory](api, token, (file, text) => { said.textContent = text; });
    const file = document.querySelector("#file").files[0];
    uppy.addFile({name: file.name, type: file.type, data: file});
    const result = await uppy.upload();
    return {successful: result.successful.length, failed: result.failed.length,
            said: said.textContent};
}"""
# FilePond and Dropzone take an element and put their own file input in the page.
WIDGET_START = """([factory, api, token]) => {
    recipe[factory](api, token, document.querySelector("#widget"));
}"""


def page_html(name: str) -> str:
    """A page of the app that loads one recipe's bundle."""
    return (
        f'<!doctype html><html lang="en"><title>{name}</title>'
        '<input type="file" id="file" aria-label="Image"><div id="widget"></div>'
        f'<output id="said"></output><script src="/{name}.js"></script></html>'
    )


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Each recipe bundled for the browser: a script defining `recipe` (its exports)."""
    modules = npm_tools("uploaders", *PACKAGES)
    build = tmp_path_factory.mktemp("uploaders")
    (build / "node_modules").symlink_to(modules)
    for name, function in RECIPES.items():
        (build / f"{name}.js").write_text(readme_program("js", f"export function {function}("))
    subprocess.run(
        [
            str(modules / ".bin" / "esbuild"),
            *(f"{name}.js" for name in RECIPES),
            "--bundle",
            "--format=iife",
            "--global-name=recipe",
            "--outdir=out",
            "--log-level=warning",
        ],
        cwd=build,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return {name: (build / "out" / f"{name}.js").read_text() for name in RECIPES}


@pytest.fixture
def app_port() -> int:
    """The port of the app's own origin, where the recipes' pages are served."""
    return free_port()


@pytest.fixture
def settings(make_settings: Callable[..., Settings], app_port: int) -> Settings:
    """mediasvc allowing the app's origin."""
    result: Settings = make_settings(cors_origins=(f"http://127.0.0.1:{app_port}",))
    return result


class Traffic:
    """The requests a browser context's pages sent and the answers they got (CORS
    preflights aside: Playwright does not report them)."""

    def __init__(self, context: BrowserContext) -> None:
        self.requests: list[Request] = []
        self.responses: list[Response] = []
        # Playwright wants functions of Python's own, not a builtin's bound method.
        context.on("request", lambda request: self.requests.append(request))
        context.on("response", lambda response: self.responses.append(response))

    def sent(self, method: str, url: str) -> int:
        """How many `method` requests went to `url` (its query aside)."""
        return sum(r.method == method and r.url.split("?")[0] == url for r in self.requests)

    async def detail(self, status: int) -> str:
        """The `detail` of the last problem answered with `status`."""
        refusal = [r for r in self.responses if r.status == status][-1]
        detail: str = (await refusal.json())["detail"]
        return detail


@dataclass(frozen=True)
class App:
    """The app's origin serving the recipes' pages, Chromium, and what its pages sent."""

    origin: str
    context: BrowserContext
    traffic: Traffic

    async def open(self, recipe: str) -> Page:
        """A new tab on the page that loads `recipe`."""
        page = await self.context.new_page()
        await page.goto(f"{self.origin}/{recipe}")
        return page

    async def uppy(self, recipe: str, api: str, name: str, mime: str, data: bytes) -> Any:
        """An Uppy recipe's upload of one file, in a new tab; what `UPPY_RUN` returns."""
        page = await self.open(recipe)
        await choose(page, "#file", name, mime, data)
        return await page.evaluate(UPPY_RUN, [RECIPES[recipe], api, TOKEN])


@pytest.fixture
async def app(
    nginx: str, settings: Settings, app_port: int, bundles: dict[str, str]
) -> AsyncIterator[App]:
    """The app's pages, in a Chromium that may reach them, nginx and the bucket only."""
    pages: dict[str, Callable[[Any], str]] = {}
    for name, script in bundles.items():
        pages[f"/{name}"] = lambda _, name=name: page_html(name)
        pages[f"/{name}.js"] = lambda _, script=script: script
    reachable = [f"http://127.0.0.1:{app_port}", nginx]
    if settings.s3_endpoint_url:
        reachable.append(settings.s3_endpoint_url)
    async with (
        site(app_port, pages) as origin,
        browser_context(reachable) as (context, problems),
    ):
        yield App(origin, context, Traffic(context))
        assert problems == []


async def choose(page: Page, selector: str, name: str, mime: str, data: bytes) -> None:
    """Put one file into the page's file input at `selector`."""
    await page.locator(selector).set_input_files({"name": name, "mimeType": mime, "buffer": data})


async def the_one_media(client: Client) -> dict[str, Any]:
    """The only media row: its id, status and variant names."""
    rows = await client.app[DB].fetch("SELECT id, status, variants FROM media")
    assert len(rows) == 1, rows
    return {
        "id": rows[0]["id"],
        "status": rows[0]["status"],
        "variants": sorted(rows[0]["variants"]),
    }


async def test_uppy_xhr_uploads_and_shows_a_refusal_without_retrying(
    client: Client, nginx: str, app: App
) -> None:
    """Uppy's XHR uploader posts the photo (with its `name` and `type` parts) and it is
    stored with its variants; the text file is posted once, and the user reads the 415's
    detail, not "network error"."""
    uploaded = await app.uppy("uppy", nginx, "photo.jpg", "image/jpeg", PHOTO)
    media = await the_one_media(client)
    assert uploaded == {"successful": 1, "failed": 0, "said": f"stored as {media['id']}"}
    assert media["status"] == "ready"
    assert media["variants"] == ALL_VARIANTS

    refused = await app.uppy("uppy", nginx, "notes.txt", "text/plain", NOTES)
    assert app.traffic.sent("POST", f"{nginx}/v1/media") == 2  # one each: nothing retried
    assert refused == {"successful": 0, "failed": 1, "said": await app.traffic.detail(415)}
    await the_one_media(client)


@parametrize_backends
async def test_uppy_s3_plugin_uploads_through_a_session(
    client: Client,
    nginx: str,
    settings: Settings,
    backend: str,
    app: App,
) -> None:
    """Uppy's S3 plugin opens a session, sends the bytes where it says (mediasvc's signed
    PUT on local disk, the bucket's POST policy on S3), and the recipe completes it: ready
    with its variants. Refused once each, in the problem's words: a text file when its
    session opens, and text named photo.jpg as its bytes stream into mediasvc's PUT (local
    disk) or when complete reads them (S3)."""
    if backend == "s3":
        apply_cors_rules(settings, [app.origin])
    uploaded = await app.uppy("uppy-session", nginx, "photo.jpg", "image/jpeg", PHOTO)
    media = await the_one_media(client)
    assert uploaded == {"successful": 1, "failed": 0, "said": f"stored as {media['id']}"}
    assert media["status"] == "ready"
    assert media["variants"] == ALL_VARIANTS
    if backend == "s3":
        bucket = f"{settings.s3_endpoint_url}/{settings.s3_bucket}"
        assert app.traffic.sent("POST", bucket) == 1
    else:
        assert app.traffic.sent("PUT", f"{nginx}/v1/uploads/{media['id']}/content") == 1
    assert app.traffic.sent("POST", f"{nginx}/v1/uploads/{media['id']}/complete") == 1

    refused = await app.uppy("uppy-session", nginx, "notes.txt", "text/plain", NOTES)
    assert app.traffic.sent("POST", f"{nginx}/v1/uploads") == 2
    assert refused == {"successful": 0, "failed": 1, "said": await app.traffic.detail(415)}

    faked = await app.uppy("uppy-session", nginx, "fake.jpg", "image/jpeg", NOTES)
    assert app.traffic.sent("POST", f"{nginx}/v1/uploads") == 3
    if backend == "s3":
        assert app.traffic.sent("POST", bucket) == 2
    else:
        puts = [r for r in app.traffic.requests if r.method == "PUT"]
        assert len(puts) == 2  # the photo's, and this one's: not retried
    assert faked == {"successful": 0, "failed": 1, "said": await app.traffic.detail(415)}
    await the_one_media(client)


@pytest.mark.parametrize(
    ("recipe", "file_input", "stored", "refused_message", "own_headers"),
    [
        (
            "filepond",
            "input.filepond--browser",
            ".filepond--item[data-filepond-item-state=processing-complete]",
            ".filepond--item[data-filepond-item-state=processing-error]"
            " .filepond--file-status-main",
            {},
        ),
        (
            "dropzone",
            "input.dz-hidden-input",
            ".dz-success",
            ".dz-error .dz-error-message",
            {"cache-control": "no-cache", "x-requested-with": "XMLHttpRequest"},
        ),
    ],
    ids=["filepond", "dropzone"],
)
async def test_widget_uploads_and_shows_the_refusals_detail(
    client: Client,
    nginx: str,
    app: App,
    recipe: str,
    file_input: str,
    stored: str,
    refused_message: str,
    own_headers: dict[str, str],
) -> None:
    """FilePond (its metadata JSON part beside the file) and Dropzone (its `Cache-Control`
    and `X-Requested-With` headers) upload the photo chosen in their own input: stored with
    its variants; the text file is posted once and its card shows the 415's detail."""
    page = await app.open(recipe)
    await page.evaluate(WIDGET_START, [RECIPES[recipe], nginx, TOKEN])
    await choose(page, file_input, "photo.jpg", "image/jpeg", PHOTO)
    await page.locator(stored).wait_for(state="attached")
    media = await the_one_media(client)
    assert media["status"] == "ready"
    assert media["variants"] == ALL_VARIANTS
    posted = next(r for r in app.traffic.requests if r.method == "POST")
    assert own_headers.items() <= (await posted.all_headers()).items()

    await choose(page, file_input, "notes.txt", "text/plain", NOTES)
    message = page.locator(refused_message)
    await message.wait_for(state="attached")
    assert app.traffic.sent("POST", f"{nginx}/v1/media") == 2
    assert await message.text_content() == await app.traffic.detail(415)
    await the_one_media(client)
