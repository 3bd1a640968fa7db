"""JSON bodies: a request's parsed once and validated by its model (`contract.shapes`),
with every way of being malformed a 400 naming the member; an answer serialised from its
model."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from mediasvc.errors import BadRequest
from mediasvc.ingest import intact_body

Model = TypeVar("Model", bound=BaseModel)


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


async def json_body(
    request: web.Request, model: type[Model], example: str, messages: Mapping[str, str]
) -> Model:
    """The body as `model`; `BadRequest` naming the first member at fault (`field`), with
    its line from `messages`. An unknown member is named before a bad one."""
    document = await json_object(request, example)
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        errors = exc.errors()
        unknown = sorted(str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden")
        if unknown:
            raise BadRequest(f"Unknown member {unknown[0]!r}.", field=unknown[0]) from None
        member = str(errors[0]["loc"][0]) if errors[0]["loc"] else ""
        message = messages.get(member, f"{member} is not valid: {errors[0]['msg']}.")
        raise BadRequest(message, field=member) from None


def answer(
    shape: BaseModel, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A JSON answer of `shape` (members it leaves out stay out), UTF-8 as
    `web.json_response`'s."""
    return web.Response(
        text=shape.model_dump_json(),
        status=status,
        content_type="application/json",
        headers=headers,
    )
