"""The processing report (`mediasvc.imaging.report`): what was rotated, converted and
removed, and the header walk and profile check it is built from."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path

import images
import pytest
import pyvips
from imaging_support import ANIMATION_FRAMES, grey_png, run

from mediasvc.imaging import report


@pytest.mark.parametrize("orientation", range(1, 9))
def test_report_names_the_orientation_that_was_applied(tmp_path: Path, orientation: int) -> None:
    """rotated_from_orientation is the EXIF orientation 2-8 that was applied, None for 1."""
    facts = run(tmp_path, images.make_jpeg(orientation=orientation), "image/jpeg")

    expected = None if orientation == 1 else orientation
    assert facts.processing["rotated_from_orientation"] == expected


@pytest.mark.parametrize(
    ("factory", "mime", "color"),
    [
        pytest.param(images.make_jpeg, "image/jpeg", "sRGB", id="untagged-srgb"),
        pytest.param(lambda: images.make_jpeg(icc=True), "image/jpeg", "sRGB", id="tagged-srgb"),
        pytest.param(
            images.make_cmyk_jpeg, "image/jpeg", "converted from CMYK (ICC)", id="cmyk-icc"
        ),
        pytest.param(
            lambda: images.make_cmyk_jpeg(icc=False),
            "image/jpeg",
            "converted from CMYK",
            id="cmyk-untagged",
        ),
        pytest.param(
            images.make_icc_tagged_jpeg,
            "image/jpeg",
            "converted from embedded ICC profile",
            id="p3",
        ),
        pytest.param(
            lambda: images.make_png(bits=16), "image/png", "converted to 8-bit sRGB", id="rgb16"
        ),
        pytest.param(lambda: grey_png(8), "image/png", "converted to 8-bit sRGB", id="grey"),
        pytest.param(images.make_animated_gif, "image/gif", "sRGB", id="gif-palette"),
    ],
)
def test_report_names_the_colour_conversion(
    tmp_path: Path, factory: Callable[[], bytes], mime: str, color: str
) -> None:
    """`color` says which conversion brought the source to 8-bit sRGB, or "sRGB" for none."""
    facts = run(tmp_path, factory(), mime)

    assert facts.processing["color"] == color


@pytest.mark.parametrize(
    ("factory", "mime", "removed"),
    [
        pytest.param(
            lambda: images.make_jpeg(
                gps=True, xmp=True, comment=images.COMMENT_MARKER, icc=True, iptc=True
            ),
            "image/jpeg",
            ["comment", "exif", "gps", "icc", "iptc", "xmp"],
            id="jpeg-everything",
        ),
        # libvips writes an EXIF block into every JPEG it saves: it is really there.
        pytest.param(images.make_jpeg, "image/jpeg", ["exif"], id="jpeg-plain"),
        pytest.param(
            images.make_jpeg_with_script_comment, "image/jpeg", ["comment", "exif"], id="jpeg-com"
        ),
        pytest.param(
            lambda: images.make_png(text_chunk=images.PNG_TEXT_MARKER, metadata=True),
            "image/png",
            ["exif", "icc", "text", "xmp"],
            id="png-everything",
        ),
        pytest.param(
            lambda: images.make_webp(metadata=True),
            "image/webp",
            ["exif", "icc", "xmp"],
            id="webp-everything",
        ),
        pytest.param(images.make_gif, "image/gif", [], id="gif-plain"),
        pytest.param(
            lambda: images.make_gif(comment=images.COMMENT_MARKER),
            "image/gif",
            ["comment"],
            id="gif-comment",
        ),
    ],
)
def test_report_lists_the_metadata_the_source_carried(
    tmp_path: Path, factory: Callable[[], bytes], mime: str, removed: list[str]
) -> None:
    """`removed` is the sorted list of the metadata kinds present in the source."""
    facts = run(tmp_path, factory(), mime)

    assert facts.processing["removed"] == removed


@pytest.mark.parametrize("output_format", ["webp", "jpeg", "avif"])
@pytest.mark.parametrize(
    ("factory", "mime", "animated"),
    [
        pytest.param(images.make_animated_gif, "image/gif", True, id="gif"),
        pytest.param(images.make_animated_webp, "image/webp", True, id="webp"),
        pytest.param(images.make_jpeg, "image/jpeg", False, id="still"),
    ],
)
def test_report_counts_the_frames_written(
    tmp_path: Path, factory: Callable[[], bytes], mime: str, animated: bool, output_format: str
) -> None:
    """`frames` is what the variants hold: all six for WebP output, one for stills and JPEG/AVIF."""
    facts = run(tmp_path, factory(), mime, output_format=output_format)

    expected = ANIMATION_FRAMES if animated and output_format == "webp" else 1
    assert facts.processing["frames"] == expected


@pytest.mark.parametrize("orientation", [1, 6])
def test_report_is_plain_json_with_every_key(tmp_path: Path, orientation: int) -> None:
    """The report has all six keys, null included, and survives a JSON round trip unchanged."""
    facts = run(tmp_path, images.make_jpeg(orientation=orientation), "image/jpeg")

    assert list(facts.processing) == [
        "rotated_from_orientation",
        "color",
        "removed",
        "frames",
        "encoding",
        "lossless_variants",
    ]
    assert json.loads(json.dumps(facts.processing)) == facts.processing


JPEG_SOI = b"\xff\xd8"


def jpeg_com(text: bytes) -> bytes:
    """A COM segment holding `text`."""
    return b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text


def with_com_before_sos(data: bytes) -> bytes:
    """`data` with a COM segment as its last header segment, right before SOS."""
    end = 2 + sum(4 + len(payload) for _marker, payload in images.jpeg_segment_payloads(data))
    return data[:end] + jpeg_com(b"x") + data[end:]


@pytest.mark.parametrize(
    ("factory", "expected"),
    [
        pytest.param(lambda: images.make_jpeg(comment="x"), True, id="com-after-soi"),
        pytest.param(images.make_jpeg, False, id="none"),
        # Behind APP1 and ~1 MB of APP2 ICC segments, which the walk seeks past.
        pytest.param(
            lambda: with_com_before_sos(images.make_cmyk_jpeg()), True, id="com-behind-icc"
        ),
        pytest.param(images.make_cmyk_jpeg, False, id="icc-no-com"),
        pytest.param(lambda: JPEG_SOI + b"\xff\xff" + jpeg_com(b"x"), True, id="fill-bytes"),
        # Entropy-coded data follows SOS: not a header segment, whatever it looks like.
        pytest.param(
            lambda: JPEG_SOI + b"\xff\xda\x00\x02" + jpeg_com(b"x"), False, id="com-after-sos"
        ),
        pytest.param(lambda: images.make_jpeg() + jpeg_com(b"x"), False, id="com-after-eoi"),
        pytest.param(lambda: JPEG_SOI + b"\xff\xe1\xff\xf0Exif", False, id="truncated"),
        pytest.param(
            lambda: JPEG_SOI + b"\xff\xe1\x00\x01" + jpeg_com(b"x"), False, id="bad-length"
        ),
        pytest.param(lambda: b"", False, id="empty"),
    ],
)
def test_jpeg_comment_walk_reads_header_segments_only(
    tmp_path: Path, factory: Callable[[], bytes], expected: bool
) -> None:
    """A COM segment counts only between SOI and SOS; a damaged header ends the walk quietly."""
    path = tmp_path / "source.jpg"
    path.write_bytes(factory())

    assert report.jpeg_has_comment(str(path)) is expected


def embedded_profile(data: bytes) -> bytes:
    """The ICC profile embedded in an encoded image."""
    profile: bytes = pyvips.Image.new_from_buffer(data, "").get("icc-profile-data")
    return profile


@pytest.mark.parametrize(
    ("factory", "expected"),
    [
        pytest.param(lambda: embedded_profile(images.make_jpeg(icc=True)), True, id="srgb"),
        pytest.param(lambda: embedded_profile(images.make_icc_tagged_jpeg()), False, id="p3"),
        pytest.param(lambda: embedded_profile(images.make_cmyk_jpeg()), False, id="cmyk"),
        pytest.param(
            lambda: embedded_profile(images.make_jpeg(icc=True))[:200], False, id="truncated"
        ),
        pytest.param(lambda: b"", False, id="empty"),
    ],
)
def test_srgb_profile_is_told_by_its_primaries(
    factory: Callable[[], bytes], expected: bool
) -> None:
    """libvips' sRGB profile counts as sRGB; P3, CMYK and a cut-off sRGB profile do not."""
    assert report.is_srgb_profile(factory()) is expected
