"""The OpenAPI document as a test reads it: its operations, the statuses each documents,
and whether an answer matches the schema documented for its status."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jsonschema
from aiohttp import ClientResponse

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")

Operation = tuple[str, str]  # (METHOD, path template)


@dataclass(frozen=True)
class Contract:
    """One OpenAPI document."""

    document: dict[str, Any]

    def operations(self) -> dict[Operation, dict[str, Any]]:
        """Every operation, by (METHOD, path template)."""
        return {
            (method.upper(), path): operation
            for path, item in self.document["paths"].items()
            for method, operation in item.items()
            if method in METHODS
        }

    def statuses(self, operation: Operation) -> set[int]:
        """The statuses `operation` documents (not its `default`)."""
        responses = self.operations()[operation]["responses"]
        return {int(status) for status in responses if status != "default"}

    def documented(self) -> set[tuple[str, str, int]]:
        """Every documented (METHOD, path template, status)."""
        return {(*op, status) for op in self.operations() for status in self.statuses(op)}

    def response(self, operation: Operation, status: int) -> dict[str, Any]:
        """The response object documented for `status` (or `default`), references followed."""
        responses = self.operations()[operation]["responses"]
        found: dict[str, Any] = responses.get(str(status), responses["default"])
        if "$ref" in found:
            found = self.resolve(found["$ref"])
        return found

    def resolve(self, ref: str) -> Any:
        """The part of the document a local `$ref` names."""
        node: Any = self.document
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        return node

    def validate(self, schema: dict[str, Any], instance: Any) -> None:
        """`jsonschema.ValidationError` unless `instance` matches `schema` (whose `$ref`s
        point into this document)."""
        rooted = {**schema, "components": self.document["components"]}
        jsonschema.Draft202012Validator(
            rooted, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
        ).validate(instance)

    async def check(self, operation: Operation, response: ClientResponse, status: int) -> Any:
        """Assert `response` has `status`, a documented content type and a body matching
        its schema; the decoded body (None without one)."""
        text = await response.text()
        assert response.status == status, f"{operation}: {response.status} {text[:500]}"
        documented = self.response(operation, status)
        content = documented.get("content")
        if not content:
            assert not text, f"{operation} {status}: no body is documented, got {text[:200]}"
            return None
        media_type = response.content_type
        assert media_type in content, f"{operation} {status}: {media_type} not in {list(content)}"
        if not media_type.endswith("json"):
            return text
        body = await response.json(content_type=None)
        self.validate(content[media_type]["schema"], body)
        return body
