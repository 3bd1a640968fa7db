"""Every SQL statement the service runs, as named constants behind small typed functions.

Each function takes a connection, so the caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import asyncpg

from mediasvc.db import Connection
from mediasvc.models import Media, Original, Status, StoredVariant, Visibility

_COLUMNS = """
    id, owner, kind, collection, position, visibility, status,
    original_mime, original_bytes, original_width, original_height, original_frames,
    sha256, variants, created_at
"""

# A collection item goes after the owner's last one; media outside collections sit at 0.
INSERT_PROCESSING = f"""
INSERT INTO media (id, owner, kind, collection, position, visibility, status,
                   original_mime, original_bytes, sha256, idempotency_key)
VALUES ($1, $2, $3, $4,
        CASE WHEN $4::text IS NULL THEN 0 ELSE (
            SELECT coalesce(max(position) + 1, 0) FROM media WHERE owner = $2 AND collection = $4
        ) END,
        $5, 'processing', $6, $7, $8, $9)
RETURNING {_COLUMNS}
"""

MARK_READY = f"""
UPDATE media
SET status = 'ready', original_width = $2, original_height = $3, original_frames = $4,
    variants = $5, updated_at = now()
WHERE id = $1 AND status = 'processing'
RETURNING {_COLUMNS}
"""

DELETE_MEDIA = "DELETE FROM media WHERE id = $1"

SELECT_MEDIA = f"SELECT {_COLUMNS} FROM media WHERE id = $1"


async def insert_processing(
    conn: Connection,
    *,
    media_id: str,
    owner: str,
    kind: str,
    collection: str | None,
    visibility: Visibility,
    mime: str,
    size: int,
    sha256: str,
    idempotency_key: str | None,
) -> Media:
    """Record a new upload as `processing`, before any file is written."""
    row = await conn.fetchrow(
        INSERT_PROCESSING,
        media_id,
        owner,
        kind,
        collection,
        visibility,
        mime,
        size,
        sha256,
        idempotency_key,
    )
    assert row is not None, "INSERT ... RETURNING returns the row"
    return _media(row)


async def mark_ready(
    conn: Connection,
    media_id: str,
    *,
    width: int,
    height: int,
    frames: int,
    variants: Mapping[str, StoredVariant],
) -> Media | None:
    """Record the stored variants; None if the row is gone or no longer `processing`."""
    row = await conn.fetchrow(
        MARK_READY,
        media_id,
        width,
        height,
        frames,
        {name: _variant_json(v) for name, v in variants.items()},
    )
    return None if row is None else _media(row)


async def delete_media(conn: Connection, media_id: str) -> bool:
    """Remove the row; whether there was one."""
    status = await conn.execute(DELETE_MEDIA, media_id)
    return bool(status == "DELETE 1")


async def get_media(conn: Connection, media_id: str) -> Media | None:
    """One media by id, whatever its owner or status."""
    row = await conn.fetchrow(SELECT_MEDIA, media_id)
    return None if row is None else _media(row)


def _variant_json(variant: StoredVariant) -> dict[str, Any]:
    return {
        "key": variant.key,
        "width": variant.width,
        "height": variant.height,
        "bytes": variant.bytes,
        "mime": variant.mime,
    }


def _media(row: asyncpg.Record) -> Media:
    return Media(
        id=row["id"],
        owner=row["owner"],
        kind=row["kind"],
        collection=row["collection"],
        position=row["position"],
        visibility=cast(Visibility, row["visibility"]),
        status=cast(Status, row["status"]),
        original=Original(
            mime=row["original_mime"],
            bytes=row["original_bytes"],
            sha256=row["sha256"],
            width=row["original_width"],
            height=row["original_height"],
            frames=row["original_frames"],
        ),
        variants={name: StoredVariant(**v) for name, v in row["variants"].items()},
        created_at=row["created_at"],
    )
