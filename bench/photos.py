"""A photo set drawn in code, for choosing encoder settings (`bench.avif_sweep`).

`bench.inputs.photo` is one kind of picture (textures at every scale, hard-edged shapes,
grain). Encoders differ most on what it lacks, so each photo here stresses one thing:

- `sky`: smooth gradients that band, soft clouds, a textured horizon, film grain;
- `foliage`: high-frequency texture everywhere (leaves at 2-12 px), saturated greens;
- `portrait`: skin-tone regions with gentle shading and blush, fine hair strands, a
  defocused background (portrait orientation);
- `document`: text and hard edges (a printed page and a window grid), lens blur, noise;
- `night`: a dark, high-ISO scene: strong luminance and chroma noise, bright lights.

Every random field is seeded (libvips' `gaussnoise` is not, unless asked), so a photo is
the same pixels on every run. Each is saved as a phone camera would (JPEG quality 92,
4:2:0, EXIF): the encoders then see a camera's own artefacts too. Drawing all five at
their default size takes about a second on one core.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyvips

from bench.inputs import CAMERA_EXIF, PHOTO_QUALITY

# Longest side of the drawn photos: large enough that the 1024 px variant is a shrink-on-load
# like a phone photo's, small enough to draw in a fraction of a second.
DEFAULT_SIZE = 2048


def _perlin(width: int, height: int, cell: int, seed: int) -> pyvips.Image:
    return pyvips.Image.perlin(width, height, cell_size=max(cell, 1), seed=seed)


def _grain(width: int, height: int, sigma: float, seed: int) -> pyvips.Image:
    return pyvips.Image.gaussnoise(width, height, sigma=sigma, mean=0, seed=seed)


def _srgb(
    lightness: pyvips.Image, a: pyvips.Image | float, b: pyvips.Image | float
) -> pyvips.Image:
    """8-bit sRGB from CIELAB planes (numbers are constant planes)."""
    width, height = lightness.width, lightness.height

    def plane(value: pyvips.Image | float) -> pyvips.Image:
        if isinstance(value, pyvips.Image):
            return value
        return pyvips.Image.black(width, height) + value

    lab = lightness.bandjoin([plane(a), plane(b)]).copy(interpretation="lab")
    return lab.colourspace("srgb").cast("uchar")


def _rows(width: int, height: int) -> pyvips.Image:
    """Each pixel's row, 0 at the top to 1 at the bottom."""
    return pyvips.Image.xyz(width, height)[1].cast("float") / height


def sky(width: int, height: int) -> pyvips.Image:
    """A landscape: a gradient sky with soft clouds over textured hills, with film grain."""
    y = _rows(width, height)
    horizon = (y + _perlin(width, height, width // 3, 11) * 0.06) > 0.68
    clouds = ((_perlin(width, height, 360, 12) + _perlin(width, height, 90, 13) * 0.35) - 0.05) * 3
    clouds = clouds.maxpair(0).gaussblur(6) * 14
    sky_l = 52 + y * 36 + clouds
    sky_a = y * 6 - 4
    sky_b = -42 + y * 40 + clouds * 0.4
    hills_l = (
        34
        + _perlin(width, height, 64, 14) * 10
        + _perlin(width, height, 12, 15) * 7
        + _perlin(width, height, 3, 16) * 4
    )
    hills_a = -12 + _perlin(width, height, 200, 17) * 10
    hills_b = 22 + _perlin(width, height, 150, 18) * 10
    lightness = horizon.ifthenelse(hills_l, sky_l) + _grain(width, height, 3.0, 19)
    return _srgb(lightness, horizon.ifthenelse(hills_a, sky_a), horizon.ifthenelse(hills_b, sky_b))


def foliage(width: int, height: int) -> pyvips.Image:
    """Leaves filling the frame: detail at 2-12 px everywhere, in saturated greens."""
    leaves = _perlin(width, height, 12, 21) > 0.15
    lightness = (
        40
        + _perlin(width, height, 160, 22) * 14
        + _perlin(width, height, 24, 23) * 10
        + _perlin(width, height, 6, 24) * 9
        + _perlin(width, height, 2, 25) * 5
        + leaves.ifthenelse(16, -4)
        + _grain(width, height, 2.0, 26)
    )
    a = -30 + _perlin(width, height, 50, 27) * 12 + leaves.ifthenelse(-6, 4)
    b = 34 + _perlin(width, height, 40, 28) * 16 + leaves.ifthenelse(10, -6)
    return _srgb(lightness, a, b)


def portrait(width: int, height: int) -> pyvips.Image:
    """A face: shaded skin with blush, fine hair strands, a defocused background."""
    xyz = pyvips.Image.xyz(width, height).cast("float")
    x, y = xyz[0], xyz[1]
    cx, cy, rx, ry = width * 0.5, height * 0.52, width * 0.3, height * 0.3
    dx, dy = (x - cx) / rx, (y - cy) / ry
    face = ((dx * dx + dy * dy) < 1).ifthenelse(255, 0).gaussblur(3) / 255
    hair_dy = (y - (cy - ry * 0.35)) / (ry * 1.05)
    hair = (((dx / 1.15) ** 2 + hair_dy * hair_dy) < 1).ifthenelse(255, 0).gaussblur(2) / 255
    hair = hair * (1 - face)
    # Strands: noise stretched 24x along the hair's fall.
    strands = pyvips.Image.perlin(width, height // 24 + 1, cell_size=3, seed=31)
    strands = strands.resize(1, vscale=24, kernel="linear").crop(0, 0, width, height)
    blobs = ((_perlin(width, height, 220, 32) > 0).ifthenelse(255, 0)).gaussblur(30) / 255
    back_l, back_a, back_b = 45 + blobs * 30, -8 + blobs * 12, 20 - blobs * 25
    skin_l = (
        68
        - dx * 7  # light from the left
        - dy * dy * 6
        + _perlin(width, height, 150, 33) * 4
        + _perlin(width, height, 18, 34) * 1.5
        + _perlin(width, height, 4, 35) * 0.8
    )
    blush = (((dx.abs() - 0.5) ** 2 + (dy - 0.25) ** 2) < 0.06).ifthenelse(255, 0).gaussblur(40)
    skin_a = 13 + blush / 255 * 8 + _perlin(width, height, 80, 36) * 2
    skin_b = 19 + _perlin(width, height, 120, 37) * 3
    hair_l = 22 + strands * 14 + _perlin(width, height, 60, 38) * 5

    def mix(skin: pyvips.Image, hairs: pyvips.Image | float, back: pyvips.Image) -> pyvips.Image:
        return skin * face + hairs * hair + back * (1 - face - hair)

    lightness = mix(skin_l, hair_l, back_l) + _grain(width, height, 1.5, 39)
    return _srgb(lightness, mix(skin_a, 6.0, back_a), mix(skin_b, 14.0, back_b))


_PAGE = (
    "<b>Terms of carriage</b>\n"
    "1. Parcels over 30 kg are collected by appointment only.\n"
    "2. Claims for damage must reach us within 14 days of delivery,\n"
    "   with photographs of the packaging and the contents.\n"
    "3. Tracking numbers: AB-2291-7730, CX-0048-1162, QZ-9907-4315.\n"
    "4. Opening hours: Mon-Fri 08:00-18:30, Sat 09:00-13:00.\n"
    "Fees: 4.90 / 7.50 / 12.00 EUR; express +5.00 EUR (incl. VAT 19 %)."
)


def document(width: int, height: int) -> pyvips.Image:
    """A printed page photographed on a desk beside a window grid: text and hard edges."""
    y = _rows(width, height)
    x = pyvips.Image.xyz(width, height)[0].cast("float") / width
    page_width = int(width * 0.6)
    text = pyvips.Image.text(_PAGE, width=page_width - 80, dpi=max(72, width // 7), font="serif")
    ink = text.embed(int(width * 0.05) + 40, int(height * 0.12), width, height).cast("float") / 255
    page = ((x > 0.05) & (x < 0.05 + page_width / width) & (y > 0.08) & (y < 0.92)).ifthenelse(
        1.0, 0.0
    )
    # A window grid: bright panes between dark bars, on the right.
    xyz = pyvips.Image.xyz(width, height)
    bars = ((xyz[0] % 96) < 10) | ((xyz[1] % 128) < 12)
    window = (x > 0.72).ifthenelse(bars.ifthenelse(18.0, 92.0), 0.0)
    desk = 38 + _perlin(width, height, 80, 41) * 6 + _perlin(width, height, 5, 42) * 3
    lit = 1 - x * 0.12 - (y - 0.5) * (y - 0.5) * 0.3  # light falls off across the page
    lightness = page.ifthenelse((90 - ink * 72) * lit, (x > 0.72).ifthenelse(window, desk))
    lightness = lightness.gaussblur(0.7) + _grain(width, height, 2.0, 43)
    a = page.ifthenelse(1.0, (x > 0.72).ifthenelse(0.0, 12.0))
    b = page.ifthenelse(6.0, (x > 0.72).ifthenelse(-4.0, 28.0))
    return _srgb(lightness, a, b)


def night(width: int, height: int) -> pyvips.Image:
    """A street at night at high ISO: dark, noisy in luminance and colour, bright lights."""
    lights = (_perlin(width, height, 14, 51) > 0.42) & (_perlin(width, height, 300, 52) > 0.1)
    glow = lights.ifthenelse(255, 0).gaussblur(10) / 255
    lightness = (
        9
        + _perlin(width, height, 400, 53) * 5
        + _perlin(width, height, 40, 54) * 3
        + glow * 45
        + lights.ifthenelse(55, 0)
        + _grain(width, height, 4.5, 55)
    )
    a = 4 + glow * 12 + _grain(width, height, 4.0, 56)
    b = -14 + glow * 50 + _grain(width, height, 4.0, 57)
    return _srgb(lightness.maxpair(0), a, b)


@dataclass(frozen=True, slots=True)
class Photo:
    """One drawn photo: how to draw it, and its shape (`portrait` is taller than wide)."""

    name: str
    draw: Callable[[int, int], pyvips.Image]
    aspect: float  # width / height
    note: str


PHOTOS: tuple[Photo, ...] = (
    Photo("sky", sky, 4 / 3, "gradient sky, clouds, textured hills, film grain"),
    Photo("foliage", foliage, 4 / 3, "leaves: high-frequency texture, saturated greens"),
    Photo("portrait", portrait, 3 / 4, "skin tones, hair strands, defocused background"),
    Photo("document", document, 3 / 2, "printed text and a window grid: hard edges"),
    Photo("night", night, 4 / 3, "dark high-ISO street: luminance and chroma noise"),
)


def dimensions(photo: Photo, size: int = DEFAULT_SIZE) -> tuple[int, int]:
    """Width and height with `size` as the longest side."""
    if photo.aspect >= 1:
        return size, round(size / photo.aspect)
    return round(size * photo.aspect), size


def camera_jpeg(photo: Photo, size: int = DEFAULT_SIZE) -> bytes:
    """`photo` as a phone camera writes it: quality 92, 4:2:0, EXIF with GPS."""
    image = photo.draw(*dimensions(photo, size)).copy()
    image.set_type(pyvips.GValue.gint_type, "orientation", 1)
    for name, value in CAMERA_EXIF.items():
        image.set_type(pyvips.GValue.gstr_type, name, value)
    data: bytes = image.jpegsave_buffer(Q=PHOTO_QUALITY, subsample_mode="on")
    return data
