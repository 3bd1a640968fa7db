"""The image sequence an AVIF file may carry, read from its box headers alone.

An `avis` AVIF holds a still primary image (an item in `meta`) and the animation as an
ISO-BMFF track (`moov/trak`). libvips' heifload reads the items only: it decodes the
primary image and reports no frames. The pipeline still counts the track's frames, and
checks their size, before any pixel is decoded, as it does for a GIF's.

Only box headers and the few fixed-size fields needed are read; payloads are seeked past.
Anything malformed ends the walk of that level: a track that cannot be read is not counted.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

# Colour tracks. Alpha and depth planes ride along in `auxv` tracks of the same length.
_PICTURE_HANDLERS = frozenset({b"pict", b"vide"})
# A real sequence has a few dozen boxes on the way to its sample tables; a longer walk is
# a hostile file, and stopping early only leaves a track uncounted, never decoded.
_MAX_BOXES = 1024
_HEADER = struct.Struct(">I4s")
_LARGE_SIZE = struct.Struct(">Q")
_U16_PAIR = struct.Struct(">HH")
_U32 = struct.Struct(">I")
# VisualSampleEntry: box header (8), reserved and data_reference_index (8), pre_defined and
# reserved (16), then width and height.
_SAMPLE_ENTRY_SIZE_AT = 32
# FullBox header (4), then `sample_size` (stsz) or reserved and `field_size` (stz2), then
# `sample_count` in both.
_SAMPLE_COUNT_AT = 8


@dataclass(frozen=True, slots=True)
class AvifSequence:
    """The longest picture track of an AVIF: its frame size (as coded) and frame count."""

    width: int
    height: int
    frames: int


def avif_sequence(path: str) -> AvifSequence | None:
    """The image sequence in the AVIF at `path`, or None if it holds none we can read."""
    with open(path, "rb") as file:
        walk = _Walk(file)
        tracks = [
            track
            for kind, start, end in walk.boxes(0, os.fstat(file.fileno()).st_size)
            if kind == b"moov"
            for trak_kind, trak_start, trak_end in walk.boxes(start, end)
            if trak_kind == b"trak" and (track := walk.picture_track(trak_start, trak_end))
        ]
    return max(tracks, key=lambda track: track.frames, default=None)


class _Walk:
    """Box iteration over one open file, with one budget of boxes for the whole walk."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self._boxes_left = _MAX_BOXES

    def boxes(self, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
        """`(type, payload start, payload end)` of each box in `start..end`."""
        position = start
        while position + _HEADER.size <= end and self._boxes_left > 0:
            self._boxes_left -= 1
            head = self._read(position, _HEADER.size)
            if len(head) < _HEADER.size:
                return
            size, kind = _HEADER.unpack(head)
            header = _HEADER.size
            if size == 1:  # a 64-bit size follows the type
                large = self._read(position + header, _LARGE_SIZE.size)
                if len(large) < _LARGE_SIZE.size:
                    return
                (size,) = _LARGE_SIZE.unpack(large)
                header += _LARGE_SIZE.size
            elif size == 0:  # the box runs to the end of its parent
                size = end - position
            if size < header or position + size > end:
                return
            yield kind, position + header, position + size
            position += size

    def picture_track(self, start: int, end: int) -> AvifSequence | None:
        """The frame size and count of the `trak` at `start..end`, if it is a picture track."""
        handler = self._child(start, end, b"mdia", b"hdlr")
        stbl = self._child(start, end, b"mdia", b"minf", b"stbl")
        if handler is None or stbl is None:
            return None
        if self._field(*handler, offset=8, size=4) not in _PICTURE_HANDLERS:
            return None
        sample_table = {kind: (s, e) for kind, s, e in self.boxes(*stbl)}
        counts = sample_table.get(b"stsz") or sample_table.get(b"stz2")
        description = sample_table.get(b"stsd")
        if counts is None or description is None:
            return None
        count = self._field(*counts, offset=_SAMPLE_COUNT_AT, size=_U32.size)
        # stsd: FullBox header and entry_count, then the first sample entry.
        size = self._field(*description, offset=8 + _SAMPLE_ENTRY_SIZE_AT, size=_U16_PAIR.size)
        if count is None or size is None:
            return None
        (frames,) = _U32.unpack(count)
        width, height = _U16_PAIR.unpack(size)
        return AvifSequence(width=width, height=height, frames=frames) if frames else None

    def _child(self, start: int, end: int, *path: bytes) -> tuple[int, int] | None:
        for kind, child_start, child_end in self.boxes(start, end):
            if kind == path[0]:
                if len(path) == 1:
                    return child_start, child_end
                return self._child(child_start, child_end, *path[1:])
        return None

    def _field(self, start: int, end: int, *, offset: int, size: int) -> bytes | None:
        if start + offset + size > end:
            return None
        data = self._read(start + offset, size)
        return data if len(data) == size else None

    def _read(self, position: int, size: int) -> bytes:
        self._file.seek(position)
        return self._file.read(size)
