"""`GET /`: the upload page for browsers, and the few files it loads from `/static/`.

The page is plain HTML, CSS and JavaScript modules kept in `static/` beside this module
(package data, found through `importlib.resources`): no build step, no framework, nothing
from another origin. It talks to the API like any
client would (bearer token, problem+json), so it needs no endpoint of its own.
"""

from __future__ import annotations

import asyncio
import html
from importlib.resources import files
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

from mediasvc.appkeys import SETTINGS
from mediasvc.config import Settings
from mediasvc.errors import NotFound
from mediasvc.storage.bucket import bucket_addresses


def _static_dir() -> Path:
    """The page's files as a directory on disk: `web.FileResponse` sends from a path (ETag,
    304, sendfile). pip installs a wheel as plain files, so the package's data is one; only a
    zipped import would not be, and then the app stops at import rather than on a request."""
    directory = files("mediasvc.web") / "static"
    if not isinstance(directory, Path):
        raise RuntimeError(f"mediasvc must be installed as files, not imported from {directory}")
    return directory


STATIC_DIR = _static_dir()
# The only files served under /static/: a fixed list, so no request path reaches the disk.
ASSETS = {
    "app.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "thumbhash.js": "text/javascript; charset=utf-8",
}
# index.html carries this empty tag; with MEDIASVC_DEV_TOKEN set it is filled in.
DEV_TOKEN_TAG = '<meta name="mediasvc-dev-token" content="">'  # noqa: S105 - an empty tag


async def index(request: web.Request) -> web.Response:
    """GET /: the upload page, with the dev token filled in when `make run` provides one."""
    settings = request.app[SETTINGS]
    page = await asyncio.to_thread((STATIC_DIR / "index.html").read_text, "utf-8")
    if settings.dev_token:
        page = page.replace(
            DEV_TOKEN_TAG,
            f'<meta name="mediasvc-dev-token" content="{html.escape(settings.dev_token)}">',
        )
    return web.Response(
        text=page,
        content_type="text/html",
        headers={
            "Content-Security-Policy": content_security_policy(settings),
            # The page may hold a token; nothing in between should keep a copy.
            "Cache-Control": "no-store",
        },
    )


async def asset(request: web.Request) -> web.FileResponse:
    """GET /static/{name}: the page's stylesheet and scripts, revalidated on every load."""
    name = request.match_info["name"]
    content_type = ASSETS.get(name)
    if content_type is None:
        raise NotFound("No such file.")
    return web.FileResponse(
        STATIC_DIR / name,
        headers={
            "Content-Type": content_type,
            # Names are not versioned, so a deploy must be seen at once: ETag revalidation.
            "Cache-Control": "no-cache",
        },
    )


def content_security_policy(settings: Settings) -> str:
    """The page's CSP: its own scripts and styles only; images also from the media origins.

    `blob:` shows a chosen file before it is sent, `data:` the decoded ThumbHash. When
    variant URLs point at another origin (a CDN), that origin is allowed for images only.
    On S3 the page may also connect to the bucket: "Direct to storage" sends an upload
    session's bytes there (presigned POST or PUT).
    """
    media_origins = sorted(
        {_origin(settings.public_media_url), _origin(settings.private_media_url)} - {""}
    )
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            " ".join(["img-src 'self'", *media_origins, "blob:", "data:"]),
            " ".join(["connect-src 'self'", *_bucket_origins(settings)]),
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


def _bucket_origins(settings: Settings) -> list[str]:
    """The origins botocore may presign a session's upload for: every address of the
    bucket (`storage.bucket`), none for local storage."""
    if settings.storage != "s3":
        return []
    return list(dict.fromkeys(address.origin for address in bucket_addresses(settings)))


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""
