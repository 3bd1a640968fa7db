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
from typing import Any, get_args

from aiohttp import web

from mediasvc.appkeys import SETTINGS, UPLOADS
from mediasvc.config import Settings
from mediasvc.contract import codes, paths
from mediasvc.contract.codes import PROBLEM_TYPE_BASE
from mediasvc.form import COLLECTION_NAME, IDEMPOTENCY_KEY
from mediasvc.ids import ID_LENGTH
from mediasvc.imaging.formats import LOADERS
from mediasvc.imaging.job import Crop
from mediasvc.imaging.report import ColorConversion, Encoding, Removable
from mediasvc.imaging.variants import VARIANTS
from mediasvc.kinds import DEFAULT_KIND, KIND_KEYS, KindRules
from mediasvc.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from mediasvc.models import VISIBILITIES, Status
from mediasvc.spaces import SPACE_ID
from mediasvc.web.page import ASSETS
from mediasvc.web.paging import DEFAULT_PAGE, MAX_PAGE

PATH = paths.OPENAPI.template
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


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"oneOf": [schema, {"type": "null"}]}


def _problem_ref(status: int) -> dict[str, str]:
    return {"$ref": f"#/components/responses/Problem{status}"}


def _codes_with(status: int) -> list[str]:
    return [entry.code for entry in codes.with_status(status)]


_EXAMPLE_ID = "k3Jx9QmT2vLr8WcA5nYpZb"
_MEDIA_ID = {
    "type": "string",
    "pattern": f"^[A-Za-z0-9]{{{ID_LENGTH}}}$",
    "description": "128 random bits, base62.",
    "examples": ["k3Jx9QmT2vLr8WcA5nYpZb"],
}
_COLLECTION = {"type": "string", "pattern": f"^{COLLECTION_NAME.pattern}$"}
_SPACE = {"type": "string", "pattern": f"^{SPACE_ID.pattern}$"}
_TIMESTAMP = {"type": "string", "format": "date-time", "description": "UTC, ISO 8601, `Z`."}
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

_MEDIA_EXAMPLE: dict[str, Any] = {
    "id": "k3Jx9QmT2vLr8WcA5nYpZb",
    "owner": "alice",
    "kind": "post",
    "collection": None,
    "position": 0,
    "visibility": "public",
    "space": None,
    "status": "ready",
    "original": {
        "mime": "image/jpeg",
        "bytes": 477983,
        "width": 800,
        "height": 1280,
        "frames": 1,
        "sha256": "9f2c6e0b5a1d4c3e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e",
    },
    "variants": {
        spec.name: {
            "url": f"/media/k3/k3Jx9QmT2vLr8WcA5nYpZb/{spec.name}.webp",
            "width": spec.size * 5 // 8,
            "height": spec.size,
            "bytes": 30 * spec.size,
            "mime": "image/webp",
        }
        for spec in VARIANTS
    },
    "placeholder": {"thumbhash": "1QcSHQRnh493V4dIh4eXh1h4kJUI", "dominant_color": "#7a8c9e"},
    "created_at": "2026-11-21T12:00:00Z",
    "processing": {
        "rotated_from_orientation": 6,
        "color": "sRGB",
        "removed": ["exif", "gps"],
        "frames": 1,
    },
}


def _schemas(kinds: Mapping[str, KindRules]) -> dict[str, Any]:
    variant = {
        "type": "object",
        "required": ["url", "width", "height", "bytes", "mime"],
        "additionalProperties": False,
        "properties": {
            "url": {
                "type": "string",
                "description": "Plain for public media; signed and short-lived for private.",
            },
            "width": {"type": "integer"},
            "height": {"type": "integer"},
            "bytes": {"type": "integer"},
            "mime": {"type": "string"},
        },
    }
    kind_limits = {
        "type": "object",
        "additionalProperties": False,
        "required": sorted(KIND_KEYS),
        "properties": {
            "max_bytes": {"type": "integer"},
            "accept": {"type": "array", "items": {"type": "string"}},
            "min_width": {"type": "integer"},
            "min_height": {"type": "integer"},
            "max_width": _nullable({"type": "integer"}),
            "max_height": _nullable({"type": "integer"}),
            "max_pixels": {"type": "integer"},
            "max_frames": {"type": "integer"},
            "animated": {"type": "boolean", "description": "False: first frame only."},
            "crop": _enum(get_args(Crop)),
            "output": {"type": "string", "description": "The variants' MIME type."},
            "quality": {"type": "integer"},
            "collection_max": {"type": "integer"},
            "replace": {
                "type": "boolean",
                "description": "A full collection retires its oldest item instead of 409.",
            },
        },
    }
    problem_extras = {
        "field": {"type": "string", "description": "The field, parameter or member at fault."},
        "limit": {"type": "integer", "description": "The limit that was passed."},
        "actual": {"type": ["integer", "string"], "description": "What was sent instead."},
        "expected": {"type": ["integer", "string"]},
        "accepted": {"type": "array", "items": {"type": "string"}},
        "known": {"type": "array", "items": {"type": "string"}, "description": "Known kinds."},
        "quota": _enum(["media", "bytes"]),
        **{
            name: {"type": "integer"}
            for name in (
                "min_width",
                "min_height",
                "max_width",
                "max_height",
                "actual_width",
                "actual_height",
            )
        },
    }
    schemas: dict[str, Any] = {
        "MediaId": _MEDIA_ID,
        "Variant": variant,
        "Original": {
            "type": "object",
            "required": ["mime", "bytes", "width", "height", "frames"],
            "additionalProperties": False,
            "properties": {
                "mime": {"type": "string", "description": "As sniffed (a session: declared)."},
                "bytes": {"type": "integer"},
                "width": _nullable({"type": "integer"}),
                "height": _nullable({"type": "integer"}),
                "frames": _nullable({"type": "integer"}),
                "sha256": _nullable(
                    {
                        "type": "string",
                        "pattern": "^[0-9a-f]{64}$",
                        "description": "Owner and admins only.",
                    }
                ),
            },
        },
        "Placeholder": {
            "type": "object",
            "required": ["thumbhash", "dominant_color"],
            "additionalProperties": False,
            "properties": {
                "thumbhash": {"type": "string", "description": "ThumbHash, base64."},
                "dominant_color": {"type": "string", "pattern": "^#[0-9a-f]{6}$"},
            },
        },
        "ProcessingReport": {
            "type": "object",
            "description": "What processing did, e.g. that a GPS position was removed.",
            "required": ["rotated_from_orientation", "color", "removed", "frames"],
            "additionalProperties": False,
            "properties": {
                "rotated_from_orientation": _nullable(
                    {"type": "integer", "minimum": 2, "maximum": 8}
                ),
                "color": _enum(get_args(ColorConversion)),
                "removed": {"type": "array", "items": _enum(get_args(Removable))},
                "frames": {"type": "integer"},
                # Not in every stored report: rows written before these facts existed.
                "encoding": {
                    **_enum(get_args(Encoding)),
                    "description": "How the largest variant was compressed.",
                },
                "lossless_variants": {
                    "type": "array",
                    "items": _enum([spec.name for spec in VARIANTS]),
                    "description": "The variants stored pixel-exact (graphics, WebP output).",
                },
            },
        },
        "Media": {
            "type": "object",
            "description": (
                "One upload and its variants (smallest first). `original.sha256` and "
                "`processing` are for the owner and admins only; `owner` for them and a "
                "space's members, and for anyone only where `MEDIASVC_PUBLIC_OWNER` is set."
            ),
            "required": [
                "id",
                "kind",
                "collection",
                "position",
                "visibility",
                "space",
                "status",
                "original",
                "variants",
                "placeholder",
                "created_at",
            ],
            "additionalProperties": False,
            "properties": {
                "id": _ref("MediaId"),
                "owner": {
                    "type": "string",
                    "description": (
                        "The uploader's token `sub`. Absent for readers of a public media "
                        "other than its owner and admins, unless `MEDIASVC_PUBLIC_OWNER`."
                    ),
                },
                "kind": {"type": "string"},
                "collection": _nullable(_COLLECTION),
                "position": {"type": "integer", "description": "Order in the collection."},
                "visibility": _enum(VISIBILITIES),
                "space": _nullable(_SPACE),
                "status": _enum(get_args(Status)),
                "original": _ref("Original"),
                "variants": {
                    "type": "object",
                    "description": "Present once the media is ready.",
                    "additionalProperties": False,
                    "properties": {spec.name: _ref("Variant") for spec in VARIANTS},
                },
                "placeholder": _nullable(_ref("Placeholder")),
                "created_at": _TIMESTAMP,
                "processing": _nullable(_ref("ProcessingReport")),
                "expires_at": {**_TIMESTAMP, "description": "A pending session's expiry."},
                "problem": {
                    **_ref("Problem"),
                    "description": "Why an asynchronous completion failed.",
                },
                "replaced": {
                    "type": "array",
                    "items": _ref("MediaId"),
                    "description": "A replacing kind: the ids this upload retired.",
                },
            },
            "examples": [_MEDIA_EXAMPLE],
        },
        "MediaPage": {
            "type": "object",
            "required": ["items", "next_cursor"],
            "additionalProperties": False,
            "properties": {
                "items": {"type": "array", "items": _ref("Media")},
                "next_cursor": _nullable(
                    {"type": "string", "description": "Send back as `cursor` for the next page."}
                ),
            },
            "examples": [{"items": [_MEDIA_EXAMPLE], "next_cursor": None}],
        },
        "UploadForm": {
            "type": "object",
            "description": (
                "Send the fields before `file`: the kind's limits then apply while the "
                "bytes arrive, and `success_redirect` also covers refusals."
            ),
            "required": ["file"],
            "additionalProperties": False,
            "properties": {
                "kind": {**_enum(kinds), "description": f"Default {DEFAULT_KIND}."},
                "collection": _COLLECTION,
                "visibility": {**_enum(VISIBILITIES), "description": "Default public."},
                "space": {**_SPACE, "description": "Needs the space in the token; private."},
                "success_redirect": {
                    "type": "string",
                    "format": "uri",
                    "description": (
                        "An absolute URL on an allowed origin: the answer becomes 303 to it "
                        "with `media=<id>` or `error=<code>` (plain HTML forms)."
                    ),
                },
                "file": {
                    "type": "string",
                    "format": "binary",
                    "description": f"The image: {', '.join(sorted(LOADERS))}.",
                },
            },
        },
        "CollectionOrder": {
            "type": "object",
            "required": ["ids"],
            "additionalProperties": False,
            "properties": {"ids": {"type": "array", "items": _ref("MediaId")}},
            "examples": [{"ids": ["k3Jx9QmT2vLr8WcA5nYpZb", "Pq7Zr2Lm9XcV4bN8tY1wKs"]}],
        },
        "CollectionOrderResult": {
            "type": "object",
            "required": ["collection", "ids"],
            "additionalProperties": False,
            "properties": {
                "collection": _COLLECTION,
                "ids": {"type": "array", "items": _ref("MediaId")},
            },
            "examples": [
                {
                    "collection": "profile",
                    "ids": ["k3Jx9QmT2vLr8WcA5nYpZb", "Pq7Zr2Lm9XcV4bN8tY1wKs"],
                }
            ],
        },
        "UploadSessionRequest": {
            "type": "object",
            "required": ["content_type", "size"],
            "additionalProperties": False,
            "properties": {
                "kind": {**_enum(kinds), "description": f"Default {DEFAULT_KIND}."},
                "collection": _nullable(_COLLECTION),
                "visibility": _nullable(_enum(VISIBILITIES)),
                "space": _nullable(_SPACE),
                "content_type": _enum(sorted(LOADERS)),
                "size": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
                "sha256": _nullable({"type": "string", "pattern": "^[0-9a-f]{64}$"}),
                "upload_method": {
                    **_enum(["post", "put"]),
                    "description": "S3: a presigned POST (the default) or PUT.",
                },
            },
            "examples": [{"kind": "avatar", "content_type": "image/jpeg", "size": 123456}],
        },
        "DirectUpload": {
            "type": "object",
            "description": (
                "How to send the bytes: S3, a presigned POST (`fields` first, the file last) "
                "or PUT (with `headers`); local disk, a PUT to a signed URL of this service."
            ),
            "required": ["method", "url"],
            "additionalProperties": False,
            "properties": {
                "method": _enum(["POST", "PUT"]),
                "url": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": {"type": "string"}},
                "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "UploadSession": {
            "type": "object",
            "required": ["id", "status", "expires_at", "upload", "complete_url"],
            "additionalProperties": False,
            "properties": {
                "id": _ref("MediaId"),
                "status": _enum(get_args(Status)),
                "expires_at": _nullable(_TIMESTAMP),
                "upload": _ref("DirectUpload"),
                "complete_url": {"type": "string"},
            },
            "examples": [
                {
                    "id": "k3Jx9QmT2vLr8WcA5nYpZb",
                    "status": "pending",
                    "expires_at": "2026-11-21T12:15:00Z",
                    "upload": {
                        "method": "PUT",
                        "url": paths.UPLOAD_CONTENT.format(media_id=_EXAMPLE_ID)
                        + "?md5=...&expires=...",
                        "headers": {"Content-Type": "image/jpeg"},
                    },
                    "complete_url": paths.UPLOAD_COMPLETE.format(media_id=_EXAMPLE_ID),
                }
            ],
        },
        "KindLimits": kind_limits,
        "Limits": {
            "type": "object",
            "additionalProperties": False,
            "required": [
                "max_upload_bytes",
                "max_pixels",
                "max_frames",
                "max_animation_pixels",
                "accepted_types",
                "kinds",
                "variants",
                "output",
                "collection_max",
                "owner_max_media",
                "owner_max_bytes",
                "owner_max_inflight",
                "signed_url_ttl_s",
            ],
            "properties": {
                "max_upload_bytes": {"type": "integer"},
                "max_pixels": {"type": "integer"},
                "max_frames": {"type": "integer"},
                "max_animation_pixels": {"type": "integer"},
                "accepted_types": {"type": "array", "items": {"type": "string"}},
                "kinds": {"type": "object", "additionalProperties": _ref("KindLimits")},
                "variants": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "size"],
                        "additionalProperties": False,
                        "properties": {
                            "name": _enum([spec.name for spec in VARIANTS]),
                            "size": {"type": "integer"},
                        },
                    },
                },
                "output": {
                    "type": "object",
                    "required": ["mime", "animated", "alpha"],
                    "additionalProperties": False,
                    "properties": {
                        "mime": {"type": "string"},
                        "animated": {"type": "boolean"},
                        "alpha": {"type": "boolean"},
                    },
                },
                "collection_max": {"type": "integer"},
                "owner_max_media": _nullable({"type": "integer"}),
                "owner_max_bytes": _nullable({"type": "integer"}),
                "owner_max_inflight": {"type": "integer"},
                "signed_url_ttl_s": {"type": "integer"},
            },
        },
        "Health": {
            "type": "object",
            "required": ["status"],
            "additionalProperties": False,
            "properties": {"status": {"const": "ok"}},
        },
        "Readiness": {
            "type": "object",
            "required": ["status", "checks"],
            "additionalProperties": False,
            "properties": {
                "status": _enum(["ready", "unavailable"]),
                "checks": {
                    "type": "object",
                    "required": ["database", "storage", "workers"],
                    "additionalProperties": False,
                    "properties": {
                        name: _enum(["ok", "unavailable"])
                        for name in ("database", "storage", "workers")
                    },
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
        "Problem": {
            "type": "object",
            "description": (
                "RFC 9457 problem details, `application/problem+json`; members beyond the "
                "five standard ones help the client act."
            ),
            "required": ["type", "title", "status", "detail", "code"],
            "properties": {
                "type": {"type": "string", "description": f"`{PROBLEM_TYPE_BASE}<code>`"},
                "title": {"type": "string"},
                "status": {"type": "integer", "minimum": 400, "maximum": 599},
                "detail": {"type": "string"},
                "code": _ref("ProblemCode"),
                **problem_extras,
            },
            "additionalProperties": True,
        },
    }
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
_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "schema": {"type": "string", "pattern": f"^{IDEMPOTENCY_KEY.pattern}$"},
    "description": "A retry with the same key (same owner, file and options) answers 200 "
    "with the first media; keys expire after 24 h.",
}


def _paths(caller: list[dict[str, list[str]]]) -> dict[str, Any]:
    anyone_or_caller: list[dict[str, list[str]]] = [{}, *caller]
    public: list[dict[str, list[str]]] = []
    media = _json("Media", "The media.")
    return {
        paths.MEDIA.template: {
            "post": _op(
                "createMedia",
                "Upload an image: stream, check, make the five variants, store them",
                "media",
                {
                    201: {
                        **_json("Media", "Stored and ready."),
                        "headers": _LOCATION,
                        "links": _MEDIA_LINKS,
                    },
                    200: {**_json("Media", "A replayed `Idempotency-Key`."), "headers": _LOCATION},
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
                problems=(400, 401, 403),
                security=caller,
                parameters=[
                    _query("collection", _COLLECTION, "Only this collection, in its order."),
                    _query("space", _SPACE, "A space's ready media, for tokens listing it."),
                    _query(
                        "limit",
                        {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_PAGE,
                            "default": DEFAULT_PAGE,
                        },
                        "Page size.",
                    ),
                    _query("cursor", {"type": "string"}, "`next_cursor` of the previous page."),
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
                problems=(401, 404),
                security=anyone_or_caller,
                parameters=[_MEDIA_ID_PARAM],
            ),
            "delete": _op(
                "deleteMedia",
                "Delete a ready media: every variant file, then the row (owner or admin)",
                "media",
                {204: {"description": "Deleted."}},
                problems=(401, 403, 404, 409),
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
                problems=(401, 404),
                security=anyone_or_caller,
                parameters=[
                    _MEDIA_ID_PARAM,
                    _path_param("variant", _enum([spec.name for spec in VARIANTS]), "Which size."),
                ],
            ),
        },
        paths.COLLECTION_ORDER.template: {
            "put": _op(
                "putCollectionOrder",
                "Reorder a collection: exactly a permutation of its ids",
                "collections",
                {200: _json("CollectionOrderResult", "The new order.")},
                problems=(400, 401, 403, 404, 409),
                security=caller,
                parameters=[
                    _path_param("collection", _COLLECTION, "The collection."),
                    _OWNER_PARAM,
                ],
                request_body={
                    "required": True,
                    "content": {JSON: {"schema": _ref("CollectionOrder")}},
                },
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
                problems=(400, 401, 403, 409, 413, 415, 422),
                security=caller,
                parameters=[_IDEMPOTENCY_KEY],
                request_body={
                    "required": True,
                    "content": {JSON: {"schema": _ref("UploadSessionRequest")}},
                },
                description="The declared type and size are checked against the kind at once; "
                "the collection slot and quota are held until the session completes or expires.",
            ),
        },
        paths.UPLOAD_CONTENT.template: {
            "put": _op(
                "putUploadContent",
                "Local disk: the session's bytes, to the signed URL `upload.url` gave",
                "uploads",
                {204: {"description": "Received."}},
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
                    201: {**_json("Media", "Ready."), "headers": _LOCATION, "links": _MEDIA_LINKS},
                    200: {
                        **_json("Media", "Completed before: ready, or failed."),
                        "headers": _LOCATION,
                    },
                    202: {
                        **_json("Media", "`Prefer: respond-async`: processing; poll `Location`."),
                        "headers": _LOCATION,
                    },
                },
                problems=(401, 403, 404, 409, 410, 413, 415, 422, 429, 500, 503),
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
            ),
        },
        paths.LIMITS.template: {
            "get": _op(
                "getLimits",
                "The limits in force, so clients can resize before sending",
                "limits",
                {200: _json("Limits", "The limits.")},
                security=public,
            ),
        },
        paths.OPENAPI.template: {
            "get": _op(
                "getOpenApi",
                "This document",
                "meta",
                {200: {"description": "OpenAPI 3.1.", "content": {JSON: {"schema": {}}}}},
                security=public,
            ),
        },
        paths.HEALTHZ.template: {
            "get": _op(
                "healthz",
                "Liveness (operators, on the node's own port; not through nginx)",
                "operators",
                {200: _json("Health", "The process answers.")},
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


def _security_schemes(settings: Settings) -> dict[str, Any]:
    schemes: dict[str, Any] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": (
                "`Authorization: Bearer <JWT>`: HS256 with `MEDIASVC_JWT_SECRET`, RS256 with "
                "a key file, or RS256/ES256 from the identity provider's JWKS. `sub` is the "
                "owner, `exp` is required, `role: admin` may act on anyone's media, the "
                "spaces claim lists the spaces the caller may see."
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
            {"name": "uploads", "description": "Upload sessions: bytes straight to storage."},
            {"name": "limits", "description": "What a client may send."},
            {"name": "operators", "description": "Health and metrics, on each node's port."},
            {"name": "page", "description": "The upload page for browsers."},
            {"name": "meta", "description": "This document."},
        ],
        "security": caller,
        "paths": _paths(caller),
        "components": {
            "schemas": _schemas(kinds),
            "responses": _responses(),
            "securitySchemes": schemes,
        },
    }


async def get_document(request: web.Request) -> web.Response:
    """GET /v1/openapi.json: the OpenAPI 3.1 document of this node's API."""
    document = build_document(request.app[SETTINGS], request.app[UPLOADS].form.kinds)
    # Revalidated like the page's files: a deploy may change it.
    return web.json_response(document, headers={"Cache-Control": "no-cache"})
