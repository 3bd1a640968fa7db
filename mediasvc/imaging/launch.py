"""How the app starts image workers: exec'ed without its secrets.

Workers decode untrusted bytes with C libraries, so code an attacker runs there must find
no secret. `spawn_context` (in the app) is a `spawn` context whose children are exec'ed
with `worker_environment(os.environ)`: no `MEDIASVC_*` setting (the JWT and URL-signing
secrets, the database URL among them), no `AWS_*`, nothing whose name says secret,
password, token, key, credential or auth, no URL carrying a user. The secrets never enter
the worker, so neither `os.environ` nor `/proc/self/environ` nor the heap can give them
up; the executor's own respawns (`max_tasks_per_child`) launch the same way. The app's
`os.environ` is only read. multiprocessing's resource tracker, a helper process of the
pool, is started here too, stripped and non-dumpable.

The launch itself is CPython's, copied with the environment as the one change
(`imaging.cpython_launch`). What a worker does to itself once started is
`imaging.confine`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from multiprocessing import resource_tracker
from multiprocessing.context import BaseContext, SpawnContext, SpawnProcess
from multiprocessing.popen_spawn_posix import Popen as SpawnPopen
from multiprocessing.process import BaseProcess

from mediasvc.imaging.confine import make_undumpable
from mediasvc.imaging.cpython_launch import EnvironmentPopen, ensure_resource_tracker

# --------------------------------------------------------------------------
# What a worker's environment may hold
# --------------------------------------------------------------------------

# The service's own settings: workers get everything they need in the job and read none.
_STRIPPED_PREFIXES = ("MEDIASVC_", "AWS_")
# Words that name a credential in anyone's spelling (PGPASSWORD, GITHUB_TOKEN, SSH_AUTH_SOCK,
# GOOGLE_APPLICATION_CREDENTIALS, XAUTHORITY...). Stripping a harmless variable costs nothing.
_SECRET_WORDS = ("SECRET", "PASS", "TOKEN", "KEY", "CREDENTIAL", "AUTH", "COOKIE", "PRIVATE")
# A URL with a user part (`postgresql://app:pw@db/`, a Sentry DSN) is a credential whatever
# its variable is called.
_URL_WITH_USER = re.compile(r"://[^/@\s]*@")


def is_secret(name: str, value: str) -> bool:
    """Whether an environment variable must not reach a worker."""
    upper = name.upper()
    return (
        upper.startswith(_STRIPPED_PREFIXES)
        or any(word in upper for word in _SECRET_WORDS)
        or _URL_WITH_USER.search(value) is not None
    )


def worker_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` without its secrets: what a worker is exec'ed with."""
    return {name: value for name, value in environ.items() if not is_secret(name, value)}


# --------------------------------------------------------------------------
# Launch: spawn, exec'ed with the stripped environment
# --------------------------------------------------------------------------


class _SandboxPopen(EnvironmentPopen):
    """`spawn`'s launcher, but the child is exec'ed with `worker_environment(os.environ)`."""

    def _launch(self, process_obj: BaseProcess) -> None:
        _ensure_resource_tracker()  # before getfd, which would start CPython's own
        super()._launch(process_obj)

    def child_environment(self) -> dict[str, str]:
        return worker_environment(os.environ)


def _ensure_resource_tracker() -> None:
    """Start multiprocessing's resource tracker as the workers are started: exec'ed with
    `worker_environment`, and non-dumpable (`resource_tracker_main`).

    The tracker is a helper of the pool, a long-lived process of the app's user; CPython
    would exec it with the app's whole environment (`ResourceTracker.ensure_running`), where
    a worker without Landlock could read the secrets. The tracker is started here first
    (CPython's `ensure_running` then finds it alive), and again if it died.
    """
    ensure_resource_tracker(
        environment=lambda: worker_environment(os.environ), main=resource_tracker_main
    )


def resource_tracker_main(fd: int) -> None:
    """The resource tracker's process: made non-dumpable, then CPython's tracker loop."""
    make_undumpable()
    resource_tracker.main(fd)


class _SandboxProcess(SpawnProcess):
    @staticmethod
    def _Popen(process_obj: BaseProcess) -> SpawnPopen:
        return _SandboxPopen(process_obj)


class _SandboxContext(SpawnContext):
    Process = _SandboxProcess


_CONTEXT = _SandboxContext()


def spawn_context() -> BaseContext:
    """A `spawn` multiprocessing context whose processes start without the app's secrets.

    Give it to `ProcessPoolExecutor(mp_context=...)`: the first workers and every
    replacement the executor starts later are launched through it. multiprocessing's
    resource tracker is started here, as the workers are, before the executor's queues
    register their semaphores with it (`_ensure_resource_tracker`).
    """
    _ensure_resource_tracker()
    return _CONTEXT
