"""A media's objects as its row records them, and reading an object's bytes to check them.

    every variant           `variants[name].key`, `bytes`
    its alternates          `variants[name].alternates[i].key`, `bytes` (AVIF beside WebP)
    the kept source         `keys.source_key(id)`, `original_bytes` (kinds with `keep_source`)

Whether a media's source was kept is not recorded: its kind says so now. A source is
expected when the kind keeps sources, and checked by size wherever one is found.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from mediasvc.db.inventory import StoredMedia
from mediasvc.keys import source_key
from mediasvc.kinds import KindRules
from mediasvc.storage import ObjectMissing, Storage


@dataclass(frozen=True, slots=True)
class Expected:
    """One object a ready media's row says exists."""

    key: str
    media_id: str
    bytes: int
    mime: str
    # False for a source its kind does not keep (now): copied and checked only if present.
    required: bool = True


@dataclass(frozen=True, slots=True)
class Digest:
    """What an object holds: its size and the hex sha256 of its bytes."""

    bytes: int
    sha256: str


def expected_objects(media: StoredMedia, kinds: Mapping[str, KindRules]) -> list[Expected]:
    """Every object `media` has: its variants, their alternates, its source."""
    found = []
    for variant in media.variants.values():
        found.append(Expected(variant.key, media.id, variant.bytes, variant.mime))
        found.extend(Expected(a.key, media.id, a.bytes, a.mime) for a in variant.alternates)
    kind = kinds.get(media.kind)
    keeps_source = kind is not None and kind.keep_source
    found.append(
        Expected(
            source_key(media.id),
            media.id,
            media.source_bytes,
            media.source_mime,
            required=keeps_source,
        )
    )
    return found


async def read_digest(storage: Storage, key: str, into: Path | None = None) -> Digest:
    """Read the object at `key` through, hashing it, and write it to the new file `into` if
    given; `ObjectMissing` if there is none."""
    hasher = hashlib.sha256()
    size = 0
    out: IO[bytes] | None = None
    try:
        if into is not None:
            out = await asyncio.to_thread(into.open, "xb")
        async for chunk in storage.read(key):
            size += len(chunk)
            # Hashing and writing a chunk block: in a thread, as every file write here is.
            await asyncio.to_thread(_absorb, hasher, out, chunk)
    finally:
        if out is not None:
            await asyncio.to_thread(out.close)
    return Digest(size, hasher.hexdigest())


def file_digest(path: Path) -> Digest:
    """The size and sha256 of a local file (blocking: call it in a thread)."""
    with path.open("rb") as source:
        digest = hashlib.file_digest(source, "sha256")
    return Digest(path.stat().st_size, digest.hexdigest())


async def exists(storage: Storage, key: str) -> bool:
    """Whether an object is stored under `key` now (reads its first chunk at most)."""
    chunks = storage.read(key)
    try:
        await anext(chunks, b"")
    except ObjectMissing:
        return False
    finally:
        # Both backends' readers are async generators: closing one now releases its file
        # or connection, instead of whenever it is collected.
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()
    return True


def _absorb(hasher: Any, out: IO[bytes] | None, chunk: bytes) -> None:
    hasher.update(chunk)
    if out is not None:
        out.write(chunk)
