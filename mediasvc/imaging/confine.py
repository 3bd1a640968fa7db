"""Confinement of an image worker, from inside: it holds nothing worth stealing and reaches
nothing.

Workers decode untrusted bytes with C libraries (libwebp's CVE-2023-4863 is the model), so
code an attacker runs there must find no way out. `confine_worker`, first thing in the
worker (`imaging.worker.init_worker`): `PR_SET_NO_NEW_PRIVS`; `PR_SET_DUMPABLE` 0 (no core
files full of someone's photo, no `/proc/<pid>` access from a sibling); no capability (a
worker of an app run as root would have them all); a Landlock domain of its own, which
keeps the worker out of every other process's `/proc/<pid>/environ` and memory (the
app's, the resource tracker's, a sibling's: they run as the same user), from ABI 4 and 6
out of TCP and of other processes' signals and abstract Unix sockets, and, given a
directory, lets it change the file system only there (files and directories, no link);
then a seccomp filter on every thread that refuses `socket`/`socketpair` for any family
but `AF_UNIX` (`EACCES`), and `io_uring` (which would run socket operations behind the
filter's back), `ptrace`, `process_vm_readv`/`writev`, `pidfd_getfd`, `fork`, `vfork`,
`unshare`, `setns` and a `clone` that is not a thread or makes a namespace (`EPERM`);
`clone3` is "not implemented", so glibc starts threads with `clone`. The filter kills the
process for a syscall made through another ABI (i386, x32), whose numbers it does not
check. Filter and domain survive `execve`.

The app's side uses two pieces of this module before its first worker (`ImagingPool`):
`check_landlock` refuses to go on where a filter refuses Landlock (`LandlockRefused`,
unless explicitly allowed), and `make_undumpable` keeps workers out of the app's
`/proc/<pid>` even without it. How workers are started without the app's secrets is
`imaging.launch`.

Not covered (docs/decisions.md): reading the file system (a worker can read what the
service user can), `AF_UNIX` sockets by path (PostgreSQL's, if it trusts the user by peer),
and other processes' `/proc` on kernels without Landlock (but the app and the tracker are
not dumpable). An architecture without a syscall table here refuses to start a worker
rather than run one unfiltered.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import platform
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


class SandboxUnavailable(OSError):
    """This machine cannot confine a worker; the worker refuses to start."""


# <linux/prctl.h>
_PR_GET_DUMPABLE = 3
_PR_SET_DUMPABLE = 4
_PR_SET_NO_NEW_PRIVS = 38
# <linux/capability.h>
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
# <linux/seccomp.h>
_SECCOMP_SET_MODE_FILTER = 1
_SECCOMP_FILTER_FLAG_TSYNC = 1  # every thread of the process, not only the caller
_SECCOMP_RET_KILL_PROCESS = 0x80000000
_SECCOMP_RET_ERRNO = 0x00050000
_SECCOMP_RET_ALLOW = 0x7FFF0000
# struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6].
_OFFSET_NR = 0
_OFFSET_ARCH = 4
_OFFSET_ARG0 = 16  # its low 32 bits on these little-endian ABIs: `int domain` for socket
# <linux/filter.h> classic BPF
_BPF_LD_W_ABS = 0x20
_BPF_JEQ_K = 0x15
_BPF_JGE_K = 0x35
_BPF_RET_K = 0x06
# x86_64 numbers x32 syscalls with this bit set: a second table this filter does not check.
_X32_SYSCALL_BIT = 0x40000000
# Numbers shared by every architecture (asm-generic, since 5.1).
_IO_URING = (425, 426, 427)  # io_uring_setup, io_uring_enter, io_uring_register
_CLONE3 = 435
_PIDFD_GETFD = 438
_LANDLOCK_CREATE_RULESET, _LANDLOCK_ADD_RULE, _LANDLOCK_RESTRICT_SELF = 444, 445, 446
_BPF_JSET_K = 0x45
# <linux/sched.h>: clone(2) flags. A thread shares the thread group; every CLONE_NEW* flag
# makes a namespace (CLONE_NEWTIME, 0x80, only through clone3 and unshare, both refused).
_CLONE_THREAD = 0x00010000
_CLONE_NEW_ANY = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000
_CLONE_NEW_ANY |= 0x40000000  # NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET
# <linux/landlock.h>
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_RULE_PATH_BENEATH = 1
_LANDLOCK_ACCESS_FS_WRITE_FILE = 1 << 1
_LANDLOCK_ACCESS_FS_REMOVE_DIR = 1 << 4
_LANDLOCK_ACCESS_FS_REMOVE_FILE = 1 << 5
_LANDLOCK_ACCESS_FS_MAKE_CHAR = 1 << 6
_LANDLOCK_ACCESS_FS_MAKE_DIR = 1 << 7
_LANDLOCK_ACCESS_FS_MAKE_REG = 1 << 8
_LANDLOCK_ACCESS_FS_MAKE_SOCK = 1 << 9
_LANDLOCK_ACCESS_FS_MAKE_FIFO = 1 << 10
_LANDLOCK_ACCESS_FS_MAKE_BLOCK = 1 << 11
_LANDLOCK_ACCESS_FS_MAKE_SYM = 1 << 12
_LANDLOCK_ACCESS_FS_REFER = 1 << 13  # ABI 2
_LANDLOCK_ACCESS_FS_TRUNCATE = 1 << 14  # ABI 3
# Every right that changes the file system, as ABI 1 knows them. Reading and executing
# stay unhandled: Python and libvips read their modules, libraries and the job's source.
_LANDLOCK_FS_WRITES = (
    _LANDLOCK_ACCESS_FS_WRITE_FILE
    | _LANDLOCK_ACCESS_FS_REMOVE_DIR
    | _LANDLOCK_ACCESS_FS_REMOVE_FILE
    | _LANDLOCK_ACCESS_FS_MAKE_CHAR
    | _LANDLOCK_ACCESS_FS_MAKE_DIR
    | _LANDLOCK_ACCESS_FS_MAKE_REG
    | _LANDLOCK_ACCESS_FS_MAKE_SOCK
    | _LANDLOCK_ACCESS_FS_MAKE_FIFO
    | _LANDLOCK_ACCESS_FS_MAKE_BLOCK
    | _LANDLOCK_ACCESS_FS_MAKE_SYM
)
# What a worker may do beneath its own directory: write files and directories of its own.
# No symbolic link, hard link (REFER), device, FIFO or socket, anywhere.
_LANDLOCK_FS_JOB_WRITES = (
    _LANDLOCK_ACCESS_FS_WRITE_FILE
    | _LANDLOCK_ACCESS_FS_REMOVE_DIR
    | _LANDLOCK_ACCESS_FS_REMOVE_FILE
    | _LANDLOCK_ACCESS_FS_MAKE_DIR
    | _LANDLOCK_ACCESS_FS_MAKE_REG
)
_LANDLOCK_ACCESS_NET_BIND_TCP = 1 << 0
_LANDLOCK_ACCESS_NET_CONNECT_TCP = 1 << 1
_LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0
_LANDLOCK_SCOPE_SIGNAL = 1 << 1


@dataclass(frozen=True, slots=True)
class _Arch:
    """The syscall numbers the filter needs, for one architecture's native ABI."""

    audit_arch: int  # AUDIT_ARCH_* from <linux/audit.h>
    seccomp: int
    socket: int
    socketpair: int
    ptrace: int
    process_vm_readv: int
    process_vm_writev: int
    clone: int
    unshare: int
    setns: int
    forks: tuple[int, ...]  # fork and vfork, where the architecture still has them
    x32_bit: bool  # whether a second ABI hides behind _X32_SYSCALL_BIT


_ARCHES = {
    "x86_64": _Arch(0xC000003E, 317, 41, 53, 101, 310, 311, 56, 272, 308, (57, 58), True),
    "aarch64": _Arch(0xC00000B7, 277, 198, 199, 117, 270, 271, 220, 97, 268, (), False),
}


def confine_worker(*, writable: str | None = None, allow_unconfined: bool = False) -> None:
    """Confine this process for good: no new privileges, no network, no other processes,
    no child processes or namespaces, and with `writable` no file-system change outside it.

    Call it first in a worker, while it has one thread (Landlock confines only the calling
    thread and those it starts later; the seccomp filter is put on every thread). Raises
    `SandboxUnavailable` when seccomp cannot be used, or when something refuses Landlock
    (`LandlockRefused`) unless `allow_unconfined`; without Landlock in the kernel, logs and
    goes on (`check_landlock`).
    """
    arch = _native_arch()
    if len(os.listdir("/proc/self/task")) != 1:
        raise SandboxUnavailable("the worker started a thread before it was confined")
    libc = ctypes.CDLL(None, use_errno=True)
    _prctl(libc, _PR_SET_NO_NEW_PRIVS, 1)  # required for an unprivileged filter and domain
    _prctl(libc, _PR_SET_DUMPABLE, 0)
    _drop_capabilities(libc)
    abi = check_landlock(allow_unconfined=allow_unconfined)
    if abi is not None:
        _enter_landlock_domain(libc, abi, writable)
    _install_filter(libc, arch)


def make_undumpable() -> None:
    """Make this process (the app, which holds the secrets) non-dumpable, for good.

    A non-dumpable process's `/proc/<pid>/environ`, `/mem` and ptrace are open only to a
    process with CAP_SYS_PTRACE, so a worker of the same user cannot read them even where
    Landlock is missing or allowed off (`MEDIASVC_ALLOW_UNCONFINED_WORKERS`). It also
    means no core file of the app. Only `execve` resets it, and the app never execs itself.
    """
    _prctl(ctypes.CDLL(None, use_errno=True), _PR_SET_DUMPABLE, 0)


def is_dumpable() -> bool:
    """Whether this process is dumpable (PR_GET_DUMPABLE)."""
    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.prctl(ctypes.c_ulong(_PR_GET_DUMPABLE), 0, 0, 0, 0)) == 1


def _native_arch() -> _Arch:
    machine = platform.machine()
    arch = _ARCHES.get(machine)
    if arch is None:
        raise SandboxUnavailable(f"no seccomp syscall table for {machine}; refusing to start")
    return arch


def _prctl(libc: ctypes.CDLL, option: int, value: int) -> None:
    if libc.prctl(*(ctypes.c_ulong(arg) for arg in (option, value, 0, 0, 0))) != 0:
        err = ctypes.get_errno()
        raise SandboxUnavailable(err, f"prctl({option}) failed: {os.strerror(err)}")


def _syscall(libc: ctypes.CDLL, number: int, *args: object) -> int:
    # syscall(2) is variadic and reads each argument as a long: a bare int would leave the
    # upper half of its register undefined.
    libc.syscall.restype = ctypes.c_long
    wide = [ctypes.c_long(arg) if isinstance(arg, int) else arg for arg in args]
    return int(libc.syscall(ctypes.c_long(number), *wide))


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


def _drop_capabilities(libc: ctypes.CDLL) -> None:
    """No capability left (only a worker of a root app has any): with none, Linux lets a
    process read no other's `/proc/<pid>/environ` that holds more (the app, the tracker),
    and with no_new_privs no `execve` gives them back."""
    status = Path("/proc/self/status").read_text().splitlines()
    sets = [line.split()[1] for line in status if line.startswith(("CapInh:", "CapPrm:"))]
    if all(int(value, 16) == 0 for value in sets):
        # The usual case (a service user). capset is then not even called: systemd's
        # `~@privileged` filter in deploy/ refuses it.
        return
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()  # version 3 takes 64 capability bits as two 32-bit halves
    if libc.capset(ctypes.byref(header), data) != 0:
        err = ctypes.get_errno()
        raise SandboxUnavailable(err, f"capset failed: {os.strerror(err)}")


class LandlockRefused(SandboxUnavailable):
    """The kernel may have Landlock, but its calls are refused (EPERM): a seccomp filter,
    systemd's `SystemCallFilter=` or a container's profile, stands between."""


class _LandlockRulesetAttr(ctypes.Structure):
    # Fields after the first are read only by kernels that know them (ABI 4, ABI 6); older
    # kernels accept the longer struct as long as those fields are zero.
    _fields_ = (
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    )


class _LandlockPathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # __attribute__((packed)) in <linux/landlock.h>
    _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))


# Where landlock_create_ruleset fails like this, the kernel has no Landlock: not built
# (ENOSYS) or not enabled at boot (EOPNOTSUPP). Any other failure is something refusing it.
_NO_LANDLOCK = frozenset({errno.ENOSYS, errno.EOPNOTSUPP})

UNCONFINED_HINT = (
    "allow landlock_create_ruleset, landlock_add_rule and landlock_restrict_self in that "
    "filter (deploy/mediasvc@.service does), or set MEDIASVC_ALLOW_UNCONFINED_WORKERS=true "
    "to run workers without Landlock"
)


def landlock_abi() -> int | None:
    """The kernel's Landlock ABI version, or None where Landlock is not built or enabled.

    Raises `LandlockRefused` when the call is refused (EPERM): the kernel's answer is then
    unknown, and "no Landlock" would be a guess that turns the workers' domain off.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    abi = _syscall(libc, _LANDLOCK_CREATE_RULESET, None, 0, _LANDLOCK_CREATE_RULESET_VERSION)
    if abi > 0:
        return abi
    err = ctypes.get_errno()
    if err in _NO_LANDLOCK:
        return None
    raise LandlockRefused(
        err,
        f"landlock_create_ruleset is refused ({errno.errorcode.get(err, err)}): a seccomp "
        "filter (systemd's SystemCallFilter=, a container's profile) blocks Landlock, so "
        "image workers could read other processes' /proc/<pid>/environ and memory; "
        + UNCONFINED_HINT,
    )


def check_landlock(*, allow_unconfined: bool) -> int | None:
    """The Landlock ABI workers will use, None when they will have no domain (logged).

    Refused Landlock (`LandlockRefused`) is raised unless `allow_unconfined`. The app calls
    this before it starts a worker, so such a node refuses to start with one line; each
    worker calls it again as it confines itself.
    """
    try:
        abi = landlock_abi()
    except LandlockRefused as refused:
        if not allow_unconfined:
            raise
        log.warning(
            "worker sandbox: Landlock refused (%s) and MEDIASVC_ALLOW_UNCONFINED_WORKERS is "
            "set: workers run without a Landlock domain, and can read /proc/<pid>/environ of "
            "other processes of their user and write wherever it may",
            errno.errorcode.get(refused.errno or 0, refused.errno),
        )
        return None
    if abi is None:
        log.warning(
            "worker sandbox: no Landlock on this kernel; this worker can read "
            "/proc/<pid>/environ of other processes of its user"
        )
    return abi


def _enter_landlock_domain(libc: ctypes.CDLL, abi: int, writable: str | None) -> None:
    """A Landlock domain of this worker's own.

    Being in a domain is what matters most: Landlock refuses ptrace access, and so reading
    `/proc/<pid>/environ` or `/mem`, to any process outside it. The rights it handles
    with no rule are ones a worker never uses: making device nodes, TCP (ABI 4), signals
    and abstract Unix sockets outside the domain (ABI 6). With `writable`, every right that
    changes the file system is handled, and granted only beneath that directory (files and
    directories; no link of any kind): reads stay open.
    """
    handled_fs = _LANDLOCK_ACCESS_FS_MAKE_CHAR | _LANDLOCK_ACCESS_FS_MAKE_BLOCK
    allowed_fs = 0
    if writable is not None:
        handled_fs = _LANDLOCK_FS_WRITES | (_LANDLOCK_ACCESS_FS_REFER if abi >= 2 else 0)
        allowed_fs = _LANDLOCK_FS_JOB_WRITES
        if abi >= 3:
            handled_fs |= _LANDLOCK_ACCESS_FS_TRUNCATE
            allowed_fs |= _LANDLOCK_ACCESS_FS_TRUNCATE
    attr = _LandlockRulesetAttr(
        handled_access_fs=handled_fs,
        handled_access_net=(
            _LANDLOCK_ACCESS_NET_BIND_TCP | _LANDLOCK_ACCESS_NET_CONNECT_TCP if abi >= 4 else 0
        ),
        scoped=(_LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | _LANDLOCK_SCOPE_SIGNAL if abi >= 6 else 0),
    )
    ruleset = _syscall(libc, _LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.sizeof(attr), 0)
    if ruleset < 0:
        err = ctypes.get_errno()
        raise SandboxUnavailable(err, f"landlock_create_ruleset failed: {os.strerror(err)}")
    try:
        if writable is not None:
            _add_path_rule(libc, ruleset, writable, allowed_fs)
        if _syscall(libc, _LANDLOCK_RESTRICT_SELF, ruleset, 0) != 0:
            err = ctypes.get_errno()
            raise SandboxUnavailable(err, f"landlock_restrict_self failed: {os.strerror(err)}")
    finally:
        os.close(ruleset)


def _add_path_rule(libc: ctypes.CDLL, ruleset: int, path: str, access: int) -> None:
    directory = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        rule = _LandlockPathBeneathAttr(allowed_access=access, parent_fd=directory)
        args = (ruleset, _LANDLOCK_RULE_PATH_BENEATH, ctypes.byref(rule), 0)
        if _syscall(libc, _LANDLOCK_ADD_RULE, *args) != 0:
            err = ctypes.get_errno()
            raise SandboxUnavailable(err, f"landlock_add_rule({path}) failed: {os.strerror(err)}")
    finally:
        os.close(directory)


def _filter_program(arch: _Arch) -> list[tuple[int, int, int, int]]:
    """The seccomp filter as classic BPF `(code, jump if true, jump if false, k)` rows."""
    kill = (_BPF_RET_K, 0, 0, _SECCOMP_RET_KILL_PROCESS)
    allow = (_BPF_RET_K, 0, 0, _SECCOMP_RET_ALLOW)
    program = [
        (_BPF_LD_W_ABS, 0, 0, _OFFSET_ARCH),
        (_BPF_JEQ_K, 1, 0, arch.audit_arch),
        kill,
        (_BPF_LD_W_ABS, 0, 0, _OFFSET_NR),
    ]
    if arch.x32_bit:
        program += [(_BPF_JGE_K, 0, 1, _X32_SYSCALL_BIT), kill]
    refuse = (_BPF_RET_K, 0, 0, _SECCOMP_RET_ERRNO | errno.EPERM)
    other_processes = (arch.ptrace, arch.process_vm_readv, arch.process_vm_writev, _PIDFD_GETFD)
    # No child process (whose children could outlive the pool) and no namespace.
    new_processes = (*arch.forks, arch.unshare, arch.setns)
    for number in (*_IO_URING, *other_processes, *new_processes):
        program += [(_BPF_JEQ_K, 0, 1, number), refuse]
    program += [
        # clone3 passes its flags in memory, which a filter cannot read. "Not implemented"
        # makes glibc start its threads with clone, whose flags are checked below.
        (_BPF_JEQ_K, 0, 1, _CLONE3),
        (_BPF_RET_K, 0, 0, _SECCOMP_RET_ERRNO | errno.ENOSYS),
        # clone: a thread (CLONE_THREAD, as libvips' and Python's), in no new namespace.
        (_BPF_JEQ_K, 0, 5, arch.clone),
        (_BPF_LD_W_ABS, 0, 0, _OFFSET_ARG0),  # the flags' low 32 bits, where they all are
        (_BPF_JSET_K, 2, 0, _CLONE_NEW_ANY),
        (_BPF_JSET_K, 0, 1, _CLONE_THREAD),
        allow,
        refuse,
        (_BPF_JEQ_K, 2, 0, arch.socket),  # to the family check, three rows down
        (_BPF_JEQ_K, 1, 0, arch.socketpair),
        allow,
        (_BPF_LD_W_ABS, 0, 0, _OFFSET_ARG0),
        (_BPF_JEQ_K, 0, 1, socket.AF_UNIX),
        allow,
        (_BPF_RET_K, 0, 0, _SECCOMP_RET_ERRNO | errno.EACCES),
    ]
    return program


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


def _install_filter(libc: ctypes.CDLL, arch: _Arch) -> None:
    rows = _filter_program(arch)
    code = ctypes.create_string_buffer(b"".join(struct.pack("=HBBI", *row) for row in rows))
    prog = _SockFprog(len(rows), ctypes.cast(code, ctypes.c_void_p))
    # seccomp(2) rather than prctl(PR_SET_SECCOMP): only it can put the filter on every thread.
    result = _syscall(
        libc, arch.seccomp, _SECCOMP_SET_MODE_FILTER, _SECCOMP_FILTER_FLAG_TSYNC, ctypes.byref(prog)
    )
    if result != 0:
        # With TSYNC, a positive result is the id of a thread that could not take the filter.
        err = ctypes.get_errno() if result < 0 else errno.EBUSY
        raise SandboxUnavailable(err, f"seccomp filter not installed: {os.strerror(err)}")
