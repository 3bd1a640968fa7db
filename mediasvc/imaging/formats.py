"""Which inputs are accepted (by magic bytes) and which loader and encoder each uses.

Imports neither pyvips nor the app, so the upload handler can sniff cheaply.
"""

from dataclasses import dataclass

import magic

# How many leading bytes libmagic needs to tell our formats apart (ISO-BMFF brands included).
SNIFF_BYTES = 4096

# The allow-list: sniffed MIME type -> the one libvips loader we call for it. HEIC is absent:
# the pyvips-binary build of libheif has no HEVC decoder, so we refuse it rather than fail later.
LOADERS: dict[str, str] = {
    "image/jpeg": "jpegload",
    "image/png": "pngload",
    "image/webp": "webpload",
    "image/gif": "gifload",
    "image/avif": "heifload",
}
# Loaders that can return several frames of one animation.
ANIMATED_LOADERS = frozenset({"gifload", "webpload"})


@dataclass(frozen=True, slots=True)
class OutputFormat:
    """An encoder the variants can be written with."""

    name: str
    mime: str
    extension: str
    animated: bool
    alpha: bool


OUTPUT_FORMATS: dict[str, OutputFormat] = {
    "webp": OutputFormat("webp", "image/webp", ".webp", animated=True, alpha=True),
    "jpeg": OutputFormat("jpeg", "image/jpeg", ".jpg", animated=False, alpha=False),
    "avif": OutputFormat("avif", "image/avif", ".avif", animated=False, alpha=True),
}


def sniff(head: bytes) -> str:
    """The MIME type libmagic reads from the first bytes of a file."""
    return str(magic.from_buffer(head[:SNIFF_BYTES], mime=True))
