"""Bytes to a spool file: capped, hashed and sniffed as they pass, never held in memory.

The one way an upload's bytes reach the disk, whatever brings them: a form's `file` part
(`ingest`), a session's PUT body, or a session's object read back from storage. While
they stream in, they are counted (413 one byte past the cap, without reading the rest),
hashed (sha256) and, as soon as the first bytes are in, sniffed by libmagic (415 unless on
the allow-list, whatever a filename or declared type says). Nothing here knows HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from mediasvc.contract import codes
from mediasvc.errors import (
    BadRequest,
    InsufficientStorage,
    InvalidImage,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from mediasvc.form import FileRules
from mediasvc.imaging.formats import MISSING_DECODERS, SNIFF_BYTES, sniff

# Each write is one hop to a writer thread: reads and writes of this size keep the hops few.
CHUNK_BYTES = 1024 * 1024
# How many pieces one `writev` may take (POSIX's IOV_MAX; 1024 on Linux).
_IOV_MAX = os.sysconf("SC_IOV_MAX")


@dataclass(frozen=True, slots=True)
class SpooledUpload:
    """The file on disk plus, for a form, its text fields (each passed `check_field`).

    `receive_s` is the time from the first byte read to the end of the body, `sniff_s`
    the part of it spent telling the file's type.
    """

    path: Path
    size: int
    sha256: str
    mime: str
    fields: dict[str, str]
    receive_s: float
    sniff_s: float


def ended_early() -> BadRequest:
    """The refusal of a body whose sender went away mid-way: nobody may be left to read it,
    but if someone is, this is what happened. Not a server fault, so no traceback; the
    client may send it again."""
    return BadRequest("The request body ended early.", code=codes.INCOMPLETE_BODY)


def spool_path(spool_dir: Path) -> Path:
    """A fresh, unguessable file name in `spool_dir` (the reaper removes strays)."""
    return spool_dir / f"{secrets.token_hex(16)}.upload"


@asynccontextmanager
async def spooled_stream(
    chunks: AsyncIterator[bytes], *, spool_dir: Path, rules: FileRules
) -> AsyncIterator[SpooledUpload]:
    """Spool a raw byte stream (a session's PUT body, or its object read back from storage)
    with the same cap, hash and sniff as a form's file; gone when the block exits."""
    path = spool_path(spool_dir)
    started = time.perf_counter()
    try:
        try:
            spooled = await spool_chunks(chunks, path, rules)
        except ConnectionError:
            raise ended_early() from None
        yield spooled.upload(path, {}, started)
    finally:
        path.unlink(missing_ok=True)  # scratch metadata: on the loop (docs/decisions.md)


@dataclass(frozen=True, slots=True)
class Spooled:
    """What spooling learnt of a file: its size, sha256, sniffed type and the sniff's time."""

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


async def spool_chunks(chunks: AsyncIterator[bytes], path: Path, rules: FileRules) -> Spooled:
    """Write `chunks` to `path`, capped, hashed and sniffed as they pass."""
    size = 0
    head = b""
    mime: str | None = None
    sniff_s = 0.0
    writer = _SpoolWriter(path)
    try:
        async for chunk in chunks:
            size += len(chunk)
            check_size(size, rules)
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
    return Spooled(size, writer.sha256.hexdigest(), mime, sniff_s)


class _SpoolWriter:
    """Hashes and writes chunks in a worker thread, one operation at a time.

    The network hands over what has arrived, often a few kilobytes: chunks are gathered in
    memory up to `CHUNK_BYTES` so that a 4 MB upload takes four hops to the thread, not
    dozens. They are handed over as they came, hashed one by one and written with one
    `writev`, never joined: a join copied every byte once more (0.8 ms of CPU a 4 MB
    upload, docs/performance.md). A cancelled request (client gone) abandons the await,
    not the thread: `close` first waits for the operation in flight, so the file is never
    opened or written after it was closed and removed.
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
        chunks, self._pending, self._pending_bytes = self._pending, [], 0
        self._in_flight = asyncio.get_running_loop().run_in_executor(None, self._write, chunks)
        try:
            await asyncio.shield(self._in_flight)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise InsufficientStorage(
                    "The server has no room to receive uploads right now; try again later."
                ) from None
            raise

    def _write(self, chunks: list[bytes]) -> None:
        if self._file is None:
            self._file = self.path.open("xb", buffering=0)
        for chunk in chunks:
            self.sha256.update(chunk)
        _write_all(self._file.fileno(), chunks)

    async def close(self) -> None:
        if self._in_flight is not None:
            with contextlib.suppress(Exception):
                await self._in_flight
        if self._file is not None:
            self._file.close()  # unbuffered: nothing left to write, one close(2)


def _write_all(fd: int, chunks: list[bytes]) -> None:
    """Write `chunks` in order with as few `writev` calls as the system allows (at most
    `IOV_MAX` pieces each), going on after a short write."""
    views = [memoryview(chunk) for chunk in chunks]
    first = 0
    while first < len(views):
        written = os.writev(fd, views[first : first + _IOV_MAX])
        while first < len(views) and written >= len(views[first]):
            written -= len(views[first])
            first += 1
        if written:
            views[first] = views[first][written:]


def _allowed_type(head: bytes, rules: FileRules) -> tuple[str, float]:
    """The sniffed type, if on the allow-list, and how long telling it took."""
    started = time.perf_counter()
    mime = sniff(head)
    sniff_s = time.perf_counter() - started
    check_type(mime, rules)
    return mime, sniff_s


def check_size(size: int, rules: FileRules) -> None:
    """Refuse a file of `size` bytes past the rules' cap (`413`)."""
    if size > rules.max_bytes:
        whose = f" for kind {rules.kind!r}" if rules.kind else ""
        raise PayloadTooLarge(
            f"The file is larger than {rules.max_bytes} bytes{whose}.", limit=rules.max_bytes
        )


def check_type(mime: str, rules: FileRules) -> None:
    """Refuse a sniffed type the rules do not accept (`415`)."""
    if mime not in rules.accept:
        whose = f" for kind {rules.kind!r}" if rules.kind else ""
        enable = f" {MISSING_DECODERS[mime]}" if mime in MISSING_DECODERS else ""
        raise UnsupportedMediaType(
            f"The file is {mime}; accepted types{whose} are "
            f"{', '.join(sorted(rules.accept))}.{enable}",
            actual=mime,
            accepted=sorted(rules.accept),
        )
