"""HEIC/HEIF input through pillow-heif (libheif with the libde265 HEVC decoder).

Imported only where the optional extra `mediasvc[heic]` is installed (`formats.HEIF_AVAILABLE`).
The pyvips-binary build of libheif has no HEVC decoder, so pillow-heif decodes and libvips
takes the pixels from memory; the rest of the pipeline is the same as for every input:

1. `open_header` parses the container only: the primary image's size as displayed, its bit
   depth, alpha, colour profile and metadata. No pixel is decoded, so the pipeline's limits
   are enforced on these numbers first.
2. `decode` decodes the primary image once, to 8 bits per sample (10- and 12-bit HDR
   converted by libheif), and hands the pixels to libvips with the colour profile attached
   (the embedded ICC profile; libvips' Display P3 for nclx P3 files), so the usual
   sRGB conversion applies. Nothing else is attached: EXIF, GPS, XMP stay behind.

Orientation: libheif applies the `irot`/`imir` (and `clap`) transformations while decoding,
as the HEIF standard says readers must, so the pixels come out upright. The EXIF
`Orientation` inside the file (iPhones write one that repeats `irot`) is never applied:
the image handed on carries no orientation at all. `HeifHeader.orientation` is the EXIF
number equivalent to what libheif did, for the processing report only.

Only the primary image is read: bursts, thumbnails, depth maps, HDR gain maps and other
auxiliary images are skipped (not even listed). pillow-heif's exceptions are translated
here, by type, into `BadImage`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import pillow_heif
import pyvips

from mediasvc.imaging.heifgrid import DerivedImage, read_derived
from mediasvc.imaging.job import BadImage

# Each worker is one job at a time on one core (`worker.VIPS_CONCURRENCY`): more decode
# threads would only compete with the other workers. A 12 MP iPhone-like grid decodes in
# about 0.5 s on one thread here (docs/decisions.md).
pillow_heif.options.DECODE_THREADS = 1
# What the pipeline never uses is not even parsed into Python objects.
pillow_heif.options.THUMBNAILS = False
pillow_heif.options.DEPTH_IMAGES = False
pillow_heif.options.AUX_IMAGES = False

# What pillow-heif documents it raises for bad input (OSError: out of memory), plus the
# MemoryError of an allocation past the worker's address-space cap.
_PILLOW_HEIF_ERRORS = (ValueError, EOFError, SyntaxError, RuntimeError, OSError, MemoryError)
# nclx colour primaries (ITU-T H.273) that get a profile; 1 (BT.709) is sRGB's own.
_NCLX_P3_PRIMARIES = frozenset({12})  # SMPTE EG 432-1: Display P3 (D65 white)
# Pillow modes pillow-heif decodes to with `convert_hdr_to_8bit` -> bands, libvips format.
# Monochrome HDR stays 16-bit (pillow-heif converts colour only); libvips brings it to 8.
# Lower-case "a": premultiplied alpha.
_MODES: dict[str, tuple[int, str]] = {
    "RGB": (3, "uchar"),
    "RGBA": (4, "uchar"),
    "RGBa": (4, "uchar"),
    "L": (1, "uchar"),
    "LA": (2, "uchar"),
    "La": (2, "uchar"),
    "I;16": (1, "ushort"),
    "I;16L": (1, "ushort"),
    "L;16": (1, "ushort"),
}


@dataclass(frozen=True, slots=True)
class HeifHeader:
    """The primary image of a HEIF file, as its container describes it; nothing decoded.

    `width` and `height` are as displayed: after the transformations libheif applies.
    `orientation` is the EXIF orientation equivalent to those (1: none); `icc_profile` is
    the colour profile `decode` attaches, `embedded_icc` whether the file carried it.
    """

    width: int
    height: int
    bit_depth: int
    alpha: bool
    monochrome: bool
    icc_profile: bytes | None
    embedded_icc: bool
    exif: bytes | None
    xmp: bytes | None
    orientation: int
    image: Any  # pillow_heif.HeifImage: holds the open container until `decode`
    derived: DerivedImage | None = None  # a grid or overlay: what libheif would decode


def open_header(path: str) -> HeifHeader:
    """The primary image's header, or `BadImage` when there is no readable primary image."""
    derived = read_derived(path)  # a grid's or overlay's own size, which ispe need not match
    try:
        # pillow-heif reads the whole file, then libheif parses its boxes; pixels wait.
        heif = pillow_heif.open_heif(path, convert_hdr_to_8bit=True)
        image = heif[heif.primary_index]
    except (*_PILLOW_HEIF_ERRORS, IndexError) as exc:
        raise BadImage("The HEIF file has no readable primary image.", reason=str(exc)) from None
    info: dict[str, Any] = image.info
    if not info.get("primary") or image.mode not in _MODES:
        # pillow-heif falls back to the first image when none is flagged primary; that, or
        # a mode we do not take, is no image to show.
        raise BadImage("The HEIF file has no decodable primary image.", reason=image.mode)
    embedded = info.get("icc_profile") or None
    profile = embedded or _profile_from_nclx(info.get("nclx_profile"))
    width, height = image.size
    return HeifHeader(
        width=width,
        height=height,
        bit_depth=int(info.get("bit_depth", 8)),
        alpha=image.has_alpha,
        monochrome=_MODES[image.mode][0] <= 2,  # grey, with or without alpha
        icc_profile=profile,
        embedded_icc=embedded is not None,
        exif=info.get("exif") or None,
        xmp=info.get("xmp") or None,
        orientation=applied_orientation(getattr(image._c_image, "transformations", ())),
        image=image,
        derived=derived,
    )


def decode(header: HeifHeader) -> Any:
    """The one decode: the primary image's pixels, upright, 8-bit, as a libvips image.

    The image carries the colour profile and nothing else (no EXIF, XMP, orientation).
    """
    image = header.image
    try:
        data = image.data  # libheif decodes here, applying irot/imir/clap
    except _PILLOW_HEIF_ERRORS as exc:
        raise BadImage("The HEIF image is damaged or truncated.", reason=str(exc)) from None
    if image.size != (header.width, header.height):
        raise BadImage("The HEIF image does not match its header.")
    bands, band_format = _MODES[image.mode]
    pixels = pyvips.Image.new_from_memory(data, header.width, header.height, bands, band_format)
    interpretation = "srgb" if bands >= 3 else "grey16" if band_format == "ushort" else "b-w"
    pixels = pixels.copy(interpretation=interpretation)
    if image.premultiplied_alpha:  # libvips resizes and encodes straight alpha
        pixels = pixels.unpremultiply().cast("uchar").copy(interpretation=interpretation)
    if header.icc_profile is not None:
        pixels.set_type(pyvips.GValue.blob_type, "icc-profile-data", header.icc_profile)
    return pixels


def applied_orientation(transformations: tuple[tuple[Any, ...], ...]) -> int:
    """The EXIF orientation (1-8) that does what libheif's `transformations` did.

    pillow-heif lists them in the order libheif applies them: `("irot", degrees
    anticlockwise)`, `("imir", 1)` for a left-right mirror, `("imir", 0)` for top-bottom;
    `clap` crops and does not turn. The composition is followed on the four labelled
    corners of a square, which tell all eight orientations apart.
    """
    corners = ((0, 1), (2, 3))
    for transformation in transformations:
        if transformation[0] == "irot":
            for _ in range(int(transformation[1]) // 90 % 4):
                (a, b), (c, d) = corners
                corners = ((b, d), (a, c))  # a quarter turn anticlockwise
        elif transformation[0] == "imir":
            (a, b), (c, d) = corners
            corners = ((b, a), (d, c)) if transformation[1] == 1 else ((c, d), (a, b))
    return _ORIENTATION_CORNERS[corners]


# Where each EXIF orientation's display transform puts the corners of ((0, 1), (2, 3)).
_ORIENTATION_CORNERS: dict[tuple[tuple[int, int], tuple[int, int]], int] = {
    ((0, 1), (2, 3)): 1,
    ((1, 0), (3, 2)): 2,  # mirrored left-right
    ((3, 2), (1, 0)): 3,  # half turn
    ((2, 3), (0, 1)): 4,  # mirrored top-bottom
    ((0, 2), (1, 3)): 5,  # transposed
    ((2, 0), (3, 1)): 6,  # a quarter turn clockwise
    ((3, 1), (2, 0)): 7,  # transversed
    ((1, 3), (0, 2)): 8,  # a quarter turn anticlockwise
}


def _profile_from_nclx(nclx: dict[str, Any] | None) -> bytes | None:
    """libvips' Display P3 profile for nclx P3 primaries; None (taken as sRGB) otherwise.

    Other primaries (BT.2020 with PQ or HLG is HDR video's) would need tone mapping that
    libvips does not do; they are shown as if sRGB, like an untagged JPEG.
    """
    if nclx is None or nclx.get("color_primaries") not in _NCLX_P3_PRIMARIES:
        return None
    return _display_p3_profile()


@cache
def _display_p3_profile() -> bytes:
    # libvips builds the profile in; exporting one pixel to it is how to get its bytes.
    pixel = pyvips.Image.black(1, 1, bands=3).copy(interpretation="srgb")
    profile: bytes = pixel.icc_transform("p3", input_profile="srgb").get("icc-profile-data")
    return profile
