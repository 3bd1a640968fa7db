"""What libheif would decode for a HEIF file's primary image, read from its `meta` box alone.

A grid (`grid`) or overlay (`iovl`) primary image is a canvas that libheif allocates at the
size its descriptor states, then fills from other coded images (the tiles). The size the
pipeline checks, the `ispe` property, is only a claim: a 5 KB file whose `ispe` says 1 MP
had libheif decode a 24x24 grid of 1024x1024 tiles into a 604 MP canvas (900 MB, 3.6 s)
before it noticed the mismatch. So the pipeline checks what this module reads instead:

- the canvas size in the descriptor (`ImageGrid` / `ImageOverlay`, ISO/IEC 23008-12 6.6.2),
  which must equal the `ispe`;
- every tile's own `ispe`, summed over the `dimg` references: the pixels decoded.

Only the `meta` box is read, capped in size; nothing is decoded. A coded primary image
(`hvc1`, `av01`...) is what its `ispe` says, so `derived_image` returns None for it.
Anything malformed is `ValueError`, refused as a bad image (`read_derived`). The same holds
for AVIF, which libvips' heifload hands to libheif: the pipeline checks both.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

from mediasvc.contract import codes
from mediasvc.imaging.job import BadImage

# A phone's meta box is a few kilobytes (libheif itself takes at most 1000 references);
# one this large is not a photo.
_MAX_META_BYTES = 1 << 20
_BOX = struct.Struct(">I4s")
_DERIVED = frozenset({b"grid", b"iovl"})
# A descriptor is 8 to 12 bytes (an overlay's offsets follow, one pair per image).
_MAX_DESCRIPTOR_BYTES = 1 << 16


@dataclass(frozen=True, slots=True)
class DerivedImage:
    """A grid or overlay primary image: its canvas (as the descriptor states, before any
    `irot`), what its `ispe` claims, and the pixels of the images it is made from."""

    kind: str
    width: int
    height: int
    claimed_width: int
    claimed_height: int
    tiles: int
    tile_pixels: int

    @property
    def decoded_pixels(self) -> int:
        """The pixels libheif decodes and holds for it: the canvas or the tiles, the larger."""
        return max(self.width * self.height, self.tile_pixels)


def derived_image(path: str) -> DerivedImage | None:
    """The primary image of the HEIF file at `path` if it is a grid or overlay, else None."""
    with open(path, "rb") as file:
        fd = file.fileno()
        meta = _read_meta(fd)
        if meta is None:
            raise ValueError("no meta box")
        return _Meta(meta, partial(os.pread, fd)).primary_derived()


def read_derived(path: str) -> DerivedImage | None:
    """`derived_image`, with a malformed file refused as a bad image."""
    try:
        return derived_image(path)
    except (ValueError, OSError) as exc:
        raise BadImage("The HEIF file's item boxes are damaged.", reason=str(exc)) from None


def check_derived(derived: DerivedImage | None, max_pixels: int) -> None:
    """Refuse a grid or overlay whose decode would cost more than its header says.

    libheif allocates the canvas its descriptor states and decodes every tile, whatever the
    `ispe` claims: both are held to `max_pixels` (`too_many_pixels`), and a canvas that is
    not the claimed size is a damaged file. No pixel is decoded here.
    """
    if derived is None:
        return
    if derived.decoded_pixels > max_pixels:
        raise BadImage(
            f"The HEIF {derived.kind} decodes to {derived.width}x{derived.height} from "
            f"{derived.tiles} images of {derived.tile_pixels} pixels in all; at most "
            f"{max_pixels} pixels are accepted.",
            code=codes.TOO_MANY_PIXELS,
        )
    if (derived.width, derived.height) != (derived.claimed_width, derived.claimed_height):
        raise BadImage(
            "The HEIF image's size does not match its header.",
            reason=f"{derived.kind} {derived.width}x{derived.height}, ispe "
            f"{derived.claimed_width}x{derived.claimed_height}",
        )


def _read_meta(fd: int) -> bytes | None:
    """The payload of the top-level `meta` box (a FullBox: version and flags first)."""
    size_of_file = os.fstat(fd).st_size
    position = 0
    while position + _BOX.size <= size_of_file:
        size, kind = _BOX.unpack(os.pread(fd, _BOX.size, position))
        header = _BOX.size
        if size == 1:
            (size,) = struct.unpack(">Q", os.pread(fd, 8, position + header))
            header += 8
        elif size == 0:
            size = size_of_file - position
        if size < header or position + size > size_of_file:
            raise ValueError("a box does not fit in the file")
        if kind == b"meta":
            if size - header > _MAX_META_BYTES:
                raise ValueError("the meta box is too large")
            return os.pread(fd, size - header, position + header)
        position += size
    return None


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """`(type, payload start, payload end)` of each box in `data[start:end]`; strict."""
    position = start
    while position < end:
        if position + _BOX.size > end:
            raise ValueError("truncated box header")
        size, kind = _BOX.unpack_from(data, position)
        header = _BOX.size
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, position + header)
            header += 8
        elif size == 0:
            size = end - position
        if size < header or position + size > end:
            raise ValueError(f"box {kind!r} does not fit")
        yield kind, position + header, position + size
        position += size


class _Reader:
    """Big-endian fields read in order from `data[at:end]`; past `end` is `ValueError`."""

    def __init__(self, data: bytes, at: int, end: int) -> None:
        self.data, self.at, self.end = data, at, end

    def uint(self, size: int) -> int:
        if size == 0:
            return 0
        if self.at + size > self.end:
            raise ValueError("truncated field")
        value = int.from_bytes(self.data[self.at : self.at + size], "big")
        self.at += size
        return value


class _Meta:
    """The boxes of one `meta` payload that say what the primary image is made of."""

    def __init__(self, meta: bytes, read_file: Callable[[int, int], bytes]) -> None:
        self.data = meta
        self.read_file = read_file  # (length, offset): bytes of the file, for an iloc in mdat
        self.children: dict[bytes, tuple[int, int]] = {}
        for kind, start, end in _boxes(meta, 4, len(meta)):  # after version and flags
            self.children.setdefault(kind, (start, end))

    def primary_derived(self) -> DerivedImage | None:
        primary = self._primary_id()
        kind = self._item_types().get(primary)
        if kind not in _DERIVED:
            return None
        descriptor = self._item_data(primary)
        width, height = _canvas(kind, descriptor)
        claimed = self._sizes().get(primary)
        if claimed is None:
            raise ValueError("the derived image has no ispe")
        references = self._references(b"dimg").get(primary, [])
        if kind == b"grid":
            rows, columns = descriptor[2] + 1, descriptor[3] + 1
            if rows * columns != len(references):
                raise ValueError("the grid's tile count does not match its references")
        sizes = self._sizes()
        tile_pixels = 0
        for reference in references:
            tile = sizes.get(reference)
            if tile is None:
                raise ValueError("a tile has no ispe")
            tile_pixels += tile[0] * tile[1]
        return DerivedImage(
            kind=kind.decode(),
            width=width,
            height=height,
            claimed_width=claimed[0],
            claimed_height=claimed[1],
            tiles=len(references),
            tile_pixels=tile_pixels,
        )

    def _box(self, kind: bytes) -> _Reader:
        if kind not in self.children:
            raise ValueError(f"no {kind.decode()} box")
        return _Reader(self.data, *self.children[kind])

    def _primary_id(self) -> int:
        pitm = self._box(b"pitm")
        version = pitm.uint(4) >> 24
        return pitm.uint(2 if version == 0 else 4)

    def _item_types(self) -> dict[int, bytes]:
        iinf = self._box(b"iinf")
        version = iinf.uint(4) >> 24
        iinf.uint(2 if version == 0 else 4)  # entry_count: the boxes that follow say it
        types = {}
        for kind, start, end in _boxes(self.data, iinf.at, iinf.end):
            if kind != b"infe":
                continue
            infe = _Reader(self.data, start, end)
            infe_version = infe.uint(4) >> 24
            if infe_version < 2:
                continue  # no item_type before version 2: not an image item
            item = infe.uint(2 if infe_version == 2 else 4)
            infe.uint(2)  # item_protection_index
            types[item] = self.data[infe.at : infe.at + 4]
        return types

    def _item_data(self, item: int) -> bytes:
        """The bytes of `item` as `iloc` places them: in `idat`, or in the file (`mdat`)."""
        iloc = self._box(b"iloc")
        version = iloc.uint(4) >> 24
        sizes = iloc.uint(1)
        offset_size, length_size = sizes >> 4, sizes & 15
        sizes = iloc.uint(1)
        base_size, index_size = sizes >> 4, (sizes & 15 if version in (1, 2) else 0)
        count = iloc.uint(2 if version < 2 else 4)
        for _ in range(count):
            item_id = iloc.uint(2 if version < 2 else 4)
            method = iloc.uint(2) & 15 if version in (1, 2) else 0
            iloc.uint(2)  # data_reference_index
            base = iloc.uint(base_size)
            extents = [
                (iloc.uint(index_size), iloc.uint(offset_size), iloc.uint(length_size))[1:]
                for _ in range(iloc.uint(2))
            ]
            if item_id != item:
                continue
            if len(extents) != 1 or not 8 <= extents[0][1] <= _MAX_DESCRIPTOR_BYTES:
                raise ValueError("the derived image's descriptor is not one small extent")
            offset, length = base + extents[0][0], extents[0][1]
            if method == 0:
                data = self.read_file(length, offset)
                if len(data) != length:
                    raise ValueError("the derived image's descriptor is outside the file")
                return data
            idat_start, idat_end = self.children.get(b"idat", (0, 0))
            if method != 1 or idat_start + offset + length > idat_end:
                raise ValueError("the derived image's descriptor is outside idat")
            return self.data[idat_start + offset : idat_start + offset + length]
        raise ValueError("the derived image has no location")

    def _sizes(self) -> dict[int, tuple[int, int]]:
        """Each item's `ispe`, through `ipma`'s associations to `ipco`'s properties."""
        iprp_start, iprp_end = self.children.get(b"iprp", (0, 0))
        inner = {kind: (start, end) for kind, start, end in _boxes(self.data, iprp_start, iprp_end)}
        if b"ipco" not in inner or b"ipma" not in inner:
            raise ValueError("no item properties")
        extents: dict[int, tuple[int, int]] = {}
        for index, (kind, start, end) in enumerate(_boxes(self.data, *inner[b"ipco"]), start=1):
            if kind == b"ispe":
                ispe = _Reader(self.data, start, end)
                ispe.uint(4)
                extents[index] = (ispe.uint(4), ispe.uint(4))
        ipma = _Reader(self.data, *inner[b"ipma"])
        version_flags = ipma.uint(4)
        version, wide_index = version_flags >> 24, version_flags & 1
        sizes = {}
        for _ in range(ipma.uint(4)):
            item = ipma.uint(2 if version < 1 else 4)
            for _ in range(ipma.uint(1)):
                association = ipma.uint(2 if wide_index else 1)
                index = association & (0x7FFF if wide_index else 0x7F)
                if index in extents:
                    sizes[item] = extents[index]
        return sizes

    def _references(self, reference_type: bytes) -> dict[int, list[int]]:
        if b"iref" not in self.children:
            return {}
        iref = self._box(b"iref")
        id_size = 2 if iref.uint(4) >> 24 == 0 else 4
        found: dict[int, list[int]] = {}
        for kind, start, end in _boxes(self.data, iref.at, iref.end):
            entry = _Reader(self.data, start, end)
            source = entry.uint(id_size)
            targets = [entry.uint(id_size) for _ in range(entry.uint(2))]
            if kind == reference_type:
                found.setdefault(source, []).extend(targets)
        return found


def _canvas(kind: bytes, descriptor: bytes) -> tuple[int, int]:
    """The output size an `ImageGrid` or `ImageOverlay` descriptor states."""
    reader = _Reader(descriptor, 0, len(descriptor))
    if reader.uint(1) != 0:
        raise ValueError("unknown derived image version")
    field = 4 if reader.uint(1) & 1 else 2
    if kind == b"grid":
        reader.uint(2)  # rows_minus_one, columns_minus_one
    else:
        reader.uint(8)  # canvas_fill_value: four 16-bit channels
    return reader.uint(field), reader.uint(field)
