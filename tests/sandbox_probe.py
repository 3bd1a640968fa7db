"""Jobs that tests/test_sandbox.py runs inside real image workers to try the sandbox.

Module-level functions of plain arguments, so they pickle by name. A spawned worker can
import this module because `spawn` hands it the parent's `sys.path`, where pytest's
rootdir conftest put `tests/`.
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading
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


def landlock_abi_or_error() -> int | str:
    """The Landlock ABI this process may use, or the name of the error that refused it."""
    from mediasvc.imaging import confine

    try:
        return confine.landlock_abi() or "none"
    except confine.LandlockRefused as refused:
        return errno_name(refused.errno or 0)


def errno_name(number: int) -> str:
    """`EPERM` for 1, and so on."""
    import errno

    return errno.errorcode.get(number, str(number))


def write_file(path: str) -> None:
    """Create (or overwrite) the file at `path`."""
    Path(path).write_bytes(b"written by a worker")


def make_symlink(target: str, link: str) -> None:
    """Create a symbolic link at `link` pointing to `target`."""
    os.symlink(target, link)


def fork_child() -> int:
    """Fork a child that exits at once; its pid."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def double_fork(path: str) -> None:
    """Fork a child that forks a grandchild and exits: the grandchild, adopted by init,
    connects to the gate at `path` (`gates.hold`), so it reports its pid and stays."""
    pid = os.fork()
    if pid == 0:
        try:
            if os.fork() == 0:
                import gates

                gates.hold(path)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def unshare(*steps: int) -> None:
    """unshare(2) with each of `steps` (CLONE_NEW* flags) in turn, as an attacker would
    (a user namespace first gives the capabilities a network namespace needs)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for flags in steps:
        if libc.unshare(flags) != 0:
            error = ctypes.get_errno()
            raise OSError(error, os.strerror(error))


def clone_process(flags: int) -> None:
    """The raw clone(2) of a new process with `flags` (x86_64 and aarch64 take the flags
    first); the child, if any, exits at once. Raises OSError when refused."""
    import platform
    import signal

    number = {"x86_64": 56, "aarch64": 220}[platform.machine()]
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    zero = ctypes.c_long(0)
    pid = libc.syscall(
        ctypes.c_long(number), ctypes.c_long(flags | signal.SIGCHLD), zero, zero, zero, zero
    )
    if pid == 0:
        os._exit(0)
    if pid < 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))
    os.waitpid(pid, 0)


def thread_id() -> int:
    """The kernel's id of a thread started here (threads must still start in a worker)."""
    found: list[int] = []
    thread = threading.Thread(target=lambda: found.append(threading.get_native_id()))
    thread.start()
    thread.join()
    return found[0]
