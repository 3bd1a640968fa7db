"""JSON request bodies: parsed once, with every way of being malformed a 400."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from mediasvc.errors import BadRequest


async def json_object(request: web.Request, example: str) -> dict[str, Any]:
    """The body as a JSON object; `BadRequest` showing `example` otherwise."""
    try:
        document = json.loads(await request.text())
    except (ValueError, RecursionError):
        # RecursionError: a body of thousands of nested brackets outruns the parser's stack.
        raise BadRequest(f"Send a JSON object: {example}.") from None
    if not isinstance(document, dict):
        raise BadRequest(f"Send a JSON object: {example}.")
    return document
