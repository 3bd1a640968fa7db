"""Streaming multipart intake: the `file` part goes to a spool file, never into memory.

While the part streams in, its bytes are counted (413 one byte past the cap, without reading
the rest), hashed (sha256) and, as soon as the first bytes are in, sniffed by libmagic
(415 unless on the allow-list, whatever the filename or declared type says). The spool
file is removed when the `spooled_upload` context exits, on every path.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from aiohttp import BodyPartReader, MultipartReader, hdrs, web
from aiohttp.http_exceptions import HttpProcessingError

from mediasvc.errors import BadRequest, InvalidImage, PayloadTooLarge, UnsupportedMediaType
from mediasvc.imaging.formats import LOADERS, SNIFF_BYTES, sniff

CHUNK_BYTES = 256 * 1024
MAX_PARTS = 8
MAX_FIELD_BYTES = 256
FIELD_NAMES = frozenset({"kind", "collection", "visibility"})
_IDENTITY_ENCODINGS = frozenset({"binary", "8bit", "7bit"})


@dataclass(frozen=True, slots=True)
class SpooledUpload:
    """The `file` part on disk plus the form's text fields."""

    path: Path
    size: int
    sha256: str
    mime: str
    fields: dict[str, str]


@asynccontextmanager
async def spooled_upload(
    request: web.Request, *, spool_dir: Path, max_bytes: int
) -> AsyncIterator[SpooledUpload]:
    """Receive the form into `spool_dir`; the spool file is gone when the block exits."""
    path = spool_dir / f"{secrets.token_hex(16)}.upload"
    try:
        yield await _receive(request, path, max_bytes)
    finally:
        await asyncio.to_thread(path.unlink, missing_ok=True)


async def _receive(request: web.Request, path: Path, max_bytes: int) -> SpooledUpload:
    try:
        return await _read_form(request, path, max_bytes)
    except (ConnectionError, HttpProcessingError):
        # The client went away or sent a broken body: nobody may be left to read an answer,
        # but if someone is, this is what happened. Not a server fault, so no traceback.
        raise BadRequest(
            "The request body ended early or is malformed.", code="incomplete_body"
        ) from None


async def _read_form(request: web.Request, path: Path, max_bytes: int) -> SpooledUpload:
    if request.content_type != "multipart/form-data":
        raise BadRequest("Send the image as multipart/form-data with one part named 'file'.")
    # Refuse a declared oversize body before reading any of it; chunked bodies are caught
    # while streaming. The form around the file may add a little, hence the 64 KiB slack.
    declared = request.content_length
    if declared is not None and declared > max_bytes + 64 * 1024:
        raise PayloadTooLarge(
            f"The upload is larger than {max_bytes} bytes.", limit=max_bytes, actual=declared
        )
    try:
        reader = await request.multipart()
    except (ValueError, AssertionError) as exc:
        raise BadRequest(f"The multipart body is malformed: {exc}") from None
    fields: dict[str, str] = {}
    spooled: tuple[int, str, str] | None = None
    for _ in range(MAX_PARTS + 1):
        part = await _next_part(reader)
        if part is None:
            break
        if part.name == "file":
            if spooled is not None:
                raise BadRequest("Send exactly one part named 'file'.")
            spooled = await _spool_file(part, path, max_bytes)
        elif part.name in FIELD_NAMES:
            if part.name in fields:
                raise BadRequest(f"The field {part.name!r} appears twice.")
            fields[part.name] = await _read_field(part)
        else:
            raise BadRequest(f"Unknown form field {part.name!r}; expected file, {_field_list()}.")
    else:
        raise BadRequest(f"Too many parts in the form; at most {MAX_PARTS} are read.")
    if spooled is None:
        raise BadRequest("The form has no part named 'file'.")
    size, digest, mime = spooled
    return SpooledUpload(path=path, size=size, sha256=digest, mime=mime, fields=fields)


async def _next_part(reader: MultipartReader) -> BodyPartReader | None:
    try:
        part = await reader.next()
    except ValueError as exc:
        raise BadRequest(f"The multipart body is malformed: {exc}") from None
    if isinstance(part, MultipartReader):
        raise BadRequest("Nested multipart bodies are not accepted.")
    return part


async def _spool_file(part: BodyPartReader, path: Path, max_bytes: int) -> tuple[int, str, str]:
    """Stream the part to `path`; returns size, sha256 hex and the sniffed MIME type."""
    if not part.filename:
        raise BadRequest("The 'file' part must be a file upload (it has no filename).")
    encoding = part.headers.get(hdrs.CONTENT_TRANSFER_ENCODING, "binary").lower()
    if encoding not in _IDENTITY_ENCODINGS:
        raise BadRequest(f"Content-Transfer-Encoding {encoding!r} is not accepted; send raw bytes.")
    hasher = hashlib.sha256()
    size = 0
    head = b""
    mime: str | None = None
    out = await asyncio.to_thread(path.open, "xb")
    try:
        while chunk := await part.read_chunk(CHUNK_BYTES):
            size += len(chunk)
            if size > max_bytes:
                raise PayloadTooLarge(
                    f"The file is larger than {max_bytes} bytes.", limit=max_bytes
                )
            if mime is None:
                head += chunk[: SNIFF_BYTES - len(head)]
                if len(head) >= SNIFF_BYTES:
                    mime = _allowed_type(head)
            await asyncio.to_thread(_write, out, hasher, chunk)
    finally:
        await asyncio.to_thread(out.close)
    if size == 0:
        raise InvalidImage("The file is empty.", code="empty_file")
    if mime is None:
        mime = _allowed_type(head)
    return size, hasher.hexdigest(), mime


def _write(out: BinaryIO, hasher: hashlib._Hash, chunk: bytes) -> None:
    hasher.update(chunk)
    out.write(chunk)


def _allowed_type(head: bytes) -> str:
    mime = sniff(head)
    if mime not in LOADERS:
        raise UnsupportedMediaType(
            f"The file is {mime}; accepted types are {', '.join(sorted(LOADERS))}.",
            actual=mime,
            accepted=sorted(LOADERS),
        )
    return mime


async def _read_field(part: BodyPartReader) -> str:
    data = b""
    while chunk := await part.read_chunk(MAX_FIELD_BYTES + 1):
        data += chunk
        if len(data) > MAX_FIELD_BYTES:
            raise BadRequest(f"The field {part.name!r} is longer than {MAX_FIELD_BYTES} bytes.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(f"The field {part.name!r} is not UTF-8 text.") from None


def _field_list() -> str:
    return ", ".join(sorted(FIELD_NAMES))
