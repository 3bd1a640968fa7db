"""What processing did to an upload, in plain data a product can show ("we removed your location").

Everything is read from the header libvips already opened, with no pixel decoded, except
comments: libvips 8.18 reports neither JPEG COM segments nor GIF comment extensions, so those
are found by walking the file's header blocks. HEIC/HEIF has its own report
(`heif_processing_report`) from the header pillow-heif read, with the same keys.

The report (`processing_report`) always has these keys:

- `rotated_from_orientation`: the EXIF orientation (2-8) that was applied, or None. For
  HEIF, the EXIF orientation equivalent to the `irot`/`imir` boxes libheif applied (the
  file's own EXIF Orientation is never applied, so it is not what this reports).
- `color`: how the colours were brought to 8-bit sRGB, a `ColorConversion`.
- `removed`: the sorted `Removable` names of the metadata the source carried; the encoders
  keep none of it.
- `frames`: how many frames the written variants hold.
- `encoding`: how the largest variant was compressed, an `Encoding`. For a graphic (WebP
  output only; see `encode.write_variants`) the smallest of "lossless", "palette" and
  "lossy"; else "lossy".
- `lossless_variants`: the names of the variants stored lossless (pixel-exact), largest
  last. A smaller variant of a graphic is lossless only where that was the smallest file
  too; a palette variant is not listed (its colours were quantised).
"""

from __future__ import annotations

import math
import os
import struct
from typing import TYPE_CHECKING, Any, Literal

from mediasvc.imaging.gif import GifStructure

if TYPE_CHECKING:  # the optional extra's module: imported only where it is installed
    from mediasvc.imaging.heif import HeifHeader

# The first that applies, in this order:
ColorConversion = Literal[
    "converted from CMYK (ICC)",  # CMYK, through the file's own profile
    "converted from CMYK",  # untagged CMYK, through libvips' built-in CMYK profile
    "converted from embedded ICC profile",  # RGB or grey tagged with a profile other than sRGB
    "converted from Display P3 (nclx)",  # HEIF whose nclx box names the P3 primaries
    "converted to 8-bit sRGB",  # greyscale, 16-bit or HEIF HDR, with no profile or an sRGB one
    "sRGB",  # 8-bit RGB, untagged or tagged sRGB: no conversion
]
# "lossless": WebP lossless, pixel-exact; "palette": quantised to at most 256 colours, then
# WebP lossless (near-lossless: `encode.PALETTE_MIN_PSNR_DB`); "lossy": the kind's output
# format at its quality.
Encoding = Literal["lossless", "palette", "lossy"]
# "comment": JPEG COM, GIF comment extension; "text": PNG tEXt/zTXt/iTXt other than XMP;
# "gps": any GPS tag in the EXIF; the rest are whole blocks (ICC profile, XMP packet, ...).
Removable = Literal["comment", "exif", "gps", "icc", "iptc", "text", "xmp"]

# libvips header field -> the name `removed` uses for it.
_BLOB_FIELDS: dict[str, Removable] = {
    "exif-data": "exif",
    "xmp-data": "xmp",
    "iptc-data": "iptc",
    "icc-profile-data": "icc",
}
# libexif names the GPS IFD "ifd3".
_GPS_PREFIX = "exif-ifd3-GPS"
# pngload reports every text chunk but XMP as one of these.
_PNG_TEXT_PREFIX = "png-comment-"

# The sRGB primaries as an ICC profile states them: D50-adapted XYZ colorants.
_SRGB_COLORANTS = {
    b"rXYZ": (0.4361, 0.2225, 0.0139),
    b"gXYZ": (0.3851, 0.7169, 0.0971),
    b"bXYZ": (0.1431, 0.0606, 0.7141),
}
# sRGB profiles from different vendors round these differently; Display P3's red is 0.08 off.
_COLORANT_TOLERANCE = 0.005

_JPEG_SOI = b"\xff\xd8"
_JPEG_SOS, _JPEG_COM, _JPEG_FILL = 0xDA, 0xFE, 0xFF
# A real JPEG header has tens of segments (ICC split into at most 255); a longer walk is a
# hostile file, and stopping early only leaves a comment unreported, never kept.
_JPEG_MAX_SEGMENTS = 1024

_EXIF_HEADER = b"Exif\0\0"
_TIFF_BYTE_ORDERS = {b"II": "<", b"MM": ">"}
_TIFF_GPS_IFD_TAG = 0x8825
_TIFF_ENTRY = 12  # tag, type, count, value or offset


def processing_report(
    header: Any,
    loader: str,
    source: str,
    frames: int,
    *,
    gif: GifStructure | None = None,
    encoding: Encoding = "lossy",
    lossless_variants: list[str] | None = None,
) -> dict[str, object]:
    """The `processing` facts for `source`, opened as `header` by `loader`; see the module doc.

    For a GIF, `gif` is the block walk the pipeline already did (it holds the comments).
    """
    orientation = int(header.get("orientation")) if header.get_typeof("orientation") else 1
    return {
        "rotated_from_orientation": None if orientation == 1 else orientation,
        "color": color_conversion(header),
        "removed": removed_metadata(header, loader, source, gif),
        "frames": frames,
        "encoding": encoding,
        "lossless_variants": lossless_variants or [],
    }


def heif_processing_report(
    header: HeifHeader,
    frames: int,
    *,
    encoding: Encoding = "lossy",
    lossless_variants: list[str] | None = None,
) -> dict[str, object]:
    """The `processing` facts for a HEIF file, from the header pillow-heif read."""
    found: set[Removable] = set()
    if header.exif is not None:
        found.add("exif")
        if exif_has_gps(header.exif):
            found.add("gps")
    if header.xmp is not None:
        found.add("xmp")
    if header.embedded_icc:
        found.add("icc")
    return {
        "rotated_from_orientation": None if header.orientation == 1 else header.orientation,
        "color": heif_color_conversion(header),
        "removed": sorted(found),
        "frames": frames,
        "encoding": encoding,
        "lossless_variants": lossless_variants or [],
    }


def heif_color_conversion(header: HeifHeader) -> ColorConversion:
    """How the pixels of a HEIF primary image were converted to 8-bit sRGB."""
    if header.icc_profile is not None and not is_srgb_profile(header.icc_profile):
        if header.embedded_icc:
            return "converted from embedded ICC profile"
        return "converted from Display P3 (nclx)"
    if header.monochrome or header.bit_depth > 8:
        return "converted to 8-bit sRGB"
    return "sRGB"


def color_conversion(header: Any) -> ColorConversion:
    """How the pixels of `header`'s image were converted to 8-bit sRGB."""
    profile = header.get("icc-profile-data") if header.get_typeof("icc-profile-data") else None
    if header.interpretation == "cmyk":
        return "converted from CMYK (ICC)" if profile else "converted from CMYK"
    if profile and not is_srgb_profile(profile):
        return "converted from embedded ICC profile"
    if header.interpretation != "srgb" or header.format != "uchar":
        return "converted to 8-bit sRGB"
    return "sRGB"


def is_srgb_profile(profile: bytes) -> bool:
    """Whether an ICC profile is RGB with the sRGB primaries.

    Tone curves are not compared: a profile with sRGB primaries and another curve (rare
    outside video) counts as sRGB. Any malformed profile is not sRGB.
    """
    if len(profile) < 132 or profile[16:20] != b"RGB ":
        return False
    (count,) = struct.unpack_from(">I", profile, 128)
    colorants: dict[bytes, tuple[float, ...]] = {}
    for index in range(min(count, (len(profile) - 132) // 12)):
        signature, offset, size = struct.unpack_from(">4sII", profile, 132 + 12 * index)
        tag = profile[offset : offset + min(size, 20)]
        if signature in _SRGB_COLORANTS and len(tag) == 20 and tag[:4] == b"XYZ ":
            colorants[signature] = tuple(v / 65536 for v in struct.unpack_from(">3i", tag, 8))
    return colorants.keys() == _SRGB_COLORANTS.keys() and all(
        math.isclose(value, reference, abs_tol=_COLORANT_TOLERANCE)
        for signature, references in _SRGB_COLORANTS.items()
        for value, reference in zip(colorants[signature], references, strict=True)
    )


def removed_metadata(
    header: Any, loader: str, source: str, gif: GifStructure | None
) -> list[Removable]:
    """The sorted names of the metadata the source carried."""
    fields = header.get_fields()
    found: set[Removable] = {name for field, name in _BLOB_FIELDS.items() if field in fields}
    if any(field.startswith(_GPS_PREFIX) for field in fields):
        found.add("gps")
    if any(field.startswith(_PNG_TEXT_PREFIX) for field in fields):
        found.add("text")
    if (loader == "jpegload" and jpeg_has_comment(source)) or (gif is not None and gif.has_comment):
        found.add("comment")
    return sorted(found)


def exif_has_gps(exif: bytes) -> bool:
    """Whether a raw EXIF block (a TIFF structure, after "Exif\\0\\0" or not) holds GPS tags.

    Walks IFD0 for the GPS IFD pointer and counts that IFD's entries; anything malformed
    is False (the whole block is removed either way, GPS or not).
    """
    tiff = exif[len(_EXIF_HEADER) :] if exif.startswith(_EXIF_HEADER) else exif
    order = _TIFF_BYTE_ORDERS.get(tiff[:2])
    if order is None or len(tiff) < 8:
        return False
    (ifd0,) = struct.unpack_from(order + "I", tiff, 4)
    pointer = _tiff_ifd(tiff, order, ifd0).get(_TIFF_GPS_IFD_TAG)
    return pointer is not None and bool(_tiff_ifd(tiff, order, pointer))


def _tiff_ifd(tiff: bytes, order: str, offset: int) -> dict[int, int]:
    """tag -> value field (an offset for sub-IFDs) of the IFD at `offset`; what fits."""
    if offset + 2 > len(tiff):
        return {}
    (count,) = struct.unpack_from(order + "H", tiff, offset)
    count = min(count, (len(tiff) - offset - 2) // _TIFF_ENTRY)
    entries = [
        struct.unpack_from(order + "HHII", tiff, offset + 2 + _TIFF_ENTRY * index)
        for index in range(count)
    ]
    return {tag: value for tag, _type, _count, value in entries}


def jpeg_has_comment(path: str) -> bool:
    """Whether the JPEG at `path` has a COM segment before its image data.

    Reads only the marker and length of each segment up to SOS, seeking past payloads, so
    a megabyte ICC profile costs nothing. Anything malformed ends the walk with False.
    """
    with open(path, "rb") as file:
        if file.read(2) != _JPEG_SOI:
            return False
        for _ in range(_JPEG_MAX_SEGMENTS):
            head = file.read(2)
            if len(head) < 2 or head[0] != _JPEG_FILL:
                return False
            if head[1] == _JPEG_FILL:  # fill byte: the marker code is one byte on
                file.seek(-1, os.SEEK_CUR)
                continue
            if head[1] in (_JPEG_COM, _JPEG_SOS):
                return head[1] == _JPEG_COM
            length = file.read(2)
            if len(length) < 2 or int.from_bytes(length, "big") < 2:
                return False
            file.seek(int.from_bytes(length, "big") - 2, os.SEEK_CUR)
    return False
