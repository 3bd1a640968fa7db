"""Handlers for `/v1/uploads`: upload sessions whose bytes go straight to storage."""

from __future__ import annotations

from aiohttp import web

from mediasvc.appkeys import KINDS, SESSIONS, SETTINGS, UPLOADS
from mediasvc.contract import codes, paths, shapes
from mediasvc.contract.representation import media_view, planned_variant_urls, timestamp
from mediasvc.errors import Forbidden, Gone, NotFound
from mediasvc.flows.sessions import Completed, SessionRequest, content_path
from mediasvc.form import UploadForm
from mediasvc.ids import is_media_id
from mediasvc.ingest import body_chunks
from mediasvc.kinds import srcset_sizes
from mediasvc.signing import check_signed_path
from mediasvc.web.access import require_principal
from mediasvc.web.bodies import answer, json_body
from mediasvc.web.budgets import charge, kind_budget, operation_budget

_EXAMPLE = '{"kind": "avatar", "content_type": "image/jpeg", "size": 123456}'
_FORM_FIELDS = ("kind", "collection", "visibility", "space")
# What a bad member of the body is told (`shapes.UploadSessionRequest` decides what is bad).
_MESSAGES = {
    **{name: f"{name} must be a string." for name in _FORM_FIELDS},
    "content_type": "content_type must be the file's MIME type.",
    "size": "size must be the file's size in bytes.",
    "sha256": "sha256 must be 64 lowercase hex digits.",
    "upload_method": "upload_method must be post or put.",
    "complete": "complete must be explicit or auto.",
}


async def create_session(request: web.Request) -> web.Response:
    """POST /v1/uploads: check the declared file, reserve its slot, say where to send it."""
    principal = require_principal(request)
    # A session is one upload: spent when it opens, not again when it completes.
    await charge(request, principal, operation_budget(request, "uploads"))
    sessions = request.app[SESSIONS]
    form = request.app[UPLOADS].form.for_uploader(principal.spaces)
    sent = await json_body(request, shapes.UploadSessionRequest, _EXAMPLE, _MESSAGES)
    asked = _session_request(sent, form, request.headers.get("Idempotency-Key"))
    await charge(request, principal, kind_budget(asked.options.kind))
    session = await sessions.open(principal.sub, asked)
    media = session.media
    assert media.expires_at is not None, "a session has an expiry"
    expires_at = timestamp(media.expires_at)
    media_url = _url(request, paths.MEDIA_ITEM, media_id=media.id)
    rules = asked.options.kind.image
    body = shapes.UploadSession(
        id=media.id,
        status=media.status,
        expires_at=expires_at,
        upload=shapes.DirectUpload(
            method=session.upload.method,
            url=session.upload.url,
            # The URL is signed for the session's time left (`SessionFlow._target`).
            expires_at=expires_at,
            **({"fields": session.upload.fields} if session.upload.fields is not None else {}),
            **({"headers": session.upload.headers} if session.upload.headers is not None else {}),
        ),
        complete_url=_url(request, paths.UPLOAD_COMPLETE, media_id=media.id),
        complete="auto" if media.auto_complete else "explicit",
        media_url=media_url,
        variant_urls=planned_variant_urls(media, rules, request.app[SETTINGS]),
    )
    return answer(body, status=201 if session.created else 200, headers={"Location": media_url})


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
    sha256 = await request.app[SESSIONS].receive(media_id, body_chunks(request))
    # As S3 answers a PUT: uploaders (Uppy's S3 plugin) wait for an ETag, and CORS exposes
    # it. Quoted, opaque: the stored bytes' sha256 rather than S3's MD5.
    return web.Response(status=204, headers={"ETag": f'"{sha256}"'})


async def complete_session(request: web.Request) -> web.Response:
    """POST /v1/uploads/{id}/complete: make the media (202 with `Prefer: respond-async`)."""
    principal = require_principal(request)
    media_id = request.match_info["media_id"]
    if not is_media_id(media_id):
        raise NotFound("No such upload session.")
    wait = "respond-async" not in request.headers.get("Prefer", "").lower()
    expected: dict[str, str | None] = {}
    if request.can_read_body:
        sent = await json_body(request, shapes.SessionExpectations, _EXPECTED_EXAMPLE, {})
        expected = sent.model_dump(exclude_unset=True)
    kinds = request.app[KINDS]
    completed = await request.app[SESSIONS].complete(
        principal, media_id, wait=wait, expected=expected
    )
    return answer(
        media_view(
            completed.media,
            request.app[SETTINGS],
            full=True,
            sizes=srcset_sizes(kinds, completed.media.kind),
        ),
        status=_status(completed),
        headers={"Location": _url(request, paths.MEDIA_ITEM, media_id=media_id)},
    )


_EXPECTED_EXAMPLE = '{"space": "conversation:8f2c", "kind": "chat"} (optional)'


def _url(request: web.Request, path: paths.Path, **params: str) -> str:
    """`path` with `params`, from this app's router."""
    return str(request.app.router[path.name].url_for(**params))


def _status(completed: Completed) -> int:
    if not completed.done:
        return 202
    return 201 if completed.created else 200


def _session_request(
    asked: shapes.UploadSessionRequest, form: UploadForm, idempotency_key: str | None
) -> SessionRequest:
    """The session a valid body asks for, its form fields checked as the upload form's."""
    fields: dict[str, str] = {}
    for name in _FORM_FIELDS:
        value = getattr(asked, name)
        if value is None:
            continue
        form.check_field(name, value)
        fields[name] = value
    if asked.position is not None:
        fields["position"] = str(asked.position)
    return SessionRequest(
        options=form.options(fields, idempotency_key),
        mime=asked.content_type,
        size=asked.size,
        sha256=asked.sha256,
        method=asked.upload_method,
        complete=asked.complete,
    )
