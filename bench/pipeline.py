"""The project's own imaging function, called directly: one process, and N at once.

The worker processes are set up exactly like the service's pool (forkserver,
`worker.init_worker`), and each job is a `pipeline.Job` with the service's default
settings, so the only thing missing compared with the service is the service.
"""

from __future__ import annotations

import os
import resource
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace

from bench.isolated import new_executor
from bench.timing import Sample, timed
from mediasvc.config import Settings
from mediasvc.imaging import pipeline as imaging
from mediasvc.imaging.job import Job
from mediasvc.imaging.variants import Ladder
from mediasvc.imaging.worker import init_worker
from mediasvc.kinds import DEFAULT_KIND, kind_rules

# The service's defaults: quality, limits, output format.
KIND_RULES = kind_rules(Settings(database_url="", url_signing_secret=""))


@dataclass(frozen=True, slots=True)
class JobResult:
    """One job as a worker saw it."""

    sample: Sample
    pid: int
    peak_rss_mb: float
    bytes_by_variant: dict[str, int]
    encoding: str
    lossless_variants: list[str]
    # What a browser that accepts AVIF is served, every variant: its AVIF alternate where one
    # was kept (smaller than the WebP), else the WebP.
    avif_served_bytes: int = 0


def make_job(
    source: str,
    mime: str,
    out_dir: str,
    kind: str = DEFAULT_KIND,
    *,
    lossless: bool = True,
    threads: int = 1,
    alternates: tuple[str, ...] = (),
    sizes: Ladder | None = None,
) -> Job:
    """The job the service would submit for this upload, with the default settings.

    `lossless=False` turns content-aware encoding off: what lossy alone would write.
    `threads` is what the service's pool lends a job that starts with workers idle.
    `alternates` and `sizes` are a kind's extra formats and own ladder (default: the kind's).
    """
    rules = replace(KIND_RULES[kind].image, lossless_graphics=lossless, alternates=alternates)
    if sizes is not None:
        rules = replace(rules, sizes=sizes)
    return Job(source=source, out_dir=out_dir, mime=mime, rules=rules, threads=threads)


def peak_rss_mb() -> float:
    """This process's peak resident set so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def once(
    source: str,
    mime: str,
    out_dir: str | None = None,
    lossless: bool = True,
    threads: int = 1,
    *,
    alternates: tuple[str, ...] = (),
    sizes: Ladder | None = None,
) -> JobResult:
    """Run the pipeline on `source` once, into `out_dir` (kept) or a scratch directory."""
    scratch = out_dir is None
    target = tempfile.mkdtemp(prefix="bench-pipeline-") if out_dir is None else out_dir
    job = make_job(
        source, mime, target, lossless=lossless, threads=threads, alternates=alternates, sizes=sizes
    )
    try:
        facts, sample = timed(lambda: imaging.process(job))
    finally:
        if scratch:
            shutil.rmtree(target, ignore_errors=True)
    lossless_variants = facts.processing["lossless_variants"]
    assert isinstance(lossless_variants, list)
    return JobResult(
        sample,
        os.getpid(),
        peak_rss_mb(),
        {v.name: v.bytes for v in facts.variants},
        str(facts.processing["encoding"]),
        lossless_variants,
        sum(v.alternates[0].bytes if v.alternates else v.bytes for v in facts.variants),
    )


@dataclass(frozen=True, slots=True)
class Throughput:
    """A batch of jobs over N workers."""

    images: int
    wall_s: float
    jobs: list[JobResult]

    @property
    def images_per_s(self) -> float:
        return self.images / self.wall_s


def start_pool(workers: int) -> ProcessPoolExecutor:
    """N workers set up like the service's pool: forkserver, `init_worker`."""
    return new_executor(workers, init_worker)


def warm(pool: ProcessPoolExecutor, workers: int, source: str, mime: str) -> None:
    """Start every worker and let each run the pipeline once (imports, first allocations)."""
    list(pool.map(once, [source] * 2 * workers, [mime] * 2 * workers))


def batch(pool: ProcessPoolExecutor, source: str, mime: str, images: int) -> Throughput:
    """`images` jobs submitted at once; wall time from the first submit to the last result."""
    start = time.perf_counter()
    futures = [pool.submit(once, source, mime) for _ in range(images)]
    jobs = [future.result() for future in futures]
    return Throughput(images, time.perf_counter() - start, jobs)
