"""The bench's drawn photo set (`bench/photos.py`) and the AVIF sweep's grid, drawn small."""

from __future__ import annotations

import hashlib

import pyvips

from bench.avif_sweep import Setting, grid, neighbours
from bench.photos import PHOTOS, camera_jpeg, dimensions


def test_each_photo_is_a_camera_jpeg_of_the_asked_size() -> None:
    """A drawn photo decodes to 8-bit sRGB with its longest side the size asked for."""
    for photo in PHOTOS:
        image = pyvips.Image.new_from_buffer(camera_jpeg(photo, 96), "")
        assert (image.width, image.height) == dimensions(photo, 96)
        assert max(image.width, image.height) == 96
        assert (image.bands, image.format) == (3, "uchar")


def test_photos_are_the_same_pixels_on_every_draw_and_differ_from_each_other() -> None:
    """Every random field is seeded: two draws are byte-identical, and no two photos are."""
    first = [hashlib.sha256(camera_jpeg(photo, 64)).digest() for photo in PHOTOS]
    again = [hashlib.sha256(camera_jpeg(photo, 64)).digest() for photo in PHOTOS]
    assert first == again
    assert len(set(first)) == len(PHOTOS)


def test_neighbours_are_one_step_along_one_axis_of_the_grid() -> None:
    """A setting's neighbours differ from it by one step of one axis, and only those."""
    settings = grid((55, 60, 65), (0, 1), (0,), (0, 5))
    found = neighbours(Setting(60, 0, "on", 0), settings)
    assert found == [
        Setting(55, 0, "on", 0),
        Setting(60, 0, "off", 0),
        Setting(60, 0, "on", 5),
        Setting(60, 1, "on", 0),
        Setting(65, 0, "on", 0),
    ]
