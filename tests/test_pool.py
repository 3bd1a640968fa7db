"""The image worker pool under faults: crashes, hangs, memory, cancellation, recycling.

Jobs here are picklable builtins (`time.sleep`, `os.abort`, `bytearray`) so that a worker
can be made to hang, crash or over-allocate on purpose.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator

import pytest

from mediasvc.imaging.pool import ImagingPool, JobTimedOut, PoolBusy, WorkerCrashed


@pytest.fixture
async def pool() -> AsyncIterator[ImagingPool]:
    """Two workers, a short timeout, a 512 MB address-space cap."""
    pool = ImagingPool(workers=2, queue_max=2, timeout_s=2.0, memory_limit_mb=512)
    await asyncio.gather(pool.ping(), pool.ping())  # both workers started before the test
    yield pool
    await pool.close()


async def test_crashed_worker_fails_only_its_own_job(pool: ImagingPool) -> None:
    """os.abort in one worker: that job is WorkerCrashed, the neighbour's job completes."""
    neighbour = asyncio.create_task(pool.run(time.sleep, 0.5))
    await asyncio.sleep(0.1)
    with pytest.raises(WorkerCrashed):
        await pool.run(os.abort)
    assert await neighbour is None
    assert pool.restarts == 1
    await pool.ping()


async def test_worker_killed_from_outside_is_replaced(pool: ImagingPool) -> None:
    """SIGKILL (as the OOM killer would) mid-job: WorkerCrashed, and the pool heals."""
    job = asyncio.create_task(pool.run(time.sleep, 5))
    await asyncio.sleep(0.3)
    before = set(pool.worker_pids())
    busy_pid = next(iter(before))
    for pid in before:
        # Kill whichever worker runs the sleep: both are candidates, the idle one is harmless.
        os.kill(pid, signal.SIGKILL)
    with pytest.raises(WorkerCrashed):
        await job
    for _ in range(2):
        await pool.ping()
    assert busy_pid not in pool.worker_pids()


async def test_hung_job_is_killed_and_the_pool_keeps_serving(pool: ImagingPool) -> None:
    """A job past the timeout: JobTimedOut, its worker replaced, others unaffected."""
    neighbour = asyncio.create_task(pool.run(time.sleep, 1.0))
    started = time.monotonic()
    with pytest.raises(JobTimedOut):
        await pool.run(time.sleep, 60)
    assert time.monotonic() - started < 30  # killed at the timeout, not after the sleep
    assert await neighbour is None
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


async def test_full_pool_refuses_at_once(pool: ImagingPool) -> None:
    """Beyond workers + queue, PoolBusy is immediate, and capacity returns afterwards."""
    jobs = [asyncio.create_task(pool.run(time.sleep, 0.5)) for _ in range(4)]
    await asyncio.sleep(0.05)
    assert not pool.has_room
    with pytest.raises(PoolBusy):
        await pool.run(time.sleep, 0)
    await asyncio.gather(*jobs)
    assert pool.has_room
    await pool.ping()


async def test_cancelled_caller_does_not_free_a_busy_worker_early(pool: ImagingPool) -> None:
    """The worker of a cancelled job stays busy until that job ends, then is reused."""
    job = asyncio.create_task(pool.run(time.sleep, 0.6))
    await asyncio.sleep(0.1)
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    assert pool.busy == 1
    await asyncio.sleep(0.8)
    assert pool.busy == 0


async def test_workers_are_recycled_after_their_job_quota() -> None:
    """With max_tasks_per_child=2, a worker process is new after two jobs."""
    pool = ImagingPool(workers=1, queue_max=0, timeout_s=10, max_tasks_per_child=2)
    try:
        pids = []
        for _ in range(3):
            await pool.run(time.sleep, 0)
            pids.append(set(pool.worker_pids()))
        assert pids[0] != pids[2] or not pids[2]
    finally:
        await pool.close()
