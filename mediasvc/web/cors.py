"""CORS: browser apps on the origins in `MEDIASVC_CORS_ORIGINS` may call the API.

Exact origins only, with credentials (an `Authorization` header, the session cookie), so
the allowed origin is echoed back, never `*`. Every answer carries the headers, problems
included, so a script can read why it was refused; other origins get none, and the
browser keeps the answer from them. nginx adds the same headers to the refusals it
answers itself (413, 429, 503: `mediasvc/nginx/cors-headers.conf.template`).

A small middleware rather than aiohttp-cors: see docs/decisions.md. The policy's methods and
headers are in `mediasvc.origins`, which nginx's rendering reads too.
"""

from __future__ import annotations

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from multidict import CIMultiDict

from mediasvc.appkeys import SETTINGS
from mediasvc.errors import Forbidden
from mediasvc.origins import ALLOW_HEADERS, ALLOW_METHODS, EXPOSE_HEADERS, PREFLIGHT_MAX_AGE_S
from mediasvc.web import problems


@web.middleware
async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer preflights, and add the CORS headers to every answer for an allowed origin."""
    origins = request.app[SETTINGS].cors_origins
    if not origins:
        return await handler(request)
    origin = request.headers.get(hdrs.ORIGIN)
    allowed = origin if origin in origins else None
    is_preflight = hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers
    if request.method == hdrs.METH_OPTIONS and is_preflight:
        response: web.StreamResponse = preflight(origin, allowed)
    else:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            # Redirects raised by handlers pass the problem middleware as exceptions.
            add_headers(exc.headers, allowed)
            raise
    add_headers(response.headers, allowed)
    return response


def preflight(origin: str | None, allowed: str | None) -> web.Response:
    """The answer to a preflight: what an allowed origin may send, or a 403 problem."""
    if allowed is None:
        return problems.from_error(
            Forbidden(f"The origin {origin!r} may not call this API (MEDIASVC_CORS_ORIGINS).")
        )
    return web.Response(
        status=204,
        headers={
            hdrs.ACCESS_CONTROL_ALLOW_METHODS: ", ".join(ALLOW_METHODS),
            hdrs.ACCESS_CONTROL_ALLOW_HEADERS: ", ".join(ALLOW_HEADERS),
            hdrs.ACCESS_CONTROL_MAX_AGE: str(PREFLIGHT_MAX_AGE_S),
        },
    )


def add_headers(headers: CIMultiDict[str], allowed: str | None) -> None:
    """The CORS headers for an answer to `allowed` (None: an origin that gets none)."""
    # Caches must keep one answer per origin: the headers depend on it.
    vary = [v.strip() for v in headers.get(hdrs.VARY, "").split(",") if v.strip()]
    if not any(v.lower() == "origin" for v in vary):
        headers[hdrs.VARY] = ", ".join([*vary, "Origin"])
    if allowed is not None:
        headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = allowed
        headers[hdrs.ACCESS_CONTROL_ALLOW_CREDENTIALS] = "true"
        headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = ", ".join(EXPOSE_HEADERS)
