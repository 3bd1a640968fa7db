"""The dispatcher: every node sends the outbox's due deliveries, signed, and records them.

    wake (a NOTIFY at an event's commit, a delivery finished, the next retry due, POLL_S;
          POLL_UNHEARD_S when no connection LISTENs: behind a transaction pooler without
          MEDIASVC_DATABASE_LISTEN_URL)
    → claim due deliveries: FOR UPDATE SKIP LOCKED, a lease committed at once
    → POST each, no transaction open → 2xx: delivered; else retry with backoff, or give up

A claim is a lease (a visibility timeout), not a transaction held across the HTTP call: it
sets `due_at` to now + `lease_s` and commits. A node that dies mid-delivery leaves the row
pending; when the lease runs out any node claims it again, with the same `webhook-id`. The
lease outlasts the longest possible attempt (`lease_s`), so a live node's claim is never
taken over; a 2xx recorded late still counts, and only the current holder may schedule a
retry. At least once, then: a receiver dedupes on `webhook-id`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import asyncpg
import structlog

from mediasvc.config import Settings
from mediasvc.db import events as queries
from mediasvc.db.events import Claim
from mediasvc.db.listen import DB_ERRORS, run_rounds
from mediasvc.events.signing import Signer
from mediasvc.metrics import Metrics
from mediasvc.timers import in_background

log = structlog.get_logger(__name__)

# The longest sleep without a wake-up: what catches a NOTIFY lost while the listening
# connection was down.
POLL_S = 5.0
# The longest sleep when nothing LISTENs (`Settings.listen_url` is None): how late a webhook
# may leave, for two small queries a second per node.
POLL_UNHEARD_S = 1.0
# Deliveries in flight per node.
CONCURRENCY = 16
# Retry delays double from MEDIASVC_WEBHOOK_BACKOFF_S up to this.
MAX_DELAY_S = 3600.0
# Delivered events are kept this long (for `events` and debugging), then pruned.
KEEP_DELIVERED_S = 7 * 24 * 3600.0
PRUNE_EVERY_S = 3600.0
PRUNE_BATCH = 1000
# What a failed attempt keeps of the receiver's answer, for `python -m mediasvc events`.
ERROR_SNIPPET = 200
USER_AGENT = "mediasvc-webhooks"

# What talking to PostgreSQL can raise here; the dispatcher logs it and carries on.


def lease_s(timeout_s: float) -> float:
    """How long a claim is this node's: an attempt's whole timeout, twice, plus a second
    for the database calls around it."""
    return 2 * timeout_s + 1


def retry_delay(attempt: int, base_s: float) -> float:
    """The wait after failed attempt `attempt` (1, 2, ...): base·2^(attempt-1), capped at
    MAX_DELAY_S, with "equal jitter" (between half and all of it), so receivers that come
    back are not hit by every node's retries at once."""
    delay = min(MAX_DELAY_S, base_s * 2.0 ** min(attempt - 1, 32))
    return delay / 2 + random.uniform(0, delay / 2)  # noqa: S311 (jitter, not a secret)


def node_name() -> str:
    """This process, as `claimed_by` names it: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Dispatcher:
    """Delivers the outbox to `settings.webhook_urls` until cancelled; one per node."""

    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        http: aiohttp.ClientSession,
        metrics: Metrics,
        *,
        poll_s: float = POLL_S,
        concurrency: int = CONCURRENCY,
    ) -> None:
        assert settings.webhook_secret is not None, "Settings requires a secret with a URL"
        self.settings = settings
        self.pool = pool
        self.http = http
        self.metrics = metrics
        self.signer = Signer(settings.webhook_secret)
        self.node = node_name()
        self.listen_url = settings.listen_url
        self.poll_s = poll_s if self.listen_url is not None else min(poll_s, POLL_UNHEARD_S)
        self.concurrency = concurrency
        self.lease_s = lease_s(settings.webhook_timeout_s)
        self._wake = asyncio.Event()
        self._inflight: dict[asyncio.Task[None], Claim] = {}
        self._next_prune = time.monotonic() + random.uniform(0, PRUNE_EVERY_S)  # noqa: S311

    async def run(self) -> None:
        """Claim, send and record, waking up as little as possible, until cancelled."""
        if self.listen_url is None:
            log.info("webhook.polling", every_s=self.poll_s)
        try:
            await run_rounds(
                self.settings,
                queries.CHANNEL,
                self._wake,
                self._round,
                retry_s=self.poll_s,
                name="webhook",
            )
        finally:
            await self._hand_back()

    async def _round(self) -> float:
        """Claim what is due and start sending it; how long to sleep at most."""
        timeout = self.poll_s
        try:
            free = self.concurrency - len(self._inflight)
            claimed = await self._claim(free) if free > 0 else []
            if len(claimed) < free:
                # Nothing more is due now: sleep until the next retry is.
                timeout = await self._look_ahead()
            await self._prune_now_and_then()
        except DB_ERRORS as exc:
            log.warning("webhook.dispatch_failed", error=str(exc))
        except Exception:
            # Anything else is a bug, but not a reason to stop delivering for good: log it
            # and try again after the usual wait.
            log.exception("webhook.dispatch_crashed")
        return timeout

    async def _claim(self, limit: int) -> list[Claim]:
        async with self.pool.acquire() as conn:
            claimed = await queries.claim(
                conn,
                self.settings.webhook_urls,
                limit=limit,
                lease_s=self.lease_s,
                node=self.node,
            )
        for claim in claimed:
            task = asyncio.create_task(self._deliver(claim))
            self._inflight[task] = claim
            task.add_done_callback(self._finished)
        return claimed

    def _finished(self, task: asyncio.Task[None]) -> None:
        del self._inflight[task]
        # A free slot, and maybe the media's next event is unblocked.
        self._wake.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("webhook.delivery_crashed", exc_info=task.exception())

    async def _look_ahead(self) -> float:
        """Refresh the backlog gauges; how long to sleep (until the next due time)."""
        async with self.pool.acquire() as conn:
            backlog = await queries.backlog(conn)
        self.metrics.webhook_backlog.labels("pending").set(backlog.pending)
        self.metrics.webhook_backlog.labels("given_up").set(backlog.failed)
        if backlog.next_due_in_s is None:
            return self.poll_s
        return min(self.poll_s, max(0.0, backlog.next_due_in_s))

    async def _prune_now_and_then(self) -> None:
        if time.monotonic() < self._next_prune:
            return
        self._next_prune = time.monotonic() + PRUNE_EVERY_S
        async with self.pool.acquire() as conn:
            pruned = await queries.prune_delivered(
                conn, older_than_s=KEEP_DELIVERED_S, limit=PRUNE_BATCH
            )
        if pruned == PRUNE_BATCH:
            self._next_prune = time.monotonic()  # more to go: the next round goes on
        if pruned:
            log.info("webhook.pruned", events=pruned)

    async def _deliver(self, claim: Claim) -> None:
        """One attempt: send, then record the outcome (or hand the claim back if stopped)."""
        try:
            status, error = await self._send(claim)
        except asyncio.CancelledError:
            with contextlib.suppress(*DB_ERRORS, TimeoutError):
                async with asyncio.timeout(self.settings.db_timeout_s):
                    async with self.pool.acquire() as conn:
                        await queries.release(conn, claim)
            raise
        bound = log.bind(event_id=claim.event_id, url=claim.url, attempt=claim.attempt)
        try:
            async with self.pool.acquire() as conn:
                if error is None:
                    assert status is not None
                    latency = await queries.mark_delivered(conn, claim, status)
                    self.metrics.webhooks.labels("delivered").inc()
                    if latency is not None:
                        self.metrics.webhook_latency.observe(latency)
                    bound.info("webhook.delivered", status=status, latency_s=latency)
                    return
                state = await queries.mark_failed_attempt(
                    conn,
                    claim,
                    status=status,
                    error=error,
                    retry_s=self.settings.webhook_retry_s,
                    delay_s=retry_delay(claim.attempt, self.settings.webhook_backoff_s),
                )
        except DB_ERRORS as exc:
            # The lease runs out and the delivery is made again (a duplicate if it was a 2xx).
            bound.warning("webhook.unrecorded", error=str(exc), delivered=error is None)
            return
        if state == "failed":
            self.metrics.webhooks.labels("given_up").inc()
            bound.warning("webhook.given_up", error=error)
        elif state == "pending":
            self.metrics.webhooks.labels("retried").inc()
            bound.info("webhook.failed", error=error)

    async def _send(self, claim: Claim) -> tuple[int | None, str | None]:
        """POST the body; the status, and an error unless it was a 2xx."""
        headers = {
            **self.signer.headers(claim.event_id, int(time.time()), claim.body),
            "Content-Type": "application/json",
        }
        try:
            # Redirects are failures (Standard Webhooks): the URL is the operator's to fix.
            async with self.http.post(
                claim.url, data=claim.body.encode(), headers=headers, allow_redirects=False
            ) as response:
                if 200 <= response.status < 300:
                    return response.status, None
                return response.status, f"HTTP {response.status}{await _snippet(response)}"
        except TimeoutError:
            return None, f"no answer within {self.settings.webhook_timeout_s:g} s"
        except aiohttp.ClientError as exc:
            return None, f"{type(exc).__name__}: {exc}"

    async def _hand_back(self) -> None:
        """Stop the deliveries in flight; each hands its claim back, due at once."""
        tasks = list(self._inflight)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _snippet(response: aiohttp.ClientResponse) -> str:
    """The start of a failed answer's body, on one line, for the operator."""
    try:
        text = (await response.content.read(ERROR_SNIPPET)).decode("utf-8", "replace")
    except (aiohttp.ClientError, TimeoutError):
        return ""
    # Printed on the operator's terminal by `events`: no control characters (escapes).
    text = "".join(c if c.isprintable() else " " for c in text)
    text = " ".join(text.split())
    return f": {text}" if text else ""


@asynccontextmanager
async def running_dispatcher(
    settings: Settings, pool: asyncpg.Pool, metrics: Metrics
) -> AsyncIterator[Dispatcher | None]:
    """The node's dispatcher, running in the background while the block runs; None (and
    nothing running) without a webhook URL."""
    if not settings.webhook_urls:
        yield None
        return
    timeout = aiohttp.ClientTimeout(total=settings.webhook_timeout_s)
    async with aiohttp.ClientSession(timeout=timeout, headers={"User-Agent": USER_AGENT}) as http:
        dispatcher = Dispatcher(settings, pool, http, metrics)
        async with in_background(dispatcher.run()):
            yield dispatcher
