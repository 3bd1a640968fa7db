"""`python -m bench.sweep`: the measurements behind the settings in docs/performance.md.

Not part of `make bench` (about two minutes on 2 cores). On the 12 MP input it measures:
WebP effort 0-6 and `smart_subsample`, AVIF effort against Pillow's AVIF default, the
decode routes (libvips `thumbnail`, DCT shrink, with and without an ICC round trip), and
libvips threads per worker against throughput with one worker per core.
"""

from __future__ import annotations

import io
import math
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyvips
from PIL import Image

from bench import pipeline as bare
from bench.inputs import photo_jpeg
from bench.isolated import Isolated, new_executor
from bench.limit import dct_shrink
from bench.timing import Sample, timed
from mediasvc.imaging.encode import WEBP_EFFORT
from mediasvc.imaging.job import DEFAULT_RULES
from mediasvc.imaging.variants import LARGEST, VARIANTS
from mediasvc.imaging.worker import init_worker

QUALITY = DEFAULT_RULES.quality
REPEATS = 5

# Variants of the source, made once per worker process.
_variants: dict[str, list[pyvips.Image]] = {}


def _ms(samples: list[Sample]) -> float:
    return round(statistics.median(s.wall_s for s in samples) * 1000, 1)


def _prepared(source: str) -> list[pyvips.Image]:
    if source not in _variants:
        full = pyvips.Image.thumbnail(source, LARGEST.size, height=LARGEST.size).copy_memory()
        _variants[source] = [full.thumbnail_image(s.size).copy_memory() for s in VARIANTS]
    return _variants[source]


def webp(source: str, effort: int, smart_subsample: bool) -> tuple[float, list[bytes]]:
    """Median ms to encode the five variants; the encoded files."""
    images = _prepared(source)

    def encode() -> list[bytes]:
        return [
            i.webpsave_buffer(
                Q=QUALITY, effort=effort, smart_subsample=smart_subsample, keep="none"
            )
            for i in images
        ]

    runs = [timed(encode) for _ in range(REPEATS)]
    return _ms([s for _, s in runs]), runs[0][0]


def avif(source: str, effort: int) -> tuple[float, bytes]:
    """Ms to encode the largest variant as AVIF (one run: effort 4 takes seconds)."""
    full = _prepared(source)[-1]
    encoded, sample = timed(
        lambda: full.heifsave_buffer(Q=QUALITY, compression="av1", effort=effort, keep="none")
    )
    return _ms([sample]), encoded


def pillow_encodes(source: str, method: int) -> dict[str, Any]:
    """Pillow's WebP (same method) and AVIF (its default speed) on the same pixels."""
    images = [
        Image.frombytes("RGB", (i.width, i.height), i.write_to_memory()) for i in _prepared(source)
    ]

    def save(image: Image.Image, fmt: str, **options: Any) -> bytes:
        out = io.BytesIO()
        image.save(out, fmt, quality=QUALITY, **options)
        return out.getvalue()

    runs = [timed(lambda: [save(i, "WEBP", method=method) for i in images]) for _ in range(REPEATS)]
    avif_file, avif_sample = timed(lambda: save(images[-1], "AVIF"))
    return {
        "webp_ms": _ms([s for _, s in runs]),
        "webp_bytes": sum(len(b) for b in runs[0][0]),
        "avif_ms": _ms([avif_sample]),
        "avif_bytes": len(avif_file),
    }


def decodes(source: str) -> dict[str, float]:
    """Median ms of each route to the largest variant in memory."""
    header = pyvips.Image.jpegload(source)
    shrink = dct_shrink(header.width, header.height, LARGEST.size)
    routes = {
        "thumbnail": lambda: pyvips.Image.thumbnail(source, LARGEST.size, height=LARGEST.size),
        "thumbnail + output_profile=srgb": lambda: pyvips.Image.thumbnail(
            source, LARGEST.size, height=LARGEST.size, output_profile="srgb"
        ),
        f"jpegload shrink={shrink} + thumbnail_image": lambda: pyvips.Image.jpegload(
            source, shrink=shrink, access="sequential"
        ).thumbnail_image(LARGEST.size, height=LARGEST.size),
        "full decode only (jpegload)": lambda: pyvips.Image.jpegload(source, access="sequential"),
    }

    def decode(route: Callable[[], pyvips.Image]) -> Sample:
        return timed(lambda: route().copy_memory())[1]

    return {name: _ms([decode(route) for _ in range(REPEATS)]) for name, route in routes.items()}


def dct_psnr(source: str) -> float:
    """PSNR of the largest variant by the DCT route against the same from a full decode."""
    header = pyvips.Image.jpegload(source)
    shrink = dct_shrink(header.width, header.height, LARGEST.size)
    fast = pyvips.Image.jpegload(source, shrink=shrink).thumbnail_image(LARGEST.size)
    return _psnr(fast, pyvips.Image.jpegload(source).thumbnail_image(LARGEST.size))


def init_with_threads(threads: int) -> None:
    """A service worker (`init_worker`), then `threads` libvips threads per pipeline."""
    init_worker()
    pyvips.concurrency_set(threads)


def _psnr(a: pyvips.Image, b: pyvips.Image) -> float:
    diff = a.extract_band(0, n=3).cast("float") - b.extract_band(0, n=3).cast("float")
    mse = float((diff * diff).avg())
    return 99.0 if mse == 0 else 10 * math.log10(255 * 255 / mse)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="mediasvc-sweep-") as tmp:
        source = str(Path(tmp) / "photo.jpg")
        Path(source).write_bytes(photo_jpeg(4000, 2880))
        worker = Isolated(init_worker)
        try:
            width, height, raw = worker.call(_lossless_full, source)
            reference = pyvips.Image.new_from_memory(raw, width, height, 3, "uchar")
            print(f"WebP, five variants, Q{QUALITY}   ms   bytes   PSNR(full) dB")
            for effort, smart in [(e, False) for e in range(7)] + [(WEBP_EFFORT, True)]:
                ms, files = worker.call(webp, source, effort, smart)
                label = f"effort {effort}" + (" smart_subsample" if smart else "")
                psnr = _psnr(pyvips.Image.new_from_buffer(files[-1], ""), reference)
                print(f"  {label:<26}{ms:>7.1f}{sum(map(len, files)):>8}{psnr:>8.2f}")
            print("AVIF, largest variant only      ms   bytes")
            for effort in (0, 2, 4):
                ms, encoded = worker.call(avif, source, effort)
                print(f"  libvips effort {effort:<15}{ms:>7.0f}{len(encoded):>8}")
            theirs = Isolated().call(pillow_encodes, source, WEBP_EFFORT)
            avif_ms, avif_bytes = theirs["avif_ms"], theirs["avif_bytes"]
            print(f"  Pillow AVIF default (speed 6) {avif_ms:>5.0f}{avif_bytes:>8}")
            print(
                f"Pillow WebP method {WEBP_EFFORT}: {theirs['webp_ms']} ms, "
                f"{theirs['webp_bytes']} bytes (same pixels)"
            )
            print("decode routes to the largest variant (ms, 1 thread)")
            for name, ms in worker.call(decodes, source).items():
                print(f"  {name:<44}{ms:>7.1f}")
            print(f"  DCT route vs full decode: PSNR {worker.call(dct_psnr, source):.1f} dB")
        finally:
            worker.close()
        _threads(source)
    return 0


def _lossless_full(source: str) -> tuple[int, int, bytes]:
    full = _prepared(source)[-1]
    return full.width, full.height, bytes(full.write_to_memory())


def _threads(source: str) -> None:
    workers = os.cpu_count() or 1
    print(
        f"libvips threads per worker, {workers} workers     1-process ms   {workers}-process img/s"
    )
    for threads in (1, 2):
        single = Isolated(init_with_threads, (threads,))
        latency = _ms([single.call(bare.once, source, "image/jpeg").sample for _ in range(REPEATS)])
        single.close()
        pool = new_executor(workers, init_with_threads, (threads,))
        bare.warm(pool, workers, source, "image/jpeg")
        batch = bare.batch(pool, source, "image/jpeg", 8 * workers)
        pool.shutdown()
        print(f"  {threads:<42}{latency:>7.1f}{batch.images_per_s:>14.2f}")


if __name__ == "__main__":
    sys.exit(main())
