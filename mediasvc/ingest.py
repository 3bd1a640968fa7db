"""Streaming HTTP intake: a request's multipart form or raw body, read for `spool`.

The form's `file` part goes to a spool file, never into memory, with `spool`'s cap, hash
and sniff (413, 415 as early as the bytes allow); each text field is checked as it arrives
(`UploadForm.check_field`). The spool file is removed when the `spooled_upload` context
exits, on every path. Whatever is read before the form's first boundary is capped too
(`MAX_PREAMBLE_BYTES`), and a body that does not arrive intact is `400 incomplete_body`
(`intact_body`). A session's PUT body is handed on as chunks (`body_chunks`).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import structlog
from aiohttp import BodyPartReader, MultipartReader, hdrs, web
from aiohttp.http_exceptions import HttpProcessingError, PayloadEncodingError
from aiohttp.multipart import BadContentDispositionHeader
from aiohttp.web_protocol import RequestPayloadError

from mediasvc.contract import codes
from mediasvc.errors import BadRequest, PayloadTooLarge
from mediasvc.form import FIELD_NAMES, FileRules, UploadForm
from mediasvc.spaces import MAX_HEADER_BYTES
from mediasvc.spool import (
    CHUNK_BYTES,
    Spooled,
    SpooledUpload,
    check_size,
    check_type,
    ended_early,
    spool_chunks,
    spool_path,
)

log = structlog.get_logger(__name__)

MAX_FIELD_BYTES = 256
# Other small text parts a form may carry, ignored: how many, and how long each.
MAX_EXTRA_PARTS = 8
MAX_EXTRA_BYTES = 4096
# What a form may send before its first boundary line (RFC 2046's preamble, which browsers
# and HTTP libraries leave empty), that line included. aiohttp reads it line by line with
# no bound: ten million newlines held the event loop for ten seconds.
MAX_PREAMBLE_BYTES = 4096
# The form's text fields read so far, each once it has passed `check_field`: an answer that
# a field chooses (a plain form's `success_redirect`) then holds for refusals raised while
# the rest of the body is read. Here rather than in `appkeys`, which imports this module.
FORM_FIELDS = web.RequestKey("mediasvc.form_fields", dict[str, str])
_IDENTITY_ENCODINGS = frozenset({"binary", "8bit", "7bit"})


@contextmanager
def intact_body() -> Iterator[None]:
    """Translate a request body that did not arrive intact into `400 incomplete_body`:
    the client went away (ConnectionError), or aiohttp could not read the body's framing
    (RequestPayloadError, e.g. a chunk-size line too long; PayloadEncodingError, e.g. a
    chunk size that is not hex, met while reading). Either way the client may send it again."""
    try:
        yield
    except ConnectionError:
        raise ended_early() from None
    except (RequestPayloadError, PayloadEncodingError) as exc:
        raise BadRequest(
            f"The request body could not be read: {exc}", code=codes.INCOMPLETE_BODY
        ) from None


@asynccontextmanager
async def spooled_upload(
    request: web.Request, *, spool_dir: Path, form: UploadForm
) -> AsyncIterator[SpooledUpload]:
    """Receive the form into `spool_dir`; the spool file is gone when the block exits."""
    path = spool_path(spool_dir)
    try:
        yield await _receive(request, path, form)
    finally:
        path.unlink(missing_ok=True)  # scratch metadata: on the loop (docs/decisions.md)


async def body_chunks(request: web.Request) -> AsyncIterator[bytes]:
    """The request's body in chunks as they arrive (a session's PUT), for `spool`; a body
    that does not arrive intact is `400 incomplete_body`."""
    chunks = request.content.iter_chunked(CHUNK_BYTES)
    while True:
        with intact_body():
            chunk = await anext(chunks, None)
        if chunk is None:
            return
        yield chunk


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
    spooled: Spooled | None = None
    extra = 0
    # Only one file, one of each field and MAX_EXTRA_PARTS others are valid, so any further
    # part is refused when it arrives: the parts read are bounded.
    while (part := await _next_part(reader)) is not None:
        if part.name is None:
            raise BadRequest("Each part needs a Content-Disposition header with a name.")
        if part.name == "file" and part.filename:
            if spooled is not None:
                raise BadRequest("Send exactly one part named 'file'.")
            spooled = await _spool_file(part, path, form.file_rules(fields, final=False))
        elif part.name in FIELD_NAMES:
            if part.name in fields:
                raise BadRequest(f"The field {part.name!r} appears twice.")
            value = await _read_field(part)
            form.check_field(part.name, value)
            fields[part.name] = value
        elif part.filename or extra == MAX_EXTRA_PARTS:
            raise BadRequest(
                f"Unexpected form part {part.name!r}; send one file part named 'file' and "
                f"the fields {_field_list()} (a few small other text parts are ignored)."
            )
        else:
            # What popular uploaders add by default (Uppy's `name` and `type`, FilePond's
            # metadata under the file's own name): small text, read and dropped.
            extra += 1
            await _read_field(part, MAX_EXTRA_BYTES)
            log.info("upload.extra_part_ignored", part=part.name[:64])
    if spooled is None:
        raise BadRequest("The form has no part named 'file'.")
    # A kind sent after the file: its rules apply now, before any processing.
    rules = form.file_rules(fields, final=True)
    check_size(spooled.size, rules)
    check_type(spooled.mime, rules)
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


async def _spool_file(part: BodyPartReader, path: Path, rules: FileRules) -> Spooled:
    """Stream the part to `path`: its size, sha256 and sniffed MIME type."""
    if not part.filename:
        raise BadRequest("The 'file' part must be a file upload (it has no filename).")
    encoding = part.headers.get(hdrs.CONTENT_TRANSFER_ENCODING, "binary").lower()
    if encoding not in _IDENTITY_ENCODINGS:
        raise BadRequest(f"Content-Transfer-Encoding {encoding!r} is not accepted; send raw bytes.")
    return await spool_chunks(_part_chunks(part), path, rules)


async def _part_chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk(CHUNK_BYTES):
        yield chunk


async def _read_field(part: BodyPartReader, limit: int = MAX_FIELD_BYTES) -> str:
    data = b""
    while chunk := await part.read_chunk(limit + 1):
        data += chunk
        if len(data) > limit:
            raise BadRequest(f"The part {part.name!r} is longer than {limit} bytes.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(f"The field {part.name!r} is not UTF-8 text.") from None


def _field_list() -> str:
    return ", ".join(sorted(FIELD_NAMES))
