"""`python -m bench.avif_sweep`: the AVIF encoder settings, chosen from measurements.

Not part of `make bench`: 75 settings x 8 photos took 10 minutes on 2 cores shared with
other test runs (`--quality`, `--effort`, `--small-boost` narrow the grid).

Issue 28 writes each variant as AVIF beside today's WebP, and asks for settings that
give an equal or better SSIMULACRA2 than the WebP variant on average over a photo set, in
fewer bytes, for at most 1.5x the WebP-only job time. Over the photo set (`bench.photos`
plus the bench's inputs: the 12 MP photo, the RGBA cut-out, the CMYK JPEG) this:

1. makes each photo's five variants as the pipeline does (`imaging.decode`'s shrink-on-load
   to 1024 px, then each smaller one resized from the next larger);
2. encodes them as WebP exactly as `imaging.encode` does (Pillow, quality 80, method 4), and
   as AVIF (libvips `heifsave`, av1) over the grid of quality x effort x chroma;
3. measures the bytes of all five variants, SSIMULACRA2 (the PyPI `ssimulacra2` package) of
   the 1024 and 256 px variants against the pixels the encoder was given, and the CPU time
   of the five encodes (the service's workers run libvips, and so libaom, on one thread);
4. picks the setting with the fewest bytes whose mean SSIMULACRA2 is at least WebP's and
   whose job time, WebP-only job plus the AVIF encodes, stays within 1.5x the WebP-only
   job (the real pipeline, timed in a worker set up like the service's).

The reference is the resized variant itself, not a slower resize: both encoders get the
same pixels, so a reference resized another way would add the same resize error to both
scores and only blur the comparison. A photo with alpha is scored as SSIMULACRA2's own
tool does, flattened on a dark and on a light background, the worse of the two.

The grid's AVIF encodes are timed once each (the sum over eight photos smooths the
noise); the chosen setting, its neighbours and the WebP-only job are timed again, the
median of `REPEATS` runs, one process alone.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import as_completed
from dataclasses import dataclass, field
from pathlib import Path

import pyvips

from bench import pipeline as bare
from bench.inputs import Input, write_inputs
from bench.isolated import Isolated, new_executor
from bench.photos import PHOTOS, camera_jpeg
from bench.timing import Sample, timed
from mediasvc.imaging.decode import decode
from mediasvc.imaging.encode import WEBP_EFFORT, encode_avif, encode_still
from mediasvc.imaging.job import DEFAULT_RULES
from mediasvc.imaging.variants import LARGEST, VARIANTS, VariantSpec
from mediasvc.imaging.worker import VIPS_CONCURRENCY, init_worker

# Q45 was dropped: at effort 0 it scored 29 points under WebP on the first photo tried.
# Q70 was added: on grainy photos AVIF needs about Q67 to reach WebP q80's score.
QUALITIES = (50, 55, 60, 65, 70)
EFFORTS = (0, 1, 2, 3)  # libvips' effort: libaom's cpu-used is 9 - effort
# libvips' subsample_mode: "on" is 4:2:0 (what "auto" does below Q90), "off" 4:4:4. 4:4:4
# is swept at two efforts only, to keep the sweep within a few minutes: scoring is most of
# its time (0.8 s of CPU for one 1024 px SSIMULACRA2).
CHROMAS = ("on", "off")
FULL_CHROMA_EFFORTS = (0,)
# AVIF falls behind WebP at 256 px more than at 1024 (Q60 effort 0: -4.1 against +1.1),
# and the small variants are a small share of the bytes: each setting is also tried with
# the variants of at most SMALL_SIZE px at a higher quality. Cheap to sweep: the 1024 px
# encode and score are shared.
SMALL_SIZE = 256
SMALL_BOOSTS = (0, 5, 10)
CHROMA_NAMES = {"on": "4:2:0", "off": "4:4:4"}
SCORED = ("full", "medium")  # 1024 and 256 px
TIME_RATIO_LIMIT = 1.5
REPEATS = 5
# The bench's inputs that join the drawn photos (the HEIC is the 12 MP photo again).
BENCH_INPUTS = ("photo_12mp", "alpha_2mp", "cmyk")
# SSIMULACRA2's backgrounds for alpha (its tool's 0.1 and 0.9), in 8-bit sRGB.
ALPHA_BACKGROUNDS = (0.1 * 255, 0.9 * 255)
_LARGEST_FIRST = sorted(VARIANTS, key=lambda v: v.size, reverse=True)


@dataclass(frozen=True, slots=True, order=True)
class Setting:
    """One AVIF encoder setting of the grid."""

    quality: int
    effort: int
    chroma: str
    small_boost: int = 0  # added to `quality` for variants of at most SMALL_SIZE px

    @property
    def label(self) -> str:
        small = (
            f" (≤{SMALL_SIZE} px: Q{self.quality + self.small_boost})" if self.small_boost else ""
        )
        return f"Q{self.quality}{small} effort {self.effort} {CHROMA_NAMES[self.chroma]}"

    def quality_for(self, spec: VariantSpec) -> int:
        return self.quality + (self.small_boost if spec.size <= SMALL_SIZE else 0)

    def encode(self, spec: VariantSpec, image: pyvips.Image) -> bytes:
        return encode_avif(
            image, quality=self.quality_for(spec), effort=self.effort, subsample=self.chroma
        )


@dataclass(frozen=True, slots=True)
class Encodes:
    """One photo's five variants in one format: bytes, scores by variant, CPU seconds."""

    bytes: int
    scores: dict[str, float]
    cpu_s: float


@dataclass(frozen=True, slots=True)
class Source:
    """One photo of the set."""

    name: str
    path: str
    mime: str
    note: str


@dataclass(slots=True)
class Totals:
    """One format's (or AVIF setting's) numbers summed or averaged over the photo set."""

    bytes: int = 0
    cpu_s: float = 0.0
    scores: dict[str, list[float]] = field(default_factory=dict)

    def add(self, encodes: Encodes) -> None:
        self.bytes += encodes.bytes
        self.cpu_s += encodes.cpu_s
        for name, score in encodes.scores.items():
            self.scores.setdefault(name, []).append(score)

    def mean(self, variant: str | None = None) -> float:
        """Mean SSIMULACRA2 of one scored variant, or over every (photo, scored variant)."""
        if variant is not None:
            return statistics.fmean(self.scores[variant])
        return statistics.fmean(s for scores in self.scores.values() for s in scores)


def grid(
    qualities: Iterable[int] = QUALITIES,
    efforts: Iterable[int] = EFFORTS,
    full_chroma_efforts: Iterable[int] = FULL_CHROMA_EFFORTS,
    small_boosts: Iterable[int] = SMALL_BOOSTS,
) -> list[Setting]:
    """Each quality at each effort in 4:2:0, and at `full_chroma_efforts` in 4:4:4; each
    with every small-variant boost."""
    full, boosts = set(full_chroma_efforts), list(small_boosts)
    return sorted(
        Setting(q, e, c, b)
        for q in qualities
        for e in efforts
        for c in CHROMAS
        for b in boosts
        if c == "on" or e in full
    )


def neighbours(chosen: Setting, settings: Sequence[Setting]) -> list[Setting]:
    """The settings one step away from `chosen` along one axis of the grid."""
    axes = (
        sorted({s.quality for s in settings}),
        sorted({s.effort for s in settings}),
        sorted({s.chroma for s in settings}),
        sorted({s.small_boost for s in settings}),
    )
    found = []
    for setting in settings:
        here = (setting.quality, setting.effort, setting.chroma, setting.small_boost)
        there = (chosen.quality, chosen.effort, chosen.chroma, chosen.small_boost)
        steps = [
            abs(axis.index(a) - axis.index(b)) for axis, a, b in zip(axes, here, there, strict=True)
        ]
        if sorted(steps) == [0, 0, 0, 1]:
            found.append(setting)
    return found


# --- in worker processes ---------------------------------------------------------------


def init_scorer() -> None:
    """A scoring worker: libvips on the service's thread count, no operation cache."""
    pyvips.cache_set_max(0)
    pyvips.concurrency_set(VIPS_CONCURRENCY)


def variants(source: Source) -> list[tuple[VariantSpec, pyvips.Image]]:
    """The five variants' pixels as `imaging.pipeline` makes them, largest first."""
    with tempfile.TemporaryDirectory(prefix="bench-avif-") as out_dir:
        image = decode(bare.make_job(source.path, source.mime, out_dir)).image.copy_memory()
    made = []
    for spec in _LARGEST_FIRST:
        if spec is not LARGEST:
            image = image.thumbnail_image(spec.size, height=spec.size, size="down").copy_memory()
        made.append((spec, image))
    return made


def webp(image: pyvips.Image) -> bytes:
    """`image` as `imaging.encode` writes a lossy WebP still."""
    return encode_still(image, quality=DEFAULT_RULES.quality, effort=WEBP_EFFORT)


def _png(image: pyvips.Image) -> io.BytesIO:
    return io.BytesIO(image.pngsave_buffer(compression=0))


def ssimulacra2(reference: pyvips.Image, encoded: bytes) -> float:
    """SSIMULACRA2 of the decoded `encoded` against `reference`; with alpha, the worse of
    the two backgrounds."""
    # Imported here, not with the module: numpy's BLAS starts threads at import, and a
    # worker that imports this module (`time_job`) must have none before it is confined.
    from ssimulacra2 import compute_ssimulacra2

    distorted = pyvips.Image.new_from_buffer(encoded, "")
    if not reference.hasalpha():
        return float(compute_ssimulacra2(_png(reference), _png(distorted)))
    return min(
        float(compute_ssimulacra2(_png(_on(reference, bg)), _png(_on(distorted, bg))))
        for bg in ALPHA_BACKGROUNDS
    )


def _on(image: pyvips.Image, background: float) -> pyvips.Image:
    """`image` flattened on a grey `background`; as it is without alpha (libwebp leaves out
    an alpha channel that is opaque everywhere)."""
    return image.flatten(background=[background] * 3) if image.hasalpha() else image


def _measure(
    made: list[tuple[VariantSpec, pyvips.Image]],
    encode: Callable[[pyvips.Image], bytes],
    repeats: int,
) -> Encodes:
    runs = [timed(lambda: [encode(image) for _, image in made]) for _ in range(repeats)]
    files = runs[0][0]
    scores = {
        spec.name: ssimulacra2(image, data)
        for (spec, image), data in zip(made, files, strict=True)
        if spec.name in SCORED
    }
    cpu_s = statistics.median(sample.cpu_s for _, sample in runs)
    return Encodes(sum(map(len, files)), scores, cpu_s)


# One AVIF variant: (variant, quality, effort, chroma) -> (bytes, CPU seconds, score).
_Cache = dict[tuple[str, int, int, str], tuple[int, float, float | None]]


def _avif(made: list[tuple[VariantSpec, pyvips.Image]], setting: Setting, cache: _Cache) -> Encodes:
    """The five variants in `setting`, each encoded (timed once) and scored once per
    photo: settings that differ only in the small variants' quality share the rest."""
    size, cpu_s, scores = 0, 0.0, {}
    for spec, image in made:
        key = (spec.name, setting.quality_for(spec), setting.effort, setting.chroma)
        if key not in cache:
            data, sample = timed(lambda s=spec, i=image: setting.encode(s, i))
            score = ssimulacra2(image, data) if spec.name in SCORED else None
            cache[key] = (len(data), sample.cpu_s, score)
        length, seconds, score = cache[key]
        size, cpu_s = size + length, cpu_s + seconds
        if score is not None:
            scores[spec.name] = score
    return Encodes(size, scores, cpu_s)


def measure(source: Source, settings: Sequence[Setting]) -> tuple[Encodes, dict[Setting, Encodes]]:
    """One photo: WebP (timed `REPEATS` times) and each AVIF setting (timed once)."""
    made = variants(source)
    cache: _Cache = {}
    return _measure(made, webp, REPEATS), {s: _avif(made, s, cache) for s in settings}


def time_job(source: Source) -> float:
    """Median CPU seconds of the WebP-only pipeline job, in a worker set up like the
    service's."""
    return statistics.median(
        bare.once(source.path, source.mime).sample.cpu_s for _ in range(REPEATS)
    )


def time_avif(source: Source, settings: Sequence[Setting]) -> dict[Setting, float]:
    """Median CPU seconds of each setting's five AVIF encodes."""
    made = variants(source)
    avif = {}
    for setting in settings:
        samples: list[Sample] = [
            timed(lambda s=setting: [s.encode(spec, image) for spec, image in made])[1]
            for _ in range(REPEATS)
        ]
        avif[setting] = statistics.median(sample.cpu_s for sample in samples)
    return avif


# --- in the bench process ---------------------------------------------------------------


def photo_set(directory: Path, inputs: dict[str, Input] | None = None) -> list[Source]:
    """The drawn photos, written into `directory`, and the bench's inputs (written there
    too unless `inputs` already holds them)."""
    sources = []
    for photo in PHOTOS:
        path = directory / f"{photo.name}.jpg"
        path.write_bytes(camera_jpeg(photo))
        sources.append(Source(photo.name, str(path), "image/jpeg", photo.note))
    if inputs is None:
        inputs = write_inputs(directory, with_48mp=False)
    sources += [
        Source(i.name, str(i.path), i.mime, i.note) for n, i in inputs.items() if n in BENCH_INPUTS
    ]
    return sources


@dataclass(frozen=True, slots=True)
class Row:
    """One setting against WebP over the photo set."""

    setting: Setting
    byte_ratio: float
    mean: float
    delta: float
    delta_by_variant: dict[str, float]
    time_ratio: float
    avif_ms_per_photo: float

    @property
    def passes(self) -> bool:
        return self.delta >= 0 and self.time_ratio <= TIME_RATIO_LIMIT


def rows(webp_totals: Totals, avif_totals: dict[Setting, Totals], job_cpu_s: float) -> list[Row]:
    """Each setting's ratios; `job_cpu_s` is the WebP-only jobs' CPU time over the set."""
    found = []
    for setting, totals in avif_totals.items():
        by_variant = {v: totals.mean(v) - webp_totals.mean(v) for v in SCORED}
        found.append(
            Row(
                setting,
                byte_ratio=totals.bytes / webp_totals.bytes,
                mean=totals.mean(),
                delta=totals.mean() - webp_totals.mean(),
                delta_by_variant=by_variant,
                time_ratio=(job_cpu_s + totals.cpu_s) / job_cpu_s,
                avif_ms_per_photo=totals.cpu_s * 1000 / len(totals.scores[SCORED[0]]),
            )
        )
    return found


def choose(found: Sequence[Row]) -> Row | None:
    """The passing setting with the lowest byte ratio (on a tie, the faster)."""
    passing = [r for r in found if r.passes]
    return min(passing, key=lambda r: (round(r.byte_ratio, 3), r.time_ratio), default=None)


def table(found: Iterable[Row]) -> str:
    """The rows as a Markdown table."""
    lines = [
        "| setting | bytes / WebP | SSIMULACRA2 | Δ mean | Δ 1024 | Δ 256 "
        "| AVIF ms / photo | job time / WebP-only | passes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in found:
        d = r.delta_by_variant
        lines.append(
            f"| {r.setting.label} | {r.byte_ratio:.3f} | {r.mean:.2f} | {r.delta:+.2f} "
            f"| {d['full']:+.2f} | {d['medium']:+.2f} | {r.avif_ms_per_photo:.0f} "
            f"| {r.time_ratio:.2f} | {'yes' if r.passes else 'no'} |"
        )
    return "\n".join(lines)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.avif_sweep", description=__doc__.splitlines()[0]
    )

    def ints(text: str) -> list[int]:
        return [int(part) for part in text.split(",")]

    parser.add_argument("--quality", type=ints, default=list(QUALITIES), help="e.g. 55,60,65")
    parser.add_argument("--effort", type=ints, default=list(EFFORTS), help="e.g. 0,2")
    parser.add_argument(
        "--full-chroma-effort", type=ints, default=list(FULL_CHROMA_EFFORTS), help="4:4:4 at"
    )
    parser.add_argument("--small-boost", type=ints, default=list(SMALL_BOOSTS), help="e.g. 0,10")
    parser.add_argument("--workers", type=int, default=2, help="scoring processes")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    settings = grid(args.quality, args.effort, args.full_chroma_effort, args.small_boost)
    with tempfile.TemporaryDirectory(prefix="mediasvc-avif-sweep-") as tmp:
        _say("drawing the photo set")
        sources = photo_set(Path(tmp))
        _say(f"{len(sources)} photos x {len(settings)} settings, on {args.workers} processes")
        webp_totals, avif_totals = Totals(), {s: Totals() for s in settings}
        per_photo: dict[str, tuple[Encodes, dict[Setting, Encodes]]] = {}
        pool = new_executor(args.workers, init_scorer)
        try:
            futures = {pool.submit(measure, source, settings): source for source in sources}
            for future in as_completed(futures):
                webp_encodes, avif_encodes = future.result()
                per_photo[futures[future].name] = (webp_encodes, avif_encodes)
                _say(f"  scored {futures[future].name}")
        finally:
            pool.shutdown()
        for source in sources:  # summed in a fixed order: float sums stay reproducible
            webp_encodes, avif_encodes = per_photo[source.name]
            webp_totals.add(webp_encodes)
            for setting, encodes in avif_encodes.items():
                avif_totals[setting].add(encodes)
        _say("timing the WebP-only job (one process alone)")
        worker = Isolated(init_worker)
        try:
            job_cpu_s = sum(worker.call(time_job, source) for source in sources)
            found = rows(webp_totals, avif_totals, job_cpu_s)
            chosen = choose(found)
            print(f"\nWebP q{DEFAULT_RULES.quality} method {WEBP_EFFORT}, {len(sources)} photos:")
            print(
                f"  {webp_totals.bytes} bytes (five variants each), SSIMULACRA2 mean "
                f"{webp_totals.mean():.2f} (1024: {webp_totals.mean('full'):.2f}, "
                f"256: {webp_totals.mean('medium'):.2f}); WebP-only job "
                f"{job_cpu_s * 1000 / len(sources):.0f} ms CPU per photo\n"
            )
            print(table(sorted(found, key=lambda r: r.setting)))
            if chosen is None:
                print("\nno setting passes")
                return 1
            near = neighbours(chosen.setting, settings)
            _say(f"timing {chosen.setting.label} and its neighbours again")
            retimed = [
                worker.call(time_avif, source, [chosen.setting, *near]) for source in sources
            ]
        finally:
            worker.close()
        print(f"\nchosen: {chosen.setting.label}; its neighbours, timed again:\n")
        again = []
        for row in [
            chosen,
            *sorted((r for r in found if r.setting in near), key=lambda r: r.setting),
        ]:
            avif_s = sum(avif[row.setting] for avif in retimed)
            again.append(
                Row(
                    row.setting,
                    row.byte_ratio,
                    row.mean,
                    row.delta,
                    row.delta_by_variant,
                    (job_cpu_s + avif_s) / job_cpu_s,
                    avif_s * 1000 / len(sources),
                )
            )
        print(table(again))
        print(f"\nper photo, {chosen.setting.label} against WebP:\n")
        print("| photo | WebP bytes | AVIF bytes | ratio | WebP 1024 / 256 | AVIF 1024 / 256 |")
        print("|---|---|---|---|---|---|")
        for source in sources:
            w, a = per_photo[source.name][0], per_photo[source.name][1][chosen.setting]
            print(
                f"| {source.name} | {w.bytes} | {a.bytes} | {a.bytes / w.bytes:.2f} "
                f"| {w.scores['full']:.1f} / {w.scores['medium']:.1f} "
                f"| {a.scores['full']:.1f} / {a.scores['medium']:.1f} |"
            )
    return 0


def _say(message: str) -> None:
    print(f"avif-sweep: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
