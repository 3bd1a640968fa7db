"""Every refusal the service makes, as one exception tree with a stable `code`.

    MediaError (500 internal)
    ├── BadRequest (400 bad_request)
    ├── Unauthorized (401 unauthorized)
    ├── Forbidden (403 forbidden)
    ├── NotFound (404 not_found)
    ├── Conflict (409 conflict)
    │   ├── CollectionFull (409 collection_full)
    │   ├── UploadMissing (409 upload_missing: a session's bytes never arrived)
    │   └── QuotaExceeded (409 quota_exceeded: the owner's media count or bytes)
    ├── Gone (410 gone; upload_expired: a session past its time)
    ├── PayloadTooLarge (413 payload_too_large)
    ├── UnsupportedMediaType (415 unsupported_media_type)
    ├── InvalidImage (422 invalid_image; `code` may be more precise, e.g. too_many_pixels)
    ├── Unprocessable (422 unprocessable, e.g. idempotency_key_reused, checksum_mismatch)
    ├── RetryLater (with Retry-After)
    │   ├── TooManyRequests (429 too_many_requests)
    │   └── Busy (503 busy: queue full, database or storage unreachable)
    ├── InsufficientStorage (507 insufficient_storage: the spool disk is full)
    └── ProcessingFailed (500 processing_failed: a worker crashed or hung)

Raise them anywhere; `web.problems` renders them once as RFC 9457 problem+json.
Extra keyword arguments (`limit`, `actual`, ...) become members of the problem.
"""

from __future__ import annotations

from typing import Any, ClassVar

PROBLEM_TYPE_BASE = "https://mediasvc.dev/problems/"


def problem_body(
    status: int, code: str, title: str, detail: str, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The RFC 9457 problem document; `extra` members help the client act (`limit`)."""
    return {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        **(extra or {}),
    }


def problem_of(error: MediaError) -> dict[str, Any]:
    """The problem document of one of our errors (kept with a failed upload session)."""
    return problem_body(error.status, error.code, error.title, error.detail, error.extra)


class MediaError(Exception):
    """Base of every error the service reports to a client."""

    status: ClassVar[int] = 500
    default_code: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code or self.default_code
        self.extra = extra

    def headers(self) -> dict[str, str]:
        """Response headers this error needs besides the content type."""
        return {}


class BadRequest(MediaError):
    status, default_code, title = 400, "bad_request", "Bad request"


class Unauthorized(MediaError):
    status, default_code, title = 401, "unauthorized", "Unauthorized"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="mediasvc"'}


class Forbidden(MediaError):
    status, default_code, title = 403, "forbidden", "Forbidden"


class NotFound(MediaError):
    status, default_code, title = 404, "not_found", "Not found"


class Conflict(MediaError):
    status, default_code, title = 409, "conflict", "Conflict"


class CollectionFull(Conflict):
    default_code, title = "collection_full", "Collection full"


class QuotaExceeded(Conflict):
    default_code, title = "quota_exceeded", "Quota exceeded"


class UploadMissing(Conflict):
    default_code, title = "upload_missing", "Upload missing"


class Gone(MediaError):
    status, default_code, title = 410, "gone", "Gone"


class PayloadTooLarge(MediaError):
    status, default_code, title = 413, "payload_too_large", "Payload too large"


class UnsupportedMediaType(MediaError):
    status, default_code, title = 415, "unsupported_media_type", "Unsupported media type"


class InvalidImage(MediaError):
    status, default_code, title = 422, "invalid_image", "Invalid image"


class Unprocessable(MediaError):
    status, default_code, title = 422, "unprocessable", "Unprocessable request"


class RetryLater(MediaError):
    """A refusal that passes: it says when to try again (`Retry-After`, seconds)."""

    def __init__(self, detail: str, *, retry_after: int = 5, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class TooManyRequests(RetryLater):
    status, default_code, title = 429, "too_many_requests", "Too many requests"


class InsufficientStorage(MediaError):
    status, default_code, title = 507, "insufficient_storage", "Insufficient storage"


class Busy(RetryLater):
    status, default_code, title = 503, "busy", "Service busy"


class ProcessingFailed(MediaError):
    status, default_code, title = 500, "processing_failed", "Processing failed"
