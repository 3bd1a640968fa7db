"""What the kernel says about processes: tree, CPU time, peak memory (Linux `/proc`)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

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
    total = 0
    for pid in pids:
        try:
            fields = _stat_fields(pid)
        except OSError:
            continue
        # utime, stime, cutime, cstime are fields 14-17 of stat; index 0 here is field 3.
        total += sum(int(value) for value in fields[11:15])
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
