"""The image worker pool under faults: crashes, hangs, memory, cancellation, recycling.

A job that must be mid-flight is `gates.hold`: it blocks until the test opens its gate, so
the test knows it runs and decides when it ends. Picklable builtins (`os.abort`, `bytearray`,
`os.getpid`) crash, over-allocate or do nothing on purpose.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator

import pytest
from gates import Gate, hold

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
    """With max_tasks_per_child=2, a worker process is new after two jobs."""
    pool = ImagingPool(workers=1, queue_max=0, timeout_s=10, max_tasks_per_child=2)
    try:
        pids = []
        for _ in range(3):
            await pool.run(os.getpid)
            pids.append(set(pool.worker_pids()))
        assert pids[0] != pids[2] or not pids[2]
    finally:
        await pool.close()
