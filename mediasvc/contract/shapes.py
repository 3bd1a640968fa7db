"""The shapes of the API's JSON bodies and of the webhooks' events, as pydantic models.

Each shape is written once, here: the app builds its answers from these models and sends
`model_dump_json()`, it validates the JSON request bodies with them (`web.bodies`), and the
OpenAPI document's schemas are their JSON Schemas (`web.openapi`). Members that are not
always there (`owner`, `original.sha256`, `processing`, a pending session's `expires_at`,
a failed one's `problem`) default to `MISSING`: left out of the JSON, and not required in
the schema. Why pydantic (and not msgspec): `docs/decisions.md`, "Shapes".

What a configuration decides (the kinds a request may name, the accepted types) is added
to the schemas by `web.openapi`, which assembles the document.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import MISSING, BaseModel, ConfigDict, Field, JsonValue
from typing_extensions import TypeAliasType

from mediasvc.contract import paths
from mediasvc.contract.codes import PROBLEM_TYPE_BASE
from mediasvc.ids import ID_LENGTH
from mediasvc.imaging.job import Crop
from mediasvc.imaging.report import ColorConversion, Encoding, Removable
from mediasvc.imaging.variants import SIZE_NAME, VARIANTS
from mediasvc.models import Status, Visibility
from mediasvc.spaces import SPACE_ID

# A collection's name (the upload form checks it with this too: `form`).
COLLECTION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
EXAMPLE_ID = "k3Jx9QmT2vLr8WcA5nYpZb"

MediaId = TypeAliasType(
    "MediaId",
    Annotated[
        str,
        Field(
            pattern=f"^[A-Za-z0-9]{{{ID_LENGTH}}}$",
            description="128 random bits, base62.",
            examples=[EXAMPLE_ID],
        ),
    ],
)
Collection = Annotated[str, Field(pattern=f"^{COLLECTION_NAME.pattern}$")]
Space = Annotated[str, Field(pattern=f"^{SPACE_ID.pattern}$")]
Timestamp = Annotated[
    str, Field(description="UTC, ISO 8601, `Z`.", json_schema_extra={"format": "date-time"})
]
Sha256 = Annotated[str, Field(pattern="^[0-9a-f]{64}$")]
PdqHash = Annotated[
    str,
    Field(
        pattern="^[0-9a-f]{64}$",
        description="A PDQ perceptual hash: 256 bits as 64 hex digits, bit 255 first "
        "(as Meta's PDQ tools print it).",
    ),
]


class Shape(BaseModel):
    """A JSON object with exactly these members (`additionalProperties: false`)."""

    model_config = ConfigDict(extra="forbid")


class VariantAlternate(Shape):
    """The same variant in another format (AVIF beside WebP)."""

    url: str | None = Field(description="As the variant's own `url`; null where that is.")
    bytes: int


class Variant(Shape):
    """One stored variant, where a client fetches it."""

    url: str = Field(
        description="Plain for public media; signed and short-lived for private. Where the "
        "variant has an AVIF alternate, this URL serves it to clients whose `Accept` lists "
        "`image/avif` (`Vary: Accept`)."
    )
    width: int
    height: int
    bytes: int
    mime: str
    alternates: dict[str, VariantAlternate] | MISSING = Field(
        default=MISSING,
        description="The kind's other formats, by MIME type, each at its own URL too.",
    )


class EventVariant(Variant):
    """A variant in a webhook: a private one's `url` is null (no signed URL leaves)."""

    url: str | None = Field(  # type: ignore[assignment]
        description="Plain for public media; null for private ones: ask the API for a signed URL."
    )


def _named_variants(schema: dict[str, Any]) -> None:
    """`variants` is keyed by the names of the kind's ladder (smallest first)."""
    schema["propertyNames"] = {"pattern": f"^{SIZE_NAME}$"}


class Original(Shape):
    """The uploaded file as received."""

    mime: str = Field(description="As sniffed (a session: declared).")
    bytes: int
    width: int | None
    height: int | None
    frames: int | None
    sha256: Sha256 | MISSING | None = Field(default=MISSING, description="Owner and admins only.")


class Placeholder(Shape):
    """What a client paints while the image loads."""

    thumbhash: str = Field(description="ThumbHash, base64.")
    dominant_color: str = Field(pattern="^#[0-9a-f]{6}$")


class Pdq(Shape):
    """The picture's PDQ hash (Meta's perceptual hash): near-copies (re-encoded, resized)
    differ from it in few of its 256 bits. The blocklist matches on it."""

    hash: PdqHash
    quality: int = Field(
        ge=0,
        le=100,
        description="How distinctive the picture is; below 50 (flat pictures) the hash is "
        "not matched on.",
    )


class ProcessingReport(Shape):
    """What processing did, e.g. that a GPS position was removed."""

    rotated_from_orientation: Annotated[int, Field(ge=2, le=8)] | None
    color: ColorConversion
    removed: list[Removable]
    frames: int
    # Not in every stored report: rows written before these facts existed.
    encoding: Encoding | MISSING = Field(
        default=MISSING, description="How the largest variant was compressed."
    )
    lossless_variants: list[str] | MISSING = Field(
        default=MISSING,
        description="The variants stored pixel-exact (graphics, WebP output).",
        json_schema_extra={"items": {"type": "string", "pattern": f"^{SIZE_NAME}$"}},
    )


class Problem(BaseModel):
    """RFC 9457 problem details, `application/problem+json`; members beyond the five
    standard ones help the client act."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description=f"`{PROBLEM_TYPE_BASE}<code>`")
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    code: str = Field(description="The stable code: `ProblemCode`.")
    field: str | MISSING = Field(
        default=MISSING, description="The field, parameter or member at fault."
    )
    limit: int | MISSING = Field(default=MISSING, description="The limit that was passed.")
    actual: int | str | MISSING | None = Field(
        default=MISSING, description="What was sent instead (or, for a mismatch, what is)."
    )
    expected: int | str | MISSING | None = MISSING
    accepted: list[str] | MISSING = MISSING
    known: list[str] | MISSING = Field(default=MISSING, description="Known kinds.")
    quota: Literal["media", "bytes"] | MISSING = MISSING
    budget: str | MISSING = Field(
        default=MISSING,
        description="The per-user budget used up: uploads, deletes, reads or uploads.<kind>.",
    )
    reason: str | MISSING = Field(
        default=MISSING, description="`content_rejected`: the moderator's reason, if it gave one."
    )
    min_width: int | MISSING = MISSING
    min_height: int | MISSING = MISSING
    max_width: int | MISSING = MISSING
    max_height: int | MISSING = MISSING
    actual_width: int | MISSING = MISSING
    actual_height: int | MISSING = MISSING


VariantT = TypeVar("VariantT", bound=Variant)

_MEDIA_EXAMPLE: dict[str, Any] = {
    "id": EXAMPLE_ID,
    "owner": "alice",
    "kind": "post",
    "collection": None,
    "position": 0,
    "visibility": "public",
    "space": None,
    "status": "ready",
    "original": {
        "mime": "image/jpeg",
        "bytes": 477983,
        "width": 800,
        "height": 1280,
        "frames": 1,
        "sha256": "9f2c6e0b5a1d4c3e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e",
    },
    "variants": {
        spec.name: {
            "url": f"/media/k3/{EXAMPLE_ID}/{spec.name}.webp",
            "width": spec.size * 5 // 8,
            "height": spec.size,
            "bytes": 30 * spec.size,
            "mime": "image/webp",
        }
        for spec in VARIANTS
    },
    "placeholder": {"thumbhash": "1QcSHQRnh493V4dIh4eXh1h4kJUI", "dominant_color": "#7a8c9e"},
    "created_at": "2026-11-21T12:00:00Z",
    "processing": {
        "rotated_from_orientation": 6,
        "color": "sRGB",
        "removed": ["exif", "gps"],
        "frames": 1,
    },
}


class MediaFields(Shape, Generic[VariantT]):
    """The members of a media, whatever its variants' URLs are."""

    id: MediaId
    owner: str | MISSING = Field(
        default=MISSING,
        description="The uploader's token `sub`. Absent for readers of a public media other "
        "than its owner and admins, unless `MEDIASVC_PUBLIC_OWNER`.",
    )
    kind: str
    collection: Collection | None
    position: int = Field(description="Order in the collection.")
    visibility: Visibility
    space: Space | None
    status: Status
    original: Original
    variants: dict[str, VariantT] = Field(
        description="Present once the media is ready.", json_schema_extra=_named_variants
    )
    placeholder: Placeholder | None
    created_at: Timestamp
    srcset: dict[str, str] | MISSING = Field(
        default=MISSING,
        description="Ready media with URLs: per MIME type, an `<img srcset>` value "
        "(`url 256w, ...`, one candidate per width), e.g. for `<picture><source type=...>`.",
    )
    sizes: str | MISSING = Field(
        default=MISSING, description="The kind's `srcset_sizes`: the `sizes` to pair with it."
    )
    processing: ProcessingReport | MISSING | None = MISSING
    pdq: Pdq | MISSING | None = Field(
        default=MISSING,
        description="Owner and admins only; null until processed (and for media uploaded "
        "before hashes were kept).",
    )
    expires_at: Timestamp | MISSING = Field(
        default=MISSING, description="A pending session's expiry."
    )
    problem: Problem | MISSING = Field(
        default=MISSING, description="Why an asynchronous completion failed."
    )


class Media(MediaFields[Variant]):
    """One upload and its variants (smallest first). `original.sha256`, `processing` and
    `pdq` are for the owner and admins only; `owner` for them and a space's members, and for
    anyone only where `MEDIASVC_PUBLIC_OWNER` is set."""

    model_config = ConfigDict(json_schema_extra={"examples": [_MEDIA_EXAMPLE]})


class UploadedMedia(Media):
    """What an upload answers: the media, and for a replacing kind what it replaced."""

    replaced: list[MediaId] | MISSING = Field(
        default=MISSING, description="A replacing kind: the ids this upload retired."
    )


class MediaPage(Shape):
    """One page of a listing."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"items": [_MEDIA_EXAMPLE], "next_cursor": None}]}
    )

    items: list[Media]
    next_cursor: str | None = Field(description="Send back as `cursor` for the next page.")


_IDS_EXAMPLE: list[JsonValue] = [EXAMPLE_ID, "Pq7Zr2Lm9XcV4bN8tY1wKs"]


class CollectionOrder(Shape):
    """A reorder: every id of the collection, in the new order."""

    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra={"examples": [{"ids": _IDS_EXAMPLE}]}
    )

    ids: list[MediaId]


class CollectionOrderResult(Shape):
    """A collection's new order."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"collection": "profile", "ids": _IDS_EXAMPLE}]}
    )

    collection: Collection
    ids: list[MediaId]


class SpaceDeletion(Shape):
    """A space being emptied: how many media the deletion covers (every status), which
    are removed in the background."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"space": "chat-42", "media": 3}]})

    space: Space
    media: int = Field(
        ge=0,
        description="Media of the space not already being deleted, whatever their status "
        "(uploads still processing are removed once they end).",
    )


class UploadSessionRequest(Shape):
    """What an upload session is for: the file declared, where its media goes. The form
    fields are checked as the upload form's are (`form.UploadForm.check_field`)."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [{"kind": "avatar", "content_type": "image/jpeg", "size": 123456}]
        },
    )

    kind: str | None = None
    collection: str | None = None
    visibility: str | None = None
    space: str | None = None
    position: int | None = Field(
        default=None,
        ge=0,
        le=100_000,
        description="Where in its collection the new item goes (from 0); default: the end.",
    )
    content_type: str = Field(min_length=1)
    # The largest size anyone could declare: PostgreSQL's bigint.
    size: int | None = Field(
        default=None,
        gt=0,
        le=2**63 - 1,
        description="The file's size in bytes. Left out, the upload may be as large as the "
        "kind's `max_bytes`, which the owner's byte quota holds until `complete`; a "
        "presigned PUT to S3 needs it (S3 can cap a PUT only at a signed exact length).",
    )
    sha256: Sha256 | None = None
    upload_method: Literal["post", "put"] = Field(
        default="post", description="S3: a presigned POST (the default) or PUT."
    )
    complete: CompleteMode = Field(
        default="explicit",
        description="`auto`: the session completes by itself once its bytes are stored "
        "(local disk: when the signed PUT ends; S3: when a node finds the object, within "
        "seconds); `complete_url` still works, and answers what became of it.",
    )


CompleteMode = Literal["explicit", "auto"]


class SessionExpectations(Shape):
    """What a product's backend knows an upload session is for, checked by `complete`
    (a member left out is not checked; `null`: none)."""

    space: str | MISSING | None = MISSING
    kind: str | MISSING = MISSING
    collection: str | MISSING | None = MISSING


class DirectUpload(Shape):
    """How to send the bytes: S3, a presigned POST (`fields` first, the file last) or PUT
    (with `headers`); local disk, a PUT to a signed URL of this service."""

    method: Literal["POST", "PUT"]
    url: str
    fields: dict[str, str] | MISSING = MISSING
    headers: dict[str, str] | MISSING = MISSING
    expires_at: Timestamp = Field(
        description="When the signed URL (or POST policy) stops working: the session's own "
        "expiry, so a client need not know the TTL setting."
    )


class UploadSession(Shape):
    """An open upload session: where to send the bytes, and how to complete it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": EXAMPLE_ID,
                    "status": "pending",
                    "expires_at": "2026-11-21T12:15:00Z",
                    "upload": {
                        "method": "PUT",
                        "url": paths.UPLOAD_CONTENT.format(media_id=EXAMPLE_ID)
                        + "?md5=...&expires=...",
                        "headers": {"Content-Type": "image/jpeg"},
                        "expires_at": "2026-11-21T12:15:00Z",
                    },
                    "complete_url": paths.UPLOAD_COMPLETE.format(media_id=EXAMPLE_ID),
                    "complete": "explicit",
                    "media_url": paths.MEDIA_ITEM.format(media_id=EXAMPLE_ID),
                    "variant_urls": {
                        spec.name: f"/media/k3/{EXAMPLE_ID}/{spec.name}.webp" for spec in VARIANTS
                    },
                }
            ]
        }
    )

    id: MediaId
    status: Status
    expires_at: Timestamp | None
    upload: DirectUpload
    complete_url: str
    complete: CompleteMode
    media_url: str = Field(description="The media's own URL (also the `Location` header).")
    variant_urls: dict[str, str] | None = Field(
        description="Public media: the URL each variant will have once the media is ready, "
        "to store now (they answer 404 until then). Private media: null (their URLs are "
        "signed when read)."
    )


class KindLimits(Shape):
    """One kind's effective rules; its members are the keys of a `[kinds.NAME]` table."""

    max_bytes: int
    accept: list[str]
    min_width: int
    min_height: int
    max_width: int | None
    max_height: int | None
    max_pixels: int
    max_frames: int
    animated: bool = Field(description="False: first frame only.")
    crop: Crop
    output: str = Field(description="The variants' MIME type.")
    quality: int
    collection_max: int
    replace: bool = Field(description="A full collection retires its oldest item instead of 409.")
    uploads_per_minute: int | None = Field(
        description="Each user's uploads of this kind per minute, on top of the global budget."
    )
    sizes: dict[str, int] = Field(
        description="The variants made, smallest first: each name's longest side in pixels "
        "(square crops: both sides), never larger than the source."
    )
    formats: list[str] = Field(
        description="The formats each variant is written in: `webp`, then `avif` beside it "
        "(served by `Accept` from the WebP's URL). Animations stay animated WebP only."
    )
    keep_source: bool = Field(
        description="The uploaded file is kept privately (never served) to re-render from."
    )
    srcset_sizes: str | None = Field(
        description="The `sizes` attribute the media's `srcset` goes with, if the kind says."
    )
    moderation: Moderation | None = Field(
        description="`hook`: each upload is sent to the moderation hook before it is shown; "
        "`review`: each upload is `quarantined` until an admin allows it; null: none."
    )
    moderation_fail: ModerationFail = Field(
        description="What a hook that times out, fails or answers nonsense means: `closed` "
        "quarantines the upload, `open` allows it."
    )


Moderation = Literal["hook", "review"]
ModerationFail = Literal["closed", "open"]


class ModerationDecision(Shape):
    """An admin's decision on a quarantined media."""

    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra={"examples": [{"decision": "allow"}]}
    )

    decision: Literal["allow", "deny"] = Field(
        description="`allow`: it becomes `ready` (`media.ready` follows); `deny`: it is "
        "deleted (`media.deleted` follows)."
    )


class ModerationRequest(Shape):
    """What the moderation hook receives for each processed upload of a kind with
    `moderation = "hook"`, before the upload is shown to anyone."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": EXAMPLE_ID,
                    "owner": "alice",
                    "space": None,
                    "kind": "avatar",
                    "sha256": _MEDIA_EXAMPLE["original"]["sha256"],
                    "pdq": None,
                    "url": f"/private/k3/{EXAMPLE_ID}/full.webp?md5=...&expires=...",
                }
            ]
        }
    )

    id: MediaId
    owner: str
    space: Space | None
    kind: str
    sha256: Sha256
    pdq: str | None = Field(description="The perceptual hash (PDQ, hex), when computed.")
    url: str = Field(
        description="A short-lived signed URL of one variant (the largest up to 1024 px; the "
        "original is never sent). Relative when `MEDIASVC_PRIVATE_MEDIA_URL` is: resolve it "
        "against the service's address."
    )


class ModerationAnswer(BaseModel):
    """The hook's answer: a 2xx with this JSON, within `MEDIASVC_MODERATION_TIMEOUT_S`.
    Anything else follows the kind's `moderation_fail`."""

    model_config = ConfigDict(extra="ignore")

    decision: Literal["allow", "deny", "review"] = Field(
        description="`allow`: ready; `deny`: removed, the uploader gets `content_rejected`; "
        "`review`: `quarantined` until an admin decides."
    )
    reason: str | None = Field(
        default=None, max_length=1000, description="Told the uploader with a `deny`."
    )


class VariantSize(Shape):
    """One rung of the default variant ladder."""

    name: str
    size: int


class OutputLimits(Shape):
    """The variants' encoding."""

    mime: str
    animated: bool
    alpha: bool


class UserBudgets(Shape):
    """Each verified user's requests per minute, on every node together (null: none)."""

    uploads: int | None
    deletes: int | None
    reads: int | None


class Limits(Shape):
    """The limits in force, so clients can resize before sending."""

    max_upload_bytes: int
    max_pixels: int
    max_frames: int
    max_animation_pixels: int
    accepted_types: list[str]
    kinds: dict[str, KindLimits]
    variants: list[VariantSize]
    output: OutputLimits
    collection_max: int
    owner_max_media: int | None
    owner_max_bytes: int | None
    owner_max_inflight: int
    signed_url_ttl_s: int
    user_per_minute: UserBudgets


Reason = Annotated[str, Field(min_length=1, max_length=1000)]


class BlocklistRequest(Shape):
    """What to block: a file by its sha256, or a picture by its PDQ hash (one of the two),
    and why."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {"sha256": _MEDIA_EXAMPLE["original"]["sha256"], "reason": "report 1234"},
            ]
        },
    )

    sha256: Sha256 | None = None
    pdq: PdqHash | None = None
    reason: Reason = Field(description="Kept with the entry, for admins; never shown to uploaders.")


class BlocklistEntry(Shape):
    """An entry of the blocklist: uploads of this file, or of pictures within the
    configured PDQ distance of this hash, are refused (`422 content_blocked`)."""

    id: int = Field(description="Name it to remove the entry.")
    sha256: Sha256 | None
    pdq: PdqHash | None
    reason: str
    created_by: str = Field(description="The admin's token subject, or `cli`.")
    created_at: Timestamp


class BlocklistPage(Shape):
    """One page of the blocklist, oldest entry first."""

    items: list[BlocklistEntry]
    next_cursor: str | None = Field(description="Send back as `cursor` for the next page.")


class TakedownRequest(Shape):
    """Why the media is taken down, and whether near-copies (PDQ) go too."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"reason": "report 1234", "similar": True}]},
    )

    reason: Reason = Field(description="Kept with the blocklist entries it makes.")
    similar: bool = Field(
        default=False,
        description="Also remove every media whose PDQ hash is within the configured "
        "distance (else only copies of the same file).",
    )


class Takedown(Shape):
    """What a takedown did: the entries that now block the media's file and picture, and
    every media removed (the one named first), across owners and spaces."""

    blocked: list[BlocklistEntry]
    removed: list[MediaId]


CheckResult = Literal["ok", "unavailable"]


class Health(Shape):
    """`/healthz`: the process answers."""

    status: Literal["ok"]


class ReadinessChecks(Shape):
    """What `/readyz` asked, each with its answer."""

    database: CheckResult
    storage: CheckResult
    workers: CheckResult


class Readiness(Shape):
    """`/readyz`: ready when every check answers."""

    status: Literal["ready", "unavailable"]
    checks: ReadinessChecks


# Webhooks: the body of each event type. `data` is the Media JSON any viewer gets, the
# owner included, without signed URLs.
class EventMedia(MediaFields[EventVariant]):
    """A media as a webhook carries it: no `sha256` or `processing`, `owner` always, and a
    private variant's `url` null."""


class ReplacedMedia(EventMedia):
    """The media a replacing upload retired, and the id of the one that replaced it."""

    replaced_by: MediaId


class MediaReady(Shape):
    """`media.ready`: an upload's variants are stored and it became `ready`."""

    type: Literal["media.ready"]
    timestamp: Timestamp
    data: EventMedia


class DeletedMedia(EventMedia):
    """A deleted media, and why when it was not its owner's (or an admin's) DELETE."""

    reason: Literal["takedown"] | MISSING = Field(
        default=MISSING,
        description="`takedown`: an admin's takedown removed it (the same file or picture "
        "as a media taken down). Absent for `DELETE /v1/media/{id}`.",
    )


class MediaDeleted(Shape):
    """`media.deleted`: `DELETE /v1/media/{id}`, emptying its space, or a takedown marked it
    for removal (`status: deleting`)."""

    type: Literal["media.deleted"]
    timestamp: Timestamp
    data: DeletedMedia


class MediaReplaced(Shape):
    """`media.replaced`: a replacing kind's upload retired this media (`status: deleting`)."""

    type: Literal["media.replaced"]
    timestamp: Timestamp
    data: ReplacedMedia


class MediaRerendered(Shape):
    """`media.rerendered`: `python -m mediasvc rerender` made its variants again under its
    kind's current rules; `data` has the new variants (new URLs: the old files are removed)."""

    type: Literal["media.rerendered"]
    timestamp: Timestamp
    data: EventMedia


class UploadFailed(Shape):
    """`upload.failed`: an asynchronous upload-session completion failed (`status: failed`,
    with its `problem`)."""

    type: Literal["upload.failed"]
    timestamp: Timestamp
    data: EventMedia


Event = MediaReady | MediaDeleted | MediaReplaced | MediaRerendered | UploadFailed
EVENTS: dict[str, type[Event]] = {
    "media.ready": MediaReady,
    "media.replaced": MediaReplaced,
    "media.deleted": MediaDeleted,
    "media.rerendered": MediaRerendered,
    "upload.failed": UploadFailed,
}
