"""nginx's read path from an S3 bucket: only GET and HEAD reach it, no client query string
does, one cache entry per key, limited per address (apart from the API), and none of the
bucket's errors shown.

nginx runs in front of moto over HTTP with no app node behind it (the read path never needs
one); a small fake bucket stands in where the bucket must fail or present a bad certificate.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from aiohttp import web
from conftest import s3_admin_client
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from multidict import CIMultiDictProxy
from support import running_nginx, signed

from mediasvc.config import Settings
from mediasvc.ids import new_media_id
from mediasvc.stack.localproc import free_port

WEBP = b"RIFF\x1a\x00\x00\x00WEBPVP8L" + b"\x00" * 14
S3_ERROR = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
    "<Message>bucket says no</Message><BucketName>media-fake</BucketName>"
    "<RequestId>4442587FB7D0A2F9</RequestId></Error>"
)


@pytest.fixture
def backend() -> str:
    """Everything in this module reads from S3."""
    return "s3"


@pytest.fixture
async def bucket_nginx(settings: Settings) -> AsyncIterator[str]:
    """nginx in front of this test's bucket; its app upstream is a port nobody listens on."""
    async with running_nginx(settings, [free_port()]) as base_url:
        yield base_url


def put_variant(settings: Settings, data: bytes = WEBP, *, private: bool = False) -> str:
    """Store `data` at a fresh well-shaped variant key (below `private/` if asked); the key."""
    media_id = new_media_id()
    key = f"{media_id[:2]}/{media_id}/full.webp"
    s3_admin_client(settings.s3_endpoint_url or "").put_object(
        Bucket=settings.s3_bucket,
        Key=("private/" if private else "") + key,
        Body=data,
        ContentType="image/webp",
    )
    return key


def bucket_object(settings: Settings, key: str) -> bytes:
    """The object's current bytes, read from the bucket directly."""
    admin = s3_admin_client(settings.s3_endpoint_url or "")
    data: bytes = admin.get_object(Bucket=settings.s3_bucket, Key=key)["Body"].read()
    return data


class TestOnlyReads:
    @pytest.mark.parametrize("method", ["PUT", "DELETE", "POST"])
    async def test_writes_to_a_public_url_are_refused_and_the_object_stays(
        self, bucket_nginx: str, http: aiohttp.ClientSession, settings: Settings, method: str
    ) -> None:
        """A write method never reaches the bucket: plain 404, the object is unchanged."""
        key = put_variant(settings)
        async with http.request(method, f"{bucket_nginx}/media/{key}", data=b"evil") as response:
            assert response.status == 404
            assert b"<Error>" not in await response.read()
        assert bucket_object(settings, key) == WEBP

    @pytest.mark.parametrize("method", ["PUT", "DELETE"])
    async def test_writes_to_a_signed_private_url_are_refused_and_the_object_stays(
        self, bucket_nginx: str, http: aiohttp.ClientSession, settings: Settings, method: str
    ) -> None:
        """A valid signature grants a read, never a write: plain 404, the object is unchanged."""
        key = put_variant(settings, private=True)
        async with http.request(method, bucket_nginx + signed(key), data=b"evil") as response:
            assert response.status == 404
            assert b"<Error>" not in await response.read()
        assert bucket_object(settings, f"private/{key}") == WEBP

    async def test_reads_are_still_served(
        self, bucket_nginx: str, http: aiohttp.ClientSession, settings: Settings
    ) -> None:
        """GET on both kinds of URL, and HEAD on a public one, are answered with the object."""
        public, private = put_variant(settings), put_variant(settings, private=True)
        # (HEAD of a private URL reaches the bucket as HEAD, which moto's policy check calls
        # another action than s3:GetObject; AWS authorises both with it.)
        async with http.head(f"{bucket_nginx}/media/{public}") as response:
            assert response.status == 200
            assert response.headers["Content-Length"] == str(len(WEBP))
        for url in (f"/media/{public}", signed(private)):
            async with http.get(bucket_nginx + url) as response:
                assert response.status == 200
                assert await response.read() == WEBP

    async def test_writes_never_reach_a_bucket_that_would_take_them(
        self,
        aiohttp_server: Any,
        make_settings: Callable[..., Settings],
        http: aiohttp.ClientSession,
    ) -> None:
        """Even a bucket whose policy let anyone write never sees a write from nginx."""
        bucket = FakeBucket()
        server = await aiohttp_server(bucket.app())
        key = f"ab/{'a' * 22}/full.webp"
        async with fake_bucket_nginx(make_settings, f"http://127.0.0.1:{server.port}") as url:
            for method in ("PUT", "DELETE", "POST", "PATCH"):
                for path in (f"/media/{key}", signed(key)):
                    async with http.request(method, url + path, data=b"evil") as response:
                        assert response.status == 404
        assert bucket.requests == []


class TestClientQueryStaysOut:
    @pytest.fixture
    def versioned(self, settings: Settings) -> Iterator[Callable[[str], str]]:
        """Turn versioning on; yields a function that deletes a key and gives its old version."""
        admin = s3_admin_client(settings.s3_endpoint_url or "")
        bucket = settings.s3_bucket
        admin.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})

        def delete(key: str) -> str:
            version: str = admin.head_object(Bucket=bucket, Key=key)["VersionId"]
            admin.delete_object(Bucket=bucket, Key=key)
            return version

        yield delete
        # Old versions and delete markers would keep the bucket from being removed.
        listing = admin.list_object_versions(Bucket=bucket)
        for entry in listing.get("Versions", []) + listing.get("DeleteMarkers", []):
            admin.delete_object(Bucket=bucket, Key=entry["Key"], VersionId=entry["VersionId"])

    @pytest.mark.parametrize("private", [False, True], ids=["public", "signed"])
    async def test_a_deleted_variant_is_not_readable_by_its_version_id(
        self,
        bucket_nginx: str,
        http: aiohttp.ClientSession,
        settings: Settings,
        versioned: Callable[[str], str],
        private: bool,
    ) -> None:
        """`versionId` added to a public URL, or to a signed URL still valid, is dropped before
        the bucket: a deleted variant is not brought back (404, not the bytes)."""
        key = put_variant(settings, private=private)
        version = versioned(f"private/{key}" if private else key)
        path = signed(key) if private else f"/media/{key}"
        # aiohttp adds the parameter to the query the signed path already has.
        async with http.get(bucket_nginx + path, params={"versionId": version}) as response:
            assert response.status == 404
            assert await response.read() != WEBP

    async def test_response_overrides_are_not_passed_on(
        self, bucket_nginx: str, http: aiohttp.ClientSession, settings: Settings
    ) -> None:
        """`?response-content-type=text/html` cannot turn a variant into a page."""
        key = put_variant(settings)
        url = f"{bucket_nginx}/media/{key}?response-content-type=text/html"
        async with http.get(url) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "image/webp"

    async def test_query_strings_share_one_cache_entry(
        self, bucket_nginx: str, http: aiohttp.ClientSession, settings: Settings
    ) -> None:
        """A random query string is not a way around nginx's cache to the bucket."""
        key = put_variant(settings)
        statuses = []
        for query in ("", "?a=1", "?cachebust=2"):
            async with http.get(f"{bucket_nginx}/media/{key}{query}") as response:
                assert response.status == 200
                statuses.append(response.headers["X-Cache-Status"])
        assert statuses == ["MISS", "HIT", "HIT"]


class TestReadRate:
    async def test_gallery_burst_past_the_api_burst_is_served(
        self, make_settings: Callable[..., Settings], http: aiohttp.ClientSession
    ) -> None:
        """Ten immediate reads from one address, past the API's burst of 2 but within the
        media burst of 20, are all served: variant reads are not held to the API's limit."""
        settings = make_settings(
            rate_api_per_s=2, rate_api_burst=2, rate_media_per_s=2, rate_media_burst=20
        )
        public, private = put_variant(settings), put_variant(settings, private=True)
        statuses = []
        async with running_nginx(settings, [free_port()]) as url:
            for path in [f"/media/{public}", signed(private)] * 5:
                async with http.get(url + path) as response:
                    statuses.append(response.status)
        assert statuses == [200] * 10

    async def test_variant_flood_from_one_address_is_429_problem(
        self, make_settings: Callable[..., Settings], http: aiohttp.ClientSession
    ) -> None:
        """Ten immediate reads against a media rate of 2/s with a burst of 3 (the API's
        limits at their defaults): the tail is a 429 problem, for public and private URLs."""
        settings = make_settings(rate_media_per_s=2, rate_media_burst=3)
        public, private = put_variant(settings), put_variant(settings, private=True)
        statuses, refused_paths, problems = [], set(), []
        async with running_nginx(settings, [free_port()]) as url:
            for path in [f"/media/{public}", signed(private)] * 5:
                async with http.get(url + path) as response:
                    statuses.append(response.status)
                    if response.status == 429:
                        refused_paths.add(path)
                        assert response.headers["Retry-After"]
                        assert response.headers["X-Content-Type-Options"] == "nosniff"
                        problems.append(
                            await response.json(content_type="application/problem+json")
                        )
        assert statuses[:4] == [200] * 4
        assert statuses.count(429) >= 4
        assert refused_paths == {f"/media/{public}", signed(private)}
        assert {problem["code"] for problem in problems} == {"too_many_requests"}


class FakeBucket:
    """A bucket that answers every request alike, with the object (status 200) or with one
    S3-style error, and logs the requests."""

    def __init__(self, status: int = 200, code: str = "") -> None:
        self.status, self.code = status, code
        self.requests: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(f"{request.method} {request.path_qs}")
        if self.status == 200:
            return web.Response(body=WEBP, content_type="image/webp")
        headers = {"x-amz-request-id": "4442587FB7D0A2F9", "x-amz-bucket-region": "eu-west-1"}
        if 300 <= self.status < 400:
            headers["Location"] = "https://media-fake.s3.eu-west-1.amazonaws.com/"
        return web.Response(
            status=self.status,
            text=S3_ERROR.format(code=self.code),
            content_type="application/xml",
            headers=headers,
        )

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app


def fake_bucket_nginx(
    make_settings: Callable[..., Settings], endpoint: str, **site_changes: Any
) -> AbstractAsyncContextManager[str]:
    """nginx whose bucket is at `endpoint` (a context manager yielding its base URL)."""
    settings = make_settings(s3_endpoint_url=endpoint, s3_bucket="media-fake")
    return running_nginx(settings, [free_port()], **site_changes)


# nginx's answer: status, headers, body.
Answer = tuple[int, CIMultiDictProxy[str], bytes]
# Asks nginx for variants from a bucket that fails with (status, S3 error code); its answers.
FailingBucket = Callable[[int, str], Awaitable[list[Answer]]]


class TestBucketErrors:
    @pytest.fixture
    def failing_bucket(
        self,
        aiohttp_server: Any,
        make_settings: Callable[..., Settings],
        http: aiohttp.ClientSession,
    ) -> FailingBucket:
        """Asks nginx for a public and a signed variant whose bucket answers `status` with
        the S3 error `code`; nginx's answers (each reached the bucket once)."""

        async def ask(status: int, code: str) -> list[Answer]:
            bucket = FakeBucket(status, code)
            server = await aiohttp_server(bucket.app())
            key = f"ab/{'a' * 22}/full.webp"
            answers = []
            endpoint = f"http://127.0.0.1:{server.port}"
            async with fake_bucket_nginx(make_settings, endpoint) as url:
                for path in (f"/media/{key}", signed(key)):
                    async with http.get(url + path, allow_redirects=False) as response:
                        answers.append((response.status, response.headers, await response.read()))
            assert len(bucket.requests) == 2
            return answers

        return ask

    @pytest.mark.parametrize(
        ("status", "code"),
        [
            (500, "InternalError"),
            (503, "SlowDown"),
            (501, "NotImplemented"),
            (301, "PermanentRedirect"),
        ],
    )
    async def test_bucket_failure_is_a_503_problem_without_its_xml(
        self, failing_bucket: FailingBucket, status: int, code: str
    ) -> None:
        """A bucket that fails or redirects: 503 busy with Retry-After, nothing of the bucket's."""
        for answer, headers, body in await failing_bucket(status, code):
            assert answer == 503
            assert headers["Content-Type"] == "application/problem+json"
            assert headers["Retry-After"] == "5"
            assert headers["X-Content-Type-Options"] == "nosniff"
            assert "Location" not in headers
            assert not [h for h in headers if h.lower().startswith("x-amz")]
            assert b"<Error>" not in body
            assert b"media-fake" not in body

    @pytest.mark.parametrize(
        ("status", "code"),
        [(400, "InvalidArgument"), (403, "AccessDenied"), (405, "MethodNotAllowed"), (409, "Busy")],
    )
    async def test_bucket_refusal_is_a_plain_404(
        self, failing_bucket: FailingBucket, status: int, code: str
    ) -> None:
        """Any 4xx of the bucket is the same empty-handed 404 as a missing key."""
        for answer, headers, body in await failing_bucket(status, code):
            assert answer == 404
            assert b"<Error>" not in body
            assert not [h for h in headers if h.lower().startswith("x-amz")]

    async def test_unreachable_bucket_is_a_503_problem(
        self, make_settings: Callable[..., Settings], http: aiohttp.ClientSession
    ) -> None:
        """Nothing listening at the endpoint: 503 busy, not nginx's 502 page."""
        key = f"ab/{'a' * 22}/full.webp"
        async with (
            fake_bucket_nginx(make_settings, f"http://127.0.0.1:{free_port()}") as url,
            http.get(f"{url}/media/{key}") as response,
        ):
            assert response.status == 503
            assert (await response.json(content_type=None))["code"] == "busy"


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by its own key: (certificate, key) PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("127.0.0.1")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "bucket.crt", directory / "bucket.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass(frozen=True)
class TlsBucket:
    """A fake bucket served over https, its endpoint, and its self-signed certificate."""

    bucket: FakeBucket
    endpoint: str
    cert: Path


# GETs a public variant through nginx whose bucket is at an endpoint; its status and body.
FetchVariant = Callable[..., Awaitable[tuple[int, bytes]]]


class TestBucketTls:
    @pytest.fixture
    async def tls_bucket(self, aiohttp_server: Any, tmp_path: Path) -> TlsBucket:
        """An https bucket with a self-signed certificate that serves one object at any path."""
        cert, key = self_signed_certificate(tmp_path)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        bucket = FakeBucket()
        server = await aiohttp_server(bucket.app(), ssl=context)
        return TlsBucket(bucket, f"https://127.0.0.1:{server.port}", cert)

    @pytest.fixture
    def fetch(
        self, make_settings: Callable[..., Settings], http: aiohttp.ClientSession
    ) -> FetchVariant:
        """GETs a public variant through nginx whose bucket is at `endpoint`, with
        `site_changes`; its status and body."""

        async def fetch(endpoint: str, **site_changes: Any) -> tuple[int, bytes]:
            async with (
                fake_bucket_nginx(make_settings, endpoint, **site_changes) as url,
                http.get(f"{url}/media/ab/{'a' * 22}/full.webp") as response,
            ):
                return response.status, await response.read()

        return fetch

    async def test_untrusted_bucket_certificate_is_refused(
        self, tls_bucket: TlsBucket, fetch: FetchVariant
    ) -> None:
        """Against the system CAs a self-signed bucket fails the handshake: 503, no request."""
        status, _ = await fetch(tls_bucket.endpoint)
        assert status == 503
        assert tls_bucket.bucket.requests == []

    async def test_bucket_certificate_from_the_trusted_set_is_accepted(
        self, tls_bucket: TlsBucket, fetch: FetchVariant
    ) -> None:
        """With the bucket's CA trusted the same URL is served (so the 503 above was the check)."""
        status, body = await fetch(tls_bucket.endpoint, s3_trusted_ca=tls_bucket.cert)
        assert status == 200
        assert body == WEBP
        assert len(tls_bucket.bucket.requests) == 1


class FakeNameServer(asyncio.DatagramProtocol):
    """A DNS server on loopback that knows one name (A record, 127.0.0.1) and logs queries."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.queries: list[tuple[str, int]] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        labels, offset = [], 12
        while data[offset]:
            length = data[offset]
            labels.append(data[offset + 1 : offset + 1 + length].decode())
            offset += 1 + length
        qname, (qtype,) = ".".join(labels), struct.unpack("!H", data[offset + 1 : offset + 3])
        self.queries.append((qname, qtype))
        question = data[12 : offset + 5]
        answers = b""
        if qname == self.name and qtype == 1:
            # A pointer to the question's name, type A, class IN, TTL 1 s, 4 bytes of address.
            answers = struct.pack("!HHHIH", 0xC00C, 1, 1, 1, 4) + socket.inet_aton("127.0.0.1")
        flags = 0x8180 if qname == self.name else 0x8183  # NOERROR or NXDOMAIN
        (query_id,) = struct.unpack("!H", data[:2])
        header = struct.pack("!HHHHHH", query_id, flags, 1, 1 if answers else 0, 0, 0)
        assert self.transport is not None
        self.transport.sendto(header + question + answers, addr)


class TestBucketByName:
    async def test_bucket_host_name_is_resolved_when_requests_come(
        self,
        aiohttp_server: Any,
        make_settings: Callable[..., Settings],
        http: aiohttp.ClientSession,
    ) -> None:
        """nginx starts although no DNS knows the bucket's name, then asks its resolver."""
        name = "bucket.mediasvc.test"
        loop = asyncio.get_running_loop()
        transport, dns = await loop.create_datagram_endpoint(
            lambda: FakeNameServer(name), local_addr=("127.0.0.1", 0)
        )
        try:
            bucket = FakeBucket()
            server = await aiohttp_server(bucket.app())
            dns_port = transport.get_extra_info("sockname")[1]
            async with (
                fake_bucket_nginx(
                    make_settings,
                    f"http://{name}:{server.port}",
                    s3_resolvers=(f"127.0.0.1:{dns_port}",),
                ) as url,
                http.get(f"{url}/media/ab/{'a' * 22}/full.webp") as response,
            ):
                assert response.status == 200
                assert await response.read() == WEBP
        finally:
            transport.close()
        assert (name, 1) in dns.queries
        assert bucket.requests == [f"GET /media-fake/ab/{'a' * 22}/full.webp"]
