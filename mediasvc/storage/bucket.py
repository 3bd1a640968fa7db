"""Where the bucket is on the network: the addresses its objects are reached at.

Two readers, one rule: nginx fetches variants from the first address (`stack.nginxconf`),
and the upload page lets a browser send a session's bytes to any of them, since botocore
may presign for each (`web.page`'s CSP). The API's origin is the configured endpoint's, or
AWS's regional one (and its global name); virtual-host addresses (`bucket.host`) are
used only when the addressing style allows them and the bucket's name can be a host name.
With `auto`, nginx keeps path style, which reaches every bucket.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from mediasvc.config import Settings

# A bucket name botocore may put in a host name (else it presigns path style).
_HOST_SAFE_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]*")


@dataclass(frozen=True, slots=True)
class BucketAddress:
    """One way to reach the bucket: an origin (`scheme://host[:port]`) and the path of the
    service's key prefix on it (no trailing slash; empty for a virtual host without one)."""

    origin: str
    path: str


def bucket_addresses(settings: Settings) -> list[BucketAddress]:
    """Every address of the bucket, the preferred first: virtual host style first when the
    style is `virtual`, path style first otherwise."""
    prefix = settings.s3_prefix.rstrip("/")
    path_style = [
        BucketAddress(origin, f"/{settings.s3_bucket}" + (f"/{prefix}" if prefix else ""))
        for origin in _api_origins(settings)
    ]
    virtual = []
    if settings.s3_addressing_style != "path" and _HOST_SAFE_BUCKET.fullmatch(settings.s3_bucket):
        virtual = [
            BucketAddress(_on_host(origin, settings.s3_bucket), f"/{prefix}".rstrip("/"))
            for origin in _api_origins(settings)
        ]
    if settings.s3_addressing_style == "virtual":
        return virtual + path_style
    return path_style + virtual


def _api_origins(settings: Settings) -> list[str]:
    """The S3 API's origins: the configured endpoint's, or AWS's regional one and then its
    global name (which botocore also presigns with)."""
    if settings.s3_endpoint_url:
        parts = urlsplit(settings.s3_endpoint_url)
        return [f"{parts.scheme}://{parts.netloc}"]
    return [f"https://s3.{settings.s3_region}.amazonaws.com", "https://s3.amazonaws.com"]


def _on_host(origin: str, bucket: str) -> str:
    parts = urlsplit(origin)
    return f"{parts.scheme}://{bucket}.{parts.netloc}"
