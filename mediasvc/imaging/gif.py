"""A structural walk over GIF files, because libvips' GIF loader is lenient.

libnsgif decodes a GIF cut off mid-stream as if it had fewer frames, whatever `fail_on`
says. Walking the block structure (GIF89a spec, section 17 onwards) up to the trailer
byte tells a complete file from a truncated one without decoding a pixel, and notices
comment extensions on the way. Bytes after the trailer are allowed: they never reach a
variant, which is re-encoded from pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

_TRAILER = 0x3B
_EXTENSION = 0x21
_COMMENT_LABEL = 0xFE
_IMAGE = 0x2C


@dataclass(frozen=True, slots=True)
class GifStructure:
    """What the walk found: whether every block is whole up to the trailer, and comments."""

    complete: bool
    has_comment: bool


def walk_gif(data: bytes) -> GifStructure:
    """Walk the blocks of a GIF from the header to the trailer."""
    if len(data) < 13 or data[:6] not in (b"GIF87a", b"GIF89a"):
        return GifStructure(complete=False, has_comment=False)
    has_comment = False
    pos = 13 + _colour_table_size(data[10])
    while 0 <= pos < len(data):
        block = data[pos]
        if block == _TRAILER:
            return GifStructure(complete=True, has_comment=has_comment)
        if block == _EXTENSION and pos + 1 < len(data):
            has_comment = has_comment or data[pos + 1] == _COMMENT_LABEL
            pos = _skip_sub_blocks(data, pos + 2)
        elif block == _IMAGE and pos + 10 <= len(data):
            # Descriptor (10 bytes incl. separator), local colour table, LZW minimum code size.
            pos = _skip_sub_blocks(data, pos + 10 + _colour_table_size(data[pos + 9]) + 1)
        else:
            break
    return GifStructure(complete=False, has_comment=has_comment)


def _colour_table_size(packed: int) -> int:
    return 3 * (1 << ((packed & 0x07) + 1)) if packed & 0x80 else 0


def _skip_sub_blocks(data: bytes, pos: int) -> int:
    """Position after a chain of sub-blocks ending in a zero-length one; -1 if cut off."""
    while pos < len(data):
        size = data[pos]
        pos += 1 + size
        if size == 0:
            return pos
    return -1
