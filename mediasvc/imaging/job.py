"""What crosses between the app and an image worker: plain, picklable data only.

`Job` in (paths, the sniffed type and the `ImageRules` of its kind), `Facts` out, or an
`ImageRejected` raised: `NotAccepted` (the type is not taken) or `BadImage` (damaged,
too large, too many frames). Nothing secret ever crosses: workers need none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from mediasvc.contract import codes
from mediasvc.contract.codes import Code
from mediasvc.imaging.variants import VARIANTS, Ladder

Crop = Literal["none", "square"]


@dataclass(frozen=True, slots=True)
class ImageRules:
    """How one kind of upload is checked and encoded.

    The defaults here are the service's defaults (`config.Settings` takes them from
    `DEFAULT_RULES`), so the pipeline, the bench and the tests start from the same rules.
    """

    crop: Crop = "none"
    output_format: str = "webp"
    quality: int = 80
    max_pixels: int = 60_000_000
    max_frames: int = 200
    # Over all frames: a 200-frame animation of 1000x1000 decodes 200 MP.
    max_animation_pixels: int = 64_000_000
    # Displayed size (after EXIF orientation) bounds; None: no bound but the pixel count.
    min_width: int = 1
    min_height: int = 1
    max_width: int | None = None
    max_height: int | None = None
    # False: an animation is kept as its first frame only (and its frames are not limited).
    animated: bool = True
    # WebP output: a graphic (PNG, GIF or lossless WebP, mostly flat) is encoded lossless
    # when that is no larger than lossy (`encode.write_variants`). False: always lossy.
    lossless_graphics: bool = True
    # The variants made, smallest first (`imaging.variants`).
    sizes: Ladder = VARIANTS
    # Formats each variant is also written in, beside `output_format` (`formats` in the
    # kinds file: ["webp", "avif"] is WebP output with AVIF alternates). Stills only: an
    # animation keeps its one animated WebP.
    alternates: tuple[str, ...] = ()


DEFAULT_RULES = ImageRules()


@dataclass(frozen=True, slots=True)
class Job:
    """What one upload asks of a worker."""

    source: str
    out_dir: str
    mime: str
    rules: ImageRules = DEFAULT_RULES
    # Cores the job may use for its encodes: 1 plus the workers the pool had idle when the
    # job started (`pool.ImagingPool.process`). Under load none are idle, so it is 1.
    threads: int = 1


@dataclass(frozen=True, slots=True)
class AlternateFile:
    """A variant written again in another format (`ImageRules.alternates`), same pixels."""

    path: str
    bytes: int
    mime: str


@dataclass(frozen=True, slots=True)
class VariantFile:
    """One written variant. `height` is per frame for animations."""

    name: str
    # The ladder's size it was made for (its longest side, unless the source was smaller).
    size: int
    path: str
    width: int
    height: int
    bytes: int
    mime: str
    alternates: tuple[AlternateFile, ...] = ()


# PDQ's own measure of how much there is to hash (0-100). Meta's guidance: below 50 the
# picture is too flat to tell apart from others (a plain colour, a few blocks), so such a
# hash neither blocks an upload nor is added to the blocklist by a takedown.
PDQ_MIN_QUALITY = 50


@dataclass(frozen=True, slots=True)
class Pdq:
    """A PDQ perceptual hash: 64 hex digits (bit 255 first, as Meta's tools print it) and
    PDQ's quality, 0-100 (`imaging.pdq`)."""

    hash: str
    quality: int

    @property
    def usable(self) -> bool:
        """Whether the hash is distinctive enough to match on."""
        return self.quality >= PDQ_MIN_QUALITY


@dataclass(frozen=True, slots=True)
class Facts:
    """What the pipeline learned and made. Width and height are as displayed (after EXIF).

    `frames` counts the source's frames. `thumbhash` (base64) and `dominant_color`
    (`#rrggbb`) describe the first frame as served; `processing` is `report.processing_report`.
    `pdq` is the decoded pixels' perceptual hash (`imaging.pdq`).
    """

    width: int
    height: int
    frames: int
    variants: tuple[VariantFile, ...]
    thumbhash: str
    dominant_color: str
    processing: dict[str, object]
    pdq: Pdq


class ImageRejected(Exception):
    """The input is not an image we will process; `problem` is the problem code for the
    client (`code` its string)."""

    default: ClassVar[Code] = codes.INVALID_IMAGE

    def __init__(
        self, detail: str, *, code: Code | None = None, reason: str = "", **extra: int
    ) -> None:
        super().__init__(detail, code, reason)
        self.problem = code or self.default
        self.code = self.problem.code
        self.detail = detail
        self.reason = reason  # libvips' own words, for the log only: they may name paths
        self.extra = extra  # numbers that help the client act (`min_width`, `actual_width`)

    def __reduce__(self) -> tuple[type[ImageRejected], tuple[str], dict[str, object]]:
        # Keyword-only arguments do not survive pickling by default; workers raise these.
        state: dict[str, object] = {
            "problem": self.problem,
            "code": self.code,
            "reason": self.reason,
            "extra": self.extra,
        }
        return type(self), (self.detail,), state


class NotAccepted(ImageRejected):
    """The file's type is not one this service (or this kind) takes."""

    default = codes.UNSUPPORTED_MEDIA_TYPE


class BadImage(ImageRejected):
    """The file is of an accepted type but damaged, too large or has too many frames."""
