"""The syscall filter a systemd unit gives its service, rebuilt here to run the app under it.

systemd turns a unit's `SystemCallFilter=` lines into a seccomp filter with libseccomp; this
module does the same from the unit file's own lines, so a test follows the unit:

- `allowed_syscalls(lines)`: an allow-list unit starts from `@default` (systemd adds it), each
  allow line adds names, each `~` line removes them; groups are expanded by the machine's
  own systemd (`systemd-analyze syscall-filter`), so `@system-service` means what it means
  to the systemd that would run the unit.
- Run as a script (`python tests/unit_filter.py SPEC`), it is the app under that filter: it
  gives itself the unit's credentials (`NoNewPrivileges=`, `CapabilityBoundingSet=` empty, as
  `User=` would), loads the filter with libseccomp, starts a same-user process holding a
  secret and an `ImagingPool`, and prints as JSON what one worker could read.

`SystemCallArchitectures=`, `RestrictNamespaces=` and `RestrictAddressFamilies=` (further
filters of systemd's) are left out: they refuse nothing the sandbox needs.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from functools import cache

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
# <linux/prctl.h>, <linux/capability.h>
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAPBSET_DROP = 24
_CAP_LAST = 63
# <seccomp.h>
_SCMP_ACT_ALLOW = 0x7FFF0000


def unit_values(unit: str, key: str) -> list[str]:
    """The values of every `key=` line of the unit text `unit`, in order."""
    prefix = f"{key}="
    return [line[len(prefix) :].strip() for line in unit.splitlines() if line.startswith(prefix)]


@cache
def expand(name: str) -> frozenset[str]:
    """The system calls a `SystemCallFilter=` word names: a group, expanded, or a call."""
    if not name.startswith("@"):
        return frozenset({name})
    assert SYSTEMD_ANALYZE is not None
    listing = subprocess.run(
        [SYSTEMD_ANALYZE, "syscall-filter", "--no-pager", name],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.splitlines()
    words = [word for word in (line.strip() for line in listing[1:]) if word[:1] not in ("", "#")]
    return frozenset().union(*(expand(word) for word in words))


def allowed_syscalls(lines: Iterable[str]) -> frozenset[str]:
    """The calls an allow-list unit's `SystemCallFilter=` lines let through, read as systemd
    reads them."""
    allowed = set(expand("@default"))
    for number, line in enumerate(lines):
        deny = line.startswith("~")
        if number == 0 and deny:
            raise ValueError("a deny-list filter; only allow-lists are rebuilt here")
        names = frozenset().union(*(expand(word) for word in line.lstrip("~").split()))
        if deny:
            allowed -= names
        else:
            allowed |= names
    return frozenset(allowed)


def error_number(unit: str) -> int:
    """The errno the unit's filter answers refused calls with (`SystemCallErrorNumber=`)."""
    (name,) = unit_values(unit, "SystemCallErrorNumber")
    return int(getattr(errno, name))


# --------------------------------------------------------------------------
# The script: the app, under the unit's filter
# --------------------------------------------------------------------------


def _take_unit_credentials(libc: ctypes.CDLL) -> None:
    """No capability now or after any execve, as the unit's service user has none."""
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
    for capability in range(_CAP_LAST + 1):
        libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0)  # EINVAL past the kernel's last
    from mediasvc.imaging import confine

    confine._drop_capabilities(libc)


def _load_filter(allowed: Iterable[str], refusal: int) -> None:
    seccomp = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    seccomp.seccomp_init.restype = ctypes.c_void_p
    seccomp.seccomp_syscall_resolve_name.argtypes = (ctypes.c_char_p,)
    context = ctypes.c_void_p(seccomp.seccomp_init(ctypes.c_uint32(0x00050000 | refusal)))
    assert context.value, "seccomp_init failed"
    for name in sorted(allowed):
        number = seccomp.seccomp_syscall_resolve_name(name.encode())
        if number < 0:
            continue  # not a call of this architecture (systemd skips these too)
        if seccomp.seccomp_rule_add(context, ctypes.c_uint32(_SCMP_ACT_ALLOW), number, 0) != 0:
            raise OSError(f"seccomp_rule_add({name}) failed")
    if seccomp.seccomp_load(context) != 0:
        raise OSError("seccomp_load failed")
    seccomp.seccomp_release(context)


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


async def _app(spec: dict[str, object], holder: int, warnings: _Warnings) -> dict[str, object]:
    import sandbox_probe

    from mediasvc.imaging import confine
    from mediasvc.imaging.pool import ImagingPool

    secret = str(spec["secret"]).encode()
    found: dict[str, object] = {"refused": None, "warnings": warnings.messages}
    try:
        pool = ImagingPool(
            workers=1, queue_max=0, timeout_s=60, allow_unconfined=bool(spec["allow"])
        )
    except confine.LandlockRefused as refused:
        found["refused"] = str(refused)
        return found
    try:
        found["worker_landlock_abi"] = await pool.run(sandbox_probe.landlock_abi_or_error)
        for name, pid in (("holder", holder), ("app", os.getpid())):
            try:
                environ = await pool.run(sandbox_probe.read_environ_of, pid)
            except PermissionError:
                found[f"{name}_environ"] = "refused"
            else:
                found[f"{name}_environ"] = "secret" if secret in environ else "read"
        try:
            await pool.run(sandbox_probe.write_file, str(spec["outside"]))
        except PermissionError:
            found["write_outside"] = "refused"
        else:
            found["write_outside"] = "written"
    finally:
        await pool.close()
    return found


def main(argv: list[str]) -> int:
    """Take the unit's credentials and filter, run the app's pool, print what a worker read."""
    spec = json.loads(argv[1])
    warnings = _Warnings()
    logging.getLogger("mediasvc").addHandler(warnings)
    libc = ctypes.CDLL(None, use_errno=True)
    _take_unit_credentials(libc)
    _load_filter(spec["allowed"], int(spec["errno"]))
    # Like multiprocessing's resource tracker or a sibling node: same user, a secret in its
    # environment, dumpable.
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"],
        stdin=subprocess.PIPE,
        env={**os.environ, "MEDIASVC_JWT_SECRET": str(spec["secret"])},
    )
    try:
        print(json.dumps(asyncio.run(_app(spec, holder.pid, warnings))))
    finally:
        holder.communicate(b"")
    return 0


if __name__ == "__main__":  # with tests/ first on sys.path, as for any script
    sys.exit(main(sys.argv))
