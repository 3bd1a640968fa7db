"""Who is calling (the bearer token, verified) and what they may see or act on."""

from __future__ import annotations

import structlog
from aiohttp import hdrs, web

from mediasvc import db
from mediasvc.appkeys import DB, VERIFIER
from mediasvc.auth import Principal
from mediasvc.db import queries
from mediasvc.errors import Forbidden, NotFound, Unauthorized
from mediasvc.ids import is_media_id
from mediasvc.models import Media


def optional_principal(request: web.Request) -> Principal | None:
    """The caller if a bearer token was sent (it must then be valid), else None."""
    header = request.headers.get(hdrs.AUTHORIZATION)
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send 'Authorization: Bearer <token>'.")
    principal = request.app[VERIFIER].verify(token.strip())
    structlog.contextvars.bind_contextvars(owner=principal.sub)
    return principal


def require_principal(request: web.Request) -> Principal:
    """The caller; `Unauthorized` without a valid bearer token."""
    principal = optional_principal(request)
    if principal is None:
        raise Unauthorized("This endpoint needs 'Authorization: Bearer <token>'.")
    return principal


def may_see(principal: Principal | None, media: Media) -> bool:
    """Whether `principal` (None: anonymous) may read `media`."""
    # Private and unfinished media exist only for their owner: others get the same 404
    # as for an id that was never used, so ids cannot be probed.
    if media.status == "deleting":
        return False
    if media.visibility == "public" and media.status == "ready":
        return True
    return principal is not None and principal.may_act_on(media.owner)


async def visible_media(request: web.Request, principal: Principal | None) -> Media:
    """The media named by the route's `{media_id}`, or the 404 an unknown id gets."""
    media_id = request.match_info["media_id"]
    if not is_media_id(media_id):
        raise NotFound("No such media.")
    async with db.connection(request.app[DB]) as conn:
        media = await queries.get_media(conn, media_id)
    if media is None or not may_see(principal, media):
        raise NotFound("No such media.")
    return media


def owner_param(request: web.Request, principal: Principal) -> str:
    """Whose media the request is about: the caller, or for admins `?owner=`."""
    owner = request.query.get("owner", principal.sub)
    if owner != principal.sub and not principal.admin:
        raise Forbidden("Only admins may act on another owner's media.")
    return owner
