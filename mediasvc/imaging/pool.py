"""The process pool that runs `pipeline.process`, bounded and self-healing.

- Bounded: at most `workers + queue_max` jobs are admitted; the next one gets `PoolBusy`
  at once instead of joining an unbounded backlog.
- Timed: a job that runs past `timeout_s` has its pool's workers killed and a fresh pool
  started; the caller gets `JobTimedOut`.
- Crash-proof: a worker that dies (segfault, SIGKILL, OOM) breaks only the executor it ran
  in; that executor is replaced, so later jobs do not inherit `BrokenProcessPool`.
- Recycled: each worker exits after `max_tasks_per_child` jobs, so a decoder leak is bounded.

Workers start with `forkserver` (never `fork` from a threaded event-loop process) and run
`pipeline.init_worker` first.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from mediasvc.imaging import pipeline

T = TypeVar("T")


class PoolBusy(Exception):
    """Every worker is busy and the queue is full."""


class JobTimedOut(Exception):
    """A job ran past its time limit; its workers were killed."""


class WorkerCrashed(Exception):
    """The worker running a job died."""


class ImagingPool:
    """Runs imaging jobs in worker processes; see the module docstring for the guarantees."""

    def __init__(
        self, *, workers: int, queue_max: int, timeout_s: float, max_tasks_per_child: int = 200
    ) -> None:
        self._workers = workers
        self._capacity = workers + queue_max
        self._timeout_s = timeout_s
        self._max_tasks_per_child = max_tasks_per_child
        self._admitted = 0
        self._executor = self._new_executor()

    def _new_executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self._workers,
            mp_context=multiprocessing.get_context("forkserver"),
            initializer=pipeline.init_worker,
            max_tasks_per_child=self._max_tasks_per_child,
        )

    @property
    def has_room(self) -> bool:
        """Whether a job submitted now would be admitted."""
        return self._admitted < self._capacity

    async def process(self, job: pipeline.Job) -> pipeline.Facts:
        """Run one imaging job; raises `ImageRejected` for bad input, or a pool error."""
        return await self._run(pipeline.process, job)

    async def ping(self) -> None:
        """Prove a worker can run libvips now (for readiness checks)."""
        await self._run(pipeline.ping)

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        if not self.has_room:
            raise PoolBusy
        self._admitted += 1
        executor = self._executor
        try:
            future = asyncio.wrap_future(executor.submit(fn, *args))
            try:
                return await asyncio.wait_for(future, self._timeout_s)
            except TimeoutError:
                self._replace(executor)
                raise JobTimedOut from None
            except BrokenProcessPool:
                self._replace(executor)
                raise WorkerCrashed from None
        finally:
            self._admitted -= 1

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        """Kill `broken`'s workers and start a new executor, once per broken executor."""
        if broken is not self._executor:
            return
        self._executor = self._new_executor()
        _kill_workers(broken)
        broken.shutdown(wait=False, cancel_futures=True)

    async def close(self) -> None:
        """Stop accepting work, let running jobs finish, then stop the workers."""
        self._capacity = 0
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)


def _kill_workers(executor: ProcessPoolExecutor) -> None:
    # The executor cannot cancel a running call; killing its processes is the only way to
    # stop a hung decoder. `_processes` is the executor's own pid -> Process map.
    processes = getattr(executor, "_processes", None) or {}
    for process in list(processes.values()):
        process.kill()
