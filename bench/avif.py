"""AVIF beside WebP and larger ladders (issue 28), measured through the pipeline itself.

On the AVIF sweep's photo set (`avif_sweep.photo_set`: the five drawn photos and the
bench's 12 MP photo, RGBA cut-out and CMYK JPEG), three contestants run side by side, round
by round, in one worker set up like the service's:

- `webp_only`: the default kind as it is (the default ladder, WebP);
- `with_avif`: the same with `alternates=("avif",)`;
- `ladder_2560`: WebP only, with the ladder a full-screen profile photo asks for
  (`LADDER_2560`, issue 28's example).

A job's time is its CPU time, the median over rounds per photo, summed over photos: the
jobs run on one thread (no idle workers lend cores here), so on an idle machine CPU time is
the wall time, and on a shared one it is what the job itself cost. Bytes are totals over
the photo set; SSIMULACRA2 is `avif_sweep.ssimulacra2` of the 1024 and 256 px variants the
pipeline wrote, against the pixels both encoders were given (`avif_sweep.variants`),
scored after the timing so scoring never shares the cores with a timed job.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from bench import pipeline as bare
from bench.avif_sweep import SCORED, Source, init_scorer, photo_set, ssimulacra2, variants
from bench.inputs import Input, write_inputs
from bench.isolated import Isolated, new_executor
from mediasvc.imaging.formats import OUTPUT_FORMATS
from mediasvc.imaging.variants import Ladder, VariantSpec
from mediasvc.imaging.worker import init_worker

AVIF = ("avif",)
LADDER_2560: Ladder = (
    VariantSpec("thumb", 128),
    VariantSpec("card", 512),
    VariantSpec("screen", 1440),
    VariantSpec("retina", 2560),
)
CONTESTANTS = ("webp_only", "with_avif", "ladder_2560")
_OPTIONS: dict[str, dict[str, object]] = {
    "webp_only": {},
    "with_avif": {"alternates": AVIF},
    "ladder_2560": {"sizes": LADDER_2560},
}
ROUNDS = 3
# `--quick` (the bench's smoke test) measures two of the photos: the keys, not the numbers.
QUICK_PHOTOS = ("sky", "cmyk")
# Scoring processes: one per core of the machine the bench was written on; scoring runs alone.
SCORERS = 2


@dataclass(slots=True)
class AvifBench:
    """What the three contestants cost and wrote over the photo set."""

    photos: list[str]
    # contestant -> photo -> CPU seconds of each round's job
    cpu_s: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    wall_s: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    webp_bytes: dict[str, int] = field(default_factory=dict)
    avif_bytes: dict[str, int] = field(default_factory=dict)
    # photo -> format -> variant -> SSIMULACRA2
    scores: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)

    def job_s(self, contestant: str, *, wall: bool = False) -> float:
        """Per photo the median over rounds, summed over the photo set."""
        runs = (self.wall_s if wall else self.cpu_s)[contestant]
        return sum(statistics.median(runs[photo]) for photo in self.photos)

    def mean_score(self, file_format: str) -> float:
        """Mean SSIMULACRA2 over every (photo, scored variant)."""
        return statistics.fmean(
            score for by_format in self.scores.values() for score in by_format[file_format].values()
        )

    def summary(self) -> dict[str, float]:
        """The summary line's keys for issue 28."""
        webp_only = self.job_s("webp_only")
        return {
            "avif_bytes_over_webp": round(
                sum(self.avif_bytes.values()) / sum(self.webp_bytes.values()), 3
            ),
            "avif_ssimulacra2_minus_webp": round(
                self.mean_score("avif") - self.mean_score("webp"), 2
            ),
            "avif_job_time_over_webp_only": round(self.job_s("with_avif") / webp_only, 3),
            "job_time_2560_ladder_over_default": round(self.job_s("ladder_2560") / webp_only, 3),
            # The same two ratios by wall time, to compare with the CPU time ones.
            "avif_job_wall_over_webp_only": round(
                self.job_s("with_avif", wall=True) / self.job_s("webp_only", wall=True), 3
            ),
            "avif_webp_ssimulacra2": round(self.mean_score("webp"), 2),
        }


def measure(
    inputs: dict[str, Input], scratch: Path, rounds: int = ROUNDS, *, quick: bool = False
) -> AvifBench:
    """Time the contestants on the photo set, round by round, then score what they wrote."""
    photos_dir = scratch / "avif-photos"
    photos_dir.mkdir()
    sources = photo_set(photos_dir, inputs)
    if quick:
        sources = [s for s in sources if s.name in QUICK_PHOTOS]
    result = AvifBench(photos=[s.name for s in sources])
    kept = {}
    worker = Isolated(init_worker)
    try:
        for round_number in range(rounds):
            order = list(CONTESTANTS)
            if round_number % 2:
                order.reverse()  # no contestant always runs right after another
            for source in sources:
                for name in order:
                    out_dir = None
                    if round_number == 0 and name == "with_avif":
                        # One run's files kept, for scoring: its WebPs are webp_only's too.
                        kept[source.name] = scratch / "avif-out" / source.name
                        kept[source.name].mkdir(parents=True)
                        out_dir = str(kept[source.name])
                    options = _OPTIONS[name]
                    job = worker.call(
                        partial(bare.once, source.path, source.mime, out_dir, **options)
                    )
                    result.cpu_s.setdefault(name, {}).setdefault(source.name, []).append(
                        job.sample.cpu_s
                    )
                    result.wall_s.setdefault(name, {}).setdefault(source.name, []).append(
                        job.sample.wall_s
                    )
                    if name == "with_avif":
                        result.webp_bytes[source.name] = sum(job.bytes_by_variant.values())
                        result.avif_bytes[source.name] = job.avif_served_bytes
    finally:
        worker.close()
    scorers = new_executor(SCORERS, init_scorer)
    try:
        futures = {s.name: scorers.submit(score, s, str(kept[s.name])) for s in sources}
        result.scores = {name: future.result() for name, future in futures.items()}
    finally:
        scorers.shutdown()
    return result


def score(source: Source, out_dir: str) -> dict[str, dict[str, float]]:
    """SSIMULACRA2 of the scored variants the pipeline wrote in `out_dir`, as served to a
    browser without AVIF and to one with it, against the pixels they were encoded from."""
    found: dict[str, dict[str, float]] = {}
    for spec, image in variants(source):
        if spec.name not in SCORED:
            continue
        webp = Path(out_dir) / OUTPUT_FORMATS["webp"].filename(spec.name)
        avif = Path(out_dir) / OUTPUT_FORMATS["avif"].filename(spec.name)
        # An AVIF browser gets the WebP where no AVIF was kept (it would have been larger).
        served = {"webp": webp, "avif": avif if avif.exists() else webp}
        for file_format, path in served.items():
            found.setdefault(file_format, {})[spec.name] = ssimulacra2(image, path.read_bytes())
    return found


def table(measured: AvifBench) -> str:
    """Per photo: bytes and scores of both formats, and the contestants' job times."""
    lines = [
        "AVIF beside WebP, and the 2560 px ladder (CPU ms per job, median over rounds)",
        f"  {'':<12}{'WebP B':>9}{'AVIF B':>9}{'ratio':>7}{'WebP 1024/256':>15}"
        f"{'AVIF 1024/256':>15}{'WebP ms':>9}{'+AVIF ms':>9}{'2560 ms':>9}",
    ]
    for photo in measured.photos:
        webp, avif = measured.webp_bytes[photo], measured.avif_bytes[photo]
        scores = measured.scores[photo]
        ms = {n: statistics.median(measured.cpu_s[n][photo]) * 1000 for n in CONTESTANTS}
        lines.append(
            f"  {photo:<12}{webp:>9}{avif:>9}{avif / webp:>7.2f}"
            f"{_pair(scores['webp']):>15}{_pair(scores['avif']):>15}"
            f"{ms['webp_only']:>9.0f}{ms['with_avif']:>9.0f}{ms['ladder_2560']:>9.0f}"
        )
    return "\n".join(lines)


def _pair(scores: dict[str, float]) -> str:
    return " / ".join(f"{scores[name]:.1f}" for name in SCORED)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m bench.avif`: this section alone, its table and its summary keys."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.avif", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mediasvc-bench-avif-") as tmp:
        scratch = Path(tmp)
        (scratch / "inputs").mkdir()
        measured = measure(write_inputs(scratch / "inputs", with_48mp=False), scratch, args.rounds)
    print(table(measured))
    print(json.dumps(measured.summary()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
