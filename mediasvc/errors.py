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
    │   └── ContentRejected (422 content_rejected: the moderation hook said deny)
    │   └── ContentBlocked (422 content_blocked: the image is on the blocklist)
    ├── RetryLater (with Retry-After)
    │   ├── TooManyRequests (429 too_many_requests)
    │   └── Busy (503 busy: queue full, database or storage unreachable)
    ├── InsufficientStorage (507 insufficient_storage: the spool disk is full)
    └── ProcessingFailed (500 processing_failed: a worker crashed or hung)

Each class takes its status, default code and title from the registry of codes
(`contract.codes`); an instance may carry a more precise code of the same status
(`InvalidImage(..., code=codes.TOO_SMALL)`). Raise them anywhere; `web.problems` renders
them once as RFC 9457 problem+json. Extra keyword arguments (`limit`, `actual`, ...)
become members of the problem.
"""

from __future__ import annotations

from typing import Any, ClassVar

from mediasvc.contract import codes
from mediasvc.contract.codes import PROBLEM_TYPE_BASE, Code

__all__ = ["PROBLEM_TYPE_BASE", "MediaError", "problem_of"]


def problem_of(error: MediaError) -> dict[str, Any]:
    """The problem document of one of our errors (kept with a failed upload session)."""
    return codes.CODES[error.code].body(error.detail, error.extra)


class MediaError(Exception):
    """Base of every error the service reports to a client.

    A subclass names its default code: `class Gone(MediaError, code=codes.GONE)`; its
    `status`, `default_code` and `title` follow from it.
    """

    status: ClassVar[int] = 500
    default_code: ClassVar[str] = codes.INTERNAL.code
    title: str = codes.INTERNAL.title
    _default: ClassVar[Code] = codes.INTERNAL

    def __init_subclass__(cls, code: Code | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if code is not None:
            assert code.status is not None, f"{code.code} has no status of its own"
            cls.status, cls.default_code, cls.title, cls._default = (
                code.status,
                code.code,
                code.title,
                code,
            )

    def __init__(self, detail: str, *, code: Code | None = None, **extra: Any) -> None:
        super().__init__(detail)
        entry = code or self._default
        if entry.status != self.status:
            raise ValueError(f"{entry.code} is a {entry.status}, not a {self.status}")
        self.detail = detail
        self.code = entry.code
        self.title = entry.title
        self.extra = extra

    def headers(self) -> dict[str, str]:
        """Response headers this error needs besides the content type."""
        return {}


class BadRequest(MediaError, code=codes.BAD_REQUEST):
    pass


class Unauthorized(MediaError, code=codes.UNAUTHORIZED):
    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="mediasvc"'}


class Forbidden(MediaError, code=codes.FORBIDDEN):
    pass


class NotFound(MediaError, code=codes.NOT_FOUND):
    pass


class Conflict(MediaError, code=codes.CONFLICT):
    pass


class CollectionFull(Conflict, code=codes.COLLECTION_FULL):
    pass


class QuotaExceeded(Conflict, code=codes.QUOTA_EXCEEDED):
    pass


class UploadMissing(Conflict, code=codes.UPLOAD_MISSING):
    pass


class Gone(MediaError, code=codes.GONE):
    pass


class PayloadTooLarge(MediaError, code=codes.PAYLOAD_TOO_LARGE):
    pass


class UnsupportedMediaType(MediaError, code=codes.UNSUPPORTED_MEDIA_TYPE):
    pass


class InvalidImage(MediaError, code=codes.INVALID_IMAGE):
    pass


class Unprocessable(MediaError, code=codes.UNPROCESSABLE):
    pass


class ContentRejected(Unprocessable, code=codes.CONTENT_REJECTED):
    pass


class ContentBlocked(Unprocessable, code=codes.CONTENT_BLOCKED):
    pass


class RetryLater(MediaError):
    """A refusal that passes: it says when to try again (`Retry-After`, seconds)."""

    def __init__(self, detail: str, *, retry_after: int = 5, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class TooManyRequests(RetryLater, code=codes.TOO_MANY_REQUESTS):
    pass


class InsufficientStorage(MediaError, code=codes.INSUFFICIENT_STORAGE):
    pass


class Busy(RetryLater, code=codes.BUSY):
    pass


class ProcessingFailed(MediaError, code=codes.PROCESSING_FAILED):
    pass
