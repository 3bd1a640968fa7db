"""The image worker pool: real imaging jobs, and faults (crashes, hangs, memory,
cancellation, recycling).

A job that must be mid-flight is `gates.hold`: it blocks until the test opens its gate, so
the test knows it runs and decides when it ends. Picklable builtins (`os.abort`, `bytearray`,
`os.getpid`) crash, over-allocate or do nothing on purpose.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import images
import pytest
import pyvips
from gates import Gate, hold, wait_until
from imaging_support import make_job

from bench.photos import PHOTOS, camera_jpeg
from mediasvc.imaging import pipeline
from mediasvc.imaging import pool as pool_module
from mediasvc.imaging.job import Facts, ImageRejected
from mediasvc.imaging.pool import ImagingPool, JobTimedOut, PoolBusy, WorkerCrashed


@pytest.fixture
async def pool() -> AsyncIterator[ImagingPool]:
    """Two workers, a short timeout, a 512 MB address-space cap."""
    pool = ImagingPool(workers=2, queue_max=2, timeout_s=2.0, memory_limit_mb=512)
    await asyncio.gather(pool.ping(), pool.ping())  # both workers started before the test
    yield pool
    await pool.close()


@pytest.fixture
async def gate() -> AsyncIterator[Gate]:
    """A gate for `hold` jobs, opened when the test ends."""
    async with Gate() as gate:
        yield gate


async def test_crashed_worker_fails_only_its_own_job(pool: ImagingPool, gate: Gate) -> None:
    """os.abort in one worker: that job is WorkerCrashed, the neighbour's job completes."""
    neighbour = asyncio.create_task(pool.run(hold, gate.path))
    neighbour_pid = await gate.entered()
    with pytest.raises(WorkerCrashed):
        await pool.run(os.abort)
    gate.open()
    assert await neighbour == neighbour_pid
    assert pool.restarts == 1
    await pool.ping()


def report_then_die(path: str) -> None:
    """A pool job that kills its own worker, as a crafted file would: it reports its pid to
    the gate at `path` first (workers may write no file outside their own directory)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(path)
        conn.sendall(f"{os.getpid()}\n".encode())
    os.kill(os.getpid(), signal.SIGKILL)


async def test_job_that_kills_its_worker_is_not_run_again(pool: ImagingPool, gate: Gate) -> None:
    """A job whose worker dies while running it is WorkerCrashed after one run, on one worker."""
    other_pids = set(pool.worker_pids())
    with pytest.raises(WorkerCrashed):
        await pool.run(report_then_die, gate.path)
    crashed_pid = await gate.entered()
    assert crashed_pid in other_pids
    assert pool.restarts == 1  # each run kills a worker: a second run would replace another
    await asyncio.gather(pool.ping(), pool.ping())
    assert set(pool.worker_pids()) >= other_pids - {crashed_pid}


async def test_workers_that_die_before_any_job_fail_it_after_one_retry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Workers that cannot start: the job is retried once, then fails.

    Each worker is told its parent is pid 1, so `init_worker` exits at once, before any job
    (a memory cap is not enough: a worker sometimes survives it long enough to run one).
    """
    monkeypatch.setattr(pool_module, "os", SimpleNamespace(getpid=lambda: 1))
    pool = ImagingPool(workers=1, queue_max=0, timeout_s=30)
    try:
        with pytest.raises(WorkerCrashed):
            await pool.run(os.getpid)
        assert pool.restarts == 2  # the first worker, then the one the job was retried on
    finally:
        await pool.close()


async def test_worker_killed_from_outside_is_replaced(pool: ImagingPool, gate: Gate) -> None:
    """SIGKILL (as the OOM killer would) mid-job: WorkerCrashed, and the pool heals."""
    job = asyncio.create_task(pool.run(hold, gate.path))
    busy_pid = await gate.entered()
    os.kill(busy_pid, signal.SIGKILL)
    with pytest.raises(WorkerCrashed):
        await job
    for _ in range(2):
        await pool.ping()
    assert busy_pid not in pool.worker_pids()


async def test_hung_job_is_killed_and_the_pool_keeps_serving(pool: ImagingPool) -> None:
    """A job past the timeout: JobTimedOut, its worker replaced, others unaffected."""
    async with Gate() as neighbour_gate, Gate() as hung_gate:
        neighbour = asyncio.create_task(pool.run(hold, neighbour_gate.path))
        neighbour_pid = await neighbour_gate.entered()
        started = time.monotonic()
        hung = asyncio.create_task(pool.run(hold, hung_gate.path))  # its gate never opens
        await hung_gate.entered()
        neighbour_gate.open()  # ran alongside the hung job, ends well within its own timeout
        with pytest.raises(JobTimedOut):
            await hung
        assert time.monotonic() - started < 30  # killed at the timeout, not left hanging
        assert await neighbour == neighbour_pid
        assert pool.restarts == 1
        await pool.ping()


async def test_allocation_over_the_memory_cap_fails_the_job_not_the_worker(
    pool: ImagingPool,
) -> None:
    """A 1 GiB allocation under a 512 MB cap raises MemoryError; the worker lives on."""
    pids = set(pool.worker_pids())
    with pytest.raises(MemoryError):
        await pool.run(bytearray, 1024**3)
    await pool.ping()
    assert set(pool.worker_pids()) == pids
    assert pool.restarts == 0


async def test_full_pool_refuses_at_once(pool: ImagingPool, gate: Gate) -> None:
    """Beyond workers + queue, PoolBusy is immediate, and capacity returns afterwards."""
    jobs = [asyncio.create_task(pool.run(hold, gate.path)) for _ in range(4)]
    for _ in range(pool.workers):
        await gate.entered()  # both workers hold a job; the other two wait in the queue
    assert not pool.has_room
    with pytest.raises(PoolBusy):
        await pool.run(os.getpid)
    gate.open()
    await asyncio.gather(*jobs)
    assert pool.has_room
    await pool.ping()


async def test_readiness_ping_takes_no_admission_slot(pool: ImagingPool, gate: Gate) -> None:
    """With every worker busy and the queue full, the ping still answers, and admits nothing."""
    jobs = [asyncio.create_task(pool.run(hold, gate.path)) for _ in range(4)]
    for _ in range(pool.workers):
        await gate.entered()
    assert not pool.has_room
    await asyncio.wait_for(pool.ping(), 5)  # answers at once: the busy workers are alive
    assert pool.queued == 2  # the ping joined no queue
    gate.open()
    await asyncio.gather(*jobs)
    await pool.ping()  # with a worker idle, it runs a real no-op job there


async def test_cancelled_caller_does_not_free_a_busy_worker_early(
    pool: ImagingPool, gate: Gate
) -> None:
    """The worker of a cancelled job stays busy until that job ends, then is reused."""
    job = asyncio.create_task(pool.run(hold, gate.path))
    await gate.entered()
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    assert pool.busy == 1
    gate.open()
    # Two jobs held at once need both workers: the cancelled job's worker was freed for one.
    async with Gate() as again:
        jobs = [asyncio.create_task(pool.run(hold, again.path)) for _ in range(pool.workers)]
        for _ in jobs:
            await again.entered()
        again.open()
        await asyncio.gather(*jobs)
    assert pool.busy == 0
    assert pool.restarts == 0


async def test_workers_are_recycled_after_their_job_quota() -> None:
    """With max_tasks_per_child=2, the third job runs in a new worker process."""
    pool = ImagingPool(workers=1, queue_max=0, timeout_s=10, max_tasks_per_child=2)
    try:
        pids = [await pool.run(os.getpid) for _ in range(3)]
        assert pids[0] == pids[1]
        assert pids[2] != pids[1]
    finally:
        await pool.close()


def assert_same_files(expected: Facts, actual: Facts) -> None:
    """Both runs wrote the same variants: same names, sizes, mime types and bytes."""
    for e, a in zip(expected.variants, actual.variants, strict=True):
        assert (a.name, a.width, a.height, a.bytes, a.mime) == (
            e.name,
            e.width,
            e.height,
            e.bytes,
            e.mime,
        )
        assert Path(a.path).read_bytes() == Path(e.path).read_bytes(), a.name


def assert_alternates_beside(facts: Facts, out_dir: Path) -> None:
    """Each variant that kept an AVIF alternate has it in `out_dir`, of its size and listed
    bytes.

    Not compared with a direct call's bytes: libaom's output depends on the libvips thread
    count, which is one in a worker.
    """
    assert any(variant.alternates for variant in facts.variants)
    for variant in (v for v in facts.variants if v.alternates):
        [alternate] = variant.alternates
        path = Path(alternate.path)
        assert path == out_dir / f"{variant.name}.avif"
        image = pyvips.Image.new_from_file(str(path))
        assert (image.width, image.height) == (variant.width, variant.height)
        assert alternate.bytes == path.stat().st_size


class TestImagingJobs:
    """Real imaging jobs in a real pool: what the workers return, refuse and admit."""

    @pytest.fixture
    async def pool(self) -> AsyncIterator[ImagingPool]:
        """A real one-worker pool with no queue, closed after the test."""
        imaging_pool = ImagingPool(workers=1, queue_max=0, timeout_s=60)
        try:
            yield imaging_pool
        finally:
            await imaging_pool.close()

    async def test_pool_returns_the_same_facts_as_a_direct_call(
        self, tmp_path: Path, pool: ImagingPool
    ) -> None:
        """A job run in a hardened worker process writes the same files as a direct call."""
        data = images.make_jpeg(orientation=6)
        direct_job = make_job(tmp_path, data, "image/jpeg")
        pooled_job = make_job(tmp_path, data, "image/jpeg")

        direct = pipeline.process(direct_job)
        pooled = await pool.process(pooled_job)

        assert (pooled.width, pooled.height, pooled.frames) == (direct.width, direct.height, 1)
        assert (pooled.thumbhash, pooled.dominant_color, pooled.processing) == (
            direct.thumbhash,
            direct.dominant_color,
            direct.processing,
        )
        assert_same_files(direct, pooled)
        assert {Path(v.path).parent for v in pooled.variants} == {Path(pooled_job.out_dir)}

    async def test_alternates_written_in_a_worker_reach_the_jobs_out_dir(
        self, tmp_path: Path, pool: ImagingPool
    ) -> None:
        """AVIF alternates made in a hardened worker are handed over beside their variants,
        each the file its facts describe."""
        foliage = next(photo for photo in PHOTOS if photo.name == "foliage")
        job = make_job(tmp_path, camera_jpeg(foliage, 1200), "image/jpeg", alternates=("avif",))

        pooled = await pool.process(job)

        assert_alternates_beside(pooled, Path(job.out_dir))

    async def test_pool_passes_image_rejected_back_with_its_code(
        self, tmp_path: Path, pool: ImagingPool
    ) -> None:
        """ImageRejected raised in a worker reaches the caller with code and detail intact."""
        job = make_job(tmp_path, images.make_png(), "image/jpeg")

        with pytest.raises(ImageRejected) as caught:
            await pool.process(job)

        assert caught.value.code == "invalid_image"
        assert caught.value.detail == "The file is damaged or not a decodable image."
        assert "Not a JPEG file" in caught.value.reason

    @pytest.mark.parametrize("reaped", [False, True], ids=["dying", "reaped"])
    async def test_worker_killed_while_idle_does_not_fail_the_next_job(
        self, tmp_path: Path, pool: ImagingPool, reaped: bool
    ) -> None:
        """An idle worker SIGKILLed (as the OOM killer would), whether still dying or already
        reaped: the next job never reached it, so it runs on a fresh worker and writes its files."""
        data = images.make_jpeg()
        direct = pipeline.process(make_job(tmp_path, data, "image/jpeg"))
        job = make_job(tmp_path, data, "image/jpeg")
        await pool.ping()
        (idle_pid,) = pool.worker_pids()

        os.kill(idle_pid, signal.SIGKILL)  # blocked waiting for a job, it dies without one
        if reaped:
            await wait_until(lambda: idle_pid not in pool.worker_pids(), "the worker is gone")
        pooled = await pool.process(job)

        assert_same_files(direct, pooled)
        assert pool.restarts == 1
        assert idle_pid not in pool.worker_pids()
        assert len(pool.worker_pids()) == 1

    async def test_full_pool_refuses_at_once_and_recovers(
        self, tmp_path: Path, pool: ImagingPool
    ) -> None:
        """With one worker and no queue a concurrent second job gets PoolBusy; later ones run."""
        job = make_job(tmp_path, images.make_jpeg(), "image/jpeg")

        first, second = await asyncio.gather(
            pool.process(job), pool.process(job), return_exceptions=True
        )

        assert isinstance(first, Facts), first
        assert isinstance(second, PoolBusy), second
        assert pool.has_room
        third = await pool.process(job)
        assert third == first
