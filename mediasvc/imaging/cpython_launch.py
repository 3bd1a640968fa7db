"""CPython's multiprocessing launch code, copied, with one change: the child's environment.

multiprocessing has no way to give a spawned child its own environment: CPython's
`popen_spawn_posix.Popen._launch` execs through `util.spawnv_passfds`, which always passes
the parent's, and so does the resource tracker's launch. Removing keys inside the child
would be too late (the kernel's copy in `/proc/self/environ` and Python's in the heap
stay), and changing `os.environ` around the launch would race the app's other threads. So
the two launches are copied here, line for line, except that the exec is
`subprocess.Popen` with `env=`, `close_fds` and `pass_fds` (what `spawnv_passfds` does,
plus the environment):

- `EnvironmentPopen._launch` is `Lib/multiprocessing/popen_spawn_posix.py`'s
  `Popen._launch`. The `subprocess.Popen` object then owns reaping the child, so `poll`
  asks it rather than calling `waitpid` itself (`popen_fork.Popen.poll`).
- `ensure_resource_tracker` is `Lib/multiprocessing/resource_tracker.py`'s
  `ResourceTracker.ensure_running`, using the tracker's `_lock`, `_fd`, `_pid` and
  `_check_alive`.

Which environment, and why, is `imaging.launch`'s business; nothing here knows about
secrets. The copy mirrors CPython 3.11, 3.12 and 3.13 (`MIRRORED_VERSIONS`; last compared
against 3.11.7). `tests/test_cpython_launch.py` fails on any other version: on an upgrade,
compare the two files above with the new version's, bring the copy in line, then add the
version.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from multiprocessing import reduction, resource_tracker, spawn, util
from multiprocessing.context import set_spawning_popen
from multiprocessing.popen_spawn_posix import Popen as SpawnPopen
from multiprocessing.process import BaseProcess
from typing import Any

# The `sys.version_info[:2]` this copy was compared with.
MIRRORED_VERSIONS = frozenset({(3, 11), (3, 12), (3, 13)})


class EnvironmentPopen(SpawnPopen):
    """`spawn`'s launcher, but the child is exec'ed with `child_environment()`."""

    _fds: list[int]  # set by the base class; the descriptors the child keeps
    _child: subprocess.Popen[bytes]

    def child_environment(self) -> dict[str, str]:
        """The environment the child is exec'ed with; a subclass says which."""
        raise NotImplementedError

    def _launch(self, process_obj: BaseProcess) -> None:
        tracker_fd = resource_tracker.getfd()
        assert tracker_fd is not None  # getfd starts the tracker when it is not running
        self._fds.append(tracker_fd)
        prep_data = spawn.get_preparation_data(process_obj.name)
        fp = io.BytesIO()
        set_spawning_popen(self)
        try:
            reduction.dump(prep_data, fp)
            reduction.dump(process_obj, fp)
        finally:
            set_spawning_popen(None)

        parent_r = child_w = child_r = parent_w = None
        try:
            parent_r, child_w = os.pipe()
            child_r, parent_w = os.pipe()
            cmd = spawn.get_command_line(tracker_fd=tracker_fd, pipe_handle=child_r)
            self._fds.extend([child_r, child_w])
            self._child = subprocess.Popen(
                cmd,
                executable=spawn.get_executable(),
                env=self.child_environment(),
                close_fds=True,
                pass_fds=self._fds,
                restore_signals=False,  # as spawnv_passfds: the child inherits dispositions
            )
            self.pid = self._child.pid
            self.sentinel = parent_r
            with open(parent_w, "wb", closefd=False) as f:
                f.write(fp.getbuffer())
        finally:
            fds_to_close = [fd for fd in (parent_r, parent_w) if fd is not None]
            self.finalizer = util.Finalize(self, _close_fds, fds_to_close)
            for fd in (child_r, child_w):
                if fd is not None:
                    os.close(fd)

    def poll(self, flag: int = os.WNOHANG) -> int | None:
        if self.returncode is None:
            # Same convention as multiprocessing's own: the exit status, or -signal.
            self.returncode = self._child.poll() if flag == os.WNOHANG else self._child.wait()
        return self.returncode


def _close_fds(*fds: int) -> None:
    # util.close_fds, which typeshed does not declare.
    for fd in fds:
        os.close(fd)


class _Detached(subprocess.Popen[bytes]):
    """A child that outlives its Popen by design, as CPython's own tracker does: it exits
    when the app does (its pipe closes), so there is nothing to wait for or warn about."""

    def __del__(self) -> None:
        pass


_tracker: _Detached | None = None


def ensure_resource_tracker(
    *, environment: Callable[[], dict[str, str]], main: Callable[[int], None]
) -> None:
    """Start multiprocessing's resource tracker unless it is running (again if it died),
    exec'ed with `environment()`, its process running `main(fd)` (a module-level function
    that ends in `resource_tracker.main(fd)`) rather than `resource_tracker.main` itself.

    CPython's own `ensure_running` then finds it alive and starts none.
    """
    global _tracker
    tracker: Any = resource_tracker._resource_tracker
    with tracker._lock:
        if tracker._fd is not None:
            if tracker._check_alive():
                return
            os.close(tracker._fd)
            with contextlib.suppress(ChildProcessError):
                if tracker._pid is not None:
                    os.waitpid(tracker._pid, 0)
            tracker._fd = tracker._pid = None
        fds = [sys.stderr.fileno()] if sys.stderr is not None else []
        r, w = os.pipe()
        try:
            fds.append(r)
            command = f"from {main.__module__} import {main.__name__}; {main.__name__}({r})"
            executable = spawn.get_executable()
            # Blocked while the tracker starts, as CPython does (bpo-33613): it ignores them
            # once running, and a Ctrl-C before then must not kill it.
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
            try:
                _tracker = _Detached(
                    [executable, *util._args_from_interpreter_flags(), "-c", command],  # type: ignore[attr-defined]
                    executable=executable,
                    env=environment(),
                    close_fds=True,
                    pass_fds=fds,
                    restore_signals=False,
                )
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
        except BaseException:
            os.close(w)
            raise
        finally:
            os.close(r)
        tracker._fd, tracker._pid = w, _tracker.pid
