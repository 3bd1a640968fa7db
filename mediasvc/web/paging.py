"""Listing pages: the `limit` parameter and the opaque cursor (base64url of a small JSON)."""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import datetime
from typing import Any

from aiohttp import web

from mediasvc.errors import BadRequest
from mediasvc.ids import is_media_id
from mediasvc.models import Media

DEFAULT_PAGE = 20
MAX_PAGE = 100
_ASCII_DIGITS = re.compile(r"[0-9]{1,3}")
# A cursor this service made is well under this; longer ones are refused before decoding.
_MAX_CURSOR = 512
# Positions are PostgreSQL integers.
_MAX_POSITION = 2**31 - 1


def limit_param(request: web.Request) -> int:
    """The page size asked for, 1 to `MAX_PAGE`."""
    raw = request.query.get("limit", str(DEFAULT_PAGE))
    # ASCII digits only: str.isdigit() also takes '²', which int() then refuses.
    if not _ASCII_DIGITS.fullmatch(raw) or not 1 <= int(raw) <= MAX_PAGE:
        raise BadRequest(f"limit must be between 1 and {MAX_PAGE}.", field="limit")
    return int(raw)


def encode_cursor(position: dict[str, Any]) -> str:
    """The opaque cursor a client sends back for the next page."""
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


def decode_cursor(raw: str | None) -> dict[str, Any]:
    """The position a cursor names; `{}` for the first page."""
    if not raw:
        return {}
    if len(raw) > _MAX_CURSOR:
        raise BadRequest("The cursor is not valid.", field="cursor")
    try:
        decoded = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError):
        raise BadRequest("The cursor is not valid.", field="cursor") from None
    if not isinstance(decoded, dict):
        raise BadRequest("The cursor is not valid.", field="cursor")
    return decoded


def collection_position(cursor: dict[str, Any]) -> int:
    """The slot after which a collection page starts (-1: from the first)."""
    after = cursor.get("p", -1)
    if type(after) is not int or not -1 <= after <= _MAX_POSITION:
        raise BadRequest("The cursor is not valid.", field="cursor")
    return after


def recent_position(cursor: dict[str, Any]) -> tuple[datetime, str] | None:
    """The (created_at, id) before which a newest-first page starts; None: from the newest."""
    if not cursor:
        return None
    try:
        created_at, media_id = datetime.fromisoformat(cursor["t"]), cursor["i"]
    except (KeyError, TypeError, ValueError):
        raise BadRequest("The cursor is not valid.", field="cursor") from None
    if created_at.tzinfo is None or not isinstance(media_id, str) or not is_media_id(media_id):
        raise BadRequest("The cursor is not valid.", field="cursor")
    return created_at, media_id


def recent_cursor(items: list[Media], limit: int) -> str | None:
    """The cursor of the newest-first page after `items` (`recent_position` reads it); None
    when `items` is not a full page, so the last."""
    if len(items) < limit:
        return None
    last = items[-1]
    return encode_cursor({"t": last.created_at.isoformat(), "i": last.id})
