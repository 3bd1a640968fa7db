"""The webhook receiver the event tests (and any test that watches the app's events) send
to: it verifies each request's signature, dedupes on `webhook-id` and answers as scripted."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from gates import DEADLINE_S
from standardwebhooks import Webhook, WebhookVerificationError
from support import serving

KEY = bytes(range(32))
SECRET = "whsec_" + base64.b64encode(KEY).decode()
# The settings every test starts from: retries and backoff small enough to watch.
FAST = {"webhook_secret": KEY, "webhook_timeout_s": 0.5, "webhook_backoff_s": 0.01}


# What the receiver answers one request: a status, HANG (no answer: the sender's timeout
# ends it), or an asyncio.Event to wait for before answering 200.
HANG = "hang"
Answer = int | str | asyncio.Event


@dataclass
class Arrival:
    """One request as the receiver saw it."""

    event_id: str
    body: bytes
    # The verified payload; None if the signature did not verify.
    payload: dict[str, Any] | None
    arrived_at: float
    # What it answered (None: not yet, or the sender went away first), and when.
    status: int | None = None
    answered_at: float | None = None

    @property
    def type(self) -> str:
        assert self.payload is not None
        return str(self.payload["type"])


@dataclass
class Receiver:
    """A webhook endpoint that dedupes on `webhook-id`, as the spec asks receivers to."""

    url: str = ""
    arrivals: list[Arrival] = field(default_factory=list)
    # The first accepted (2xx) request of each event id, in acceptance order.
    accepted: dict[str, Arrival] = field(default_factory=dict)
    # Answers for the next requests, in order; then `default`.
    script: list[Answer] = field(default_factory=list)
    default: int = 200
    # Called for each request when set: its answer (overrides the script).
    policy: Callable[[Arrival], Answer] | None = None
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            payload = Webhook(SECRET).verify(body, dict(request.headers))
        except WebhookVerificationError:
            payload = None
        arrival = Arrival(request.headers["webhook-id"], body, payload, time.monotonic())
        self.arrivals.append(arrival)
        await self._notify()
        if self.policy is not None:
            answer = self.policy(arrival)
        else:
            answer = self.script.pop(0) if self.script else self.default
        try:
            if answer == HANG:
                await asyncio.Event().wait()  # until the sender gives up and disconnects
            if isinstance(answer, asyncio.Event):
                await answer.wait()
                answer = 200
        except asyncio.CancelledError:
            await asyncio.shield(self._notify())
            raise
        assert isinstance(answer, int)
        arrival.status, arrival.answered_at = answer, time.monotonic()
        if 200 <= answer < 300:
            self.accepted.setdefault(arrival.event_id, arrival)
        await self._notify()
        return web.Response(status=answer, text="ok" if answer < 300 else "receiver says no")

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, check: Callable[[], bool], what: str) -> None:
        """Until `check()` holds after some request; fails the test at the deadline."""
        async with self._changed:
            try:
                async with asyncio.timeout(DEADLINE_S):
                    await self._changed.wait_for(check)
            except TimeoutError:
                raise AssertionError(f"the receiver never saw {what}") from None

    async def accepted_of(self, media_id: str, count: int = 1) -> list[Arrival]:
        """Wait until `count` events of `media_id` were accepted; they, in order."""

        def of_media() -> list[Arrival]:
            return [a for a in self.accepted.values() if media_of(a) == media_id]

        await self.wait_for(lambda: len(of_media()) >= count, f"{count} events of {media_id}")
        return of_media()


def media_of(arrival: Arrival) -> str | None:
    data = (arrival.payload or {}).get("data", {})
    return data.get("id") or data.get("media_id")


def receiving() -> AbstractAsyncContextManager[Receiver]:
    """A receiver on a free loopback port."""
    return serving(Receiver())
