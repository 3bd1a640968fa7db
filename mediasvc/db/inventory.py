"""What the database says is stored: each ready media's objects, for `storage copy`,
`storage verify` and `backup`; and the record of objects already copied to another backend
(`storage_copies`), which lets an interrupted copy resume."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from mediasvc.db import Connection
from mediasvc.db.queries import stored_variant
from mediasvc.models import StoredVariant

# Media whose every object is stored: ready ones, and those held for review (quarantined).
_HELD = "status IN ('ready', 'quarantined')"

COUNT_READY = f"SELECT count(*) FROM media WHERE {_HELD}"

# Keyset pages by id: stable while rows come and go, no OFFSET rescans.
READY_MEDIA = f"""
SELECT id, kind, original_mime, original_bytes, variants, updated_at
FROM media
WHERE {_HELD} AND id > $1
ORDER BY id
LIMIT $2
"""

COPIED_KEYS = """
SELECT key, sha256 FROM storage_copies WHERE target = $1 AND media_id = ANY($2::text[])
"""

RECORD_COPY = """
INSERT INTO storage_copies (target, key, media_id, bytes, sha256)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (target, key) DO UPDATE
SET media_id = EXCLUDED.media_id, bytes = EXCLUDED.bytes, sha256 = EXCLUDED.sha256,
    copied_at = now()
"""

FORGET_COPIES = "DELETE FROM storage_copies WHERE target = $1 AND key = ANY($2::text[])"

# Copies whose media is no longer ready (deleted, or being deleted) since they were made.
COPIES_OF_GONE_MEDIA = f"""
SELECT c.key FROM storage_copies AS c
WHERE c.target = $1
  AND NOT EXISTS (SELECT 1 FROM media AS m WHERE m.id = c.media_id AND m.{_HELD})
"""


@dataclass(frozen=True, slots=True)
class StoredMedia:
    """One ready media's stored objects, as its row records them."""

    id: str
    kind: str
    # The uploaded file's type and size: what its kept source (`keys.source_key`) holds.
    source_mime: str
    source_bytes: int
    variants: dict[str, StoredVariant]
    updated_at: datetime


async def count_ready(conn: Connection) -> int:
    """How many media are ready."""
    return int(await conn.fetchval(COUNT_READY))


async def ready_media(conn: Connection, after: str, limit: int) -> list[StoredMedia]:
    """Up to `limit` ready media with ids after `after` (`""`: from the first), by id."""
    rows = await conn.fetch(READY_MEDIA, after, limit)
    return [
        StoredMedia(
            id=row["id"],
            kind=row["kind"],
            source_mime=row["original_mime"],
            source_bytes=row["original_bytes"],
            variants={name: stored_variant(v) for name, v in row["variants"].items()},
            updated_at=row["updated_at"],
        )
        for row in rows
    ]


async def copied_keys(conn: Connection, target: str, media_ids: Sequence[str]) -> dict[str, str]:
    """The keys of these media already copied to `target`, each with its sha256."""
    rows = await conn.fetch(COPIED_KEYS, target, list(media_ids))
    return {row["key"]: row["sha256"] for row in rows}


async def record_copy(
    conn: Connection, target: str, key: str, media_id: str, size: int, sha256: str
) -> None:
    """Note that `key` is on `target`, checked to be these bytes."""
    await conn.execute(RECORD_COPY, target, key, media_id, size, sha256)


async def forget_copies(conn: Connection, target: str, keys: Sequence[str]) -> None:
    """Drop the record of these keys on `target` (removed from it)."""
    await conn.execute(FORGET_COPIES, target, list(keys))


async def copies_of_gone_media(conn: Connection, target: str) -> list[str]:
    """Keys copied to `target` whose media is no longer ready."""
    return [row["key"] for row in await conn.fetch(COPIES_OF_GONE_MEDIA, target)]
