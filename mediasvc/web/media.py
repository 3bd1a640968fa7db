"""Handlers for `/v1/media`: upload, read, list, delete, and variant redirects."""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from aiohttp import web

from mediasvc import db
from mediasvc.appkeys import DB, METRICS, POOL, SETTINGS, STORAGE
from mediasvc.auth import Principal
from mediasvc.config import Settings
from mediasvc.db import queries
from mediasvc.errors import BadRequest, Busy, Forbidden, MediaError, NotFound
from mediasvc.flows.delete import delete_media as delete_stored_media
from mediasvc.flows.upload import Uploader, UploadOptions
from mediasvc.ids import is_media_id
from mediasvc.imaging.variants import KINDS, VARIANTS
from mediasvc.ingest import spooled_upload
from mediasvc.models import VISIBILITIES, Media
from mediasvc.signing import sign_path
from mediasvc.storage import PRIVATE_PREFIX
from mediasvc.web.access import optional_principal, require_principal

COLLECTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,128}$")
# jsonb keeps object keys in its own order; the API lists variants smallest first.
_LADDER = {spec.name: i for i, spec in enumerate(VARIANTS)}
DEFAULT_PAGE = 20
MAX_PAGE = 100


async def create_media(request: web.Request) -> web.Response:
    """POST /v1/media: stream the file in, make the variants, answer 201 with the media."""
    principal = require_principal(request)
    settings = request.app[SETTINGS]
    pool = request.app[POOL]
    # Refuse before reading the body when the pool could not take the job anyway.
    if not pool.has_room:
        raise Busy("Every image worker is busy; try again shortly.")
    metrics = request.app[METRICS]
    uploader = Uploader(settings, request.app[DB], request.app[STORAGE], pool, metrics)
    try:
        with metrics.stage("total"):
            async with spooled_upload(
                request,
                spool_dir=settings.spool_dir,
                max_bytes=settings.max_upload_bytes,
                observe=metrics.stage_observer(),
            ) as upload:
                options = _upload_options(upload.fields, request.headers.get("Idempotency-Key"))
                media, created = await uploader.create(principal.sub, upload, options)
    except MediaError as exc:
        outcome = "refused" if exc.status < 500 else "failed"
        metrics.uploads.labels(outcome, exc.instance_code).inc()
        raise
    metrics.uploads.labels("created" if created else "replayed", "").inc()
    return web.json_response(
        media_json(media, settings),
        status=201 if created else 200,
        headers={"Location": f"/v1/media/{media.id}"},
    )


async def get_media(request: web.Request) -> web.Response:
    """GET /v1/media/{id}: public media for anyone, private only for owner or admin."""
    media = await _visible_media(request, optional_principal(request))
    return web.json_response(media_json(media, request.app[SETTINGS]))


async def list_media(request: web.Request) -> web.Response:
    """GET /v1/media: the caller's media, a collection in position order or all newest first."""
    principal = require_principal(request)
    owner = owner_param(request, principal)
    limit = _limit_param(request)
    collection = request.query.get("collection")
    cursor = _decode_cursor(request.query.get("cursor"))
    async with db.connection(request.app[DB]) as conn:
        if collection is not None:
            after = cursor.get("p", -1)
            if not isinstance(after, int):
                raise BadRequest("The cursor is not valid.", field="cursor")
            items = await queries.list_collection(
                conn, owner, collection, after_position=after, limit=limit
            )
            next_cursor: dict[str, Any] | None = (
                {"p": items[-1].position} if len(items) == limit else None
            )
        else:
            items = await queries.list_recent(
                conn, owner, before=_recent_position(cursor), limit=limit
            )
            next_cursor = (
                {"t": items[-1].created_at.isoformat(), "i": items[-1].id}
                if len(items) == limit
                else None
            )
    settings = request.app[SETTINGS]
    return web.json_response(
        {
            "items": [media_json(item, settings) for item in items],
            "next_cursor": None if next_cursor is None else _encode_cursor(next_cursor),
        }
    )


async def delete_media(request: web.Request) -> web.Response:
    """DELETE /v1/media/{id}: owner or admin; every variant is removed, then the row."""
    principal = require_principal(request)
    media = await _visible_media(request, principal)
    if not principal.may_act_on(media.owner):
        raise Forbidden("Only the owner or an admin may delete this media.")
    await delete_stored_media(request.app[DB], request.app[STORAGE], media)
    return web.Response(status=204)


async def variant_redirect(request: web.Request) -> web.Response:
    """GET /v1/media/{id}/{variant}: 302 to the file (a short-lived signed URL if private)."""
    media = await _visible_media(request, optional_principal(request))
    variant = media.variants.get(request.match_info["variant"])
    if variant is None:
        raise NotFound(f"No variant {request.match_info['variant']!r}.")
    url = variant_url(variant.key, request.app[SETTINGS])
    headers = {"Location": url, "Cache-Control": "private, no-store" if media.is_private else ""}
    return web.Response(status=302, headers={k: v for k, v in headers.items() if v})


async def _visible_media(request: web.Request, principal: Principal | None) -> Media:
    media_id = request.match_info["media_id"]
    if not is_media_id(media_id):
        raise NotFound("No such media.")
    async with db.connection(request.app[DB]) as conn:
        media = await queries.get_media(conn, media_id)
    if media is None or not _may_see(principal, media):
        raise NotFound("No such media.")
    return media


def _may_see(principal: Principal | None, media: Media) -> bool:
    # Private and unfinished media exist only for their owner: others get the same 404
    # as for an id that was never used, so ids cannot be probed.
    if media.status == "deleting":
        return False
    if media.visibility == "public" and media.status == "ready":
        return True
    return principal is not None and principal.may_act_on(media.owner)


def owner_param(request: web.Request, principal: Principal) -> str:
    """Whose media the request is about: the caller, or for admins `?owner=`."""
    owner = request.query.get("owner", principal.sub)
    if owner != principal.sub and not principal.admin:
        raise Forbidden("Only admins may act on another owner's media.")
    return owner


def _limit_param(request: web.Request) -> int:
    raw = request.query.get("limit", str(DEFAULT_PAGE))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise BadRequest(f"limit must be between 1 and {MAX_PAGE}.", field="limit")
    return int(raw)


def _encode_cursor(position: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


def _decode_cursor(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        decoded = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError):
        raise BadRequest("The cursor is not valid.", field="cursor") from None
    if not isinstance(decoded, dict):
        raise BadRequest("The cursor is not valid.", field="cursor")
    return decoded


def _recent_position(cursor: dict[str, Any]) -> tuple[datetime, str] | None:
    if not cursor:
        return None
    try:
        return datetime.fromisoformat(cursor["t"]), str(cursor["i"])
    except (KeyError, TypeError, ValueError):
        raise BadRequest("The cursor is not valid.", field="cursor") from None


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
    if collection is not None and not COLLECTION_NAME.match(collection):
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


def variant_url(key: str, settings: Settings) -> str:
    """Where a client fetches a stored variant: its plain URL, or a signed one if private."""
    if key.startswith(PRIVATE_PREFIX):
        # nginx checks the signature over the path it sees, so only the path is signed;
        # a scheme and host in front (a CDN passing paths through) stay outside it.
        base = urlsplit(settings.private_media_url)
        signed = sign_path(
            f"{base.path}/{key.removeprefix(PRIVATE_PREFIX)}",
            settings.url_signing_secret,
            settings.signed_url_ttl_s,
        )
        return urlunsplit((base.scheme, base.netloc, "", "", "")) + signed
    return f"{settings.public_media_url}/{key}"


def media_json(media: Media, settings: Settings) -> dict[str, Any]:
    """The Media JSON of the API. Private variants carry signed URLs valid for a while."""
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
                "url": variant_url(v.key, settings),
                "width": v.width,
                "height": v.height,
                "bytes": v.bytes,
                "mime": v.mime,
            }
            for name, v in sorted(media.variants.items(), key=lambda item: _LADDER[item[0]])
        },
        "placeholder": (
            None
            if media.placeholder is None
            else {
                "thumbhash": media.placeholder.thumbhash,
                "dominant_color": media.placeholder.dominant_color,
            }
        ),
        "processing": media.processing,
        "created_at": media.created_at.isoformat().replace("+00:00", "Z"),
    }
