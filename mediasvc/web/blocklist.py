"""Handlers for the blocklist (`/v1/blocklist`) and takedowns (`/v1/media/{id}/takedown`),
admins only. What they do is `db.blocklist` and `flows.takedown`; uploads are checked
against the list by the upload flow."""

from __future__ import annotations

import re

from aiohttp import web

from mediasvc import db
from mediasvc.appkeys import DB, SETTINGS, STORAGE
from mediasvc.contract import paths, shapes
from mediasvc.contract.representation import timestamp
from mediasvc.db import blocklist
from mediasvc.errors import BadRequest, NotFound
from mediasvc.flows.takedown import take_down
from mediasvc.web.access import require_admin, visible_media
from mediasvc.web.bodies import answer, json_body
from mediasvc.web.paging import decode_cursor, encode_cursor, limit_param

_ENTRY_EXAMPLE = '{"sha256": "<64 hex digits>", "reason": "..."} or {"pdq": ..., "reason": ...}'
_HASH_MESSAGE = "must be 64 lowercase hex digits."
_ENTRY_MESSAGES = {
    "sha256": f"sha256 {_HASH_MESSAGE}",
    "pdq": f"pdq (a PDQ hash) {_HASH_MESSAGE}",
    "reason": "reason must be a string of 1 to 1000 characters.",
}
_TAKEDOWN_EXAMPLE = '{"reason": "...", "similar": false}'
_TAKEDOWN_MESSAGES = {
    "reason": _ENTRY_MESSAGES["reason"],
    "similar": "similar must be true or false.",
}
# Entry ids are PostgreSQL bigints.
_ENTRY_ID = re.compile(r"[1-9][0-9]{0,17}")


def entry_view(entry: blocklist.Entry) -> shapes.BlocklistEntry:
    """An entry as the API shows it."""
    return shapes.BlocklistEntry(
        id=entry.id,
        sha256=entry.sha256,
        pdq=entry.pdq,
        reason=entry.reason,
        created_by=entry.created_by,
        created_at=timestamp(entry.created_at),
    )


async def add_entry(request: web.Request) -> web.Response:
    """POST /v1/blocklist: block a file (`sha256`) or a picture (`pdq`); 201 with the entry,
    or 200 with the one that blocks it already."""
    principal = require_admin(request)
    sent = await json_body(request, shapes.BlocklistRequest, _ENTRY_EXAMPLE, _ENTRY_MESSAGES)
    if (sent.sha256 is None) == (sent.pdq is None):
        raise BadRequest("Send exactly one of sha256 and pdq.", field="sha256")
    async with db.connection(request.app[DB]) as conn:
        entry, created = await blocklist.add(
            conn, sha256=sent.sha256, pdq=sent.pdq, reason=sent.reason, created_by=principal.sub
        )
    location = paths.BLOCKLIST_ENTRY.format(entry_id=str(entry.id))
    return answer(entry_view(entry), status=201 if created else 200, headers={"Location": location})


async def list_entries(request: web.Request) -> web.Response:
    """GET /v1/blocklist: the entries, oldest first, a page at a time."""
    require_admin(request)
    limit = limit_param(request)
    after = decode_cursor(request.query.get("cursor")).get("b", 0)
    if type(after) is not int or after < 0:
        raise BadRequest("The cursor is not valid.", field="cursor")
    async with db.connection(request.app[DB]) as conn:
        items = await blocklist.entries(conn, after=after, limit=limit)
    next_cursor = encode_cursor({"b": items[-1].id}) if len(items) == limit else None
    return answer(
        shapes.BlocklistPage(items=[entry_view(e) for e in items], next_cursor=next_cursor)
    )


async def remove_entry(request: web.Request) -> web.Response:
    """DELETE /v1/blocklist/{entry_id}: unblock; 204, or 404 for no such entry."""
    require_admin(request)
    raw = request.match_info["entry_id"]
    if not _ENTRY_ID.fullmatch(raw):
        raise NotFound("No such blocklist entry.")
    async with db.connection(request.app[DB]) as conn:
        if not await blocklist.remove(conn, int(raw)):
            raise NotFound("No such blocklist entry.")
    return web.Response(status=204)


async def takedown(request: web.Request) -> web.Response:
    """POST /v1/media/{id}/takedown: delete the media, block its file and picture, and delete
    its copies across owners and spaces (with `similar`, near-copies by PDQ too)."""
    principal = require_admin(request)
    sent = await json_body(request, shapes.TakedownRequest, _TAKEDOWN_EXAMPLE, _TAKEDOWN_MESSAGES)
    media = await visible_media(request, principal)
    done = await take_down(
        request.app[DB],
        request.app[STORAGE],
        request.app[SETTINGS],
        media,
        reason=sent.reason,
        similar=sent.similar,
        by=principal.sub,
    )
    return answer(
        shapes.Takedown(blocked=[entry_view(e) for e in done.blocked], removed=done.removed)
    )
