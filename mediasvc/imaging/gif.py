"""A structural check for GIF files, because libvips' GIF loader is lenient.

libnsgif decodes a GIF cut off mid-stream as if it had fewer frames, whatever `fail_on`
says. Walking the block structure (GIF89a spec, section 17 onwards) up to the trailer
byte tells a complete file from a truncated one without decoding a pixel. Bytes after the
trailer are allowed: they never reach a variant, which is re-encoded from pixels.
"""

from __future__ import annotations

_TRAILER = 0x3B
_EXTENSION = 0x21
_IMAGE = 0x2C


def gif_is_complete(data: bytes) -> bool:
    """Whether every block of the GIF is whole and the trailer is reached."""
    if len(data) < 13 or data[:6] not in (b"GIF87a", b"GIF89a"):
        return False
    pos = 13 + _colour_table_size(data[10])
    while pos < len(data):
        block = data[pos]
        if block == _TRAILER:
            return True
        if block == _EXTENSION:
            pos = _skip_sub_blocks(data, pos + 2)
        elif block == _IMAGE:
            if pos + 10 > len(data):
                return False
            # Descriptor (10 bytes incl. separator), local colour table, LZW minimum code size.
            pos = _skip_sub_blocks(data, pos + 10 + _colour_table_size(data[pos + 9]) + 1)
        else:
            return False
        if pos < 0:
            return False
    return False


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
