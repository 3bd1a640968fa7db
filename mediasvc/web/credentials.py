"""Where a request's token comes from, and the CSRF rule for the session cookie.

`Authorization: Bearer <token>` first; without that header, the cookie named by
`MEDIASVC_AUTH_COOKIE`. A browser attaches the cookie to requests that any page makes,
including a form on another site that posts to us, so a request that changes something
and is authenticated by the cookie alone must show where it comes from: its `Origin`
(or, without one, its `Referer`) must be one of `MEDIASVC_CORS_ORIGINS`, else `403`.
A bearer header needs no such check: no other origin's page can set one without CORS.

Two cookies of that name in one request are refused (`401 duplicate_cookie`) rather than
one of them chosen: a page on a sibling subdomain can set a second cookie of the same name
for the parent domain (cookie tossing), with a longer `Path` so that browsers send it
first, and the server cannot tell which of the two its own product set.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import hdrs, web

from mediasvc.appkeys import SETTINGS
from mediasvc.contract import codes
from mediasvc.errors import Forbidden, Unauthorized
from mediasvc.origins import origin_of

STATE_CHANGING = frozenset({hdrs.METH_POST, hdrs.METH_PUT, hdrs.METH_PATCH, hdrs.METH_DELETE})


@dataclass(frozen=True, slots=True)
class Credential:
    """The token a request carries and whether it came in the session cookie."""

    token: str
    from_cookie: bool


def request_credential(request: web.Request) -> Credential | None:
    """The request's token, or None if it sent none; `Unauthorized` for an Authorization
    header that is not a bearer token."""
    header = request.headers.get(hdrs.AUTHORIZATION)
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Send 'Authorization: Bearer <token>'.")
        return Credential(token.strip(), from_cookie=False)
    cookie = request.app[SETTINGS].auth_cookie
    if cookie is None:
        return None
    if _cookie_count(request, cookie) > 1:
        raise Unauthorized(
            f"The request has more than one {cookie!r} cookie; a page on another subdomain "
            "may have set one. Clear the cookies of this site and sign in again.",
            code=codes.DUPLICATE_COOKIE,
        )
    token = request.cookies.get(cookie, "")
    return Credential(token, from_cookie=True) if token else None


def _cookie_count(request: web.Request, name: str) -> int:
    """How many cookies named `name` the request sends, in all its Cookie headers
    (`request.cookies` keeps only the last)."""
    return sum(
        pair.partition("=")[0].strip() == name
        for header in request.headers.getall(hdrs.COOKIE, ())
        for pair in header.split(";")
        if "=" in pair
    )


def check_cookie_origin(request: web.Request) -> None:
    """CSRF: a cookie-authenticated request that changes state must come from a page on an
    allowed origin; `Forbidden` otherwise."""
    if request.method not in STATE_CHANGING:
        return
    origins = request.app[SETTINGS].cors_origins
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is None:
        referer = request.headers.get(hdrs.REFERER)
        origin = origin_of(referer) if referer is not None else None
    if origin is None:
        raise Forbidden(
            "A request authenticated by the session cookie must say where it comes from "
            "(Origin or Referer)."
        )
    if origin not in origins:
        raise Forbidden(
            f"A request authenticated by the session cookie may not come from {origin!r}; "
            "it is not one of the allowed origins."
        )
