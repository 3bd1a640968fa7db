"""nginx's cache of public variants, and how a removal reaches it on every host at once.

nginx keeps a public variant fetched from the bucket (`media-s3.conf`) for
MEDIASVC_NGINX_CACHE_TTL_S, in one file per cache key: the key's md5 in hex, under
`levels` directories taken from its end. Open-source nginx has no purge request, but none
is needed: a cache file that is gone is a miss (nginx treats ENOENT on open as such), the
bucket then answers 404, which is not cached. So removing the files is the purge:

    a removal (flows.purge) ─▶ objects gone from the bucket ─▶ `cache_purges` row + NOTIFY
        ─▶ every purger (one per nginx cache): unlink each key's files, then again a
           moment later (a fetch that was in flight may store its copy after the first)

A purger LISTENs on a connection of its own and also polls, so a lost NOTIFY costs at most
POLL_S; at start it applies the purges of the last cache TTL, older ones being expired in
nginx anyway. It must run as a user that may unlink in nginx's cache (nginx makes its
directories 0700 for its worker user): the app nodes do it when MEDIASVC_NGINX_CACHE_DIR is
set (nginx on the same host, as `make run` and deploy/ lay it out), and
`python -m mediasvc cache-purger` does it alone on a host with nginx but no node.

Each key has up to four entries: nginx's key is `$scheme$proxy_host<bucket path>/<key>`,
plus `avif` for clients that take AVIF ("AVIF by Accept"), and `$scheme` is the client's
(http, or https where nginx terminates TLS). Trying all four costs four failed unlinks.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import structlog

from mediasvc import db
from mediasvc.config import Settings
from mediasvc.db import cache_purges
from mediasvc.db.listen import DB_ERRORS, run_rounds
from mediasvc.storage.bucket import bucket_addresses
from mediasvc.timers import in_background

log = structlog.get_logger(__name__)

# `proxy_cache_path ... levels=`: the directory names are taken from the md5's end, one
# hex digit, then two (rendered into mediasvc.conf from here).
LEVELS = (1, 2)
# The Accept classes of "AVIF by Accept" ($mediasvc_variant_avif), and the client schemes.
ACCEPT_CLASSES = ("", "avif")
SCHEMES = ("http", "https")
# The longest wait without a NOTIFY: what bounds a purge when LISTEN is lost or impossible
# (a transaction-pooling PgBouncer in front of PostgreSQL).
POLL_S = 1.0
# Each purge is applied again this long after the first time: a fetch from the bucket that
# began before the object was removed may store its copy after the first pass.
REPEAT_AFTER_S = 2.0
# How far back each look reaches before the newest purge seen: rows become visible in
# commit order, not in `seq` order, and a transaction may commit this long after its
# `recorded_at`.
OVERLAP_S = 5.0
# Rows are kept this much longer than the TTL (for purgers that come back), then pruned.
KEEP_PAST_TTL_S = 60.0
PRUNE_EVERY_S = 60.0


def proxy_host(origin: str) -> str:
    """nginx's `$proxy_host` for a `proxy_pass` to `origin`: host, and the port unless it is
    the scheme's default."""
    parts = urlsplit(origin)
    default = {"http": 80, "https": 443}[parts.scheme]
    host = parts.netloc.rsplit("@", 1)[-1]
    if parts.port == default:
        host = host.rsplit(":", 1)[0]
    return host


def cache_keys(settings: Settings, key: str) -> list[str]:
    """nginx's cache keys of a public variant key (`media-s3-cache.conf`'s `proxy_cache_key`)."""
    bucket = bucket_addresses(settings)[0]
    host = proxy_host(bucket.origin)
    return [
        f"{scheme}{host}{bucket.path}/{key}{accept}"
        for scheme in SCHEMES
        for accept in ACCEPT_CLASSES
    ]


def cache_file(cache_dir: Path, cache_key: str) -> Path:
    """Where nginx keeps the answer cached under `cache_key`."""
    digest = hashlib.md5(cache_key.encode(), usedforsecurity=False).hexdigest()
    path, end = cache_dir, len(digest)
    for width in LEVELS:
        path, end = path / digest[end - width : end], end - width
    return path / digest


def evict(cache_dir: Path, cache_keys: Iterable[str]) -> int:
    """Remove the cached answers of `cache_keys`; how many there were."""
    removed = 0
    for cache_key in cache_keys:
        try:
            cache_file(cache_dir, cache_key).unlink()
        except FileNotFoundError:
            continue
        removed += 1
    return removed


class CachePurger:
    """Applies every recorded purge to the nginx cache in `cache_dir` until cancelled."""

    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        cache_dir: Path,
        *,
        poll_s: float = POLL_S,
        repeat_after_s: float = REPEAT_AFTER_S,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.cache_dir = cache_dir
        self.poll_s = poll_s
        self.repeat_after_s = repeat_after_s
        self.window_s = float(settings.nginx_cache_ttl_s)
        self.files_removed = 0
        # Purges applied, by seq, with when they were recorded (forgotten past the overlap).
        self._applied: dict[int, datetime] = {}
        self._after: datetime | None = None
        # Second passes still to make: when (monotonic), and the cache keys.
        self._repeats: list[tuple[float, list[str]]] = []
        self._wake = asyncio.Event()
        self._next_prune = 0.0
        # Set after each look at the table, for tests and `cache-purger --once`.
        self.looked = asyncio.Event()

    async def run(self) -> None:
        """Look, apply, sleep until a NOTIFY, a repeat or the poll; until cancelled."""
        await run_rounds(
            self.settings,
            cache_purges.CHANNEL,
            self._wake,
            self._round,
            retry_s=self.poll_s,
            name="cache",
        )

    async def _round(self) -> float:
        """Apply what was recorded and the second passes due; how long to sleep at most."""
        try:
            await self.apply_recorded()
            await self._prune_now_and_then()
        except (*DB_ERRORS, OSError) as exc:
            log.warning("cache.purge_failed", error=str(exc))
        await self._repeat_due()
        self.looked.set()
        if self._repeats:
            return min(self.poll_s, max(0.0, self._repeats[0][0] - time.monotonic()))
        return self.poll_s

    async def apply_recorded(self) -> int:
        """Apply the purges recorded since the last look (the last TTL at first); how many
        cache files were removed."""
        async with db.connection(self.pool) as conn:
            purges = await cache_purges.since(conn, self._after, window_s=self.window_s)
        fresh = [p for p in purges if p.seq not in self._applied]
        keys = [k for p in fresh for key in p.keys for k in cache_keys(self.settings, key)]
        removed = await asyncio.to_thread(evict, self.cache_dir, keys) if keys else 0
        for purge in fresh:
            self._applied[purge.seq] = purge.recorded_at
        if purges:
            newest = max(p.recorded_at for p in purges)
            self._after = newest - timedelta(seconds=OVERLAP_S)
            self._applied = {s: at for s, at in self._applied.items() if at > self._after}
        if keys:
            self._repeats.append((time.monotonic() + self.repeat_after_s, keys))
            self.files_removed += removed
            log.info("cache.purged", purges=len(fresh), files=removed)
        return removed

    async def _repeat_due(self) -> None:
        now = time.monotonic()
        while self._repeats and self._repeats[0][0] <= now:
            _, keys = self._repeats.pop(0)
            try:
                late = await asyncio.to_thread(evict, self.cache_dir, keys)
            except OSError as exc:
                log.warning("cache.purge_failed", error=str(exc))
                continue
            if late:
                # A fetch that was in flight during the first pass stored its copy.
                self.files_removed += late
                log.info("cache.purged_late", files=late)

    async def _prune_now_and_then(self) -> None:
        if time.monotonic() < self._next_prune:
            return
        self._next_prune = time.monotonic() + PRUNE_EVERY_S
        async with db.connection(self.pool) as conn:
            await cache_purges.prune(conn, older_than_s=self.window_s + KEEP_PAST_TTL_S)


@asynccontextmanager
async def running_purger(
    settings: Settings, pool: asyncpg.Pool, cache_dir: Path | None = None
) -> AsyncIterator[CachePurger | None]:
    """A purger of the nginx cache at `cache_dir` (MEDIASVC_NGINX_CACHE_DIR by default)
    running while the block runs; None, and nothing running, with local storage (nginx
    caches nothing from disk) or without a cache directory."""
    cache_dir = cache_dir or settings.nginx_cache_dir
    if settings.storage != "s3" or cache_dir is None:
        yield None
        return
    purger = CachePurger(settings, pool, cache_dir)
    async with in_background(purger.run()):
        yield purger
