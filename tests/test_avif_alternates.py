"""AVIF beside WebP (`ImageRules.alternates`, `imaging.encode.write_variants`): each variant
of a still written again as AVIF from the same pixels, nothing else changed; animations
keep their animated WebP only."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import images
import pytest
import pyvips
from imaging_support import make_job, run

from bench.photos import PHOTOS, camera_jpeg
from mediasvc.imaging import encode, pipeline
from mediasvc.imaging.encode import (
    AVIF_BESIDE_WEBP_EFFORT,
    AVIF_BESIDE_WEBP_QUALITY,
    AVIF_BESIDE_WEBP_SMALL_QUALITY,
    AVIF_BESIDE_WEBP_SUBSAMPLE,
    AVIF_SMALL_SIZE,
    _avif_beside_webp,
    encode_avif,
)
from mediasvc.imaging.job import Facts, VariantFile
from mediasvc.imaging.variants import VariantSpec

AVIF = ("avif",)
# Leaves at 2-12 px, the drawn photo AVIF gains most on (0.72 of WebP's bytes here), so
# "smaller in total" holds with a wide margin; saved as a camera would, EXIF and GPS in.
FOLIAGE = next(photo for photo in PHOTOS if photo.name == "foliage")
PHOTO_SIZE = 1600


def webp_bytes(facts: Facts) -> list[bytes]:
    return [Path(v.path).read_bytes() for v in facts.variants]


def files_in(facts: Facts) -> set[str]:
    return {path.name for path in Path(facts.variants[0].path).parent.iterdir()}


def with_alternates(facts: Facts) -> list[VariantFile]:
    """The variants that kept an AVIF: those where it came out smaller than the WebP."""
    return [v for v in facts.variants if v.alternates]


def test_each_variant_of_a_photo_has_one_avif_alternate_at_its_size(tmp_path: Path) -> None:
    """Every variant of a photo from 256 px up gets one AV1 AVIF, `<name>.avif` beside its
    WebP, of the WebP's width and height; together they are smaller than the WebPs. (The
    smallest may not: under AVIF's fixed overhead its WebP is smaller, and is all there is.)"""
    facts = run(tmp_path, camera_jpeg(FOLIAGE, PHOTO_SIZE), "image/jpeg", alternates=AVIF)

    assert {v.name for v in facts.variants if v.size >= 256} <= {
        v.name for v in with_alternates(facts)
    }
    for variant in with_alternates(facts):
        [alternate] = variant.alternates
        path = Path(alternate.path)
        assert (path.parent, path.name) == (Path(variant.path).parent, f"{variant.name}.avif")
        assert (alternate.mime, alternate.bytes) == ("image/avif", path.stat().st_size)
        image = pyvips.Image.new_from_file(alternate.path)
        assert (image.get("vips-loader"), image.get("heif-compression")) == ("heifload", "av1")
        assert (image.width, image.height) == (variant.width, variant.height), variant.name
        assert alternate.bytes < variant.bytes
    avif_total = sum(a.bytes for v in facts.variants for a in v.alternates)
    assert avif_total < sum(v.bytes for v in with_alternates(facts))


def test_alternates_carry_no_metadata(tmp_path: Path) -> None:
    """An AVIF alternate holds no Exif item, no XMP, no ICC profile and none of the source's
    marker text, like the AVIF output of `output = "avif"` kinds."""
    photo = pyvips.Image.new_from_buffer(camera_jpeg(FOLIAGE, PHOTO_SIZE), "")
    data = images.with_metadata(
        photo, gps=True, xmp=True, comment=images.COMMENT_MARKER, icc=True, iptc=True
    )
    markers = (images.EXIF_MARKER, images.XMP_MARKER, images.COMMENT_MARKER, images.IPTC_MARKER)

    facts = run(tmp_path, data, "image/jpeg", alternates=AVIF)

    assert with_alternates(facts)
    for variant in with_alternates(facts):
        [alternate] = variant.alternates
        written = Path(alternate.path).read_bytes()
        assert b"Exif" not in written, variant.name
        assert [m for m in markers if m.encode() in written] == [], variant.name
        fields = set(pyvips.Image.new_from_buffer(written, "").get_fields())
        assert not fields & {"exif-data", "xmp-data", "icc-profile-data"}, variant.name


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize(
    ("data", "mime"),
    [
        pytest.param(images.make_noisy_jpeg(width=1600, height=1000), "image/jpeg", id="photo"),
        pytest.param(images.make_graphic(), "image/png", id="lossless-graphic"),
        pytest.param(images.make_photo_png(alpha=True), "image/png", id="cut-out-photo"),
    ],
)
def test_webp_files_are_byte_identical_with_or_without_alternates(
    tmp_path: Path, data: bytes, mime: str, threads: int
) -> None:
    """Asking for AVIF changes no byte of the WebP variants nor the processing report,
    with or without lent threads; without it no AVIF is written or listed."""
    webp_only = pipeline.process(replace(make_job(tmp_path, data, mime), threads=threads))
    both = pipeline.process(
        replace(make_job(tmp_path, data, mime, alternates=AVIF), threads=threads)
    )

    assert webp_bytes(both) == webp_bytes(webp_only)
    assert both.processing == webp_only.processing
    assert [replace(v, path="", alternates=()) for v in both.variants] == [
        replace(v, path="") for v in webp_only.variants
    ]
    assert all(v.alternates == () for v in webp_only.variants)
    assert not any(name.endswith(".avif") for name in files_in(webp_only))


def test_alternates_are_the_same_files_in_threads(tmp_path: Path) -> None:
    """A job lent idle cores writes byte-identical AVIF alternates to a one-thread job."""
    data = camera_jpeg(FOLIAGE, 800)
    one = run(tmp_path, data, "image/jpeg", alternates=AVIF)
    lent = pipeline.process(
        replace(make_job(tmp_path, data, "image/jpeg", alternates=AVIF), threads=3)
    )

    def avif_files(facts: Facts) -> list[bytes]:
        return [Path(a.path).read_bytes() for v in facts.variants for a in v.alternates]

    assert avif_files(lent) == avif_files(one)


def test_no_avif_is_kept_where_it_would_be_larger_than_the_webp(tmp_path: Path) -> None:
    """A flat graphic stored lossless loses to AVIF's lossy encode (several times the
    bytes, and worse): no AVIF is kept, so nginx answers every client with the WebP."""
    facts = run(tmp_path, images.make_graphic(), "image/png", alternates=AVIF)

    assert facts.processing["encoding"] == "lossless"
    assert all(v.alternates == () for v in facts.variants)
    assert not any(name.endswith(".avif") for name in files_in(facts))


def test_an_animation_keeps_its_animated_webp_only(tmp_path: Path) -> None:
    """An animated GIF asked for AVIF gets none: each variant is its animated WebP alone."""
    facts = run(tmp_path, images.make_animated_gif(), "image/gif", alternates=AVIF)

    assert facts.processing["frames"] == 6
    assert all(v.alternates == () for v in facts.variants)
    assert not any(name.endswith(".avif") for name in files_in(facts))


def test_an_animation_kept_as_its_first_frame_gets_alternates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kind that keeps animations as their first frame makes stills, and stills are
    encoded as AVIF too (a stand-in encoder: the drawn GIF's flat frames would keep their
    smaller lossless WebP, and show nothing)."""
    monkeypatch.setattr(encode, "_avif_beside_webp", lambda image: b"A")
    facts = run(tmp_path, images.make_animated_gif(), "image/gif", animated=False, alternates=AVIF)

    assert all(len(v.alternates) == 1 for v in facts.variants)


def test_a_kinds_own_ladder_gets_an_alternate_per_size(tmp_path: Path) -> None:
    """With a ladder of its own, each of its sizes gets its AVIF, named for it, never upscaled."""
    ladder = (VariantSpec("a", 300), VariantSpec("b", 600))
    data = camera_jpeg(FOLIAGE, 800)

    facts = run(tmp_path, data, "image/jpeg", sizes=ladder, alternates=AVIF)

    assert [v.name for v in facts.variants] == ["a", "b"]
    assert files_in(facts) == {"a.webp", "b.webp", "a.avif", "b.avif"}
    for variant, size in zip(facts.variants, (300, 600), strict=True):
        [alternate] = variant.alternates
        image = pyvips.Image.new_from_file(alternate.path)
        assert max(image.width, image.height) == size
        assert (image.width, image.height) == (variant.width, variant.height)


@pytest.mark.parametrize(
    ("side", "quality"),
    [
        (AVIF_SMALL_SIZE, AVIF_BESIDE_WEBP_SMALL_QUALITY),
        (AVIF_SMALL_SIZE + 1, AVIF_BESIDE_WEBP_QUALITY),
    ],
)
def test_variants_up_to_the_small_size_get_the_higher_quality(side: int, quality: int) -> None:
    """The AVIF quality follows the variant's longest side: the small quality up to
    AVIF_SMALL_SIZE px, the other above, at the chosen effort and chroma."""
    image = pyvips.Image.new_from_buffer(camera_jpeg(FOLIAGE, side), "")

    data = _avif_beside_webp(image)

    expected = encode_avif(
        image, quality=quality, effort=AVIF_BESIDE_WEBP_EFFORT, subsample=AVIF_BESIDE_WEBP_SUBSAMPLE
    )
    assert data == expected
