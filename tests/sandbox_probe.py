"""Jobs that tests/test_sandbox.py runs inside real image workers to try the sandbox.

Module-level functions of plain arguments, so they pickle by name. A spawned worker can
import this module because `spawn` hands it the parent's `sys.path`, where pytest's
rootdir conftest put `tests/`.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def environment() -> tuple[dict[str, str], bytes]:
    """This process's `os.environ`, and the environment it was exec'ed with."""
    return dict(os.environ), Path("/proc/self/environ").read_bytes()


def connect_tcp(port: int) -> None:
    """Open a TCP connection to 127.0.0.1:`port`, then close it."""
    socket.create_connection(("127.0.0.1", port), timeout=10).close()


def open_socket(family: int, kind: int) -> None:
    """Create a socket of `family` and `kind`, then close it."""
    socket.socket(family, kind).close()


def unix_round_trip() -> bytes:
    """Send a few bytes across an AF_UNIX socket pair and return what arrived."""
    left, right = socket.socketpair(socket.AF_UNIX)
    with left, right:
        left.sendall(b"ping")
        return right.recv(4)


def read_environ_of(pid: int) -> bytes:
    """The environment process `pid` was exec'ed with."""
    return Path(f"/proc/{pid}/environ").read_bytes()


def confinement_of_each_thread() -> list[dict[str, str]]:
    """`NoNewPrivs`, `Seccomp` and `CapEff` of every thread, after libvips ran a job."""
    import pyvips

    pyvips.Image.black(512, 512).gaussblur(2).avg()  # libvips' own threads start here
    wanted = ("NoNewPrivs", "Seccomp", "CapEff")
    found = []
    for task in Path("/proc/self/task").iterdir():
        lines = (task / "status").read_text().splitlines()
        fields = dict(line.split(":\t", 1) for line in lines if ":\t" in line)
        found.append({name: fields[name].strip() for name in wanted})
    return found
