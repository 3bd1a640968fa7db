"""The SQL of cache purges (table `cache_purges`, mediasvc/sql/0015_cache_purges.sql), as named
constants behind small typed functions that take a connection, like `db.queries`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from mediasvc.db import Connection

# The channel cache purgers LISTEN on (spelled out in RECORD). The payload is empty: the
# row says what to purge, and PostgreSQL folds a transaction's notifications into one.
CHANNEL = "mediasvc_cache_purge"

# The row and its wake-up in one statement; in a transaction, the NOTIFY goes at commit.
RECORD = """
WITH recorded AS (
    INSERT INTO cache_purges (keys) VALUES ($1::text[]) RETURNING seq
)
SELECT pg_notify('mediasvc_cache_purge', '') FROM recorded
"""

# Unapplied rows are found by time, not by `seq`: sequence values are taken before commit,
# so a row with a lower `seq` may become visible after a higher one. A purger reads back
# an overlap of a few seconds each time and skips the rows it applied already.
SINCE = """
SELECT seq, keys, recorded_at FROM cache_purges
WHERE recorded_at > coalesce($1::timestamptz, clock_timestamp() - make_interval(secs => $2))
ORDER BY seq
"""

PRUNE = """
DELETE FROM cache_purges WHERE recorded_at < clock_timestamp() - make_interval(secs => $1)
"""


@dataclass(frozen=True, slots=True)
class Purge:
    """Keys whose cached copies must go, and when that was recorded (the database's clock)."""

    seq: int
    keys: list[str]
    recorded_at: datetime


async def record(conn: Connection, keys: Sequence[str]) -> None:
    """Ask every cache to drop `keys` (public variant keys); nothing if there are none."""
    if keys:
        await conn.execute(RECORD, list(keys))


async def since(conn: Connection, after: datetime | None, *, window_s: float) -> list[Purge]:
    """The purges recorded after `after`, or in the last `window_s` seconds if None."""
    rows = await conn.fetch(SINCE, after, window_s)
    return [Purge(row["seq"], list(row["keys"]), row["recorded_at"]) for row in rows]


async def prune(conn: Connection, *, older_than_s: float) -> int:
    """Forget purges older than `older_than_s`; how many."""
    return int(str(await conn.execute(PRUNE, older_than_s)).split()[-1])
