"""WebP files of still variants, encoded through Pillow's binding of libwebp.

libvips and Pillow link the same libwebp and, given the same settings, write
byte-identical files; Pillow's path to the encoder takes 10-15% less time for them
(docs/performance.md), and encoding is most of an upload's work. Pillow only ever gets
pixels that libvips decoded, checked and resized: it never parses an upload.
Animations stay with libvips, which writes their frames and timing itself.
"""

from __future__ import annotations

import io
from typing import Any

# Imported with the module, as the worker starts and before its sandbox closes: Pillow
# would otherwise import its plugins at the first save.
from PIL import Image, WebPImagePlugin  # noqa: F401 - registers the WebP writer

# What `_to_srgb8` leaves: 8-bit sRGB, with alpha or without.
_MODES = {3: "RGB", 4: "RGBA"}


def encode_still(image: Any, *, quality: int, effort: int, lossless: bool = False) -> bytes:
    """One frame of 8-bit sRGB `image` (pyvips) as a WebP file with no metadata.

    `quality` is libwebp's: the visual quality when lossy, how hard it tries when lossless;
    `effort` is its `method` (0 fast .. 6 small), libvips' `effort`.
    """
    mode = _MODES[image.bands]
    pixels = Image.frombuffer(
        mode, (image.width, image.height), image.write_to_memory(), "raw", mode, 0, 1
    )
    out = io.BytesIO()
    pixels.save(out, format="WEBP", quality=quality, method=effort, lossless=lossless)
    return out.getvalue()
