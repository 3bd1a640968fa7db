"""The upload form's text fields: their names, what each may hold, the options they make.

`ingest` calls `UploadForm.check` on each field as it arrives, so a bad `kind` or
`collection` sent before the file is refused before a byte of the file is spooled.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mediasvc.errors import BadRequest
from mediasvc.kinds import DEFAULT_KIND, KINDS
from mediasvc.models import VISIBILITIES, Visibility

FIELD_NAMES = frozenset({"kind", "collection", "visibility"})
COLLECTION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,128}")


@dataclass(frozen=True, slots=True)
class UploadOptions:
    """What the client asked for besides the file."""

    kind: str
    collection: str | None
    visibility: Visibility
    idempotency_key: str | None


def is_collection_name(name: str) -> bool:
    """Whether `name` may name a collection (in a form field or a URL)."""
    return COLLECTION_NAME.fullmatch(name) is not None


def check_field(name: str, value: str) -> None:
    """Refuse a field value that no upload could use; `BadRequest` names the field."""
    if name == "kind" and value not in KINDS:
        raise BadRequest(f"kind must be one of {', '.join(KINDS)}.", field="kind")
    if name == "visibility" and value not in VISIBILITIES:
        raise BadRequest(
            f"visibility must be one of {', '.join(VISIBILITIES)}.", field="visibility"
        )
    if name == "collection" and value and not is_collection_name(value):
        raise BadRequest(
            "collection must be 1-64 letters, digits, '_', '.' or '-'.", field="collection"
        )


def upload_options(fields: dict[str, str], idempotency_key: str | None) -> UploadOptions:
    """The options of an upload whose fields `check_field` has passed."""
    if idempotency_key is not None and not IDEMPOTENCY_KEY.fullmatch(idempotency_key):
        raise BadRequest(
            "Idempotency-Key must be 1-128 visible ASCII characters.", field="Idempotency-Key"
        )
    visibility: Visibility = "private" if fields.get("visibility") == "private" else "public"
    return UploadOptions(
        kind=fields.get("kind", DEFAULT_KIND),
        collection=fields.get("collection") or None,
        visibility=visibility,
        idempotency_key=idempotency_key,
    )
