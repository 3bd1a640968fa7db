"""Every stable problem `code` the service answers with, once: its status, title and meaning.

    from mediasvc.contract import codes
    raise Gone("This upload session has expired.", code=codes.UPLOAD_EXPIRED)

The error classes (`mediasvc.errors`) take their default code from here, the imaging
rejections name theirs from here, nginx's own problem bodies are rendered from here
(`stack.nginxconf`), the OpenAPI document lists `CODES` as the `ProblemCode` enum, and the
README's table of codes is `readme_table()` (`python -m mediasvc problem-codes`).
The title is the one a problem of that code carries (RFC 9457: one title per type).

A leaf: the standard library only, so image workers may import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PROBLEM_TYPE_BASE = "https://mediasvc.dev/problems/"


@dataclass(frozen=True, slots=True)
class Code:
    """One problem code: the status it comes with (None: any 4xx/5xx, aiohttp's other
    refusals), its title, what it means, and who answers it (nginx answers some itself)."""

    code: str
    status: int | None
    title: str
    meaning: str
    by: str = "app"

    @property
    def type(self) -> str:
        """The problem's `type` URI."""
        return PROBLEM_TYPE_BASE + self.code

    def body(
        self,
        detail: str,
        extra: Mapping[str, Any] | None = None,
        *,
        status: int | None = None,
        title: str | None = None,
    ) -> dict[str, Any]:
        """The RFC 9457 problem document; `extra` members help the client act (`limit`).
        `status` and `title` only for a code without a status of its own (`http_error`)."""
        answered = self.status if self.status is not None else status
        if answered is None:
            raise ValueError(f"{self.code} has no status of its own: pass one")
        return {
            "type": self.type,
            "title": title or self.title,
            "status": answered,
            "detail": detail,
            "code": self.code,
            **(extra or {}),
        }


_400 = "Bad request"
_422 = "Unprocessable request"
_IMAGE = "Invalid image"

BAD_REQUEST = Code(
    "bad_request",
    400,
    _400,
    "Not multipart, no `file` part or two of them, an unknown, repeated or bad field, "
    "parameter or JSON member (`field` names it), more than `limit` bytes before the "
    "form's first boundary; also aiohttp's refusal of a malformed request.",
)
INCOMPLETE_BODY = Code(
    "incomplete_body",
    400,
    _400,
    "The request body ended before the form or file did, or its framing could not be "
    "read (a malformed chunk); send it again.",
)
HEADER_TOO_LARGE = Code(
    "header_too_large",
    400,
    _400,
    "A request header is longer than nginx and the app accept (`limit`; a token listing "
    "too many spaces).",
    by="nginx",
)
UNAUTHORIZED = Code(
    "unauthorized",
    401,
    "Unauthorized",
    "No token where one is needed; a malformed, tampered or expired one; wrong `iss` or "
    "`aud`; a `kid` the identity provider does not publish.",
)
DUPLICATE_COOKIE = Code(
    "duplicate_cookie",
    401,
    "Unauthorized",
    "Two session cookies of the configured name in one request (one may have been set "
    "by a page on another subdomain); neither is used.",
)
FORBIDDEN = Code(
    "forbidden",
    403,
    "Forbidden",
    "Acting on another owner's media without being an admin; a space the token does "
    "not list; a cookie-authenticated request that changes state from an origin not "
    "allowed (CSRF); a CORS preflight from an origin not allowed; an upload URL whose "
    "signature is wrong.",
)
NOT_FOUND = Code(
    "not_found",
    404,
    "Not found",
    "No such media, session, collection or variant; also another owner's private "
    "media and a space's media for a token that does not list the space.",
)
METHOD_NOT_ALLOWED = Code(
    "method_not_allowed",
    405,
    "Method not allowed",
    "The path exists, not with this method (`Allow`).",
)
CONFLICT = Code(
    "conflict",
    409,
    "Conflict",
    "The request does not fit the current state: a reorder missing a ready item or naming "
    "another, deleting a media that is not ready, bytes for a session no longer waiting "
    "for them.",
)
COLLECTION_FULL = Code(
    "collection_full", 409, "Collection full", "The collection holds its kind's `collection_max`."
)
QUOTA_EXCEEDED = Code(
    "quota_exceeded",
    409,
    "Quota exceeded",
    "The owner's media count or bytes would pass a quota (`quota`, `limit`, `actual`).",
)
UPLOAD_MISSING = Code(
    "upload_missing",
    409,
    "Upload missing",
    "Completing an upload session whose bytes have not arrived; send them, retry.",
)
SESSION_MISMATCH = Code(
    "session_mismatch",
    409,
    "Conflict",
    "`complete` expected another space, kind or collection than the session was opened "
    "for (`field`, `expected`, `actual`); nothing was done.",
)
IDEMPOTENCY_IN_PROGRESS = Code(
    "idempotency_in_progress",
    409,
    "Conflict",
    "An upload with this `Idempotency-Key` is still processing; retry shortly.",
)
SIGNATURE_INVALID = Code(
    "signature_invalid",
    403,
    "Forbidden",
    "A signed file URL (a private variant) whose signature is missing or wrong, or was "
    "made for another file or expiry.",
    by="nginx",
)
GONE = Code("gone", 410, "Gone", "The resource existed and is no longer available.")
UPLOAD_EXPIRED = Code(
    "upload_expired", 410, "Gone", "The upload session, or its signed upload URL, is past its time."
)
URL_EXPIRED = Code(
    "url_expired",
    410,
    "Gone",
    "A signed file URL past its expiry: ask the API for the media again, for a fresh one.",
    by="nginx",
)
PAYLOAD_TOO_LARGE = Code(
    "payload_too_large",
    413,
    "Payload too large",
    "The file is larger than the global or the kind's cap (`limit`), or than a session's "
    "declared size; reading stops there. nginx answers a declared oversize body itself.",
    by="app, nginx",
)
UNSUPPORTED_MEDIA_TYPE = Code(
    "unsupported_media_type",
    415,
    "Unsupported media type",
    "The file's magic bytes are not an accepted type (`actual`, `accepted`), whatever "
    "its name or declared type.",
)
UNSUPPORTED_CONTENT_ENCODING = Code(
    "unsupported_content_encoding",
    415,
    "Unsupported media type",
    "The request has a `Content-Encoding` (`actual`): bodies are accepted unencoded only. "
    "nginx answers it itself; a node reached directly answers it before reading the body.",
    by="nginx, app",
)
INVALID_IMAGE = Code(
    "invalid_image", 422, _IMAGE, "The file is of an accepted type but cannot be decoded."
)
EMPTY_FILE = Code("empty_file", 422, _IMAGE, "The file is empty.")
TOO_SMALL = Code("too_small", 422, _IMAGE, "Smaller than the kind's `min_width` x `min_height`.")
TOO_LARGE = Code("too_large", 422, _IMAGE, "Larger than the kind's `max_width` x `max_height`.")
TOO_MANY_PIXELS = Code(
    "too_many_pixels",
    422,
    _IMAGE,
    "More pixels in a frame, or over all frames, than the limits allow.",
)
TOO_MANY_FRAMES = Code("too_many_frames", 422, _IMAGE, "More frames than the limits allow.")
UNPROCESSABLE = Code(
    "unprocessable", 422, _422, "The request is well-formed but cannot be acted on."
)
IDEMPOTENCY_KEY_REUSED = Code(
    "idempotency_key_reused",
    422,
    _422,
    "The `Idempotency-Key` was used with a different file or other options.",
)
CHECKSUM_MISMATCH = Code(
    "checksum_mismatch",
    422,
    _422,
    "A session's bytes do not match its declared `sha256` (`expected`, `actual`).",
)
CONTENT_REJECTED = Code(
    "content_rejected",
    422,
    _422,
    "The kind's moderation hook denied the image; nothing of it was kept (`reason`, when "
    "the moderator gave one).",
)
CONTENT_BLOCKED = Code(
    "content_blocked",
    422,
    _422,
    "The image is on the blocklist (the same file, or the same picture by its PDQ hash); "
    "nothing was stored. Which entry matched is not said.",
)
TOO_MANY_REQUESTS = Code(
    "too_many_requests",
    429,
    "Too many requests",
    "The user's budget per minute is used up (`budget`, `limit`, the `RateLimit` headers) "
    "or the owner has `owner_max_inflight` uploads in progress (app), or nginx's rate or "
    "connection limits; with `Retry-After`.",
    by="app, nginx",
)
INTERNAL = Code(
    "internal", 500, "Internal error", "Something went wrong on our side; it is logged."
)
PROCESSING_FAILED = Code(
    "processing_failed", 500, "Processing failed", "The image worker failed on this file."
)
PROCESSING_TIMEOUT = Code(
    "processing_timeout",
    500,
    "Processing failed",
    "The image worker took too long and was stopped.",
)
WORKER_CRASHED = Code(
    "worker_crashed",
    500,
    "Processing failed",
    "The image worker died while processing this file.",
)
BUSY = Code(
    "busy",
    503,
    "Service busy",
    "The processing queue is full, or the database, storage or identity provider does "
    "not answer (nginx: no app node answers); with `Retry-After`.",
    by="app, nginx",
)
INSUFFICIENT_STORAGE = Code(
    "insufficient_storage", 507, "Insufficient storage", "The spool disk is full."
)
HTTP_ERROR = Code("http_error", None, "HTTP error", "Any other refusal aiohttp makes itself.")

# Every code, in the order the OpenAPI document lists them.
CODES: dict[str, Code] = {
    entry.code: entry
    for entry in (
        BAD_REQUEST,
        INCOMPLETE_BODY,
        HEADER_TOO_LARGE,
        UNAUTHORIZED,
        DUPLICATE_COOKIE,
        FORBIDDEN,
        SIGNATURE_INVALID,
        NOT_FOUND,
        METHOD_NOT_ALLOWED,
        CONFLICT,
        COLLECTION_FULL,
        QUOTA_EXCEEDED,
        UPLOAD_MISSING,
        SESSION_MISMATCH,
        IDEMPOTENCY_IN_PROGRESS,
        GONE,
        UPLOAD_EXPIRED,
        URL_EXPIRED,
        PAYLOAD_TOO_LARGE,
        UNSUPPORTED_MEDIA_TYPE,
        UNSUPPORTED_CONTENT_ENCODING,
        INVALID_IMAGE,
        EMPTY_FILE,
        TOO_SMALL,
        TOO_LARGE,
        TOO_MANY_PIXELS,
        TOO_MANY_FRAMES,
        UNPROCESSABLE,
        IDEMPOTENCY_KEY_REUSED,
        CHECKSUM_MISMATCH,
        CONTENT_REJECTED,
        CONTENT_BLOCKED,
        TOO_MANY_REQUESTS,
        INTERNAL,
        PROCESSING_FAILED,
        PROCESSING_TIMEOUT,
        WORKER_CRASHED,
        BUSY,
        INSUFFICIENT_STORAGE,
        HTTP_ERROR,
    )
}

# aiohttp's own refusals (no route, wrong method, oversized simple body), by status.
HTTP_CODES: dict[int, Code] = {
    entry.status: entry
    for entry in (
        BAD_REQUEST,
        UNAUTHORIZED,
        FORBIDDEN,
        NOT_FOUND,
        METHOD_NOT_ALLOWED,
        PAYLOAD_TOO_LARGE,
        UNSUPPORTED_MEDIA_TYPE,
    )
    if entry.status is not None
}


def with_status(status: int) -> list[Code]:
    """The codes a problem of `status` may carry."""
    return [entry for entry in CODES.values() if entry.status == status]


def readme_table() -> str:
    """The README's "Errors" table: a Markdown row per code, in `CODES` order."""
    rows = ["| status | code | answered by | when |", "|---|---|---|---|"]
    for entry in CODES.values():
        status = entry.status or "other"
        rows.append(f"| {status} | `{entry.code}` | {entry.by} | {entry.meaning} |")
    return "\n".join(rows) + "\n"
