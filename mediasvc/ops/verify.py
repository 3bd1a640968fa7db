"""`storage verify`: every ready media's objects exist with the sizes its row records, and
no object exists without a row (the reaper's orphan rule, `flows.reaper.orphans_among`).

Safe beside a running service: the storage is listed first and the rows read afterwards,
so an upload made during the check is either listed with its row or not looked at
(rows made ready after the listing began are skipped); an orphan is reported only if it is
still there after the rows were read (a delete removes the objects, then the row).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import asyncpg

from mediasvc import db
from mediasvc.db import inventory
from mediasvc.flows.reaper import orphans_among
from mediasvc.kinds import KindRules
from mediasvc.ops.objects import exists, expected_objects
from mediasvc.ops.progress import Progress
from mediasvc.storage import Storage, StoredObject

# Media read per query.
BATCH = 500


@dataclass(frozen=True, slots=True)
class Missing:
    """An object a row records that is not stored, or not at its recorded size."""

    key: str
    media_id: str
    expected_bytes: int
    # None: no object at all.
    found_bytes: int | None

    def __str__(self) -> str:
        if self.found_bytes is None:
            return f"missing: {self.key} (media {self.media_id}, {self.expected_bytes} bytes)"
        return (
            f"wrong size: {self.key} (media {self.media_id}): {self.found_bytes} bytes,"
            f" the row says {self.expected_bytes}"
        )


@dataclass
class VerifyReport:
    """What one check found."""

    media: int = 0
    objects: int = 0
    missing: list[Missing] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.orphans

    def lines(self) -> list[str]:
        """One line per problem, then the summary."""
        found = [str(m) for m in self.missing] + [f"orphan: {key}" for key in self.orphans]
        verdict = "ok" if self.ok else "PROBLEMS"
        return [
            *found,
            f"verify: {verdict}: {self.media} media, {self.objects} objects checked;"
            f" {len(self.missing)} missing or wrong size, {len(self.orphans)} orphans",
        ]


async def verify_storage(
    pool: asyncpg.Pool,
    storage: Storage,
    kinds: Mapping[str, KindRules],
    progress: Progress | None = None,
) -> VerifyReport:
    """Check the rows against the storage and the storage against the rows."""
    progress = progress or Progress("verify")
    report = VerifyReport()
    async with db.connection(pool) as conn:
        # The database's clock, as `updated_at` is written by it.
        listing_began = await conn.fetchval("SELECT clock_timestamp()")
        progress.total = await inventory.count_ready(conn)
    listed: dict[str, StoredObject] = {}
    async for obj in storage.scan():
        listed[obj.key] = obj
    async with db.connection(pool) as conn:
        candidates = await orphans_among(conn, listed.values())
        after = ""
        while batch := await inventory.ready_media(conn, after, BATCH):
            after = batch[-1].id
            for media in batch:
                progress.advance(1)
                if media.updated_at >= listing_began:
                    continue  # made ready (or re-rendered) after the listing began
                report.media += 1
                for expected in expected_objects(media, kinds):
                    found = listed.get(expected.key)
                    if found is None and not expected.required:
                        continue
                    report.objects += 1
                    if found is None or found.bytes != expected.bytes:
                        size = None if found is None else found.bytes
                        report.missing.append(Missing(expected.key, media.id, expected.bytes, size))
    report.orphans = [key for key in candidates if await exists(storage, key)]
    progress.close()
    return report
