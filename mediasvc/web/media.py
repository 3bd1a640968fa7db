"""Handlers for `/v1/media`: upload, read, list, delete, and variant redirects."""

from __future__ import annotations

from aiohttp import web

from mediasvc import db
from mediasvc.appkeys import DB, KINDS, SETTINGS, STORAGE, UPLOADS
from mediasvc.auth import Principal
from mediasvc.contract import paths, shapes
from mediasvc.contract.representation import media_view, uploaded_view, variant_url
from mediasvc.db import queries
from mediasvc.errors import BadRequest, Forbidden, NotFound
from mediasvc.flows.delete import delete_media as delete_stored_media
from mediasvc.form import check_collection_name
from mediasvc.ingest import spooled_upload
from mediasvc.keys import is_private
from mediasvc.kinds import srcset_sizes
from mediasvc.models import Media
from mediasvc.web import redirects
from mediasvc.web.access import (
    optional_principal,
    owner_param,
    require_principal,
    shows_owner,
    space_param,
    visible_media,
)
from mediasvc.web.bodies import answer
from mediasvc.web.budgets import charge, kind_budget, operation_budget
from mediasvc.web.paging import (
    collection_position,
    decode_cursor,
    encode_cursor,
    limit_param,
    recent_cursor,
    recent_position,
)


async def charge_read(request: web.Request, principal: Principal | None) -> None:
    """A signed-in read spends the user's read budget; anonymous reads have nginx's guard."""
    if principal is not None:
        await charge(request, principal, operation_budget(request, "reads"))


async def create_media(request: web.Request) -> web.Response:
    """POST /v1/media: stream the file in, make the variants, answer 201 with the media."""
    principal = require_principal(request)
    # Before the body is read: a user past their budget costs a statement, not a spool.
    await charge(request, principal, operation_budget(request, "uploads"))
    uploads = request.app[UPLOADS]
    form = uploads.form.for_uploader(principal.spaces)
    spool_dir = request.app[SETTINGS].spool_dir
    with uploads.admitted(principal.sub):
        async with spooled_upload(request, spool_dir=spool_dir, form=form) as upload:
            options = form.options(upload.fields, request.headers.get("Idempotency-Key"))
            await charge(request, principal, kind_budget(options.kind))
            uploaded = await uploads.create(principal.sub, upload, options)
    if (page := redirects.target(request)) is not None:
        return redirects.see_other(page, media=uploaded.media.id)
    replaced = list(uploaded.replaced) if options.kind.replace else None
    return answer(
        uploaded_view(uploaded.media, request.app[SETTINGS], replaced, options.kind.srcset_sizes),
        status=201 if uploaded.created else 200,
        headers={"Location": _location(request, uploaded.media.id)},
    )


async def get_media(request: web.Request) -> web.Response:
    """GET /v1/media/{id}: public media for anyone, a space's for its members, private
    only for owner or admin."""
    principal = optional_principal(request)
    await charge_read(request, principal)
    media = await visible_media(request, principal)
    settings = request.app[SETTINGS]
    full = principal is not None and principal.may_act_on(media.owner)
    owner = shows_owner(principal, media, settings)
    kinds = request.app[KINDS]
    sizes = srcset_sizes(kinds, media.kind)
    return answer(media_view(media, settings, full=full, owner=owner, sizes=sizes))


async def list_media(request: web.Request) -> web.Response:
    """GET /v1/media: the caller's media, a collection in position order or all newest first;
    with `?space=`, that space's media for its members."""
    principal = require_principal(request)
    await charge_read(request, principal)
    if "space" in request.query:
        return await _list_space(request, principal)
    owner = owner_param(request, principal)
    limit = limit_param(request)
    collection = request.query.get("collection")
    if collection is not None:
        check_collection_name(collection)
    cursor = decode_cursor(request.query.get("cursor"))
    async with db.connection(request.app[DB]) as conn:
        if collection is not None:
            items = await queries.list_collection(
                conn, owner, collection, after_position=collection_position(cursor), limit=limit
            )
            next_cursor = encode_cursor({"p": items[-1].slot}) if len(items) == limit else None
        else:
            items = await queries.list_recent(
                conn, owner, before=recent_position(cursor), limit=limit
            )
            next_cursor = recent_cursor(items, limit)
    return full_media_page(request, items, next_cursor)


def full_media_page(
    request: web.Request, items: list[Media], next_cursor: str | None
) -> web.Response:
    """A page of media shown in full (to their owner, or an admin)."""
    settings, kinds = request.app[SETTINGS], request.app[KINDS]
    return answer(
        shapes.MediaPage(
            items=[
                media_view(item, settings, full=True, sizes=srcset_sizes(kinds, item.kind))
                for item in items
            ],
            next_cursor=next_cursor,
        )
    )


async def _list_space(request: web.Request, principal: Principal) -> web.Response:
    """GET /v1/media?space=S: the space's ready media, newest first, whoever uploaded them."""
    # A space is shared by its members, so it is not narrowed to one owner or collection.
    for other in ("owner", "collection"):
        if other in request.query:
            raise BadRequest(f"space cannot be combined with {other}.", field=other)
    space = space_param(request, principal)
    limit = limit_param(request)
    before = recent_position(decode_cursor(request.query.get("cursor")))
    async with db.connection(request.app[DB]) as conn:
        items = await queries.list_space(
            conn,
            space,
            sub=principal.sub,
            admin=principal.admin,
            spaces=principal.spaces,
            before=before,
            limit=limit,
        )
    settings, kinds = request.app[SETTINGS], request.app[KINDS]
    return answer(
        shapes.MediaPage(
            items=[
                media_view(
                    item,
                    settings,
                    full=principal.may_act_on(item.owner),
                    owner=shows_owner(principal, item, settings),
                    sizes=srcset_sizes(kinds, item.kind),
                )
                for item in items
            ],
            next_cursor=recent_cursor(items, limit),
        )
    )


async def delete_media(request: web.Request) -> web.Response:
    """DELETE /v1/media/{id}: owner or admin; every variant is removed, then the row."""
    principal = require_principal(request)
    await charge(request, principal, operation_budget(request, "deletes"))
    media = await visible_media(request, principal)
    if not principal.may_act_on(media.owner):
        raise Forbidden("Only the owner or an admin may delete this media.")
    await delete_stored_media(request.app[DB], request.app[STORAGE], media, request.app[SETTINGS])
    return web.Response(status=204)


async def variant_redirect(request: web.Request) -> web.Response:
    """GET /v1/media/{id}/{variant}: 302 to the file (a short-lived signed URL if private)."""
    principal = optional_principal(request)
    await charge_read(request, principal)
    media = await visible_media(request, principal)
    variant = media.variants.get(request.match_info["variant"])
    if variant is None:
        raise NotFound(f"No variant {request.match_info['variant']!r}.")
    url = variant_url(variant.key, request.app[SETTINGS])
    # By the key: a quarantined public media's files are private until it is allowed.
    signed = is_private(variant.key)
    headers = {"Location": url, "Cache-Control": "private, no-store" if signed else ""}
    return web.Response(status=302, headers={k: v for k, v in headers.items() if v})


def _location(request: web.Request, media_id: str) -> str:
    """Where a media is read: its `GET /v1/media/{media_id}` path."""
    return str(request.app.router[paths.MEDIA_ITEM.name].url_for(media_id=media_id))
