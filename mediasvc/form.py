"""The upload form's text fields: their names, what each may hold, the options they make.

`ingest` calls `UploadForm.check_field` on each field as it arrives, so a bad `kind` or
`collection`, or a `space` the uploader's token does not list, sent before the file is
refused before a byte of the file is spooled, and
asks `file_rules` for the byte cap and types that apply to the file part: the kind's
when `kind` came first, the global ones otherwise (checked again when the form ends).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from mediasvc.contract.shapes import COLLECTION_NAME
from mediasvc.errors import BadRequest, Forbidden
from mediasvc.kinds import DEFAULT_KIND, KindRules
from mediasvc.models import VISIBILITIES, Visibility
from mediasvc.origins import origin_of
from mediasvc.spaces import SPACE_ID_RULE, is_space_id

# `success_redirect` makes the answer a 303 to that page (plain HTML forms: web.redirects).
FIELD_NAMES = frozenset(
    {"kind", "collection", "visibility", "space", "position", "success_redirect"}
)
# The highest `position` an upload may ask for (a collection holds far fewer).
MAX_POSITION = 100_000
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,128}")


@dataclass(frozen=True, slots=True)
class UploadOptions:
    """What the client asked for besides the file, with its kind's rules."""

    kind: KindRules
    collection: str | None
    visibility: Visibility
    idempotency_key: str | None
    space: str | None
    # Where in its collection the new item goes (dense, from 0); None: at the end.
    position: int | None = None


@dataclass(frozen=True, slots=True)
class FileRules:
    """What the file part may be: at most `max_bytes`, one of `accept` (sniffed types)."""

    max_bytes: int
    accept: frozenset[str]
    # Whose rules these are, for the refusal's words: a kind's name, or None (global).
    kind: str | None


def check_collection_name(name: str) -> None:
    """Refuse a collection name (a form field or a query parameter) with `BadRequest`."""
    if not is_collection_name(name):
        raise BadRequest(
            "collection must be 1-64 letters, digits, '_', '.' or '-'.", field="collection"
        )


def is_collection_name(name: str) -> bool:
    """Whether `name` may name a collection (in a form field or a URL)."""
    return COLLECTION_NAME.fullmatch(name) is not None


@dataclass(frozen=True, slots=True)
class UploadForm:
    """The form's rules under the configured kinds; made once for the app, and narrowed
    to one uploader's spaces with `for_uploader`."""

    kinds: Mapping[str, KindRules]
    # The kind of an upload that names none (the kinds file's `default`).
    default_kind: str = DEFAULT_KIND
    # The spaces the uploader's token lists: the only ones a `space` field may name.
    uploader_spaces: frozenset[str] = frozenset()
    # The origins a `success_redirect` may point to (MEDIASVC_CORS_ORIGINS).
    redirect_origins: frozenset[str] = frozenset()

    def for_uploader(self, spaces: frozenset[str]) -> UploadForm:
        """These rules for an uploader whose token lists `spaces`."""
        return replace(self, uploader_spaces=spaces)

    def check_field(self, name: str, value: str) -> None:
        """Refuse a field value that no upload could use (`BadRequest`), or this uploader
        may not (`Forbidden`: a space their token does not list); both name the field."""
        if name == "kind" and value not in self.kinds:
            raise BadRequest(
                f"kind must be one of {', '.join(self.kinds)}.",
                field="kind",
                known=list(self.kinds),
            )
        if name == "visibility" and value not in VISIBILITIES:
            raise BadRequest(
                f"visibility must be one of {', '.join(VISIBILITIES)}.", field="visibility"
            )
        if name == "collection" and value:
            check_collection_name(value)
        if name == "position" and not (value.isdigit() and int(value) <= MAX_POSITION):
            raise BadRequest(
                f"position must be a whole number from 0 to {MAX_POSITION}.", field="position"
            )
        if name == "space" and value:
            if not is_space_id(value):
                raise BadRequest(f"space: {SPACE_ID_RULE}.", field="space")
            if value not in self.uploader_spaces:
                raise Forbidden(
                    f"Your token does not list the space {value!r}; only its members may "
                    "upload into it.",
                    field="space",
                )
        if name == "success_redirect" and origin_of(value) not in self.redirect_origins:
            raise BadRequest(
                "success_redirect must be an absolute URL on one of the allowed origins "
                f"({', '.join(sorted(self.redirect_origins)) or 'none are configured'}).",
                field="success_redirect",
            )

    def file_rules(self, fields: Mapping[str, str], *, final: bool) -> FileRules:
        """The cap and types for the file, from the fields read so far.

        Before the form ends (`final` False) an absent kind means "not sent yet", so the
        widest rules apply; once it ends, an absent kind is the default kind.
        """
        name = fields.get("kind", self.default_kind if final else None)
        if name is None:
            widest = self.kinds.values()
            return FileRules(
                max_bytes=max(kind.max_bytes for kind in widest),
                accept=frozenset().union(*(kind.accept for kind in widest)),
                kind=None,
            )
        kind = self.kinds[name]
        return FileRules(kind.max_bytes, kind.accept, kind.name)

    def options(self, fields: Mapping[str, str], idempotency_key: str | None) -> UploadOptions:
        """The options of an upload whose fields `check_field` has passed."""
        if idempotency_key is not None and not IDEMPOTENCY_KEY.fullmatch(idempotency_key):
            raise BadRequest(
                "Idempotency-Key must be 1-128 visible ASCII characters.", field="Idempotency-Key"
            )
        kind = self.kinds[fields.get("kind", self.default_kind)]
        space = fields.get("space") or None
        # Media in a space are private: its members see them through signed URLs.
        if space is not None and fields.get("visibility") == "public":
            raise BadRequest(
                "Media in a space are private; leave out visibility or send private.",
                field="visibility",
            )
        private = space is not None or fields.get("visibility") == "private"
        visibility: Visibility = "private" if private else "public"
        collection = kind.collection_for(fields.get("collection") or None)
        position = int(fields["position"]) if "position" in fields else None
        if position is not None and collection is None:
            raise BadRequest("position needs a collection to be placed in.", field="position")
        return UploadOptions(
            kind=kind,
            collection=collection,
            visibility=visibility,
            idempotency_key=idempotency_key,
            space=space,
            position=position,
        )
