"""Handlers for `/v1/spaces`: emptying a space (`flows.space_deletion`)."""

from __future__ import annotations

from aiohttp import web

from mediasvc.appkeys import SPACE_DELETIONS
from mediasvc.contract import shapes
from mediasvc.errors import BadRequest, Forbidden
from mediasvc.spaces import SPACE_ID_RULE, is_space_id
from mediasvc.web.access import require_principal
from mediasvc.web.bodies import answer
from mediasvc.web.budgets import charge, operation_budget


async def delete_space_media(request: web.Request) -> web.Response:
    """DELETE /v1/spaces/{space}/media: admins, or a token whose manage claim lists the
    space; 202 with how many media go, removed in the background by any node."""
    principal = require_principal(request)
    space = request.match_info["space"]
    if not is_space_id(space):
        raise BadRequest(f"space: {SPACE_ID_RULE}.", field="space")
    if not principal.may_manage(space):
        raise Forbidden(f"Only admins and the space's managers may empty {space!r}.")
    await charge(request, principal, operation_budget(request, "deletes"))
    deletions = request.app[SPACE_DELETIONS]
    count = await deletions.start(space, principal.sub)
    deletions.kick()
    return answer(shapes.SpaceDeletion(space=space, media=count), status=202)
