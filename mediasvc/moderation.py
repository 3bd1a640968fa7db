"""The moderation hook: one signed POST per processed upload of a kind with
`moderation = "hook"`, whose answer decides whether the upload is shown.

    POST MEDIASVC_MODERATION_URL   webhook-id / webhook-timestamp / webhook-signature
                                   (Standard Webhooks, keyed with MEDIASVC_MODERATION_SECRET)
    {"id", "owner", "space", "kind", "sha256", "pdq", "url"}     `shapes.ModerationRequest`
    ← 2xx {"decision": "allow" | "deny" | "review", "reason": ...}   within the timeout

`Moderator.ask` never raises: a timeout, a refused connection, a non-2xx or an answer
that is not the JSON above is a `Verdict` with `failed` set, which the caller turns into the
kind's `moderation_fail` (closed: review, open: allow). One attempt, no retry: the uploader
is waiting, and the fallback is the operator's choice for exactly this case. How long each
ask took, by outcome, is `mediasvc_moderation_hook_duration_seconds`.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal

import aiohttp
import structlog
from pydantic import ValidationError

from mediasvc.config import Settings
from mediasvc.contract.shapes import ModerationAnswer, ModerationFail, ModerationRequest
from mediasvc.events.signing import Signer
from mediasvc.metrics import Metrics

log = structlog.get_logger(__name__)

Decision = Literal["allow", "deny", "review"]
USER_AGENT = "mediasvc-moderation"
# An answer is a few dozen bytes; a hook that sends more is not answering.
MAX_ANSWER_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the hook decided (`reason` with it), or why it could not be asked (`failed`:
    timeout, error or invalid; `decision` is then None)."""

    decision: Decision | None
    reason: str | None = None
    failed: str | None = None

    def applied(self, fail: ModerationFail) -> Decision:
        """The decision to act on: the hook's, or the kind's fallback when it failed."""
        if self.decision is not None:
            return self.decision
        return "review" if fail == "closed" else "allow"


class Moderator:
    """Asks the moderation hook; made once per app when `MEDIASVC_MODERATION_URL` is set."""

    def __init__(self, url: str, key: bytes, http: aiohttp.ClientSession, metrics: Metrics) -> None:
        self.url = url
        self.http = http
        self.metrics = metrics
        self.signer = Signer(key)

    async def ask(self, request: ModerationRequest) -> Verdict:
        """The hook's verdict on one upload; never raises (see the module docstring)."""
        started = time.perf_counter()
        verdict = await self._post(request.model_dump_json())
        outcome = verdict.decision or verdict.failed or "error"
        self.metrics.moderation_seconds.labels(outcome).observe(time.perf_counter() - started)
        log.info(
            "moderation.answered",
            media_id=request.id,
            outcome=outcome,
            reason=verdict.reason,
            latency_s=round(time.perf_counter() - started, 4),
        )
        return verdict

    async def _post(self, body: str) -> Verdict:
        # Its own id prefix: a receiver that also takes our webhooks never confuses the two.
        message_id = "mod_" + secrets.token_urlsafe(16)
        headers = {
            **self.signer.headers(message_id, int(time.time()), body),
            "Content-Type": "application/json",
        }
        try:
            async with self.http.post(
                self.url, data=body.encode(), headers=headers, allow_redirects=False
            ) as response:
                if not 200 <= response.status < 300:
                    return Verdict(None, failed="error", reason=f"HTTP {response.status}")
                raw = await response.content.read(MAX_ANSWER_BYTES + 1)
        except TimeoutError:
            return Verdict(None, failed="timeout")
        except aiohttp.ClientError as exc:
            return Verdict(None, failed="error", reason=type(exc).__name__)
        if len(raw) > MAX_ANSWER_BYTES:
            return Verdict(None, failed="invalid", reason="answer too long")
        try:
            answer = ModerationAnswer.model_validate_json(raw)
        except ValidationError:
            return Verdict(None, failed="invalid", reason="not a decision")
        return Verdict(answer.decision, reason=answer.reason)


@asynccontextmanager
async def running_moderator(
    settings: Settings, metrics: Metrics
) -> AsyncIterator[Moderator | None]:
    """The app's moderator while the block runs; None without `MEDIASVC_MODERATION_URL`."""
    if settings.moderation_url is None:
        yield None
        return
    assert settings.moderation_secret is not None, "Settings requires a secret with a URL"
    timeout = aiohttp.ClientTimeout(total=settings.moderation_timeout_s)
    async with aiohttp.ClientSession(timeout=timeout, headers={"User-Agent": USER_AGENT}) as http:
        yield Moderator(settings.moderation_url, settings.moderation_secret, http, metrics)
