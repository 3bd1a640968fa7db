"""Handlers for moderation, admins only: the review queue and a decision on one media."""

from __future__ import annotations

from aiohttp import web

from mediasvc import db
from mediasvc.appkeys import DB, KINDS, MODERATION, SETTINGS
from mediasvc.auth import Principal
from mediasvc.contract import shapes
from mediasvc.contract.representation import media_view
from mediasvc.db import queries
from mediasvc.errors import BadRequest, Forbidden
from mediasvc.kinds import srcset_sizes
from mediasvc.web.access import require_principal, visible_media
from mediasvc.web.bodies import answer, json_body
from mediasvc.web.media import full_media_page
from mediasvc.web.paging import decode_cursor, limit_param, recent_cursor, recent_position

_EXAMPLE = '{"decision": "allow"}'
_MESSAGES = {"decision": "decision must be allow or deny."}
# The one queue there is; the parameter leaves room for others without a new path.
_STATUSES = ("quarantined",)


def _require_admin(request: web.Request) -> Principal:
    principal = require_principal(request)
    if not principal.admin:
        raise Forbidden("Only admins may moderate.")
    return principal


async def decide(request: web.Request) -> web.Response:
    """POST /v1/media/{id}/moderation: allow (200, the ready media) or deny (204)."""
    principal = _require_admin(request)
    media = await visible_media(request, principal)
    decision = (await json_body(request, shapes.ModerationDecision, _EXAMPLE, _MESSAGES)).decision
    flow = request.app[MODERATION]
    if decision == "deny":
        await flow.deny(media)
        return web.Response(status=204)
    ready = await flow.allow(media)
    kinds = request.app[KINDS]
    sizes = srcset_sizes(kinds, ready.kind)
    return answer(media_view(ready, request.app[SETTINGS], full=True, sizes=sizes))


async def list_quarantined(request: web.Request) -> web.Response:
    """GET /v1/moderation?status=quarantined: the review queue, oldest first."""
    _require_admin(request)
    status = request.query.get("status", "quarantined")
    if status not in _STATUSES:
        raise BadRequest("status must be quarantined.", field="status")
    limit = limit_param(request)
    after = recent_position(decode_cursor(request.query.get("cursor")))
    async with db.connection(request.app[DB]) as conn:
        items = await queries.list_quarantined(conn, after=after, limit=limit)
    return full_media_page(request, items, recent_cursor(items, limit))
