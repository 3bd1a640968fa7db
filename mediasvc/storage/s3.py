"""S3-compatible backend (AWS, MinIO, Ceph, R2, ...) through one aiobotocore client.

Each variant is one PutObject, which S3 makes atomic: readers see the whole object or
none. Objects carry their Content-Type and Cache-Control, so nginx (which proxies reads
straight to the bucket) and any CDN see the right headers. Credentials come from the
standard AWS variables; the bucket needs no public ACLs (see deploy/README.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from mediasvc.config import Settings
from mediasvc.keys import is_private
from mediasvc.storage import (
    DirectUpload,
    DirectUploadTerms,
    ObjectMissing,
    StorageError,
    StoredFile,
    StoredObject,
)

PUBLIC_CACHE_CONTROL = "public, max-age=31536000, immutable"
PRIVATE_CACHE_CONTROL = "private, no-store"
# What GetObject answers for a key with no object.
_MISSING = frozenset({"NoSuchKey", "404"})
_READ_CHUNK = 1024 * 1024
# DeleteObjects takes at most 1000 keys per call.
_DELETE_BATCH = 1000
# aiohttp's own errors surface when the endpoint is down or drops the connection.
_UNAVAILABLE = (BotoCoreError, ClientError, OSError, asyncio.TimeoutError)


class S3Storage:
    """Variant objects in one bucket, under an optional key prefix."""

    put_needs_size = True

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self._client = client
        self.bucket = bucket
        self.prefix = prefix

    async def put(self, key: str, source: Path, content_type: str) -> None:
        body = await asyncio.to_thread(source.read_bytes)
        cache_control = PRIVATE_CACHE_CONTROL if is_private(key) else PUBLIC_CACHE_CONTROL
        try:
            await self._client.put_object(
                Bucket=self.bucket,
                Key=self.prefix + key,
                Body=body,
                ContentType=content_type,
                CacheControl=cache_control,
            )
        except _UNAVAILABLE as exc:
            raise StorageError(f"cannot write {key}: {exc}") from exc

    async def put_all(self, files: Sequence[StoredFile]) -> None:
        # Side by side. Every write runs to its end (each bounded by the storage timeout)
        # rather than being cancelled when another fails: then the caller's undo knows what
        # may exist, and no write lands after the undo removed what was there.
        outcomes = await asyncio.gather(
            *(self.put(f.key, f.path, f.mime) for f in files), return_exceptions=True
        )
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        if not errors:
            return
        if not all(isinstance(e, StorageError) for e in errors):
            raise next(e for e in errors if not isinstance(e, StorageError))
        raise StorageError(str(errors[0]), stored=len(outcomes) - len(errors))

    async def delete(self, keys: Iterable[str]) -> None:
        objects = [{"Key": self.prefix + key} for key in keys]
        try:
            for start in range(0, len(objects), _DELETE_BATCH):
                response = await self._client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": objects[start : start + _DELETE_BATCH], "Quiet": True},
                )
                if response.get("Errors"):
                    raise StorageError(f"cannot delete: {response['Errors'][0]}")
        except _UNAVAILABLE as exc:
            raise StorageError(f"cannot delete: {exc}") from exc

    async def delete_under(self, prefix: str) -> list[str]:
        keys = [obj.key async for obj in self._scan(prefix)]
        if keys:
            await self.delete(keys)
        return keys

    async def check(self) -> None:
        try:
            await self._client.head_bucket(Bucket=self.bucket)
        except _UNAVAILABLE as exc:
            raise StorageError(f"bucket {self.bucket} unreachable: {exc}") from exc

    async def read(self, key: str) -> AsyncIterator[bytes]:
        try:
            response = await self._client.get_object(Bucket=self.bucket, Key=self.prefix + key)
            async with response["Body"] as body:
                while chunk := await body.read(_READ_CHUNK):
                    yield chunk
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                raise ObjectMissing(key) from None
            raise StorageError(f"cannot read {key}: {exc}") from exc
        except _UNAVAILABLE as exc:
            raise StorageError(f"cannot read {key}: {exc}") from exc

    async def direct_upload(self, key: str, terms: DirectUploadTerms) -> DirectUpload | None:
        try:
            if terms.method == "put":
                assert terms.size is not None, "the session flow asks a PUT's size first"
                # SigV4 signs the type and the exact length into the URL, so the store
                # itself refuses a PUT of another size. Clients send that length anyway
                # (browsers must: they refuse to set it), so it is not in `headers`.
                url = await self._client.generate_presigned_url(
                    "put_object",
                    Params={
                        "Bucket": self.bucket,
                        "Key": self.prefix + key,
                        "ContentType": terms.content_type,
                        "ContentLength": terms.size,
                    },
                    ExpiresIn=terms.ttl_s,
                )
                return DirectUpload("PUT", url, headers={"Content-Type": terms.content_type})
            # The POST policy makes the store itself refuse another type or a bigger body.
            post = await self._client.generate_presigned_post(
                Bucket=self.bucket,
                Key=self.prefix + key,
                Fields={"Content-Type": terms.content_type},
                Conditions=[
                    {"Content-Type": terms.content_type},
                    ["content-length-range", 1, terms.max_bytes],
                ],
                ExpiresIn=terms.ttl_s,
            )
        except _UNAVAILABLE as exc:
            raise StorageError(f"cannot presign {key}: {exc}") from exc
        return DirectUpload("POST", post["url"], fields=dict(post["fields"]))

    def scan(self) -> AsyncIterator[StoredObject]:
        return self._scan("")

    async def _scan(self, below: str) -> AsyncIterator[StoredObject]:
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + below):
                for item in page.get("Contents", []):
                    key = item["Key"].removeprefix(self.prefix)
                    yield StoredObject(key, item["LastModified"], item["Size"])
        except _UNAVAILABLE as exc:
            raise StorageError(f"cannot list the bucket: {exc}") from exc


def client_config(settings: Settings) -> dict[str, Any]:
    """Arguments for `create_client`: bounded timeouts so a dead endpoint means 503 soon."""
    return {
        "endpoint_url": settings.s3_endpoint_url,
        "region_name": settings.s3_region,
        "config": AioConfig(
            # SigV4 always: botocore would otherwise presign with SigV2 in some regions,
            # which AWS refuses on every bucket made since 2020; and the region's own
            # endpoint, in us-east-1 too (not the legacy global one).
            signature_version="s3v4",
            s3={
                "addressing_style": settings.s3_addressing_style,
                "us_east_1_regional_endpoint": "regional",
            },
            connect_timeout=settings.storage_timeout_s,
            read_timeout=settings.storage_timeout_s,
            retries={"max_attempts": 2, "mode": "standard"},
        ),
    }


def open_client(settings: Settings) -> Any:
    """The async context manager that owns the process's one S3 client."""
    return get_session().create_client("s3", **client_config(settings))
