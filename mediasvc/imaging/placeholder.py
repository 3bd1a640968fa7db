"""What a page can show while an image loads: its ThumbHash and its dominant colour.

Both come from one small RGBA rendering of the image as served (first frame, upright, 8-bit
sRGB, flattened where the output format has no alpha), shrunk from the largest variant that
is already in memory: the source is never decoded twice.
"""

from __future__ import annotations

import base64
from collections import Counter
from typing import Any

from thumbhash import rgba_to_thumb_hash

# ThumbHash keeps only a few DCT terms (at most 7 across), so 32 px loses nothing visible:
# the hash of a 12 MP photo differs from the 64 px one in one base64 digit.
SIDE = 32
# Pixels less than half opaque are not what a viewer sees, so they get no vote.
_OPAQUE = 128
# Dominant-colour buckets keep the top 4 bits of each channel: 16x16x16 buckets.
_BUCKET_SHIFT = 4

RGB = tuple[int, int, int]


def rgba_pixels(image: Any) -> tuple[int, int, bytes]:
    """Width, height and non-premultiplied RGBA bytes of one 8-bit sRGB frame, at most SIDE px."""
    small = image.thumbnail_image(SIDE, height=SIDE, size="down")
    if not small.hasalpha():
        small = small.bandjoin(255)
    # write_to_memory gives a cffi buffer, whose items are 1-byte slices, not ints.
    return small.width, small.height, bytes(small.write_to_memory())


def thumbhash(width: int, height: int, rgba: bytes) -> str:
    """The ThumbHash of `rgba` pixels, in standard base64 with padding."""
    return base64.b64encode(rgba_to_thumb_hash(width, height, rgba)).decode("ascii")


def dominant_color(rgba: bytes) -> str:
    """The most common colour of `rgba` pixels, as `#rrggbb`.

    Every pixel at least half opaque falls into a bucket by the top 4 bits of its red, green
    and blue; the answer is the mean colour of the pixels in the fullest bucket (the first
    reached in raster order on a tie), so JPEG noise within a bucket averages out instead of
    splitting the vote. With no such pixel, as in a fully transparent image, it is the mean
    colour of all pixels.
    """
    pixels: list[RGB] = list(zip(rgba[0::4], rgba[1::4], rgba[2::4], strict=True))
    opaque = [p for p, alpha in zip(pixels, rgba[3::4], strict=True) if alpha >= _OPAQUE]
    chosen = pixels
    if opaque:
        [(fullest, _count)] = Counter(map(_bucket, opaque)).most_common(1)
        chosen = [p for p in opaque if _bucket(p) == fullest]
    return "#" + "".join(
        f"{round(sum(channel) / len(chosen)):02x}" for channel in zip(*chosen, strict=True)
    )


def _bucket(pixel: RGB) -> RGB:
    r, g, b = pixel
    return r >> _BUCKET_SHIFT, g >> _BUCKET_SHIFT, b >> _BUCKET_SHIFT
