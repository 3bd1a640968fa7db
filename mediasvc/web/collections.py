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
    """PUT /v1/collections/{collection}/order: `{"ids": [...]}`, a permutation, all at once."""
    principal = require_principal(request)
    owner = owner_param(request, principal)
    collection = request.match_info["collection"]
    if not is_collection_name(collection):
        raise NotFound("No such collection.")
    ids = (await json_body(request, shapes.CollectionOrder, _EXAMPLE, _MESSAGES)).ids

    async def reorder(conn: db.Connection) -> None:
        # The collection lock before any of its rows (docs/decisions.md, lock order): the
        # check below and the update see the same membership, and no reorder is
        # half-applied. Deletes take no such lock: an item deleted meanwhile just drops out.
        await queries.lock_collection(conn, owner, collection)
        current = await queries.collection_ids(conn, owner, collection)
        if not current:
            raise NotFound("No such collection.")
        if len(ids) != len(set(ids)) or set(ids) != set(current):
            raise Conflict(
                "ids must list every item of the collection exactly once.",
                expected=len(current),
                actual=len(ids),
            )
        await queries.reorder(conn, owner, collection, ids)

    await db.transaction(request.app[DB], reorder)
    return answer(shapes.CollectionOrderResult(collection=collection, ids=ids))
