"""The storage key layout: the one place that knows what a key looks like.

    [private/]k3/k3Jx9QmT2vLr8WcA5nYpZb/thumbnail.webp    a variant (public or private)
    [private/]k3/k3Jx9QmT2vLr8WcA5nYpZb/thumbnail.avif    its AVIF alternate, if the kind has one
    [private/]k3/k3Jx9QmT2vLr8WcA5nYpZb/thumb.0f3a9c2e.webp  a re-rendered variant (`rerender`)
    uploads/k3Jx9QmT2vLr8WcA5nYpZb                         a raw upload-session object
    sources/k3/k3Jx9QmT2vLr8WcA5nYpZb                      the uploaded file (`keep_source`)

A re-render writes a new set beside the old one, each file named with the render's tag, so
no key is ever written twice (nginx and browsers keep variants as immutable) and a reader
sees the old set or the new one; both live under the media's prefixes, so a purge removes
every generation.

The id's first two characters spread files over directories, the id (>= 128 random bits)
makes keys unguessable, and a client's filename is never part of a key. nginx serves
public keys at their plain URL, `private/` ones only with a valid signature, and never
`uploads/`. Storage backends, nginx rendering, URL signing and the reaper all use this.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from pathlib import PurePosixPath

from mediasvc.ids import ID_LENGTH, is_media_id
from mediasvc.imaging.formats import OUTPUT_FORMATS

PRIVATE_PREFIX = "private/"
UPLOADS_PREFIX = "uploads/"
SOURCES_PREFIX = "sources/"
# A render's tag: 32 random bits in hex, only to keep one media's generations apart (the id
# already makes the key unguessable).
RENDER_TAG = r"[0-9a-f]{8}"


def new_render_tag() -> str:
    """A fresh tag for one re-render of one media."""
    return secrets.token_hex(4)


def rendered_name(filename: str, render: str | None) -> str:
    """A variant file's name in the render `render` (None: the upload's own, untagged)."""
    if render is None:
        return filename
    if not re.fullmatch(RENDER_TAG, render):
        raise ValueError(f"not a render tag: {render!r}")
    path = PurePosixPath(filename)
    return f"{path.stem}.{render}{path.suffix}"


def variant_key(media_id: str, filename: str, *, private: bool = False) -> str:
    """The storage key of one variant file of one media."""
    return f"{PRIVATE_PREFIX if private else ''}{media_id[:2]}/{media_id}/{filename}"


def source_key(media_id: str) -> str:
    """Where the uploaded file itself is kept, for a kind with `keep_source` (never served:
    outside every prefix nginx serves)."""
    return f"{SOURCES_PREFIX}{media_id[:2]}/{media_id}"


def upload_key(media_id: str) -> str:
    """Where the raw bytes of an upload session wait for `complete`."""
    return f"{UPLOADS_PREFIX}{media_id}"


def media_prefixes(media_id: str) -> list[str]:
    """The prefixes every variant of a media lives under, public and private, whatever
    its kind's ladder and formats were (each ends in `/`)."""
    return [variant_key(media_id, "", private=private) for private in (False, True)]


def media_keys(media_id: str) -> list[str]:
    """A media's keys outside its variant prefixes: its raw session object, its source."""
    return [upload_key(media_id), source_key(media_id)]


def is_upload(key: str) -> bool:
    """Whether the key holds a session's raw bytes (never served)."""
    return key.startswith(UPLOADS_PREFIX)


def is_private(key: str) -> bool:
    """Whether the key is served only behind a signature."""
    return key.startswith(PRIVATE_PREFIX)


def is_public_variant(key: str) -> bool:
    """Whether the key is a variant nginx serves at its plain URL (and may cache)."""
    return media_id_of(key) is not None and not key.startswith(
        (PRIVATE_PREFIX, UPLOADS_PREFIX, SOURCES_PREFIX)
    )


def media_id_of(key: str) -> str | None:
    """The media id of a variant or session key, or None for keys that are not ours (a
    shared bucket)."""
    if key.startswith(UPLOADS_PREFIX):
        # `uploads/<id>`, or a write to it not yet renamed: `uploads/.<id>.<random>.tmp`.
        rest = key.removeprefix(UPLOADS_PREFIX).removeprefix(".").split(".")[0]
        return rest if is_media_id(rest) else None
    parts = key.removeprefix(SOURCES_PREFIX).split("/")
    if key.startswith(SOURCES_PREFIX) and len(parts) == 2 and is_media_id(parts[1]):
        return parts[1] if parts[0] == parts[1][:2] else None
    parts = key.removeprefix(PRIVATE_PREFIX).split("/")
    if len(parts) == 3 and is_media_id(parts[1]) and parts[0] == parts[1][:2]:
        return parts[1]
    return None


def variant_key_pattern(names: Iterable[str]) -> str:
    """The regex of a variant key below its prefix: one of `names` (the sizes of every
    kind's ladder), untagged (as uploaded) or with a render's tag, in any output format; no
    other file under a media's prefix is served."""
    alternatives = "|".join(sorted(names))
    extensions = "|".join(f.extension.lstrip(".") for f in OUTPUT_FORMATS.values())
    return (
        rf"[A-Za-z0-9]{{2}}/[A-Za-z0-9]{{{ID_LENGTH}}}/"
        rf"(?:{alternatives})(?:\.{RENDER_TAG})?\.(?:{extensions})"
    )
