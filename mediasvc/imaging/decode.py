"""Decode an upload: its header checked against the kind's limits, then one decode to the
largest variant, upright, 8-bit sRGB, in memory.

In this order, so hostile files cost little:

1. Open with the one loader that matches the sniffed type and read the header only:
   pixel count, frame count and orientation are checked before any pixel is decoded (a
   GIF's blocks are walked first, `imaging.gif`; a HEIF grid's tiles and an AVIF
   sequence's frames are counted from their boxes, `imaging.heifgrid`, `imaging.avif`).
2. One decode: shrink-on-load straight to the largest variant (for JPEG, libjpeg's DCT
   scaling, see `_dct_shrink`), then one Lanczos resize with the kind's crop, the EXIF
   orientation, and sRGB: through the ICC profile only when the file carries one that is
   not sRGB.

HEIC/HEIF (with the optional extra) is decoded by pillow-heif rather than a libvips loader,
in the same order: its container's header is checked against the same limits, then one
decode hands upright 8-bit pixels to libvips for the same resize (`imaging.heif`).

docs/performance.md has the measurements behind each of these choices.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pyvips

from mediasvc.contract import codes
from mediasvc.imaging import heifgrid
from mediasvc.imaging.avif import avif_sequence
from mediasvc.imaging.formats import ANIMATED_LOADERS, HEIF_DECODER, LOADERS
from mediasvc.imaging.frames import page_height
from mediasvc.imaging.gif import GifStructure, walk_gif
from mediasvc.imaging.job import BadImage, Crop, ImageRules, Job, NotAccepted
from mediasvc.imaging.report import (
    ColorConversion,
    color_conversion,
    heif_color_conversion,
    heif_processing_report,
    processing_report,
)
from mediasvc.imaging.variants import largest_of

# Orientations 5-8 turn the image a quarter, so displayed width and height swap.
_TRANSPOSING_ORIENTATIONS = frozenset({5, 6, 7, 8})
# libjpeg can decode at 1/2, 1/4 or 1/8 scale (DCT scaling), far cheaper than decoding every
# pixel. The Lanczos resize after it is left at least this factor, so it still smooths what
# DCT scaling leaves (libvips' own `thumbnail` keeps 2; PSNR against a full decode stays
# above 50 dB at 1.5, see docs/performance.md).
_MIN_RESIZE_AFTER_DCT = 1.5
# The sources whose pixels must go through their ICC profile to become sRGB. Others are
# untagged (taken as sRGB) or tagged sRGB: converting them would be a costly no-op.
_ICC_CONVERSIONS: frozenset[ColorConversion] = frozenset(
    {
        "converted from CMYK (ICC)",
        "converted from embedded ICC profile",
        "converted from Display P3 (nclx)",
    }
)


@dataclass(frozen=True, slots=True)
class Decoded:
    """The largest variant in memory (upright, sRGB, 8-bit), what the header said, and the
    decoder that read it (a libvips loader, or `HEIF_DECODER`).

    `report(frames=...)` is the processing report, given the frames the variants hold.
    """

    image: Any
    width: int
    height: int
    frames: int
    loader: str
    report: Callable[..., dict[str, object]]


def decode(job: Job) -> Decoded:
    """`job.source` decoded once, after its header passed the kind's limits.

    Raises `NotAccepted` for a type off the allow-list, `BadImage` for a file refused
    before or after decoding, and lets libvips' own errors (`pyvips.Error`) through.
    """
    loader = LOADERS.get(job.mime)
    if loader is None:
        raise NotAccepted(f"{job.mime} is not accepted")
    gif = walk_gif(Path(job.source).read_bytes()) if loader == "gifload" else None
    if gif is not None and not gif.complete:
        raise BadImage("The GIF is truncated or damaged.")
    return _decode_heif(job) if loader == HEIF_DECODER else _decode_vips(job, loader, gif)


def _decode_vips(job: Job, loader: str, gif: GifStructure | None) -> Decoded:
    """Header, limits and the one decode, all by the libvips `loader`."""
    header = _open_header(job.source, loader)
    width, height, frames = _check_header(header, loader, job)
    image = _decode_largest(job, header, loader, frames, width, height)
    report = partial(processing_report, header, loader, job.source, gif=gif)
    return Decoded(image, width, height, frames, loader, report)


def _decode_heif(job: Job) -> Decoded:
    """The same for HEIC/HEIF, by pillow-heif: the container's header against the same
    limits, then one decode of the primary image and the same resize.

    libheif has already turned the pixels upright (`irot`/`imir`), and the image libvips
    gets carries no EXIF orientation, so nothing is turned twice. Only the primary image
    is decoded: the file counts as one frame, whatever else it holds.
    """
    from mediasvc.imaging import heif  # the optional extra: LOADERS lists HEIF only with it

    header = heif.open_header(job.source)
    width, height = header.width, header.height
    _enforce_limits(width, height, 1, job)
    heifgrid.check_derived(header.derived, job.rules.max_pixels)  # not the ispe alone
    _enforce_size(width, height, job.rules)
    colour = _colour_options(heif_color_conversion(header))
    largest = _resize_largest(heif.decode(header).thumbnail_image, job, 1, width, height, colour)
    report = partial(heif_processing_report, header)
    image = _to_srgb8(largest).copy_memory()
    return Decoded(image, width, height, 1, HEIF_DECODER, report)


def _open_header(source: str, loader: str) -> Any:
    """The lazily opened image: libvips reads the header now and pixels only when asked."""
    open_with = getattr(pyvips.Image, loader)
    return open_with(source, access="sequential", fail_on="error")


def _check_header(header: Any, loader: str, job: Job) -> tuple[int, int, int]:
    """Displayed width, height and the source's frame count, after the limits are enforced."""
    width, height = header.width, header.height
    frames = 1
    if loader in ANIMATED_LOADERS and header.get_typeof("n-pages"):
        frames = max(1, int(header.get("n-pages")))
    # A kind that keeps first frames only decodes one frame, whatever the file holds.
    _enforce_limits(width, height, frames if job.rules.animated else 1, job)
    if loader == "heifload":
        # libheif decodes a grid's canvas and tiles, whatever its ispe (above) claims.
        heifgrid.check_derived(heifgrid.read_derived(job.source), job.rules.max_pixels)
    if loader == "heifload" and (sequence := avif_sequence(job.source)) is not None:
        # heifload decodes the primary image only, but the sequence is the upload: its
        # frames are limited (and counted) like a GIF's, before anything is decoded.
        limited = sequence.frames if job.rules.animated else 1
        _enforce_limits(sequence.width, sequence.height, limited, job)
        frames = sequence.frames
    orientation = int(header.get("orientation")) if header.get_typeof("orientation") else 1
    if orientation in _TRANSPOSING_ORIENTATIONS:
        width, height = height, width
    _enforce_size(width, height, job.rules)
    return width, height, frames


def _enforce_size(width: int, height: int, rules: ImageRules) -> None:
    """The kind's bounds on the displayed size."""
    if width < rules.min_width or height < rules.min_height:
        raise BadImage(
            f"The image is {width}x{height}; at least {rules.min_width}x{rules.min_height} "
            "is needed.",
            code=codes.TOO_SMALL,
            min_width=rules.min_width,
            min_height=rules.min_height,
            actual_width=width,
            actual_height=height,
        )
    max_width, max_height = rules.max_width or width, rules.max_height or height
    if width > max_width or height > max_height:
        raise BadImage(
            f"The image is {width}x{height}; at most {max_width}x{max_height} is accepted.",
            code=codes.TOO_LARGE,
            max_width=max_width,
            max_height=max_height,
            actual_width=width,
            actual_height=height,
        )


def _enforce_limits(width: int, height: int, frames: int, job: Job) -> None:
    rules = job.rules
    if width * height > rules.max_pixels:
        raise BadImage(
            f"The image is {width}x{height}; at most {rules.max_pixels} pixels are accepted.",
            code=codes.TOO_MANY_PIXELS,
        )
    if frames > rules.max_frames:
        raise BadImage(
            f"The animation has {frames} frames; at most {rules.max_frames} are accepted.",
            code=codes.TOO_MANY_FRAMES,
        )
    if width * height * frames > rules.max_animation_pixels:
        raise BadImage(
            f"The animation has {width * height * frames} pixels over all frames; "
            f"at most {rules.max_animation_pixels} are accepted.",
            code=codes.TOO_MANY_PIXELS,
        )


def _decode_largest(
    job: Job, header: Any, loader: str, frames: int, width: int, height: int
) -> Any:
    """The one decode: shrink-on-load to the largest variant, upright, sRGB, 8-bit, in memory."""
    if loader not in ANIMATED_LOADERS or not job.rules.animated:
        frames = 1  # an AVIF sequence is decoded as its primary image (see `imaging.avif`)
    thumbnail = _shrink_on_load(job, header, loader, frames)
    colour = _colour_options(color_conversion(header))
    image = _resize_largest(thumbnail, job, frames, width, height, colour)
    if image.get("vips-loader") != loader:
        raise BadImage("The file does not match its detected type.")
    return _to_srgb8(image).copy_memory()


def _colour_options(conversion: ColorConversion) -> dict[str, str]:
    """`thumbnail`'s options that bring `conversion`'s source to sRGB through its profile."""
    return {"output_profile": "srgb"} if conversion in _ICC_CONVERSIONS else {}


def _resize_largest(
    thumbnail: Callable[..., Any],
    job: Job,
    frames: int,
    width: int,
    height: int,
    colour: dict[str, str],
) -> Any:
    """`thumbnail(width, **options)` called for the largest variant: the kind's crop, each
    frame of an animation cropped alike, never upscaled."""
    top = largest_of(job.rules.sizes).size
    if job.rules.crop == "square":
        side = min(top, width, height)
        if frames == 1:
            image = thumbnail(side, height=side, size="down", crop="attention", **colour)
        else:
            # `crop` would cut the whole frame strip at once: scale to cover, crop each frame.
            scale = side / min(width, height)
            image = thumbnail(
                math.ceil(width * scale), height=math.ceil(height * scale), size="down", **colour
            )
            image = _centre_crop_frames(image, frames)
    else:
        image = thumbnail(top, height=top, size="down", **colour)
    return image


def _shrink_on_load(job: Job, header: Any, loader: str, frames: int) -> Callable[..., Any]:
    """`thumbnail(width, **options)` for the source, decoding as few pixels as it can.

    libvips' `thumbnail` picks its own JPEG shrink and leaves a factor of 2 to Lanczos, so
    a 12 MP photo bound for 1024 px (a factor of 3.9) would be decoded at full size;
    `_dct_shrink` decodes it at half size instead.
    """
    if loader == "jpegload":
        top = largest_of(job.rules.sizes).size
        shrink = _dct_shrink(job.rules.crop, top, header.width, header.height)
        if shrink > 1:
            loaded = pyvips.Image.jpegload(
                job.source, shrink=shrink, access="sequential", fail_on="error"
            )
            return loaded.thumbnail_image  # type: ignore[no-any-return]
    if loader == "heifload":
        # `thumbnail(path)` would sniff the file again, and libvips knows no `avis` brand; it
        # would also take an embedded thumbnail large enough for the target, and that need
        # not show what the primary image shows. heifload has no shrink-on-load (libheif
        # decodes whole images), so the header already opened, with its `fail_on`, is it.
        return header.thumbnail_image  # type: ignore[no-any-return]
    # `fail_on` must be thumbnail's own option: in the filename's [options] it is overridden.
    source = f"{job.source}[n=-1]" if frames > 1 else job.source
    return partial(pyvips.Image.thumbnail, source, fail_on="error")


def _dct_shrink(crop: Crop, top: int, width: int, height: int) -> int:
    """The JPEG shrink-on-load factor (1, 2, 4 or 8) for a stored `width` x `height` bound
    for a largest variant of `top` px."""
    # Bounding the longest side or covering the shortest (square crop) does not depend on
    # the EXIF orientation, so the stored size will do.
    if crop == "square":
        factor = min(width, height) / min(top, width, height)
    else:
        factor = max(width, height) / top
    return next((s for s in (8, 4, 2) if factor / s >= _MIN_RESIZE_AFTER_DCT), 1)


def _centre_crop_frames(image: Any, frames: int) -> Any:
    frame_height = page_height(image)
    side = min(image.width, frame_height)
    left = (image.width - side) // 2
    top = (frame_height - side) // 2
    pages = [image.crop(left, p * frame_height + top, side, side) for p in range(frames)]
    joined = pyvips.Image.arrayjoin(pages, across=1).copy()
    joined.set_type(pyvips.GValue.gint_type, "page-height", side)
    return joined


def _to_srgb8(image: Any) -> Any:
    """8-bit sRGB (alpha kept): 16-bit PNGs, greyscale and odd spaces end up the same."""
    if image.interpretation != "srgb" or image.format != "uchar":
        image = image.colourspace("srgb")
    if image.format != "uchar":
        image = image.cast("uchar")
    return image
