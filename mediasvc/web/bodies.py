"""JSON request bodies: parsed once, with every way of being malformed a 400."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from mediasvc.errors import BadRequest
from mediasvc.ingest import intact_body


async def json_object(request: web.Request, example: str) -> dict[str, Any]:
    """The body as a JSON object; `BadRequest` showing `example` otherwise."""
    with intact_body():
        body = await request.read()
    try:
        # Bytes, not `request.text()`: JSON is UTF-8 (RFC 8259), whatever charset the
        # Content-Type names (an unknown one made `text()` raise LookupError).
        document = json.loads(body)
    except (ValueError, RecursionError):
        # RecursionError: a body of thousands of nested brackets outruns the parser's stack.
        raise BadRequest(f"Send a JSON object: {example}.") from None
    if not isinstance(document, dict):
        raise BadRequest(f"Send a JSON object: {example}.")
    return document
