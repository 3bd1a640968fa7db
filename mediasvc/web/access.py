"""Who is calling (the bearer token or session cookie, verified) and what they may see or
act on."""

from __future__ import annotations

import structlog
from aiohttp import web

from mediasvc import db
from mediasvc.appkeys import DB, SETTINGS, VERIFIER
from mediasvc.auth import Principal
from mediasvc.config import Settings
from mediasvc.db import queries
from mediasvc.errors import BadRequest, Forbidden, NotFound, Unauthorized
from mediasvc.ids import is_media_id
from mediasvc.models import Media
from mediasvc.spaces import SPACE_ID_RULE, is_space_id
from mediasvc.web.credentials import check_cookie_origin, request_credential


def optional_principal(request: web.Request) -> Principal | None:
    """The caller if a token was sent (it must then be valid), else None.

    A token from the session cookie must also pass the CSRF check (`web.credentials`).
    """
    credential = request_credential(request)
    if credential is None:
        return None
    if credential.from_cookie:
        check_cookie_origin(request)
    principal = request.app[VERIFIER].verify(credential.token)
    structlog.contextvars.bind_contextvars(owner=principal.sub)
    return principal


def require_principal(request: web.Request) -> Principal:
    """The caller; `Unauthorized` without a valid bearer token."""
    principal = optional_principal(request)
    if principal is None:
        cookie = request.app[SETTINGS].auth_cookie
        also = "" if cookie is None else f", or the {cookie!r} cookie of a signed-in session"
        raise Unauthorized(f"This endpoint needs 'Authorization: Bearer <token>'{also}.")
    return principal


def require_admin(request: web.Request) -> Principal:
    """The caller, who must be an admin: `Unauthorized` without a token, else `Forbidden`."""
    principal = require_principal(request)
    if not principal.admin:
        raise Forbidden("Only admins may do this.")
    return principal


async def visible_media(request: web.Request, principal: Principal | None) -> Media:
    """The media named by the route's `{media_id}` if `principal` (None: anonymous) may
    see it, or the 404 an unknown id gets.

    Who may see what is decided in SQL, in one place (`queries.get_visible`): public
    ready media for anyone; a space's ready media for tokens listing the space; anything
    not being deleted for its owner and admins.
    """
    media_id = request.match_info["media_id"]
    if not is_media_id(media_id):
        raise NotFound("No such media.")
    async with db.connection(request.app[DB]) as conn:
        if principal is None:
            media = await queries.get_visible(conn, media_id, sub=None)
        else:
            media = await queries.get_visible(
                conn, media_id, sub=principal.sub, admin=principal.admin, spaces=principal.spaces
            )
    if media is None:
        raise NotFound("No such media.")
    return media


def shows_owner(principal: Principal | None, media: Media, settings: Settings) -> bool:
    """Whether the reader `principal` (None: anonymous) of `media` sees who uploaded it: the
    owner and admins do, and a space's members (only they and those two read a space's
    media: who posted matters in a conversation); for a public media, anyone else only with
    `MEDIASVC_PUBLIC_OWNER` (the owner id is often an email address)."""
    if settings.public_owner or media.space is not None:
        return True
    return principal is not None and principal.may_act_on(media.owner)


def space_param(request: web.Request, principal: Principal) -> str:
    """The space a listing asks for, which the caller's token must list (admins: any)."""
    space = request.query["space"]
    if not is_space_id(space):
        raise BadRequest(f"space: {SPACE_ID_RULE}.", field="space")
    if space not in principal.spaces and not principal.admin:
        raise Forbidden(f"Your token does not list the space {space!r}.", field="space")
    return space


def owner_param(request: web.Request, principal: Principal) -> str:
    """Whose media the request is about: the caller, or for admins `?owner=`."""
    owner = request.query.get("owner", principal.sub)
    if owner != principal.sub and not principal.admin:
        raise Forbidden("Only admins may act on another owner's media.")
    return owner
