"""Open the storage backend the settings name, for the lifetime of the app or a command."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from mediasvc.config import Settings
from mediasvc.storage import Storage


@asynccontextmanager
async def open_storage(settings: Settings) -> AsyncIterator[Storage]:
    """The configured backend, opened for the lifetime of the app."""
    # Each backend is imported when chosen: a node on local disk never loads aiobotocore.
    if settings.storage == "s3":
        from mediasvc.storage.s3 import S3Storage, open_client

        async with open_client(settings) as client:
            yield S3Storage(client, settings.s3_bucket, settings.s3_prefix)
    else:
        from mediasvc.storage.local import LocalStorage

        storage = LocalStorage(settings.media_dir)
        try:
            yield storage
        finally:
            storage.close()
