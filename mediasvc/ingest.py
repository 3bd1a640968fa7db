"""Streaming multipart intake: the `file` part goes to a spool file, never into memory.

While the part streams in, its bytes are counted (413 one byte past the cap, without reading
the rest), hashed (sha256) and, as soon as the first bytes are in, sniffed by libmagic
(415 unless on the allow-list, whatever the filename or declared type says). The spool
file is removed when the `spooled_upload` context exits, on every path. Whatever is read
before the form's first boundary is capped too (`MAX_PREAMBLE_BYTES`), and a body that
does not arrive intact is `400 incomplete_body` (`intact_body`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from aiohttp import BodyPartReader, MultipartReader, hdrs, web
from aiohttp.http_exceptions import HttpProcessingError, PayloadEncodingError
from aiohttp.multipart import BadContentDispositionHeader
from aiohttp.web_protocol import RequestPayloadError

from mediasvc.contract import codes
from mediasvc.errors import (
    BadRequest,
    InsufficientStorage,
    InvalidImage,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from mediasvc.form import FIELD_NAMES, FileRules, UploadForm
from mediasvc.imaging.formats import MISSING_DECODERS, SNIFF_BYTES, sniff
from mediasvc.spaces import MAX_HEADER_BYTES

# Each write is one hop to a writer thread: reads and writes of this size keep the hops few.
CHUNK_BYTES = 1024 * 1024
MAX_FIELD_BYTES = 256
# What a form may send before its first boundary line (RFC 2046's preamble, which browsers
# and HTTP libraries leave empty), that line included. aiohttp reads it line by line with
# no bound: ten million newlines held the event loop for ten seconds.
MAX_PREAMBLE_BYTES = 4096
# The form's text fields read so far, each once it has passed `check_field`: an answer that
# a field chooses (a plain form's `success_redirect`) then holds for refusals raised while
# the rest of the body is read. Here rather than in `appkeys`, which imports this module.
FORM_FIELDS = web.RequestKey("mediasvc.form_fields", dict[str, str])
_IDENTITY_ENCODINGS = frozenset({"binary", "8bit", "7bit"})


@dataclass(frozen=True, slots=True)
class SpooledUpload:
    """The `file` part on disk plus the form's text fields (each passed `check_field`).

    `receive_s` is the time from the first byte read to the end of the form, `sniff_s`
    the part of it spent telling the file's type.
    """

    path: Path
    size: int
    sha256: str
    mime: str
    fields: dict[str, str]
    receive_s: float
    sniff_s: float


@contextmanager
def intact_body() -> Iterator[None]:
    """Translate a request body that did not arrive intact into `400 incomplete_body`:
    the client went away (ConnectionError), or aiohttp could not read the body's framing
    (RequestPayloadError, e.g. a chunk-size line too long; PayloadEncodingError, e.g. a
    chunk size that is not hex, met while reading). Either way the client may send it again."""
    try:
        yield
    except ConnectionError:
        # The client went away: nobody may be left to read an answer, but if someone is,
        # this is what happened. Not a server fault, so no traceback.
        raise BadRequest("The request body ended early.", code=codes.INCOMPLETE_BODY) from None
    except (RequestPayloadError, PayloadEncodingError) as exc:
        raise BadRequest(
            f"The request body could not be read: {exc}", code=codes.INCOMPLETE_BODY
        ) from None


@asynccontextmanager
async def spooled_stream(
    chunks: AsyncIterator[bytes], *, spool_dir: Path, rules: FileRules
) -> AsyncIterator[SpooledUpload]:
    """Spool a raw byte stream (a session's PUT body, or its object read back from storage)
    with the same cap, hash and sniff as a form's file; gone when the block exits."""
    path = spool_dir / f"{secrets.token_hex(16)}.upload"
    started = time.perf_counter()
    try:
        with intact_body():
            spooled = await _spool_chunks(chunks, path, rules)
        yield spooled.upload(path, {}, started)
    finally:
        await asyncio.to_thread(path.unlink, missing_ok=True)


@asynccontextmanager
async def spooled_upload(
    request: web.Request, *, spool_dir: Path, form: UploadForm
) -> AsyncIterator[SpooledUpload]:
    """Receive the form into `spool_dir`; the spool file is gone when the block exits."""
    path = spool_dir / f"{secrets.token_hex(16)}.upload"
    try:
        yield await _receive(request, path, form)
    finally:
        await asyncio.to_thread(path.unlink, missing_ok=True)


async def _receive(request: web.Request, path: Path, form: UploadForm) -> SpooledUpload:
    try:
        with intact_body():
            return await _read_form(request, path, form)
    except (HttpProcessingError, BadContentDispositionHeader) as exc:
        # aiohttp's parser refusing a line or header (too long, malformed). The header
        # warning is only raised when warnings are errors; otherwise the part has no name.
        raise BadRequest(f"The multipart body is malformed: {exc}") from None


async def _read_form(request: web.Request, path: Path, form: UploadForm) -> SpooledUpload:
    if request.content_type != "multipart/form-data":
        raise BadRequest("Send the image as multipart/form-data with one part named 'file'.")
    # Refuse a declared oversize body before reading any of it; chunked bodies are caught
    # while streaming. The form around the file may add a little, hence the 64 KiB slack.
    max_bytes = form.file_rules({}, final=False).max_bytes
    declared = request.content_length
    if declared is not None and declared > max_bytes + 64 * 1024:
        raise PayloadTooLarge(
            f"The upload is larger than {max_bytes} bytes.", limit=max_bytes, actual=declared
        )
    try:
        # As `request.multipart()` builds it, with the part header limit the app gives
        # request headers (a part header may be as long).
        reader = _FormReader(request.headers, request.content, max_field_size=MAX_HEADER_BYTES)
    except (ValueError, AssertionError) as exc:
        raise BadRequest(f"The multipart body is malformed: {exc}") from None
    started = time.perf_counter()
    fields = request[FORM_FIELDS] = {}
    spooled: _Spooled | None = None
    # No part counter is needed: only one `file` and one of each field are valid, so any
    # further part is refused when it arrives, and at most five parts are ever read.
    while (part := await _next_part(reader)) is not None:
        if part.name is None:
            raise BadRequest("Each part needs a Content-Disposition header with a name.")
        if part.name == "file":
            if spooled is not None:
                raise BadRequest("Send exactly one part named 'file'.")
            spooled = await _spool_file(part, path, form.file_rules(fields, final=False))
        elif part.name in FIELD_NAMES:
            if part.name in fields:
                raise BadRequest(f"The field {part.name!r} appears twice.")
            value = await _read_field(part)
            form.check_field(part.name, value)
            fields[part.name] = value
        else:
            raise BadRequest(f"Unknown form field {part.name!r}; expected file, {_field_list()}.")
    if spooled is None:
        raise BadRequest("The form has no part named 'file'.")
    # A kind sent after the file: its rules apply now, before any processing.
    rules = form.file_rules(fields, final=True)
    _check_size(spooled.size, rules)
    _check_type(spooled.mime, rules)
    return spooled.upload(path, fields, started)


class _FormReader(MultipartReader):
    """aiohttp's multipart reader, refusing a preamble past `MAX_PREAMBLE_BYTES`."""

    _preamble_bytes = 0

    async def _readline(self) -> bytes:
        # Every line before the first boundary is read here, while `_at_bof` holds.
        line = await super()._readline()
        if self._at_bof:
            self._preamble_bytes += len(line)
            if self._preamble_bytes > MAX_PREAMBLE_BYTES:
                raise BadRequest(
                    f"The multipart body has more than {MAX_PREAMBLE_BYTES} bytes before its "
                    "first boundary.",
                    limit=MAX_PREAMBLE_BYTES,
                )
        return line


async def _next_part(reader: MultipartReader) -> BodyPartReader | None:
    try:
        part = await reader.next()
    except ValueError as exc:
        raise BadRequest(f"The multipart body is malformed: {exc}") from None
    if isinstance(part, MultipartReader):
        raise BadRequest("Nested multipart bodies are not accepted.")
    return part


@dataclass(frozen=True, slots=True)
class _Spooled:
    size: int
    sha256: str
    mime: str
    sniff_s: float

    def upload(self, path: Path, fields: dict[str, str], started: float) -> SpooledUpload:
        """The spooled file at `path` with the form's `fields`, received since `started`."""
        return SpooledUpload(
            path=path,
            size=self.size,
            sha256=self.sha256,
            mime=self.mime,
            fields=fields,
            receive_s=time.perf_counter() - started,
            sniff_s=self.sniff_s,
        )


async def _spool_file(part: BodyPartReader, path: Path, rules: FileRules) -> _Spooled:
    """Stream the part to `path`: its size, sha256 and sniffed MIME type."""
    if not part.filename:
        raise BadRequest("The 'file' part must be a file upload (it has no filename).")
    encoding = part.headers.get(hdrs.CONTENT_TRANSFER_ENCODING, "binary").lower()
    if encoding not in _IDENTITY_ENCODINGS:
        raise BadRequest(f"Content-Transfer-Encoding {encoding!r} is not accepted; send raw bytes.")
    return await _spool_chunks(_part_chunks(part), path, rules)


async def _part_chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk(CHUNK_BYTES):
        yield chunk


async def _spool_chunks(chunks: AsyncIterator[bytes], path: Path, rules: FileRules) -> _Spooled:
    """Write `chunks` to `path`, capped, hashed and sniffed as they pass."""
    size = 0
    head = b""
    mime: str | None = None
    sniff_s = 0.0
    writer = _SpoolWriter(path)
    try:
        async for chunk in chunks:
            size += len(chunk)
            _check_size(size, rules)
            if mime is None:
                head += chunk[: SNIFF_BYTES - len(head)]
                if len(head) >= SNIFF_BYTES:
                    mime, sniff_s = _allowed_type(head, rules)
            await writer.write(chunk)
        await writer.flush()
    finally:
        await writer.close()
    if size == 0:
        raise InvalidImage("The file is empty.", code=codes.EMPTY_FILE)
    if mime is None:
        mime, sniff_s = _allowed_type(head, rules)
    return _Spooled(size, writer.sha256.hexdigest(), mime, sniff_s)


class _SpoolWriter:
    """Hashes and writes chunks in a worker thread, one operation at a time.

    The network hands over what has arrived, often a few kilobytes: chunks are gathered in
    memory up to `CHUNK_BYTES` so that a 4 MB upload takes four hops to the thread, not
    dozens. A cancelled request (client gone) abandons the await, not the thread: `close`
    first waits for the operation in flight, so the file is never opened or written after
    it was closed and removed.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sha256 = hashlib.sha256()
        self._file: BinaryIO | None = None
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._in_flight: asyncio.Future[None] | None = None

    async def write(self, chunk: bytes) -> None:
        self._pending.append(chunk)
        self._pending_bytes += len(chunk)
        if self._pending_bytes >= CHUNK_BYTES:
            await self.flush()

    async def flush(self) -> None:
        """Write what was gathered; a full disk is the client's 507."""
        if not self._pending:
            return
        # A single read of 1 MiB or more (a session's body) needs no copy.
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending, self._pending_bytes = [], 0
        self._in_flight = asyncio.get_running_loop().run_in_executor(None, self._write, data)
        try:
            await asyncio.shield(self._in_flight)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise InsufficientStorage(
                    "The server has no room to receive uploads right now; try again later."
                ) from None
            raise

    def _write(self, data: bytes) -> None:
        if self._file is None:
            self._file = self.path.open("xb")
        self.sha256.update(data)
        self._file.write(data)

    async def close(self) -> None:
        if self._in_flight is not None:
            with contextlib.suppress(Exception):
                await self._in_flight
        if self._file is not None:
            await asyncio.to_thread(self._file.close)


def _allowed_type(head: bytes, rules: FileRules) -> tuple[str, float]:
    """The sniffed type, if on the allow-list, and how long telling it took."""
    started = time.perf_counter()
    mime = sniff(head)
    sniff_s = time.perf_counter() - started
    _check_type(mime, rules)
    return mime, sniff_s


def _check_size(size: int, rules: FileRules) -> None:
    if size > rules.max_bytes:
        whose = f" for kind {rules.kind!r}" if rules.kind else ""
        raise PayloadTooLarge(
            f"The file is larger than {rules.max_bytes} bytes{whose}.", limit=rules.max_bytes
        )


def _check_type(mime: str, rules: FileRules) -> None:
    if mime not in rules.accept:
        whose = f" for kind {rules.kind!r}" if rules.kind else ""
        enable = f" {MISSING_DECODERS[mime]}" if mime in MISSING_DECODERS else ""
        raise UnsupportedMediaType(
            f"The file is {mime}; accepted types{whose} are "
            f"{', '.join(sorted(rules.accept))}.{enable}",
            actual=mime,
            accepted=sorted(rules.accept),
        )


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
