"""The pure imaging function: one source file in, five clean variant files and facts out.

Runs in worker processes (see `imaging.pool`). Only plain picklable data crosses in or out.
Order of work, so hostile files cost little:

1. Open with the one loader that matches the sniffed type and read the header only:
   pixel count, frame count and orientation are checked before any pixel is decoded.
2. One decode: shrink-on-load straight to the largest variant (for JPEG, libjpeg's DCT
   scaling, see `_dct_shrink`), then one Lanczos resize, the EXIF orientation, and sRGB:
   through the ICC profile only when the file carries one that is not sRGB.
3. Each smaller variant is derived from the next larger one in memory; the placeholder
   (`imaging.placeholder`) comes from the smallest, and the processing report
   (`imaging.report`) from the header already read.
4. Encoders write with `keep="none"`: no EXIF, GPS, XMP, IPTC, ICC, comments or text chunks.

HEIC/HEIF (with the optional extra) is decoded by pillow-heif rather than a libvips loader,
in the same order: its container's header is checked against the same limits, then one
decode hands upright 8-bit pixels to libvips for the same resize (`imaging.heif`).

docs/performance.md has the measurements behind each of these choices.
"""

from __future__ import annotations

import ctypes
import errno
import importlib
import math
import os
import resource
import signal
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import pyvips

from mediasvc.contract import codes
from mediasvc.imaging import heifgrid
from mediasvc.imaging.avif import avif_sequence
from mediasvc.imaging.formats import (
    ANIMATED_LOADERS,
    HEIF_AVAILABLE,
    HEIF_DECODER,
    LOADERS,
    OUTPUT_FORMATS,
    VIPS_LOADERS,
    OutputFormat,
)
from mediasvc.imaging.gif import GifStructure, walk_gif
from mediasvc.imaging.job import (
    BadImage,
    Crop,
    Facts,
    ImageRules,
    Job,
    NotAccepted,
    VariantFile,
)
from mediasvc.imaging.placeholder import dominant_color, rgba_pixels, thumbhash
from mediasvc.imaging.report import (
    ColorConversion,
    Encoding,
    color_conversion,
    heif_color_conversion,
    heif_processing_report,
    processing_report,
)
from mediasvc.imaging.sandbox import confine_worker
from mediasvc.imaging.variants import LARGEST, VARIANTS, VariantSpec
from mediasvc.imaging.webp import encode_still

T = TypeVar("T")

# Orientations 5-8 turn the image a quarter, so displayed width and height swap.
_TRANSPOSING_ORIENTATIONS = frozenset({5, 6, 7, 8})
# Variants are derived and encoded largest first, each from the next larger one.
_LARGEST_FIRST = sorted(VARIANTS, key=lambda v: v.size, reverse=True)
# libwebp's `method` (0 fast .. 6 small); see docs/performance.md for the measured trade-off.
WEBP_EFFORT = 4
# Content-aware WebP (`_write_variants`): a still stored losslessly (PNG, GIF, lossless
# WebP) whose largest variant has at least this share of horizontally adjacent visible
# pixels exactly equal is a graphic, and is tried lossless as well as lossy. Flat areas
# survive a Lanczos resize exactly: the bench's screenshot, chart, logo and pixel art keep
# 86-99% of such pairs at 1024 px, its photos (grain, gradients, a photo saved as PNG)
# under 5% (docs/performance.md).
GRAPHIC_MIN_FLAT_SHARE = 0.5
_LOSSLESS_LOADERS = frozenset({"pngload", "gifload"})
# libwebp's lossless `quality` is how hard it tries (0 fast .. 100 small); 75 is cwebp's.
WEBP_LOSSLESS_EFFORT = 75
# libwebp's `method` for lossless: at 2 the bench's graphics at 1024 px encode 2-3.6x faster
# than at 4 (screenshot 43 against 80 ms) for -0.7% to +0.8% bytes (docs/performance.md).
WEBP_LOSSLESS_METHOD = 2
# A WebP still has at most VP8X, ICCP and ALPH before its image chunk; a longer walk is
# a hostile or odd file, and stopping only means lossy.
_WEBP_MAX_CHUNKS = 8
# libaom's speed trade-off for AVIF output, as libvips names it (0 fast .. 9 small). At 2 a
# 1024 px variant takes about 0.2 s and is as small as Pillow's default (speed 6); libvips'
# default, 4, takes 2.6 s for 1.5% fewer bytes (docs/performance.md).
AVIF_EFFORT = 2
# libvips threads per worker. The pool runs one worker per core, so more threads would only
# compete with the other workers; and JPEG decoding, most of the work before the encoders
# (which are single-threaded anyway), does not parallelise.
VIPS_CONCURRENCY = 1
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


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
# glibc gives threads that allocate their own malloc arenas, and a process keeps the pages
# of every arena it used: with the encoder threads (`Job.threads`) beside libvips' own, a
# service worker grew to 104 MB after a few dozen jobs; with two arenas it stays near 60 MB,
# for no measurable time (docs/performance.md).
_MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # from <malloc.h>
# Less free space than this where variants are written means a failed save was the disk's fault.
_MIN_FREE_BYTES = 1024 * 1024


def init_worker(
    memory_limit_mb: int | None = None,
    parent_pid: int | None = None,
    *,
    writable: str | None = None,
    allow_unconfined: bool = False,
) -> None:
    """Harden and size libvips in a fresh worker process.

    Only the loaders on the allow-list stay callable, so even a sniffing mistake can never
    reach SVG, PDF, matload or any other loader libvips ships. With `memory_limit_mb`, the
    process's address space is capped: a runaway decode fails its own job, not the host.
    With `parent_pid`, the worker dies with that parent, however the parent ends. Then the
    process is confined for good (`sandbox.confine_worker`): no network, no other process,
    no child process; with `writable`, no file-system change outside that directory.
    Where the HEIF extra is installed, its decoder is loaded last, already confined.
    """
    if parent_pid is not None:
        _die_with_parent(parent_pid)
    _limit_malloc_arenas()
    confine_worker(writable=writable, allow_unconfined=allow_unconfined)
    if memory_limit_mb is not None:
        limit = memory_limit_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    pyvips.cache_set_max(0)  # every job reads a new file: the operation cache only holds memory
    pyvips.concurrency_set(VIPS_CONCURRENCY)
    pyvips.block_untrusted_set(True)
    pyvips.operation_block_set("VipsForeignLoad", True)
    for loader in VIPS_LOADERS:
        # By type name: `jpegload` is VipsForeignLoadJpegFile, `gifload` VipsForeignLoadNsgifFile.
        type_name = pyvips.type_name(pyvips.type_find("VipsOperation", loader))
        pyvips.operation_block_set(type_name, False)
    if HEIF_AVAILABLE:
        # pillow-heif and libheif are loaded by every worker, not by its first HEIC job.
        importlib.import_module("mediasvc.imaging.heif")


def _die_with_parent(parent_pid: int) -> None:
    # Linux: the kernel sends SIGKILL to this process when its parent exits. Without it, a
    # SIGKILLed app would leave its workers behind, adopted by init.
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent_pid:  # the parent died before the prctl took effect
        os._exit(1)


def _limit_malloc_arenas() -> None:
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is not None:  # glibc; other C libraries size their heaps their own way
        mallopt(_M_ARENA_MAX, _MALLOC_ARENAS)


def ping() -> int:
    """A no-op job: proves a worker can start and run libvips."""
    return int(pyvips.version(0))


@dataclass(frozen=True, slots=True)
class _Decoded:
    """The largest variant in memory (upright, sRGB, 8-bit) and what the header said.

    `report(frames=...)` is the processing report, given the frames the variants hold.
    """

    image: Any
    width: int
    height: int
    frames: int
    report: Callable[..., dict[str, object]]


def process(job: Job) -> Facts:
    """Turn `job.source` into the variant files in `job.out_dir`, or raise `ImageRejected`."""
    loader = LOADERS.get(job.mime)
    if loader is None:
        raise NotAccepted(f"{job.mime} is not accepted")
    output = OUTPUT_FORMATS[job.rules.output_format]
    gif = walk_gif(Path(job.source).read_bytes()) if loader == "gifload" else None
    if gif is not None and not gif.complete:
        raise BadImage("The GIF is truncated or damaged.")
    try:
        decoded = _decode_heif(job) if loader == HEIF_DECODER else _decode_vips(job, loader, gif)
        full = _for_output(decoded.image, output)
        variants, smallest, encoded = _write_variants(full, job, output, loader)
        small_width, small_height, rgba = rgba_pixels(_first_frame(smallest))
    except pyvips.Error as exc:
        if _disk_full(job.out_dir):
            # libvips reports a failed write like any other error; free space tells them apart.
            raise OSError(errno.ENOSPC, "no space left for variants", job.out_dir) from None
        raise BadImage("The file is damaged or not a decodable image.", reason=str(exc)) from None
    return Facts(
        width=decoded.width,
        height=decoded.height,
        frames=decoded.frames,
        variants=tuple(variants),
        thumbhash=thumbhash(small_width, small_height, rgba),
        dominant_color=dominant_color(rgba),
        processing=decoded.report(
            frames=full.height // _page_height(full),
            encoding=encoded.encoding,
            lossless_variants=encoded.lossless_variants,
        ),
    )


def _decode_vips(job: Job, loader: str, gif: GifStructure | None) -> _Decoded:
    """Header, limits and the one decode, all by the libvips `loader`."""
    header = _open_header(job.source, loader)
    width, height, frames = _check_header(header, loader, job)
    image = _decode_largest(job, header, loader, frames, width, height)
    report = partial(processing_report, header, loader, job.source, gif=gif)
    return _Decoded(image, width, height, frames, report)


def _decode_heif(job: Job) -> _Decoded:
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
    return _Decoded(_to_srgb8(largest).copy_memory(), width, height, 1, report)


def _disk_full(directory: str) -> bool:
    stats = os.statvfs(directory)
    return stats.f_bavail * stats.f_frsize < _MIN_FREE_BYTES


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
    if job.rules.crop == "square":
        side = min(LARGEST.size, width, height)
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
        image = thumbnail(LARGEST.size, height=LARGEST.size, size="down", **colour)
    return image


def _shrink_on_load(job: Job, header: Any, loader: str, frames: int) -> Callable[..., Any]:
    """`thumbnail(width, **options)` for the source, decoding as few pixels as it can.

    libvips' `thumbnail` picks its own JPEG shrink and leaves a factor of 2 to Lanczos, so
    a 12 MP photo bound for 1024 px (a factor of 3.9) would be decoded at full size;
    `_dct_shrink` decodes it at half size instead.
    """
    if loader == "jpegload":
        shrink = _dct_shrink(job.rules.crop, header.width, header.height)
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


def _dct_shrink(crop: Crop, width: int, height: int) -> int:
    """The JPEG shrink-on-load factor (1, 2, 4 or 8) for a stored `width` x `height`."""
    # Bounding the longest side or covering the shortest (square crop) does not depend on
    # the EXIF orientation, so the stored size will do.
    if crop == "square":
        factor = min(width, height) / min(LARGEST.size, width, height)
    else:
        factor = max(width, height) / LARGEST.size
    return next((s for s in (8, 4, 2) if factor / s >= _MIN_RESIZE_AFTER_DCT), 1)


def _centre_crop_frames(image: Any, frames: int) -> Any:
    page_height = _page_height(image)
    side = min(image.width, page_height)
    left = (image.width - side) // 2
    top = (page_height - side) // 2
    pages = [image.crop(left, p * page_height + top, side, side) for p in range(frames)]
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


def _page_height(image: Any) -> int:
    return int(image.get("page-height")) if image.get_typeof("page-height") else image.height


def _first_frame(image: Any) -> Any:
    if _page_height(image) == image.height:
        return image
    frame = image.crop(0, 0, image.width, _page_height(image)).copy()
    frame.remove("page-height")
    return frame


def _for_output(image: Any, output: OutputFormat) -> Any:
    """The largest variant as `output` can hold it: first frame only for stills, no alpha."""
    if not output.animated:
        image = _first_frame(image)
    if not output.alpha and image.hasalpha():
        image = image.flatten(background=[255, 255, 255])
    return image


def _write_variants(
    full: Any, job: Job, output: OutputFormat, loader: str
) -> tuple[list[VariantFile], Any, Encoded]:
    """Encode every variant, each resized from the next larger; the files, the smallest, and
    how they were encoded.

    A graphic (`_is_graphic`) has its largest variant encoded lossless as well as lossy, and
    lossless is kept when it is no larger. Only then are the smaller variants tried both ways
    too, each keeping the smaller file: resampling turns every edge into new colours, so a
    resized graphic often comes out smaller lossy, and one that lost lossless at 1024 px loses
    it at every smaller size. Photos, animations and JPEG/AVIF output are encoded once.

    With `job.threads` > 1 (the pool had cores idle when the job started) the encodes run
    side by side in as many threads: each libwebp encode is single-threaded and libvips
    releases the GIL while it runs, so the largest variant's encode, most of the work,
    overlaps the resizes and encodes of the four smaller ones.
    """
    encoder = ThreadPoolExecutor(job.threads) if job.threads > 1 else None
    submit = encoder.submit if encoder is not None else _done
    wanted = output.name == "webp" and job.rules.lossless_graphics
    choices: tuple[Encoding, ...] = ("lossless", "lossy") if wanted else ("lossy",)
    made: list[tuple[VariantSpec, Any, list[Future[tuple[Encoding, bytes]]]]] = []
    try:
        image = full
        for spec in _LARGEST_FIRST:
            if spec is LARGEST:
                if len(choices) > 1 and not _is_graphic(full, job, loader):
                    choices = ("lossy",)
            else:
                # Materialised, so the next smaller one starts from these pixels, not `full`.
                image = image.thumbnail_image(spec.size, height=spec.size, size="down")
                image = image.copy_memory()
            quality = job.rules.quality
            trials = [submit(_encoded, image, output, quality, choice) for choice in choices]
            if spec is LARGEST and len(trials) > 1 and _smallest(trials)[0] == "lossy":
                choices = ("lossy",)  # lossless lost where it stands the best chance
            made.append((spec, image, trials))
        written, encodings = {}, {}
        for spec, variant, trials in made:
            encodings[spec.name], data = _smallest(trials)
            path = Path(job.out_dir) / f"{spec.name}{output.extension}"
            path.write_bytes(data)
            written[spec.name] = VariantFile(
                name=spec.name,
                path=str(path),
                width=variant.width,
                height=_page_height(variant),
                bytes=len(data),
                mime=output.mime,
            )
    finally:
        if encoder is not None:
            encoder.shutdown(wait=True, cancel_futures=True)
    variants = [written[spec.name] for spec in VARIANTS]
    return variants, image, Encoded(encodings[LARGEST.name], _lossless(encodings))


@dataclass(frozen=True, slots=True)
class Encoded:
    """How the variants were encoded: the largest one's `encoding`, and which are lossless."""

    encoding: Encoding
    lossless_variants: list[str]


def _lossless(encodings: dict[str, Encoding]) -> list[str]:
    return [spec.name for spec in VARIANTS if encodings[spec.name] == "lossless"]


def _done(fn: Callable[..., T], *args: Any) -> Future[T]:
    """`fn(*args)` run now, as a finished future: the one-thread path of `_write_variants`."""
    future: Future[T] = Future()
    try:
        future.set_result(fn(*args))
    except BaseException as exc:
        future.set_exception(exc)
    return future


def _smallest(trials: list[Future[tuple[Encoding, bytes]]]) -> tuple[Encoding, bytes]:
    """The smallest of the encodes; on a tie the first (lossless, when it was tried)."""
    return min((trial.result() for trial in trials), key=lambda found: len(found[1]))


def _is_graphic(image: Any, job: Job, loader: str) -> bool:
    """Whether the largest variant is a graphic: a still, stored losslessly, mostly flat."""
    if _page_height(image) != image.height:
        return False  # an animation: two encodes of every frame would double a long job
    stored_lossless = loader in _LOSSLESS_LOADERS or (
        loader == "webpload" and _webp_is_lossless(job.source)
    )
    return stored_lossless and _flat_share(image) >= GRAPHIC_MIN_FLAT_SHARE


def _flat_share(image: Any) -> float:
    """The share of horizontally adjacent visible pixel pairs that are equal in every band.

    Pairs fully transparent on both sides do not count: a cut-out photo on transparency is
    not a graphic for its empty background.
    """
    if image.width < 2:
        return 0.0
    left = image.crop(0, 0, image.width - 1, image.height)
    right = image.crop(1, 0, image.width - 1, image.height)
    equal = (left == right).bandand()
    if not image.hasalpha():
        return float(equal.avg()) / 255
    alpha = image.bands - 1
    visible = (left[alpha] > 0) | (right[alpha] > 0)
    shown = float(visible.avg())
    return float((equal & visible).avg()) / shown if shown else 1.0


def _webp_is_lossless(source: str) -> bool:
    """Whether a WebP file's image is VP8L (lossless), from its chunk headers alone.

    An extended file (VP8X) may carry ICCP and ANIM before the image; ALPH comes only before
    a lossy VP8 image, ANMF only in animations. Anything malformed is False (lossy).
    """
    with open(source, "rb") as file:
        if file.read(12)[8:] != b"WEBP":
            return False
        for _ in range(_WEBP_MAX_CHUNKS):
            head = file.read(8)
            if len(head) < 8 or head[:4] in (b"VP8 ", b"ALPH", b"ANMF"):
                return False
            if head[:4] == b"VP8L":
                return True
            size = int.from_bytes(head[4:], "little")
            file.seek(size + (size & 1), os.SEEK_CUR)  # chunks are padded to even sizes
    return False


def _encoded(
    image: Any, output: OutputFormat, quality: int, encoding: Encoding
) -> tuple[Encoding, bytes]:
    """`image` as a file of the `output` format, in memory."""
    data: bytes
    if output.name == "webp" and encoding == "lossless":
        # Lossless is tried for stills only (`_is_graphic`). Its quality is libwebp's effort:
        # the kind's quality does not apply.
        data = encode_still(
            image, quality=WEBP_LOSSLESS_EFFORT, effort=WEBP_LOSSLESS_METHOD, lossless=True
        )
    elif output.name == "webp" and _page_height(image) == image.height:
        data = encode_still(image, quality=quality, effort=WEBP_EFFORT)
    elif output.name == "webp":
        data = image.webpsave_buffer(Q=quality, keep="none", effort=WEBP_EFFORT)
    elif output.name == "jpeg":
        data = image.jpegsave_buffer(Q=quality, keep="none", optimize_coding=True, interlace=True)
    else:
        data = image.heifsave_buffer(Q=quality, keep="none", compression="av1", effort=AVIF_EFFORT)
    return encoding, data
