"""The three phases of a run, each interleaving its contestants round by round.

The machine is shared and noisy, so no contestant gets a quiet stretch the others miss:
every round runs each contestant once (single-process phase) or one batch of each
(throughput phase), and the report takes medians or totals over the rounds.
"""

from __future__ import annotations

import contextlib
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import graphics as graphics_set
from bench import limit, peers, pillow_baselines, procs, sharp_baselines
from bench import pipeline as bare
from bench.avif import SCORERS
from bench.avif_sweep import init_scorer
from bench.inputs import Input, photo_jpeg
from bench.isolated import Isolated, new_executor
from bench.peers import Peer, PeerResults
from bench.service import Level, Stack, StackError, multipart_body
from bench.timing import Sample
from mediasvc.imaging.encode import WEBP_EFFORT
from mediasvc.imaging.formats import OUTPUT_FORMATS
from mediasvc.imaging.job import DEFAULT_RULES
from mediasvc.imaging.variants import VARIANTS
from mediasvc.imaging.worker import init_worker

MAIN_INPUT = "photo_12mp"
# Also timed in the single-process phase, for the table only (no targets). The HEIC (with
# the mediasvc[heic] extra) is the pipeline's only: the Pillow baselines open no HEIC.
SECONDARY_INPUTS = ("alpha_2mp", "cmyk", "photo_12mp_heic")
PIPELINE_ONLY_MIMES = frozenset({"image/heic"})
# The photo set whose bytes content-aware encoding must leave alone (`encoding`).
PHOTO_INPUTS = ("photo_12mp", "alpha_2mp", "cmyk")
# Only measured for memory, once, in a fresh worker.
MEMORY_INPUTS = ("photo_12mp", "photo_48mp", "photo_12mp_heic")
CLIENT_LEVELS = (1, 2, 4)
# The tiny upload's batches (`Throughput.tiny`).
TINY_CLIENTS = 2
TINY_SIZE = (64, 48)
# Rounds of the content-aware encoding phase (`encoding`): each input both ways per round.
ENCODING_ROUNDS = 3


@dataclass(slots=True)
class SingleProcess:
    """Per-iteration samples of every single-process contestant, per input."""

    concurrency: int
    limit_decode: list[Sample] = field(default_factory=list)
    limit_encode: list[Sample] = field(default_factory=list)
    thumbnail: list[Sample] = field(default_factory=list)
    runs: dict[str, dict[str, list[Sample]]] = field(default_factory=dict)
    outputs: dict[str, Path] = field(default_factory=dict)
    # sharp's own versions (its libvips, libwebp), or why the sharp baselines did not run.
    sharp_versions: dict[str, str] = field(default_factory=dict)
    sharp_skipped: str = ""

    def add(self, contestant: str, input_name: str, sample: Sample) -> None:
        self.runs.setdefault(contestant, {}).setdefault(input_name, []).append(sample)


def single_process(inputs: dict[str, Input], rounds: int, scratch: Path) -> SingleProcess:
    """Limit, pipeline and the Pillow and sharp baselines, one process each, interleaved."""
    quality, effort = DEFAULT_RULES.quality, WEBP_EFFORT
    floor = Isolated(init_worker)
    worker = Isolated(init_worker)
    pillow = Isolated()
    sharp, skipped = sharp_baselines.start()
    try:
        result = SingleProcess(concurrency=floor.call(limit.concurrency), sharp_skipped=skipped)
        main = inputs[MAIN_INPUT]
        others = [inputs[name] for name in SECONDARY_INPUTS if name in inputs]
        contestants = ["pipeline", "pillow_naive", "pillow_tuned"]
        if sharp is not None:
            result.sharp_versions = sharp.versions
            contestants += ["sharp_naive", "sharp_tuned"]
        for name in contestants:
            result.outputs[name] = scratch / "outputs" / name
            result.outputs[name].mkdir(parents=True)
        for _ in range(rounds):
            measured = floor.call(limit.once, str(main.path), quality, effort)
            result.limit_decode.append(measured["decode"])
            result.limit_encode.append(measured["encode"])
            result.thumbnail.append(floor.call(limit.thumbnail_once, str(main.path)))
            for item in [main, *others]:
                # Only the main input's outputs are kept, for the quality comparison.
                keep = item is main
                out = {n: str(p) if keep else None for n, p in result.outputs.items()}
                job = worker.call(bare.once, str(item.path), item.mime, out["pipeline"])
                result.add("pipeline", item.name, job.sample)
                if keep:
                    # As the service runs a job that starts with the other workers idle.
                    lent = worker.call(bare.once, str(item.path), item.mime, None, True, 2)
                    result.add("pipeline_2_threads", item.name, lent.sample)
                if item.mime in PIPELINE_ONLY_MIMES:
                    continue
                for name, run in (
                    ("pillow_naive", pillow_baselines.naive),
                    ("pillow_tuned", pillow_baselines.tuned),
                ):
                    target = out[name] or str(_scratch_dir(scratch, name))
                    _, sample = pillow.call(run, str(item.path), target, quality, effort)
                    result.add(name, item.name, sample)
                if sharp is not None:
                    for mode in ("naive", "tuned"):
                        name = f"sharp_{mode}"
                        target = out[name] or str(_scratch_dir(scratch, name))
                        _, sample = sharp.call(mode, str(item.path), target, quality, effort)
                        result.add(name, item.name, sample)
        return result
    finally:
        for process in (floor, worker, pillow):
            process.close()
        if sharp is not None:
            sharp.close()


def _scratch_dir(scratch: Path, name: str) -> Path:
    path = scratch / "discard" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass(slots=True)
class Throughput:
    """The pipeline on N processes and the service at each client count, over all rounds."""

    workers: int
    pipeline_images: int = 0
    pipeline_wall_s: float = 0.0
    pipeline_jobs: list[bare.JobResult] = field(default_factory=list)
    levels: dict[int, Level] = field(default_factory=dict)
    worker_peak_rss_mb: dict[int, float] = field(default_factory=dict)
    # Per round: service images/s at each client count over the pipeline's images/s in
    # the batch next to it. The machine's capacity drifts within seconds here, so paired
    # ratios (and their median) say more than ratios of totals.
    paired: list[dict[int, float]] = field(default_factory=list)
    # The service-level peers, run in the same rounds (issue 31).
    peers: PeerResults = field(default_factory=PeerResults)
    # A 64x48 JPEG through the same stack at 2 clients, a batch each round: the app's CPU
    # for what every upload costs whatever its bytes (issue 31).
    tiny: Level = field(default_factory=lambda: Level(TINY_CLIENTS))

    @property
    def pipeline_ips(self) -> float:
        return self.pipeline_images / self.pipeline_wall_s if self.pipeline_wall_s else 0.0

    def service_over_pipeline(self, clients: int) -> float:
        """Median over rounds of the paired ratio at `clients`."""
        ratios = [r[clients] for r in self.paired if clients in r]
        return statistics.median(ratios) if ratios else 0.0


@dataclass(frozen=True, slots=True)
class BatchSizes:
    """How many images each round sends: to the N-process pipeline, and per client level."""

    pipeline: int
    clients: dict[int, int]


def throughput(
    main: Input,
    workers: int,
    rounds: int,
    sizes: BatchSizes,
    scratch: Path,
    with_peers: bool = True,
) -> Throughput:
    """The N-process pipeline, the whole stack and its peers, alternating batch by batch.

    Each round runs the pipeline batch, then at each client count the service's batch and
    each peer's back to back, every other round in reverse order, so no contestant always
    gets the first or the last seconds.
    """
    result = Throughput(workers)
    pool = bare.start_pool(workers)
    body, content_type = multipart_body(main.path, main.mime)
    tiny_path = scratch / "tiny.jpg"
    tiny_path.write_bytes(photo_jpeg(*TINY_SIZE))
    tiny_body, tiny_type = multipart_body(tiny_path, "image/jpeg")
    try:
        with Stack(scratch, workers=workers) as stack, contextlib.ExitStack() as started:
            running = _start_peers(started, result.peers, scratch, workers) if with_peers else {}
            bare.warm(pool, workers, str(main.path), main.mime)
            stack.upload(body, content_type, workers, 2 * workers)  # start workers, connections
            result.peers.service_output = stack.probe(body, content_type)
            for name, peer in list(running.items()):
                # One upload per app process starts each (sharp's libvips, Pillow's codecs).
                peer.upload(body, content_type, workers, workers)
                try:
                    result.peers.outputs[name] = peer.probe(body, content_type)
                except (StackError, OSError) as exc:  # not a 201, or no files written
                    result.peers.skipped[name] = str(exc)
                    del running[name]
            for round_number in range(rounds):
                # None: the pipeline batch; then (who, clients) for the service and the peers.
                steps: list[tuple[str, int] | None] = [None]
                steps += [(who, c) for c in sizes.clients for who in ("service", *running)]
                steps.append(("tiny", TINY_CLIENTS))
                if round_number % 2:
                    steps.reverse()
                rates: dict[str, dict[int, float]] = {}
                pipeline_ips = 0.0
                for step in steps:
                    if step is None:
                        batch = bare.batch(pool, str(main.path), main.mime, sizes.pipeline)
                        result.pipeline_images += batch.images
                        result.pipeline_wall_s += batch.wall_s
                        result.pipeline_jobs.extend(batch.jobs)
                        pipeline_ips = batch.images_per_s
                        continue
                    who, clients = step
                    if who == "tiny":
                        batch_size = sizes.clients[TINY_CLIENTS]
                        level = stack.upload(tiny_body, tiny_type, clients, 2 * batch_size)
                        _merge(result.tiny, level)
                        continue
                    if who != "service":
                        level = running[who].upload(
                            body, content_type, clients, sizes.clients[clients]
                        )
                        levels = result.peers.levels.setdefault(who, {})
                        _merge(levels.setdefault(clients, Level(clients)), level)
                        rates.setdefault(who, {})[clients] = level.images_per_s
                        continue
                    level = stack.upload(body, content_type, clients, sizes.clients[clients])
                    _merge(result.levels.setdefault(clients, Level(clients)), level)
                    rates.setdefault(who, {})[clients] = level.images_per_s
                    for pid in stack.worker_pids():
                        peak = procs.peak_rss_mb(pid)
                        result.worker_peak_rss_mb[pid] = max(
                            peak, result.worker_peak_rss_mb.get(pid, 0.0)
                        )
                service = rates.get("service", {})
                result.paired.append({c: ips / pipeline_ips for c, ips in service.items()})
                for name in running:
                    theirs = rates.get(name, {})
                    result.peers.paired.setdefault(name, []).append(
                        {c: service[c] / ips for c, ips in theirs.items() if ips and c in service}
                    )
            result.peers.service_peak_rss_mb = stack.peak_rss_mb()
            for name, peer in running.items():
                result.peers.peak_rss_mb[name] = peer.peak_rss_mb()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return result


def _start_peers(
    started: contextlib.ExitStack, found: PeerResults, scratch: Path, workers: int
) -> dict[str, Peer]:
    """Every peer that starts, each left to `started` to stop; why the others did not."""
    try:
        node_dir: Path | None = peers.install_node()
    except peers.PeerUnavailable as exc:
        node_dir = None
        found.skipped |= {name: str(exc) for name in peers.PEERS if name.startswith("node_")}
    running = {}
    for name in peers.PEERS:
        if name in found.skipped:
            continue
        try:
            running[name] = started.enter_context(
                Peer(name, scratch, workers=workers, node_dir=node_dir)
            )
        except (peers.PeerUnavailable, OSError) as exc:
            found.skipped[name] = str(exc)
    return running


def _merge(into: Level, batch: Level) -> None:
    into.uploads.extend(batch.uploads)
    into.wall_s += batch.wall_s
    into.add_cpu(batch.cpu_s)
    into.add_stages(batch.stage_s, batch.stage_n)


def memory(inputs: dict[str, Input]) -> dict[str, float]:
    """Peak RSS of a fresh worker running one job per input, plus an idle worker's RSS."""
    peaks = {}
    idle = Isolated(init_worker)
    try:
        peaks["idle_worker"] = idle.call(bare.peak_rss_mb)
    finally:
        idle.close()
    for name in MEMORY_INPUTS:
        if name not in inputs:
            continue
        fresh = Isolated(init_worker)
        try:
            peaks[name] = fresh.call(
                bare.once, str(inputs[name].path), inputs[name].mime
            ).peak_rss_mb
        finally:
            fresh.close()
    return peaks


@dataclass(frozen=True, slots=True)
class Encoded:
    """One input through the pipeline as it is, and with content-aware encoding turned off
    (lossy only): bytes both ways, in all and per variant, how each variant was stored
    ("lossless", "palette" or "lossy"), and the job's CPU time both ways, the median over
    rounds. `group` is the graphics set ("sparse", "dense", "" for neither) or "photo";
    a graphic's variants carry their SSIMULACRA2 both ways where scored."""

    name: str
    group: str
    encoding: str
    bytes: int
    lossy_only_bytes: int
    ms: float
    lossy_only_ms: float
    variants: dict[str, dict[str, Any]]

    @property
    def ratio(self) -> float:
        return self.bytes / self.lossy_only_bytes


def encoding(
    graphics: dict[str, Input],
    inputs: dict[str, Input],
    scratch: Path,
    rounds: int = ENCODING_ROUNDS,
    scored: tuple[str, ...] | None = None,
) -> dict[str, Encoded]:
    """The graphics and the photo set, each encoded content-aware and lossy only, `rounds`
    times interleaved in one worker set up like the service's; then each graphic's variants
    (those in `scored`; all by default) scored both ways, after the timing."""
    items = [*graphics.values(), *(inputs[n] for n in PHOTO_INPUTS if n in inputs)]
    kept = {(i.name, w): scratch / "encoding" / w / i.name for i in items for w in _WAYS}
    cpu_s: dict[tuple[str, str], list[float]] = {}
    made: dict[tuple[str, str], bare.JobResult] = {}
    worker = Isolated(init_worker)
    try:
        for round_number in range(rounds):
            ways = _WAYS[::-1] if round_number % 2 else _WAYS
            for item, way in ((i, w) for i in items for w in ways):
                out_dir = None
                if round_number == 0:  # one run's files kept, for the table and the scores
                    kept[item.name, way].mkdir(parents=True)
                    out_dir = str(kept[item.name, way])
                job = worker.call(bare.once, str(item.path), item.mime, out_dir, way == "aware")
                made.setdefault((item.name, way), job)
                cpu_s.setdefault((item.name, way), []).append(job.sample.cpu_s)
    finally:
        worker.close()
    scores: dict[str, dict[str, Any]] = {}
    scorers = new_executor(SCORERS, init_scorer)
    try:
        futures = {
            i.name: scorers.submit(
                graphics_set.score,
                i,
                str(kept[i.name, "aware"]),
                str(kept[i.name, "lossy_only"]),
                scored or tuple(spec.name for spec in VARIANTS),
            )
            for i in graphics.values()
        }
        scores = {name: future.result() for name, future in futures.items()}
    finally:
        scorers.shutdown()
    found = {}
    for item in items:
        aware, lossy = made[item.name, "aware"], made[item.name, "lossy_only"]
        variants = {
            name: {
                "bytes": size,
                "lossy_only_bytes": lossy.bytes_by_variant[name],
                "stored": _stored_as(
                    name, aware.lossless_variants, *(kept[item.name, w] for w in _WAYS)
                ),
                **scores.get(item.name, {}).get(name, {}),
            }
            for name, size in aware.bytes_by_variant.items()
        }
        found[item.name] = Encoded(
            item.name,
            "photo" if item.name in PHOTO_INPUTS else graphics_set.set_of(item.name),
            aware.encoding,
            sum(aware.bytes_by_variant.values()),
            sum(lossy.bytes_by_variant.values()),
            statistics.median(cpu_s[item.name, "aware"]) * 1000,
            statistics.median(cpu_s[item.name, "lossy_only"]) * 1000,
            variants,
        )
    return found


# The pipeline as it is, and with content-aware encoding off.
_WAYS = ("aware", "lossy_only")


def _stored_as(name: str, lossless: list[str], aware: Path, lossy_only: Path) -> str:
    """How variant `name` was stored: lossy when the file is the lossy-only one byte for
    byte (libwebp is deterministic), lossless when the report lists it, else a palette."""
    filename = OUTPUT_FORMATS[DEFAULT_RULES.output_format].filename(name)
    if (aware / filename).read_bytes() == (lossy_only / filename).read_bytes():
        return "lossy"
    return "lossless" if name in lossless else "palette"
