"""The code a team writes instead of mediasvc: the same five WebP variants with Pillow.

Both baselines make what the pipeline makes for a still image: upright (EXIF orientation
applied), 8-bit RGB or RGBA, longest side bounded by each variant's size and never
upscaled, WebP at the service's quality and effort (`method`), no metadata written.

- `naive`: as it is usually written: open, `exif_transpose`, `convert`, then
  `copy().thumbnail()` each variant from the full-resolution image (Lanczos, Pillow's default
  reducing gap) and save it. CMYK goes through `convert("RGB")`,
  which ignores the ICC profile (what most such code does).
- `tuned`: what a careful Pillow user does: `draft()` so libjpeg decodes at the smallest
  DCT scale that still covers the largest variant, CMYK through its ICC profile with
  ImageCms, and each variant derived from the next larger one.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageCms, ImageOps

from bench.timing import Sample, timed
from mediasvc.imaging.variants import LARGEST, VARIANTS

_SRGB = ImageCms.createProfile("sRGB")


def _bounded(width: int, height: int, size: int) -> tuple[int, int]:
    """Width and height with the longest side at most `size`, never upscaled."""
    scale = min(1.0, size / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _target_mode(image: Image.Image) -> str:
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    return "RGBA" if has_alpha else "RGB"


def _save(image: Image.Image, path: Path, quality: int, method: int) -> int:
    image.save(path, "WEBP", quality=quality, method=method)
    return path.stat().st_size


def naive(source: str, out_dir: str, quality: int, method: int) -> tuple[dict[str, int], Sample]:
    """The usual Pillow code; byte count per variant and the time it took."""

    def run() -> dict[str, int]:
        written = {}
        with Image.open(source) as opened:
            image = ImageOps.exif_transpose(opened)
            image = image.convert(_target_mode(image))
            for spec in VARIANTS:
                variant = image.copy()
                variant.thumbnail((spec.size, spec.size), Image.Resampling.LANCZOS)
                written[spec.name] = _save(
                    variant, Path(out_dir) / f"{spec.name}.webp", quality, method
                )
        return written

    return timed(run)


def tuned(source: str, out_dir: str, quality: int, method: int) -> tuple[dict[str, int], Sample]:
    """Pillow with shrink-on-load and derived sizes; byte count per variant and the time."""

    def run() -> dict[str, int]:
        written = {}
        with Image.open(source) as opened:
            if opened.format == "JPEG":
                # Ask for the largest variant's size before any pixel is decoded: libjpeg
                # picks the smallest 1/2, 1/4, 1/8 scale that still covers it. Bounding
                # the longest side does not depend on the EXIF orientation.
                opened.draft(opened.mode, _bounded(opened.width, opened.height, LARGEST.size))
            image = ImageOps.exif_transpose(opened)
            profile = image.info.get("icc_profile")
            if image.mode == "CMYK" and profile:
                converted = ImageCms.profileToProfile(
                    image, ImageCms.ImageCmsProfile(io.BytesIO(profile)), _SRGB, outputMode="RGB"
                )
                image = image if converted is None else converted  # None only when in place
            image = image.convert(_target_mode(image))
            for spec in sorted(VARIANTS, key=lambda v: -v.size):
                size = _bounded(image.width, image.height, spec.size)
                if size != image.size:
                    image = image.resize(size, Image.Resampling.LANCZOS)
                written[spec.name] = _save(
                    image, Path(out_dir) / f"{spec.name}.webp", quality, method
                )
        return written

    return timed(run)
