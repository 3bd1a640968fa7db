"""Test-image factory: every fixture image is built in code with pyvips.

Nothing binary is committed. Each ``make_*`` function returns the encoded file
as ``bytes``; the pixel content is always derived from :func:`reference_pattern`
(four coloured quadrants) so that a test can sample an output with
:func:`quadrant_colours` and tell whether it was rotated, mirrored or had its
colours mangled. The container parsers at the bottom (:func:`jpeg_segments`,
:func:`png_chunks`, :func:`webp_chunks`, :func:`jpeg_exif_tags`) let tests prove
that metadata was stripped without trusting libvips to report it.

Import it as ``import images`` (pytest puts ``tests/`` on ``sys.path``).
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable, Iterator
from importlib.util import find_spec
from typing import Any

import pyvips
from PIL import Image

RGB = tuple[int, int, int]
Quadrants = tuple[RGB, RGB, RGB, RGB]

# Quadrant order everywhere in this module: top-left, top-right, bottom-left,
# bottom-right. The colours are "red, green, blue, yellow" but deliberately
# not fully saturated: they sit inside the gamut of libvips' built-in CMYK
# profile, so a CMYK round trip lands within a few units of them instead of
# being clipped (pure sRGB green comes back ~190 units off).
REFERENCE_COLOURS: Quadrants = (
    (210, 40, 40),
    (40, 160, 70),
    (30, 75, 150),
    (240, 220, 40),
)

# What a CMYK or P3 file decodes to once converted to sRGB: the reference.
CMYK_EXPECTED_SRGB: Quadrants = REFERENCE_COLOURS
ICC_EXPECTED_SRGB: Quadrants = REFERENCE_COLOURS

# Alpha per quadrant for images built with ``alpha=True``: opaque top half,
# half-transparent bottom-left, fully transparent bottom-right.
REFERENCE_ALPHAS: tuple[int, int, int, int] = (255, 255, 128, 0)

EXIF_MARKER = "MEDIASVC-EXIF-MARKER"
XMP_MARKER = "MEDIASVC-XMP-MARKER"
PNG_TEXT_MARKER = "MEDIASVC-PNG-TEXT-MARKER"
COMMENT_MARKER = "MEDIASVC-COMMENT-MARKER"
IPTC_MARKER = "MEDIASVC-IPTC-MARKER"

# A made-up location (Berlin-ish), written as libvips reads rationals back.
GPS_FIELDS: dict[str, str] = {
    "exif-ifd3-GPSLatitudeRef": "N",
    "exif-ifd3-GPSLatitude": "52/1 31/1 12/1",
    "exif-ifd3-GPSLongitudeRef": "E",
    "exif-ifd3-GPSLongitude": "13/1 24/1 36/1",
}

XMP_PACKET: bytes = (
    b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/">'
    b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">'
    b'<dc:description><rdf:Alt><rdf:li xml:lang="x-default">'
    + XMP_MARKER.encode()
    + b"</rdf:li></rdf:Alt></dc:description>"
    b"</rdf:Description></rdf:RDF></x:xmpmeta>"
    b'<?xpacket end="w"?>'
)

# A Photoshop APP13 resource block with one IPTC-IIM record: 2:120, Caption/Abstract.
# libvips reports APP13 as "iptc-data" only when it starts with "Photoshop 3.0".
_IPTC_RECORD: bytes = b"\x1c\x02\x78" + struct.pack(">H", len(IPTC_MARKER)) + IPTC_MARKER.encode()
IPTC_BLOCK: bytes = (
    b"Photoshop 3.0\0"
    + b"8BIM\x04\x04\0\0"  # resource 0x0404 (IPTC-NAA), empty padded name
    + struct.pack(">I", len(_IPTC_RECORD))
    + _IPTC_RECORD
    + b"\0" * (len(_IPTC_RECORD) % 2)  # resource data is padded to an even length
)

# Background colours for animation frames; consecutive frames always differ,
# so encoders cannot merge them away.
FRAME_COLOURS: tuple[RGB, ...] = (
    (210, 40, 40),
    (40, 160, 70),
    (30, 75, 150),
    (240, 220, 40),
    (150, 60, 190),
    (40, 190, 200),
)

# EXIF tag numbers that tests look for in :func:`jpeg_exif_tags` output.
EXIF_TAG_ORIENTATION = 0x0112
EXIF_TAG_IMAGE_DESCRIPTION = 0x010E
EXIF_TAG_ARTIST = 0x013B
EXIF_TAG_EXIF_IFD = 0x8769
EXIF_TAG_GPS_IFD = 0x8825
GPS_TAG_LATITUDE = 0x0002
GPS_TAG_LONGITUDE = 0x0004

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------
# Pixels
# --------------------------------------------------------------------------


def reference_pattern(width: int, height: int) -> pyvips.Image:
    """Make the upright sRGB uchar 3-band four-quadrant reference image."""
    if width < 2 or height < 2:
        raise ValueError("reference pattern needs at least 2x2 pixels")
    return _quadrant_image(width, height, [list(c) for c in REFERENCE_COLOURS]).copy(
        interpretation="srgb"
    )


def alpha_plane(width: int, height: int) -> pyvips.Image:
    """Make the 1-band uchar alpha plane matching :data:`REFERENCE_ALPHAS`."""
    return _quadrant_image(width, height, [[a] for a in REFERENCE_ALPHAS])


def _quadrant_image(width: int, height: int, values: list[list[int]]) -> pyvips.Image:
    # Split at width // 2 and height // 2, the same place quadrant sampling uses.
    xy = pyvips.Image.xyz(width, height)
    left = xy.extract_band(0) < width // 2
    top = xy.extract_band(1) < height // 2
    # ifthenelse with constants takes the condition's uchar format.
    upper = left.ifthenelse(values[0], values[1])
    lower = left.ifthenelse(values[2], values[3])
    return top.ifthenelse(upper, lower).cast("uchar")


def _quadrant_boxes(width: int, height: int) -> list[tuple[int, int, int]]:
    """Return (left, top, side) of a small square at each quadrant's centre."""
    if width < 2 or height < 2:
        raise ValueError(f"image too small to have quadrants: {width}x{height}")
    half_w, half_h = width // 2, height // 2
    side = max(1, min(half_w, half_h) // 4)
    boxes = []
    for y0, qh in ((0, half_h), (half_h, height - half_h)):
        for x0, qw in ((0, half_w), (half_w, width - half_w)):
            cx, cy = x0 + qw // 2, y0 + qh // 2
            boxes.append((max(0, cx - side // 2), max(0, cy - side // 2), side))
    return boxes


def _scale(image: pyvips.Image) -> float:
    fmt = image.format
    if fmt == "uchar":
        return 1.0
    if fmt == "ushort":
        return 257.0
    raise ValueError(f"unsupported band format for sampling: {fmt}")


def quadrant_colours(image: pyvips.Image) -> Quadrants:
    """Sample the centre of each quadrant (TL, TR, BL, BR) as 8-bit RGB.

    Averages a small box (a quarter of the quadrant's short side) so JPEG noise
    does not decide the result. Extra bands (alpha) are ignored, grey images are
    reported as (v, v, v), 16-bit values are scaled to 0..255.
    """
    if image.interpretation == "cmyk":
        raise ValueError("convert CMYK to sRGB (icc_transform) before sampling")
    scale = _scale(image)
    if image.bands >= 3:
        rgb = image.extract_band(0, n=3)
    else:
        grey = image.extract_band(0)
        rgb = grey.bandjoin(grey).bandjoin(grey)
    out: list[RGB] = []
    for left, top, side in _quadrant_boxes(image.width, image.height):
        box = rgb.extract_area(left, top, side, side)
        r, g, b = (round(box.extract_band(i).avg() / scale) for i in range(3))
        out.append((r, g, b))
    return (out[0], out[1], out[2], out[3])


def quadrant_alphas(image: pyvips.Image) -> tuple[int, int, int, int]:
    """Sample alpha (0..255) at each quadrant's centre; 255s if there is none."""
    if image.bands not in (2, 4):
        return (255, 255, 255, 255)
    scale = _scale(image)
    alpha = image.extract_band(image.bands - 1)
    values = [
        round(alpha.extract_area(left, top, side, side).avg() / scale)
        for left, top, side in _quadrant_boxes(image.width, image.height)
    ]
    return (values[0], values[1], values[2], values[3])


def max_channel_delta(actual: Quadrants, expected: Quadrants) -> int:
    """Return the largest per-channel difference between two quadrant samples."""
    return max(
        abs(a - e)
        for qa, qe in zip(actual, expected, strict=True)
        for a, e in zip(qa, qe, strict=True)
    )


def _to_stored(image: pyvips.Image, orientation: int) -> pyvips.Image:
    """Apply the inverse of EXIF orientation ``orientation`` to upright pixels."""
    # EXIF n says "to display, apply T_n to the stored pixels", so we store
    # T_n^-1(upright). Only 6 and 8 are not their own inverse.
    if orientation == 1:
        return image
    if orientation == 2:
        return image.fliphor()
    if orientation == 3:
        return image.rot180()
    if orientation == 4:
        return image.flipver()
    if orientation == 5:  # transpose
        return image.rot90().fliphor()
    if orientation == 6:  # display turns 90 clockwise, so store 90 anticlockwise
        return image.rot270()
    if orientation == 7:  # transverse
        return image.rot90().flipver()
    if orientation == 8:
        return image.rot90()
    raise ValueError(f"EXIF orientation must be 1..8, got {orientation}")


def _with_markers(image: pyvips.Image, *, xmp: bool) -> pyvips.Image:
    """Return a copy carrying EXIF :data:`EXIF_MARKER` (and XMP if asked)."""
    # copy() first: set_type on a shared (cached) image would leak metadata.
    marked = image.copy()
    marked.set_type(pyvips.GValue.gstr_type, "exif-ifd0-ImageDescription", EXIF_MARKER)
    marked.set_type(pyvips.GValue.gstr_type, "exif-ifd0-Artist", EXIF_MARKER)
    if xmp:
        marked.set_type(pyvips.GValue.blob_type, "xmp-data", XMP_PACKET)
    return marked


def _profile_option(icc: bool) -> dict[str, Any]:
    # "srgb" names libvips' built-in profile; it is embedded, pixels untouched.
    return {"profile": "srgb"} if icc else {}


# --------------------------------------------------------------------------
# JPEG
# --------------------------------------------------------------------------


def make_jpeg(
    *, width: int = 640, height: int = 480, orientation: int = 1, **metadata: Any
) -> bytes:
    """Make a JPEG that displays as ``reference_pattern(width, height)``, carrying
    `with_metadata`'s ``metadata`` (gps, xmp, comment, icc, iptc, quality).

    The stored pixels are pre-transformed so that honouring the EXIF
    ``orientation`` tag shows the reference upright.
    """
    stored = _to_stored(reference_pattern(width, height), orientation)
    stored.set_type(pyvips.GValue.gint_type, "orientation", orientation)
    return with_metadata(stored, **metadata)


def with_metadata(
    image: pyvips.Image,
    *,
    gps: bool = False,
    xmp: bool = False,
    comment: str | None = None,
    icc: bool = False,
    iptc: bool = False,
    quality: int = 90,
) -> bytes:
    """`image` as a JPEG. EXIF always carries :data:`EXIF_MARKER` (ImageDescription and
    Artist); ``gps`` adds a GPS IFD, ``xmp`` an APP1 XMP packet with :data:`XMP_MARKER`,
    ``comment`` a COM segment, ``icc`` an APP2 sRGB ICC profile (pixels unchanged),
    ``iptc`` an APP13 IPTC caption with :data:`IPTC_MARKER`."""
    stored = _with_markers(image, xmp=xmp)
    if gps:
        for name, value in GPS_FIELDS.items():
            stored.set_type(pyvips.GValue.gstr_type, name, value)
    if iptc:
        stored.set_type(pyvips.GValue.blob_type, "iptc-data", IPTC_BLOCK)
    data: bytes = stored.jpegsave_buffer(Q=quality, **_profile_option(icc))
    if comment is not None:
        data = _insert_jpeg_comment(data, comment)
    return data


def _insert_jpeg_comment(data: bytes, comment: str) -> bytes:
    # libvips 8.18 neither writes nor reports JPEG comments ("jpeg-comment" is
    # ignored by jpegsave), so the COM (0xFFFE) segment is spliced in by hand,
    # straight after SOI.
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG (no SOI)")
    payload = comment.encode("utf-8")
    if len(payload) > 0xFFFF - 2:
        raise ValueError("JPEG comment too long for one COM segment")
    segment = b"\xff\xfe" + struct.pack(">H", len(payload) + 2) + payload
    return data[:2] + segment + data[2:]


def make_noisy_jpeg(*, width: int = 3000, height: int = 2000, quality: int = 95) -> bytes:
    """A JPEG of coloured noise: it compresses badly, like a real photo's fine detail,
    so its file and its variants are large (for disk-full and size tests)."""
    bands = [pyvips.Image.gaussnoise(width, height, mean=128, sigma=60) for _ in range(3)]
    noise = bands[0].bandjoin(bands[1:]).cast("uchar").copy(interpretation="srgb")
    data: bytes = noise.jpegsave_buffer(Q=quality)
    return data


def make_cmyk_jpeg(
    *, width: int = 400, height: int = 300, icc: bool = True, quality: int = 90
) -> bytes:
    """Make a 4-band CMYK JPEG with libvips' built-in CMYK ICC profile embedded.

    Converted back to sRGB it shows :data:`CMYK_EXPECTED_SRGB`. The embedded
    profile is ~940 KB, so the file is ~1 MB whatever its pixel size; with
    ``icc=False`` the same pixels are saved untagged.
    """
    cmyk = reference_pattern(width, height).icc_transform("cmyk", intent="relative")
    if not icc:
        cmyk = cmyk.copy()  # remove() on a shared (cached) image would leak into others
        cmyk.remove("icc-profile-data")
    data: bytes = cmyk.jpegsave_buffer(Q=quality)
    return data


def make_icc_tagged_jpeg(
    *, width: int = 400, height: int = 300, profile: str = "p3", quality: int = 90
) -> bytes:
    """Make an RGB JPEG whose pixels are in a non-sRGB space.

    ``profile`` is a libvips built-in name or ICC file path; the default "p3"
    is libvips' compact P3 profile (description "sP3C"). It is embedded;
    converted to sRGB the quadrants show :data:`ICC_EXPECTED_SRGB`, while the
    raw stored values differ noticeably (green and yellow by ~40), so ignoring
    the profile is detectable.
    """
    tagged = reference_pattern(width, height).icc_transform(profile, intent="relative")
    data: bytes = tagged.jpegsave_buffer(Q=quality)
    return data


def make_panorama(*, width: int = 4000, height: int = 200) -> bytes:
    """Make a very wide (20:1 by default) JPEG."""
    return make_jpeg(width=width, height=height, quality=85)


# --------------------------------------------------------------------------
# PNG
# --------------------------------------------------------------------------


def make_png(
    *,
    width: int = 320,
    height: int = 240,
    bits: int = 8,
    alpha: bool = False,
    text_chunk: str | None = None,
    metadata: bool = False,
) -> bytes:
    """Make an RGB(A) PNG of the reference pattern, 8 or 16 bits per sample.

    With ``alpha`` the quadrants get :data:`REFERENCE_ALPHAS`; ``text_chunk``
    adds an uncompressed tEXt "Comment" chunk with that (Latin-1) text;
    ``metadata`` adds eXIf (with :data:`EXIF_MARKER`), an sRGB iCCP and an
    uncompressed iTXt XMP packet (with :data:`XMP_MARKER`).
    """
    image = reference_pattern(width, height)
    if metadata:
        image = _with_markers(image, xmp=False)
    if alpha:
        image = image.bandjoin(alpha_plane(width, height))
    if bits == 16:
        # 255 * 257 == 65535: stretch to the full 16-bit range exactly.
        image = (image.cast("ushort") * 257).cast("ushort").copy(interpretation="rgb16")
    elif bits != 8:
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    data: bytes = image.pngsave_buffer(bitdepth=bits, **_profile_option(metadata))
    if metadata:
        data = _insert_png_chunk(data, b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0" + XMP_PACKET)
    if text_chunk is not None:
        payload = b"Comment\0" + text_chunk.encode("latin-1")
        data = _insert_png_chunk(data, b"tEXt", payload)
    return data


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def _insert_png_chunk(data: bytes, kind: bytes, payload: bytes) -> bytes:
    # libvips writes "png-comment-*" text and XMP as compressed zTXt, where the
    # marker bytes are not visible, so text chunks are spliced in by hand
    # (uncompressed, right after IHDR) to keep the markers greppable.
    if data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    ihdr_end = 8 + 4 + 4 + 13 + 4
    return data[:ihdr_end] + _png_chunk(kind, payload) + data[ihdr_end:]


def make_tiny(*, size: int = 8) -> bytes:
    """Make a tiny square PNG (8x8 by default)."""
    return make_png(width=size, height=size)


# --------------------------------------------------------------------------
# WebP, AVIF, GIF (still)
# --------------------------------------------------------------------------


def make_webp(
    *,
    width: int = 320,
    height: int = 240,
    alpha: bool = False,
    lossless: bool = False,
    metadata: bool = False,
    quality: int = 80,
) -> bytes:
    """Make a still WebP of the reference pattern (optionally with alpha).

    ``metadata`` adds EXIF, XMP and ICCP chunks carrying :data:`EXIF_MARKER`,
    :data:`XMP_MARKER` and the sRGB profile.
    """
    image = reference_pattern(width, height)
    if metadata:
        image = _with_markers(image, xmp=True)
    if alpha:
        image = image.bandjoin(alpha_plane(width, height))
    data: bytes = image.webpsave_buffer(Q=quality, lossless=lossless, **_profile_option(metadata))
    return data


def make_avif(*, width: int = 160, height: int = 120, quality: int = 60) -> bytes:
    """Make a small still AVIF (HEIF container, AV1) of the reference pattern."""
    image = reference_pattern(width, height)
    data: bytes = image.heifsave_buffer(compression="av1", Q=quality, effort=2)
    return data


def make_gif(*, width: int = 160, height: int = 120, comment: str | None = None) -> bytes:
    """Make a single-frame GIF of the reference pattern.

    ``comment`` adds a comment extension with that (ASCII) text before the image.
    """
    data: bytes = reference_pattern(width, height).gifsave_buffer()
    if comment is not None:
        data = _insert_gif_comment(data, comment)
    return data


def _insert_gif_comment(data: bytes, comment: str) -> bytes:
    # gifsave writes no comments, so the extension (0x21 0xFE, sub-blocks of at most 255
    # bytes, a zero-length terminator) is spliced in after the global colour table.
    packed = data[10]
    table = 3 * (1 << ((packed & 0x07) + 1)) if packed & 0x80 else 0
    text = comment.encode("ascii")
    blocks = b"".join(
        bytes([len(text[i : i + 255])]) + text[i : i + 255] for i in range(0, len(text), 255)
    )
    start = 13 + table
    return data[:start] + b"\x21\xfe" + blocks + b"\0" + data[start:]


def make_flat_png(
    *, colour: RGB, patch: RGB | None = None, width: int = 200, height: int = 150
) -> bytes:
    """Make a PNG of one ``colour``; ``patch`` paints a centred quarter of its area."""
    image = pyvips.Image.black(width, height, bands=3).new_from_image(list(colour))
    if patch is not None:
        image = image.draw_rect(
            list(patch), width // 4, height // 4, width // 2, height // 2, fill=True
        )
    data: bytes = image.cast("uchar").copy(interpretation="srgb").pngsave_buffer()
    return data


# --------------------------------------------------------------------------
# Graphics and photos (content-aware encoding)
# --------------------------------------------------------------------------


def graphic(width: int = 480, height: int = 320, *, alpha: bool = False) -> pyvips.Image:
    """A UI-like graphic in a few flat colours: a header bar, panels, text-like bars, a disc.

    Drawn without antialiasing, so it keeps its few colours, as pixel art and UI chrome
    do. With ``alpha`` the background is transparent and the shapes opaque.
    """
    ground = [248, 248, 250, 0 if alpha else 255]
    image = pyvips.Image.black(width, height, bands=4).new_from_image(ground)
    image = image.draw_rect([40, 55, 80, 255], 0, 0, width, height // 8, fill=True)
    for panel in range(3):
        left = width // 24 + panel * width // 3
        image = image.draw_rect(
            [255, 255, 255, 255], left, height // 5, width // 4, height // 2, fill=True
        )
        for line in range(5):
            top = height // 5 + 12 + line * (height // 14)
            length = width // 5 - (line * 7 + panel * 11) % (width // 10)
            image = image.draw_rect(
                [*REFERENCE_COLOURS[line % 4], 255], left + 8, top, length, 4, fill=True
            )
    image = image.draw_circle(
        [*REFERENCE_COLOURS[0], 255], width * 5 // 6, height * 5 // 6, height // 10, fill=True
    )
    image = image.cast("uchar").copy(interpretation="srgb")
    return image if alpha else image.extract_band(0, n=3)


def make_graphic(
    *, width: int = 480, height: int = 320, alpha: bool = False, format: str = "png"
) -> bytes:
    """Make :func:`graphic` as a ``png``, ``gif``, ``webp`` (lossless) or ``webp-lossy`` file."""
    image = graphic(width, height, alpha=alpha)
    data: bytes
    if format == "png":
        data = image.pngsave_buffer()
    elif format == "gif":
        data = image.gifsave_buffer()
    elif format in ("webp", "webp-lossy"):
        data = image.webpsave_buffer(lossless=format == "webp", Q=90)
    else:
        raise ValueError(f"unknown graphic format {format!r}")
    return data


def make_photo_png(*, width: int = 640, height: int = 480, alpha: bool = False) -> bytes:
    """Make a PNG of smooth colour gradients with grain: a photo saved losslessly.

    With ``alpha`` it is a cut-out: a transparent border around the photo, which alone
    must not make it count as a graphic.
    """
    xy = pyvips.Image.xyz(width, height)
    x, y = xy[0], xy[1]
    grain = [pyvips.Image.gaussnoise(width, height, mean=0, sigma=6) for _ in range(3)]
    red = x * (200 / width) + 30 + grain[0]
    green = y * (180 / height) + 40 + grain[1]
    blue = (x + y) * (120 / (width + height)) + 90 + grain[2]
    image = red.bandjoin([green, blue]).cast("uchar").copy(interpretation="srgb")
    if alpha:
        inside = (x > width // 8) & (x < width * 7 // 8) & (y > height // 8) & (y < height * 7 // 8)
        image = image.bandjoin(inside.ifthenelse(255, 0).cast("uchar"))
    data: bytes = image.pngsave_buffer()
    return data


def scene(*, seed: int = 1, width: int = 800, height: int = 600) -> pyvips.Image:
    """Soft coloured blobs (Perlin noise per band), different for every `seed`: a picture
    with enough structure for a PDQ hash of high quality, unlike the reference pattern's
    four flat quadrants (PDQ quality ~35, too flat to match on)."""
    bands = [
        pyvips.Image.perlin(width, height, cell_size=max(width // 6, 8), seed=seed * 3 + band)
        for band in range(3)
    ]
    image = bands[0].bandjoin(bands[1:])
    return ((image + 1) * 127.5).cast("uchar").copy(interpretation="srgb")


def make_scene_jpeg(
    *, seed: int = 1, width: int = 800, height: int = 600, quality: int = 90, scale: float = 1.0
) -> bytes:
    """`scene(seed=...)` as a JPEG of `quality`, resized by `scale` (a near-copy: the same
    picture re-encoded or resized has a PDQ hash a few bits away)."""
    image = scene(seed=seed, width=width, height=height)
    if scale != 1.0:
        image = image.resize(scale)
    data: bytes = image.jpegsave_buffer(Q=quality)
    return data


# --------------------------------------------------------------------------
# HEIC/HEIF (pillow-heif's encoder, x265: the optional extra `mediasvc[heic]`)
# --------------------------------------------------------------------------

# libheif's HEVC encoder at its fastest preset: a fixture is encoded in milliseconds, not
# seconds, and quality 90 still keeps quadrant centres within a few units.
_HEIC_ENCODER = {"preset": "ultrafast"}
HEIF_AVAILABLE = find_spec("pillow_heif") is not None


def make_heic(
    *,
    width: int = 640,
    height: int = 480,
    orientation: int = 1,
    exif_orientation: int | None = None,
    gps: bool = False,
    xmp: bool = False,
    icc: str | None = None,
    nclx_p3: bool = False,
    bits: int = 8,
    alpha: bool = False,
    tile_size: int = 0,
    quality: int = 90,
) -> bytes:
    """Make a HEIC (HEVC in HEIF, as an iPhone writes) that displays as the reference.

    ``orientation`` stores the pixels turned as the EXIF orientation says and writes both
    that EXIF ``Orientation`` and the equivalent ``irot``/``imir`` boxes (pillow-heif's
    encoder does, as iPhones do): a reader that honours the boxes and then the EXIF tag
    shows it turned twice. ``exif_orientation`` then overwrites the EXIF tag alone (the
    boxes stay), as a tool that edits EXIF only would. EXIF always carries
    :data:`EXIF_MARKER`; ``gps`` adds a GPS IFD, ``xmp`` the :data:`XMP_PACKET`, ``icc``
    converts the pixels into that libvips profile ("p3") and embeds it, ``nclx_p3`` converts
    them to Display P3 and says so in an ``nclx`` box only, ``bits`` 10 or 12 writes HDR
    samples, ``alpha`` the quadrant alphas of :data:`REFERENCE_ALPHAS`, ``tile_size`` a
    grid of tiles of that size (iPhones write 512).
    """
    import pillow_heif

    image = reference_pattern(width, height)
    profile: bytes | None = None
    if icc is not None or nclx_p3:
        image = image.icc_transform(icc or "p3", intent="relative")
        profile = None if nclx_p3 else image.get("icc-profile-data")
    if alpha:
        image = image.bandjoin(alpha_plane(width, height))
    stored = _to_stored(image, orientation)
    mode = "RGBA" if alpha else "RGB"
    if bits > 8:
        # 16-bit little-endian samples in; the encoder keeps the top `bits` of each.
        stored = (stored.cast("ushort") * 257).cast("ushort")
        mode += ";16"
    heif = pillow_heif.from_bytes(mode, (stored.width, stored.height), stored.write_to_memory())
    out = io.BytesIO()
    # nclx (ITU-T H.273): primaries 12 are Display P3's, transfer 13 is sRGB's curve.
    colour = {"color_primaries": 12, "transfer_characteristic": 13} if nclx_p3 else {}
    heif.save(
        out,
        quality=quality,
        exif=_heic_exif(orientation, gps=gps),
        xmp=XMP_PACKET if xmp else None,
        icc_profile=profile,
        bit_depth=bits if bits > 8 else None,
        tile_size=tile_size,
        enc_params=dict(_HEIC_ENCODER),
        **colour,
    )
    data = out.getvalue()
    if exif_orientation is not None:
        # The two EXIF blocks differ in the Orientation value only, so have the same size;
        # the file holds the TIFF structure after the "Exif\0\0" header.
        written, edited = (_heic_exif(o, gps=gps)[6:] for o in (orientation, exif_orientation))
        if data.count(written) != 1:
            raise ValueError("the EXIF block is not found once")
        data = data.replace(written, edited)
    return data


def _heic_exif(orientation: int, *, gps: bool) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[EXIF_TAG_IMAGE_DESCRIPTION] = EXIF_MARKER
    exif[EXIF_TAG_ARTIST] = EXIF_MARKER
    if gps:
        location = exif.get_ifd(EXIF_TAG_GPS_IFD)
        location.update({1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 36.0)})
    data: bytes = exif.tobytes()
    return data


def make_heif_burst(
    *, width: int = 120, height: int = 90, images: int = 3, primary: int = 1
) -> bytes:
    """Make a HEIC of ``images`` still images (a burst) whose primary is image ``primary``.

    Image i has background ``FRAME_COLOURS[i]`` and the sliding white square of the
    animation factories, so a test can tell which one was decoded.
    """
    import pillow_heif

    strip = _animation_strip(width, height, images, 100)
    heif = pillow_heif.HeifFile()
    for index in range(images):
        frame = strip.crop(0, index * height, width, height)
        heif.add_frombytes("RGB", (width, height), frame.write_to_memory())
    out = io.BytesIO()
    heif.save(out, quality=90, primary_index=primary, enc_params=dict(_HEIC_ENCODER))
    return out.getvalue()


def with_heif_box(data: bytes, kind: str, rewrite: Callable[[bytearray, int], None]) -> bytes:
    """``data`` with ``rewrite(buffer, payload_start)`` applied to its first ``kind`` box
    inside ``meta`` (or ``meta`` itself), searched depth-first through ``iprp``/``ipco``."""
    buffer = bytearray(data)
    containers = {"meta": 4, "iprp": 0, "ipco": 0}  # meta is a FullBox: children after 4

    def find(start: int, end: int) -> int | None:
        for box, payload, box_end in isobmff_boxes(data, start, end):
            if box == kind:
                return payload
            if box in containers:
                found = find(payload + containers[box], box_end)
                if found is not None:
                    return found
        return None

    at = find(0, len(data))
    if at is None:
        raise ValueError(f"no {kind} box")
    rewrite(buffer, at)
    return bytes(buffer)


def make_heic_header_bomb(*, width: int = 30000, height: int = 30000) -> bytes:
    """A small real HEIC whose ``ispe`` box claims ``width`` x ``height``.

    The coded image is 256x256; only the header says otherwise, so only a header check
    refuses it before libheif would allocate gigabytes for the decode.
    """

    def claim(buffer: bytearray, at: int) -> None:
        struct.pack_into(">II", buffer, at + 4, width, height)  # FullBox header, then sizes

    return with_heif_box(make_heic(width=256, height=256), "ispe", claim)


def make_heic_grid_bomb(*, claimed: int = 1024, tiles: int = 24) -> bytes:
    """A HEIC grid of ``tiles`` x ``tiles`` tiles of 1024x1024 whose grid item's ``ispe``
    claims ``claimed`` square: by default 1 MP in the header, a 604 MP canvas to decode.

    Every tile is the same coded image, referenced ``tiles``² times from the grid
    (``iref``/``dimg``; libheif takes up to 1000), so the file stays near 30 KB. Built
    from a real 2x2 grid: the
    grid descriptor (in ``idat``), the ``dimg`` references and the ``ispe`` are rewritten,
    and ``iloc``'s file offsets move with the grown ``meta``.
    """
    tile = 1024
    side = 2 * tile
    data = bytearray(make_heic(width=side, height=side, tile_size=tile))
    (_, meta, meta_end) = next(box for box in isobmff_boxes(bytes(data)) if box[0] == "meta")
    children = {
        kind: (start, end) for kind, start, end in isobmff_boxes(bytes(data), meta + 4, meta_end)
    }
    # idat: ImageGrid version, flags (0: 16-bit sizes), rows - 1, columns - 1, width, height.
    idat, _ = children["idat"]
    if data[idat : idat + 4] != bytes([0, 0, 1, 1]):
        raise ValueError("not the 2x2 grid descriptor")
    struct.pack_into(">BBHH", data, idat + 2, tiles - 1, tiles - 1, tiles * tile, tiles * tile)
    # ispe of the grid (the tiles' are smaller): FullBox header, then width and height.
    ipco = next(box for box in isobmff_boxes(bytes(data), *children["iprp"]) if box[0] == "ipco")
    for kind, start, _ in isobmff_boxes(bytes(data), ipco[1], ipco[2]):
        if kind == "ispe" and struct.unpack_from(">II", data, start + 4) == (side, side):
            struct.pack_into(">II", data, start + 4, claimed, claimed)
    # iref v0 (16-bit ids): the grid's dimg list becomes tiles² times its first tile.
    iref, iref_end = children["iref"]
    references = bytearray(data[iref : iref + 4])
    for kind, start, end in isobmff_boxes(bytes(data), iref + 4, iref_end):
        entry = bytes(data[start:end])
        if kind == "dimg":
            from_id, _, first = struct.unpack_from(">HHH", entry)
            entry = struct.pack(">HH", from_id, tiles * tiles) + struct.pack(">H", first) * (
                tiles * tiles
            )
        references += struct.pack(">I4s", 8 + len(entry), kind.encode()) + entry
    if iref_end != meta_end:
        raise ValueError("iref is not meta's last box")
    grown = len(references) - (iref_end - iref)
    data[iref:iref_end] = references
    struct.pack_into(">I", data, iref - 8, 8 + len(references))
    struct.pack_into(">I", data, meta - 8, struct.unpack_from(">I", data, meta - 8)[0] + grown)
    _shift_iloc(data, children["iloc"][0], grown)
    return bytes(data)


def _shift_iloc(data: bytearray, iloc: int, by: int) -> None:
    """Move every file offset in the ``iloc`` box at ``iloc`` (payload) by ``by`` bytes."""
    version = data[iloc]
    offset_size, length_size = data[iloc + 4] >> 4, data[iloc + 4] & 15
    base_size, index_size = data[iloc + 5] >> 4, data[iloc + 5] & 15 if version else 0
    at = iloc + 6
    count_size = 2 if version < 2 else 4
    count = int.from_bytes(data[at : at + count_size], "big")
    at += count_size
    for _ in range(count):
        at += count_size  # item_ID
        method = 0
        if version:
            method = int.from_bytes(data[at : at + 2], "big") & 15
            at += 2
        at += 2  # data_reference_index
        if method == 0 and base_size:
            base = int.from_bytes(data[at : at + base_size], "big") + by
            data[at : at + base_size] = base.to_bytes(base_size, "big")
            by_extent = 0  # the base moved; extent offsets are relative to it
        else:
            by_extent = by if method == 0 else 0
        at += base_size
        extents = int.from_bytes(data[at : at + 2], "big")
        at += 2
        for _ in range(extents):
            at += index_size
            if offset_size:
                offset = int.from_bytes(data[at : at + offset_size], "big") + by_extent
                data[at : at + offset_size] = offset.to_bytes(offset_size, "big")
            at += offset_size + length_size


def make_heic_without_primary() -> bytes:
    """A HEIC whose ``pitm`` names an item the file does not have."""

    def point_nowhere(buffer: bytearray, at: int) -> None:
        struct.pack_into(">H", buffer, at + 4, 0x7777)  # pitm v0: FullBox header, item_ID

    return with_heif_box(make_heic(width=128, height=96), "pitm", point_nowhere)


def make_heic_with_zeroed_pixels() -> bytes:
    """A HEIC whose coded image (the ``mdat`` payload) is zeroed; every header intact."""
    data = bytearray(make_heic(width=128, height=96))
    for kind, start, end in isobmff_boxes(bytes(data)):
        if kind == "mdat":
            data[start:end] = bytes(end - start)
    return bytes(data)


def with_brands(data: bytes, major: bytes, *compatible: bytes) -> bytes:
    """``data`` (an ISO-BMFF file) with its ``ftyp`` brands replaced, the box the same size.

    The compatible brands are repeated to fill the box: every offset in the file stays.
    """
    kind, start, end = next(isobmff_boxes(data))
    if kind != "ftyp" or not compatible:
        raise ValueError("not an ftyp box first, or no compatible brand")
    slots = (end - start - 8) // 4
    brands = (list(compatible) * slots)[:slots]
    return data[:start] + major + data[start + 4 : start + 8] + b"".join(brands) + data[end:]


# mime type -> factory with defaults, for "each accepted format" parametrising.
STILL_FACTORIES: dict[str, Callable[[], bytes]] = {
    "image/jpeg": make_jpeg,
    "image/png": make_png,
    "image/webp": make_webp,
    "image/gif": make_gif,
    "image/avif": make_avif,
}
if HEIF_AVAILABLE:
    STILL_FACTORIES["image/heic"] = make_heic


# --------------------------------------------------------------------------
# Animations
# --------------------------------------------------------------------------


def _animation_strip(width: int, height: int, frames: int, delay_ms: int) -> pyvips.Image:
    """Stack ``frames`` frames vertically with libvips' animation metadata set."""
    if frames < 1:
        raise ValueError("an animation needs at least one frame")
    side = max(1, min(width, height) // 3)
    pages = []
    for i in range(frames):
        colour = list(FRAME_COLOURS[i % len(FRAME_COLOURS)])
        page = pyvips.Image.black(width, height, bands=3).new_from_image(colour)
        # A white square sliding left to right makes every frame unique.
        x = (width - side) * i // max(1, frames - 1)
        page = page.draw_rect([255, 255, 255], x, (height - side) // 2, side, side, fill=True)
        pages.append(page.cast("uchar").copy(interpretation="srgb"))
    strip = pyvips.Image.arrayjoin(pages, across=1).copy()
    strip.set_type(pyvips.GValue.gint_type, "page-height", height)
    strip.set_type(pyvips.GValue.array_int_type, "delay", [delay_ms] * frames)
    strip.set_type(pyvips.GValue.gint_type, "loop", 0)  # 0 = loop forever
    return strip


def make_animated_gif(
    *, width: int = 120, height: int = 90, frames: int = 6, delay_ms: int = 100
) -> bytes:
    """Make a looping animated GIF; frame i has background ``FRAME_COLOURS[i]``."""
    data: bytes = _animation_strip(width, height, frames, delay_ms).gifsave_buffer()
    return data


def make_animated_webp(
    *, width: int = 120, height: int = 90, frames: int = 6, delay_ms: int = 100
) -> bytes:
    """Make a looping animated WebP; frame i has background ``FRAME_COLOURS[i]``."""
    strip = _animation_strip(width, height, frames, delay_ms)
    data: bytes = strip.webpsave_buffer(Q=80)
    return data


def make_avif_sequence(
    *,
    width: int = 120,
    height: int = 90,
    frames: int = 5,
    delay_ms: int = 100,
    corrupt_pixels: bool = False,
) -> bytes:
    """Make an AVIF image sequence (`avis` brand); frame i has background ``FRAME_COLOURS[i]``.

    libvips cannot write one (heifsave writes a still item per page), so Pillow's libavif
    encodes it: an AV1 track of ``frames`` samples and, as libavif always writes, the first
    frame again as the still primary item. ``corrupt_pixels`` zeroes the coded frames (every
    ``mdat`` payload) and leaves every header intact, so only a decode can tell.
    """
    strip = _animation_strip(width, height, frames, delay_ms)
    pages = [
        Image.frombytes(
            "RGB", (width, height), strip.crop(0, i * height, width, height).write_to_memory()
        )
        for i in range(frames)
    ]
    out = io.BytesIO()
    pages[0].save(
        out,
        format="AVIF",
        save_all=True,
        append_images=pages[1:],
        duration=delay_ms,
        quality=75,
        speed=8,
        max_threads=1,
    )
    data = out.getvalue()
    if corrupt_pixels:
        damaged = bytearray(data)
        for kind, start, end in isobmff_boxes(data):
            if kind == "mdat":
                damaged[start:end] = bytes(end - start)
        data = bytes(damaged)
    return data


def make_multi_image_avif(
    *, width: int = 120, height: int = 90, images: int = 3, primary: int = 1
) -> bytes:
    """Make an AVIF of ``images`` still images whose primary is image ``primary`` (from 0).

    Image i has background ``FRAME_COLOURS[i]``. heifsave writes one item per page, with item
    IDs 1, 2, ... in page order, and makes the first primary; the ``pitm`` box is rewritten.
    """
    strip = _animation_strip(width, height, images, 100)
    data = bytearray(strip.heifsave_buffer(compression="av1", Q=60, effort=2, keep="none"))
    meta = next((s, e) for kind, s, e in isobmff_boxes(bytes(data)) if kind == "meta")
    # meta is a FullBox: its children start after version and flags.
    pitm = next(
        s for kind, s, _ in isobmff_boxes(bytes(data), meta[0] + 4, meta[1]) if kind == "pitm"
    )
    struct.pack_into(">H", data, pitm + 4, primary + 1)  # pitm v0: FullBox header, item_ID
    return bytes(data)


# --------------------------------------------------------------------------
# Hostile files: bombs, lies and polyglots
# --------------------------------------------------------------------------


def make_png_header_bomb(*, width: int = 30000, height: int = 30000) -> bytes:
    """A PNG whose IHDR claims `width`x`height`, followed by a tiny bogus IDAT.

    Only a header check can refuse it cheaply: decoding would allocate gigabytes.
    """
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return (
        _PNG_SIGNATURE
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def make_jpeg_header_bomb(*, width: int = 60000, height: int = 60000) -> bytes:
    """A small real JPEG whose SOF frame header is patched to claim `width`x`height`."""
    data = bytearray(make_jpeg(width=64, height=48))
    for marker, _payload in jpeg_segment_payloads(bytes(data)):
        if marker in (0xC0, 0xC1, 0xC2):
            break
    else:
        raise ValueError("no SOF segment")
    sof = data.index(bytes([0xFF, marker]))
    # SOF payload: length(2) precision(1) height(2) width(2)
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def make_zero_png(*, width: int = 10000, height: int = 10000) -> bytes:
    """A real, valid PNG of `width`x`height` black pixels: a few hundred KB on the wire,
    hundreds of MB once decoded (a decompression bomb under the byte cap)."""
    image = pyvips.Image.black(width, height).cast("uchar")
    data: bytes = image.pngsave_buffer(compression=9, keep="none")
    return data


def make_many_frame_gif(*, frames: int = 5000, side: int = 2) -> bytes:
    """A GIF with `frames` tiny frames: cheap on the wire, expensive to decode whole."""
    # Alternate black and white frames: gifsave merges identical neighbours into one.
    rows = pyvips.Image.xyz(side, side * frames)[1]
    strip = ((rows / side).floor() % 2 * 255).cast("uchar").copy(interpretation="b-w")
    strip.set_type(pyvips.GValue.gint_type, "page-height", side)
    strip.set_type(pyvips.GValue.array_int_type, "delay", [20] * frames)
    data: bytes = strip.gifsave_buffer()
    return data


HTML_PAYLOAD = b"<html><body><script>alert('mediasvc-polyglot')</script></body></html>"


def make_jpeg_with_appended_html() -> bytes:
    """A JPEG followed by an HTML/JS document: a browser sniffing it might run the script."""
    return make_jpeg() + HTML_PAYLOAD


def make_jpeg_with_script_comment() -> bytes:
    """A JPEG carrying the HTML/JS payload in a COM segment."""
    return _insert_jpeg_comment(make_jpeg(), HTML_PAYLOAD.decode())


def make_gifar() -> bytes:
    """A GIF with a ZIP (JAR) archive appended, the classic GIFAR polyglot."""
    import io
    import zipfile

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as jar:
        jar.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\nMEDIASVC-GIFAR\n")
    return make_gif() + archive.getvalue()


# --------------------------------------------------------------------------
# Container parsers (independent of libvips, for "was it stripped?" checks)
# --------------------------------------------------------------------------


def jpeg_segment_payloads(data: bytes) -> list[tuple[int, bytes]]:
    """Return (marker, payload) for every JPEG segment between SOI and SOS."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG (no SOI)")
    out: list[tuple[int, bytes]] = []
    pos = 2
    while True:
        if pos >= len(data) or data[pos] != 0xFF:
            raise ValueError(f"expected a JPEG marker at offset {pos}")
        while pos < len(data) and data[pos] == 0xFF:  # fill bytes are legal
            pos += 1
        if pos >= len(data):
            raise ValueError("truncated JPEG: marker without code")
        marker = data[pos]
        pos += 1
        if marker == 0xDA:  # SOS: entropy-coded data follows
            return out
        if marker == 0xD9:
            raise ValueError("EOI before SOS")
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # standalone, no length
            out.append((marker, b""))
            continue
        if pos + 2 > len(data):
            raise ValueError("truncated JPEG segment length")
        (length,) = struct.unpack_from(">H", data, pos)
        if length < 2 or pos + length > len(data):
            raise ValueError(f"bad JPEG segment length {length} at offset {pos}")
        out.append((marker, data[pos + 2 : pos + length]))
        pos += length


def jpeg_segments(data: bytes) -> list[int]:
    """Return the marker byte of each JPEG segment before SOS (0xE1 APP1 ...)."""
    return [marker for marker, _ in jpeg_segment_payloads(data)]


def jpeg_exif_tags(data: bytes) -> dict[str, list[int]]:
    """Return tag numbers of the EXIF "ifd0", "exif" and "gps" IFDs of a JPEG.

    Only IFDs actually present appear as keys; no APP1 Exif segment gives {}.
    """
    tiff = next(
        (p[6:] for m, p in jpeg_segment_payloads(data) if m == 0xE1 and p[:6] == b"Exif\0\0"),
        None,
    )
    if tiff is None:
        return {}
    if tiff[:4] not in (b"II*\0", b"MM\0*"):
        raise ValueError("bad TIFF header in EXIF")
    order = "<" if tiff[:2] == b"II" else ">"

    def read_ifd(offset: int) -> dict[int, int]:
        # Maps tag -> raw 4-byte value field (an offset for sub-IFD pointers).
        if offset + 2 > len(tiff):
            raise ValueError(f"EXIF IFD offset {offset} out of range")
        (count,) = struct.unpack_from(order + "H", tiff, offset)
        if offset + 2 + 12 * count > len(tiff):
            raise ValueError("truncated EXIF IFD")
        entries: dict[int, int] = {}
        for i in range(count):
            tag, _type, _n, value = struct.unpack_from(order + "HHII", tiff, offset + 2 + 12 * i)
            entries[tag] = value
        return entries

    (ifd0_offset,) = struct.unpack_from(order + "I", tiff, 4)
    ifd0 = read_ifd(ifd0_offset)
    tags = {"ifd0": sorted(ifd0)}
    for name, pointer in (("exif", EXIF_TAG_EXIF_IFD), ("gps", EXIF_TAG_GPS_IFD)):
        if pointer in ifd0:
            tags[name] = sorted(read_ifd(ifd0[pointer]))
    return tags


def png_chunks(data: bytes) -> list[str]:
    """Return the type of every PNG chunk, in order, checking each CRC."""
    if data[:8] != _PNG_SIGNATURE:
        raise ValueError("not a PNG (bad signature)")
    out: list[str] = []
    pos = 8
    while pos < len(data):
        if pos + 8 > len(data):
            raise ValueError("truncated PNG chunk header")
        length, kind = struct.unpack_from(">I4s", data, pos)
        end = pos + 8 + length + 4
        if end > len(data):
            raise ValueError(f"truncated PNG chunk {kind!r}")
        (crc,) = struct.unpack_from(">I", data, end - 4)
        if zlib.crc32(data[pos + 4 : end - 4]) & 0xFFFFFFFF != crc:
            raise ValueError(f"bad CRC in PNG chunk {kind!r}")
        out.append(kind.decode("latin-1"))
        pos = end
        if kind == b"IEND":
            if pos != len(data):
                raise ValueError("trailing bytes after PNG IEND")
            return out
    raise ValueError("PNG has no IEND chunk")


def webp_chunks(data: bytes) -> list[str]:
    """Return the FourCC of every top-level chunk of a RIFF/WEBP file.

    Strict: the RIFF size must cover the whole buffer exactly, and every chunk
    (padded to an even length) must fit inside it.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise ValueError("not a RIFF/WEBP container")
    (riff_size,) = struct.unpack_from("<I", data, 4)
    if riff_size + 8 != len(data):
        raise ValueError(f"RIFF size {riff_size} does not match buffer length {len(data)}")
    out: list[str] = []
    pos = 12
    while pos < len(data):
        if pos + 8 > len(data):
            raise ValueError("truncated WebP chunk header")
        kind, size = struct.unpack_from("<4sI", data, pos)
        end = pos + 8 + size + (size & 1)
        if end > len(data):
            raise ValueError(f"truncated WebP chunk {kind!r}")
        out.append(kind.decode("latin-1"))
        pos = end
    if not out:
        raise ValueError("WebP container has no chunks")
    return out


def isobmff_boxes(
    data: bytes, start: int = 0, end: int | None = None
) -> Iterator[tuple[str, int, int]]:
    """Yield (type, payload start, payload end) for each ISO-BMFF box in ``data[start:end]``.

    Strict: every box must fit inside the range. 64-bit sizes are followed; a size of 0
    runs to the end of the range.
    """
    end = len(data) if end is None else end
    pos = start
    while pos < end:
        if pos + 8 > end:
            raise ValueError("truncated box header")
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise ValueError(f"box {kind!r} does not fit")
        yield kind.decode("latin-1"), pos + header, pos + size
        pos += size
