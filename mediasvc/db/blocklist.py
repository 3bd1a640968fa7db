"""The blocklist's SQL: entries that refuse an upload by its file (sha256) or its picture
(PDQ hash within a Hamming distance), as named constants behind small typed functions.

An upload is checked with one statement (`is_blocked`): the sha256 by its unique index, the
PDQ hash against every PDQ entry with `bit_count(entry # upload)` (PostgreSQL 14+). A scan:
PDQ distances have no index in PostgreSQL, and 10 000 entries cost 1.7 ms (`python -m
bench.blocklist`; docs/decisions.md, "Blocklist and PDQ"); past a few hundred thousand, a
multi-index hashing table would be the next step.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from mediasvc.db import Connection
from mediasvc.db.queries import pdq_bits, pdq_hex

_COLUMNS = "id, sha256, pdq, reason, created_by, created_at"

# `$2` is NULL for an upload without a usable PDQ hash: only its sha256 is looked up.
IS_BLOCKED = """
SELECT EXISTS (SELECT 1 FROM blocklist WHERE sha256 = $1)
    OR EXISTS (
        SELECT 1 FROM blocklist
        WHERE pdq IS NOT NULL AND $2::bit(256) IS NOT NULL AND bit_count(pdq # $2) <= $3
    )
"""

# Either unique index may refuse the row: the hash is blocked already.
INSERT_ENTRY = f"""
INSERT INTO blocklist (sha256, pdq, reason, created_by) VALUES ($1, $2, $3, $4)
ON CONFLICT DO NOTHING
RETURNING {_COLUMNS}
"""

SELECT_SAME = f"""
SELECT {_COLUMNS} FROM blocklist WHERE sha256 = $1 OR pdq = $2
"""

LIST_ENTRIES = f"""
SELECT {_COLUMNS} FROM blocklist WHERE id > $1 ORDER BY id LIMIT $2
"""

DELETE_ENTRY = "DELETE FROM blocklist WHERE id = $1"


@dataclass(frozen=True, slots=True)
class Entry:
    """One blocklist entry: a file's sha256 or a picture's PDQ hash (64 hex digits each)."""

    id: int
    sha256: str | None
    pdq: str | None
    reason: str
    created_by: str
    created_at: datetime


async def is_blocked(conn: Connection, sha256: str | None, pdq: str | None, distance: int) -> bool:
    """Whether an upload of this sha256, or whose PDQ hash is within `distance` bits of an
    entry's, is refused (`pdq` None: by its sha256 only)."""
    bits = None if pdq is None else pdq_bits(pdq)
    return bool(await conn.fetchval(IS_BLOCKED, sha256, bits, distance))


async def add(
    conn: Connection, *, sha256: str | None, pdq: str | None, reason: str, created_by: str
) -> tuple[Entry, bool]:
    """Block a sha256 or a PDQ hash (exactly one); the entry and whether it is new (else
    the hash was blocked already, with the reason given then)."""
    bits = None if pdq is None else pdq_bits(pdq)
    # Twice at most: an existing entry removed between the two statements is added again.
    for _ in range(2):
        row = await conn.fetchrow(INSERT_ENTRY, sha256, bits, reason, created_by)
        if row is not None:
            return _entry(row), True
        row = await conn.fetchrow(SELECT_SAME, sha256, bits)
        if row is not None:
            return _entry(row), False
    raise asyncpg.SerializationError("the blocklist entry changed twice while it was added")


async def entries(conn: Connection, *, after: int, limit: int) -> list[Entry]:
    """A page of entries in the order they were added, after the entry `after` (0: first)."""
    return [_entry(row) for row in await conn.fetch(LIST_ENTRIES, after, limit)]


async def remove(conn: Connection, entry_id: int) -> bool:
    """Unblock: remove the entry; False if there was none."""
    return str(await conn.execute(DELETE_ENTRY, entry_id)) == "DELETE 1"


def _entry(row: asyncpg.Record) -> Entry:
    return Entry(
        id=row["id"],
        sha256=row["sha256"],
        pdq=None if row["pdq"] is None else pdq_hex(row["pdq"]),
        reason=row["reason"],
        created_by=row["created_by"],
        created_at=row["created_at"],
    )
