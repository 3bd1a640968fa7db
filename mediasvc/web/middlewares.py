"""Request middlewares: one canonical log line per request, errors as problems (or, for a
plain form that named a page, as a redirect to it), encoded request bodies refused before
any handler reads them, and the identity provider's keys fetched before a handler needs
them. CORS is in `web.cors`."""

from __future__ import annotations

import asyncio
import secrets
import time

import structlog
from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from mediasvc.appkeys import METRICS, VERIFIER
from mediasvc.contract import codes
from mediasvc.errors import MediaError, Unauthorized, UnsupportedMediaType
from mediasvc.web import problems, redirects
from mediasvc.web.credentials import request_credential

log = structlog.get_logger("mediasvc.request")
_MAX_REQUEST_ID = 64


@web.middleware
async def request_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind a request id (nginx's, or a fresh one) and log one line when the request ends."""
    request_id = request.headers.get("X-Request-Id", "")[:_MAX_REQUEST_ID] or secrets.token_hex(8)
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        response.headers["X-Request-Id"] = request_id
        return response
    except asyncio.CancelledError:
        status = 499  # nginx's "client closed request": the client left mid-request
        raise
    finally:
        route = _route_of(request)
        metrics = request.app[METRICS]
        metrics.requests.labels(route, request.method, str(status)).inc()
        metrics.request_seconds.labels(route).observe(time.perf_counter() - started)
        log.info(
            "request.finished",
            method=request.method,
            path=request.path,
            status=status,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
            bytes_in=request.content_length,
        )


def _route_of(request: web.Request) -> str:
    # The route template, not the path: ids must not explode the metrics' label space.
    info = request.match_info.route.resource
    return info.canonical if info is not None else "unmatched"


@web.middleware
async def problem_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render every error as problem+json; an unexpected one is logged, never shown."""
    try:
        return await handler(request)
    except MediaError as exc:
        structlog.contextvars.bind_contextvars(code=exc.code)
        return redirects.refusal(request, exc.code) or problems.from_error(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = problems.from_http_exception(exc)
        structlog.contextvars.bind_contextvars(code=problems.code_for(exc.status).code)
        return response
    except Exception:
        log.exception("request.failed")
        return redirects.refusal(request, codes.INTERNAL.code) or problems.problem_response(
            codes.INTERNAL.body("Something went wrong on our side.")
        )


@web.middleware
async def unencoded_bodies(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a request whose body is encoded (`Content-Encoding`, any value, in any of its
    headers) with 415 before anything reads the body.

    nginx refuses these too; this holds for a client that reaches a node directly. The app
    is built not to inflate bodies at all (`auto_decompress=False` in `app`): a few KB of
    gzip inflate to megabytes that the multipart parser then reads line by line.
    """
    encodings = [v.strip() for v in request.headers.getall(hdrs.CONTENT_ENCODING, ()) if v.strip()]
    if encodings:
        raise UnsupportedMediaType(
            "Request bodies are not accepted with a Content-Encoding; send them unencoded.",
            code=codes.UNSUPPORTED_CONTENT_ENCODING,
            actual=", ".join(encodings)[:64],
        )
    return await handler(request)


@web.middleware
async def provider_keys(request: web.Request, handler: Handler) -> web.StreamResponse:
    """If the request's token names an identity provider key not yet known, fetch the
    provider's keys first (rate-limited), so verifying the token never waits on the network."""
    try:
        credential = request_credential(request)
    except Unauthorized:
        credential = None  # not a token at all: the handler refuses it if it needs a caller
    if credential is not None:
        await request.app[VERIFIER].fetch_key(credential.token)
    return await handler(request)
