"""Encoding the variants (`mediasvc.imaging.encode`): content-aware WebP (graphics lossless
or as a palette where that is smaller, photos lossy; checked by bytes and pixels, never by
time), and still WebP files through Pillow (the same files libvips writes, and nothing in
them but the image)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import images
import pytest
import pyvips
from imaging_support import make_job, run

from bench import graphics
from bench.avif_sweep import Source, variants
from mediasvc.imaging import pipeline
from mediasvc.imaging.encode import PALETTE_MIN_PSNR_DB, encode_still
from mediasvc.imaging.job import Facts
from mediasvc.imaging.variants import LARGEST


def lossy_only(tmp_path: Path, data: bytes, mime: str) -> Facts:
    """The same upload with content-aware encoding off: what lossy alone writes."""
    return run(tmp_path, data, mime, lossless_graphics=False)


def bytes_of(facts: Facts) -> dict[str, int]:
    return {variant.name: variant.bytes for variant in facts.variants}


def largest_file(facts: Facts) -> pyvips.Image:
    [full] = [v for v in facts.variants if v.name == LARGEST.name]
    return pyvips.Image.new_from_file(full.path)


def max_difference(a: pyvips.Image, b: pyvips.Image) -> float:
    assert (a.width, a.height, a.bands) == (b.width, b.height, b.bands)
    return float((a.cast("int") - b.cast("int")).abs().max())


def as_shown(image: pyvips.Image) -> pyvips.Image:
    """RGBA with its colours premultiplied by alpha: what shows over any background (an
    opaque image gains the alpha WebP leaves out)."""
    image = image if image.hasalpha() else image.bandjoin(255)
    return image.premultiply()


def psnr(reference: pyvips.Image, written: pyvips.Image) -> float:
    """PSNR in dB of `written` against `reference`, as shown (inf: the same)."""
    difference = as_shown(reference) - as_shown(written)
    mean_square = float((difference * difference).avg())
    return math.inf if mean_square == 0 else 10 * math.log10(255**2 / mean_square)


def drawn(tmp_path: Path, name: str) -> tuple[bytes, str, list[tuple[str, pyvips.Image]]]:
    """One of the bench's graphics (`bench.graphics`), as an upload, its type, and the pixels
    of each variant as the pipeline resizes them (largest first), before encoding."""
    data, mime = graphics.draw(name)
    path = tmp_path / name
    path.write_bytes(data)
    resized = [(spec.name, image) for spec, image in variants(Source(name, str(path), mime, ""))]
    return data, mime, resized


def stored_as(facts: Facts) -> dict[str, str]:
    """How each variant was written: lossless (listed so), palette (lossless WebP, not
    listed: its colours were quantised) or lossy (a VP8 image)."""
    listed = facts.processing["lossless_variants"]
    assert isinstance(listed, list)
    found = {}
    for variant in facts.variants:
        vp8l = b"VP8L" in chunks(Path(variant.path).read_bytes())
        found[variant.name] = (
            "lossy" if not vp8l else "lossless" if variant.name in listed else "palette"
        )
    return found


# --------------------------------------------------------------------------
# Content-aware WebP (`write_variants`)
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file_format", "mime"),
    [("png", "image/png"), ("gif", "image/gif"), ("webp", "image/webp")],
)
def test_a_graphic_is_stored_lossless_pixel_exact_and_smaller(
    tmp_path: Path, file_format: str, mime: str
) -> None:
    """A flat graphic stored losslessly comes out lossless: `full` has the source's pixels
    exactly and fewer bytes than lossy, and the report says so."""
    data = images.make_graphic(format=file_format)

    facts = run(tmp_path, data, mime)
    lossy = lossy_only(tmp_path, data, mime)

    assert facts.processing["encoding"] == "lossless"
    assert LARGEST.name in facts.processing["lossless_variants"]  # type: ignore[operator]
    assert max_difference(largest_file(facts), images.graphic()) == 0
    assert bytes_of(facts)[LARGEST.name] < bytes_of(lossy)[LARGEST.name]
    assert lossy.processing["encoding"] == "lossy"


def test_a_graphic_on_transparency_keeps_its_visible_pixels_and_alpha_exactly(
    tmp_path: Path,
) -> None:
    """A logo-like graphic with alpha: alpha is exact, and so is every pixel not fully
    transparent (lossless WebP may change colour only where nothing shows)."""
    facts = run(tmp_path, images.make_graphic(alpha=True), "image/png")

    assert facts.processing["encoding"] == "lossless"
    written, source = largest_file(facts), images.graphic(alpha=True)
    assert max_difference(written[3], source[3]) == 0
    shown = source[3] > 0
    assert max_difference(shown.ifthenelse(written, 0), shown.ifthenelse(source, 0)) == 0


def test_each_smaller_variant_of_a_graphic_is_the_smallest_of_its_encodes(
    tmp_path: Path,
) -> None:
    """No variant of a graphic is larger than lossy alone would make it, and the set is
    smaller overall: `full`, at the source's size and in its few colours, is lossless, and
    the resized ones, which resampling gave more colours, are palettes."""
    data = images.make_graphic(width=1024, height=640)

    facts = run(tmp_path, data, "image/png")
    lossy = lossy_only(tmp_path, data, "image/png")

    chosen, baseline = bytes_of(facts), bytes_of(lossy)
    assert all(chosen[name] < baseline[name] for name in baseline)
    assert facts.processing["lossless_variants"] == ["full"]
    assert set(stored_as(facts).values()) == {"lossless", "palette"}


def test_a_sparse_graphic_comes_out_smaller_and_the_set_at_half_the_lossy_bytes(
    tmp_path: Path,
) -> None:
    """The bench's sparse graphics (a logo, a flat landing page, an icon set, a sprite):
    no variant is larger than its lossy-only file, each graphic is smaller in all, and the
    set comes to at most half its lossy-only bytes (issue 31)."""
    totals, lossy_totals = 0, 0
    for name in graphics.SPARSE:
        data, mime = graphics.draw(name)

        chosen = bytes_of(run(tmp_path, data, mime))
        baseline = bytes_of(lossy_only(tmp_path, data, mime))

        assert all(chosen[size] <= baseline[size] for size in baseline), name
        assert sum(chosen.values()) < sum(baseline.values()), name
        totals, lossy_totals = totals + sum(chosen.values()), lossy_totals + sum(baseline.values())
    assert totals <= 0.5 * lossy_totals


@pytest.mark.parametrize("name", graphics.DENSE)
def test_a_dense_text_screenshot_never_comes_out_larger_than_lossy_only(
    tmp_path: Path, name: str
) -> None:
    """A screenshot full of text, where resampled glyph edges favour lossy: no variant is
    larger than lossy alone would write it."""
    data, mime = graphics.draw(name)

    chosen = bytes_of(run(tmp_path, data, mime))
    baseline = bytes_of(lossy_only(tmp_path, data, mime))

    assert all(chosen[size] <= baseline[size] for size in baseline)


@pytest.mark.parametrize("name", ["pixel_art", "logo", "icon_set", "ui_screenshot"])
def test_lossless_variants_have_the_resized_pixels_and_palettes_stay_near(
    tmp_path: Path, name: str
) -> None:
    """A variant stored lossless holds exactly the pixels it was resized to (where visible);
    one stored as a palette is within the palette's floor of them, and not exact."""
    data, mime, resized = drawn(tmp_path, name)

    facts = run(tmp_path, data, mime)

    stored = stored_as(facts)
    files = {v.name: pyvips.Image.new_from_file(v.path) for v in facts.variants}
    for size, pixels in resized:
        quality = psnr(pixels, files[size])
        if stored[size] == "lossless":
            assert quality == math.inf, size
        elif stored[size] == "palette":
            assert PALETTE_MIN_PSNR_DB <= quality < math.inf, size
    assert set(stored.values()) & {"lossless", "palette"}


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        pytest.param(images.make_noisy_jpeg(width=900, height=600), "image/jpeg", id="jpeg"),
        pytest.param(images.make_photo_png(), "image/png", id="photo-png"),
        pytest.param(images.make_photo_png(alpha=True), "image/png", id="cut-out-photo-png"),
        pytest.param(images.make_graphic(format="webp-lossy"), "image/webp", id="lossy-webp"),
    ],
)
def test_photos_and_lossy_sources_stay_lossy_byte_for_byte(
    tmp_path: Path, data: bytes, mime: str
) -> None:
    """Photos (also saved as PNG, also cut out on transparency) and sources already lossy
    are encoded lossy exactly as without content-aware encoding."""
    facts = run(tmp_path, data, mime)

    assert (facts.processing["encoding"], facts.processing["lossless_variants"]) == ("lossy", [])
    assert bytes_of(facts) == bytes_of(lossy_only(tmp_path, data, mime))


@pytest.mark.parametrize("output_format", ["jpeg", "avif"])
def test_other_output_formats_are_lossy(tmp_path: Path, output_format: str) -> None:
    """Only WebP output is tried lossless: a kind that writes JPEG or AVIF stays lossy."""
    facts = run(tmp_path, images.make_graphic(), "image/png", output_format=output_format)

    assert facts.processing["encoding"] == "lossy"


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        pytest.param(images.make_graphic(width=1600, height=1000), "image/png", id="graphic"),
        pytest.param(images.make_noisy_jpeg(width=1600, height=1000), "image/jpeg", id="photo"),
    ],
)
def test_encoding_in_threads_writes_the_same_files(tmp_path: Path, data: bytes, mime: str) -> None:
    """A job lent idle cores (`threads`) writes byte-identical variants to a one-thread job."""
    one = pipeline.process(make_job(tmp_path, data, mime))
    lent = pipeline.process(replace(make_job(tmp_path, data, mime), threads=3))

    assert [Path(v.path).read_bytes() for v in lent.variants] == [
        Path(v.path).read_bytes() for v in one.variants
    ]
    assert lent.processing == one.processing


# --------------------------------------------------------------------------
# Still WebP files through Pillow (`encode_still`)
# --------------------------------------------------------------------------

# RIFF chunks an image-only WebP may hold: no EXIF, XMP or ICCP.
IMAGE_CHUNKS = {b"VP8 ", b"VP8L", b"VP8X", b"ALPH"}


def chunks(data: bytes) -> list[bytes]:
    """The four-character codes of a WebP file's chunks, in order."""
    assert data[:4] == b"RIFF"
    assert data[8:12] == b"WEBP"
    found, offset = [], 12
    while offset < len(data):
        size = int.from_bytes(data[offset + 4 : offset + 8], "little")
        found.append(data[offset : offset + 4])
        offset += 8 + size + (size & 1)
    return found


def photo(alpha: bool) -> pyvips.Image:
    """A photo-like 8-bit sRGB still: gradients and grain, a cut-out with `alpha`."""
    return pyvips.Image.new_from_buffer(images.make_photo_png(alpha=alpha), "")


@pytest.mark.parametrize(
    ("alpha", "lossless"), [(False, False), (True, False), (True, True), (False, True)]
)
def test_the_same_bytes_as_libvips_writes(alpha: bool, lossless: bool) -> None:
    """With the same settings Pillow's libwebp writes libvips' file byte for byte: the
    premise of encoding through Pillow (docs/decisions.md). A Pillow or libvips upgrade that
    links another libwebp makes this fail; then re-measure before keeping either."""
    image = photo(alpha)
    quality = 75 if lossless else 80
    ours = encode_still(image, quality=quality, effort=4, lossless=lossless)
    theirs = image.webpsave_buffer(Q=quality, effort=4, lossless=lossless, keep="none")
    assert ours == theirs


def test_lossless_keeps_alpha_and_every_visible_pixel() -> None:
    """Exact where a viewer sees anything; under alpha 0 libwebp may change the colour, as
    libvips lets it (`exact` off), which is what makes transparent areas cheap."""
    image = pyvips.Image.new_from_buffer(images.make_graphic(alpha=True), "")
    data = encode_still(image, quality=75, effort=4, lossless=True)
    decoded = pyvips.Image.new_from_buffer(data, "")
    assert (decoded.width, decoded.height, decoded.bands) == (image.width, image.height, 4)
    difference = (decoded.cast("int") - image.cast("int")).abs()
    assert difference[3].max() == 0
    visible = image[3] > 0
    assert visible.max() == 255, "the graphic has visible pixels"
    assert (visible.ifthenelse(difference[:3].bandor(), 0)).max() == 0


def test_metadata_of_the_source_is_not_written() -> None:
    """The pixels come from an image carrying EXIF (with GPS) and an ICC profile; the file
    holds the image only."""
    source = pyvips.Image.new_from_buffer(images.make_jpeg(gps=True, icc=True), "")
    assert source.get_typeof("exif-data")
    assert source.get_typeof("icc-profile-data")
    data = encode_still(source, quality=80, effort=4)
    assert set(chunks(data)) <= IMAGE_CHUNKS
    assert b"Exif" not in data
