"""Handlers for `/v1/collections`: the order of an owner's collection."""

from __future__ import annotations

from aiohttp import web

from mediasvc import db
from mediasvc.appkeys import DB
from mediasvc.contract import shapes
from mediasvc.db import queries
from mediasvc.errors import Conflict, NotFound
from mediasvc.form import is_collection_name
from mediasvc.web.access import owner_param, require_principal
from mediasvc.web.bodies import answer, json_body

_EXAMPLE = '{"ids": ["...", ...]}'
_MESSAGES = {"ids": '"ids" must be a list of media ids.'}


async def put_order(request: web.Request) -> web.Response:
    """PUT /v1/collections/{collection}/order: `{"ids": [...]}`, every ready item once, in
    the new order, all at once. Items not ready yet (sessions, uploads in progress) may be
    left out: they keep their order, after the listed ones."""
    principal = require_principal(request)
    owner = owner_param(request, principal)
    collection = request.match_info["collection"]
    if not is_collection_name(collection):
        raise NotFound("No such collection.")
    ids = (await json_body(request, shapes.CollectionOrder, _EXAMPLE, _MESSAGES)).ids

    async def reorder(conn: db.Connection) -> list[str]:
        # The collection lock before any of its rows (docs/decisions.md, lock order): the
        # check below and the update see the same membership, and no reorder is
        # half-applied. Deletes take no such lock: an item deleted meanwhile just drops out.
        await queries.lock_collection(conn, owner, collection)
        current = await queries.collection_ids(conn, owner, collection)
        if not current:
            raise NotFound("No such collection.")
        ready = {media_id for media_id, is_ready in current.items() if is_ready}
        if len(ids) != len(set(ids)) or not ready <= set(ids) <= set(current):
            raise Conflict(
                "ids must list every ready item of the collection exactly once (items not "
                "ready yet may be left out), and nothing else.",
                expected=len(ready),
                actual=len(ids),
            )
        listed = set(ids)
        order = ids + [media_id for media_id in current if media_id not in listed]
        await queries.reorder(conn, owner, collection, order)
        return order

    order = await db.transaction(request.app[DB], reorder)
    return answer(shapes.CollectionOrderResult(collection=collection, ids=order))
