"""Where variant files live: one small Protocol, one module per backend.

What a key looks like is `mediasvc.keys`' business; a backend stores whatever key it
is given. The configured backend is opened by `storage.open.open_storage`: this module
imports no backend, so the backends can import it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, Protocol


class StorageError(Exception):
    """The backend could not complete an operation (unreachable, full, refusing)."""

    def __init__(self, message: str, *, stored: int = 0) -> None:
        super().__init__(message)
        # Of a `put_all`'s files, how many were stored anyway (before or beside the failure).
        self.stored = stored


class ObjectMissing(StorageError):
    """No object is stored under the key."""


@dataclass(frozen=True, slots=True)
class StoredFile:
    """One file to write: its key, where it is now (the caller's scratch copy), its type."""

    key: str
    path: Path
    mime: str


@dataclass(frozen=True, slots=True)
class DirectUpload:
    """How a client sends an object's bytes straight to the store (presigned POST or PUT).

    `fields` are the form fields of a POST (the file goes last); `headers` those a PUT
    must send (they are signed).
    """

    method: Literal["POST", "PUT"]
    url: str
    fields: dict[str, str] | None = None
    headers: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class DirectUploadTerms:
    """What a direct upload may send: its type, exactly `size` bytes if known, else at most
    `max_bytes`, by `method` ("post" or "put"), within `ttl_s` seconds."""

    content_type: str
    size: int | None
    max_bytes: int
    method: str
    ttl_s: int


@dataclass(frozen=True, slots=True)
class StoredObject:
    """One object found by a scan: its key, when it was last written (UTC), its size."""

    key: str
    modified: datetime
    bytes: int


class Storage(Protocol):
    """Writes, removes and checks variant objects. Every write is atomic per object."""

    # Whether a client's PUT straight to the store must be signed for its exact length to
    # be capped at all (S3: a presigned PUT has no length range, unlike a POST policy).
    put_needs_size: bool

    async def put(self, key: str, source: Path, content_type: str) -> None:
        """Store the file at `source` under `key`, all or nothing.

        `source` is the caller's scratch file: a backend may move it instead of copying.
        """
        ...

    async def put_all(self, files: Sequence[StoredFile]) -> None:
        """Store each file as `put` does, the backend's cheapest way for a set (one media's
        files); once every write has ended, `StorageError` if any failed, its `stored`
        saying how many of them were stored all the same."""
        ...

    async def delete(self, keys: Iterable[str]) -> None:
        """Remove the objects; keys that do not exist are not an error."""
        ...

    async def delete_under(self, prefix: str) -> list[str]:
        """Remove every object whose key starts with `prefix` (ending in `/`); their keys
        (what caches in front must drop, `mediasvc.nginxcache`)."""
        ...

    async def check(self) -> None:
        """Raise `StorageError` unless the backend can take writes now."""
        ...

    def scan(self) -> AsyncIterator[StoredObject]:
        """Every stored object (for the reaper's orphan check, `storage verify`)."""
        ...

    def read(self, key: str) -> AsyncIterator[bytes]:
        """The object's bytes in chunks; `ObjectMissing` if there is none."""
        ...

    async def direct_upload(self, key: str, terms: DirectUploadTerms) -> DirectUpload | None:
        """A presigned way for a client to store `key` itself, on `terms`, where the store
        can enforce them; None when the bytes must come through the app."""
        ...
