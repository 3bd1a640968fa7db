"""Processes the bench starts and measures: what the kernel says about them (tree, CPU
time, peak memory, from Linux `/proc`), the way out of a context manager that started some
(`Stoppable`), and the local S3-compatible server the bench and the tests talk to
(`moto_server`)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from mediasvc.stack.localproc import free_port, wait_until_listening

_TICKS = os.sysconf("SC_CLK_TCK")
_PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str]:
    # The command name is in parentheses and may hold spaces: split after the last ")".
    raw = (_PROC / str(pid) / "stat").read_text()
    return raw[raw.rindex(")") + 2 :].split()


def parents() -> dict[int, int]:
    """pid -> parent pid, for every process alive now."""
    found = {}
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            try:
                found[int(entry.name)] = int(_stat_fields(int(entry.name))[1])
            except (OSError, ValueError):
                continue  # gone between listing and reading
    return found


def descendants(root: int, tree: dict[int, int] | None = None) -> list[int]:
    """`root` and every process below it."""
    tree = parents() if tree is None else tree
    children: dict[int, list[int]] = {}
    for pid, parent in tree.items():
        children.setdefault(parent, []).append(pid)
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU of these processes, with their reaped children's."""
    return _cpu_fields(pids, 11, 15)


def reaped_cpu_seconds(pids: Iterable[int]) -> float:
    """The part of `cpu_seconds` that these processes' reaped children spent."""
    return _cpu_fields(pids, 13, 15)


def _cpu_fields(pids: Iterable[int], first: int, end: int) -> float:
    # utime, stime, cutime, cstime are fields 14-17 of stat; index 0 here is field 3.
    total = 0
    for pid in pids:
        try:
            fields = _stat_fields(pid)
        except OSError:
            continue
        total += sum(int(value) for value in fields[first:end])
    return total / _TICKS


def peak_rss_mb(pid: int) -> float:
    """The process's high-water resident set (VmHWM), or 0 if it is gone."""
    try:
        for line in (_PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cmdline(pid: int) -> str:
    """The process's command line, arguments joined by spaces ("" if it is gone)."""
    try:
        return (_PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


class Stoppable:
    """A context manager over processes it started: `close()` stops them, on the way out of
    the `with` and wherever starting them failed half way."""

    def close(self) -> None:
        raise NotImplementedError

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@contextmanager
def moto_server(**env: str) -> Iterator[str]:
    """A local S3-compatible server (moto_server, with `env` added to its environment) in its
    own process on a free port; yields its URL, and stops it on the way out."""
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        if not wait_until_listening(process, port, timeout_s=30):
            raise RuntimeError("moto_server did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def exit_on_sigterm() -> None:
    """Make SIGTERM unwind this process's `with` blocks, as Ctrl-C does: the stacks,
    clusters and servers a run starts live in sessions of their own, so a signal to the run
    does not reach them, and only their context managers stop them (a test's timeout sends
    SIGTERM)."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def free_ports(count: int) -> int:
    """The first of `count` consecutive ports free on 127.0.0.1 (app node i of a dev stack
    listens on the first + i)."""
    while True:
        first = free_port()
        if first + count <= 65535 and all(_port_free(first + i) for i in range(1, count)):
            return first


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
