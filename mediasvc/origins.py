"""Web origins (`scheme://host[:port]`): what browsers send in `Origin`, what
`MEDIASVC_CORS_ORIGINS` lists, and what a `Referer` or a `success_redirect` URL is on.

Origins are compared in one spelling: scheme and host in lower case, the scheme's default
port left out (browsers never write `:443` in an `Origin` header).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

# A host name or a bracketed IPv6 address, and an optional port: nothing else, because
# configured origins are also written into nginx's config.
_ORIGIN = re.compile(
    r"(https?)://([a-z0-9](?:[a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\])(?::([0-9]{1,5}))?"
)
_DEFAULT_PORTS = {"http": "80", "https": "443"}

# The CORS policy for the allowed origins: what the app answers (`web.cors`) and what
# nginx's own refusals carry (`cors-headers.conf`, rendered by `stack.nginxconf`).
ALLOW_METHODS = ("GET", "POST", "PUT", "DELETE")
# The API's own headers, and the two that popular uploaders send by default (Dropzone's
# `Cache-Control: no-cache` and `X-Requested-With: XMLHttpRequest`): harmless to accept,
# and a preflight that refused them would stop those uploaders before the first byte.
ALLOW_HEADERS = (
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "Prefer",
    "Cache-Control",
    "X-Requested-With",
)
# ETag: an uploader reads it from a session's signed PUT, as from S3's (the bucket's CORS
# rule exposes it there); the RateLimit pair tells a browser app its user's budget.
EXPOSE_HEADERS = (
    "Location",
    "X-Request-Id",
    "Retry-After",
    "ETag",
    "RateLimit",
    "RateLimit-Policy",
)
# Browsers keep a preflight's answer this long (Chromium caps it at 2 h), so an app that
# uploads often pays the extra round trip once per ten minutes, not once per upload.
PREFLIGHT_MAX_AGE_S = 600


def parse_origin(text: str) -> str:
    """`text` as an origin in its one spelling; `ValueError` unless it is exactly one."""
    if "*" in text:
        raise ValueError("exact origins only: a wildcard cannot go with credentials")
    match = _ORIGIN.fullmatch(text.lower())
    if match is None:
        raise ValueError(f"{text!r} is not an origin like https://app.example.com[:port]")
    scheme, host, port = match.groups()
    return f"{scheme}://{host}" if port in (None, _DEFAULT_PORTS[scheme]) else match[0]


def origin_of(url: str) -> str | None:
    """The origin of an absolute http(s) URL, or None if `url` is not one (relative,
    another scheme, credentials in it, unparseable)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname:
        return None
    if parts.username is not None or parts.password is not None:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    try:
        return parse_origin(f"{parts.scheme}://{host}" + ("" if port is None else f":{port}"))
    except ValueError:
        return None
