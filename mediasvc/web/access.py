"""Who is calling: the bearer token of a request, verified."""

from __future__ import annotations

import structlog
from aiohttp import hdrs, web

from mediasvc.appkeys import VERIFIER
from mediasvc.auth import Principal
from mediasvc.errors import Unauthorized


def optional_principal(request: web.Request) -> Principal | None:
    """The caller if a bearer token was sent (it must then be valid), else None."""
    header = request.headers.get(hdrs.AUTHORIZATION)
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Send 'Authorization: Bearer <token>'.")
    principal = request.app[VERIFIER].verify(token.strip())
    structlog.contextvars.bind_contextvars(owner=principal.sub)
    return principal


def require_principal(request: web.Request) -> Principal:
    """The caller; `Unauthorized` without a valid bearer token."""
    principal = optional_principal(request)
    if principal is None:
        raise Unauthorized("This endpoint needs 'Authorization: Bearer <token>'.")
    return principal
