"""The media record as the service sees it (one row of `media`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from mediasvc.imaging.job import Pdq

# `quarantined`: processed, held for moderation (its owner and admins see it, nobody else).
Status = Literal["pending", "processing", "ready", "quarantined", "failed", "deleting"]
Visibility = Literal["public", "private"]
VISIBILITIES: tuple[Visibility, ...] = ("public", "private")


@dataclass(frozen=True, slots=True)
class StoredAlternate:
    """A variant stored again in another format (AVIF beside WebP), same pixels."""

    key: str
    bytes: int
    mime: str


@dataclass(frozen=True, slots=True)
class StoredVariant:
    """One variant as stored: its storage key and what it is."""

    key: str
    # The size of the kind's ladder it was made for: the API lists variants by it.
    size: int
    width: int
    height: int
    bytes: int
    mime: str
    alternates: tuple[StoredAlternate, ...] = ()


@dataclass(frozen=True, slots=True)
class Original:
    """Facts about the uploaded file; width/height are known once processing is done."""

    mime: str
    bytes: int
    # None for an upload session that declared none and whose bytes are not read yet.
    sha256: str | None
    width: int | None
    height: int | None
    frames: int | None


@dataclass(frozen=True, slots=True)
class Placeholder:
    """What a client can paint before the image arrives."""

    thumbhash: str
    dominant_color: str


@dataclass(frozen=True, slots=True)
class Media:
    """One upload and its variants."""

    id: str
    owner: str
    kind: str
    collection: str | None
    # Dense, from 0, among the collection's live items (0 outside collections).
    position: int
    # Where the row sorts in its collection: increasing, with gaps; what a page cursor names.
    slot: int
    visibility: Visibility
    # The space it is shared in (always private then), or None.
    space: str | None
    status: Status
    original: Original
    variants: dict[str, StoredVariant]
    placeholder: Placeholder | None
    processing: dict[str, object] | None
    created_at: datetime
    # Upload sessions: when a `pending` one expires, and why a `failed` one failed.
    expires_at: datetime | None = None
    problem: dict[str, object] | None = None
    # A session that completes by itself once its bytes are stored (`"complete": "auto"`).
    auto_complete: bool = False
    # The decoded pixels' PDQ perceptual hash (64 hex digits), once processed.
    pdq: Pdq | None = None

    @property
    def is_private(self) -> bool:
        return self.visibility == "private"
