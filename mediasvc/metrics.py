"""Prometheus metrics of one app node, served at `/metrics`.

Each node has its own registry and is scraped on its own port (not through nginx, which
answers 404 for `/metrics`): per-node scraping keeps prometheus-client out of its
multiprocess mode, and the image workers report nothing themselves (the app times them).
Gauges about the worker pool and the database pool are read at scrape time.

A leaf: the app's parts report into it (plain numbers, or the few attributes the gauges
read, as Protocols here), so it imports none of them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Upload stages take from milliseconds (db) to seconds (process); requests likewise.
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# Webhook latency: milliseconds when the receiver is up, hours when it is retried.
_DELIVERY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 300, 3600, 6 * 3600, 24 * 3600)


class WorkerPool(Protocol):
    """What the gauges read of the image worker pool (`imaging.pool.ImagingPool`)."""

    @property
    def workers(self) -> int: ...
    @property
    def busy(self) -> int: ...
    @property
    def queued(self) -> int: ...
    @property
    def restarts(self) -> int: ...


class ConnectionPool(Protocol):
    """What the gauges read of the database pool (`asyncpg.Pool`)."""

    def get_size(self) -> int: ...
    def get_idle_size(self) -> int: ...


class KindUsage(Protocol):
    """What the usage gauges read of one kind's usage (`db.queries.Usage`)."""

    @property
    def name(self) -> str | None: ...
    @property
    def media(self) -> int: ...
    @property
    def variant_bytes(self) -> int: ...
    @property
    def source_bytes(self) -> int: ...
    @property
    def pending_sessions(self) -> int: ...


class Metrics:
    """Everything the app counts, in one registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "mediasvc_http_requests",
            "HTTP requests answered, by route, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "mediasvc_http_request_duration_seconds",
            "Time to answer an HTTP request, by route.",
            ["route"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.uploads = Counter(
            "mediasvc_uploads",
            "Uploads by outcome (created, replayed, refused, failed) and problem code.",
            ["outcome", "code"],
            registry=self.registry,
        )
        self.upload_seconds = Histogram(
            "mediasvc_upload_stage_duration_seconds",
            "Time spent per upload stage: receive, sniff, process, moderate, store, db, total.",
            ["stage"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.received_bytes = Counter(
            "mediasvc_upload_received_bytes", "Bytes of files received.", registry=self.registry
        )
        self.variant_bytes = Counter(
            "mediasvc_variant_written_bytes", "Bytes of variants stored.", registry=self.registry
        )
        self.reaper = Counter(
            "mediasvc_reaper_actions",
            "What the reaper removed: stuck rows, listed objects (superseded by a re-render),"
            " orphan objects, spool entries.",
            ["action"],
            registry=self.registry,
        )
        self.webhooks = Counter(
            "mediasvc_webhook_deliveries",
            "Webhook attempts made by this node, by outcome: delivered (a 2xx), retried (failed,"
            " to be retried), given_up (failed past MEDIASVC_WEBHOOK_RETRY_S, kept).",
            ["outcome"],
            registry=self.registry,
        )
        self.webhook_latency = Histogram(
            "mediasvc_webhook_delivery_latency_seconds",
            "From an event's recording to its receiver's 2xx, retries included.",
            buckets=_DELIVERY_BUCKETS,
            registry=self.registry,
        )
        self.webhook_backlog = Gauge(
            "mediasvc_webhook_backlog",
            "Deliveries of the whole cluster not delivered (the same on every node), by state:"
            " pending, given_up.",
            ["state"],
            registry=self.registry,
        )
        # Usage of the whole cluster (the same on every node), per kind: one node computes
        # it every MEDIASVC_USAGE_INTERVAL_S and every node reads it (`mediasvc.usage`).
        # Per kind only: owners and spaces are too many for labels (`python -m mediasvc
        # usage --by owner` lists them).
        self.usage_media = Gauge(
            "mediasvc_usage_media",
            "Ready media of the whole cluster, by kind.",
            ["kind"],
            registry=self.registry,
        )
        self.usage_bytes = Gauge(
            "mediasvc_usage_stored_bytes",
            "Bytes stored for ready media, by kind and what: variants (alternates included),"
            " sources (kept originals).",
            ["kind", "stored"],
            registry=self.registry,
        )
        self.usage_pending = Gauge(
            "mediasvc_usage_pending_sessions",
            "Upload sessions waiting for their bytes, by kind.",
            ["kind"],
            registry=self.registry,
        )
        self.usage_refreshed = Gauge(
            "mediasvc_usage_refreshed_timestamp_seconds",
            "When the usage gauges were last computed (Unix time).",
            registry=self.registry,
        )

        self.moderation_seconds = Histogram(
            "mediasvc_moderation_hook_duration_seconds",
            "Time the moderation hook took to answer, by outcome: allow, deny, review, or "
            "timeout, error, invalid (those three follow the kind's moderation_fail).",
            ["outcome"],
            buckets=_BUCKETS,
            registry=self.registry,
        )

    def report_usage(self, usage: Iterable[KindUsage], refreshed_at: float | None) -> None:
        """Set the usage gauges to `usage` (one entry per kind), computed at `refreshed_at`
        (a Unix time; None: never); kinds no longer listed are dropped."""
        for gauge in (self.usage_media, self.usage_bytes, self.usage_pending):
            gauge.clear()
        for kind in usage:
            self.usage_media.labels(kind.name).set(kind.media)
            self.usage_bytes.labels(kind.name, "variants").set(kind.variant_bytes)
            self.usage_bytes.labels(kind.name, "sources").set(kind.source_bytes)
            self.usage_pending.labels(kind.name).set(kind.pending_sessions)
        if refreshed_at is not None:
            self.usage_refreshed.set(refreshed_at)

    def watch(self, pool: WorkerPool, db: ConnectionPool) -> None:
        """Report the worker pool and database pool at every scrape."""
        self.registry.register(_ResourceCollector(pool, db))

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time one stage of an upload (also when it fails)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.upload_seconds.labels(name).observe(time.perf_counter() - started)

    def received(self, size: int, *, receive_s: float, sniff_s: float) -> None:
        """Count a received file of `size` bytes and the intake stages it took."""
        self.received_bytes.inc(size)
        self.upload_seconds.labels("receive").observe(receive_s)
        self.upload_seconds.labels("sniff").observe(sniff_s)

    def exposition(self) -> bytes:
        """The Prometheus text format of everything."""
        return generate_latest(self.registry)


class _ResourceCollector(Collector):
    def __init__(self, pool: WorkerPool, db: ConnectionPool) -> None:
        self._pool = pool
        self._db = db

    def collect(self) -> Iterable[Metric]:
        yield _gauge("mediasvc_pool_workers", "Image worker processes.", self._pool.workers)
        yield _gauge("mediasvc_pool_busy_workers", "Workers running a job.", self._pool.busy)
        yield _gauge("mediasvc_pool_queued_jobs", "Jobs waiting for a worker.", self._pool.queued)
        yield _gauge(
            "mediasvc_pool_worker_restarts",
            "Workers replaced after a crash or hang.",
            self._pool.restarts,
        )
        yield _gauge("mediasvc_db_connections", "Open database connections.", self._db.get_size())
        yield _gauge(
            "mediasvc_db_connections_idle", "Idle database connections.", self._db.get_idle_size()
        )


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)
