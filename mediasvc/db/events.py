"""The outbox's SQL (tables `events` and `event_deliveries`, mediasvc/sql/0005_events.sql), as named
constants behind small typed functions that take a connection, like `db.queries`.

A delivery's life (one row per event and URL; the deadline is WEBHOOK_RETRY_S after it
was queued):

    pending ──claim──▶ leased: attempts + 1, due_at = now + lease, committed at once
                         ├─ 2xx ─────────────────────────▶ delivered
                         ├─ failure before the deadline ─▶ pending, due after a backoff
                         ├─ failure past the deadline ───▶ failed (given up, kept)
                         ├─ the node stops ──────────────▶ pending, due now (handed back)
                         └─ the node dies ───────────────▶ claimable again when due_at passes
    failed ──`events retry`──▶ pending, due now, with a fresh deadline
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from mediasvc.db import Connection

# The channel dispatchers LISTEN on (spelled out in RECORD and WAKE); payloads are empty, so
# PostgreSQL folds a transaction's notifications into one.
CHANNEL = "mediasvc_events"

# Events and their deliveries in one statement (one round trip in the caller's
# transaction); the NOTIFY is sent at commit, and never for a transaction rolled back.
RECORD = """
WITH recorded AS (
    INSERT INTO events (id, type, media_id, body)
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
    RETURNING id, seq, media_id
), queued AS (
    INSERT INTO event_deliveries (event_id, url, media_id, seq)
    SELECT recorded.id, url, recorded.media_id, recorded.seq
    FROM recorded CROSS JOIN unnest($5::text[]) AS url
)
SELECT pg_notify('mediasvc_events', '')
"""

# Due deliveries to our URLs whose media has no earlier event still pending for the same
# URL (so a media's events go out one at a time, in order), leased to this node. A lease
# that runs out (the node died mid-delivery) makes the row due again for any node.
CLAIM = """
WITH due AS (
    SELECT d.event_id, d.url FROM event_deliveries d
    WHERE d.state = 'pending' AND d.due_at <= now() AND d.url = ANY($1::text[])
      AND NOT EXISTS (
          SELECT 1 FROM event_deliveries earlier
          WHERE earlier.state = 'pending' AND earlier.url = d.url
            AND earlier.media_id = d.media_id AND earlier.seq < d.seq
      )
    ORDER BY d.due_at
    LIMIT $2
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE event_deliveries d
SET attempts = d.attempts + 1, due_at = now() + make_interval(secs => $3), leased = true,
    claimed_by = $4
FROM due, events e
WHERE d.event_id = due.event_id AND d.url = due.url AND e.id = d.event_id
RETURNING d.event_id, d.url, d.attempts, e.type, e.media_id, e.body
"""

# Any holder's 2xx counts (a lease that ran out may have been taken over meanwhile).
# Returns the time from the event's recording to now.
MARK_DELIVERED = """
UPDATE event_deliveries d
SET state = 'delivered', leased = false, last_status = $3, last_error = NULL,
    finished_at = clock_timestamp()
FROM events e
WHERE d.event_id = $1 AND d.url = $2 AND d.state = 'pending' AND e.id = d.event_id
RETURNING extract(epoch FROM clock_timestamp() - e.created_at)::float8 AS latency_s
"""

# Only the current lease holder ($5 = its attempt number) reschedules or gives up, so a
# late failure from a node whose lease ran out cannot undo another node's success. The
# next attempt is at the deadline at the latest; an attempt failing past it gives up.
MARK_FAILED_ATTEMPT = """
UPDATE event_deliveries
SET state = CASE WHEN clock_timestamp() >= queued_at + make_interval(secs => $6)
                 THEN 'failed' ELSE 'pending' END,
    finished_at = CASE WHEN clock_timestamp() >= queued_at + make_interval(secs => $6)
                       THEN clock_timestamp() END,
    due_at = least(clock_timestamp() + make_interval(secs => $7),
                   queued_at + make_interval(secs => $6)),
    leased = false, last_status = $3, last_error = $4
WHERE event_id = $1 AND url = $2 AND state = 'pending' AND attempts = $5
RETURNING state
"""

# A node shutting down hands its claims back at once instead of waiting out the lease.
RELEASE = """
UPDATE event_deliveries SET due_at = clock_timestamp(), leased = false
WHERE event_id = $1 AND url = $2 AND state = 'pending' AND attempts = $3
"""

# The dispatcher's idle look: how much is waiting (for the metrics), and in how many
# seconds (on the database's clock) the next retry or lease falls due, to sleep until then.
BACKLOG = """
SELECT count(*) FILTER (WHERE state = 'pending') AS pending,
       count(*) FILTER (WHERE state = 'failed') AS failed,
       extract(epoch FROM min(due_at) FILTER (WHERE state = 'pending' AND due_at > now())
                          - now())::float8 AS next_due_in_s
FROM event_deliveries WHERE state <> 'delivered'
"""

LIST_UNDELIVERED = """
SELECT d.event_id, e.type, d.media_id, d.url, d.state, d.attempts, d.due_at, d.leased,
       d.claimed_by, d.last_status, d.last_error, e.created_at, d.finished_at,
       d.due_at > now() AS due_later
FROM event_deliveries d JOIN events e ON e.id = d.event_id
WHERE d.state <> 'delivered'
ORDER BY d.seq, d.url
LIMIT $1
"""

# Given-up deliveries (of one event, or all) go back to the queue with a fresh deadline.
REQUEUE = """
UPDATE event_deliveries
SET state = 'pending', due_at = clock_timestamp(), queued_at = clock_timestamp(),
    finished_at = NULL, leased = false
WHERE state = 'failed' AND ($1::text IS NULL OR event_id = $1)
RETURNING event_id, url
"""

# Sent at commit: every node's dispatcher looks for due work at once.
WAKE = "SELECT pg_notify('mediasvc_events', '')"

# Events delivered everywhere, recorded before the cut-off, a batch at a time.
PRUNE_DELIVERED = """
DELETE FROM events WHERE id IN (
    SELECT e.id FROM events e
    WHERE e.created_at < now() - make_interval(secs => $1)
      AND NOT EXISTS (
          SELECT 1 FROM event_deliveries d WHERE d.event_id = e.id AND d.state <> 'delivered'
      )
    LIMIT $2
)
"""


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to record: its id (`webhook-id`), type, media and the exact body to send."""

    id: str
    type: str
    media_id: str
    body: str


@dataclass(frozen=True, slots=True)
class Claim:
    """A delivery leased to this node: what to send where, and which attempt it is."""

    event_id: str
    url: str
    attempt: int
    type: str
    media_id: str
    body: str


@dataclass(frozen=True, slots=True)
class Backlog:
    """Deliveries not delivered, in the whole cluster, and in how many seconds the next
    one not due yet (a retry, a lease running out) falls due; None if none."""

    pending: int
    failed: int
    next_due_in_s: float | None


@dataclass(frozen=True, slots=True)
class Undelivered:
    """One pending or given-up delivery, as `python -m mediasvc events` lists it."""

    event_id: str
    type: str
    media_id: str
    url: str
    state: str
    attempts: int
    due_at: datetime
    due_later: bool
    leased: bool
    claimed_by: str | None
    last_status: int | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None


async def record(conn: Connection, events: Sequence[NewEvent], urls: Sequence[str]) -> None:
    """Write `events`, each with a pending delivery per URL, and wake the dispatchers at
    commit. In the caller's transaction, with the change the events report."""
    await conn.execute(
        RECORD,
        [e.id for e in events],
        [e.type for e in events],
        [e.media_id for e in events],
        [e.body for e in events],
        list(urls),
    )


async def claim(
    conn: Connection, urls: Sequence[str], *, limit: int, lease_s: float, node: str
) -> list[Claim]:
    """Lease up to `limit` due deliveries to `urls`, at most one per media and URL."""
    rows = await conn.fetch(CLAIM, list(urls), limit, lease_s, node)
    return [
        Claim(r["event_id"], r["url"], r["attempts"], r["type"], r["media_id"], r["body"])
        for r in rows
    ]


async def mark_delivered(conn: Connection, claim: Claim, status: int) -> float | None:
    """Record a 2xx; the seconds since the event was recorded, or None if it was already
    delivered (a duplicate from a node whose lease had run out)."""
    latency: float | None = await conn.fetchval(MARK_DELIVERED, claim.event_id, claim.url, status)
    return latency


async def mark_failed_attempt(
    conn: Connection,
    claim: Claim,
    *,
    status: int | None,
    error: str,
    retry_s: float,
    delay_s: float,
) -> str | None:
    """Record a failed attempt: retry in `delay_s`, or give up past `retry_s` since it was
    queued. The new state (pending, failed), or None if the lease was lost meanwhile."""
    state: str | None = await conn.fetchval(
        MARK_FAILED_ATTEMPT,
        claim.event_id,
        claim.url,
        status,
        error,
        claim.attempt,
        retry_s,
        delay_s,
    )
    return state


async def release(conn: Connection, claim: Claim) -> None:
    """Hand a claim back, due now, if this node still holds it."""
    await conn.execute(RELEASE, claim.event_id, claim.url, claim.attempt)


async def backlog(conn: Connection) -> Backlog:
    """Pending and given-up deliveries, and when the next scheduled retry is due."""
    row = await conn.fetchrow(BACKLOG)
    assert row is not None, "an aggregate returns one row"
    return Backlog(row["pending"], row["failed"], row["next_due_in_s"])


async def list_undelivered(conn: Connection, *, limit: int) -> list[Undelivered]:
    """Pending and given-up deliveries, in recording order."""
    return [Undelivered(**dict(r)) for r in await conn.fetch(LIST_UNDELIVERED, limit)]


async def requeue(conn: Connection, event_id: str | None) -> list[tuple[str, str]]:
    """In a transaction: put given-up deliveries (of `event_id`, or all) back in the queue
    and wake the dispatchers at commit; (event, url) of each."""
    requeued = [(r["event_id"], r["url"]) for r in await conn.fetch(REQUEUE, event_id)]
    if requeued:
        await conn.execute(WAKE)
    return requeued


async def prune_delivered(conn: Connection, *, older_than_s: float, limit: int) -> int:
    """Delete up to `limit` events delivered everywhere and older than `older_than_s`."""
    status: str = await conn.execute(PRUNE_DELIVERED, older_than_s, limit)
    return int(status.split()[-1])
