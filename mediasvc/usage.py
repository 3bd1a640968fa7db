"""Usage: what the service holds, by owner, space or kind, for `python -m mediasvc usage`
and the `mediasvc_usage_*` gauges on /metrics.

Per group: ready media, the bytes of their stored variants (every size, alternates
included, as the variants JSON records them), the bytes of their kept sources (the
original's size, for kinds configured with `keep_source` now), and upload sessions still
waiting for their bytes. Media being deleted, processing or failed count nowhere.

The gauges are per kind, for the whole cluster. Computing them reads every row, so one
node does it per `MEDIASVC_USAGE_INTERVAL_S`: each node, on its timer, takes a
transaction-scoped try-lock (never waits) and, if the stored snapshot is older than the
interval, computes it afresh into `usage_by_kind`; then every node reads that snapshot
(one row per kind) into its gauges. So every node's /metrics shows the same numbers, and
the cost is paid once per interval, whichever node pays it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import asyncpg

from mediasvc import db
from mediasvc.db import queries
from mediasvc.db.queries import Usage, UsageGroup
from mediasvc.kinds import KindRules
from mediasvc.metrics import Metrics


def source_kinds(kinds: Mapping[str, KindRules]) -> list[str]:
    """The kinds whose uploads keep their source."""
    return sorted(name for name, kind in kinds.items() if kind.keep_source)


async def usage(
    pool: asyncpg.Pool,
    kinds: Mapping[str, KindRules],
    *,
    by: UsageGroup,
    top: int | None,
) -> tuple[list[Usage], Usage]:
    """The largest `top` groups (None: all) and the total over everything."""
    keeping = source_kinds(kinds)
    async with db.connection(pool) as conn:
        rows = await queries.usage(conn, by=by, source_kinds=keeping, limit=top)
        totals = await queries.usage(conn, by=None, source_kinds=keeping, limit=None)
    return rows, totals[0] if totals else Usage(None, 0, 0, 0, 0)


async def refresh(
    pool: asyncpg.Pool, metrics: Metrics, source_kinds: Collection[str], *, max_age_s: float
) -> bool:
    """Compute the usage snapshot if no other node is and it is older than `max_age_s`,
    then report the snapshot in `metrics`; whether this call computed it."""
    computed = False
    async with db.connection(pool) as conn, conn.transaction():
        if await queries.try_lock_usage(conn) and await queries.usage_stale(conn, max_age_s):
            await queries.write_usage_snapshot(conn, source_kinds)
            computed = True
    async with db.connection(pool) as conn:
        snapshot = await queries.read_usage_snapshot(conn)
        refreshed_at = await queries.usage_refreshed_at(conn)
    metrics.report_usage(snapshot, None if refreshed_at is None else refreshed_at.timestamp())
    return computed


def table(rows: list[Usage], total: Usage, by: UsageGroup) -> list[str]:
    """The lines `usage` prints: aligned columns, the largest first, then the total."""
    header = ((by or "").upper() or "ALL", "MEDIA", "VARIANTS", "SOURCES", "PENDING SESSIONS")
    cells = [_cells(row, "(no space)" if by == "space" else "") for row in rows]
    lines = []
    if by is not None:
        widths = [max(len(line[i]) for line in (header, *cells)) for i in range(len(header))]
        for line in (header, *cells):
            first = line[0].ljust(widths[0])
            rest = [cell.rjust(width) for cell, width in zip(line[1:], widths[1:], strict=True)]
            lines.append("  ".join([first, *rest]).rstrip())
    lines.append(
        f"total: {total.media} media, {_bytes(total.variant_bytes)} of variants, "
        f"{_bytes(total.source_bytes)} of sources, {total.pending_sessions} pending sessions"
    )
    return lines


def _cells(row: Usage, unnamed: str) -> tuple[str, str, str, str, str]:
    return (
        row.name if row.name is not None else unnamed,
        str(row.media),
        _bytes(row.variant_bytes),
        _bytes(row.source_bytes),
        str(row.pending_sessions),
    )


def _bytes(count: int) -> str:
    """Bytes as people read them: exact below 1 KiB, else one decimal of the largest unit."""
    value, unit = float(count), "B"
    for larger in ("KiB", "MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, larger
    return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"
