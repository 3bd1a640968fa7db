"""Every SQL statement the service runs, as named constants behind small typed functions.

Each function takes a connection, so the caller owns the transaction. Functions whose
docstring says "in a transaction" take a transaction-scoped advisory lock and must run
inside one.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast

import asyncpg

from mediasvc.db import Connection
from mediasvc.imaging.job import PDQ_MIN_QUALITY, Pdq
from mediasvc.models import (
    Media,
    Original,
    Placeholder,
    Status,
    StoredAlternate,
    StoredVariant,
    Visibility,
)

# A PDQ hash's bits (`imaging.pdq`; the `bit(256)` columns of media and the blocklist).
PDQ_BITS = 256

# Later than any `created_at`: the cursor of a first page, which every row is before.
_FAR_FUTURE = datetime.max.replace(tzinfo=UTC)

UsageGroup = Literal["owner", "space", "kind"] | None

# A collection's stored `slot`s only grow and may have gaps (a removal is one DELETE that
# touches no other row); the dense `position` clients see is counted on read, among the
# collection's live items (media_owner_collection_idx).
_COLUMNS = """
    id, owner, kind, collection,
    CASE WHEN collection IS NULL THEN 0 ELSE (
        SELECT count(*) FROM media AS earlier
        WHERE earlier.owner = media.owner AND earlier.collection = media.collection
          AND earlier.status <> 'deleting' AND earlier.position < media.position
    )::integer END AS position,
    position AS slot, visibility, space, status,
    original_mime, original_bytes, original_width, original_height, original_frames,
    sha256, variants, thumbhash, dominant_color, processing, created_at, expires_at, problem,
    auto_complete, pdq, pdq_quality
"""

# Serialises what reads a collection to change it: inserts (the cap and the next slot),
# reorders, and a replacing kind's retirement. Removals need no lock: a DELETE leaves a gap,
# which the counted `position` closes on read. Released at commit.
LOCK_COLLECTION = "SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))"

# Serialises the uploads of one owner while quotas are checked. Released at commit.
LOCK_OWNER = "SELECT pg_advisory_xact_lock(hashtext('mediasvc.owner'), hashtext($1))"

OWNER_USAGE = """
SELECT count(*) AS media, coalesce(sum(original_bytes), 0) AS bytes
FROM media WHERE owner = $1 AND status <> 'deleting'
"""

COUNT_COLLECTION = """
SELECT count(*) FROM media WHERE owner = $1 AND collection = $2 AND status <> 'deleting'
"""

# A collection item goes after the collection's last slot (under the collection lock, so no
# two items share one); media outside collections sit at 0.
INSERT_MEDIA = f"""
INSERT INTO media (id, owner, kind, collection, position, visibility, status,
                   original_mime, original_bytes, sha256, idempotency_key, space, expires_at,
                   auto_complete, auto_check_at)
VALUES ($1, $2, $3, $4,
        CASE WHEN $4::text IS NULL THEN 0 WHEN $13::integer IS NOT NULL THEN $13 ELSE (
            SELECT coalesce(max(position) + 1, 0) FROM media WHERE owner = $2 AND collection = $4
        ) END,
        $5, $11, $6, $7, $8, $9, $10,
        CASE WHEN $12::float8 IS NULL THEN NULL ELSE now() + make_interval(secs => $12) END,
        $14, CASE WHEN $14 THEN now() END)
RETURNING {_COLUMNS}
"""

# Room for a new item at dense position `$3` of a collection (under its lock): the slot of
# the live item now there, and every row from that slot on moved one slot later. No row:
# `$3` is at or past the end, and the item is simply appended.
MAKE_ROOM = """
WITH at AS (
    SELECT position AS slot FROM media
    WHERE owner = $1 AND collection = $2 AND status <> 'deleting'
    ORDER BY position OFFSET $3 LIMIT 1
), moved AS (
    UPDATE media SET position = position + 1
    WHERE owner = $1 AND collection = $2 AND position >= (SELECT slot FROM at)
)
SELECT slot FROM at
"""

# A session's bytes arrived: it becomes `processing` with the facts of what was read,
# unless it expired or another request took it first.
START_PROCESSING = f"""
UPDATE media
SET status = 'processing', original_mime = $2, original_bytes = $3, sha256 = $4,
    updated_at = now()
WHERE id = $1 AND status = 'pending' AND expires_at > now()
RETURNING {_COLUMNS}
"""

# `pending` too: an auto-completing session whose bytes are refused keeps its problem.
MARK_FAILED = f"""
UPDATE media SET status = 'failed', problem = $2, updated_at = now()
WHERE id = $1 AND status IN ('processing', 'pending')
RETURNING {_COLUMNS}
"""

# Keys older than the window name nothing any more; freeing them lets the key be reused.
RELEASE_EXPIRED_KEY = """
UPDATE media SET idempotency_key = NULL
WHERE owner = $1 AND idempotency_key = $2 AND created_at <= now() - make_interval(secs => $3)
"""

SELECT_BY_IDEMPOTENCY_KEY = f"""
SELECT {_COLUMNS} FROM media WHERE owner = $1 AND idempotency_key = $2
"""

# `ready`, or `quarantined` for a moderated kind's upload held for review.
MARK_READY = f"""
UPDATE media
SET status = $9, original_width = $2, original_height = $3, original_frames = $4,
    variants = $5, thumbhash = $6, dominant_color = $7, processing = $8,
    pdq = $10, pdq_quality = $11, updated_at = now()
WHERE id = $1 AND status = 'processing'
RETURNING {_COLUMNS}
"""

# A quarantined media an admin allows: `ready`, with its variants where they now are (a
# public media's were copied out of `private/`).
RELEASE_QUARANTINE = f"""
UPDATE media SET status = 'ready', variants = $2, updated_at = now()
WHERE id = $1 AND status = 'quarantined'
RETURNING {_COLUMNS}
"""

# Ready and quarantined media, and upload sessions not being processed (waiting, or
# failed): a client may cancel a session, freeing its collection slot and quota at once.
MARK_DELETING = f"""
UPDATE media SET status = 'deleting', updated_at = now()
WHERE id = $1 AND status IN ('ready', 'quarantined', 'pending', 'failed')
RETURNING {_COLUMNS}
"""

# A kind with `replace`: the collection's ready items beyond the newest `$4` others of the
# one just made ready (`$3`) are retired, oldest first, in the same transaction. The outer
# `status = 'ready'` is not redundant: a row a concurrent delete marked while this waited
# for its lock is re-checked against it (the subquery's snapshot still says ready) and left
# to that delete, so no media is both deleted and replaced.
RETIRE_OLDEST = f"""
UPDATE media SET status = 'deleting', updated_at = now()
WHERE status = 'ready' AND id IN (
    SELECT id FROM media
    WHERE owner = $1 AND collection = $2 AND status = 'ready' AND id <> $3
    ORDER BY created_at DESC, id DESC
    OFFSET $4
)
RETURNING {_COLUMNS}
"""

# An upload being undone: hidden from the API and the cap, and finished by the reaper if
# its objects cannot be removed now. Only while still `processing`: a failure may have come
# after the COMMIT that made it ready (the answer was lost), and a ready media stays.
MARK_ABANDONED = """
UPDATE media SET status = 'deleting', updated_at = now() WHERE id = $1 AND status = 'processing'
"""

DELETE_ROW = "DELETE FROM media WHERE id = $1"

# A session whose bytes were refused is removed only while it still waits for them: a
# concurrent complete may have made it ready meanwhile.
MARK_DISCARDED = f"""
UPDATE media SET status = 'deleting', updated_at = now()
WHERE id = $1 AND status = 'pending'
RETURNING {_COLUMNS}
"""

SELECT_MEDIA = f"SELECT {_COLUMNS} FROM media WHERE id = $1"

# The one definition of "visible to this caller", for every query that answers a caller
# other than the owner's own listings. The caller is always $1 (sub; NULL for anonymous),
# $2 (admin) and $3 (the spaces the token lists). Owners and admins see everything not
# being deleted; anyone sees ready public media, and a space's members its ready media.
# Everything else gets the 404 of an unknown id, so ids cannot be probed.
_VISIBLE_TO_CALLER = """
    status <> 'deleting' AND (
        owner = $1 OR $2::boolean
        OR (status = 'ready' AND (visibility = 'public' OR space = ANY($3::text[])))
    )
"""

SELECT_VISIBLE = f"SELECT {_COLUMNS} FROM media WHERE id = $4 AND {_VISIBLE_TO_CALLER}"

# A space's ready media, newest first, strictly before the cursor ($5, $6). The first page
# passes the far future rather than NULL, so the cursor stays an index condition and every
# page costs the same however deep (media_space_created_idx).
LIST_SPACE = f"""
SELECT {_COLUMNS} FROM media
WHERE space = $4 AND status = 'ready' AND (created_at, id) < ($5, $6)
  AND {_VISIBLE_TO_CALLER}
ORDER BY created_at DESC, id DESC
LIMIT $7
"""

# Rows a crash left outside `ready`, claimed by one statement that commits at once: each
# becomes `deleting` with a fresh `updated_at`, a lease that keeps other reapers off it for
# the grace period. No row lock outlives the statement, so purging (storage I/O) never
# happens under one; a reaper that dies mid-purge leaves rows the next lease expiry frees.
CLAIM_STUCK = """
UPDATE media SET status = 'deleting', updated_at = now()
WHERE id IN (
    SELECT id FROM media
    WHERE (status IN ('processing', 'deleting', 'failed')
           AND updated_at < now() - make_interval(secs => $1))
       OR (status = 'pending' AND expires_at < now())
    ORDER BY updated_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
RETURNING id
"""

# Auto-completing sessions due for a look at their object, claimed by one statement that
# commits at once (as `CLAIM_STUCK`): the next look is pushed back, doubling from 1 s up to
# 30 s, so other nodes skip these until then and no row lock is held while storage is read.
CLAIM_AUTO_COMPLETE = """
UPDATE media
SET auto_checks = auto_checks + 1,
    auto_check_at = now() + make_interval(secs => least(power(2, auto_checks), 30))
WHERE id IN (
    SELECT id FROM media
    WHERE status = 'pending' AND auto_complete AND auto_check_at <= now()
      AND expires_at > now()
    ORDER BY auto_check_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
RETURNING id
"""

# Emptying a space: its job row (`space_deletions`), whose cutoff a second request moves
# later, so that what was uploaded in between goes too.
START_SPACE_DELETION = """
INSERT INTO space_deletions AS d (space, cutoff, requested_by) VALUES ($1, now(), $2)
ON CONFLICT (space) DO UPDATE SET cutoff = greatest(d.cutoff, excluded.cutoff)
RETURNING cutoff
"""

# What emptying the space now would remove: everything of it not already being deleted.
COUNT_SPACE = """
SELECT count(*) FROM media
WHERE space = $1 AND status <> 'deleting' AND created_at <= coalesce($2, now())
"""

# One batch of a space being emptied, claimed by one statement as the reaper claims (a
# lease committed with the events, never waiting: SKIP LOCKED). Only while the job row
# exists, up to its cutoff. `processing` rows are left until they end (ready or failed).
CLAIM_SPACE_BATCH = f"""
WITH claimed AS (
    SELECT id AS claimed_id, status AS previous FROM media
    WHERE space = $1 AND status IN ('ready', 'quarantined', 'pending', 'failed')
      AND created_at <= (SELECT cutoff FROM space_deletions WHERE space = $1)
    ORDER BY id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE media SET status = 'deleting', updated_at = now()
FROM claimed WHERE media.id = claimed.claimed_id
RETURNING {_COLUMNS}, claimed.previous
"""

# The job ends, in one statement, once nothing of the space up to its cutoff is left.
FINISH_SPACE_DELETION = """
DELETE FROM space_deletions AS d
WHERE d.space = $1 AND NOT EXISTS (
    SELECT 1 FROM media WHERE media.space = d.space AND media.created_at <= d.cutoff
)
"""

SPACE_DELETIONS = "SELECT space FROM space_deletions ORDER BY created_at, space"

# The review queue, oldest first, strictly after the cursor ($1, $2)
# (media_quarantined_idx).
LIST_QUARANTINED = f"""
SELECT {_COLUMNS} FROM media
WHERE status = 'quarantined' AND (created_at, id) > ($1, $2)
ORDER BY created_at, id
LIMIT $3
"""

# Ready (or quarantined) media of the same file (`$1`) or, with `$2` not NULL, a picture
# within `$3` bits of that PDQ hash (only distinctive ones: quality at least `$4`), whoever
# owns them and in whatever space: what a takedown removes. Oldest first, a page at a time
# (`$5`).
SELECT_COPIES = f"""
SELECT {_COLUMNS} FROM media
WHERE status IN ('ready', 'quarantined') AND (
    sha256 = $1
    OR ($2::bit(256) IS NOT NULL AND pdq_quality >= $4 AND bit_count(pdq # $2) <= $3)
)
ORDER BY created_at, id
LIMIT $5
"""

EXISTING_IDS = "SELECT id FROM media WHERE id = ANY($1::text[])"
PENDING_IDS = "SELECT id FROM media WHERE id = ANY($1::text[]) AND status = 'pending'"

# One orphan scan at a time across all nodes (a full listing of the storage is costly).
TRY_LOCK_ORPHAN_SCAN = "SELECT pg_try_advisory_xact_lock(hashtext('mediasvc.orphan-scan'))"

SELECT_COLLECTION_IDS = """
SELECT id, status = 'ready' AS ready FROM media
WHERE owner = $1 AND collection = $2 AND status <> 'deleting'
ORDER BY media.position
"""

# Slots follow the order of the given ids, from 0 (under the collection lock; rows being
# deleted keep theirs, which no live item is ordered against).
REORDER = """
UPDATE media AS m SET position = o.ordinality - 1, updated_at = now()
FROM unnest($3::text[]) WITH ORDINALITY AS o(id, ordinality)
WHERE m.id = o.id AND m.owner = $1 AND m.collection = $2
"""

LIST_COLLECTION = f"""
SELECT {_COLUMNS} FROM media
WHERE owner = $1 AND collection = $2 AND status <> 'deleting' AND media.position > $3
ORDER BY media.position
LIMIT $4
"""

LIST_RECENT = f"""
SELECT {_COLUMNS} FROM media
WHERE owner = $1 AND status <> 'deleting'
  AND ($2::timestamptz IS NULL OR (created_at, id) < ($2, $3))
ORDER BY created_at DESC, id DESC
LIMIT $4
"""


# One request against a user's budget for one operation (GCRA): with `$3` seconds between
# requests on average and room for `$4` at once, a request is allowed when the budget's
# theoretical arrival time, advanced by `$3`, is at most `$3 * $4` ahead of now; only an
# allowed request advances it. One statement, so concurrent requests of one user on any
# node serialise on the row and never overspend.
SPEND_BUDGET = """
INSERT INTO user_budgets AS b (subject, operation, tat, allowed)
VALUES ($1, $2, now() + make_interval(secs => $3), true)
ON CONFLICT (subject, operation) DO UPDATE SET
    allowed = greatest(b.tat, now()) + make_interval(secs => $3)
              <= now() + make_interval(secs => $3 * $4),
    tat = CASE
        WHEN greatest(b.tat, now()) + make_interval(secs => $3)
             <= now() + make_interval(secs => $3 * $4)
        THEN greatest(b.tat, now()) + make_interval(secs => $3)
        ELSE b.tat
    END
RETURNING allowed, extract(epoch FROM tat - now())::float8 AS ahead_s
"""

# Budgets full again (their theoretical arrival time passed): the same as no row.
PRUNE_BUDGETS = "DELETE FROM user_budgets WHERE tat < now() - interval '1 minute'"


# Re-rendering (`flows.rerender`): ready media matching the operator's filters (NULL: any),
# after `$5` in id order (a keyset, so a page costs the same however far the run got).
_RERENDER_FILTER = """
    status = 'ready' AND ($1::text IS NULL OR kind = $1) AND ($2::text IS NULL OR owner = $2)
    AND ($3::text IS NULL OR space = $3) AND ($4::timestamptz IS NULL OR created_at >= $4)
"""
RERENDER_PAGE = f"""
SELECT {_COLUMNS} FROM media WHERE {_RERENDER_FILTER} AND id > $5 ORDER BY id LIMIT $6
"""
RERENDER_COUNT = f"SELECT count(*) FROM media WHERE {_RERENDER_FILTER}"

# The swap of a re-render: the new variants replace the old ones only while the media is
# still ready with exactly the variants the render started from (`$2`), so a concurrent
# delete, replace or second re-render wins and this one is dropped.
SWAP_VARIANTS = f"""
UPDATE media
SET variants = $3, thumbhash = $4, dominant_color = $5, processing = $6, updated_at = now()
WHERE id = $1 AND status = 'ready' AND variants = $2
RETURNING {_COLUMNS}
"""

# Keys to remove at `$3` seconds from now unless taken off the list first (a listed key that
# is listed again is due afresh).
LIST_REMOVALS = """
INSERT INTO object_removals (key, media_id, due_at)
SELECT key, $1, now() + make_interval(secs => $3) FROM unnest($2::text[]) AS key
ON CONFLICT (key) DO UPDATE SET due_at = EXCLUDED.due_at, leased_at = NULL
"""
# Only keys no reaper is removing: the caller compares the count with what it listed.
TAKE_OFF_REMOVALS = "DELETE FROM object_removals WHERE key = ANY($1::text[]) AND leased_at IS NULL"
# Due keys (only among `$3`, if given), claimed by one statement that commits at once (as
# `CLAIM_STUCK`): leased, so other removers and a late swap leave them alone; a lease older
# than `$1` s is taken over.
CLAIM_REMOVALS = """
UPDATE object_removals SET leased_at = now()
WHERE key IN (
    SELECT key FROM object_removals
    WHERE due_at <= now()
      AND (leased_at IS NULL OR leased_at < now() - make_interval(secs => $1))
      AND ($3::text[] IS NULL OR key = ANY($3::text[]))
    ORDER BY due_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
RETURNING key
"""
# Only keys still listed: a key a committed swap took off is live and stays off.
MAKE_DUE = """
UPDATE object_removals SET due_at = now() WHERE key = ANY($1::text[]) AND leased_at IS NULL
"""
FORGET_REMOVALS = "DELETE FROM object_removals WHERE key = ANY($1::text[])"

# Usage: ready media, the bytes of their stored variants (alternates included) and of their
# kept sources (`$1`: the kinds that keep them), and upload sessions waiting for bytes.
_USAGE = """
SELECT * FROM (
    SELECT {group} AS name,
        count(*) FILTER (WHERE status = 'ready') AS media,
        coalesce(sum(stored.bytes) FILTER (WHERE status = 'ready'), 0)::bigint AS variant_bytes,
        coalesce(sum(original_bytes) FILTER (
            WHERE status = 'ready' AND kind = ANY($1::text[])
        ), 0)::bigint AS source_bytes,
        count(*) FILTER (WHERE status = 'pending') AS pending_sessions
    FROM media CROSS JOIN LATERAL (
        SELECT coalesce(sum((v ->> 'bytes')::bigint + coalesce((
            SELECT sum((a ->> 'bytes')::bigint) FROM jsonb_array_elements(v -> 'alternates') AS a
        ), 0)), 0) AS bytes
        FROM jsonb_each(media.variants) AS each(name, v)
    ) AS stored
    WHERE status IN ('ready', 'pending')
    GROUP BY 1
) AS usage
ORDER BY variant_bytes + source_bytes DESC, media DESC, name
LIMIT $2
"""
# What a usage table may be grouped by: fixed column names, never the caller's text.
USAGE_BY = {
    group: _USAGE.format(group=column)
    for group, column in (
        ("owner", "owner"),
        ("space", "space"),
        ("kind", "kind"),
        (None, "NULL::text"),
    )
}

# One usage refresh at a time across all nodes; the others read what it wrote.
TRY_LOCK_USAGE = "SELECT pg_try_advisory_xact_lock(hashtext('mediasvc.usage'))"
USAGE_REFRESHED_AT = "SELECT refreshed_at FROM usage_refreshed"
USAGE_STALE = """
SELECT coalesce((
    SELECT refreshed_at <= now() - make_interval(secs => $1) FROM usage_refreshed
), true)
"""
CLEAR_USAGE_SNAPSHOT = "DELETE FROM usage_by_kind"
WRITE_USAGE_SNAPSHOT = f"""
WITH computed AS ({USAGE_BY["kind"]})
INSERT INTO usage_by_kind (kind, media, variant_bytes, source_bytes, pending_sessions)
SELECT name, media, variant_bytes, source_bytes, pending_sessions FROM computed
"""
MARK_USAGE_REFRESHED = """
INSERT INTO usage_refreshed (single, refreshed_at) VALUES (true, now())
ON CONFLICT (single) DO UPDATE SET refreshed_at = EXCLUDED.refreshed_at
"""
READ_USAGE_SNAPSHOT = """
SELECT kind AS name, media, variant_bytes, source_bytes, pending_sessions
FROM usage_by_kind ORDER BY kind
"""


async def lock_collection(conn: Connection, owner: str, collection: str) -> None:
    """In a transaction: wait for, then hold, the lock on one owner's collection."""
    await conn.execute(LOCK_COLLECTION, owner, collection)


async def make_room(conn: Connection, owner: str, collection: str, position: int) -> int | None:
    """In a transaction, under the collection lock: free the slot of dense position
    `position` for a new item; None when that is past the end (append)."""
    slot: int | None = await conn.fetchval(MAKE_ROOM, owner, collection, position)
    return slot


async def lock_owner(conn: Connection, owner: str) -> None:
    """In a transaction: wait for, then hold, the lock on one owner's uploads."""
    await conn.execute(LOCK_OWNER, owner)


async def owner_usage(conn: Connection, owner: str) -> tuple[int, int]:
    """How many live media the owner has, and the bytes of their originals."""
    row = await conn.fetchrow(OWNER_USAGE, owner)
    assert row is not None, "an aggregate returns one row"
    return int(row["media"]), int(row["bytes"])


async def count_collection(conn: Connection, owner: str, collection: str) -> int:
    """How many live items the collection holds."""
    count: int = await conn.fetchval(COUNT_COLLECTION, owner, collection)
    return count


async def insert_media(
    conn: Connection,
    *,
    media_id: str,
    owner: str,
    kind: str,
    collection: str | None,
    visibility: Visibility,
    mime: str,
    size: int,
    sha256: str | None,
    idempotency_key: str | None,
    space: str | None,
    status: Status = "processing",
    expires_in_s: float | None = None,
    slot: int | None = None,
    auto_complete: bool = False,
) -> Media:
    """Record a new upload before any file is written: `processing` (its bytes are here) or
    `pending` (an upload session, expiring in `expires_in_s`)."""
    row = await conn.fetchrow(
        INSERT_MEDIA,
        media_id,
        owner,
        kind,
        collection,
        visibility,
        mime,
        size,
        sha256,
        idempotency_key,
        space,
        status,
        expires_in_s,
        slot,
        auto_complete,
    )
    assert row is not None, "INSERT ... RETURNING returns the row"
    return _media(row)


async def start_processing(
    conn: Connection, media_id: str, *, mime: str, size: int, sha256: str
) -> Media | None:
    """A pending session whose bytes were read becomes `processing`; None if it is no longer
    pending (taken by a concurrent complete) or has expired."""
    row = await conn.fetchrow(START_PROCESSING, media_id, mime, size, sha256)
    return None if row is None else _media(row)


async def mark_failed(
    conn: Connection, media_id: str, problem: Mapping[str, object]
) -> Media | None:
    """An asynchronous completion failed: keep the row, with its problem, for the client;
    None if it is no longer `processing`."""
    row = await conn.fetchrow(MARK_FAILED, media_id, dict(problem))
    return None if row is None else _media(row)


async def release_expired_key(conn: Connection, owner: str, key: str, window_s: float) -> None:
    """Forget `key` on media created more than `window_s` seconds ago."""
    await conn.execute(RELEASE_EXPIRED_KEY, owner, key, window_s)


async def find_by_idempotency_key(conn: Connection, owner: str, key: str) -> Media | None:
    """The media an owner created with this key, if any."""
    row = await conn.fetchrow(SELECT_BY_IDEMPOTENCY_KEY, owner, key)
    return None if row is None else _media(row)


async def mark_ready(
    conn: Connection,
    media_id: str,
    *,
    width: int,
    height: int,
    frames: int,
    variants: Mapping[str, StoredVariant],
    placeholder: Placeholder,
    processing: Mapping[str, object],
    status: Status = "ready",
    pdq: Pdq,
) -> Media | None:
    """Record the stored variants, the row becoming `status` (`ready`, or `quarantined`);
    None if the row is gone or no longer `processing`."""
    row = await conn.fetchrow(
        MARK_READY,
        media_id,
        width,
        height,
        frames,
        {name: _variant_json(v) for name, v in variants.items()},
        placeholder.thumbhash,
        placeholder.dominant_color,
        dict(processing),
        status,
        pdq_bits(pdq.hash),
        pdq.quality,
    )
    return None if row is None else _media(row)


async def release_quarantine(
    conn: Connection, media_id: str, variants: Mapping[str, StoredVariant]
) -> Media | None:
    """A quarantined media becomes `ready` with `variants`; None if it is not quarantined."""
    row = await conn.fetchrow(
        RELEASE_QUARANTINE, media_id, {name: _variant_json(v) for name, v in variants.items()}
    )
    return None if row is None else _media(row)


async def list_quarantined(
    conn: Connection, *, after: tuple[datetime, str] | None, limit: int
) -> list[Media]:
    """A page of the quarantined media, oldest first, strictly after (`created_at`, `id`)."""
    created_at, media_id = after if after is not None else (datetime.min.replace(tzinfo=UTC), "")
    rows = await conn.fetch(LIST_QUARANTINED, created_at, media_id, limit)
    return [_media(r) for r in rows]


async def retire_oldest(
    conn: Connection, owner: str, collection: str, *, kept: str, keep_others: int
) -> list[Media]:
    """In a transaction: mark `deleting` what a replacing upload pushes out of its collection."""
    rows = await conn.fetch(RETIRE_OLDEST, owner, collection, kept, keep_others)
    return [_media(row) for row in rows]


async def mark_deleting(conn: Connection, media_id: str) -> Media | None:
    """Flag a ready or quarantined media (or an upload session not in processing) for
    removal; None if it is processing or already being deleted."""
    row = await conn.fetchrow(MARK_DELETING, media_id)
    return None if row is None else _media(row)


async def mark_abandoned(conn: Connection, media_id: str) -> bool:
    """Turn an upload that failed half-way into a `deleting` tombstone for the reaper; False
    if it is no longer `processing` (ready after all, failed, removed, or being removed)."""
    return str(await conn.execute(MARK_ABANDONED, media_id)) == "UPDATE 1"


async def remove_row(conn: Connection, media_id: str) -> bool:
    """Delete the row: one statement, which locks no other row of its collection; False if
    it was already gone."""
    return str(await conn.execute(DELETE_ROW, media_id)) == "DELETE 1"


async def mark_discarded(conn: Connection, media_id: str) -> Media | None:
    """Flag an upload session still `pending` for removal; None if it is no longer pending."""
    row = await conn.fetchrow(MARK_DISCARDED, media_id)
    return None if row is None else _media(row)


async def get_media(conn: Connection, media_id: str) -> Media | None:
    """One media by id, whatever its owner or status."""
    row = await conn.fetchrow(SELECT_MEDIA, media_id)
    return None if row is None else _media(row)


async def get_visible(
    conn: Connection,
    media_id: str,
    *,
    sub: str | None,
    admin: bool = False,
    spaces: Collection[str] = (),
) -> Media | None:
    """One media by id if the caller may see it, else None: the caller's token subject
    (None: anonymous), whether it is an admin, and the spaces its token lists."""
    row = await conn.fetchrow(SELECT_VISIBLE, sub, admin, list(spaces), media_id)
    return None if row is None else _media(row)


async def list_space(
    conn: Connection,
    space: str,
    *,
    sub: str,
    admin: bool,
    spaces: Collection[str],
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[Media]:
    """A page of a space's ready media the caller (`sub`, `admin`, `spaces` as for
    `get_visible`) may see, newest first, strictly before (`created_at`, `id`)."""
    created_at, media_id = before if before is not None else (_FAR_FUTURE, "")
    rows = await conn.fetch(
        LIST_SPACE, sub, admin, list(spaces), space, created_at, media_id, limit
    )
    return [_media(r) for r in rows]


async def claim_stuck(conn: Connection, grace_s: float, limit: int) -> list[str]:
    """Lease (as `deleting`) and return up to `limit` ids stuck outside `ready` past
    `grace_s`, or pending sessions past their expiry."""
    return [r["id"] for r in await conn.fetch(CLAIM_STUCK, grace_s, limit)]


async def claim_auto_complete(conn: Connection, limit: int) -> list[str]:
    """Up to `limit` auto-completing sessions due for a look, their next look pushed back."""
    return [r["id"] for r in await conn.fetch(CLAIM_AUTO_COMPLETE, limit)]


async def start_space_deletion(conn: Connection, space: str, requested_by: str) -> datetime:
    """Record (or move later) the job emptying `space`; its cutoff."""
    cutoff: datetime = await conn.fetchval(START_SPACE_DELETION, space, requested_by)
    return cutoff


async def count_space(conn: Connection, space: str, cutoff: datetime | None = None) -> int:
    """How many media of `space`, created up to `cutoff` (None: now), are not being deleted."""
    count: int = await conn.fetchval(COUNT_SPACE, space, cutoff)
    return count


async def claim_space_batch(conn: Connection, space: str, limit: int) -> list[tuple[Media, str]]:
    """Lease (as `deleting`) up to `limit` media of a space being emptied, each with the
    status it had; none once its job is gone."""
    return [
        (_media(row), row["previous"]) for row in await conn.fetch(CLAIM_SPACE_BATCH, space, limit)
    ]


async def finish_space_deletion(conn: Connection, space: str) -> bool:
    """End the job emptying `space` if nothing it covers is left; whether it ended."""
    return str(await conn.execute(FINISH_SPACE_DELETION, space)) == "DELETE 1"


async def space_deletions(conn: Connection) -> list[str]:
    """The spaces being emptied, oldest request first."""
    return [row["space"] for row in await conn.fetch(SPACE_DELETIONS)]


async def find_copies(
    conn: Connection, sha256: str, pdq: Pdq | None, *, distance: int, limit: int
) -> list[Media]:
    """Up to `limit` ready media, any owner's, of the file `sha256`, or with `pdq` of a
    picture whose usable PDQ hash is within `distance` bits of it."""
    bits = None if pdq is None else pdq_bits(pdq.hash)
    rows = await conn.fetch(SELECT_COPIES, sha256, bits, distance, PDQ_MIN_QUALITY, limit)
    return [_media(row) for row in rows]


async def existing_ids(conn: Connection, ids: Sequence[str]) -> set[str]:
    """Which of `ids` have a row."""
    return {r["id"] for r in await conn.fetch(EXISTING_IDS, list(ids))}


async def pending_ids(conn: Connection, ids: Sequence[str]) -> set[str]:
    """Which of `ids` are upload sessions still waiting for their bytes."""
    return {row["id"] for row in await conn.fetch(PENDING_IDS, list(ids))}


async def try_lock_orphan_scan(conn: Connection) -> bool:
    """In a transaction: take the cluster-wide orphan-scan lock if it is free."""
    return bool(await conn.fetchval(TRY_LOCK_ORPHAN_SCAN))


async def collection_ids(conn: Connection, owner: str, collection: str) -> dict[str, bool]:
    """The ids of a collection's live items, in position order, each with whether it is
    ready (the others are upload sessions and uploads still on their way)."""
    rows = await conn.fetch(SELECT_COLLECTION_IDS, owner, collection)
    return {row["id"]: row["ready"] for row in rows}


async def reorder(conn: Connection, owner: str, collection: str, ids: Sequence[str]) -> None:
    """Give the items positions 0..n-1 in the order of `ids`."""
    await conn.execute(REORDER, owner, collection, list(ids))


async def list_collection(
    conn: Connection, owner: str, collection: str, *, after_position: int, limit: int
) -> list[Media]:
    """A page of a collection in position order, after the item in slot `after_position`
    (-1: from the start)."""
    rows = await conn.fetch(LIST_COLLECTION, owner, collection, after_position, limit)
    return [_media(r) for r in rows]


async def list_recent(
    conn: Connection,
    owner: str,
    *,
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[Media]:
    """A page of an owner's media, newest first, strictly before (`created_at`, `id`)."""
    created_at, media_id = before if before is not None else (None, "")
    rows = await conn.fetch(LIST_RECENT, owner, created_at, media_id, limit)
    return [_media(r) for r in rows]


async def rerender_page(
    conn: Connection, selection: RerenderSelection, *, after: str, limit: int
) -> list[Media]:
    """Up to `limit` ready media matching `selection`, in id order after `after`."""
    rows = await conn.fetch(RERENDER_PAGE, *selection.values(), after, limit)
    return [_media(row) for row in rows]


async def rerender_count(conn: Connection, selection: RerenderSelection) -> int:
    """How many ready media match `selection`."""
    count: int = await conn.fetchval(RERENDER_COUNT, *selection.values())
    return count


@dataclass(frozen=True, slots=True)
class RerenderSelection:
    """Which ready media a re-render takes; None matches any."""

    kind: str | None = None
    owner: str | None = None
    space: str | None = None
    since: datetime | None = None

    def values(self) -> tuple[str | None, str | None, str | None, datetime | None]:
        return self.kind, self.owner, self.space, self.since


async def swap_variants(
    conn: Connection,
    media_id: str,
    *,
    was: Mapping[str, StoredVariant],
    variants: Mapping[str, StoredVariant],
    placeholder: Placeholder,
    processing: Mapping[str, object],
) -> Media | None:
    """Record a re-render's variants; None if the media is no longer ready with the
    variants `was` (deleted, replaced, or re-rendered by someone else meanwhile)."""
    row = await conn.fetchrow(
        SWAP_VARIANTS,
        media_id,
        {name: _variant_json(v) for name, v in was.items()},
        {name: _variant_json(v) for name, v in variants.items()},
        placeholder.thumbhash,
        placeholder.dominant_color,
        dict(processing),
    )
    return None if row is None else _media(row)


async def list_removals(
    conn: Connection, media_id: str, keys: Sequence[str], *, due_in_s: float
) -> None:
    """List `keys` of `media_id` for removal in `due_in_s` seconds."""
    await conn.execute(LIST_REMOVALS, media_id, list(keys), due_in_s)


async def take_off_removals(conn: Connection, keys: Sequence[str]) -> int:
    """Take `keys` off the removal list unless a reaper is removing them; how many."""
    return int(str(await conn.execute(TAKE_OFF_REMOVALS, list(keys))).split()[-1])


async def claim_removals(
    conn: Connection, *, lease_s: float, limit: int, among: Sequence[str] | None = None
) -> list[str]:
    """Lease and return up to `limit` keys due for removal (only `among` these, if given)."""
    chosen = None if among is None else list(among)
    return [row["key"] for row in await conn.fetch(CLAIM_REMOVALS, lease_s, limit, chosen)]


async def make_due(conn: Connection, keys: Sequence[str]) -> None:
    """Listed `keys` no reaper is removing yet become due now (unlisted ones stay unlisted)."""
    await conn.execute(MAKE_DUE, list(keys))


async def forget_removals(conn: Connection, keys: Sequence[str]) -> None:
    """Take removed `keys` off the list."""
    await conn.execute(FORGET_REMOVALS, list(keys))


@dataclass(frozen=True, slots=True)
class Usage:
    """What one owner, space or kind (`name`; None for the total or no space) holds."""

    name: str | None
    media: int
    variant_bytes: int
    source_bytes: int
    pending_sessions: int


async def usage(
    conn: Connection, *, by: UsageGroup, source_kinds: Collection[str], limit: int | None
) -> list[Usage]:
    """Usage grouped `by` owner, space or kind (None: one total), the largest first."""
    rows = await conn.fetch(USAGE_BY[by], list(source_kinds), limit)
    return [Usage(**row) for row in rows]


async def try_lock_usage(conn: Connection) -> bool:
    """In a transaction: take the cluster-wide usage-refresh lock if it is free."""
    return bool(await conn.fetchval(TRY_LOCK_USAGE))


async def usage_refreshed_at(conn: Connection) -> datetime | None:
    """When the usage snapshot was last written, if ever."""
    moment: datetime | None = await conn.fetchval(USAGE_REFRESHED_AT)
    return moment


async def usage_stale(conn: Connection, max_age_s: float) -> bool:
    """Whether the usage snapshot is at least `max_age_s` old, or was never written."""
    return bool(await conn.fetchval(USAGE_STALE, max_age_s))


async def write_usage_snapshot(conn: Connection, source_kinds: Collection[str]) -> None:
    """In a transaction: compute the usage per kind afresh into the snapshot."""
    await conn.execute(CLEAR_USAGE_SNAPSHOT)
    await conn.execute(WRITE_USAGE_SNAPSHOT, list(source_kinds), None)
    await conn.execute(MARK_USAGE_REFRESHED)


async def read_usage_snapshot(conn: Connection) -> list[Usage]:
    """The usage per kind as last computed."""
    return [Usage(**row) for row in await conn.fetch(READ_USAGE_SNAPSHOT)]


def pdq_bits(hex_digits: str) -> asyncpg.BitString:
    """A PDQ hash (64 hex digits) as PostgreSQL's `bit(256)`."""
    return asyncpg.BitString.from_int(int(hex_digits, 16), PDQ_BITS)


def pdq_hex(bits: asyncpg.BitString) -> str:
    """A `bit(256)` column as the PDQ hash's 64 hex digits."""
    return f"{bits.to_int():0{PDQ_BITS // 4}x}"


def _variant_json(variant: StoredVariant) -> dict[str, Any]:
    document = {
        "key": variant.key,
        "size": variant.size,
        "width": variant.width,
        "height": variant.height,
        "bytes": variant.bytes,
        "mime": variant.mime,
    }
    if variant.alternates:
        document["alternates"] = [
            {"key": a.key, "bytes": a.bytes, "mime": a.mime} for a in variant.alternates
        ]
    return document


def stored_variant(document: dict[str, Any]) -> StoredVariant:
    """A variant as the `variants` column records it."""
    alternates = tuple(StoredAlternate(**a) for a in document.pop("alternates", ()))
    return StoredVariant(**document, alternates=alternates)


def _media(row: asyncpg.Record) -> Media:
    thumbhash, dominant_color = row["thumbhash"], row["dominant_color"]
    return Media(
        id=row["id"],
        owner=row["owner"],
        kind=row["kind"],
        collection=row["collection"],
        position=row["position"],
        slot=row["slot"],
        visibility=cast(Visibility, row["visibility"]),
        space=row["space"],
        status=cast(Status, row["status"]),
        original=Original(
            mime=row["original_mime"],
            bytes=row["original_bytes"],
            sha256=row["sha256"],
            width=row["original_width"],
            height=row["original_height"],
            frames=row["original_frames"],
        ),
        variants={name: stored_variant(v) for name, v in row["variants"].items()},
        placeholder=(
            None
            if thumbhash is None or dominant_color is None
            else Placeholder(thumbhash=thumbhash, dominant_color=dominant_color)
        ),
        processing=row["processing"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        problem=row["problem"],
        auto_complete=row["auto_complete"],
        pdq=(
            None
            if row["pdq"] is None
            else Pdq(hash=pdq_hex(row["pdq"]), quality=row["pdq_quality"])
        ),
    )


async def spend_budget(
    conn: Connection, subject: str, operation: str, *, interval_s: float, burst: int
) -> tuple[bool, float]:
    """Spend one request of `subject`'s budget for `operation`: whether it was allowed, and
    how many seconds the budget's theoretical arrival time is ahead of now afterwards."""
    row = await conn.fetchrow(SPEND_BUDGET, subject, operation, interval_s, burst)
    assert row is not None, "INSERT ... ON CONFLICT DO UPDATE ... RETURNING returns the row"
    return bool(row["allowed"]), max(0.0, float(row["ahead_s"]))


async def prune_budgets(conn: Connection) -> int:
    """Forget budgets that are full again; how many."""
    return int(str(await conn.execute(PRUNE_BUDGETS)).split()[-1])
