"""Hostile and broken input: each refusal is precise, and nothing is left behind.

Every case goes through the real app (and nginx where it matters) and checks the status,
the problem's stable `code`, that no row, stored file or spool file remains, and that the
next good upload still succeeds.
"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import aiohttp
import images
import jwt
import pytest
import structlog
from aiohttp.http_parser import HttpRequestParserPy
from gates import wait_until
from support import (
    JWT_SECRET,
    Client,
    assert_nothing_left,
    bearer,
    exchange,
    field_part,
    file_part,
    multipart_body,
    post_media,
    request_head,
    stored_bytes,
    stored_keys,
    upload_form,
)

from mediasvc.config import Settings
from mediasvc.ingest import MAX_PREAMBLE_BYTES
from mediasvc.spool import CHUNK_BYTES


async def post_raw(client: Client, body: bytes, content_type: str) -> aiohttp.ClientResponse:
    """POST a hand-built body to /v1/media with a valid token."""
    response: aiohttp.ClientResponse = await client.post(
        "/v1/media", data=body, headers={**bearer(), "Content-Type": content_type}
    )
    return response


async def assert_refused(
    response: aiohttp.ClientResponse, status: int, code: str | tuple[str, ...]
) -> dict[str, Any]:
    """The response is a problem with this status and code, and no stack trace."""
    text = await response.text()
    assert response.status == status, text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert "Traceback" not in text
    problem: dict[str, Any] = await response.json()
    codes = (code,) if isinstance(code, str) else code
    assert problem["code"] in codes
    assert problem["status"] == status
    return problem


async def assert_clean_and_healthy(client: Client, settings: Settings) -> None:
    """Nothing left behind, and a good upload still goes through."""
    await assert_nothing_left(client, settings)
    response = await post_media(client, images.make_jpeg())
    assert response.status == 201


class TestMultipartShape:
    @pytest.mark.parametrize(
        ("parts", "detail"),
        [
            ([field_part("kind", "post")] * 1000, "appears twice"),
            ([file_part(images.make_tiny(), filename="")], "not UTF-8 text"),
            (
                [file_part(images.make_tiny(), **{"Content-Transfer-Encoding": "base64"})],
                "Content-Transfer-Encoding",
            ),
            (
                [file_part(images.make_tiny(), **{"Content-Transfer-Encoding": "gzip"})],
                "Content-Transfer-Encoding",
            ),
            ([field_part("kind", "post"), field_part("kind", "avatar")], "twice"),
            ([field_part(f"extra{n}", "x") for n in range(9)], "Unexpected form part"),
            ([field_part("meta", "x" * 5000)], "longer than 4096"),
            (
                [
                    (
                        {"Content-Disposition": 'form-data; name="photo"; filename="b.jpg"'},
                        images.make_tiny(),
                    )
                ],
                "Unexpected form part 'photo'",
            ),
            ([field_part("kind", "x" * 1000)], "longer than"),
        ],
        ids=[
            "1000-parts",
            "binary-without-filename",
            "base64",
            "gzip",
            "duplicate-field",
            "nine-extra-parts",
            "long-extra-part",
            "second-file",
            "long",
        ],
    )
    async def test_malformed_forms_are_400(
        self, client: Client, settings: Settings, parts: list[Any], detail: str
    ) -> None:
        """Each malformed form shape is a 400 whose detail says what is wrong."""
        body, content_type = multipart_body([*parts, file_part(images.make_tiny())])
        problem = await assert_refused(
            await post_raw(client, body, content_type), 400, "bad_request"
        )
        assert detail in problem["detail"]
        await assert_clean_and_healthy(client, settings)

    @pytest.mark.parametrize(
        "extra",
        [
            # Uppy's XHR uploader with its defaults.
            [field_part("name", "photo.jpg"), field_part("type", "image/jpeg")],
            # FilePond: its metadata JSON under the file's own field name, no filename.
            [field_part("file", '{"caption": "at the beach"}')],
        ],
        ids=["uppy", "filepond"],
    )
    async def test_small_text_parts_uploaders_add_are_ignored(
        self, client: Client, extra: list[Any]
    ) -> None:
        """The text parts popular uploaders add by default do not stop the upload."""
        body, content_type = multipart_body([*extra, file_part(images.make_tiny())])
        response = await post_raw(client, body, content_type)
        assert response.status == 201, await response.text()
        assert (await response.json())["kind"] == "post"

    async def test_nested_multipart_is_400(self, client: Client, settings: Settings) -> None:
        """A multipart/mixed part inside the form is refused, not descended into."""
        inner, inner_type = multipart_body([file_part(images.make_tiny())], boundary="inner")
        body, content_type = multipart_body(
            [({"Content-Disposition": 'form-data; name="file"', "Content-Type": inner_type}, inner)]
        )
        await assert_refused(await post_raw(client, body, content_type), 400, "bad_request")
        await assert_clean_and_healthy(client, settings)

    async def test_huge_part_header_is_400(self, client: Client, settings: Settings) -> None:
        """A 200 KB part header line is refused without being buffered whole."""
        body, content_type = multipart_body(
            [file_part(images.make_tiny(), **{"X-Padding": "a" * 200_000})]
        )
        await assert_refused(await post_raw(client, body, content_type), 400, "bad_request")
        await assert_clean_and_healthy(client, settings)

    async def test_body_cut_before_the_closing_boundary_is_400(
        self, client: Client, settings: Settings
    ) -> None:
        """A body (of its declared length) that ends inside the file part is a malformed form:
        400 bad_request (incomplete_body is for a connection that drops)."""
        body, content_type = multipart_body([file_part(images.make_jpeg())])
        response = await post_raw(client, body[: len(body) // 2], content_type)
        await assert_refused(response, 400, "bad_request")
        await assert_clean_and_healthy(client, settings)


class TestSizeLimits:
    @pytest.fixture
    def settings(self, make_settings: Any) -> Settings:
        """A 64 KiB cap so tests can cross it cheaply."""
        result: Settings = make_settings(max_upload_bytes=64 * 1024)
        return result

    async def test_chunked_body_over_the_cap_is_413_mid_stream(
        self, client: Client, settings: Settings
    ) -> None:
        """Without a Content-Length the cap is found while streaming, and reading stops."""
        sent = 0
        header, content_type = multipart_body([file_part(b"")])
        head = header.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
        head = head.split(b"--mediasvc-boundary--")[0]

        async def body() -> AsyncIterator[bytes]:
            nonlocal sent
            yield head + b"\xff\xd8\xff\xe0" + b"\0" * 4092
            for _ in range(1000):  # up to 64 MB if nobody stopped reading
                sent += 65536
                yield b"\0" * 65536

        try:
            response = await client.post(
                "/v1/media", data=body(), headers={**bearer(), "Content-Type": content_type}
            )
            problem = await assert_refused(response, 413, "payload_too_large")
            assert problem["limit"] == 64 * 1024
        except (aiohttp.ClientError, ConnectionError):
            pass  # the server may close while we are still sending: it stopped reading
        assert sent < 16 * 1024 * 1024
        await assert_clean_and_healthy(client, settings)

    async def test_declared_length_over_the_cap_is_413_before_reading(
        self, client: Client, settings: Settings
    ) -> None:
        """A Content-Length over the cap is refused from the header alone."""
        reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
        writer.write(
            (
                "POST /v1/media HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: {bearer()['Authorization']}\r\n"
                "Content-Type: multipart/form-data; boundary=b\r\n"
                "Content-Length: 100000000\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(65536), 10)
        writer.close()
        assert answer.split(b"\r\n")[0].split()[1] == b"413"
        assert b'"code": "payload_too_large"' in answer
        await assert_clean_and_healthy(client, settings)

    async def test_chunked_upload_over_the_cap_through_nginx_is_413(
        self, nginx: str, http: aiohttp.ClientSession, client: Client, settings: Settings
    ) -> None:
        """Through nginx, a chunked body past the cap is a 413 problem, and nothing is left."""
        head, content_type = multipart_body([file_part(b"")])
        head = head.split(b"--mediasvc-boundary--")[0][:-2]

        async def body() -> AsyncIterator[bytes]:
            yield head + b"\xff\xd8\xff\xe0" + b"\0" * 4092
            for _ in range(100):
                yield b"\0" * 65536

        try:
            async with http.post(
                f"{nginx}/v1/media", data=body(), headers={**bearer(), "Content-Type": content_type}
            ) as response:
                await assert_refused(response, 413, "payload_too_large")
        except (aiohttp.ClientError, ConnectionError):
            pass  # nginx may close while we are still sending; the state check below decides
        await assert_clean_and_healthy(client, settings)


class TestTypes:
    @pytest.mark.parametrize(
        ("data", "filename", "declared"),
        [
            (b"<!DOCTYPE html><html><script>alert(1)</script></html>" * 50, "a.jpg", "image/jpeg"),
            (b"%PDF-1.7\n" + b"0" * 4000, "doc.png", "image/png"),
            (
                b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg">'
                b"<script>alert(1)</script></svg>",
                "i.svg",
                "image/svg+xml",
            ),
            (images.reference_pattern(64, 48).tiffsave_buffer(), "t.jpg", "image/jpeg"),
            (
                b"BM"
                + (70).to_bytes(4, "little")
                + b"\0" * 4
                + (54).to_bytes(4, "little")
                + (40).to_bytes(4, "little")
                + b"\x04\0\0\0\x04\0\0\0\x01\0\x18\0"
                + b"\0" * 72,
                "b.bmp",
                "image/bmp",
            ),
            (
                b"8BPS\x00\x01"
                + b"\0" * 6
                + b"\x00\x03"
                + b"\0\0\0\x40" * 2
                + b"\0\x08\0\x03"
                + b"\0" * 64,
                "p.png",
                "image/png",
            ),
            (b"\x00\x00\x00\x0cJXL \r\n\x87\n" + b"\0" * 100, "x.jpg", "image/jpeg"),
            (b"PK\x03\x04" + b"\0" * 200, "photo.jpg", "image/jpeg"),
        ],
        # HEIC is on the list with the mediasvc[heic] extra; tests/test_heif.py has its 415.
        ids=["html", "pdf", "svg-script", "tiff", "bmp", "psd", "jpeg-xl", "zip-as-jpg"],
    )
    async def test_types_off_the_allow_list_are_415_whatever_the_name_says(
        self, client: Client, settings: Settings, data: bytes, filename: str, declared: str
    ) -> None:
        """Magic bytes decide; the filename and declared type are ignored."""
        response = await post_media(client, data, filename=filename, content_type=declared)
        problem = await assert_refused(response, 415, "unsupported_media_type")
        assert "image/jpeg" in problem["accepted"]
        await assert_clean_and_healthy(client, settings)

    async def test_empty_file_is_422(self, client: Client, settings: Settings) -> None:
        """A zero-byte file is not an image."""
        response = await post_media(client, b"")
        await assert_refused(response, 422, "empty_file")
        await assert_clean_and_healthy(client, settings)

    async def test_an_image_declared_as_something_else_is_judged_by_its_bytes(
        self, client: Client
    ) -> None:
        """A PNG sent as text/plain named notes.txt is accepted as the PNG it is."""
        response = await post_media(
            client, images.make_png(), filename="notes.txt", content_type="text/plain"
        )
        assert response.status == 201
        assert (await response.json())["original"]["mime"] == "image/png"


class TestPixelBombs:
    @pytest.mark.parametrize(
        ("factory", "code"),
        [
            (images.make_png_header_bomb, "too_many_pixels"),
            (images.make_jpeg_header_bomb, "too_many_pixels"),
            (images.make_zero_png, "too_many_pixels"),
            (images.make_many_frame_gif, "too_many_frames"),
            pytest.param(
                images.make_heic_grid_bomb,
                "too_many_pixels",
                id="heic-grid-1MP-ispe-604MP-canvas",
                marks=pytest.mark.skipif(not images.HEIF_AVAILABLE, reason="no HEIF extra"),
            ),
        ],
        ids=[
            "png-30000x30000",
            "jpeg-60000x60000",
            "zero-png-100MP",
            "gif-5000-frames",
            "heic-grid-1MP-ispe-604MP-canvas",
        ],
    )
    async def test_bombs_are_422_from_the_header(
        self, client: Client, settings: Settings, factory: Any, code: str
    ) -> None:
        """Claimed sizes past the limits are refused before any full decode."""
        response = await post_media(client, factory())
        problem = await assert_refused(response, 422, code)
        assert "at most" in problem["detail"]
        await assert_clean_and_healthy(client, settings)


class TestCorruptFiles:
    @pytest.mark.parametrize(
        "factory",
        [
            images.make_jpeg,
            images.make_png,
            images.make_webp,
            images.make_gif,
            images.make_animated_gif,
            images.make_animated_webp,
        ],
        ids=["jpeg", "png", "webp", "gif", "animated-gif", "animated-webp"],
    )
    async def test_truncated_files_are_422(
        self, client: Client, settings: Settings, factory: Any
    ) -> None:
        """A file cut in half is refused, never stored with padding or missing frames."""
        data = factory()
        response = await post_media(client, data[: len(data) // 2])
        await assert_refused(response, 422, "invalid_image")
        await assert_clean_and_healthy(client, settings)

    async def test_png_with_a_bad_checksum_is_422(self, client: Client, settings: Settings) -> None:
        """A flipped byte in a PNG chunk fails its CRC and is refused."""
        data = bytearray(images.make_png())
        data[40] ^= 0xFF
        response = await post_media(client, bytes(data))
        await assert_refused(response, 422, "invalid_image")
        await assert_clean_and_healthy(client, settings)


class TestPolyglots:
    @pytest.mark.parametrize(
        ("factory", "payload"),
        [
            (images.make_jpeg_with_appended_html, b"mediasvc-polyglot"),
            (images.make_jpeg_with_script_comment, b"mediasvc-polyglot"),
            (images.make_gifar, b"MEDIASVC-GIFAR"),
        ],
        ids=["jpeg+html", "jpeg-comment-script", "gifar"],
    )
    async def test_polyglots_are_stored_only_as_re_encoded_pixels(
        self, client: Client, settings: Settings, factory: Any, payload: bytes
    ) -> None:
        """The image is accepted; no byte of the smuggled payload reaches any variant."""
        data = factory()
        assert payload in data
        response = await post_media(client, data)
        assert response.status == 201
        stored = await stored_keys(client)
        assert len(stored) == 5
        for key in stored:
            content = await stored_bytes(client, key)
            assert payload not in content
            assert b"<script" not in content
            assert b"PK\x03\x04" not in content


class TestFilenames:
    @pytest.mark.parametrize(
        ("filename", "status"),
        [
            # The name is never used for anything, so a path in it goes nowhere.
            pytest.param("../../etc/passwd", 201, id="traversal"),
            # aiohttp's header parser refuses a NUL byte in a header value.
            pytest.param("a\x00b.jpg", 400, id="nul"),
            # The CRLF ends the Content-Disposition line inside the quoted name, so the part
            # has no name (or, with warnings as errors, the header itself is refused).
            pytest.param("a\r\nX-Injected: 1.jpg", 400, id="crlf"),
            # Within the 64 KiB the app lets a header line have (aiohttp's max_field_size,
            # raised for tokens that list many spaces), which part headers share.
            pytest.param("n" * 10_000 + ".jpg", 201, id="10kb"),
            pytest.param(".", 201, id="dot"),
        ],
    )
    async def test_client_filenames_never_reach_a_path(
        self, client: Client, settings: Settings, filename: str, status: int
    ) -> None:
        """Whatever the filename, files land only under id-derived keys (or the form is 400)."""
        body, content_type = multipart_body([file_part(images.make_jpeg(), filename=filename)])
        response = await post_raw(client, body, content_type)
        if status == 400:
            await assert_refused(response, 400, "bad_request")
            await assert_clean_and_healthy(client, settings)
            return
        assert response.status == 201, await response.text()
        media_id = (await response.json())["id"]
        assert await stored_keys(client) == sorted(
            f"{media_id[:2]}/{media_id}/{name}.webp"
            for name in ("thumbnail", "small", "medium", "large", "full")
        )
        assert "passwd" not in (await response.text())


class TestAuth:
    @pytest.mark.parametrize(
        "token",
        [
            "",
            "not.a.jwt",
            jwt.encode({"sub": "alice", "exp": 2**40}, None, algorithm="none"),
            jwt.encode({"sub": "alice", "exp": 2**40}, "wrong" * 10, algorithm="HS256"),
            jwt.encode({"sub": "alice", "exp": 1}, JWT_SECRET, algorithm="HS256"),
            jwt.encode({"sub": "alice"}, JWT_SECRET, algorithm="HS256"),
        ],
        ids=["empty", "malformed", "alg-none", "wrong-signature", "expired", "no-exp"],
    )
    async def test_bad_tokens_are_401_with_www_authenticate(
        self, client: Client, settings: Settings, token: str
    ) -> None:
        """Every bad token is refused before the body is read, with a Bearer challenge."""
        response = await client.post(
            "/v1/media",
            data=upload_form(images.make_jpeg()),
            headers={"Authorization": f"Bearer {token}"},
        )
        await assert_refused(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        await assert_clean_and_healthy(client, settings)


def finished_requests(logs: list[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    """The canonical request lines among captured log entries."""
    return [e for e in logs if e["event"] == "request.finished"]


class TestAbortedUploads:
    async def test_client_gone_mid_upload_leaves_nothing_and_logs_once(
        self, nginx: str, client: Client, settings: Settings
    ) -> None:
        """Half a body, then the socket closes: no row, no file, no spool, no traceback."""
        data = images.make_noisy_jpeg(width=2000, height=1500)
        body, content_type = multipart_body([file_part(data)])
        # The app reads one chunk ahead (for the part's boundary) before it spools a chunk:
        # half the body must hold more than two for the spool file below to appear.
        assert len(body) // 2 > 2 * CHUNK_BYTES
        host, port = nginx.removeprefix("http://").split(":")
        with structlog.testing.capture_logs() as logs:
            _, writer = await asyncio.open_connection(host, int(port))
            writer.write(
                (
                    f"POST /v1/media HTTP/1.1\r\nHost: {host}\r\n"
                    f"Authorization: {bearer()['Authorization']}\r\n"
                    f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
                ).encode()
                + body[: len(body) // 2]
            )
            await writer.drain()
            # The app is mid-upload once it spools the file part: then the socket closes.
            await wait_until(lambda: any(settings.spool_dir.glob("*.upload")), "the app spools")
            writer.close()
            # The app notices through nginx, in its own time.
            await wait_until(lambda: any(finished_requests(logs)), "the app logs the request")
        finished = finished_requests(logs)
        assert len(finished) == 1
        # 499: aiohttp's test server cancels the handler of a request whose client left
        # (handler_cancellation); `mediasvc serve` does not, and answers 400 incomplete_body.
        assert finished[0]["status"] == 499
        assert not [e for e in logs if "exc_info" in e or "exception" in e]
        await assert_clean_and_healthy(client, settings)


@pytest.fixture
async def body_routes(client: Client) -> list[tuple[str, str, str]]:
    """(method, path, content type) of every route that reads a request body; the content
    URL is a real session's, signed."""
    session = await client.post(
        "/v1/uploads", json={"content_type": "image/jpeg", "size": 1000}, headers=bearer()
    )
    assert session.status == 201
    content_url = (await session.json())["upload"]["url"]
    return [
        ("POST", "/v1/media", "multipart/form-data; boundary=b"),
        ("POST", "/v1/uploads", "application/json"),
        ("PUT", "/v1/collections/c/order", "application/json"),
        ("PUT", content_url, "application/octet-stream"),
    ]


# Ten million newlines: 10 MB inflated, about 10 KB as gzip.
NEWLINES_GZIP = gzip.compress(b"\n" * 10_000_000)


class TestEncodedBodies:
    @pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd", "gzip, gzip"])
    async def test_an_encoded_body_is_415_on_every_route_that_reads_one(
        self, client: Client, body_routes: list[tuple[str, str, str]], encoding: str
    ) -> None:
        """Bytes that decode as nothing, declared as encoded, sent straight to the app: each
        route that reads a body answers the 415 problem (never a 500 with a traceback)."""
        for method, path, content_type in body_routes:
            response = await client.request(
                method,
                path,
                data=b"\x1f\x8b\x08\x00 not what it says",
                headers={**bearer(), "Content-Encoding": encoding, "Content-Type": content_type},
            )
            problem = await assert_refused(response, 415, "unsupported_content_encoding")
            assert problem["actual"] == encoding

    async def test_a_gzip_bomb_is_refused_before_its_body_is_read(
        self, client: Client, settings: Settings
    ) -> None:
        """A form gzipped to 10 KB (10 MB of newlines inflated) gets its 415 while most of it
        is still unsent: nothing was inflated or read."""
        head = request_head(
            "POST",
            "/v1/media",
            "Content-Type: multipart/form-data; boundary=b",
            "Content-Encoding: gzip",
            f"Content-Length: {len(NEWLINES_GZIP)}",
        )
        status, problem = await exchange(client, head, NEWLINES_GZIP[:1024])
        assert (status, problem["code"]) == (415, "unsupported_content_encoding")
        await assert_clean_and_healthy(client, settings)

    async def test_every_content_encoding_header_counts(self, client: Client) -> None:
        """An empty Content-Encoding followed by a real one is still an encoded body."""
        head = request_head(
            "PUT",
            "/v1/collections/c/order",
            "Content-Type: application/json",
            "Content-Encoding: ",
            "Content-Encoding: br",
            "Content-Length: 2",
        )
        status, problem = await exchange(client, head, b"{}")
        assert (status, problem["code"], problem["actual"]) == (
            415,
            "unsupported_content_encoding",
            "br",
        )


class TestPreamble:
    async def test_a_long_preamble_is_400_without_reading_the_rest(
        self, client: Client, settings: Settings
    ) -> None:
        """A form that declares 10 MB and opens with newlines is refused once the bytes before
        its first boundary pass the cap, while the rest is still unsent."""
        head = request_head(
            "POST",
            "/v1/media",
            "Content-Type: multipart/form-data; boundary=b",
            "Content-Length: 10000000",
        )
        status, problem = await exchange(client, head, b"\r\n" * (4 * MAX_PREAMBLE_BYTES))
        assert (status, problem["code"], problem["limit"]) == (
            400,
            "bad_request",
            MAX_PREAMBLE_BYTES,
        )
        assert "before its first boundary" in problem["detail"]
        await assert_clean_and_healthy(client, settings)

    async def test_a_short_preamble_is_allowed(self, client: Client) -> None:
        """RFC 2046 lets a body say something before its first boundary: a few lines pass."""
        body, content_type = multipart_body([file_part(images.make_tiny())])
        preamble = b"This is a multi-part message in MIME format.\r\n" * 20
        assert len(preamble) < MAX_PREAMBLE_BYTES
        response = await post_raw(client, preamble + body, content_type)
        assert response.status == 201, await response.text()


class TestBrokenFraming:
    @pytest.fixture
    def pure_python_parser(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """aiohttp's pure-Python HTTP parser (AIOHTTP_NO_EXTENSIONS, or where no wheel
        exists): it hands a body whose chunk-size line is too long to the handler, which
        then reads RequestPayloadError. (The C parser refuses it before any handler runs.)"""
        monkeypatch.setattr(aiohttp.web_protocol, "HttpRequestParser", HttpRequestParserPy)

    async def test_a_malformed_chunk_is_400_incomplete_body_on_every_route(
        self, pure_python_parser: None, client: Client, body_routes: list[tuple[str, str, str]]
    ) -> None:
        """A chunked body whose second chunk-size line is longer than aiohttp allows (8190
        bytes): each route that reads a body answers 400 incomplete_body (never a 500 with
        a traceback)."""
        for method, path, content_type in body_routes:
            head = request_head(
                method, path, f"Content-Type: {content_type}", "Transfer-Encoding: chunked"
            )
            body = b"2\r\n{}\r\n" + b"0" * 9000 + b"1\r\n"
            status, problem = await exchange(client, head, body)
            assert (status, problem["code"]) == (400, "incomplete_body"), (path, problem)


class TestJsonBodies:
    @pytest.mark.parametrize("route", ["/v1/collections/c/order", "/v1/uploads"])
    async def test_an_unknown_charset_is_400_not_500(self, client: Client, route: str) -> None:
        """A JSON body declared in a charset Python does not know is read as the UTF-8 JSON
        must be, and refused as a bad body."""
        method = "PUT" if route.endswith("order") else "POST"
        response = await client.request(
            method,
            route,
            data=b'{"ids": ["\xff"]}',
            headers={**bearer(), "Content-Type": "application/json; charset=no-such-charset"},
        )
        await assert_refused(response, 400, "bad_request")
