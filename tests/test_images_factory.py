"""Sanity checks for the test-image factory in ``tests/images.py``.

Other tests lean on these fixtures to prove rotation, colour handling and
metadata stripping, so the fixtures themselves must be shown to be right.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from typing import Any

import images
import pytest
import pyvips
from images import REFERENCE_COLOURS, quadrant_colours

# JPEG blocks smear colour a little even at the quadrant centres.
JPEG_TOLERANCE = 30
# Stated as "ΔE-ish": per-channel distance after a CMYK -> sRGB conversion.
CMYK_TOLERANCE = 20


def load(data: bytes, **options: Any) -> pyvips.Image:
    """Decode an encoded buffer with libvips."""
    return pyvips.Image.new_from_buffer(data, "", **options)


def test_reference_pattern_is_srgb_uchar_with_distinct_quadrants() -> None:
    """The reference is 3-band sRGB uchar and its quadrants have the reference colours."""
    ref = images.reference_pattern(101, 57)
    assert (ref.width, ref.height, ref.bands) == (101, 57, 3)
    assert ref.format == "uchar"
    assert ref.interpretation == "srgb"
    assert quadrant_colours(ref) == REFERENCE_COLOURS
    assert len(set(REFERENCE_COLOURS)) == 4


def test_quadrant_colours_detects_every_rotation_and_mirror() -> None:
    """All eight rotations/mirrors of the reference sample differently, so any is detectable."""
    ref = images.reference_pattern(64, 48)
    variants = [
        ref,
        ref.fliphor(),
        ref.flipver(),
        ref.rot90(),
        ref.rot180(),
        ref.rot270(),
        ref.rot90().fliphor(),
        ref.rot90().flipver(),
    ]
    assert len({quadrant_colours(v) for v in variants}) == 8


def test_quadrant_sampling_handles_grey_alpha_and_16_bit() -> None:
    """Sampling ignores alpha, scales 16-bit to 8-bit and reports grey as equal channels."""
    ref = images.reference_pattern(40, 30)
    with_alpha = ref.bandjoin(images.alpha_plane(40, 30))
    assert quadrant_colours(with_alpha) == REFERENCE_COLOURS
    assert images.quadrant_alphas(with_alpha) == images.REFERENCE_ALPHAS
    assert images.quadrant_alphas(ref) == (255, 255, 255, 255)
    wide = (ref.cast("ushort") * 257).cast("ushort")
    assert quadrant_colours(wide) == REFERENCE_COLOURS
    grey = quadrant_colours(ref.colourspace("b-w"))
    assert all(r == g == b for r, g, b in grey)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpeg_orientation_displays_reference_after_autorot(orientation: int) -> None:
    """After autorot every orientation shows the upright reference at width x height."""
    data = images.make_jpeg(width=64, height=48, orientation=orientation)
    stored = load(data)
    assert stored.get("orientation") == orientation
    # Orientations 5..8 swap axes, so the stored raster is 48x64.
    swapped = orientation >= 5
    assert (stored.width, stored.height) == ((48, 64) if swapped else (64, 48))
    upright = stored.autorot()
    assert (upright.width, upright.height) == (64, 48)
    delta = images.max_channel_delta(quadrant_colours(upright), REFERENCE_COLOURS)
    assert delta <= JPEG_TOLERANCE


def test_jpeg_orientation_survives_thumbnail() -> None:
    """libvips thumbnail (which autorotates) also shows the upright reference."""
    data = images.make_jpeg(orientation=6)
    thumb = pyvips.Image.thumbnail_buffer(data, 200)
    assert (thumb.width, thumb.height) == (200, 150)
    assert images.max_channel_delta(quadrant_colours(thumb), REFERENCE_COLOURS) <= JPEG_TOLERANCE


def test_jpeg_rejects_bad_orientation() -> None:
    """Orientation outside 1..8 is refused rather than silently ignored."""
    with pytest.raises(ValueError, match="orientation"):
        images.make_jpeg(orientation=9)


def test_plain_jpeg_has_exif_marker_only() -> None:
    """A default JPEG carries the EXIF marker but no GPS, XMP, COM or ICC."""
    data = images.make_jpeg()
    assert images.EXIF_MARKER.encode() in data
    assert images.XMP_MARKER.encode() not in data
    tags = images.jpeg_exif_tags(data)
    assert images.EXIF_TAG_IMAGE_DESCRIPTION in tags["ifd0"]
    assert images.EXIF_TAG_ARTIST in tags["ifd0"]
    assert "gps" not in tags
    markers = images.jpeg_segments(data)
    assert 0xE1 in markers
    assert 0xFE not in markers
    assert 0xE2 not in markers


def test_jpeg_with_everything_has_all_metadata_in_raw_bytes() -> None:
    """GPS IFD, XMP packet, COM segment and ICC profile are really in the file when asked for."""
    data = images.make_jpeg(gps=True, xmp=True, comment=images.COMMENT_MARKER, icc=True)
    for marker in (images.EXIF_MARKER, images.XMP_MARKER, images.COMMENT_MARKER):
        assert marker.encode() in data
    tags = images.jpeg_exif_tags(data)
    assert images.EXIF_TAG_GPS_IFD in tags["ifd0"]
    assert {images.GPS_TAG_LATITUDE, images.GPS_TAG_LONGITUDE} <= set(tags["gps"])
    segments = images.jpeg_segment_payloads(data)
    assert segments[0] == (0xFE, images.COMMENT_MARKER.encode())
    app1 = [p for m, p in segments if m == 0xE1]
    assert any(p.startswith(b"Exif\0\0") for p in app1)
    assert any(p.startswith(b"http://ns.adobe.com/xap/1.0/\0") for p in app1)
    assert any(m == 0xE2 and p.startswith(b"ICC_PROFILE\0") for m, p in segments)
    # libvips 8.18 does not surface COM segments, so only check the splice kept
    # the file decodable; the GPS fields must read back as written.
    image = load(data)
    assert image.avg() > 0
    assert str(image.get("exif-ifd3-GPSLatitude")).startswith("52/1 31/1 12/1")
    assert "icc-profile-data" in image.get_fields()


def test_cmyk_jpeg_converts_back_to_expected_srgb() -> None:
    """The CMYK JPEG is 4-band CMYK with a profile and converts to the expected sRGB."""
    data = images.make_cmyk_jpeg()
    image = load(data)
    assert image.interpretation == "cmyk"
    assert image.bands == 4
    assert "icc-profile-data" in image.get_fields()
    srgb = image.icc_transform("srgb")
    delta = images.max_channel_delta(quadrant_colours(srgb), images.CMYK_EXPECTED_SRGB)
    assert delta <= CMYK_TOLERANCE


def test_icc_tagged_jpeg_needs_its_profile() -> None:
    """The P3 JPEG matches the reference only once its profile is applied."""
    image = load(images.make_icc_tagged_jpeg())
    assert image.interpretation == "srgb"
    assert b"\0P\x003" in image.get("icc-profile-data")  # UTF-16 "P3" in its description
    converted = quadrant_colours(image.icc_transform("srgb"))
    assert images.max_channel_delta(converted, images.ICC_EXPECTED_SRGB) <= 12
    assert images.max_channel_delta(quadrant_colours(image), images.ICC_EXPECTED_SRGB) > 30


def test_panorama_is_twenty_to_one() -> None:
    """The panorama is a 4000x200 JPEG showing the reference."""
    image = load(images.make_panorama())
    assert (image.width, image.height) == (4000, 200)
    assert image.get("vips-loader") == "jpegload_buffer"


def test_png_16_bit_rgba_reads_back_as_ushort_with_alpha() -> None:
    """A 16-bit RGBA PNG is ushort, 4 bands, and keeps colours and partial transparency."""
    data = images.make_png(bits=16, alpha=True)
    image = load(data)
    assert image.format == "ushort"
    assert image.bands == 4
    assert image.get("bits-per-sample") == 16
    assert quadrant_colours(image) == REFERENCE_COLOURS
    assert images.quadrant_alphas(image) == images.REFERENCE_ALPHAS


def test_png_8_bit_and_tiny() -> None:
    """The 8-bit PNG is uchar RGB and the tiny one is 8x8."""
    image = load(images.make_png())
    assert (image.format, image.bands, image.width, image.height) == ("uchar", 3, 320, 240)
    tiny = load(images.make_tiny())
    assert (tiny.width, tiny.height) == (8, 8)
    assert quadrant_colours(tiny) == REFERENCE_COLOURS


def test_png_text_and_metadata_chunks_are_present_and_valid() -> None:
    """tEXt, iTXt XMP, eXIf and iCCP chunks are present, CRC-valid and readable by libvips."""
    data = images.make_png(text_chunk=images.PNG_TEXT_MARKER, metadata=True)
    chunks = images.png_chunks(data)  # also verifies every CRC
    assert chunks[0] == "IHDR"
    assert chunks[-1] == "IEND"
    assert {"tEXt", "iTXt", "eXIf", "iCCP"} <= set(chunks)
    for marker in (images.PNG_TEXT_MARKER, images.XMP_MARKER, images.EXIF_MARKER):
        assert marker.encode() in data
    image = load(data)
    assert images.XMP_MARKER.encode() in image.get("xmp-data")
    comments = [image.get(f) for f in image.get_fields() if f.startswith("png-comment-")]
    assert images.PNG_TEXT_MARKER in comments


def test_webp_variants_have_expected_chunks() -> None:
    """Still WebPs carry VP8/VP8L/ALPH as asked, and metadata chunks only when asked."""
    plain = images.webp_chunks(images.make_webp())
    assert "VP8 " in plain
    assert not {"XMP ", "ICCP"} & set(plain)
    assert "ALPH" in images.webp_chunks(images.make_webp(alpha=True))
    assert "VP8L" in images.webp_chunks(images.make_webp(lossless=True))
    rich = images.make_webp(metadata=True)
    assert {"VP8X", "EXIF", "XMP ", "ICCP"} <= set(images.webp_chunks(rich))
    assert images.EXIF_MARKER.encode() in rich
    assert images.XMP_MARKER.encode() in rich


@pytest.mark.parametrize(
    ("factory", "pages", "chunk"),
    [(images.make_animated_gif, 6, None), (images.make_animated_webp, 6, "ANMF")],
)
def test_animations_have_all_frames(
    factory: Callable[[], bytes], pages: int, chunk: str | None
) -> None:
    """Animated GIF/WebP load with every frame, the delays and infinite looping."""
    data = factory()
    image = load(data, n=-1)
    assert image.get_n_pages() == pages
    assert image.get("page-height") == 90
    assert image.height == 90 * pages
    assert list(image.get("delay")) == [100] * pages
    assert image.get("loop") == 0
    # Frame 0's top-left quadrant is its background colour (the square is lower).
    top_left = quadrant_colours(image.extract_area(0, 0, 120, 90))[0]
    expected = images.FRAME_COLOURS[0]
    assert max(abs(a - e) for a, e in zip(top_left, expected, strict=True)) <= JPEG_TOLERANCE
    if chunk is not None:
        assert images.webp_chunks(data).count(chunk) == pages


@pytest.mark.parametrize(
    ("mime", "loader"),
    [
        ("image/jpeg", "jpegload_buffer"),
        ("image/png", "pngload_buffer"),
        ("image/webp", "webpload_buffer"),
        ("image/gif", "gifload_buffer"),
        ("image/avif", "heifload_buffer"),
    ],
)
def test_still_factories_decode_to_reference(mime: str, loader: str) -> None:
    """Every still-format factory decodes with the right loader to the reference colours."""
    image = load(images.STILL_FACTORIES[mime]())
    assert image.get("vips-loader") == loader
    assert images.max_channel_delta(quadrant_colours(image), REFERENCE_COLOURS) <= JPEG_TOLERANCE


def test_avif_is_av1_in_heif() -> None:
    """The AVIF factory writes an AV1-compressed HEIF with an avif brand."""
    data = images.make_avif()
    assert data[4:12] == b"ftypavif"
    assert load(data).get("heif-compression") == "av1"


# ---- container parsers on hand-built files --------------------------------


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    """Encode one PNG chunk with a correct CRC."""
    crc = zlib.crc32(kind + payload)
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def test_webp_chunks_parses_known_container() -> None:
    """A hand-built RIFF/WEBP yields its chunk FourCCs, honouring odd-size padding."""
    body = b"WEBP" + b"VP8X" + struct.pack("<I", 10) + bytes(10)
    body += b"EXIF" + struct.pack("<I", 3) + b"abc\0"  # odd size, one pad byte
    body += b"VP8L" + struct.pack("<I", 2) + b"xy"
    data = b"RIFF" + struct.pack("<I", len(body)) + body
    assert images.webp_chunks(data) == ["VP8X", "EXIF", "VP8L"]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"RIFF\x04\x00\x00\x00WAVE",
        b"RIFF\x04\x00\x00\x00WEBP",  # no chunks
        b"RIFF\x20\x00\x00\x00WEBPVP8 \x10\x00\x00\x00",  # RIFF size lies
        b"RIFF\x0c\x00\x00\x00WEBPVP8 \x10\x00\x00\x00",  # chunk runs past the end
        b"RIFF\x08\x00\x00\x00WEBPVP8 ",  # truncated chunk header
    ],
)
def test_webp_chunks_rejects_malformed(data: bytes) -> None:
    """Malformed RIFF/WEBP containers raise ValueError."""
    with pytest.raises(ValueError):  # noqa: PT011 - any malformation message is fine
        images.webp_chunks(data)


def test_jpeg_segments_parses_known_stream() -> None:
    """A hand-built JPEG header yields its markers up to (not including) SOS."""
    data = (
        b"\xff\xd8"
        + b"\xff\xe0\x00\x04ab"
        + b"\xff\xff\xfe\x00\x03c"  # a fill byte before COM is legal
        + b"\xff\xdb\x00\x02"
        + b"\xff\xda\x00\x02"
        + b"\x12\x34\xff\xd9"
    )
    assert images.jpeg_segments(data) == [0xE0, 0xFE, 0xDB]
    assert images.jpeg_segment_payloads(data)[1] == (0xFE, b"c")
    assert images.jpeg_exif_tags(data) == {}


@pytest.mark.parametrize(
    "data",
    [b"", b"\x89PNG", b"\xff\xd8\xff\xe0\x00\x10ab", b"\xff\xd8\xff\xd9", b"\xff\xd8\x00"],
)
def test_jpeg_segments_rejects_malformed(data: bytes) -> None:
    """Non-JPEG, truncated segments, EOI before SOS and garbage raise ValueError."""
    with pytest.raises(ValueError):  # noqa: PT011 - any malformation message is fine
        images.jpeg_segments(data)


def test_png_chunks_parses_known_file_and_checks_crc() -> None:
    """A hand-built PNG lists its chunk types; a flipped CRC bit or missing IEND is an error."""
    sig = b"\x89PNG\r\n\x1a\n"
    good = (
        sig + png_chunk(b"IHDR", bytes(13)) + png_chunk(b"tEXt", b"k\0v") + png_chunk(b"IEND", b"")
    )
    assert images.png_chunks(good) == ["IHDR", "tEXt", "IEND"]
    bad_crc = bytearray(good)
    bad_crc[8 + 8 + 13] ^= 1
    for broken in (bytes(bad_crc), good[:-12], good + b"junk", b"GIF89a"):
        with pytest.raises(ValueError):  # noqa: PT011 - any malformation message is fine
            images.png_chunks(broken)
