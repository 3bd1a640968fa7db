"""The floor for this work: one shrink-on-load decode, five encodes, nothing else.

Runs in a worker set up by `worker.init_worker`, so libvips has the same thread count and
cache as the service's workers. The decode is the cheapest libvips route to the largest
variant: libjpeg's DCT scaling by the largest power of two that keeps the target size, then
one Lanczos resize, materialised in memory. The encodes are timed alone on images prepared
beforehand, with the service's encoder (`imaging.encode`), quality and effort, into memory.
"""

from __future__ import annotations

import pyvips

from bench.timing import Sample, timed
from mediasvc.imaging.encode import encode_still
from mediasvc.imaging.variants import LARGEST, VARIANTS

# Sources already decoded to each variant size in this worker, so encodes are timed alone.
_prepared: dict[str, list[pyvips.Image]] = {}


def dct_shrink(width: int, height: int, target: int) -> int:
    """The largest libjpeg shrink (8, 4, 2 or 1) that leaves the longest side >= `target`."""
    longest = max(width, height)
    return next(k for k in (8, 4, 2, 1) if longest // k >= target or k == 1)


def decode(source: str) -> pyvips.Image:
    """The source at the largest variant's size, upright, in memory."""
    header = pyvips.Image.jpegload(source)
    shrink = dct_shrink(header.width, header.height, LARGEST.size)
    loaded = pyvips.Image.jpegload(source, shrink=shrink, access="sequential", fail_on="error")
    return loaded.thumbnail_image(LARGEST.size, height=LARGEST.size, size="down").copy_memory()


def encode_all(images: list[pyvips.Image], quality: int, effort: int) -> list[int]:
    """Encode each image to WebP as the service does; the byte counts."""
    return [len(encode_still(image, quality=quality, effort=effort)) for image in images]


def once(source: str, quality: int, effort: int) -> dict[str, Sample]:
    """One round: the decode alone, then the five encodes alone."""
    if source not in _prepared:
        full = decode(source)
        _prepared[source] = [
            full if spec is LARGEST else full.thumbnail_image(spec.size).copy_memory()
            for spec in VARIANTS
        ]
    _, decoding = timed(lambda: decode(source))
    _, encoding = timed(lambda: encode_all(_prepared[source], quality, effort))
    return {"decode": decoding, "encode": encoding}


def thumbnail_once(source: str) -> Sample:
    """libvips' own `thumbnail` to the largest size, for comparison with `decode`."""
    _, sample = timed(
        lambda: pyvips.Image.thumbnail(
            source, LARGEST.size, height=LARGEST.size, size="down", fail_on="error"
        ).copy_memory()
    )
    return sample


def concurrency() -> int:
    """libvips' worker threads per pipeline in this process."""
    return int(pyvips.concurrency_get())
