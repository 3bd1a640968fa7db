"""The image workers' sandbox (`imaging.launch`, `imaging.confine`), tried from inside real
workers.

The app's environment holds a fake value of every secret before the pool starts; the
probes (`sandbox_probe`) then look for them, and for a way out, from a worker.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import json
import operator
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import images
import pytest
import sandbox_probe
import unit_filter
from gates import Gate

from bench import graphics
from mediasvc.imaging import confine, launch, pipeline, worker
from mediasvc.imaging import pool as pool_module
from mediasvc.imaging.job import AlternateFile, Facts, Job, Pdq, VariantFile
from mediasvc.imaging.pool import ImagingPool

ROOT = Path(__file__).parent.parent

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
    assert launch.is_secret(name, value) is secret
    assert (name in launch.worker_environment({name: value})) is not secret


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
        mp_context=launch.spawn_context(),
        initializer=worker.init_worker,
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
    if confine.landlock_abi() is None and os.geteuid() != 0:
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
        elif code in (0x15, 0x35, 0x45):  # BPF_JMP | BPF_JEQ / BPF_JGE / BPF_JSET, constant
            taken = {0x15: accumulator == k, 0x35: accumulator >= k, 0x45: accumulator & k != 0}
            pc += jump_true if taken[code] else jump_false
        elif code == 0x06:  # BPF_RET with a constant
            return k
        else:
            raise AssertionError(f"unexpected BPF code {code:#x}")
        pc += 1


ALLOW, KILL = 0x7FFF0000, 0x80000000
REFUSE_EACCES, REFUSE_EPERM = 0x00050000 | errno.EACCES, 0x00050000 | errno.EPERM
REFUSE_ENOSYS = 0x00050000 | errno.ENOSYS
# clone(2) flags: what glibc's pthread_create passes, and what fork() and namespaces add.
THREAD_FLAGS = (
    0x3D0F00  # CLONE_VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|PARENT_SETTID|CHILD_CLEARTID
)
FORK_FLAGS = 0x01200011  # CLONE_CHILD_SETTID|CHILD_CLEARTID, SIGCHLD
CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000


@pytest.mark.parametrize("machine", sorted(confine._ARCHES))
def test_filter_lets_clone_start_threads_only(machine: str) -> None:
    """clone is allowed for a thread in no new namespace; a process or a namespace is EPERM."""
    arch = confine._ARCHES[machine]
    program = confine._filter_program(arch)

    def verdict(flags: int) -> int:
        return run_filter(program, arch.audit_arch, arch.clone, flags)

    assert verdict(THREAD_FLAGS) == ALLOW
    assert verdict(FORK_FLAGS) == REFUSE_EPERM
    assert verdict(0x4111) == REFUSE_EPERM  # posix_spawn's CLONE_VM|CLONE_VFORK, SIGCHLD
    for namespace in (CLONE_NEWUSER, CLONE_NEWNET, 0x00020000, 0x20000000):
        assert verdict(FORK_FLAGS | namespace) == REFUSE_EPERM
        assert verdict(THREAD_FLAGS | namespace) == REFUSE_EPERM


@pytest.mark.parametrize("machine", sorted(confine._ARCHES))
def test_filter_refuses_network_sockets_on_every_supported_architecture(machine: str) -> None:
    """On x86_64 and aarch64 alike: only AF_UNIX sockets, no io_uring or ptrace, no other ABI."""
    arch = confine._ARCHES[machine]
    program = confine._filter_program(arch)

    def verdict(nr: int, arg0: int = 0, audit_arch: int = arch.audit_arch) -> int:
        return run_filter(program, audit_arch, nr, arg0)

    for number in (arch.socket, arch.socketpair):
        assert verdict(number, socket.AF_UNIX) == ALLOW
        for family in (socket.AF_INET, socket.AF_INET6, socket.AF_NETLINK, socket.AF_PACKET):
            assert verdict(number, family) == REFUSE_EACCES
    for number in (425, 426, 427, arch.ptrace, arch.process_vm_readv, 438):
        assert verdict(number) == REFUSE_EPERM
    for number in (*arch.forks, arch.unshare, arch.setns):
        assert verdict(number) == REFUSE_EPERM
    assert verdict(435) == REFUSE_ENOSYS  # clone3: glibc falls back to clone
    assert verdict(0) == ALLOW  # read (x86_64) / io_setup (aarch64): everything else passes
    assert verdict(arch.socket, socket.AF_INET, audit_arch=0x40000003) == KILL  # i386
    if arch.x32_bit:
        assert verdict(0x40000000 | arch.socket, socket.AF_INET) == KILL


def test_unknown_architecture_refuses_to_start_a_worker() -> None:
    """Where the filter has no syscall table, confinement fails loudly instead of skipping."""
    script = (
        "import platform\n"
        "platform.machine = lambda: 'riscv64'\n"
        "from mediasvc.imaging import confine\n"
        "confine.confine_worker()\n"
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


async def test_sandboxed_worker_computes_the_same_pdq_hash(
    pool: ImagingPool, tmp_path: Path
) -> None:
    """PDQ (pdqhash and numpy, loaded before confinement with no thread started) runs in a
    confined worker and hashes as the same pipeline does outside it."""
    source = tmp_path / "scene.jpg"
    source.write_bytes(images.make_scene_jpeg())
    outside, inside = tmp_path / "outside", tmp_path / "inside"
    outside.mkdir()
    inside.mkdir()

    facts = await pool.process(Job(source=str(source), out_dir=str(inside), mime="image/jpeg"))

    expected = pipeline.process(Job(source=str(source), out_dir=str(outside), mime="image/jpeg"))
    assert facts.pdq == expected.pdq
    assert facts.pdq.usable


async def test_sandboxed_worker_writes_a_graphics_palettes_as_outside_it(
    pool: ImagingPool, tmp_path: Path
) -> None:
    """The palette trial (libimagequant through libvips' PNG writer, read back by Pillow's
    PNG plugin, loaded before confinement) runs in a confined worker and writes the same
    files as the same pipeline outside it."""
    data, mime = graphics.draw("logo")
    source = tmp_path / "logo.png"
    source.write_bytes(data)
    outside, inside = tmp_path / "outside", tmp_path / "inside"
    outside.mkdir()
    inside.mkdir()

    facts = await pool.process(Job(source=str(source), out_dir=str(inside), mime=mime))

    expected = pipeline.process(Job(source=str(source), out_dir=str(outside), mime=mime))
    assert facts.processing["encoding"] == "palette"
    assert files_of(facts) == files_of(expected)


def files_of(facts: Facts) -> list[bytes]:
    """The variant files `facts` names, in ladder order."""
    return [Path(variant.path).read_bytes() for variant in facts.variants]


def test_imaging_loads_numpy_with_no_blas_thread() -> None:
    """Importing the imaging package first (as workers and whoever starts them do), numpy
    starts no OpenBLAS thread, even where the environment asked for more: a worker must
    have one thread when it confines itself."""
    started = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, mediasvc.imaging, numpy; print(len(os.listdir('/proc/self/task')))",
        ],
        env={**os.environ, "OPENBLAS_NUM_THREADS": "8"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert started.stdout.strip() == "1"


# --------------------------------------------------------------------------
# No process, namespace or file outside its own directory
# --------------------------------------------------------------------------


async def test_worker_can_start_no_process(pool: ImagingPool) -> None:
    """fork, a raw clone of a process and subprocess all fail with EPERM in a worker, while
    threads still start."""
    assert sandbox_probe.fork_child() > 0  # control: the same probe forks out of a worker

    with pytest.raises(PermissionError):
        await pool.run(sandbox_probe.fork_child)
    with pytest.raises(PermissionError):
        await pool.run(sandbox_probe.clone_process, 0)
    with pytest.raises(PermissionError):
        await pool.run(subprocess.run, ["true"])
    assert await pool.run(sandbox_probe.thread_id) not in (0, None)


async def test_no_grandchild_of_a_worker_outlives_the_pool(secret_environment: None) -> None:
    """A worker's double fork (a grandchild adopted by init) fails: nothing reaches the gate,
    and after the pool closes no process of the worker's is left."""
    imaging_pool = ImagingPool(workers=1, queue_max=0, timeout_s=60)
    async with Gate() as gate:
        try:
            with pytest.raises(PermissionError):
                await imaging_pool.run(sandbox_probe.double_fork, gate.path)
            assert await imaging_pool.run(sandbox_probe.thread_id) > 0  # the worker lives on
        finally:
            await imaging_pool.close()
        with pytest.raises(TimeoutError):
            await gate.entered(timeout_s=0)  # no grandchild ever connected


def unshare_unconfined(*steps: int) -> str:
    """What `sandbox_probe.unshare(*steps)` prints to stderr in a fresh unconfined process."""
    control = subprocess.run(
        [sys.executable, "-c", f"import sandbox_probe; sandbox_probe.unshare(*{steps})"],
        cwd=ROOT / "tests",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return control.stderr


def names_under(directory: Path) -> list[str]:
    """The names of everything beneath `directory`, sorted."""
    return sorted(path.name for path in directory.rglob("*"))


@pytest.mark.parametrize(
    "steps",
    [(CLONE_NEWUSER,), (CLONE_NEWUSER, CLONE_NEWNET), (CLONE_NEWUSER | CLONE_NEWNET,)],
    ids=["user", "user-then-net", "user-and-net"],
)
async def test_worker_cannot_create_namespaces(pool: ImagingPool, steps: tuple[int, ...]) -> None:
    """unshare, and clone of a process, into a new user and network namespace fail with EPERM
    in a worker."""
    assert unshare_unconfined(*steps) == ""  # control: a fresh process of the same user may

    with pytest.raises(PermissionError):
        await pool.run(sandbox_probe.unshare, *steps)
    with pytest.raises(PermissionError):
        await pool.run(sandbox_probe.clone_process, functools.reduce(operator.or_, steps))


async def test_worker_writes_only_in_its_own_directory(pool: ImagingPool, tmp_path: Path) -> None:
    """A worker cannot create a file outside its directory (not even in another job's out_dir
    or the spool), nor a link anywhere; its job's variants still reach the job's out_dir."""
    spool = tmp_path / "spool"
    other_job = spool / "other-media.out"
    other_job.mkdir(parents=True)
    victim = spool / "other-media.upload"
    victim.write_bytes(b"someone's upload")

    for path in (tmp_path / "outside", other_job / "large.webp", victim):
        with pytest.raises(PermissionError):
            await pool.run(sandbox_probe.write_file, str(path))
    with pytest.raises(PermissionError):
        await pool.run(sandbox_probe.make_symlink, "/etc/hostname", str(tmp_path / "link"))
    assert victim.read_bytes() == b"someone's upload"
    assert names_under(tmp_path) == ["other-media.out", "other-media.upload", "spool"]

    source = spool / "job.upload"
    source.write_bytes(images.make_jpeg())
    out_dir = spool / "job.out"
    out_dir.mkdir()
    facts = await pool.process(Job(source=str(source), out_dir=str(out_dir), mime="image/jpeg"))
    assert sorted(Path(v.path) for v in facts.variants) == sorted(out_dir.iterdir())
    assert len(facts.variants) == 5


def _variant(path: Path) -> VariantFile:
    return VariantFile(name=path.stem, size=1, path=str(path), width=1, height=1, bytes=1, mime="x")


def _facts(*paths: Path) -> Facts:
    variants = tuple(_variant(path) for path in paths)
    return Facts(
        1, 1, 1, variants, thumbhash="", dominant_color="", processing={}, pdq=Pdq("0" * 64, 0)
    )


@pytest.mark.parametrize("lie", ["outside", "symlink", "hardlink", "directory", "dot-dot"])
def test_pool_does_not_take_what_a_worker_names_outside_its_files(tmp_path: Path, lie: str) -> None:
    """Answered paths that leave the staging directory, or name a link or a directory, are
    refused, and nothing reaches the job's out_dir; a plain file is moved there."""
    staged, out_dir, secret = tmp_path / "staged", tmp_path / "out", tmp_path / "secret"
    staged.mkdir()
    out_dir.mkdir()
    secret.write_bytes(b"the app's secret")
    named = staged / "large.webp"
    if lie == "outside":
        named = secret
    elif lie == "symlink":
        named.symlink_to(secret)
    elif lie == "hardlink":
        named.hardlink_to(secret)
    elif lie == "directory":
        named.mkdir()
    else:
        named = staged / ".." / "secret"

    with pytest.raises(pool_module._Untrusted):
        pool_module._hand_over(_facts(named), staged, out_dir)

    assert list(out_dir.iterdir()) == []
    (staged / "small.webp").write_bytes(b"pixels")
    moved = pool_module._hand_over(_facts(staged / "small.webp"), staged, out_dir)
    assert [v.path for v in moved.variants] == [str(out_dir / "small.webp")]
    assert (out_dir / "small.webp").read_bytes() == b"pixels"


def test_pool_checks_and_moves_a_variants_alternates_like_the_variant(tmp_path: Path) -> None:
    """An AVIF alternate is moved beside its variant, and one naming a link is refused."""
    staged, out_dir, secret = tmp_path / "staged", tmp_path / "out", tmp_path / "secret"
    staged.mkdir()
    out_dir.mkdir()
    secret.write_bytes(b"the app's secret")
    (staged / "small.webp").write_bytes(b"webp")
    (staged / "small.avif").write_bytes(b"avif")
    alternate = AlternateFile(str(staged / "small.avif"), 4, "image/avif")
    facts = _facts(staged / "small.webp")
    facts = replace(facts, variants=(replace(facts.variants[0], alternates=(alternate,)),))

    moved = pool_module._hand_over(facts, staged, out_dir)

    assert [a.path for a in moved.variants[0].alternates] == [str(out_dir / "small.avif")]
    assert (out_dir / "small.avif").read_bytes() == b"avif"
    (staged / "large.webp").write_bytes(b"webp")
    (staged / "large.avif").symlink_to(secret)
    lying = replace(alternate, path=str(staged / "large.avif"))
    facts = _facts(staged / "large.webp")
    facts = replace(facts, variants=(replace(facts.variants[0], alternates=(lying,)),))
    with pytest.raises(pool_module._Untrusted):
        pool_module._hand_over(facts, staged, out_dir)
    assert not (out_dir / "large.avif").exists()


# --------------------------------------------------------------------------
# Under the shipped systemd unit's own syscall filter
# --------------------------------------------------------------------------

UNIT = ROOT / "deploy" / "mediasvc@.service"
LANDLOCK_CALLS = {"landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self"}
# The unit's filter before issue 25: what systemd 252 made of it refused every Landlock call.
OLD_FILTER_LINES = ["@system-service seccomp", "~@privileged"]

needs_systemd_analyze = pytest.mark.skipif(
    unit_filter.SYSTEMD_ANALYZE is None, reason="systemd-analyze expands the unit's groups"
)


def run_under_unit_filter(tmp_path: Path, lines: list[str], *, allow: bool) -> dict[str, object]:
    """Run the app's pool under the filter `lines` of the unit make; what one worker read."""
    unit = UNIT.read_text()
    spec = {
        "allowed": sorted(unit_filter.allowed_syscalls(lines)),
        "errno": unit_filter.error_number(unit),
        "allow": allow,
        "secret": SECRETS["MEDIASVC_JWT_SECRET"],
        "outside": str(tmp_path / "outside"),
    }
    result = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "unit_filter.py"), json.dumps(spec)],
        cwd=ROOT,
        env={**os.environ, **SECRETS},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    found: dict[str, object] = json.loads(result.stdout)
    return found


@needs_systemd_analyze
def test_unit_filter_lets_workers_into_landlock(tmp_path: Path) -> None:
    """Under the unit's SystemCallFilter= lines, a worker has Landlock: it cannot read the
    environment of the app or of a same-user process, nor write outside its directory."""
    if confine.landlock_abi() is None:
        pytest.skip("this kernel has no Landlock")
    lines = unit_filter.unit_values(UNIT.read_text(), "SystemCallFilter")
    assert unit_filter.allowed_syscalls(lines) >= LANDLOCK_CALLS

    found = run_under_unit_filter(tmp_path, lines, allow=False)

    assert found["refused"] is None
    assert found["warnings"] == []
    assert found["worker_landlock_abi"] == confine.landlock_abi()
    assert found["holder_environ"] == "refused"  # Landlock: the holder is dumpable
    assert found["app_environ"] == "refused"
    assert found["write_outside"] == "refused"
    assert not (tmp_path / "outside").exists()


@needs_systemd_analyze
def test_filter_that_refuses_landlock_stops_the_pool(tmp_path: Path) -> None:
    """Under the unit's old filter (systemd 252 refuses landlock_* with EPERM), the pool
    refuses to start; allowed, it warns, and its worker can read a same-user process."""
    if unit_filter.allowed_syscalls(OLD_FILTER_LINES) >= LANDLOCK_CALLS:
        pytest.skip("this systemd's @system-service allows Landlock: the old line was safe here")
    if confine.landlock_abi() is None:
        pytest.skip("this kernel has no Landlock")

    refused = run_under_unit_filter(tmp_path, OLD_FILTER_LINES, allow=False)
    allowed = run_under_unit_filter(tmp_path, OLD_FILTER_LINES, allow=True)

    assert "landlock_create_ruleset is refused (EPERM)" in str(refused["refused"])
    assert "MEDIASVC_ALLOW_UNCONFINED_WORKERS" in str(refused["refused"])
    assert allowed["refused"] is None
    assert any("Landlock refused (EPERM)" in str(w) for w in allowed["warnings"])  # type: ignore[attr-defined]
    assert allowed["worker_landlock_abi"] == "EPERM"
    assert allowed["holder_environ"] == "secret"  # what an unconfined worker can do
    assert allowed["app_environ"] == "refused"  # the app itself is not dumpable


UNDUMPABLE_PROBE = textwrap.dedent(
    """
    import asyncio, ctypes, json, os, subprocess, sys
    from multiprocessing import resource_tracker
    import unit_filter
    from mediasvc.imaging import confine
    from mediasvc.imaging.pool import ImagingPool

    def readable(pid):
        # A process of the same user with no capability, and no Landlock domain either.
        probe = f"open('/proc/{pid}/environ', 'rb').read()"
        return subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0

    async def main():
        unit_filter._take_unit_credentials(ctypes.CDLL(None, use_errno=True))
        holder = subprocess.Popen([sys.executable, "-c", "input()"], stdin=subprocess.PIPE)
        before = confine.is_dumpable()
        pool = ImagingPool(workers=1, queue_max=0, timeout_s=60)
        await pool.ping()
        tracker = resource_tracker._resource_tracker._pid
        pids = {"holder": holder.pid, "app": os.getpid(), "tracker": tracker}
        found = {"before": before, "after": confine.is_dumpable(), "tracker": tracker,
                 "readable": {name: readable(pid) for name, pid in pids.items()}}
        print(json.dumps(found), flush=True)
        sys.stdin.readline()  # the test reads the tracker's environment meanwhile
        holder.communicate(b"\\n")
        await pool.close()

    asyncio.run(main())
    """
)


def test_pool_makes_its_process_and_resource_tracker_undumpable() -> None:
    """A process that starts a pool becomes non-dumpable, and so is multiprocessing's
    resource tracker, exec'ed without the secrets: a process of their user with no
    capability reads neither's environment, where it reads a plain sibling's."""
    app = subprocess.Popen(
        [sys.executable, "-c", UNDUMPABLE_PROBE],
        cwd=ROOT / "tests",
        env={**os.environ, **SECRETS, **PLAIN},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert app.stdout is not None
        found = json.loads(app.stdout.readline())
        tracker_environ = Path(f"/proc/{found['tracker']}/environ").read_bytes()
    finally:
        app.communicate("\n", timeout=60)

    assert app.returncode == 0
    assert (found["before"], found["after"]) == (True, False)
    assert found["readable"] == {"holder": True, "app": False, "tracker": False}
    assert_no_secret(
        dict(line.split("=", 1) for line in tracker_environ.decode().split("\0") if line),
        tracker_environ,
    )
