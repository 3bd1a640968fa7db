"""RFC 9457 problem+json: the one place errors become responses."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from mediasvc.errors import MediaError, problem_body

CONTENT_TYPE = "application/problem+json"

# aiohttp's own refusals (no route, wrong method, oversized simple body), as stable codes.
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def problem_response(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """A problem+json response; `extra` members help the client act (`limit`, `actual`)."""
    return web.Response(
        status=status,
        text=json.dumps(problem_body(status, code, title, detail, extra)),
        content_type=CONTENT_TYPE,
        headers=headers,
    )


def from_error(error: MediaError) -> web.Response:
    """The problem response for one of our errors."""
    return problem_response(
        error.status,
        error.code,
        error.title,
        error.detail,
        extra=error.extra,
        headers=error.headers(),
    )


def code_for(status: int) -> str:
    """The stable code of aiohttp's own refusals."""
    return _HTTP_CODES.get(status, "http_error")


def from_http_exception(exc: web.HTTPException) -> web.Response:
    """The problem response for an aiohttp HTTP error (route not found, method not allowed)."""
    code = code_for(exc.status)
    headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
    return problem_response(exc.status, code, exc.reason, exc.reason, headers=headers)
