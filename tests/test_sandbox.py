"""The image workers' sandbox (`imaging.sandbox`), tried from inside real workers.

The app's environment holds a fake value of every secret before the pool starts; the
probes (`sandbox_probe`) then look for them, and for a way out, from a worker.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import images
import pytest
import sandbox_probe

from mediasvc.imaging import pipeline, sandbox
from mediasvc.imaging.job import Job
from mediasvc.imaging.pool import ImagingPool

SECRETS = {
    "MEDIASVC_JWT_SECRET": "jwt-secret-0123456789abcdef0123456789",
    "MEDIASVC_URL_SIGNING_SECRET": "url-signing-secret-0123456789abcdef",
    "MEDIASVC_DATABASE_URL": "postgresql://mediasvc:db-password-0123@db.internal/mediasvc",
    "MEDIASVC_WEBHOOK_SECRET": "webhook-secret-0123456789abcdef",
    "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE0123456789",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-access-key-0123456789",
    "AWS_SESSION_TOKEN": "aws-session-token-0123456789",
    "PGPASSWORD": "pg-password-0123456789",
    "GITHUB_TOKEN": "ghp_github-token-0123456789",
    "Stripe_Api_Key": "sk_stripe-key-0123456789",
    "SENTRY_DSN": "https://public-key-0123@sentry.example/1",
}
# Not secret: passed through as is, which shows the environment is filtered, not dropped.
PLAIN = {"SANDBOX_TEST_PLAIN": "plain-value-0123456789"}


@pytest.fixture
def secret_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The app's environment holds every fake secret, and one plain variable."""
    for name, value in {**SECRETS, **PLAIN}.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
async def pool(secret_environment: None) -> AsyncIterator[ImagingPool]:
    """A real one-worker pool, started after the secrets are in the environment."""
    imaging_pool = ImagingPool(workers=1, queue_max=0, timeout_s=60)
    try:
        await imaging_pool.ping()
        yield imaging_pool
    finally:
        await imaging_pool.close()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP socket listening on 127.0.0.1 that never blocks on accept."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.setblocking(False)
        yield server


def assert_no_secret(environ: dict[str, str], exec_environ: bytes) -> None:
    for name, value in SECRETS.items():
        assert name not in environ
        assert f"{name}=".encode() not in exec_environ
        assert value.encode() not in exec_environ
    for name, value in PLAIN.items():
        assert environ[name] == value
        assert f"{name}={value}".encode() in exec_environ.split(b"\0")


# --------------------------------------------------------------------------
# Nothing worth stealing
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "secret"),
    [
        ("MEDIASVC_JWT_SECRET", "x", True),
        ("MEDIASVC_LOG_FORMAT", "json", True),  # the service's own settings: workers need none
        ("AWS_REGION", "eu-west-1", True),
        ("PGPASSWORD", "x", True),
        ("GITHUB_TOKEN", "x", True),
        ("openai_api_key", "x", True),
        ("GOOGLE_APPLICATION_CREDENTIALS", "/etc/gcp.json", True),
        ("SSH_AUTH_SOCK", "/run/agent.sock", True),
        ("REDIS_URL", "redis://:hunter2@cache:6379/0", True),
        ("PATH", "/usr/bin:/bin", False),
        ("LANG", "C.UTF-8", False),
        ("TMPDIR", "/var/tmp", False),
        ("VIPS_CONCURRENCY", "1", False),
        ("REDIS_URL", "redis://cache:6379/0", False),
    ],
)
def test_worker_environment_drops_what_names_or_carries_a_credential(
    name: str, value: str, secret: bool
) -> None:
    """A variable reaches workers unless its name or its URL value says credential."""
    assert sandbox.is_secret(name, value) is secret
    assert (name in sandbox.worker_environment({name: value})) is not secret


async def test_worker_starts_without_any_secret(pool: ImagingPool) -> None:
    """No secret is in a worker's os.environ, nor in the environment it was exec'ed with."""
    environ, exec_environ = await pool.run(sandbox_probe.environment)

    assert_no_secret(environ, exec_environ)
    assert environ["PATH"] == os.environ["PATH"]


def test_workers_the_executor_respawns_start_without_secrets_too(
    secret_environment: None,
) -> None:
    """A worker started by the executor's own thread (max_tasks_per_child) is clean too."""
    executor = ProcessPoolExecutor(
        max_workers=1,
        mp_context=sandbox.spawn_context(),
        initializer=pipeline.init_worker,
        initargs=(None, os.getpid()),
        max_tasks_per_child=1,
    )
    with executor:
        first = executor.submit(os.getpid).result()
        # The first process has exited: only the executor's replacement can run this.
        second, (environ, exec_environ) = executor.submit(_pid_and_environment).result()

    assert second != first
    assert_no_secret(environ, exec_environ)


def _pid_and_environment() -> tuple[int, tuple[dict[str, str], bytes]]:
    return os.getpid(), sandbox_probe.environment()


async def test_worker_cannot_read_another_process_environment(pool: ImagingPool) -> None:
    """A worker cannot read the exec'ed environment of the app or of a same-user process."""
    if sandbox.landlock_abi() is None and os.geteuid() != 0:
        pytest.skip("without Landlock a worker can read same-user processes (decisions.md)")
    # Like the app or multiprocessing's resource tracker: same user, a secret in its env.
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sys; sys.stdin.read()",
        stdin=asyncio.subprocess.PIPE,
        env={**os.environ, "MEDIASVC_JWT_SECRET": SECRETS["MEDIASVC_JWT_SECRET"]},
    )
    try:
        # Control: an unconfined process of the same user can read it.
        assert SECRETS["MEDIASVC_JWT_SECRET"].encode() in sandbox_probe.read_environ_of(holder.pid)
        for pid in (holder.pid, os.getpid()):
            with pytest.raises(PermissionError):
                await pool.run(sandbox_probe.read_environ_of, pid)
    finally:
        await holder.communicate(b"")


# --------------------------------------------------------------------------
# Nothing within reach
# --------------------------------------------------------------------------


async def test_worker_cannot_connect_over_tcp(pool: ImagingPool, listener: socket.socket) -> None:
    """A TCP connection to a listening loopback port fails in the worker and never arrives."""
    port = listener.getsockname()[1]
    # Control: from the unconfined test process the same probe connects.
    sandbox_probe.connect_tcp(port)
    listener.accept()[0].close()

    with pytest.raises(PermissionError) as refused:
        await pool.run(sandbox_probe.connect_tcp, port)

    assert refused.value.errno == errno.EACCES  # the filter's answer, not the kernel's
    with pytest.raises(BlockingIOError):
        listener.accept()


@pytest.mark.parametrize(
    ("family", "kind"),
    [
        (socket.AF_INET6, socket.SOCK_STREAM),
        (socket.AF_INET, socket.SOCK_DGRAM),
        (socket.AF_NETLINK, socket.SOCK_RAW),
    ],
    ids=["inet6-stream", "inet-datagram", "netlink"],
)
async def test_worker_cannot_create_a_network_socket(
    pool: ImagingPool, family: int, kind: int
) -> None:
    """socket() for any family but AF_UNIX is refused with EACCES in a worker."""
    with pytest.raises(PermissionError) as refused:
        await pool.run(sandbox_probe.open_socket, family, kind)

    assert refused.value.errno == errno.EACCES


async def test_worker_can_still_use_unix_sockets(pool: ImagingPool) -> None:
    """AF_UNIX socket pairs still work in a worker: the filter is not a blanket refusal."""
    assert await pool.run(sandbox_probe.unix_round_trip) == b"ping"


async def test_every_worker_thread_is_confined(pool: ImagingPool) -> None:
    """Threads libvips starts after confinement carry the filter, no_new_privs, no caps."""
    threads = await pool.run(sandbox_probe.confinement_of_each_thread)

    assert len(threads) > 1  # the probe did start libvips threads
    assert threads == [
        {"NoNewPrivs": "1", "Seccomp": "2", "CapEff": "0000000000000000"} for _ in threads
    ]


def run_filter(program: list[tuple[int, int, int, int]], arch: int, nr: int, arg0: int = 0) -> int:
    """What a classic-BPF seccomp `program` returns for one syscall (the subset it uses)."""
    data = {0: nr, 4: arch, 16: arg0}  # seccomp_data offsets: nr, arch, low half of args[0]
    accumulator, pc = 0, 0
    while True:
        code, jump_true, jump_false, k = program[pc]
        if code == 0x20:  # BPF_LD | BPF_W | BPF_ABS
            accumulator = data[k]
        elif code in (0x15, 0x35):  # BPF_JMP | BPF_JEQ / BPF_JGE, with a constant
            taken = accumulator == k if code == 0x15 else accumulator >= k
            pc += jump_true if taken else jump_false
        elif code == 0x06:  # BPF_RET with a constant
            return k
        else:
            raise AssertionError(f"unexpected BPF code {code:#x}")
        pc += 1


ALLOW, KILL = 0x7FFF0000, 0x80000000
REFUSE_EACCES, REFUSE_EPERM = 0x00050000 | errno.EACCES, 0x00050000 | errno.EPERM


@pytest.mark.parametrize("machine", sorted(sandbox._ARCHES))
def test_filter_refuses_network_sockets_on_every_supported_architecture(machine: str) -> None:
    """On x86_64 and aarch64 alike: only AF_UNIX sockets, no io_uring or ptrace, no other ABI."""
    arch = sandbox._ARCHES[machine]
    program = sandbox._filter_program(arch)

    def verdict(nr: int, arg0: int = 0, audit_arch: int = arch.audit_arch) -> int:
        return run_filter(program, audit_arch, nr, arg0)

    for number in (arch.socket, arch.socketpair):
        assert verdict(number, socket.AF_UNIX) == ALLOW
        for family in (socket.AF_INET, socket.AF_INET6, socket.AF_NETLINK, socket.AF_PACKET):
            assert verdict(number, family) == REFUSE_EACCES
    for number in (425, 426, 427, arch.ptrace, arch.process_vm_readv, 438):
        assert verdict(number) == REFUSE_EPERM
    assert verdict(0) == ALLOW  # read (x86_64) / io_setup (aarch64): everything else passes
    assert verdict(arch.socket, socket.AF_INET, audit_arch=0x40000003) == KILL  # i386
    if arch.x32_bit:
        assert verdict(0x40000000 | arch.socket, socket.AF_INET) == KILL


def test_unknown_architecture_refuses_to_start_a_worker() -> None:
    """Where the filter has no syscall table, confinement fails loudly instead of skipping."""
    script = (
        "import platform\n"
        "platform.machine = lambda: 'riscv64'\n"
        "from mediasvc.imaging import sandbox\n"
        "sandbox.confine_worker()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )

    assert result.returncode == 1
    assert "SandboxUnavailable: no seccomp syscall table for riscv64" in result.stderr


# --------------------------------------------------------------------------
# Still an image worker
# --------------------------------------------------------------------------


async def test_sandboxed_worker_still_processes_every_accepted_format(
    pool: ImagingPool, tmp_path: Path
) -> None:
    """Each accepted still format becomes five variants in a confined worker."""
    for index, (mime, make) in enumerate(images.STILL_FACTORIES.items()):
        source = tmp_path / f"source-{index}"
        source.write_bytes(make())
        out_dir = tmp_path / f"out-{index}"
        out_dir.mkdir()

        facts = await pool.process(Job(source=str(source), out_dir=str(out_dir), mime=mime))

        assert len(facts.variants) == 5, mime
        assert all(variant.bytes > 0 for variant in facts.variants), mime
