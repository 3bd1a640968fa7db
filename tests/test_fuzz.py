"""Property tests over random bytes and random multipart bodies.

Whatever arrives: never a 500, never a stack trace in a response, never a leftover row,
stored file or spool file. Example counts are fixed and small so `make test` stays fast;
raise them locally with `--hypothesis-seed` / `HYPOTHESIS_PROFILE=long`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import images
import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import bearer, multipart_body, stored_keys

from mediasvc.appkeys import DB
from mediasvc.config import Settings
from mediasvc.imaging.formats import LOADERS, sniff
from mediasvc.imaging.job import Facts, ImageRejected, ImageRules, Job
from mediasvc.imaging.pool import ImagingPool

settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile("long", parent=settings.get_profile("ci"), max_examples=2000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Real file starts, so random tails reach each format's header parser, not only libmagic.
MAGIC_PREFIXES = [
    b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
    b"\xff\xd8\xff\xc0\x00\x11\x08",
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    b"GIF89a",
    b"GIF87a",
    b"RIFF\x00\x00\x00\x00WEBPVP8 ",
    b"RIFF\x00\x00\x00\x00WEBPVP8X",
    b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1",
]
VALID_FILES = [
    images.make_tiny(),
    images.make_gif(width=8, height=8),
    images.make_jpeg(width=16, height=12),
]


@pytest.fixture
async def pool() -> AsyncIterator[ImagingPool]:
    """One worker, reused by every example; a crash would show as WorkerCrashed."""
    pool = ImagingPool(workers=1, queue_max=0, timeout_s=30)
    yield pool
    await pool.close()


def mutate(data: bytes, cut: int, flips: list[int]) -> bytes:
    """`data` truncated at `cut` with the bytes at `flips` inverted."""
    out = bytearray(data[: max(1, cut)])
    for index in flips:
        out[index % len(out)] ^= 0xFF
    return bytes(out)


@given(
    source=st.one_of(
        st.tuples(st.sampled_from(MAGIC_PREFIXES), st.binary(max_size=1024)).map(b"".join),
        st.tuples(
            st.sampled_from(VALID_FILES),
            st.integers(0, 20000),
            st.lists(st.integers(0, 20000), max_size=4),
        ).map(lambda args: mutate(*args)),
    )
)
async def test_random_bytes_are_refused_or_processed_never_crash(
    source: bytes, pool: ImagingPool, tmp_path: Path
) -> None:
    """Sniffer and pipeline answer any bytes with facts or ImageRejected, in a live worker."""
    mime = sniff(source)
    if mime not in LOADERS:
        return
    case = tmp_path / os.urandom(6).hex()
    case.mkdir()
    (case / "in").write_bytes(source)
    job = Job(
        source=str(case / "in"),
        out_dir=str(case),
        mime=mime,
        rules=ImageRules(max_pixels=4_000_000, max_frames=50, max_animation_pixels=8_000_000),
    )
    outcome = await process_or_refusal(pool, job)
    if isinstance(outcome, ImageRejected):
        assert outcome.code in {"invalid_image", "too_many_pixels", "too_many_frames"}
    else:
        assert len(outcome.variants) == 5


async def process_or_refusal(pool: ImagingPool, job: Job) -> Facts | ImageRejected:
    """The facts, or the refusal as a value; any other exception escapes and fails the test."""
    try:
        return await pool.process(job)
    except ImageRejected as rejected:
        return rejected


def part_strategy() -> st.SearchStrategy[tuple[dict[str, str], bytes]]:
    names = st.sampled_from(["file", "kind", "collection", "visibility", "x", ""])
    filenames = st.one_of(st.none(), st.text(max_size=20))
    dispositions = st.builds(
        lambda name, filename: (
            f'form-data; name="{name}"' + ("" if filename is None else f'; filename="{filename}"')
        ),
        names,
        filenames,
    ) | st.text(max_size=40)
    headers = st.fixed_dictionaries(
        {"Content-Disposition": dispositions},
        optional={
            "Content-Type": st.sampled_from(["image/jpeg", "text/plain", "multipart/mixed"]),
            "Content-Transfer-Encoding": st.sampled_from(["binary", "base64", "gzip"]),
        },
    )
    contents = st.one_of(
        st.sampled_from(VALID_FILES),
        st.binary(max_size=512),
        st.sampled_from(["post", "avatar", "public", "private", "profile"]).map(str.encode),
    )
    return st.tuples(headers, contents)


@given(
    parts=st.lists(part_strategy(), max_size=6),
    cut=st.one_of(st.none(), st.integers(0, 4000)),
    boundary=st.sampled_from(["b", "mediasvc-boundary", "x" * 70]),
)
async def test_random_forms_never_500_and_leave_nothing(
    client: TestClient[Any, Any],
    settings: Settings,
    parts: list[tuple[dict[str, str], bytes]],
    cut: int | None,
    boundary: str,
) -> None:
    """Random multipart bodies get 201 or a 4xx problem; refusals leave no row or file."""
    try:
        body, content_type = multipart_body(parts, boundary=boundary)
    except UnicodeEncodeError:
        return  # a header no HTTP client could send
    if cut is not None:
        body = body[:cut]
    rows_before = await client.app[DB].fetchval("SELECT count(*) FROM media")
    objects_before = await stored_keys(client)
    response = await client.post(
        "/v1/media", data=body, headers={**bearer(), "Content-Type": content_type}
    )
    text = await response.text()
    assert response.status < 500, text
    assert "Traceback" not in text
    assert list(settings.spool_dir.iterdir()) == []
    if response.status != 201:
        assert response.headers["Content-Type"].startswith("application/problem+json")
        assert await client.app[DB].fetchval("SELECT count(*) FROM media") == rows_before
        assert await stored_keys(client) == objects_before
