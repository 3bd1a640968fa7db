"""The S3 backend against a real S3-compatible server over HTTP, and nginx reading from it."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp
import images
import pytest
from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from conftest import S3_CREDENTIALS, s3_admin_client
from support import Client, post_media, stored_keys

from mediasvc.appkeys import DB
from mediasvc.config import Settings
from mediasvc.stack.localproc import free_port
from mediasvc.storage import DirectUploadTerms, StorageError
from mediasvc.storage.s3 import PRIVATE_CACHE_CONTROL, PUBLIC_CACHE_CONTROL, S3Storage, open_client


@pytest.fixture
def backend() -> str:
    """Everything in this module runs on S3."""
    return "s3"


@pytest.fixture
async def storage(settings: Settings) -> AsyncIterator[S3Storage]:
    """The backend as the app opens it, on this test's bucket, with a key prefix."""
    async with open_client(settings) as client:
        yield S3Storage(client, settings.s3_bucket, "tenant-a/")


class TestBackend:
    async def test_put_stores_bytes_type_and_cache_control(
        self, storage: S3Storage, settings: Settings, tmp_path: Path
    ) -> None:
        """Objects land under the prefix with the headers readers need."""
        source = tmp_path / "v"
        source.write_bytes(b"webp-bytes")
        await storage.put("ab/abc/full.webp", source, "image/webp")
        await storage.put("private/ab/abc/full.webp", source, "image/webp")
        admin = s3_admin_client(settings.s3_endpoint_url or "")
        public = admin.get_object(Bucket=settings.s3_bucket, Key="tenant-a/ab/abc/full.webp")
        assert public["Body"].read() == b"webp-bytes"
        assert public["ContentType"] == "image/webp"
        assert public["CacheControl"] == PUBLIC_CACHE_CONTROL
        private = admin.head_object(
            Bucket=settings.s3_bucket, Key="tenant-a/private/ab/abc/full.webp"
        )
        assert private["CacheControl"] == PRIVATE_CACHE_CONTROL

    async def test_scan_lists_keys_without_the_prefix_and_delete_is_idempotent(
        self, storage: S3Storage, tmp_path: Path
    ) -> None:
        """What put wrote, scan finds; delete removes it, twice without error."""
        source = tmp_path / "v"
        source.write_bytes(b"x")
        keys = [f"ab/abc/{name}.webp" for name in ("small", "full")]
        for key in keys:
            await storage.put(key, source, "image/webp")
        assert sorted([o.key async for o in storage.scan()]) == sorted(keys)
        await storage.delete(keys)
        await storage.delete(keys)
        assert [o.key async for o in storage.scan()] == []

    async def test_unreachable_endpoint_is_a_storage_error(
        self, make_settings: Any, tmp_path: Path
    ) -> None:
        """A closed port fails fast with StorageError, for writes and for readiness."""
        settings = make_settings(
            s3_endpoint_url=f"http://127.0.0.1:{free_port()}", storage_timeout_s=1.0
        )
        source = tmp_path / "v"
        source.write_bytes(b"x")
        async with open_client(settings) as client:
            storage = S3Storage(client, settings.s3_bucket)
            with pytest.raises(StorageError):
                await storage.put("ab/abc/full.webp", source, "image/webp")
            with pytest.raises(StorageError):
                await storage.check()


class TestServiceOnS3:
    async def test_missing_bucket_means_503_and_nothing_recorded(
        self, make_settings: Any, aiohttp_client: Any
    ) -> None:
        """Storage refusing every write: 503 busy with Retry-After, no row, spool empty."""
        from mediasvc.app import create_app

        settings = make_settings(s3_bucket="no-such-bucket-here")
        client = await aiohttp_client(create_app(settings))
        response = await post_media(client, images.make_jpeg())
        assert response.status == 503
        assert response.headers["Retry-After"]
        assert (await response.json())["code"] == "busy"
        assert await client.app[DB].fetchval("SELECT count(*) FROM media") == 0
        assert list(settings.spool_dir.iterdir()) == []
        readiness = await client.get("/readyz")
        assert readiness.status == 503
        assert (await readiness.json())["checks"]["storage"] == "unavailable"

    async def test_nginx_hides_bucket_headers_and_caches_hot_variants(
        self, client: Client, nginx: str, http: aiohttp.ClientSession
    ) -> None:
        """No x-amz-* header reaches clients; the second read is a cache hit."""
        body = await (await post_media(client, images.make_jpeg())).json()
        url = nginx + body["variants"]["medium"]["url"]
        statuses = []
        for _ in range(2):
            async with http.get(url) as response:
                assert response.status == 200
                leaked = [h for h in response.headers if h.lower().startswith("x-amz")]
                assert leaked == []
                assert "Access-Control-Allow-Origin" not in response.headers
                assert response.headers["Cache-Control"] == PUBLIC_CACHE_CONTROL
                statuses.append(response.headers["X-Cache-Status"])
        assert statuses == ["MISS", "HIT"]

    async def test_bucket_errors_reach_clients_as_plain_404(
        self, client: Client, nginx: str, http: aiohttp.ClientSession
    ) -> None:
        """A well-shaped key that is not in the bucket: 404, never the bucket's XML."""
        async with http.get(f"{nginx}/media/ab/{'a' * 22}/full.webp") as response:
            assert response.status == 404
            assert b"<Error>" not in await response.read()

    async def test_concurrent_uploads_write_five_objects_each(self, client: Client) -> None:
        """Variants are uploaded concurrently, and every ready media has exactly five."""
        responses = await asyncio.gather(
            *(post_media(client, images.make_jpeg()) for _ in range(4))
        )
        assert [r.status for r in responses] == [201] * 4
        assert len(await stored_keys(client)) == 20


def _signer(region: str) -> S3SigV4QueryAuth:
    """botocore's own SigV4 signer for the suite's credentials."""
    credentials = Credentials(
        S3_CREDENTIALS["AWS_ACCESS_KEY_ID"], S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
    )
    return S3SigV4QueryAuth(credentials, "s3", region, expires=60)


class TestPresignedUploadsAreSigV4:
    """Presigned PUTs and POST policies use Signature Version 4 (AWS refuses SigV2 on every
    bucket made since 2020), in every region and addressing style."""

    @pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
    @pytest.mark.parametrize("addressing", ["path", "virtual"])
    async def test_presigned_put_signs_type_and_length_with_sigv4(
        self, settings: Settings, region: str, addressing: str
    ) -> None:
        """A presigned PUT carries the SigV4 query fields for the region, signs the declared
        Content-Type and Content-Length, and its signature is what botocore's signer computes
        from the configured credentials (and not what another length would give)."""
        # Virtual addressing needs a host name, so it is tried against AWS's own endpoint
        # (presigning sends nothing).
        endpoint = None if addressing == "virtual" else settings.s3_endpoint_url
        settings = replace(
            settings, s3_region=region, s3_addressing_style=addressing, s3_endpoint_url=endpoint
        )
        async with open_client(settings) as client:
            direct = await S3Storage(client, settings.s3_bucket).direct_upload(
                "uploads/abc/raw",
                DirectUploadTerms(
                    content_type="image/jpeg",
                    size=1234,
                    max_bytes=1234,
                    method="put",
                    ttl_s=60,
                ),
            )
        assert direct is not None
        assert direct.method == "PUT"
        parts = urlsplit(direct.url)
        query = dict(parse_qsl(parts.query))
        assert not {"AWSAccessKeyId", "Signature"} & set(query)
        assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
        assert query["X-Amz-Credential"].endswith(f"/{region}/s3/aws4_request")
        assert query["X-Amz-SignedHeaders"] == "content-length;content-type;host"
        if addressing == "virtual":
            assert parts.netloc == f"{settings.s3_bucket}.s3.{region}.amazonaws.com", parts.netloc
        else:
            assert parts.path.startswith(f"/{settings.s3_bucket}/")

        def signature(length: str) -> str:
            unsigned = [(k, v) for k, v in parse_qsl(parts.query) if k != "X-Amz-Signature"]
            request = AWSRequest(
                method="PUT",
                url=urlunsplit(parts._replace(query=urlencode(unsigned))),
                headers={"Content-Type": "image/jpeg", "Content-Length": length},
            )
            request.context["timestamp"] = query["X-Amz-Date"]
            auth = _signer(region)
            canonical = auth.canonical_request(request)
            return str(auth.signature(auth.string_to_sign(request, canonical), request))

        assert query["X-Amz-Signature"] == signature("1234")
        assert query["X-Amz-Signature"] != signature("50000000")

    @pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
    async def test_presigned_post_policy_is_sigv4(self, settings: Settings, region: str) -> None:
        """A presigned POST has the SigV4 policy fields, a policy pinning the type and the
        size range, and a signature botocore's signer recomputes from the policy."""
        settings = replace(settings, s3_region=region)
        async with open_client(settings) as client:
            direct = await S3Storage(client, settings.s3_bucket).direct_upload(
                "uploads/abc/raw",
                DirectUploadTerms(
                    content_type="image/png",
                    size=None,
                    max_bytes=999,
                    method="post",
                    ttl_s=60,
                ),
            )
        assert direct is not None
        assert direct.method == "POST"
        fields = direct.fields
        assert not {"AWSAccessKeyId", "signature"} & set(fields)
        assert fields["x-amz-algorithm"] == "AWS4-HMAC-SHA256"
        assert fields["x-amz-credential"].endswith(f"/{region}/s3/aws4_request")
        policy = json.loads(base64.b64decode(fields["policy"]))
        assert ["content-length-range", 1, 999] in policy["conditions"]
        assert {"Content-Type": "image/png"} in policy["conditions"]

        request = AWSRequest(method="POST", url=direct.url)
        request.context["timestamp"] = fields["x-amz-date"]
        auth = _signer(region)
        assert fields["x-amz-signature"] == auth.signature(fields["policy"], request)
