"""Handlers for `/v1/media`: upload and read."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from mediasvc import db
from mediasvc.appkeys import DB, POOL, SETTINGS, STORAGE
from mediasvc.auth import Principal
from mediasvc.config import Settings
from mediasvc.db import queries
from mediasvc.errors import BadRequest, Busy, NotFound
from mediasvc.ids import is_media_id
from mediasvc.imaging.variants import KINDS, VARIANTS
from mediasvc.ingest import spooled_upload
from mediasvc.models import VISIBILITIES, Media
from mediasvc.uploads import Uploader, UploadOptions
from mediasvc.web.access import optional_principal, require_principal

_COLLECTION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,128}$")
# jsonb keeps object keys in its own order; the API lists variants smallest first.
_LADDER = {spec.name: i for i, spec in enumerate(VARIANTS)}


async def create_media(request: web.Request) -> web.Response:
    """POST /v1/media: stream the file in, make the variants, answer 201 with the media."""
    principal = require_principal(request)
    settings = request.app[SETTINGS]
    pool = request.app[POOL]
    # Refuse before reading the body when the pool could not take the job anyway.
    if not pool.has_room:
        raise Busy("Every image worker is busy; try again shortly.")
    uploader = Uploader(settings, request.app[DB], request.app[STORAGE], pool)
    async with spooled_upload(
        request, spool_dir=settings.spool_dir, max_bytes=settings.max_upload_bytes
    ) as upload:
        options = _upload_options(upload.fields, request.headers.get("Idempotency-Key"))
        media = await uploader.create(principal.sub, upload, options)
    return web.json_response(
        media_json(media, settings),
        status=201,
        headers={"Location": f"/v1/media/{media.id}"},
    )


async def get_media(request: web.Request) -> web.Response:
    """GET /v1/media/{id}: public media for anyone, private only for owner or admin."""
    principal = optional_principal(request)
    media_id = request.match_info["media_id"]
    if not is_media_id(media_id):
        raise NotFound("No such media.")
    async with db.connection(request.app[DB]) as conn:
        media = await queries.get_media(conn, media_id)
    if media is None or not _may_see(principal, media):
        raise NotFound("No such media.")
    return web.json_response(media_json(media, request.app[SETTINGS]))


def _may_see(principal: Principal | None, media: Media) -> bool:
    # Private and unfinished media exist only for their owner: others get the same 404
    # as for an id that was never used, so ids cannot be probed.
    if media.visibility == "public" and media.status == "ready":
        return True
    return principal is not None and principal.may_act_on(media.owner)


def _upload_options(fields: dict[str, str], idempotency_key: str | None) -> UploadOptions:
    kind = fields.get("kind", "post")
    if kind not in KINDS:
        raise BadRequest(f"kind must be one of {', '.join(KINDS)}.", field="kind")
    visibility = fields.get("visibility", "public")
    if visibility not in VISIBILITIES:
        raise BadRequest(
            f"visibility must be one of {', '.join(VISIBILITIES)}.", field="visibility"
        )
    collection = fields.get("collection") or None
    if collection is not None and not _COLLECTION.match(collection):
        raise BadRequest(
            "collection must be 1-64 letters, digits, '_', '.' or '-'.", field="collection"
        )
    if idempotency_key is not None and not _IDEMPOTENCY_KEY.match(idempotency_key):
        raise BadRequest("Idempotency-Key must be 1-128 visible ASCII characters.")
    return UploadOptions(
        kind=kind,
        collection=collection,
        visibility=visibility,
        idempotency_key=idempotency_key,
    )


def media_json(media: Media, settings: Settings) -> dict[str, Any]:
    """The Media JSON of the API."""
    return {
        "id": media.id,
        "owner": media.owner,
        "kind": media.kind,
        "collection": media.collection,
        "position": media.position,
        "visibility": media.visibility,
        "status": media.status,
        "original": {
            "mime": media.original.mime,
            "bytes": media.original.bytes,
            "width": media.original.width,
            "height": media.original.height,
            "frames": media.original.frames,
            "sha256": media.original.sha256,
        },
        "variants": {
            name: {
                "url": f"{settings.public_media_url}/{v.key}",
                "width": v.width,
                "height": v.height,
                "bytes": v.bytes,
                "mime": v.mime,
            }
            for name, v in sorted(media.variants.items(), key=lambda item: _LADDER[item[0]])
        },
        "created_at": media.created_at.isoformat().replace("+00:00", "Z"),
    }
