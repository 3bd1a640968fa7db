"""How tests wait: a gate that jobs block on, and a deadline for the outside world.

A job that must be "mid-flight" runs `hold` in a worker process: it connects to the test's
`Gate` (a Unix socket by path, which the worker sandbox allows where it refuses TCP), says
which process it runs in, and blocks until the test opens the gate. The test
therefore knows the job is running (`entered` returned) and decides when it ends (`open`).
Sleeping instead would pass without testing on a machine faster or slower than guessed.

`wait_until` is for what no gate can reach (a spool file another process writes, a row,
nginx's cache): it polls, and fails the test at a deadline instead of guessing a delay.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Awaitable, Callable
from types import TracebackType

# Generous: a deadline only bounds a failing test, a passing one never waits for it.
DEADLINE_S = 30.0
# How often `wait_until` looks again; small next to what it waits for (process start, I/O).
POLL_S = 0.02


def hold(path: str) -> int:
    """A pool job: report this process's pid to the gate at `path`, block until the test
    opens it, and return the pid. Module-level and given a string, so it pickles anywhere."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(path)
        conn.sendall(f"{os.getpid()}\n".encode())
        while conn.recv(64):  # the gate never sends data: this returns at EOF, when opened
            pass
    return os.getpid()


class Gate:
    """A listening socket that `hold` jobs block on, one connection per job.

    Use as `async with Gate() as gate:`; leaving the block opens the gate, so no job
    outlives the test.
    """

    def __init__(self) -> None:
        self._arrivals: asyncio.Queue[int] = asyncio.Queue()
        self._opened = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._dir = ""
        self.path = ""

    async def __aenter__(self) -> Gate:
        # Not under pytest's tmp_path: a socket's path must fit in 108 bytes.
        self._dir = tempfile.mkdtemp(prefix="gate-")
        self.path = os.path.join(self._dir, "gate.sock")
        self._server = await asyncio.start_unix_server(self._arrived, self.path)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.open()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        shutil.rmtree(self._dir, ignore_errors=True)

    async def _arrived(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._arrivals.put(int(await reader.readline()))
        await self._opened.wait()
        writer.close()  # EOF: the job's `hold` returns
        await writer.wait_closed()

    async def entered(self, timeout_s: float = DEADLINE_S) -> int:
        """Wait for the next job to reach the gate; the pid of the process running it."""
        return await asyncio.wait_for(self._arrivals.get(), timeout_s)

    def open(self) -> None:
        """Let every job at the gate, and every later one, run to its end."""
        self._opened.set()


async def wait_until(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool],
    what: str,
    timeout_s: float = DEADLINE_S,
    poll_s: float = POLL_S,
) -> None:
    """Poll `check` (sync or async) until it is true; fail the test after `timeout_s`.

    Only for the outside world (another process, a server's cache), never for a job a
    gate could hold.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout_s} s waiting until {what}")
        await asyncio.sleep(poll_s)  # the deadline above bounds this wait, not a guess


async def wait_listening(port: int, what: str) -> None:
    """Wait until something accepts connections on loopback `port` (a child process that
    has just started); fail the test at the deadline."""

    async def listening() -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return False
        writer.close()
        return True

    await wait_until(listening, what)
