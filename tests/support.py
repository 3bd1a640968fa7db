"""Helpers shared by tests: tokens, upload forms, the README's programs, the "nothing
left behind" check, and npm tools installed into the checkout's cache."""

from __future__ import annotations

import asyncio
import io
import json
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

import aiohttp
import images
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from mediasvc.appkeys import DB, STORAGE
from mediasvc.auth import mint_token
from mediasvc.config import Settings
from mediasvc.signing import sign_path
from mediasvc.stack.localproc import free_port
from mediasvc.stack.nginxconf import NginxProcess, Site, render
from mediasvc.storage.local import LocalStorage
from mediasvc.storage.s3 import S3Storage

JWT_SECRET = "test-secret-" + "x" * 32
SIGNING_SECRET = "test-signing-secret-" + "y" * 32
NPM_CACHE = Path(__file__).parent.parent / ".cache" / "npm"

# The app under test, as the `client` fixture gives it.
Client = TestClient[Any, Any]


async def run_tool(*argv: str | Path, cwd: Path) -> str:
    """Run `argv` without blocking the app's event loop; its stdout, or fail with both."""
    process = await asyncio.create_subprocess_exec(
        *map(str, argv),
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, f"{argv[0]}: {out.decode()}{err.decode()}"
    return out.decode()


def npm_tools(name: str, *packages: str) -> Path:
    """The `node_modules` of `packages` (pinned, `name@version`), installed with npm into
    `.cache/npm/<name>/` (ignored by git, never global) unless that holds them already, so
    only a fresh clone or a new pin installs."""
    prefix = NPM_CACHE / name
    stamp = prefix / "installed"
    if not stamp.exists() or stamp.read_text() != " ".join(packages):
        shutil.rmtree(prefix, ignore_errors=True)
        prefix.mkdir(parents=True)
        subprocess.run(
            ["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund", *packages],
            check=True,
            capture_output=True,
            timeout=300,
        )
        stamp.write_text(" ".join(packages))
    return prefix / "node_modules"


README = Path(__file__).resolve().parent.parent / "README.md"


def run_to_end(args: list[str], *, cwd: Path, timeout_s: float) -> subprocess.CompletedProcess[str]:
    """Run a command (a bench run) to its end, its output captured; past `timeout_s` it gets
    SIGTERM, not SIGKILL, so that it stops the stacks and servers it started in sessions of
    their own (`bench.procs.exit_on_sigterm`), which would outlive a killed parent."""
    run = subprocess.Popen(args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = run.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        run.terminate()
        run.communicate(timeout=30)
        raise
    return subprocess.CompletedProcess(args, run.returncode, stdout, stderr)


def readme_program(language: str, marker: str) -> str:
    """The one fenced `language` block of the README that contains `marker`."""
    blocks = re.findall(rf"^```{language}\n(.*?)^```", README.read_text(), re.M | re.S)
    found = [block for block in blocks if marker in block]
    assert len(found) == 1, f"expected one {language} block with {marker!r}, got {len(found)}"
    return found[0]


def signed(key: str) -> str:
    """A valid signed URL path for the private variant `key`."""
    return sign_path(f"/private/{key}", SIGNING_SECRET, 300)


def bearer(sub: str = "alice", *, admin: bool = False) -> dict[str, str]:
    """An Authorization header for `sub`, signed with the test secret."""
    return {"Authorization": f"Bearer {mint_token(JWT_SECRET, sub, admin=admin)}"}


async def collection_positions(
    client: Client, collection: str, sub: str = "alice"
) -> list[tuple[str, int]]:
    """(id, position) of a collection's items as its owner lists them, every page."""
    found: list[tuple[str, int]] = []
    cursor = ""
    while True:
        query = f"collection={collection}&limit=3" + (f"&cursor={cursor}" if cursor else "")
        response = await client.get(f"/v1/media?{query}", headers=bearer(sub))
        assert response.status == 200, await response.text()
        page = await response.json()
        found += [(item["id"], item["position"]) for item in page["items"]]
        if not page["next_cursor"]:
            return found
        cursor = page["next_cursor"]


def upload_form(
    data: bytes, *, filename: str = "photo.jpg", content_type: str = "image/jpeg", **fields: str
) -> aiohttp.FormData:
    """A multipart form with one `file` part and optional text fields."""
    form = aiohttp.FormData()
    for name, value in fields.items():
        form.add_field(name, value)
    # A stream, not bytes: aiohttp warns (an error here) about large in-memory bodies.
    form.add_field("file", io.BytesIO(data), filename=filename, content_type=content_type)
    return form


async def post_media(
    client: Client, data: bytes, sub: str = "alice", **form: str
) -> aiohttp.ClientResponse:
    """POST /v1/media of `data` as `sub`, in the `upload_form` that `form` describes (its
    filename, content type and fields); the response."""
    return await client.post("/v1/media", data=upload_form(data, **form), headers=bearer(sub))


async def upload_tiny(client: Client, sub: str = "alice", **fields: str) -> aiohttp.ClientResponse:
    """POST /v1/media of a tiny PNG as `sub`, with the form `fields`; the response."""
    return await post_media(client, images.make_tiny(), sub, filename="t.png", **fields)


# Run a test module on both storage backends: `pytestmark = parametrize_backends`.
parametrize_backends = pytest.mark.parametrize("backend", ["local", "s3"], indirect=True)

# Run a test once more with the app behind PgBouncer in transaction mode (tests/pooler.py),
# on local disk: `@through_pgbouncer`.
through_pgbouncer = pytest.mark.parametrize(
    "database_route", ["direct", "pgbouncer"], indirect=True
)


async def stored_keys(client: Client) -> list[str]:
    """Every key in the app's storage, whichever backend it is."""
    return sorted([obj.key async for obj in client.app[STORAGE].scan()])


async def stored_bytes(client: Client, key: str) -> bytes:
    """The content of one stored object, read the backend's own way."""
    storage = client.app[STORAGE]
    if isinstance(storage, LocalStorage):
        return storage.path_of(key).read_bytes()
    assert isinstance(storage, S3Storage)
    response = await storage._client.get_object(Bucket=storage.bucket, Key=storage.prefix + key)
    async with response["Body"] as body:
        data: bytes = await body.read()
        return data


async def assert_one_media_left(client: Client) -> None:
    """One media row is left, ready, and storage holds its five variants and nothing else:
    of uploads that replace each other, exactly one survived, whole."""
    rows = await client.app[DB].fetch("SELECT id, status FROM media")
    assert [row["status"] for row in rows] == ["ready"]
    keys = await stored_keys(client)
    assert len(keys) == 5
    assert all(rows[0]["id"] in key for key in keys)


async def assert_nothing_left(client: Client, settings: Settings) -> None:
    """No media row, no stored object, no spool file: a refused upload left no trace."""
    rows = await client.app[DB].fetchval("SELECT count(*) FROM media")
    assert rows == 0
    assert await stored_keys(client) == []
    spooled = list(settings.spool_dir.iterdir()) if settings.spool_dir.exists() else []
    assert spooled == []


def multipart_body(
    parts: list[tuple[dict[str, str], bytes]], boundary: str = "mediasvc-boundary"
) -> tuple[bytes, str]:
    """A hand-built multipart body (so tests can send shapes no client library would)
    and the Content-Type header that goes with it."""
    out = b""
    for headers, content in parts:
        out += f"--{boundary}\r\n".encode()
        for name, value in headers.items():
            out += f"{name}: {value}\r\n".encode("utf-8", "surrogateescape")
        out += b"\r\n" + content + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out, f"multipart/form-data; boundary={boundary}"


def file_part(
    data: bytes, *, filename: str = "photo.jpg", content_type: str = "image/jpeg", **extra: str
) -> tuple[dict[str, str], bytes]:
    """One `file` part for `multipart_body`."""
    headers = {
        "Content-Disposition": f'form-data; name="file"; filename="{filename}"',
        "Content-Type": content_type,
        **extra,
    }
    return headers, data


def field_part(name: str, value: str) -> tuple[dict[str, str], bytes]:
    """One text field part for `multipart_body`."""
    return {"Content-Disposition": f'form-data; name="{name}"'}, value.encode()


@asynccontextmanager
async def running_nginx(
    settings: Settings, app_ports: list[int], **site_changes: Any
) -> AsyncIterator[str]:
    """nginx rendered from the project's templates in front of app nodes on `app_ports`
    (`site_changes` replace fields of the rendered `Site`)."""
    port = free_port()
    site = Site.for_settings(
        settings,
        listen=f"127.0.0.1:{port}",
        upstreams=[f"127.0.0.1:{app_port}" for app_port in app_ports],
    )
    config = render(replace(site, **site_changes), settings.data_dir / f"nginx-{port}")
    settings.media_dir.mkdir(parents=True, exist_ok=True)
    process = NginxProcess(config)
    await asyncio.to_thread(process.start, ("127.0.0.1", port))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await asyncio.to_thread(process.stop)


async def exchange(client: Client, head: str, body: bytes) -> tuple[int, dict[str, Any]]:
    """Send `head` and `body` on a socket of its own (whatever the head declares), read one
    answer; its status and problem. The rest of a declared body is never sent, so an answer
    proves the app gave it without reading that far."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    try:
        writer.write(head.encode() + b"\r\n" + body)
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 10)
        headers = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        assert headers["content-type"].startswith("application/problem+json")
        problem: dict[str, Any] = json.loads(
            await reader.readexactly(int(headers["content-length"]))
        )
    finally:
        writer.close()
    return int(status_line.split()[1]), problem


def request_head(method: str, path: str, *headers: str) -> str:
    """An HTTP/1.1 request head with a valid token and `headers`, up to the blank line."""
    lines = [f"{method} {path} HTTP/1.1", "Host: x", f"Authorization: {bearer()['Authorization']}"]
    return "\r\n".join([*lines, *headers, ""])


@asynccontextmanager
async def webhook_receiver(
    handle: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[str]:
    """Serve `handle` at POST /hook on a free loopback port; its URL. A request it holds is
    cancelled if its sender goes away (as a killed node's does)."""
    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}/hook"
    finally:
        await runner.cleanup()


class Hook(Protocol):
    """A receiver `serving` puts on the network: its handler, and the URL it is given."""

    url: str

    async def handle(self, request: web.Request) -> web.StreamResponse: ...


HookT = TypeVar("HookT", bound=Hook)


@asynccontextmanager
async def serving(hook: HookT) -> AsyncIterator[HookT]:
    """`hook` served by `webhook_receiver`, its `url` set, while the block runs."""
    async with webhook_receiver(hook.handle) as url:
        hook.url = url
        yield hook


async def oversize_head_answer(
    base_url: str, body_limit: int, *headers: str
) -> tuple[int, dict[str, str], bytes]:
    """Send nginx at `base_url` only the head of an upload declaring one byte over
    `body_limit` (with `headers`), and read its answer: status, headers, body. nginx must
    answer from the declared length alone."""
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = "\r\n".join(
        [
            "POST /v1/media HTTP/1.1",
            f"Host: {host}",
            f"Authorization: {bearer()['Authorization']}",
            "Content-Type: multipart/form-data; boundary=b",
            f"Content-Length: {body_limit + 1}",
            *headers,
            "",
            "",
        ]
    )
    writer.write(head.encode())
    await writer.drain()
    response = await asyncio.wait_for(reader.read(65536), 10)
    writer.close()
    status_line, _, rest = response.partition(b"\r\n")
    head_text, _, payload = rest.partition(b"\r\n\r\n")
    answered = dict(
        line.split(": ", 1) for line in head_text.decode().split("\r\n") if ": " in line
    )
    return int(status_line.split()[1]), answered, payload


async def send_direct(client: Client, upload: dict[str, Any], data: bytes) -> int:
    """Send the bytes as `upload` says, as a client would; the store's status."""
    url = upload["url"]
    if url.startswith("/"):
        response = await client.put(url, data=data, headers=upload.get("headers", {}))
        return response.status
    async with aiohttp.ClientSession() as http:
        if upload["method"] == "POST":
            form = aiohttp.FormData()
            for name, value in upload["fields"].items():
                form.add_field(name, value)
            form.add_field("file", data, filename="photo.jpg", content_type="image/jpeg")
            async with http.post(url, data=form) as response:
                return response.status
        async with http.put(url, data=data, headers=upload["headers"]) as response:
            return response.status
