"""Equal quality, checked: output bytes side by side, and PSNR against a careful reference.

The reference is the largest variant rendered the slow way (full-resolution decode, then one
Lanczos resize, no lossy encode); each contestant's encoded `full.webp` is decoded and
compared with it. Runs in the bench process, which is not hardened, so it may load WebP.
"""

from __future__ import annotations

import math
from pathlib import Path

import pyvips

from mediasvc.imaging.variants import LARGEST


def reference(source: Path) -> pyvips.Image:
    """The largest variant without shrink-on-load or lossy encoding, 8-bit sRGB."""
    full = pyvips.Image.new_from_file(str(source))
    return full.thumbnail_image(LARGEST.size, height=LARGEST.size, size="down").copy_memory()


def psnr(encoded: Path, ref: pyvips.Image) -> float | None:
    """PSNR in dB of the decoded file against `ref` over RGB; None if the sizes differ."""
    image = pyvips.Image.new_from_file(str(encoded))
    if (image.width, image.height) != (ref.width, ref.height):
        return None
    diff = image.extract_band(0, n=3).cast("float") - ref.extract_band(0, n=3).cast("float")
    mse = float((diff * diff).avg())
    return 99.0 if mse == 0 else 10 * math.log10(255 * 255 / mse)


def compare(source: Path, outputs: dict[str, Path]) -> dict[str, dict[str, object]]:
    """Per contestant: total bytes of the five variants and PSNR of `full.webp`."""
    ref = reference(source)
    found: dict[str, dict[str, object]] = {}
    for name, directory in outputs.items():
        files = sorted(directory.glob("*.webp"))
        found[name] = {
            "bytes": sum(f.stat().st_size for f in files),
            "bytes_by_variant": {f.stem: f.stat().st_size for f in files},
            "full_psnr_db": psnr(directory / f"{LARGEST.name}.webp", ref),
        }
    return found
