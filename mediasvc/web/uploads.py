"""Handlers for `/v1/uploads`: upload sessions whose bytes go straight to storage."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from mediasvc.appkeys import SESSIONS, SETTINGS
from mediasvc.contract import codes, paths
from mediasvc.errors import BadRequest, Forbidden, Gone, NotFound
from mediasvc.flows.sessions import Completed, SessionRequest, content_path
from mediasvc.flows.upload import Declared
from mediasvc.form import UploadForm
from mediasvc.ids import is_media_id
from mediasvc.signing import check_signed_path
from mediasvc.web.access import require_principal
from mediasvc.web.bodies import json_object
from mediasvc.web.representation import media_json, timestamp

_EXAMPLE = '{"kind": "avatar", "content_type": "image/jpeg", "size": 123456}'
_FORM_FIELDS = ("kind", "collection", "visibility", "space")
_KNOWN = frozenset({*_FORM_FIELDS, "content_type", "size", "sha256", "upload_method"})
_SHA256 = re.compile(r"[0-9a-f]{64}")
# The largest size anyone could declare: PostgreSQL's bigint.
_MAX_SIZE = 2**63 - 1


async def create_session(request: web.Request) -> web.Response:
    """POST /v1/uploads: check the declared file, reserve its slot, say where to send it."""
    principal = require_principal(request)
    sessions = request.app[SESSIONS]
    form = sessions.uploads.form.for_uploader(principal.spaces)
    asked = _session_request(
        await json_object(request, _EXAMPLE), form, request.headers.get("Idempotency-Key")
    )
    session = await sessions.open(principal.sub, asked)
    media = session.media
    body: dict[str, Any] = {
        "id": media.id,
        "status": media.status,
        "expires_at": None if media.expires_at is None else timestamp(media.expires_at),
        "upload": {
            "method": session.upload.method,
            "url": session.upload.url,
            **({"fields": session.upload.fields} if session.upload.fields is not None else {}),
            **({"headers": session.upload.headers} if session.upload.headers is not None else {}),
        },
        "complete_url": _url(request, paths.UPLOAD_COMPLETE, media_id=media.id),
    }
    return web.json_response(
        body,
        status=201 if session.created else 200,
        headers={"Location": _url(request, paths.MEDIA_ITEM, media_id=media.id)},
    )


async def put_content(request: web.Request) -> web.Response:
    """PUT /v1/uploads/{id}/content (local disk): the bytes, on a URL the app signed."""
    media_id = request.match_info["media_id"]
    if not is_media_id(media_id):
        raise NotFound("No such upload session.")
    verdict = check_signed_path(
        content_path(media_id),
        request.query.get("md5", ""),
        request.query.get("expires", ""),
        request.app[SETTINGS].url_signing_secret,
    )
    if verdict is False:
        raise Forbidden("The upload URL's signature is missing or wrong.")
    if verdict is None:
        raise Gone("The upload URL has expired.", code=codes.UPLOAD_EXPIRED)
    await request.app[SESSIONS].receive(request, media_id)
    return web.Response(status=204)


async def complete_session(request: web.Request) -> web.Response:
    """POST /v1/uploads/{id}/complete: make the media (202 with `Prefer: respond-async`)."""
    principal = require_principal(request)
    media_id = request.match_info["media_id"]
    if not is_media_id(media_id):
        raise NotFound("No such upload session.")
    wait = "respond-async" not in request.headers.get("Prefer", "").lower()
    completed = await request.app[SESSIONS].complete(principal, media_id, wait=wait)
    return web.json_response(
        media_json(completed.media, request.app[SETTINGS], full=True),
        status=_status(completed),
        headers={"Location": _url(request, paths.MEDIA_ITEM, media_id=media_id)},
    )


def _url(request: web.Request, path: paths.Path, **params: str) -> str:
    """`path` with `params`, from this app's router."""
    return str(request.app.router[path.name].url_for(**params))


def _status(completed: Completed) -> int:
    if not completed.done:
        return 202
    return 201 if completed.created else 200


def _session_request(
    body: dict[str, Any], form: UploadForm, idempotency_key: str | None
) -> SessionRequest:
    """The session a JSON body asks for, checked like the upload form's fields."""
    unknown = sorted(set(body) - _KNOWN)
    if unknown:
        raise BadRequest(f"Unknown member {unknown[0]!r}.", field=unknown[0])
    fields: dict[str, str] = {}
    for name in _FORM_FIELDS:
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise BadRequest(f"{name} must be a string.", field=name)
        form.check_field(name, value)
        fields[name] = value
    content_type = body.get("content_type")
    if not isinstance(content_type, str) or not content_type:
        raise BadRequest("content_type must be the file's MIME type.", field="content_type")
    size = body.get("size")
    if type(size) is not int or not 0 < size <= _MAX_SIZE:
        raise BadRequest("size must be the file's size in bytes.", field="size")
    sha256 = body.get("sha256")
    if sha256 is not None and not (isinstance(sha256, str) and _SHA256.fullmatch(sha256)):
        raise BadRequest("sha256 must be 64 lowercase hex digits.", field="sha256")
    method = body.get("upload_method", "post")
    if method not in ("post", "put"):
        raise BadRequest("upload_method must be post or put.", field="upload_method")
    return SessionRequest(
        options=form.options(fields, idempotency_key),
        declared=Declared(content_type, size, sha256),
        method=method,
    )
