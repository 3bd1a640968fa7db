"""RFC 9457 problem+json: the one place errors become responses."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from mediasvc.contract import codes
from mediasvc.contract.codes import Code
from mediasvc.errors import MediaError, problem_of

CONTENT_TYPE = "application/problem+json"


def problem_response(
    body: dict[str, Any], *, headers: dict[str, str] | None = None
) -> web.Response:
    """A problem+json response of `body` (`Code.body`), with its status."""
    return web.Response(
        status=body["status"],
        text=json.dumps(body),
        content_type=CONTENT_TYPE,
        headers=headers,
    )


def from_error(error: MediaError) -> web.Response:
    """The problem response for one of our errors."""
    return problem_response(problem_of(error), headers=error.headers())


def code_for(status: int) -> Code:
    """The stable code of aiohttp's own refusals."""
    return codes.HTTP_CODES.get(status, codes.HTTP_ERROR)


def from_http_exception(exc: web.HTTPException) -> web.Response:
    """The problem response for an aiohttp HTTP error (route not found, method not allowed)."""
    code = code_for(exc.status)
    headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
    # `http_error` stands for any status: its title is aiohttp's reason phrase.
    title = exc.reason if code.status is None else None
    body = code.body(exc.reason, status=exc.status, title=title)
    return problem_response(body, headers=headers)
