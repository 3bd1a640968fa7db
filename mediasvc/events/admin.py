"""`python -m mediasvc events`: what the outbox has not delivered, and requeueing it.

    events                       pending and given-up deliveries, oldest event first
    events retry EVENT_ID        requeue that event's given-up deliveries
    events retry --all-failed    requeue every given-up delivery

A requeued delivery is due at once, with a fresh MEDIASVC_WEBHOOK_RETRY_S to succeed in,
and goes out in its media's order again (its later events wait for it, if still pending).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from mediasvc import db
from mediasvc.db import events as queries
from mediasvc.db.events import Undelivered

# More than a screen; the summary line still counts everything.
LIST_LIMIT = 1000


async def show(database_url: str, *, limit: int = LIST_LIMIT) -> list[str]:
    """The lines `events` prints: a table of undelivered deliveries and a summary."""
    conn = await db.connect(database_url)
    try:
        rows = await queries.list_undelivered(conn, limit=limit)
        backlog = await queries.backlog(conn)
    finally:
        await conn.close()
    summary = f"{backlog.pending} pending, {backlog.failed} given up"
    if not rows:
        return [summary]
    shown = "" if len(rows) >= backlog.pending + backlog.failed else f" (first {len(rows)})"
    return [*table(rows), summary + shown]


async def retry(database_url: str, event_id: str | None) -> list[tuple[str, str]]:
    """Requeue the given-up deliveries of `event_id` (None: all); (event, url) of each."""
    conn = await db.connect(database_url)
    try:
        async with conn.transaction():
            return await queries.requeue(conn, event_id)
    finally:
        await conn.close()


def table(rows: Sequence[Undelivered]) -> list[str]:
    """Aligned columns, one line per delivery."""
    header = ("EVENT", "TYPE", "MEDIA", "URL", "STATE", "ATTEMPTS", "LAST ERROR")
    cells = [
        (
            r.event_id,
            r.type,
            r.media_id,
            r.url,
            state(r),
            str(r.attempts),
            r.last_error or "",
        )
        for r in rows
    ]
    # The last column (the error) is not padded.
    widths = [max(len(line[i]) for line in (header, *cells)) for i in range(len(header) - 1)]
    lines = []
    for line in (header, *cells):
        padded = [cell.ljust(width) for cell, width in zip(line[:-1], widths, strict=True)]
        lines.append("  ".join([*padded, line[-1]]).rstrip())
    return lines


def state(row: Undelivered) -> str:
    """Where a delivery stands, in words."""
    if row.state == "failed":
        return f"given up {_at(row.finished_at)}"
    if row.leased and row.due_later:
        return f"sending ({row.claimed_by}, lease to {_at(row.due_at)})"
    if row.leased:
        return f"due (the lease of {row.claimed_by} ran out)"
    if row.due_later:
        return f"retry at {_at(row.due_at)}"
    return "due"


def _at(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
