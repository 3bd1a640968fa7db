"""The spool's writes: every chunk lands in order, however the network cut them."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from images import make_noisy_jpeg

from mediasvc import spool
from mediasvc.form import FileRules


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize(
    ("width", "size"), [(200, 1), (900, 500), (900, 65_536), (900, 3 * 1024 * 1024)]
)
async def test_spooled_bytes_and_hash_are_the_sent_ones(
    tmp_path: Path, width: int, size: int
) -> None:
    """A JPEG sent in chunks of `size` bytes is written and hashed exactly: byte by byte
    (thousands of pieces to one `writev`, past IOV_MAX), a few hundred, or at once."""
    data = make_noisy_jpeg(width=width, height=width * 3 // 4)
    rules = FileRules(max_bytes=len(data), accept=frozenset({"image/jpeg"}), kind=None)
    path = tmp_path / "upload"
    spooled = await spool.spool_chunks(_chunks(data, size), path, rules)
    assert path.read_bytes() == data
    assert (spooled.size, spooled.sha256, spooled.mime) == (
        len(data),
        hashlib.sha256(data).hexdigest(),
        "image/jpeg",
    )


def test_short_writes_are_continued(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A `writev` that takes only part of what it was given is called again for the rest."""
    real_writev = os.writev
    calls = []

    def short_writev(fd: int, buffers: list[memoryview]) -> int:
        calls.append(len(buffers))
        return real_writev(fd, [bytes(b"".join(buffers)[:7])])

    monkeypatch.setattr(spool.os, "writev", short_writev)
    chunks = [bytes([n]) * 5 for n in range(10)]
    path = tmp_path / "out"
    with path.open("xb", buffering=0) as out:
        spool._write_all(out.fileno(), chunks)
    assert path.read_bytes() == b"".join(chunks)
    assert len(calls) == 8  # 50 bytes, 7 at a time
