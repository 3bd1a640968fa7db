"""The page's "Direct to storage" switch in a real headless Chromium, through nginx: each
file goes through an upload session (its bytes to the bucket, or to the app's signed URL
on local disk), then complete makes the media. On S3 the bucket carries the CORS rules of
deploy/README.md for the page's origin; a page on an origin they leave out is refused by
the bucket's preflight, and nothing reaches the bucket.

What moto (5.2) does with CORS: it answers preflights (`OPTIONS`) from the bucket's rules,
403 for an origin they do not list (the methods and headers it allows are left for the
browser to check), and adds the matching rule's headers to GET/PUT/HEAD answers, but not
to the answer of a POST-object upload (S3 does). A preflight to a presigned PUT URL is
403 SignatureDoesNotMatch (moto checks the query signature on OPTIONS too; S3 does not
authenticate preflights), so no browser can PUT to moto. moto_server also adds, by
default, blanket CORS headers for any origin to every answer. So the refusal and the
rules' answers for POST and PUT are tested on a moto with the blanket off, where the
bucket's rules alone decide; the page's presigned POST runs on the suite's moto, where the
rules still decide the preflight (a refused one is a 403 whatever headers come with it)
and the blanket answers the POST itself."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import images
import pytest
from aiobotocore.session import get_session
from browser import browser_context
from conftest import S3_CREDENTIALS, apply_cors_rules, moto_server
from playwright.async_api import BrowserContext, ConsoleMessage, FilePayload, Page, Request
from support import SIGNING_SECRET, Client, bearer, parametrize_backends, stored_keys

from mediasvc.appkeys import DB
from mediasvc.config import AddressingStyle, Settings
from mediasvc.imaging.variants import VARIANTS
from mediasvc.keys import UPLOADS_PREFIX
from mediasvc.stack.localproc import free_port
from mediasvc.storage import DirectUploadTerms
from mediasvc.storage.s3 import S3Storage, client_config
from mediasvc.web.page import content_security_policy

PHOTO = images.make_jpeg(width=1200, height=900)
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>'


@pytest.fixture
def moto_cors(request: pytest.FixtureRequest) -> str:
    """Whose CORS headers moto sends: `rules` (the bucket's only) unless a test says
    `blanket` (moto_server's default, any origin on every answer)."""
    return str(getattr(request, "param", "rules"))


@pytest.fixture
def s3_endpoint(s3_endpoint: str, moto_cors: str, request: pytest.FixtureRequest) -> str:
    """The suite's moto (blanket CORS), or one where the bucket's rules alone decide."""
    if moto_cors == "blanket":
        return s3_endpoint
    return str(request.getfixturevalue("rules_only_s3_endpoint"))


@pytest.fixture(scope="module")
def rules_only_s3_endpoint() -> Iterator[str]:
    """moto_server as conftest starts it, with its blanket CORS off: with it on, a
    preflight passes even with no bucket rules and the rules under test decide nothing.
    With `MOTO_DISABLE_GLOBAL_CORS` only the bucket's CORS configuration answers."""
    with moto_server(MOTO_DISABLE_GLOBAL_CORS="1") as url:
        yield url


def collect_console_errors(context: BrowserContext) -> list[str]:
    """Console errors of every page in `context` (CSP and CORS refusals among them)."""
    errors: list[str] = []

    def watch(message: ConsoleMessage) -> None:
        # Chromium logs every non-2xx answer; the refusals under test are expected.
        if message.type == "error" and "Failed to load resource" not in message.text:
            errors.append(message.text)

    context.on("page", lambda page: page.on("console", watch))
    return errors


async def open_page_with_direct_switch(context: BrowserContext, nginx: str) -> Page:
    """The page through nginx with alice's token in use and "Direct to storage" on."""
    token = bearer("alice")["Authorization"].removeprefix("Bearer ")
    page = await context.new_page()
    await page.goto(f"{nginx}/")
    await page.get_by_label("Bearer token").fill(token)
    await page.get_by_role("button", name="Use token").click()
    await page.locator("#token-state", has_text="a token for alice").wait_for()
    await page.locator("#limits-hint", has_text="MiB each").wait_for()
    await page.get_by_label("Direct to storage").check()
    await page.evaluate(
        """() => {
            window.__states = [];
            new MutationObserver((records) => {
                for (const r of records) {
                    if (r.target.matches(".upload")) window.__states.push(r.target.dataset.state);
                }
            }).observe(document.querySelector("#uploads"),
                       {subtree: true, attributes: true, attributeFilter: ["data-state"]});
        }"""
    )
    return page


@parametrize_backends
# moto answers a POST-object upload without the rule's headers: its blanket answers it.
@pytest.mark.parametrize("moto_cors", ["blanket"], indirect=True)
async def test_direct_to_storage_uploads_through_a_session_and_shows_the_variants(
    client: Client,
    nginx: str,
    settings: Settings,
    backend: str,
    moto_cors: str,
    tmp_path: Path,
) -> None:
    """With the switch on, the page declares the file (with its sha256), sends the bytes
    where the session says with progress, completes, and shows the five variants; the
    media is ready in PostgreSQL, its five variants stored and no raw object left."""
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(PHOTO)
    origins = [nginx]
    if backend == "s3":
        assert settings.s3_endpoint_url is not None
        origins.append(settings.s3_endpoint_url)
        apply_cors_rules(settings, [nginx])
    requests: list[Request] = []

    async with browser_context(origins) as (context, problems):
        console_errors = collect_console_errors(context)
        context.on("request", lambda request: requests.append(request))
        page = await open_page_with_direct_switch(context, nginx)
        await page.locator("#files").set_input_files(photo)
        card = page.locator("#uploads li[data-state=done]", has_text="photo.jpg")
        await card.wait_for()
        states: list[str] = await page.evaluate("window.__states")
        assert "uploading" in states
        assert "processing" in states  # the bar ran to the end of the bytes' upload
        assert await card.locator("figure").count() == len(VARIANTS)
        captions = await card.locator(".variant-name").all_text_contents()
        assert captions == [spec.name for spec in VARIANTS]
        await page.wait_for_function(
            """() => [...document.querySelectorAll("#uploads li[data-state=done] img")]
                   .every((img) => img.complete && img.naturalWidth > 0)"""
        )
        media_id = await card.get_attribute("data-media-id")
        await page.locator(f'#library > li[data-media-id="{media_id}"]').wait_for()

        # Refused in words, as on the form path: a type refused when the session opens,
        # and bytes that are not what they claim refused at complete (and not kept).
        refusable: list[FilePayload] = [
            {"name": "drawing.svg", "mimeType": "image/svg+xml", "buffer": SVG},
            {"name": "fake.jpg", "mimeType": "image/jpeg", "buffer": b"not a JPEG " * 64},
        ]
        await page.locator("#files").set_input_files(refusable)
        refused = page.locator("#uploads li[data-state=refused]")
        drawing, fake = refused.filter(has_text="drawing.svg"), refused.filter(has_text="fake.jpg")
        await drawing.wait_for()
        await fake.wait_for()
        assert "This file is an SVG; only " in await drawing.inner_text()
        assert "415 · unsupported_media_type" in await drawing.inner_text()
        assert "This file is plain text; only " in await fake.inner_text()
        assert "415 · unsupported_media_type" in await fake.inner_text()
        assert problems == []
        assert console_errors == []

    # The page declared the file with its checksum, and the bytes went where `upload` said.
    sent = [(r.method, r.url) for r in requests]
    declared = next(r for r in requests if r.method == "POST" and r.url == f"{nginx}/v1/uploads")
    assert json.loads(declared.post_data or "") == {
        "kind": "post",
        "visibility": "public",
        "content_type": "image/jpeg",
        "size": len(PHOTO),
        "sha256": hashlib.sha256(PHOTO).hexdigest(),
    }
    if backend == "s3":
        assert ("POST", f"{settings.s3_endpoint_url}/{settings.s3_bucket}") in sent
    else:
        assert any(
            method == "PUT" and url.startswith(f"{nginx}/v1/uploads/{media_id}/content?")
            for method, url in sent
        )
    assert ("POST", f"{nginx}/v1/uploads/{media_id}/complete") in sent
    assert not any(url.startswith(f"{nginx}/v1/media") and m == "POST" for m, url in sent)

    # On S3 the bad bytes land and complete removes them and the session; on local disk
    # the signed PUT refuses them as they stream and discards the session: nothing kept.
    statuses = await client.app[DB].fetch("SELECT status FROM media WHERE id <> $1", media_id)
    assert [r["status"] for r in statuses] == []
    row = await client.app[DB].fetchrow(
        "SELECT status, variants, sha256 FROM media WHERE id = $1", media_id
    )
    assert row["status"] == "ready"
    assert sorted(row["variants"]) == sorted(spec.name for spec in VARIANTS)
    assert row["sha256"] == hashlib.sha256(PHOTO).hexdigest()
    # Exactly the five variants are stored: the raw object under uploads/ is gone.
    keys = await stored_keys(client)
    assert keys == sorted(variant["key"] for variant in row["variants"].values())
    assert not any(key.startswith(UPLOADS_PREFIX) for key in keys)


@pytest.mark.parametrize("backend", ["s3"], indirect=True)
async def test_the_bucket_rules_answer_what_a_browser_asks_for_post_and_put(
    client: Client, nginx: str, settings: Settings, http: aiohttp.ClientSession
) -> None:
    """The preflights a browser on the page's origin sends for a session's presigned POST
    (to the bucket) and PUT (to the key, with its Content-Type) pass, and the PUT's answer
    lets the page read it and its ETag. Sent by the test: a browser's own presigned PUT
    cannot pass on moto, which checks the URL's query signature on the preflight too (403
    SignatureDoesNotMatch for OPTIONS); S3 does not authenticate preflights."""
    assert settings.s3_endpoint_url is not None
    apply_cors_rules(settings, [nginx])
    bucket_url = f"{settings.s3_endpoint_url}/{settings.s3_bucket}"
    post = {"Origin": nginx, "Access-Control-Request-Method": "POST"}
    async with http.options(bucket_url, headers=post) as preflight:
        assert preflight.status == 200
        assert preflight.headers["Access-Control-Allow-Origin"] == nginx
        assert "POST" in preflight.headers["Access-Control-Allow-Methods"].split(", ")

    response = await client.post(
        "/v1/uploads",
        json={
            "kind": "post",
            "content_type": "image/jpeg",
            "size": len(PHOTO),
            "upload_method": "put",
        },
        headers=bearer(),
    )
    session = await response.json()
    url, headers = session["upload"]["url"], session["upload"]["headers"]
    put = {
        "Origin": nginx,
        "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "content-type",
    }
    async with http.options(url.split("?", 1)[0], headers=put) as preflight:
        assert preflight.status == 200
        assert preflight.headers["Access-Control-Allow-Origin"] == nginx
        assert "PUT" in preflight.headers["Access-Control-Allow-Methods"].split(", ")
        allowed = preflight.headers["Access-Control-Allow-Headers"].lower().split(", ")
        assert "content-type" in allowed
    async with http.put(url, data=PHOTO, headers={**headers, "Origin": nginx}) as stored:
        assert stored.status == 200
        assert stored.headers["Access-Control-Allow-Origin"] == nginx
        assert stored.headers["Access-Control-Expose-Headers"] == "ETag"
        assert stored.headers["ETag"] == f'"{hashlib.md5(PHOTO).hexdigest()}"'  # noqa: S324
    completed = await client.post(session["complete_url"], headers=bearer())
    assert completed.status == 201


@pytest.mark.parametrize("backend", ["s3"], indirect=True)
async def test_a_page_origin_left_out_of_the_bucket_rules_is_refused(
    client: Client, nginx: str, settings: Settings, http: aiohttp.ClientSession
) -> None:
    """Rules for another origin only: the bucket refuses the page's preflight (moto checks
    the Origin against the rules; the browser checks the methods and headers it allows),
    so the browser never sends the bytes; the card says why, and the session stays open."""
    assert settings.s3_endpoint_url is not None
    elsewhere = f"http://127.0.0.1:{free_port()}"
    apply_cors_rules(settings, [elsewhere])
    bucket_url = f"{settings.s3_endpoint_url}/{settings.s3_bucket}"
    preflight = {"Access-Control-Request-Method": "POST"}
    async with http.options(bucket_url, headers={**preflight, "Origin": elsewhere}) as allowed:
        assert allowed.status == 200
        assert allowed.headers["Access-Control-Allow-Origin"] == elsewhere
    async with http.options(bucket_url, headers={**preflight, "Origin": nginx}) as refused:
        assert refused.status == 403
        assert "Access-Control-Allow-Origin" not in refused.headers

    photo = images.make_jpeg()
    async with browser_context([nginx, settings.s3_endpoint_url]) as (context, problems):
        console_errors = collect_console_errors(context)
        page = await open_page_with_direct_switch(context, nginx)
        await page.locator("#files").set_input_files(
            {"name": "photo.jpg", "mimeType": "image/jpeg", "buffer": photo}
        )
        card = page.locator("#uploads li[data-state=refused]", has_text="photo.jpg")
        await card.wait_for()
        text = await card.inner_text()
        assert "Upload failed" in text
        assert "its CORS rules do not allow this page" in text
        assert "network_error" in text
        await page.locator("#status", has_text="photo.jpg was refused").wait_for()
        assert problems == []

    assert any("blocked by CORS policy" in error for error in console_errors), console_errors
    assert await stored_keys(client) == []
    assert await client.app[DB].fetchval("SELECT status FROM media") == "pending"


async def test_connect_src_admits_every_origin_the_store_presigns_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """For each endpoint, addressing style, region and bucket name, the origin of the URL
    the app's own S3 client presigns (POST and PUT) is in the page's connect-src; with
    local storage the page connects to its own origin only."""
    for name, value in S3_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    base = Settings(
        database_url="postgresql:///unused", url_signing_secret=SIGNING_SECRET, storage="s3"
    )
    styles: list[AddressingStyle] = ["path", "virtual", "auto"]
    grid = itertools.product(
        [None, "https://minio.example.com:9000", "http://127.0.0.1:9000", "http://localhost:9000"],
        styles,
        ["us-east-1", "eu-west-3"],
        ["media-bucket", "media.bucket"],
    )
    for endpoint, style, region, bucket in grid:
        settings = replace(
            base,
            s3_endpoint_url=endpoint,
            s3_addressing_style=style,
            s3_region=region,
            s3_bucket=bucket,
        )
        connect_src = next(
            part.split()[1:]
            for part in content_security_policy(settings).split("; ")
            if part.startswith("connect-src ")
        )
        async with get_session().create_client("s3", **client_config(settings)) as s3:
            storage = S3Storage(s3, bucket)
            for method in ("post", "put"):
                upload = await storage.direct_upload(
                    "uploads/x",
                    DirectUploadTerms(
                        content_type="image/jpeg",
                        size=1,
                        max_bytes=1,
                        method=method,
                        ttl_s=60,
                    ),
                )
                assert upload is not None
                parts = urlsplit(upload.url)
                origin = f"{parts.scheme}://{parts.netloc}"
                assert origin in connect_src, (endpoint, style, region, bucket, method, origin)

    local = Settings(database_url="postgresql:///unused", url_signing_secret=SIGNING_SECRET)
    assert "connect-src 'self';" in content_security_policy(local)
