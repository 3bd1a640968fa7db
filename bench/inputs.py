"""The bench's input files, drawn in code with pyvips: nothing binary is committed.

Flat colour would make every encoder look fast, so the pictures are photo-like: a
luminance field with detail at every scale (Perlin octaves from 700 px down to 3 px),
hard-edged shapes, film grain, and low-frequency colour, converted from CIELAB. At quality
92 with 4:2:0 chroma (what phone cameras write) the 12 MP file is about 4 MB, like a phone
photo.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import pyvips

# What a phone puts in EXIF, GPS included, so the pipeline has something to strip.
CAMERA_EXIF: dict[str, str] = {
    "exif-ifd0-Make": "BenchCam",
    "exif-ifd0-Model": "Photo 12",
    "exif-ifd0-DateTime": "2026:11:21 12:00:00",
    "exif-ifd3-GPSLatitudeRef": "N",
    "exif-ifd3-GPSLatitude": "52/1 31/1 12/1",
    "exif-ifd3-GPSLongitudeRef": "E",
    "exif-ifd3-GPSLongitude": "13/1 24/1 36/1",
}
PHOTO_QUALITY = 92


@dataclass(frozen=True, slots=True)
class Input:
    """One input file and what it is."""

    name: str
    path: Path
    mime: str
    width: int
    height: int
    bytes: int
    note: str


def photo(width: int, height: int, seed: int = 1) -> pyvips.Image:
    """A photo-like 8-bit sRGB image: textures at every scale, edges, grain, colour."""

    def octave(cell: int, n: int) -> pyvips.Image:
        return pyvips.Image.perlin(width, height, cell_size=cell, seed=seed * 100 + n)

    lightness = (
        50
        + octave(512, 1) * 25
        + octave(128, 2) * 12
        + octave(32, 3) * 6
        + octave(8, 4) * 4
        + octave(3, 5) * 2
        # Shapes with hard edges, as objects against a background.
        + (octave(300, 6) > 0.1).ifthenelse(18, -6)
        + (octave(150, 7) > 0.25).ifthenelse(-15, 0)
        + pyvips.Image.gaussnoise(width, height, sigma=2.5, mean=0)  # grain
    )
    a = octave(700, 8) * 25 + octave(90, 9) * 6
    b = octave(600, 10) * 30 + octave(90, 11) * 6 + 10
    lab = lightness.bandjoin([a, b]).copy(interpretation="lab")
    return lab.colourspace("srgb").cast("uchar")


def photo_jpeg(width: int, height: int, seed: int = 1) -> bytes:
    """A camera-like JPEG: quality 92, 4:2:0, EXIF with GPS, orientation 1, no ICC profile."""
    image = photo(width, height, seed).copy()
    image.set_type(pyvips.GValue.gint_type, "orientation", 1)
    for name, value in CAMERA_EXIF.items():
        image.set_type(pyvips.GValue.gstr_type, name, value)
    data: bytes = image.jpegsave_buffer(Q=PHOTO_QUALITY, subsample_mode="on")
    return data


def photo_heic(width: int, height: int, seed: int = 1) -> bytes:
    """The same photo as an iPhone-like HEIC: 512 px tiles, 4:2:0, EXIF with GPS.

    x265's `ultrafast` preset encodes 12 MP in about 2 s (its default takes 36 s here); at
    quality 60 the file is about 4 MB, like a phone's.
    """
    import pillow_heif
    from PIL import Image

    image = photo(width, height, seed)
    exif = Image.Exif()
    exif.update({0x010F: "BenchCam", 0x0110: "Photo 12"})
    exif.get_ifd(0x8825).update({1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 36.0)})
    out = io.BytesIO()
    pillow_heif.from_bytes("RGB", (width, height), image.write_to_memory()).save(
        out, quality=60, tile_size=512, exif=exif.tobytes(), enc_params={"preset": "ultrafast"}
    )
    return out.getvalue()


def alpha_png(width: int, height: int) -> bytes:
    """A cut-out product shot: photo pixels inside a soft-edged blob, transparent outside."""
    blob = pyvips.Image.perlin(width, height, cell_size=max(width, height) // 3, seed=7) > -0.05
    alpha = blob.gaussblur(4).cast("uchar")
    data: bytes = photo(width, height, seed=2).bandjoin(alpha).pngsave_buffer()
    return data


def cmyk_jpeg(width: int, height: int) -> bytes:
    """A print-shop CMYK JPEG with its CMYK profile embedded, as Photoshop writes them."""
    cmyk = photo(width, height, seed=3).icc_export(output_profile="cmyk")
    data: bytes = cmyk.jpegsave_buffer(Q=90)
    return data


def write_inputs(directory: Path, *, with_48mp: bool) -> dict[str, Input]:
    """Draw every input into `directory`; the 48 MP one (memory check) only when asked."""
    made = [
        ("photo_12mp", "image/jpeg", photo_jpeg(4000, 2880), "12 MP phone-like JPEG, EXIF+GPS"),
        ("alpha_2mp", "image/png", alpha_png(1732, 1155), "2 MP RGBA PNG"),
        ("cmyk", "image/jpeg", cmyk_jpeg(1280, 800), "1280x800 CMYK JPEG, ICC embedded"),
    ]
    if with_48mp:
        made.append(("photo_48mp", "image/jpeg", photo_jpeg(8000, 6000, seed=4), "48 MP JPEG"))
    inputs = {}
    for name, mime, data, note in made:
        path = directory / f"{name}{'.png' if mime == 'image/png' else '.jpg'}"
        path.write_bytes(data)
        header = pyvips.Image.new_from_file(str(path))
        inputs[name] = Input(name, path, mime, header.width, header.height, len(data), note)
    if find_spec("pillow_heif") is not None:  # the mediasvc[heic] extra
        heic = photo_heic(4000, 2880)
        path = directory / "photo_12mp_heic.heic"
        path.write_bytes(heic)
        note = "the 12 MP photo as an iPhone-like HEIC, 512 px tiles, EXIF+GPS"
        inputs["photo_12mp_heic"] = Input(
            "photo_12mp_heic", path, "image/heic", 4000, 2880, len(heic), note
        )
    return inputs
