"""Helpers shared by tests: tokens, upload forms, and the "nothing left behind" check."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from mediasvc.appkeys import DB
from mediasvc.auth import mint_token
from mediasvc.config import Settings

JWT_SECRET = "test-secret-" + "x" * 32
SIGNING_SECRET = "test-signing-secret-" + "y" * 32


def bearer(sub: str = "alice", *, admin: bool = False) -> dict[str, str]:
    """An Authorization header for `sub`, signed with the test secret."""
    return {"Authorization": f"Bearer {mint_token(JWT_SECRET, sub, admin=admin)}"}


def upload_form(
    data: bytes, *, filename: str = "photo.jpg", content_type: str = "image/jpeg", **fields: str
) -> aiohttp.FormData:
    """A multipart form with one `file` part and optional text fields."""
    form = aiohttp.FormData()
    for name, value in fields.items():
        form.add_field(name, value)
    form.add_field("file", data, filename=filename, content_type=content_type)
    return form


async def assert_nothing_left(client: TestClient[Any, Any], settings: Settings) -> None:
    """No media row, no stored file, no spool file: a refused upload left no trace."""
    rows = await client.app[DB].fetchval("SELECT count(*) FROM media")
    assert rows == 0
    stored = [p for p in settings.media_dir.rglob("*") if p.is_file()]
    assert stored == []
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
