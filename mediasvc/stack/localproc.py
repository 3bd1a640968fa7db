"""Child processes on this machine (nginx, the app, test servers): ports, start, stop."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from typing import Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_listening(
    process: subprocess.Popen[Any], port: int, *, host: str = "127.0.0.1", timeout_s: float
) -> bool:
    """Whether `process` accepts connections on `port` within `timeout_s`; False if it
    exited or the time ran out (the caller says which error that is)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def stop(
    process: subprocess.Popen[Any], sig: int = signal.SIGTERM, *, timeout_s: float = 10.0
) -> None:
    """Ask `process` to stop with `sig`; SIGKILL it if it is still there after `timeout_s`."""
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
