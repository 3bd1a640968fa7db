"""Recording events: a row in the outbox, in the transaction of the change it reports.

Call `record` (or `record_media` for a Media) on the connection whose transaction makes
the change, after the change's own statement, so the event exists if and only if the
change commits:

    async with db.connection(pool) as conn, conn.transaction():
        media = await queries.mark_ready(conn, ...)
        await outbox.record_media(conn, settings, "media.ready", media)

It is one statement (events, their deliveries and the NOTIFY that wakes the dispatchers)
and writes nothing when no webhook URL is configured. `upload.failed`, for asynchronous
upload-session completions, goes in the transaction that marks the session `failed`, with
the row as it is then (its Media JSON carries the `problem`):

    async with db.connection(pool) as conn, conn.transaction():
        failed = await queries.mark_failed(conn, media_id, problem)  # RETURNING the row
        await outbox.record_media(conn, settings, "upload.failed", failed)

`extra` adds fields to an event's data (`media.replaced` names its `replaced_by`).

The body is made here, once, from the event type's model (`contract.shapes.EVENTS`, whose
JSON Schemas are the OpenAPI document's `webhooks`): the same bytes are signed and sent
on every attempt.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from mediasvc.config import Settings
from mediasvc.contract.representation import event_view
from mediasvc.contract.shapes import EVENTS
from mediasvc.db import Connection
from mediasvc.db import events as queries
from mediasvc.db.events import NewEvent
from mediasvc.models import Media

EventType = Literal[
    "media.ready", "media.replaced", "media.deleted", "media.rerendered", "upload.failed"
]
EVENT_TYPES: tuple[EventType, ...] = (
    "media.ready",
    "media.replaced",
    "media.deleted",
    "media.rerendered",
    "upload.failed",
)


def new_event_id() -> str:
    """A `webhook-id`: `evt_` and 128 random bits (no `.`, which the signed text uses)."""
    return "evt_" + secrets.token_urlsafe(16)


def media_data(media: Media, settings: Settings) -> dict[str, Any]:
    """The `data` of a media event: the Media JSON that anyone who may see the media gets,
    without signed URLs (a private variant's `url` is null; receivers ask the API)."""
    return event_view(media, settings).model_dump()


def event(type: EventType, media_id: str, data: Mapping[str, Any]) -> NewEvent:
    """An event with a fresh id and its body, timestamped now; `data` as it is (any event
    about a media is `media_event`, checked against its type's model)."""
    body = {"type": type, "timestamp": _now(), "data": dict(data)}
    return NewEvent(
        id=new_event_id(),
        type=type,
        media_id=media_id,
        body=json.dumps(body, separators=(",", ":")),
    )


def media_event(
    type: EventType, media: Media, settings: Settings, extra: Mapping[str, Any] | None = None
) -> NewEvent:
    """An event about `media`; `extra` adds fields to its data (e.g. `replaced_by`), which
    its type's model must know."""
    data: dict[str, Any] = {**media_data(media, settings), **(extra or {})}
    body = EVENTS[type].model_validate({"type": type, "timestamp": _now(), "data": data})
    return NewEvent(id=new_event_id(), type=type, media_id=media.id, body=body.model_dump_json())


async def record(conn: Connection, settings: Settings, events: Sequence[NewEvent]) -> None:
    """Write `events` in the caller's transaction, one delivery per configured URL; nothing
    without a webhook URL."""
    if settings.webhook_urls and events:
        await queries.record(conn, events, settings.webhook_urls)


async def record_media(
    conn: Connection,
    settings: Settings,
    type: EventType,
    media: Media,
    *,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Record one event about `media` in the caller's transaction (see the module doc)."""
    await record(conn, settings, [media_event(type, media, settings, extra)])


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
