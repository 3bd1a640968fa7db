"""The OpenAPI 3.1 document of the API, built here as data and served at `/v1/openapi.json`.

This module is the one place the HTTP contract is written down for machines: every route
of `web.routes`, what each takes and answers, the problem codes with their statuses, the
security schemes. What varies with the configuration is read from it (the kinds and
accepted types a form may name, the session cookie when `MEDIASVC_AUTH_COOKIE` is set);
everything else a schema repeats is taken from the module that decides it (the problem
codes from `contract.codes`, variant names, the id and collection patterns, the
processing report's words), so the two cannot disagree. The tests check it against the
code and the running app: every route is documented and every documented operation
routed, every code of the registry listed with its status (`test_openapi`); every
documented (operation, status) is answered, matching its schema
(`test_openapi_responses`), and no test sees an undocumented one
(`test_zz_answers_documented`); schemathesis finds no 5xx, undocumented status or schema
mismatch (`test_schemathesis`); generated TypeScript types compile a client
(`test_generated_client`).

Responses list the statuses an operation gives by design; `default` covers the rest,
which any operation may meet: `415 unsupported_content_encoding` (a request with a
`Content-Encoding`), `500 internal`, `503 busy` (database or storage unreachable),
`507 insufficient_storage`, and nginx's own `429` and `400 header_too_large`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from http import HTTPStatus
from importlib.metadata import version
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, models_json_schema

from mediasvc.appkeys import SETTINGS, UPLOADS
from mediasvc.config import Settings
from mediasvc.contract import codes, paths, shapes
from mediasvc.form import IDEMPOTENCY_KEY
from mediasvc.imaging.formats import LOADERS
from mediasvc.kinds import KindRules, default_kind, variant_names
from mediasvc.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from mediasvc.models import VISIBILITIES
from mediasvc.spaces import SPACE_ID
from mediasvc.web.page import ASSETS
from mediasvc.web.paging import DEFAULT_PAGE, MAX_PAGE

PATH = paths.OPENAPI.template
# The key of the moderation hook among the document's `webhooks`, beside the event types.
MODERATION_HOOK = "moderation"
# What the app may answer any operation with besides what the operation lists: its
# `default` response (nginx adds its own 429 and 400 header_too_large in front). 415:
# any request with a `Content-Encoding` (`unsupported_content_encoding`).
DEFAULT_STATUSES = frozenset({415, 500, 503, 507})
JSON = "application/json"
PROBLEM_JSON = "application/problem+json"


# The statuses that have a `ProblemNNN` schema and response narrowing them to their codes.
_PROBLEM_STATUSES = (400, 401, 403, 404, 409, 410, 413, 415, 422, 429, 500, 503)
# Statuses a problem comes with that tell the client when to try again.
_RETRY_AFTER_STATUSES = frozenset({429, 503})


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _enum(values: Iterable[str]) -> dict[str, Any]:
    return {"type": "string", "enum": list(values)}


def _problem_ref(status: int) -> dict[str, str]:
    return {"$ref": f"#/components/responses/Problem{status}"}


def _codes_with(status: int) -> list[str]:
    return [entry.code for entry in codes.with_status(status)]


_COLLECTION = {"type": "string", "pattern": f"^{shapes.COLLECTION_NAME.pattern}$"}
_SPACE = {"type": "string", "pattern": f"^{SPACE_ID.pattern}$"}
_HEADERS = {
    "Location": {
        "description": "Where the media (or the redirect's target) is.",
        "schema": {"type": "string"},
    },
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer", "minimum": 0},
    },
}
_LOCATION = {"Location": _HEADERS["Location"]}


class _Schemas(GenerateJsonSchema):
    """The models' JSON Schemas as components: no generated titles (the names say it)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


# The models whose schemas are components, with the mode they are used in: what the app
# sends (serialization) or what it takes (validation).
_RESPONSES: tuple[type[BaseModel], ...] = (
    shapes.Media,
    shapes.UploadedMedia,
    shapes.MediaPage,
    shapes.CollectionOrderResult,
    shapes.SpaceDeletion,
    shapes.UploadSession,
    shapes.Limits,
    shapes.Health,
    shapes.Readiness,
    shapes.Problem,
    shapes.BlocklistEntry,
    shapes.BlocklistPage,
    shapes.Takedown,
    *shapes.EVENTS.values(),
    shapes.ModerationRequest,
)
_REQUESTS: tuple[type[BaseModel], ...] = (
    shapes.ModerationDecision,
    shapes.ModerationAnswer,
    shapes.CollectionOrder,
    shapes.UploadSessionRequest,
    shapes.SessionExpectations,
    shapes.BlocklistRequest,
    shapes.TakedownRequest,
)


def _model_schemas() -> dict[str, Any]:
    """The components the models define, `$ref`s pointing into `components/schemas`."""
    _, top = models_json_schema(
        [(model, "serialization") for model in _RESPONSES]
        + [(model, "validation") for model in _REQUESTS],
        ref_template="#/components/schemas/{model}",
        schema_generator=_Schemas,
    )
    schemas: dict[str, Any] = top["$defs"]
    for schema in schemas.values():
        schema.pop("title", None)
    return schemas


def _schemas(kinds: Mapping[str, KindRules], default: str) -> dict[str, Any]:
    schemas = _model_schemas()
    # What the configuration decides: the kinds a request may name, the types accepted.
    kind = {**_enum(kinds), "description": f"Default {default}."}
    request = schemas["UploadSessionRequest"]["properties"]
    # The form fields are checked as the upload form's (`form.UploadForm.check_field`).
    request["kind"] = kind
    for name, field in (
        ("collection", _COLLECTION),
        ("visibility", _enum(VISIBILITIES)),
        ("space", _SPACE),
    ):
        request[name] = {"anyOf": [field, {"type": "null"}], "default": None}
    request["content_type"] = {**request["content_type"], "enum": sorted(LOADERS)}
    # A problem's `code` is one of the registry's.
    schemas["Problem"]["properties"]["code"] = _ref("ProblemCode")
    schemas.update(
        {
            "UploadForm": {
                "type": "object",
                "description": (
                    "Send the fields before `file`: the kind's limits then apply while the "
                    "bytes arrive, and `success_redirect` also covers refusals."
                ),
                "required": ["file"],
                "additionalProperties": False,
                "properties": {
                    "kind": kind,
                    "collection": _COLLECTION,
                    "visibility": {**_enum(VISIBILITIES), "description": "Default public."},
                    "space": {**_SPACE, "description": "Needs the space in the token; private."},
                    "position": {
                        "type": "string",
                        "pattern": "^[0-9]{1,6}$",
                        "description": "Where in its collection the new item goes (from 0; "
                        "the items from there on move one later); default: the end.",
                    },
                    "success_redirect": {
                        "type": "string",
                        "format": "uri",
                        "description": (
                            "An absolute URL on an allowed origin: the answer becomes 303 to "
                            "it with `media=<id>` or `error=<code>` (plain HTML forms)."
                        ),
                    },
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "contentMediaType": "application/octet-stream",
                        "description": f"The image: {', '.join(sorted(LOADERS))}.",
                    },
                },
            },
            "ProblemCode": {
                **_enum(codes.CODES),
                "description": "The stable code of a refusal:\n\n"
                + "\n".join(
                    f"- `{code}` ({entry.status or '4xx/5xx'}, {entry.by}): {entry.meaning}"
                    for code, entry in codes.CODES.items()
                ),
            },
        }
    )
    for status in _PROBLEM_STATUSES:
        schemas[f"Problem{status}"] = {
            "allOf": [
                _ref("Problem"),
                {
                    "type": "object",
                    "required": ["status", "code"],
                    "properties": {
                        "status": {"const": status},
                        "code": _enum(_codes_with(status)),
                    },
                },
            ],
        }
    return schemas


def _problem_example(status: int) -> dict[str, Any]:
    entry = codes.with_status(status)[0]
    return entry.body(entry.meaning)


def _responses() -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status in _PROBLEM_STATUSES:
        listed = ", ".join(f"`{code}`" for code in _codes_with(status))
        response: dict[str, Any] = {
            "description": f"{HTTPStatus(status).phrase}: {listed}.",
            "content": {
                PROBLEM_JSON: {
                    "schema": _ref(f"Problem{status}"),
                    "example": _problem_example(status),
                }
            },
        }
        if status in _RETRY_AFTER_STATUSES:
            response["headers"] = {"Retry-After": _HEADERS["Retry-After"]}
        if status == 401:
            response["headers"] = {
                "WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer."}
            }
        responses[f"Problem{status}"] = response
    responses["Problem"] = {
        "description": (
            "Any other problem: `415 unsupported_content_encoding` (any request with a "
            "`Content-Encoding`), `500 internal`, `503 busy` (database or storage "
            "unreachable; `Retry-After`), `507 insufficient_storage`, and nginx's own `429` "
            "and `400 header_too_large`."
        ),
        "content": {PROBLEM_JSON: {"schema": _ref("Problem")}},
    }
    return responses


def _json(schema: str, description: str, **extra: Any) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": _ref(schema)}}, **extra}


def _json_body(schema: str, *, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {JSON: {"schema": _ref(schema)}}}


def _op(
    operation_id: str,
    summary: str,
    tag: str,
    responses: dict[int, Any],
    *,
    problems: tuple[int, ...] = (),
    security: list[dict[str, list[str]]] | None = None,
    parameters: list[dict[str, Any]] | None = None,
    request_body: dict[str, Any] | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    operation: dict[str, Any] = {"operationId": operation_id, "summary": summary, "tags": [tag]}
    if description:
        operation["description"] = description
    if security is not None:
        operation["security"] = security
    if parameters:
        operation["parameters"] = parameters
    if request_body is not None:
        operation["requestBody"] = request_body
    operation["responses"] = {
        **{str(status): body for status, body in responses.items()},
        **{str(status): _problem_ref(status) for status in problems},
        "default": {"$ref": "#/components/responses/Problem"},
    }
    return operation


def _path_param(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": schema,
        "description": description,
    }


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema, "description": description}


# What a client does next with a media it made, its id taken from the answer.
_MEDIA_LINKS = {
    name: {"operationId": operation, "parameters": {"media_id": "$response.body#/id"}}
    for name, operation in (
        ("get", "getMedia"),
        ("variant", "getVariant"),
        ("delete", "deleteMedia"),
    )
}
_MEDIA_ID_PARAM = _path_param("media_id", _ref("MediaId"), "The media's id.")
_SESSION_ID_PARAM = _path_param("media_id", _ref("MediaId"), "The session's (media's) id.")
_OWNER_PARAM = _query("owner", {"type": "string"}, "Admins: act on this owner's media.")
_PAGE_PARAMS = [
    _query(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": DEFAULT_PAGE},
        "Page size.",
    ),
    _query("cursor", {"type": "string"}, "`next_cursor` of the previous page."),
]
_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "schema": {"type": "string", "pattern": f"^{IDEMPOTENCY_KEY.pattern}$"},
    "description": "A retry with the same key (same owner, file and options) answers 200 "
    "with the first media; keys expire after 24 h.",
}


def _paths(caller: list[dict[str, list[str]]], variant_names: list[str]) -> dict[str, Any]:
    anyone_or_caller: list[dict[str, list[str]]] = [{}, *caller]
    public: list[dict[str, list[str]]] = []
    media = _json("Media", "The media.")
    return {
        paths.MEDIA.template: {
            "post": _op(
                "createMedia",
                "Upload an image: stream, check, make its kind's variants, store them",
                "media",
                {
                    201: _json(
                        "UploadedMedia", "Stored and ready.", headers=_LOCATION, links=_MEDIA_LINKS
                    ),
                    200: _json("UploadedMedia", "A replayed `Idempotency-Key`.", headers=_LOCATION),
                    303: {
                        "description": "The form named `success_redirect`: back to that page "
                        "with `media=<id>`, or `error=<code>` for a refusal.",
                        "headers": _LOCATION,
                    },
                },
                problems=(400, 401, 403, 409, 413, 415, 422, 429, 500, 503),
                security=caller,
                parameters=[_IDEMPOTENCY_KEY],
                request_body={
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": _ref("UploadForm"),
                            "encoding": {"file": {"contentType": ", ".join(sorted(LOADERS))}},
                        }
                    },
                },
            ),
            "get": _op(
                "listMedia",
                "The caller's media (a collection in order, or newest first), or a space's",
                "media",
                {200: _json("MediaPage", "One page.")},
                problems=(400, 401, 403, 429),
                security=caller,
                parameters=[
                    _query("collection", _COLLECTION, "Only this collection, in its order."),
                    _query("space", _SPACE, "A space's ready media, for tokens listing it."),
                    *_PAGE_PARAMS,
                    _OWNER_PARAM,
                ],
            ),
        },
        paths.MEDIA_ITEM.template: {
            "get": _op(
                "getMedia",
                "One media: public for anyone, a space's for its members, private for the owner",
                "media",
                {200: media},
                problems=(401, 404, 429),
                security=anyone_or_caller,
                parameters=[_MEDIA_ID_PARAM],
            ),
            "delete": _op(
                "deleteMedia",
                "Delete a ready media: every variant file, then the row (owner or admin)",
                "media",
                {204: {"description": "Deleted."}},
                problems=(401, 403, 404, 409, 429),
                security=caller,
                parameters=[_MEDIA_ID_PARAM],
            ),
        },
        paths.VARIANT.template: {
            "get": _op(
                "getVariant",
                "Redirect to a variant's file (a short-lived signed URL for private media)",
                "media",
                {302: {"description": "To the file.", "headers": _LOCATION}},
                problems=(401, 404, 429),
                security=anyone_or_caller,
                parameters=[
                    _MEDIA_ID_PARAM,
                    _path_param("variant", _enum(variant_names), "Which size."),
                ],
            ),
        },
        paths.MEDIA_MODERATION.template: {
            "post": _op(
                "moderateMedia",
                "Decide on a quarantined media (admins): allow or deny",
                "moderation",
                {
                    200: _json("Media", "Allowed: ready, seen by everyone who may see it."),
                    204: {"description": "Denied: deleted."},
                },
                # Admins only, who have no per-user budgets: no 429.
                problems=(400, 401, 403, 404, 409),
                security=caller,
                parameters=[_MEDIA_ID_PARAM],
                request_body=_json_body("ModerationDecision"),
                description="`media.ready` or `media.deleted` follows. A media that is not "
                "`quarantined` is `409`.",
            ),
        },
        paths.MODERATION.template: {
            "get": _op(
                "listModeration",
                "The review queue (admins): quarantined media, oldest first",
                "moderation",
                {200: _json("MediaPage", "One page.")},
                problems=(400, 401, 403),
                security=caller,
                parameters=[
                    _query("status", _enum(["quarantined"]), "The queue; default quarantined."),
                    *_PAGE_PARAMS,
                ],
            ),
        },
        paths.TAKEDOWN.template: {
            "post": _op(
                "takeDownMedia",
                "Take a media down (admins): block its file and picture, delete it and its "
                "copies across owners and spaces",
                "blocklist",
                {200: _json("Takedown", "Blocked and removed.")},
                problems=(400, 401, 403, 404, 409),
                security=caller,
                parameters=[_MEDIA_ID_PARAM],
                request_body=_json_body("TakedownRequest"),
                description="The media's sha256 and (unless its picture is too flat, PDQ "
                "quality under 50) its PDQ hash join the blocklist with `reason`; then it and "
                "every ready media of the same file (with `similar`, of a picture within "
                "`MEDIASVC_BLOCKLIST_PDQ_DISTANCE`) are deleted, each with a `media.deleted` "
                'event carrying `"reason": "takedown"`. Only a ready media (else 409).',
            ),
        },
        paths.BLOCKLIST.template: {
            "post": _op(
                "addBlocklistEntry",
                "Block a file (sha256) or a picture (PDQ hash) from being uploaded (admins)",
                "blocklist",
                {
                    201: _json("BlocklistEntry", "Blocked.", headers=_LOCATION),
                    200: _json(
                        "BlocklistEntry", "Blocked already: the existing entry.", headers=_LOCATION
                    ),
                },
                problems=(400, 401, 403),
                security=caller,
                request_body=_json_body("BlocklistRequest"),
                description="Uploads of this file, or of a picture whose PDQ hash is within "
                "`MEDIASVC_BLOCKLIST_PDQ_DISTANCE` (default 31 of 256 bits) of this one, are "
                "then refused with `422 content_blocked`, on every upload path.",
            ),
            "get": _op(
                "listBlocklist",
                "The blocklist, oldest entry first (admins)",
                "blocklist",
                {200: _json("BlocklistPage", "One page.")},
                problems=(400, 401, 403),
                security=caller,
                parameters=[
                    *_PAGE_PARAMS,
                ],
            ),
        },
        paths.BLOCKLIST_ENTRY.template: {
            "delete": _op(
                "removeBlocklistEntry",
                "Unblock: remove an entry (admins)",
                "blocklist",
                {204: {"description": "Removed."}},
                problems=(401, 403, 404),
                security=caller,
                parameters=[
                    _path_param(
                        "entry_id",
                        {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
                        "The entry's id.",
                    )
                ],
            ),
        },
        paths.COLLECTION_ORDER.template: {
            "put": _op(
                "putCollectionOrder",
                "Reorder a collection: every ready item once (items not ready may be left out)",
                "collections",
                {200: _json("CollectionOrderResult", "The new order.")},
                problems=(400, 401, 403, 404, 409),
                security=caller,
                parameters=[
                    _path_param("collection", _COLLECTION, "The collection."),
                    _OWNER_PARAM,
                ],
                request_body=_json_body("CollectionOrder"),
            ),
        },
        paths.SPACE_MEDIA.template: {
            "delete": _op(
                "deleteSpaceMedia",
                "Empty a space: every media of it, whatever its status, removed in the background",
                "spaces",
                {202: _json("SpaceDeletion", "Accepted; any node finishes it.")},
                problems=(400, 401, 403, 429),
                security=caller,
                parameters=[_path_param("space", _SPACE, "The space.")],
                description="Admins, or a token whose manage claim (`MEDIASVC_JWT_MANAGE_CLAIM`, "
                "default `mediasvc_manage`) lists the space; listing it in the spaces claim is "
                "not enough. Media the space holds now go: ready ones (each with a "
                "`media.deleted` event), upload sessions, failed uploads, and uploads still "
                "processing once they end. Later uploads into the space are kept. Asking "
                "again while it runs also covers what was uploaded in between.",
            ),
        },
        paths.UPLOADS.template: {
            "post": _op(
                "createUploadSession",
                "Open an upload session: the bytes go straight to storage, then complete",
                "uploads",
                {
                    201: {
                        **_json("UploadSession", "Opened; send the bytes as `upload` says."),
                        "links": {
                            "complete": {
                                "operationId": "completeUploadSession",
                                "parameters": {"media_id": "$response.body#/id"},
                            }
                        },
                    },
                    200: _json("UploadSession", "A replayed `Idempotency-Key`."),
                },
                problems=(400, 401, 403, 409, 413, 415, 422, 429),
                security=caller,
                parameters=[_IDEMPOTENCY_KEY],
                request_body=_json_body("UploadSessionRequest"),
                description="The declared type and size are checked against the kind at once; "
                "the collection slot and quota are held until the session completes or expires.",
            ),
        },
        paths.UPLOAD_CONTENT.template: {
            "put": _op(
                "putUploadContent",
                "Local disk: the session's bytes, to the signed URL `upload.url` gave",
                "uploads",
                {
                    204: {
                        "description": "Received.",
                        "headers": {
                            "ETag": {
                                "description": "Quoted sha256 of the bytes stored (S3 answers "
                                "a PUT with an ETag too).",
                                "schema": {"type": "string"},
                            }
                        },
                    }
                },
                problems=(400, 403, 404, 409, 410, 413, 415, 422, 429),
                security=public,
                parameters=[
                    _SESSION_ID_PARAM,
                    {**_query("md5", {"type": "string"}, "Signature."), "required": True},
                    {**_query("expires", {"type": "string"}, "Unix time."), "required": True},
                ],
                request_body={
                    "required": True,
                    "content": {
                        "application/octet-stream": {
                            "schema": {"type": "string", "format": "binary"}
                        }
                    },
                },
                description="The URL is the credential: no token. Capped at the declared "
                "size, sniffed as a form's file is.",
            ),
        },
        paths.UPLOAD_COMPLETE.template: {
            "post": _op(
                "completeUploadSession",
                "Complete a session: read the bytes back, make the variants",
                "uploads",
                {
                    201: _json("Media", "Ready.", headers=_LOCATION, links=_MEDIA_LINKS),
                    200: _json("Media", "Completed before: ready, or failed.", headers=_LOCATION),
                    202: _json(
                        "Media",
                        "`Prefer: respond-async`: processing; poll `Location`.",
                        headers=_LOCATION,
                    ),
                },
                problems=(400, 401, 403, 404, 409, 410, 413, 415, 422, 429, 500, 503),
                security=caller,
                parameters=[
                    _SESSION_ID_PARAM,
                    {
                        "name": "Prefer",
                        "in": "header",
                        "schema": {"type": "string", "examples": ["respond-async"]},
                        "description": "`respond-async`: answer 202 at once.",
                    },
                ],
                request_body=_json_body("SessionExpectations", required=False),
                description="An optional body says what the caller knows the session is for "
                "(`space`, `kind`, `collection`); a session opened for anything else is "
                "`409 session_mismatch`, and nothing is done.",
            ),
        },
        paths.LIMITS.template: {
            "get": _op(
                "getLimits",
                "The limits in force, so clients can resize before sending",
                "limits",
                {200: _json("Limits", "The limits.")},
                problems=(415,),
                security=public,
            ),
        },
        paths.OPENAPI.template: {
            "get": _op(
                "getOpenApi",
                "This document",
                "meta",
                {200: {"description": "OpenAPI 3.1.", "content": {JSON: {"schema": {}}}}},
                problems=(415,),
                security=public,
            ),
        },
        paths.HEALTHZ.template: {
            "get": _op(
                "healthz",
                "Liveness (operators, on the node's own port; not through nginx)",
                "operators",
                {200: _json("Health", "The process answers.")},
                problems=(415,),
                security=public,
            ),
        },
        paths.READYZ.template: {
            "get": _op(
                "readyz",
                "Readiness: database, storage and image workers (not through nginx)",
                "operators",
                {
                    200: _json("Readiness", "All answer."),
                    503: _json(
                        "Readiness",
                        "One does not (named in `checks`).",
                        headers={"Retry-After": _HEADERS["Retry-After"]},
                    ),
                },
                problems=(415,),
                security=public,
            ),
        },
        paths.METRICS.template: {
            "get": _op(
                "metrics",
                "Prometheus metrics of this node (not through nginx)",
                "operators",
                {
                    200: {
                        "description": "Prometheus text format.",
                        "content": {
                            METRICS_CONTENT_TYPE.split(";")[0]: {"schema": {"type": "string"}}
                        },
                    }
                },
                problems=(415,),
                security=public,
            ),
        },
        paths.PAGE.template: {
            "get": _op(
                "uploadPage",
                "The upload page for browsers",
                "page",
                {
                    200: {
                        "description": "HTML.",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
                problems=(415,),
                security=public,
            ),
        },
        paths.STATIC.template: {
            "get": _op(
                "pageAsset",
                "The page's stylesheet and scripts (revalidated: `ETag`)",
                "page",
                {
                    200: {
                        "description": "The file.",
                        "content": {
                            mime.split(";")[0]: {"schema": {"type": "string"}}
                            for mime in sorted(set(ASSETS.values()))
                        },
                    },
                    304: {"description": "Not modified (`If-None-Match`)."},
                },
                problems=(404,),
                security=public,
                parameters=[_path_param("name", _enum(sorted(ASSETS)), "The file.")],
            ),
        },
    }


def _webhooks() -> dict[str, Any]:
    """One POST per event type, as every URL in `MEDIASVC_WEBHOOK_URL` receives it."""
    signed = [
        {
            "name": name,
            "in": "header",
            "required": True,
            "schema": {"type": "string"},
            "description": description,
        }
        for name, description in (
            ("webhook-id", "The event's id (`evt_...`): the same on every retry; dedupe on it."),
            ("webhook-timestamp", "This attempt's time, Unix seconds."),
            (
                "webhook-signature",
                "`v1,<base64 HMAC-SHA256>` with `MEDIASVC_WEBHOOK_SECRET` (Standard Webhooks).",
            ),
        )
    ]
    return {
        event_type: {
            "post": {
                "operationId": "on"
                + "".join(part.title() for part in event_type.replace(".", "_").split("_")),
                "summary": (model.__doc__ or "").split("\n")[0],
                "tags": ["events"],
                "security": [],
                "parameters": signed,
                "requestBody": _json_body(model.__name__),
                "responses": {
                    "2XX": {"description": "Delivered."},
                    "4XX": {
                        "description": "Not delivered (so is any other status, a redirect or "
                        "a timeout): retried with backoff for `MEDIASVC_WEBHOOK_RETRY_S`."
                    },
                },
            }
        }
        for event_type, model in shapes.EVENTS.items()
    } | {
        MODERATION_HOOK: {
            "post": {
                "operationId": "onModeration",
                "summary": "The moderation hook: may this upload be shown? (kinds with "
                '`moderation = "hook"`, to `MEDIASVC_MODERATION_URL`)',
                "description": "Signed as the events are, with `MEDIASVC_MODERATION_SECRET` "
                "(`webhook-id` starts `mod_`). Sent once, before the upload is shown; no "
                "retry: a timeout, another status or another body follows the kind's "
                "`moderation_fail`.",
                "tags": ["moderation"],
                "security": [],
                "parameters": signed,
                "requestBody": _json_body("ModerationRequest"),
                "responses": {
                    "2XX": _json(
                        "ModerationAnswer",
                        "The decision, within `MEDIASVC_MODERATION_TIMEOUT_S`.",
                    ),
                },
            }
        }
    }


def _security_schemes(settings: Settings) -> dict[str, Any]:
    schemes: dict[str, Any] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": (
                "`Authorization: Bearer <JWT>`: HS256 with `MEDIASVC_JWT_SECRET`, RS256 with "
                "a key file, or RS256/ES256 from the identity provider's JWKS. The subject "
                f"claim `{settings.jwt_subject_claim}` is the owner (a number is taken as "
                f"its decimal string), `exp` is required, `{settings.jwt_admin_claim}: true` "
                "may act on anyone's media, the spaces claim lists the spaces the caller "
                "may see."
            ),
        }
    }
    if settings.auth_cookie is not None:
        schemes["cookie"] = {
            "type": "apiKey",
            "in": "cookie",
            "name": settings.auth_cookie,
            "description": (
                "The same JWT in the session cookie, used when there is no `Authorization` "
                "header. A request it authenticates that changes state must carry an "
                "`Origin` (or `Referer`) on `MEDIASVC_CORS_ORIGINS`, else 403 (CSRF)."
            ),
        }
    return schemes


def build_document(settings: Settings, kinds: Mapping[str, KindRules]) -> dict[str, Any]:
    """The OpenAPI 3.1 document for an app with `settings` and the configured `kinds`."""
    schemes = _security_schemes(settings)
    caller: list[dict[str, list[str]]] = [{name: []} for name in schemes]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mediasvc",
            "version": version("mediasvc"),
            "summary": "Image uploads: stream, verify, resize, strip, store; nginx serves.",
            "description": (
                "All JSON; every refusal is `application/problem+json` (RFC 9457) with a "
                "stable `code` (`ProblemCode` lists them with their statuses). Variant "
                "files are served by nginx under `/media/`, not by this API. CORS "
                "preflights (`OPTIONS`) are answered for `MEDIASVC_CORS_ORIGINS`; every "
                "`GET` also answers `HEAD`."
            ),
        },
        "tags": [
            {"name": "media", "description": "Upload, read, list, delete."},
            {"name": "collections", "description": "An owner's ordered collections."},
            {"name": "spaces", "description": "Media shared with a group, emptied at once."},
            {"name": "uploads", "description": "Upload sessions: bytes straight to storage."},
            {
                "name": "blocklist",
                "description": "Admins: images refused on upload, and takedowns.",
            },
            {"name": "limits", "description": "What a client may send."},
            {"name": "operators", "description": "Health and metrics, on each node's port."},
            {"name": "page", "description": "The upload page for browsers."},
            {"name": "meta", "description": "This document."},
            {"name": "moderation", "description": "Quarantined media and admins' decisions."},
            {
                "name": "events",
                "description": "Webhooks: what mediasvc POSTs to `MEDIASVC_WEBHOOK_URL`.",
            },
        ],
        # Relative: the node (or nginx in front of it) that served this document.
        "servers": [{"url": "/", "description": "This service, where this document is."}],
        "security": caller,
        "paths": _paths(caller, variant_names(kinds)),
        "webhooks": _webhooks(),
        "components": {
            "schemas": _schemas(kinds, default_kind(settings)),
            "responses": _responses(),
            "securitySchemes": schemes,
        },
    }


async def get_document(request: web.Request) -> web.Response:
    """GET /v1/openapi.json: the OpenAPI 3.1 document of this node's API."""
    document = build_document(request.app[SETTINGS], request.app[UPLOADS].form.kinds)
    # Revalidated like the page's files: a deploy may change it.
    return web.json_response(document, headers={"Cache-Control": "no-cache"})
