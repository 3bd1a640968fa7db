"""The placeholder (`mediasvc.imaging.placeholder`): ThumbHash and dominant colour,
read back from what the pipeline computed for factory images."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from pathlib import Path

import images
import pytest
import thumbhash
from imaging_support import FRAME_TOLERANCE, colour_delta, run

from mediasvc.imaging import placeholder
from mediasvc.imaging.job import Facts

# The reference pattern's mean colour: four equal quadrants.
REFERENCE_MEAN: images.RGB = (130, 124, 75)
# ThumbHash keeps the mean as 6-bit L, P and Q, a few units of 255 apart.
THUMBHASH_TOLERANCE = 8
# Resampling a flat colour to the placeholder size moves it by rounding only.
FLAT_TOLERANCE = 3
RED, BLUE = images.REFERENCE_COLOURS[0], images.REFERENCE_COLOURS[2]


def decoded_thumbhash(facts: Facts) -> bytes:
    """The ThumbHash bytes; standard base64 with padding, or this raises."""
    return base64.b64decode(facts.thumbhash, validate=True)


def thumbhash_mean(facts: Facts) -> tuple[images.RGB, int]:
    """Mean colour and mean alpha of the image the ThumbHash decodes to."""
    width, height, rgba = thumbhash.thumb_hash_to_rgba(decoded_thumbhash(facts))
    r, g, b, a = (round(sum(rgba[i::4]) / (width * height)) for i in range(4))
    return (r, g, b), a


def shape(ratio: float) -> str:
    """The shape a width/height ratio describes: landscape, portrait or square."""
    if ratio == 1:
        return "square"
    return "landscape" if ratio > 1 else "portrait"


def hex_colour(text: str) -> images.RGB:
    """`#rrggbb` as a tuple; anything else fails the test."""
    assert re.fullmatch(r"#[0-9a-f]{6}", text), text
    return (int(text[1:3], 16), int(text[3:5], 16), int(text[5:7], 16))


@pytest.mark.parametrize("output_format", ["webp", "jpeg"])
def test_thumbhash_decodes_to_the_source_mean_colour(tmp_path: Path, output_format: str) -> None:
    """The ThumbHash decodes to an image whose mean colour is the source's mean."""
    facts = run(tmp_path, images.make_jpeg(), "image/jpeg", output_format=output_format)

    colour, alpha = thumbhash_mean(facts)
    average = thumbhash.thumb_hash_to_average_rgba(decoded_thumbhash(facts))

    assert colour_delta(colour, REFERENCE_MEAN) <= THUMBHASH_TOLERANCE, colour
    assert alpha == 255
    assert average is not None
    assert colour_delta(tuple(round(v * 255) for v in average[:3]), REFERENCE_MEAN) <= (
        THUMBHASH_TOLERANCE
    ), average


@pytest.mark.parametrize(
    ("factory", "mime", "overrides", "expected"),
    [
        pytest.param(images.make_jpeg, "image/jpeg", {}, "landscape", id="landscape"),
        pytest.param(
            lambda: images.make_jpeg(width=480, height=640),
            "image/jpeg",
            {},
            "portrait",
            id="portrait",
        ),
        pytest.param(
            lambda: images.make_jpeg(width=480, height=480), "image/jpeg", {}, "square", id="square"
        ),
        # Stored 480x640, displayed 640x480: the placeholder must show what is displayed.
        pytest.param(
            lambda: images.make_jpeg(orientation=6),
            "image/jpeg",
            {},
            "landscape",
            id="orientation-6",
        ),
        pytest.param(images.make_jpeg, "image/jpeg", {"kind": "avatar"}, "square", id="avatar"),
        # One 120x90 frame, not the 120x540 strip of all six.
        pytest.param(images.make_animated_gif, "image/gif", {}, "landscape", id="animation"),
    ],
)
def test_thumbhash_has_the_displayed_aspect(
    tmp_path: Path,
    factory: Callable[[], bytes],
    mime: str,
    overrides: dict[str, str],
    expected: str,
) -> None:
    """The ThumbHash's approximate aspect ratio is the served image's: wide, tall or square."""
    facts = run(tmp_path, factory(), mime, **overrides)

    ratio = thumbhash.thumb_hash_to_approximate_aspect_ratio(decoded_thumbhash(facts))

    assert ratio is not None
    assert shape(ratio) == expected, ratio


def test_thumbhash_keeps_alpha_only_where_the_output_does(tmp_path: Path) -> None:
    """A transparent PNG's ThumbHash is translucent for WebP output and opaque for JPEG output."""
    data = images.make_png(alpha=True)

    _, webp_alpha = thumbhash_mean(run(tmp_path, data, "image/png"))
    _, jpeg_alpha = thumbhash_mean(run(tmp_path, data, "image/png", output_format="jpeg"))

    # ThumbHash keeps alpha in 4 bits (steps of 17); REFERENCE_ALPHAS average to 160.
    assert abs(webp_alpha - sum(images.REFERENCE_ALPHAS) / 4) <= 2 * THUMBHASH_TOLERANCE
    assert jpeg_alpha == 255


def test_first_animation_frame_gives_the_placeholder(tmp_path: Path) -> None:
    """An animation's placeholder shows its first frame's colour, not a blend of all frames."""
    facts = run(tmp_path, images.make_animated_gif(), "image/gif")

    colour, _ = thumbhash_mean(facts)

    # Frame 0: a FRAME_COLOURS[0] background with a white square over a twelfth of it.
    first = tuple(round(c * 11 / 12 + 255 / 12) for c in images.FRAME_COLOURS[0])
    assert colour_delta(colour, first) <= FRAME_TOLERANCE, colour
    assert colour_delta(hex_colour(facts.dominant_color), images.FRAME_COLOURS[0]) <= (
        FRAME_TOLERANCE
    )


@pytest.mark.parametrize("colour", [RED, BLUE, (32, 128, 240), (0, 0, 0), (255, 255, 255)])
def test_dominant_colour_of_a_flat_image_is_that_colour(tmp_path: Path, colour: images.RGB) -> None:
    """A one-colour image's dominant colour is that colour, written as #rrggbb."""
    facts = run(tmp_path, images.make_flat_png(colour=colour), "image/png")

    assert colour_delta(hex_colour(facts.dominant_color), colour) <= FLAT_TOLERANCE


def test_dominant_colour_is_the_most_common_not_the_mean(tmp_path: Path) -> None:
    """A red image with a blue patch over a quarter of it is red, not the purple mean."""
    facts = run(tmp_path, images.make_flat_png(colour=RED, patch=BLUE), "image/png")

    dominant = hex_colour(facts.dominant_color)
    mean = tuple(round(0.75 * r + 0.25 * b) for r, b in zip(RED, BLUE, strict=True))
    assert colour_delta(dominant, RED) <= FLAT_TOLERANCE, dominant
    assert colour_delta(dominant, mean) > 4 * FLAT_TOLERANCE  # precondition: the mean differs


def rgba(*pixels: tuple[int, int, int, int], times: int = 1) -> bytes:
    """Raw RGBA bytes of `pixels`, each repeated `times`."""
    return b"".join(bytes(p) * times for p in pixels)


@pytest.mark.parametrize(
    ("pixels", "expected"),
    [
        # Blue is the majority but under half opaque: it gets no vote.
        pytest.param(
            rgba((200, 10, 10, 255), times=3) + rgba((10, 10, 200, 127), times=7),
            "#c80a0a",
            id="transparent-majority",
        ),
        # Within one bucket (top 4 bits equal) pixels are averaged, not counted apart.
        pytest.param(
            rgba((200, 10, 10, 255), (206, 12, 14, 255), (10, 10, 200, 255)),
            "#cb0b0c",
            id="bucket-mean",
        ),
        pytest.param(
            rgba((200, 0, 0, 0), (0, 0, 100, 0)), "#640032", id="fully-transparent-is-the-mean"
        ),
    ],
)
def test_dominant_colour_counts_opaque_pixels_by_bucket(pixels: bytes, expected: str) -> None:
    """Pixels vote by coarse bucket if at least half opaque; with none, the mean is returned."""
    assert placeholder.dominant_color(pixels) == expected
