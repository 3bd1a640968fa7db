"""Tests for the imaging pipeline (`mediasvc.imaging.pipeline`), decode and encode
together: sizes, orientation, colour, stripping, animation, refusals.

Every source image comes from the factory in ``tests/images.py`` and every assertion is made
on the files the pipeline wrote: decoded pixels (quadrant colours, alpha, frames) or raw
container bytes (WebP chunks, JPEG segments). `pipeline.process` runs in this process without
`init_worker()`, which would block the buffer loaders used here to inspect outputs; the
hardening itself is tested in subprocesses (tests/test_worker.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import images
import pytest
import pyvips
from imaging_support import (
    ANIMATION_FRAMES,
    FRAME_TOLERANCE,
    colour_delta,
    grey_png,
    make_job,
    run,
    truncated,
)

from mediasvc.imaging import pipeline
from mediasvc.imaging.job import Facts, ImageRejected, VariantFile
from mediasvc.imaging.variants import VARIANTS

# Lossy WebP/JPEG at quality 80 moves quadrant centres by a few units, never by tens.
COLOUR_TOLERANCE = 12
# Per-channel distance after a CMYK -> sRGB round trip through libvips' built-in profile.
CMYK_TOLERANCE = 20
ALPHA_TOLERANCE = 8

VARIANT_NAMES = tuple(spec.name for spec in VARIANTS)
WEBP_METADATA_CHUNKS = frozenset({"EXIF", "XMP ", "ICCP"})
JPEG_APP1, JPEG_APP2, JPEG_APP13, JPEG_COM = 0xE1, 0xE2, 0xED, 0xFE
JPEG_METADATA_SEGMENTS = frozenset({JPEG_APP1, JPEG_APP2, JPEG_APP13, JPEG_COM})
MARKERS = (
    images.EXIF_MARKER,
    images.XMP_MARKER,
    images.COMMENT_MARKER,
    images.PNG_TEXT_MARKER,
    images.IPTC_MARKER,
)


def load(variant: VariantFile, **options: Any) -> pyvips.Image:
    """Decode a written variant from its bytes (all pixels in memory)."""
    return pyvips.Image.new_from_buffer(Path(variant.path).read_bytes(), "", **options)


def variant(facts: Facts, name: str) -> VariantFile:
    """The variant called `name`."""
    return next(v for v in facts.variants if v.name == name)


def frame_colours(image: pyvips.Image, page_height: int) -> list[images.RGB]:
    """The background colour of every frame, sampled in a box at its top-left corner."""
    side = max(1, min(image.width, page_height) // 8)
    colours = []
    for top in range(0, image.height, page_height):
        box = image.extract_area(0, top, side, side)
        r, g, b = (round(box.extract_band(i).avg()) for i in range(3))
        colours.append((r, g, b))
    return colours


def flattened_on_white(colour: images.RGB, alpha: int) -> images.RGB:
    """`colour` at opacity `alpha` composited over white."""
    r, g, b = (round(c * alpha / 255 + 255 * (1 - alpha / 255)) for c in colour)
    return (r, g, b)


def assert_fits(made: VariantFile, size: int, source_width: int, source_height: int) -> None:
    """`made` is the source scaled to `size` on its longest side (never up), aspect kept."""
    longest = min(size, max(source_width, source_height))
    scale = longest / max(source_width, source_height)
    assert max(made.width, made.height) == longest, (made, size)
    assert abs(made.width - source_width * scale) <= 1, (made, size)
    assert abs(made.height - source_height * scale) <= 1, (made, size)
    assert min(made.width, made.height) >= 1, made


# --------------------------------------------------------------------------
# Orientation
# --------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_displayed_upright(tmp_path: Path, orientation: int) -> None:
    """Each EXIF orientation yields the upright 640x480 reference in every variant."""
    facts = run(tmp_path, images.make_jpeg(orientation=orientation), "image/jpeg")

    assert (facts.width, facts.height, facts.frames) == (640, 480, 1)
    full = variant(facts, "full")
    thumbnail = variant(facts, "thumbnail")
    assert (full.width, full.height) == (640, 480)
    assert (thumbnail.width, thumbnail.height) == (64, 48)
    for made in (full, thumbnail):
        image = load(made)
        assert (image.width, image.height) == (made.width, made.height)
        delta = images.max_channel_delta(images.quadrant_colours(image), images.REFERENCE_COLOURS)
        assert delta <= COLOUR_TOLERANCE, (made.name, images.quadrant_colours(image))


# --------------------------------------------------------------------------
# Variant ladder
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("factory", "mime", "source_size"),
    [
        pytest.param(
            lambda: images.make_jpeg(width=3000, height=2000), "image/jpeg", (3000, 2000), id="3:2"
        ),
        pytest.param(images.make_panorama, "image/jpeg", (4000, 200), id="panorama-20:1"),
        pytest.param(images.make_jpeg, "image/jpeg", (640, 480), id="640x480"),
        pytest.param(images.make_tiny, "image/png", (8, 8), id="tiny-8x8"),
    ],
)
def test_post_variants_bound_the_longest_side_and_never_upscale(
    tmp_path: Path, factory: Callable[[], bytes], mime: str, source_size: tuple[int, int]
) -> None:
    """Each variant's longest side is min(size, source's), its aspect kept within 1px."""
    facts = run(tmp_path, factory(), mime)

    assert (facts.width, facts.height) == source_size
    assert tuple(v.name for v in facts.variants) == VARIANT_NAMES
    for spec, made in zip(VARIANTS, facts.variants, strict=True):
        assert_fits(made, spec.size, *source_size)
        image = load(made)
        assert (image.width, image.height) == (made.width, made.height)


def test_tiny_image_is_never_upscaled(tmp_path: Path) -> None:
    """An 8x8 source gives five 8x8 files."""
    facts = run(tmp_path, images.make_tiny(), "image/png")

    assert [(v.width, v.height) for v in facts.variants] == [(8, 8)] * len(VARIANTS)
    assert {(load(v).width, load(v).height) for v in facts.variants} == {(8, 8)}


@pytest.mark.parametrize(
    ("factory", "mime", "short_side"),
    [
        pytest.param(
            lambda: images.make_jpeg(width=3000, height=2000), "image/jpeg", 2000, id="3:2"
        ),
        pytest.param(images.make_panorama, "image/jpeg", 200, id="panorama"),
        pytest.param(images.make_tiny, "image/png", 8, id="tiny"),
    ],
)
def test_avatar_variants_are_square_and_never_upscaled(
    tmp_path: Path, factory: Callable[[], bytes], mime: str, short_side: int
) -> None:
    """Avatar variants are squares of side min(size, the source's shorter side)."""
    facts = run(tmp_path, factory(), mime, kind="avatar")

    for spec, made in zip(VARIANTS, facts.variants, strict=True):
        side = min(spec.size, short_side)
        assert (made.width, made.height) == (side, side), made
        image = load(made)
        assert (image.width, image.height) == (side, side), made.name


# --------------------------------------------------------------------------
# Colour
# --------------------------------------------------------------------------


@pytest.mark.parametrize("output_format", ["webp", "jpeg"])
def test_cmyk_jpeg_is_converted_to_srgb(tmp_path: Path, output_format: str) -> None:
    """A CMYK JPEG with an embedded profile comes out as 3-band sRGB with the right colours."""
    facts = run(tmp_path, images.make_cmyk_jpeg(), "image/jpeg", output_format=output_format)

    for made in facts.variants:
        image = load(made)
        assert (image.interpretation, image.format, image.bands) == ("srgb", "uchar", 3)
        colours = images.quadrant_colours(image)
        delta = images.max_channel_delta(colours, images.CMYK_EXPECTED_SRGB)
        assert delta <= CMYK_TOLERANCE, (made.name, colours)


@pytest.mark.parametrize("output_format", ["webp", "jpeg"])
def test_icc_tagged_jpeg_is_converted_to_srgb(tmp_path: Path, output_format: str) -> None:
    """A P3-tagged JPEG's pixels are converted to sRGB, not passed through as stored."""
    data = images.make_icc_tagged_jpeg()
    stored = images.quadrant_colours(pyvips.Image.new_from_buffer(data, ""))
    # Precondition: the raw values really differ from what sRGB should show.
    assert images.max_channel_delta(stored, images.ICC_EXPECTED_SRGB) > 3 * COLOUR_TOLERANCE

    facts = run(tmp_path, data, "image/jpeg", output_format=output_format)

    for made in facts.variants:
        image = load(made)
        assert (image.interpretation, image.format, image.bands) == ("srgb", "uchar", 3)
        colours = images.quadrant_colours(image)
        assert images.max_channel_delta(colours, images.ICC_EXPECTED_SRGB) <= COLOUR_TOLERANCE, (
            f"{made.name}: {colours} is not the sRGB reference {images.ICC_EXPECTED_SRGB}; "
            f"the stored P3 values are {stored}"
        )


@pytest.mark.parametrize("output_format", ["jpeg", "avif"])
@pytest.mark.parametrize(
    ("bits", "alpha"), [(8, False), (16, False), (8, True)], ids=["grey8", "grey16", "grey-alpha"]
)
def test_greyscale_input_becomes_srgb(
    tmp_path: Path, output_format: str, bits: int, alpha: bool
) -> None:
    """Greyscale PNGs come out as 8-bit sRGB with 3 colour bands and their grey levels kept."""
    expected = images.quadrant_colours(images.reference_pattern(64, 48).colourspace("b-w"))

    facts = run(tmp_path, grey_png(bits, alpha=alpha), "image/png", output_format=output_format)

    bands = 4 if alpha and output_format != "jpeg" else 3
    for made in facts.variants:
        image = load(made)
        assert (image.interpretation, image.format, image.bands) == ("srgb", "uchar", bands)
        # JPEG flattens the transparent half on white; the opaque top half must be unchanged.
        kept = 2 if alpha and output_format == "jpeg" else 4
        colours = images.quadrant_colours(image)[:kept]
        delta = max(colour_delta(a, e) for a, e in zip(colours, expected[:kept], strict=True))
        assert delta <= COLOUR_TOLERANCE, (made.name, colours)


# --------------------------------------------------------------------------
# Metadata stripping
# --------------------------------------------------------------------------


METADATA_SOURCES = [
    pytest.param(
        lambda: images.make_jpeg(
            gps=True, xmp=True, comment=images.COMMENT_MARKER, icc=True, iptc=True
        ),
        "image/jpeg",
        (images.EXIF_MARKER, images.XMP_MARKER, images.COMMENT_MARKER, images.IPTC_MARKER),
        id="jpeg",
    ),
    pytest.param(
        lambda: images.make_png(text_chunk=images.PNG_TEXT_MARKER, metadata=True),
        "image/png",
        (images.EXIF_MARKER, images.XMP_MARKER, images.PNG_TEXT_MARKER),
        id="png",
    ),
    pytest.param(
        lambda: images.make_webp(metadata=True),
        "image/webp",
        (images.EXIF_MARKER, images.XMP_MARKER),
        id="webp",
    ),
]


def assert_no_markers(made: VariantFile) -> bytes:
    """No fixture marker appears anywhere in `made`'s bytes; returns the bytes."""
    data = Path(made.path).read_bytes()
    found = [marker for marker in MARKERS if marker.encode() in data]
    assert not found, (made.name, found)
    return data


# Per output format: how a variant's container lists its parts, and the parts that would
# carry metadata.
METADATA_PARTS: dict[str, tuple[Callable[[bytes], list[Any]], frozenset[Any]]] = {
    "webp": (images.webp_chunks, WEBP_METADATA_CHUNKS),
    "jpeg": (images.jpeg_segments, JPEG_METADATA_SEGMENTS),
}


@pytest.mark.parametrize("output_format", sorted(METADATA_PARTS), ids=lambda fmt: f"to-{fmt}")
@pytest.mark.parametrize(("factory", "mime", "source_markers"), METADATA_SOURCES)
def test_variants_carry_no_metadata(
    tmp_path: Path,
    factory: Callable[[], bytes],
    mime: str,
    source_markers: tuple[str, ...],
    output_format: str,
) -> None:
    """Variants have no metadata part (WebP: no EXIF, XMP or ICCP chunk; JPEG: no APP1, APP2,
    APP13 or COM segment) and none of the source's marker text."""
    list_parts, metadata_parts = METADATA_PARTS[output_format]
    data = factory()
    assert all(marker.encode() in data for marker in source_markers)  # precondition

    facts = run(tmp_path, data, mime, output_format=output_format)

    for made in facts.variants:
        parts = list_parts(assert_no_markers(made))
        assert not metadata_parts.intersection(parts), (made.name, parts)


def test_gps_position_is_not_kept(tmp_path: Path) -> None:
    """A JPEG's GPS IFD is gone from every variant: no EXIF is written at all."""
    data = images.make_jpeg(gps=True)
    assert images.GPS_TAG_LATITUDE in images.jpeg_exif_tags(data)["gps"]  # precondition

    for output_format in ("jpeg", "webp"):
        facts = run(tmp_path, data, "image/jpeg", output_format=output_format)
        for made in facts.variants:
            written = Path(made.path).read_bytes()
            assert b"Exif\0\0" not in written, (output_format, made.name)
            if output_format == "jpeg":
                assert images.jpeg_exif_tags(written) == {}


def test_avif_variants_carry_no_metadata(tmp_path: Path) -> None:
    """AVIF variants hold no Exif item and none of the source's marker text."""
    data = images.make_jpeg(gps=True, xmp=True, comment=images.COMMENT_MARKER, icc=True, iptc=True)

    facts = run(tmp_path, data, "image/jpeg", output_format="avif")

    for made in facts.variants:
        written = assert_no_markers(made)
        assert b"Exif" not in written, made.name


# --------------------------------------------------------------------------
# Alpha and bit depth
# --------------------------------------------------------------------------


@pytest.mark.parametrize("output_format", ["webp", "avif"])
def test_alpha_is_kept_and_16_bit_becomes_8_bit(tmp_path: Path, output_format: str) -> None:
    """A 16-bit RGBA PNG gives 8-bit RGBA variants with the reference colours and alphas."""
    data = images.make_png(bits=16, alpha=True)

    facts = run(tmp_path, data, "image/png", output_format=output_format)

    for made in facts.variants:
        image = load(made)
        assert (image.bands, image.format, image.interpretation) == (4, "uchar", "srgb")
        alphas = images.quadrant_alphas(image)
        assert all(
            abs(a - e) <= ALPHA_TOLERANCE
            for a, e in zip(alphas, images.REFERENCE_ALPHAS, strict=True)
        ), (made.name, alphas)
        # The fully transparent quadrant's colour is undefined; compare the other three.
        colours = images.quadrant_colours(image)[:3]
        delta = max(
            colour_delta(a, e) for a, e in zip(colours, images.REFERENCE_COLOURS[:3], strict=True)
        )
        assert delta <= COLOUR_TOLERANCE, (made.name, colours)


def test_jpeg_output_flattens_alpha_on_white(tmp_path: Path) -> None:
    """With JPEG output, transparency is composited over white into 3 bands."""
    data = images.make_png(bits=16, alpha=True)
    expected = tuple(
        flattened_on_white(c, a)
        for c, a in zip(images.REFERENCE_COLOURS, images.REFERENCE_ALPHAS, strict=True)
    )

    facts = run(tmp_path, data, "image/png", output_format="jpeg")

    for made in facts.variants:
        image = load(made)
        assert (image.bands, image.format) == (3, "uchar")
        colours = images.quadrant_colours(image)
        assert images.max_channel_delta(colours, expected) <= COLOUR_TOLERANCE, (made.name, colours)


# --------------------------------------------------------------------------
# Animation
# --------------------------------------------------------------------------


ANIMATIONS = [
    pytest.param(images.make_animated_gif, "image/gif", id="gif"),
    pytest.param(images.make_animated_webp, "image/webp", id="webp"),
]
ANIMATION_SIZE = (120, 90)  # the factory default


def assert_animated_webp(made: VariantFile) -> None:
    """`made` is an animated WebP of every source frame, in order, at the stated frame size."""
    chunks = images.webp_chunks(Path(made.path).read_bytes())
    assert "ANIM" in chunks, (made.name, chunks)
    assert chunks.count("ANMF") == ANIMATION_FRAMES, (made.name, chunks)
    image = load(made, n=-1)
    assert image.get("n-pages") == ANIMATION_FRAMES
    assert image.get("page-height") == made.height
    assert (image.width, image.height) == (made.width, made.height * ANIMATION_FRAMES)
    assert image.get("delay") == [100] * ANIMATION_FRAMES
    colours = frame_colours(image, made.height)
    expected = images.FRAME_COLOURS[:ANIMATION_FRAMES]
    assert all(
        colour_delta(c, e) <= FRAME_TOLERANCE for c, e in zip(colours, expected, strict=True)
    ), (made.name, colours)


@pytest.mark.parametrize(("factory", "mime"), ANIMATIONS)
def test_animation_stays_animated_in_webp(
    tmp_path: Path, factory: Callable[[], bytes], mime: str
) -> None:
    """Animated input gives animated WebP variants with all frames; heights are per frame."""
    facts = run(tmp_path, factory(), mime)

    assert (facts.width, facts.height, facts.frames) == (*ANIMATION_SIZE, ANIMATION_FRAMES)
    for spec, made in zip(VARIANTS, facts.variants, strict=True):
        assert_fits(made, spec.size, *ANIMATION_SIZE)
        assert_animated_webp(made)


@pytest.mark.parametrize(("factory", "mime"), ANIMATIONS)
def test_animated_avatar_crops_every_frame_square(
    tmp_path: Path, factory: Callable[[], bytes], mime: str
) -> None:
    """An animated avatar keeps all frames, each a square of side min(size, shorter side)."""
    facts = run(tmp_path, factory(), mime, kind="avatar")

    short_side = min(ANIMATION_SIZE)
    for spec, made in zip(VARIANTS, facts.variants, strict=True):
        side = min(spec.size, short_side)
        assert (made.width, made.height) == (side, side), made
        assert_animated_webp(made)


@pytest.mark.parametrize("kind", ["post", "avatar"])
@pytest.mark.parametrize(("factory", "mime"), ANIMATIONS)
def test_animation_becomes_first_frame_still_in_jpeg(
    tmp_path: Path, factory: Callable[[], bytes], mime: str, kind: str
) -> None:
    """With JPEG output an animation gives one still of its first frame."""
    facts = run(tmp_path, factory(), mime, kind=kind, output_format="jpeg")

    assert facts.frames == ANIMATION_FRAMES
    for spec, made in zip(VARIANTS, facts.variants, strict=True):
        if kind == "avatar":
            side = min(spec.size, min(ANIMATION_SIZE))
            assert (made.width, made.height) == (side, side), made
        else:
            assert_fits(made, spec.size, *ANIMATION_SIZE)
        image = load(made)
        assert (image.width, image.height) == (made.width, made.height)  # one frame, no strip
        [colour] = frame_colours(image, image.height)
        assert colour_delta(colour, images.FRAME_COLOURS[0]) <= FRAME_TOLERANCE, made.name


# --------------------------------------------------------------------------
# Accepted formats and output formats
# --------------------------------------------------------------------------


@pytest.mark.parametrize("mime", sorted(images.STILL_FACTORIES))
def test_every_accepted_still_format_gives_five_webp_files(tmp_path: Path, mime: str) -> None:
    """Each accepted format yields the five WebP files the facts describe, showing the image."""
    job = make_job(tmp_path, images.STILL_FACTORIES[mime](), mime)

    facts = pipeline.process(job)

    assert tuple(v.name for v in facts.variants) == VARIANT_NAMES
    assert sorted(p.name for p in Path(job.out_dir).iterdir()) == sorted(
        f"{name}.webp" for name in VARIANT_NAMES
    )
    for made in facts.variants:
        path = Path(made.path)
        assert path.parent == Path(job.out_dir)
        assert path.name == f"{made.name}.webp"
        assert made.mime == "image/webp"
        assert path.stat().st_size == made.bytes
        images.webp_chunks(path.read_bytes())  # a well-formed RIFF/WEBP file
        image = load(made)
        assert (image.width, image.height) == (made.width, made.height)
    full = load(variant(facts, "full"))
    delta = images.max_channel_delta(images.quadrant_colours(full), images.REFERENCE_COLOURS)
    assert delta <= COLOUR_TOLERANCE


@pytest.mark.parametrize(
    ("output_format", "mime", "extension", "magic"),
    [
        ("webp", "image/webp", ".webp", b"RIFF"),
        ("jpeg", "image/jpeg", ".jpg", b"\xff\xd8\xff"),
        ("avif", "image/avif", ".avif", b"ftypavif"),
    ],
)
def test_output_format_decides_encoder_mime_and_extension(
    tmp_path: Path, output_format: str, mime: str, extension: str, magic: bytes
) -> None:
    """Each output format writes files of that type, named and labelled to match."""
    facts = run(tmp_path, images.make_jpeg(), "image/jpeg", output_format=output_format)

    for made in facts.variants:
        data = Path(made.path).read_bytes()
        assert magic in data[:12], made.name
        assert made.path.endswith(extension)
        assert made.mime == mime
        assert made.bytes == len(data)
        image = load(made)
        assert (image.width, image.height) == (made.width, made.height)


# --------------------------------------------------------------------------
# Refusals
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("factory", "mime", "code"),
    [
        pytest.param(
            lambda: truncated(images.make_jpeg()),
            "image/jpeg",
            "invalid_image",
            id="truncated-jpeg",
        ),
        pytest.param(
            lambda: truncated(images.make_png()), "image/png", "invalid_image", id="truncated-png"
        ),
        pytest.param(images.make_png, "image/jpeg", "invalid_image", id="png-declared-jpeg"),
        pytest.param(images.make_jpeg, "image/png", "invalid_image", id="jpeg-declared-png"),
        pytest.param(
            lambda: b"not an image at all" * 20, "image/webp", "invalid_image", id="garbage"
        ),
        pytest.param(images.make_jpeg, "image/svg+xml", "unsupported_media_type", id="svg"),
        pytest.param(
            images.make_jpeg,
            "image/heic",
            # Off the allow-list without the mediasvc[heic] extra; with it, not a HEIF file.
            "invalid_image" if images.HEIF_AVAILABLE else "unsupported_media_type",
            id="jpeg-as-heic",
        ),
    ],
)
def test_bad_input_is_rejected_with_its_code(
    tmp_path: Path, factory: Callable[[], bytes], mime: str, code: str
) -> None:
    """Damaged, mislabelled and unaccepted inputs raise ImageRejected(code)."""
    with pytest.raises(ImageRejected) as caught:
        run(tmp_path, factory(), mime)

    assert caught.value.code == code
    assert caught.value.detail


# What each limit counts, read from the facts of an input it let through.
MEASURED: dict[str, Callable[[Facts], int]] = {
    "max_pixels": lambda facts: facts.width * facts.height,
    "max_frames": lambda facts: facts.frames,
    "max_animation_pixels": lambda facts: facts.width * facts.height * facts.frames,
}


@pytest.mark.parametrize(
    ("factory", "mime", "limit", "size", "code"),
    [
        (images.make_jpeg, "image/jpeg", "max_pixels", 640 * 480, "too_many_pixels"),
        (images.make_animated_gif, "image/gif", "max_pixels", 120 * 90, "too_many_pixels"),
        (images.make_animated_gif, "image/gif", "max_frames", ANIMATION_FRAMES, "too_many_frames"),
        (
            images.make_animated_webp,
            "image/webp",
            "max_frames",
            ANIMATION_FRAMES,
            "too_many_frames",
        ),
        (
            images.make_animated_gif,
            "image/gif",
            "max_animation_pixels",
            120 * 90 * ANIMATION_FRAMES,
            "too_many_pixels",
        ),
    ],
    ids=[
        "max-pixels",
        "max-pixels-gif",
        "max-frames-gif",
        "max-frames-webp",
        "max-animation-pixels",
    ],
)
def test_a_limit_admits_an_input_exactly_at_it_and_refuses_one_over(
    tmp_path: Path, factory: Callable[[], bytes], mime: str, limit: str, size: int, code: str
) -> None:
    """An input that measures exactly `size` is processed under a limit of `size`; under a
    limit one lower it raises ImageRejected with the limit's code."""
    data = factory()

    accepted = run(tmp_path, data, mime, **{limit: size})
    with pytest.raises(ImageRejected) as caught:
        run(tmp_path, data, mime, **{limit: size - 1})

    assert MEASURED[limit](accepted) == size
    assert caught.value.code == code
    assert caught.value.detail
