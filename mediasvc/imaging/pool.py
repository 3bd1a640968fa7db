"""The process pool that runs `pipeline.process`, bounded and self-healing.

Each worker is its own single-process executor, so a fault stays with its job:

- Bounded: at most `workers + queue_max` jobs are admitted; the next one gets `PoolBusy`
  at once instead of joining an unbounded backlog.
- Timed: a job that runs past `timeout_s` has its worker killed and replaced; the caller
  gets `JobTimedOut`. Other workers and their jobs are untouched.
- Crash-proof: a worker that dies (segfault, SIGKILL, OOM) fails only the job it ran
  (`WorkerCrashed`); it is replaced, so later jobs do not inherit `BrokenProcessPool`.
  A worker that died while idle fails no job: the job handed to it never began (its
  process records each job it begins, `_run_marked`), so it runs once more on a fresh
  worker. A job that began and took its worker down is never run again: a crafted file
  must not get to kill a second worker.
- Recycled: each worker process exits after `max_tasks_per_child` jobs, so a decoder leak
  is bounded; its address space is capped (`worker.init_worker`).

Workers start with `spawn` (never `fork` from a threaded event-loop process), exec'ed
without the app's secrets (`imaging.launch`), as direct children of the app, and die with
it even when it is SIGKILLed (`worker.init_worker`).
They start no process of their own (`imaging.confine`), so nothing a worker runs outlives it.

Confined (`imaging.confine`): before the first worker starts, the pool makes its own process
non-dumpable and refuses to start where a filter refuses Landlock (unless
`allow_unconfined`). Each worker may change the file system only in a directory of its own
under the pool's root (`work_dir`), a Landlock rule: `process` has it write a job's
variants into a fresh directory there, then moves them to the job's `out_dir`, after
checking that the paths the worker answered name regular files in that directory. A
worker that names anything else is not believed: it is killed, the job `WorkerCrashed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import itertools
import os
import shutil
import stat
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TypeVar

from mediasvc.imaging import confine, launch, pipeline
from mediasvc.imaging.job import Facts, Job
from mediasvc.imaging.worker import init_worker, ping

T = TypeVar("T")


class PoolError(Exception):
    """The pool could not run a job to its end; the job's own refusals are not these."""


class PoolBusy(PoolError):
    """Every worker is busy and the queue is full."""


class JobTimedOut(PoolError):
    """A job ran past its time limit; its worker was killed and replaced."""


class WorkerCrashed(PoolError):
    """The worker running a job died; it was replaced."""


@dataclass(frozen=True, eq=False)
class _Worker:
    """A single-process executor, the id of the last job its process began, and the only
    directory its processes may write in."""

    executor: ProcessPoolExecutor
    # Shared memory, written by the worker process as it begins a job (`_run_marked`) and
    # read here once that process is dead.
    began: ctypes.c_int64
    home: Path


# One attempt at a job on a worker, given the job's id (`_run_on` may make a second).
_Attempt = Callable[[_Worker, int], Awaitable[T]]


class ImagingPool:
    """Runs imaging jobs in worker processes; see the module docstring for the guarantees."""

    def __init__(
        self,
        *,
        workers: int,
        queue_max: int,
        timeout_s: float,
        memory_limit_mb: int | None = None,
        max_tasks_per_child: int = 200,
        allow_unconfined: bool = False,
        work_dir: Path | None = None,
    ) -> None:
        """`work_dir` holds the workers' own directories (default: the system's temporary
        directory); on the file system of the jobs' `out_dir`, variants are renamed rather
        than copied there. `allow_unconfined` lets workers run where a filter refuses
        Landlock (`confine.check_landlock`); otherwise that raises `LandlockRefused` here."""
        confine.check_landlock(allow_unconfined=allow_unconfined)
        # Before any worker exists: none may read this process's environment or memory.
        confine.make_undumpable()
        self._allow_unconfined = allow_unconfined
        self._root = Path(tempfile.mkdtemp(prefix=".mediasvc-workers-", dir=work_dir))
        self.workers = workers
        self._capacity = workers + queue_max
        self._timeout_s = timeout_s
        self._memory_limit_mb = memory_limit_mb
        self._max_tasks_per_child = max_tasks_per_child
        self._admitted = 0
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self._all: set[_Worker] = set()
        self._job_ids = itertools.count(1)  # 0 is what a fresh `_Worker.began` holds
        self.restarts = 0
        for _ in range(workers):
            self._idle.put_nowait(self._new_worker())

    def _new_worker(self) -> _Worker:
        context = launch.spawn_context()  # workers start without the app's secrets
        # Handed over at spawn, so the executor's own respawns (`max_tasks_per_child`)
        # share it too.
        began = context.RawValue(ctypes.c_int64, 0)
        home = Path(tempfile.mkdtemp(prefix="worker-", dir=self._root))  # 0700
        executor = ProcessPoolExecutor(
            max_workers=1,
            mp_context=context,
            initializer=_init_worker,
            initargs=(
                began,
                self._memory_limit_mb,
                os.getpid(),
                str(home),
                self._allow_unconfined,
            ),
            max_tasks_per_child=self._max_tasks_per_child,
        )
        worker = _Worker(executor, began, home)
        self._all.add(worker)
        return worker

    @property
    def has_room(self) -> bool:
        """Whether a job submitted now would be admitted."""
        return self._admitted < self._capacity

    @property
    def queued(self) -> int:
        """Jobs admitted and waiting for a worker."""
        return max(0, self._admitted - self.busy)

    @property
    def busy(self) -> int:
        """Workers running a job now."""
        return self.workers - self._idle.qsize()

    async def process(self, job: Job) -> Facts:
        """Run one imaging job; raises `ImageRejected` for bad input, or a pool error.

        The workers idle when the job starts lend it their cores (`Job.threads`): one upload
        to an idle service encodes its variants side by side. A job that starts while the
        others are busy, or queued behind them, gets one thread, so under load no job takes
        a core from another.
        """
        async with self._admitted_worker() as worker:
            lent = replace(job, threads=min(job.threads + self._idle.qsize(), self.workers))
            return await self._run_on(worker, partial(self._process_staged, lent))

    async def _process_staged(self, job: Job, worker: _Worker, job_id: int) -> Facts:
        """One attempt at `job` on `worker`: variants written in a fresh directory of the
        worker's own, then moved to `job.out_dir` (see the module docstring)."""
        staged = worker.home / f"job-{job_id}"
        # Creating, handing over (renames) and removing these are metadata on the spool's
        # disk: on the loop, cheaper than a thread hop (docs/decisions.md).
        staged.mkdir()
        try:
            staged_job = replace(job, out_dir=str(staged))
            facts = await self._run_once(worker, job_id, pipeline.process, staged_job)
            try:
                return _hand_over(facts, staged, Path(job.out_dir))
            except _Untrusted:
                _kill(worker.executor)  # its next job finds it dead and runs on a fresh one
                raise WorkerCrashed from None
        finally:
            shutil.rmtree(staged, ignore_errors=True)

    async def ping(self) -> None:
        """Prove the workers can run libvips now (for readiness checks), outside admission.

        A readiness probe must not take a slot an upload could have had, nor wait behind
        the queue: with a worker idle it runs a no-op job there; with every worker busy the
        pool is plainly working, and only a dead worker process makes it unready.
        """
        try:
            worker = self._idle.get_nowait()
        except asyncio.QueueEmpty:
            if any(_has_dead_process(worker.executor) for worker in list(self._all)):
                raise WorkerCrashed from None
            return
        await self._run_on(worker, self._call(ping))

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Run a picklable `fn(*args)` in a worker, with the pool's admission and timeout."""
        async with self._admitted_worker() as worker:
            return await self._run_on(worker, self._call(fn, *args))

    def _call(self, fn: Callable[..., T], *args: object) -> _Attempt[T]:
        return lambda worker, job_id: self._run_once(worker, job_id, fn, *args)

    @asynccontextmanager
    async def _admitted_worker(self) -> AsyncIterator[_Worker]:
        """An idle worker for one job, once admitted (`PoolBusy` if there is no room)."""
        if not self.has_room:
            raise PoolBusy
        self._admitted += 1
        try:
            yield await self._idle.get()
        finally:
            self._admitted -= 1

    async def _run_on(self, worker: _Worker, attempt: _Attempt[T], retry: bool = True) -> T:
        """Run `attempt` on `worker`, held by the caller, and give it (or its replacement)
        back to the idle queue; `WorkerCrashed` if its process died."""
        job_id = next(self._job_ids)
        try:
            return await attempt(worker, job_id)
        except BrokenProcessPool:
            # Read before `_replace`: only the dead process could have written it.
            began = worker.began.value == job_id
        fresh = self._replace(worker)
        if began or not retry:
            self._idle.put_nowait(fresh)
            raise WorkerCrashed
        # The process was dead (or dying) before it could begin the job, which therefore
        # did nothing: run it on the fresh worker. Once: if that one also dies first, the
        # fault is the pool's (workers that cannot start), and retrying would hide it.
        return await self._run_on(fresh, attempt, retry=False)

    async def _run_once(
        self, worker: _Worker, job_id: int, fn: Callable[..., T], *args: object
    ) -> T:
        """One attempt; `BrokenProcessPool` (at submit or later) is left to `_run_on`, with
        `worker` not given back."""
        future: Future[T] = worker.executor.submit(_run_marked, job_id, fn, *args)
        done = asyncio.wrap_future(future)
        try:
            # shield: a cancelled request must not abandon a busy worker as idle.
            result = await asyncio.wait_for(asyncio.shield(done), self._timeout_s)
        except TimeoutError:
            self._idle.put_nowait(self._replace(worker))
            raise JobTimedOut from None
        except BrokenProcessPool:
            raise
        except asyncio.CancelledError:
            # The caller left; the worker becomes idle again when its job ends.
            done.add_done_callback(partial(self._release_after, worker))
            raise
        except BaseException:
            self._idle.put_nowait(worker)  # the job raised (e.g. ImageRejected): worker is fine
            raise
        self._idle.put_nowait(worker)
        return result

    def _release_after(self, worker: _Worker, done: asyncio.Future[object]) -> None:
        broken = not done.cancelled() and isinstance(done.exception(), BrokenProcessPool)
        self._idle.put_nowait(self._replace(worker) if broken else worker)

    def _replace(self, worker: _Worker) -> _Worker:
        """Kill `worker`'s process and start a fresh worker in its place."""
        self.restarts += 1
        self._all.discard(worker)
        _kill(worker.executor)
        worker.executor.shutdown(wait=False, cancel_futures=True)
        shutil.rmtree(worker.home, ignore_errors=True)  # what a job left is already gone
        return self._new_worker()

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (for operators and fault tests)."""
        return [pid for worker in self._all for pid in _pids(worker.executor)]

    async def close(self) -> None:
        """Stop admitting work, let running jobs finish, then stop the workers."""
        self._capacity = 0
        workers, self._all = list(self._all), set()
        await asyncio.gather(
            *(
                asyncio.to_thread(w.executor.shutdown, wait=True, cancel_futures=True)
                for w in workers
            )
        )
        await asyncio.to_thread(shutil.rmtree, self._root, ignore_errors=True)


# In a worker process: where it records the job it begins (`_Worker.began`).
_began: ctypes.c_int64 | None = None


def _init_worker(
    began: ctypes.c_int64,
    memory_limit_mb: int | None,
    parent_pid: int,
    home: str,
    allow_unconfined: bool,
) -> None:
    global _began  # one per process, set once before any job, as libvips' own settings are
    _began = began
    init_worker(memory_limit_mb, parent_pid, writable=home, allow_unconfined=allow_unconfined)


def _run_marked(job_id: int, fn: Callable[..., T], *args: object) -> T:
    # Marked before `fn` runs: a process that dies with this mark unset never began the job.
    assert _began is not None, "a pool job outside a pool worker"
    _began.value = job_id
    return fn(*args)


def _pids(worker: ProcessPoolExecutor) -> list[int]:
    # The executor's own pid -> Process map; it cannot be asked otherwise.
    processes = getattr(worker, "_processes", None) or {}
    return [pid for pid, process in list(processes.items()) if process.is_alive()]


def _has_dead_process(worker: ProcessPoolExecutor) -> bool:
    processes = getattr(worker, "_processes", None) or {}
    return any(not process.is_alive() for process in list(processes.values()))


def _kill(worker: ProcessPoolExecutor) -> None:
    # The executor cannot cancel a running call; killing its process is the only way to
    # stop a hung decoder.
    processes = getattr(worker, "_processes", None) or {}
    for process in list(processes.values()):
        process.kill()


class _Untrusted(Exception):
    """A worker's answer names a file the pool may not take from it."""


def _hand_over(facts: Facts, staged: Path, out_dir: Path) -> Facts:
    """The variant files a worker wrote in `staged` (their alternates too), moved to
    `out_dir`, and the facts saying so; `_Untrusted` unless each is a regular file of one
    link directly in `staged`.

    The app reads, stores and serves these files: a worker must not get it to take a link
    to a file of the app's (the checks hold where Landlock, which already refuses links to
    workers, is missing).
    """
    moved = [
        replace(
            variant,
            path=_move(variant.path, staged, out_dir),
            alternates=tuple(
                replace(alternate, path=_move(alternate.path, staged, out_dir))
                for alternate in variant.alternates
            ),
        )
        for variant in facts.variants
    ]
    return replace(facts, variants=tuple(moved))


def _move(path: str, staged: Path, out_dir: Path) -> str:
    """One file of `_hand_over`, checked and moved; its new path."""
    source = Path(path)
    if source.parent != staged or source.name in ("", ".", ".."):
        raise _Untrusted(path)
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        raise _Untrusted(path) from None
    found = os.fstat(fd)
    if not stat.S_ISREG(found.st_mode) or found.st_nlink != 1:
        os.close(fd)
        raise _Untrusted(path)
    with os.fdopen(fd, "rb") as opened:
        target = out_dir / source.name
        try:
            os.replace(source, target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            with open(target, "xb") as copy:  # another file system: copy what was checked
                shutil.copyfileobj(opened, copy)
        else:
            moved_to = os.lstat(target)
            if (moved_to.st_dev, moved_to.st_ino) != (found.st_dev, found.st_ino):
                with contextlib.suppress(OSError):
                    os.unlink(target)
                raise _Untrusted(path)  # swapped between the check and the move
    return str(target)
