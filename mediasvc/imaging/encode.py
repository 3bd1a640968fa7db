"""Encode the variants: each size resized from the next larger one and written in the
kind's output format, with no metadata (`keep="none"` or Pillow's equivalent: no EXIF, GPS,
XMP, IPTC, ICC, comments or text chunks).

- **WebP** (the default): still variants through Pillow's binding of libwebp
  (`encode_still`), animations through libvips, which writes their frames and timing
  itself. libvips and Pillow link the same libwebp and, given the same settings, write
  byte-identical files; Pillow's path to the encoder takes 10-15% less time for them
  (docs/performance.md), and encoding is most of an upload's work. Pillow only ever gets
  pixels that libvips decoded, checked and resized: it never parses an upload.
- **Graphics**: each variant of a graphic (a mostly flat still stored losslessly) is
  encoded lossy, as a palette (quantised to fewer colours, then lossless) and, where it
  has at most 256 colours, lossless; the smallest file is kept (`write_variants`), a
  palette only where its pixels stay within `PALETTE_MIN_PSNR_DB` of the variant's.
- **JPEG and AVIF** keep the first frame only; JPEG flattens alpha on white.
- **AVIF beside WebP** (`ImageRules.alternates`): each variant of a still is also written
  as AVIF, from the pixels its WebP got, at settings chosen for that (`AVIF_BESIDE_WEBP_*`),
  and kept only where it is smaller than the WebP (graphics stored lossless and tiny files
  are not). An animation keeps its animated WebP only: AVIF here holds one frame.

docs/performance.md has the measurements behind each setting.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pyvips

# Imported with the module, as the worker starts and before its sandbox closes: Pillow
# would otherwise import its plugins at the first save (or open).
from PIL import Image, PngImagePlugin, WebPImagePlugin  # noqa: F401 - registers the codecs

from mediasvc.imaging.formats import OUTPUT_FORMATS, OutputFormat
from mediasvc.imaging.frames import first_frame, page_height
from mediasvc.imaging.job import AlternateFile, Job, VariantFile
from mediasvc.imaging.report import Encoding
from mediasvc.imaging.variants import VariantSpec, largest_of

T = TypeVar("T")

# libwebp's `method` (0 fast .. 6 small); see docs/performance.md for the measured trade-off.
WEBP_EFFORT = 4
# Content-aware WebP (`write_variants`): a still stored losslessly (PNG, GIF, lossless
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
# A variant of a graphic with at most this many colours is also tried lossless: libwebp
# stores it as a palette, exactly. With more (every edge resampled from a larger size adds
# colours) lossless was 1.5-6x the palette trial's bytes on the bench's graphics, never
# smaller, and it costs as much as the lossy encode: not tried.
PALETTE_COLOURS = 256
# The palette trial: libimagequant (through libvips' PNG writer, as pngquant uses it) picks
# the fewest colours, at most 256, that reach this quality (0..100, pngquant's `--quality`
# maximum), without dithering (noise that lossless coding pays for), and the result is
# written lossless. It is kept only where it is the smaller file and its pixels are within
# PALETTE_MIN_PSNR_DB of the variant's: a root-mean-square error of 2 levels of 255, over
# the colours as shown (premultiplied by alpha). On the bench's graphics the 26 palettes
# kept scored 72-95 in SSIMULACRA2, each 4.6 to 76 points above lossy q80 of the same
# variant, in 0.36-0.97 of its bytes (docs/performance.md).
PALETTE_QUALITY = 80
PALETTE_MIN_PSNR_DB = 42.0
# A WebP still has at most VP8X, ICCP and ALPH before its image chunk; a longer walk is
# a hostile or odd file, and stopping only means lossy.
_WEBP_MAX_CHUNKS = 8
# libaom's speed trade-off for AVIF output, as libvips names it (0 fast .. 9 small). At 2 a
# 1024 px variant takes about 0.2 s and is as small as Pillow's default (speed 6); libvips'
# default, 4, takes 2.6 s for 1.5% fewer bytes (docs/performance.md).
AVIF_EFFORT = 2
# AVIF beside each WebP variant (`ImageRules.alternates`), chosen by `python -m
# bench.avif_sweep` over 8 photos (docs/decisions.md, "AVIF encoder settings"): the fewest
# bytes at a mean SSIMULACRA2 no lower than WebP q80 method 4's, within 1.5x the WebP-only
# job time. 0.88 of WebP's bytes at +0.06, job time 1.41x. Effort 1 would write 0.82 but
# takes 2.1x; the small variants need more quality than the large to keep up with WebP.
AVIF_BESIDE_WEBP_QUALITY = 60
AVIF_BESIDE_WEBP_SMALL_QUALITY = 70  # variants whose longest side is at most AVIF_SMALL_SIZE px
AVIF_SMALL_SIZE = 256
AVIF_BESIDE_WEBP_EFFORT = 0  # libaom cpu-used 9
AVIF_BESIDE_WEBP_SUBSAMPLE = "on"  # 4:2:0: 4:4:4 costs 1.2-1.3x the encode time, 1.03x the bytes
# What `imaging.decode` leaves: 8-bit sRGB, with alpha or without.
_MODES = {3: "RGB", 4: "RGBA"}


# One variant's encodes in the output format, in flight: lossy last, preferred only when
# smaller. None: the palette trial was refused (`_palette_webp`).
_Trials = list[Future[tuple[Encoding, bytes | None]]]


@dataclass(frozen=True, slots=True)
class Encoded:
    """The variants written (in ladder order, smallest first) and how: the smallest one's image in
    memory (for the placeholder), the frames each holds, the largest one's `encoding`,
    and which are lossless."""

    variants: tuple[VariantFile, ...]
    smallest: Any
    frames: int
    encoding: Encoding
    lossless_variants: list[str]


def _for_output(image: Any, output: OutputFormat) -> Any:
    """The largest variant as `output` can hold it: first frame only for stills, no alpha."""
    if not output.animated:
        image = first_frame(image)
    if not output.alpha and image.hasalpha():
        image = image.flatten(background=[255, 255, 255])
    return image


def write_variants(largest: Any, job: Job, loader: str) -> Encoded:
    """Encode every variant into `job.out_dir`, from `largest` (the decoded largest variant;
    `loader` read the source) down, each resized from the next larger.

    Each variant of a graphic (`_is_graphic`) is encoded lossy and `_graphic_ways` (as a
    palette and, with few colours, lossless), and the smallest file is kept, lossless then
    palette on a tie: no variant is ever larger than lossy alone would write it. Once
    lossy wins at one size the smaller sizes are encoded lossy only: resampling
    turns every edge into new colours, so a graphic only gets harder to store without loss
    as it shrinks (on the bench's graphics, lossy never lost again once it had won).
    Photos, animations and JPEG/AVIF output are encoded once, lossy.

    With "avif" in `job.rules.alternates`, each variant of a still is also encoded as AVIF
    (`_avif_beside_webp`) from the same pixels, written beside it and listed in its
    `alternates`; an animation gets none. The output format's files do not change.

    With `job.threads` > 1 (the pool had cores idle when the job started) the encodes run
    side by side in as many threads: each libwebp encode is single-threaded and libvips
    releases the GIL while it runs, so the largest variant's encode, most of the work,
    overlaps the resizes and encodes of the smaller ones (and the AVIF encodes, when asked).
    """
    output = OUTPUT_FORMATS[job.rules.output_format]
    full = _for_output(largest, output)
    encoder = ThreadPoolExecutor(job.threads) if job.threads > 1 else None
    submit = encoder.submit if encoder is not None else _done
    graphic = output.name == "webp" and job.rules.lossless_graphics
    avif = OUTPUT_FORMATS["avif"]
    # An animation keeps its one animated file: an AVIF alternate would hold one frame.
    with_avif = avif.name in job.rules.alternates and page_height(full) == full.height
    made: list[tuple[VariantSpec, Any, _Trials, list[Future[bytes]]]] = []
    ladder = job.rules.sizes
    top = largest_of(ladder)
    try:
        image = full
        # Largest first, each derived from the next larger one.
        for spec in sorted(ladder, key=lambda v: v.size, reverse=True):
            if spec is top:
                graphic = graphic and _is_graphic(full, job, loader)
            else:
                # Materialised, so the next smaller one starts from these pixels, not `full`.
                image = image.thumbnail_image(spec.size, height=spec.size, size="down")
                image = image.copy_memory()
            ways: list[Encoding] = [*_graphic_ways(image), "lossy"] if graphic else ["lossy"]
            trials = [submit(_encoded, image, output, job.rules.quality, way) for way in ways]
            alternates = [submit(_avif_beside_webp, image)] if with_avif else []
            made.append((spec, image, trials, alternates))
            if graphic and _smallest(trials)[0] == "lossy":
                graphic = False  # and it would lose at every smaller size
        written, encodings = {}, {}
        for spec, variant, trials, alternates in made:
            encodings[spec.name], data = _smallest(trials)
            path = Path(job.out_dir) / output.filename(spec.name)
            path.write_bytes(data)
            beside = []
            for alternate in alternates:
                avif_data = alternate.result()
                if len(avif_data) >= len(data):
                    # A graphic kept lossless, or a tiny file under AVIF's fixed overhead:
                    # nginx answers the WebP when no AVIF is stored, so none is.
                    continue
                avif_path = Path(job.out_dir) / avif.filename(spec.name)
                avif_path.write_bytes(avif_data)
                beside.append(AlternateFile(str(avif_path), len(avif_data), avif.mime))
            written[spec.name] = VariantFile(
                name=spec.name,
                size=spec.size,
                path=str(path),
                width=variant.width,
                height=page_height(variant),
                bytes=len(data),
                mime=output.mime,
                alternates=tuple(beside),
            )
    finally:
        if encoder is not None:
            encoder.shutdown(wait=True, cancel_futures=True)
    return Encoded(
        variants=tuple(written[spec.name] for spec in ladder),
        smallest=image,
        frames=full.height // page_height(full),
        encoding=encodings[top.name],
        lossless_variants=[spec.name for spec in ladder if encodings[spec.name] == "lossless"],
    )


def _done(fn: Callable[..., T], *args: Any) -> Future[T]:
    """`fn(*args)` run now, as a finished future: the one-thread path of `write_variants`."""
    future: Future[T] = Future()
    try:
        future.set_result(fn(*args))
    except BaseException as exc:
        future.set_exception(exc)
    return future


def _smallest(trials: _Trials) -> tuple[Encoding, bytes]:
    """The smallest of the encodes; on a tie the first (the graphic way, when it was tried)."""
    made = [(encoding, data) for encoding, data in (t.result() for t in trials) if data is not None]
    return min(made, key=lambda found: len(found[1]))


def _graphic_ways(image: Any) -> list[Encoding]:
    """How a variant of a graphic is tried beside lossy, in order of preference on a tie:
    as a palette, and first lossless where it has at most `PALETTE_COLOURS` colours (a
    palette of fewer colours may still be smaller: a sprite resized to 256 px kept 108
    colours, in 1 328 bytes lossless against 518 as a palette)."""
    # Pillow stops counting one past the limit: about 1 ms for a resized graphic.
    few = _pillow(image).getcolors(PALETTE_COLOURS) is not None
    return ["lossless", "palette"] if few else ["palette"]


def _is_graphic(image: Any, job: Job, loader: str) -> bool:
    """Whether the largest variant is a graphic: a still, stored losslessly, mostly flat."""
    if page_height(image) != image.height:
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
) -> tuple[Encoding, bytes | None]:
    """`image` as a file of the `output` format, in memory (None: a palette refused)."""
    data: bytes | None
    if output.name == "webp" and encoding == "palette":
        return _palette_webp(image)
    if output.name == "webp" and encoding == "lossless":
        # Lossless is tried for stills only (`_is_graphic`). Its quality is libwebp's effort:
        # the kind's quality does not apply.
        data = encode_still(
            image, quality=WEBP_LOSSLESS_EFFORT, effort=WEBP_LOSSLESS_METHOD, lossless=True
        )
    elif output.name == "webp" and page_height(image) == image.height:
        data = encode_still(image, quality=quality, effort=WEBP_EFFORT)
    elif output.name == "webp":
        data = image.webpsave_buffer(Q=quality, keep="none", effort=WEBP_EFFORT)
    elif output.name == "jpeg":
        data = image.jpegsave_buffer(Q=quality, keep="none", optimize_coding=True, interlace=True)
    else:
        data = encode_avif(image, quality=quality, effort=AVIF_EFFORT)
    return encoding, data


def _palette_webp(image: Any) -> tuple[Encoding, bytes | None]:
    """A still `image` quantised to at most 256 colours (`PALETTE_QUALITY`), as lossless WebP.

    The file is None when quantising moved the pixels further than `PALETTE_MIN_PSNR_DB`
    allows, and "lossless" when it moved none that show (colours under full transparency
    counted as distinct). libvips quantises only when saving a palette PNG; Pillow reads
    that back (a file made here from pixels libvips decoded: Pillow parses no upload).
    """
    indexed = image.pngsave_buffer(
        palette=True, Q=PALETTE_QUALITY, dither=0.0, compression=0, keep="none"
    )
    mode = _MODES[image.bands]
    with Image.open(io.BytesIO(indexed), formats=["PNG"]) as png:
        pixels = png.convert(mode)
    quantised = pyvips.Image.new_from_memory(
        pixels.tobytes(), image.width, image.height, image.bands, "uchar"
    )
    psnr = _psnr(image, quantised)
    if psnr < PALETTE_MIN_PSNR_DB:
        return "palette", None
    data = _webp(pixels, quality=WEBP_LOSSLESS_EFFORT, effort=WEBP_LOSSLESS_METHOD, lossless=True)
    return ("lossless" if psnr == math.inf else "palette"), data


def _psnr(image: Any, other: Any) -> float:
    """The peak signal-to-noise ratio of `other` against `image`, in dB (inf: the same).

    With alpha, over the colours premultiplied by it: what shows over any background, so
    the colour a fully transparent pixel holds does not count.
    """
    if image.hasalpha():
        image, other = image.premultiply(), other.premultiply()
    difference = image.cast("float") - other.cast("float")
    mean_square = float((difference * difference).avg())
    return math.inf if mean_square == 0 else 10 * math.log10(255**2 / mean_square)


def _avif_beside_webp(image: Any) -> bytes:
    """`image` (a still) as the AVIF written beside its WebP variant."""
    # By the pixels the variant has, not its ladder size: a small source's every variant is
    # small, and it is at small sizes that AVIF needs the higher quality to keep up.
    small = max(image.width, image.height) <= AVIF_SMALL_SIZE
    quality = AVIF_BESIDE_WEBP_SMALL_QUALITY if small else AVIF_BESIDE_WEBP_QUALITY
    return encode_avif(
        image, quality=quality, effort=AVIF_BESIDE_WEBP_EFFORT, subsample=AVIF_BESIDE_WEBP_SUBSAMPLE
    )


def encode_avif(image: Any, *, quality: int, effort: int, subsample: str = "auto") -> bytes:
    """8-bit sRGB `image` (pyvips, one frame) as an AV1 AVIF file with no metadata.

    `effort` and `subsample` are libvips' (`effort` e is libaom's cpu-used 9 - e;
    `subsample` "on" is 4:2:0, "off" 4:4:4, "auto" 4:2:0 below quality 90).
    """
    data: bytes = image.heifsave_buffer(
        Q=quality, keep="none", compression="av1", effort=effort, subsample_mode=subsample
    )
    return data


def encode_still(image: Any, *, quality: int, effort: int, lossless: bool = False) -> bytes:
    """One frame of 8-bit sRGB `image` (pyvips) as a WebP file with no metadata.

    `quality` is libwebp's: the visual quality when lossy, how hard it tries when lossless;
    `effort` is its `method` (0 fast .. 6 small), libvips' `effort`.
    """
    return _webp(_pillow(image), quality=quality, effort=effort, lossless=lossless)


def _pillow(image: Any) -> Image.Image:
    """One frame of 8-bit sRGB `image` (pyvips) as a Pillow image of the same pixels."""
    mode = _MODES[image.bands]
    return Image.frombuffer(
        mode, (image.width, image.height), image.write_to_memory(), "raw", mode, 0, 1
    )


def _webp(pixels: Image.Image, *, quality: int, effort: int, lossless: bool) -> bytes:
    """Pillow `pixels` as a WebP file: no metadata is ever passed to the writer."""
    out = io.BytesIO()
    pixels.save(out, format="WEBP", quality=quality, method=effort, lossless=lossless)
    return out.getvalue()
