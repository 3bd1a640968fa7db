"""Still WebP files through Pillow (`mediasvc.imaging.webp`): the same files libvips writes,
and nothing in them but the image."""

from __future__ import annotations

import images
import pytest
import pyvips

from mediasvc.imaging.webp import encode_still

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
