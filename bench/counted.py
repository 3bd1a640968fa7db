"""A deployment whose every cost is counted: `python -m mediasvc dev` (`bench.service.Stack`:
nginx, the app nodes and their image workers) against a PostgreSQL cluster of its own with
its normal durable settings, reached through a counting proxy (`bench.pgproxy`), with
webhooks on (a `Receiver` here counts the deliveries), optionally storing to S3
(`moto_server` on 127.0.0.1, whose request log is counted), and every upload from a user
of its own with the user's upload budget charged, so each upload pays what it would in
production.

`Deployment.batch` runs uploads and returns their `Cost`: CPU per part from `/proc`,
database round trips and transactions by statement (the proxy), durable commits and WAL
bytes (`pg_waldump` between two WAL positions), outbox events (the table), webhooks (the
receiver) and bucket requests (moto's log).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import botocore.session

from bench import procs
from bench.pgproxy import CountingProxy, Counts
from bench.service import Stack, StackError, Upload, multipart_body, upload_all
from mediasvc.auth import mint_token
from mediasvc.stack.localproc import free_port, stop, wait_until_listening
from mediasvc.stack.pgcluster import PostgresCluster, as_server_user, client_binary

DATABASE = "mediasvc"
PARTS = ("app", "workers", "nginx", "postgres")

# The kinds uploaded once each for the bytes stored: `post` and `avatar` are built in; the
# others are the README's examples (its `avatar` byte cap left out: the bench photo is 4 MB).
# `post` carries the per-user upload budget that `bench.service.Stack` turns off for its
# one shared token (MEDIASVC_USER_UPLOADS_PER_MIN, 60 by default): a kind's own budget is
# charged by the same statement (`queries.spend_budget`), so each upload pays for it.
KINDS_TOML = """\
[kinds.post]
uploads_per_minute = 60

[kinds.avatar]
crop = "square"
collection_max = 1
replace = true

[kinds.og]
output = "jpeg"
quality = 85

[kinds.profile_photo]
sizes = { thumb = 128, card = 512, screen = 1440, retina = 2560 }
formats = ["webp", "avif"]

[kinds.archive]
keep_source = true
"""

# What the labels of the proxy's round trips are grouped by in the table, first match wins.
STATEMENT_GROUPS = (
    ("prepare", re.compile(r"^prepare: ")),
    # What runs on timers whatever the traffic: the session completer's claim, the nginx
    # cache purger's poll, the reaper's claim, the usage gauges.
    (
        "timers",
        re.compile(
            r"auto_checks = auto_checks \+ 1|FROM cache_purges"
            r"|status IN \('processing', 'deleting', 'failed'\)|usage_by_kind|usage_refreshed"
            r"|space_deletions|object_removals|DELETE FROM user_budgets WHERE tat"
        ),
    ),
    ("outbox", re.compile(r"\bevent(s|_deliveries)\b", re.IGNORECASE)),
    ("budget", re.compile(r"\buser_budgets\b", re.IGNORECASE)),
    ("blocklist", re.compile(r"\bblocklist\b", re.IGNORECASE)),
    ("media", re.compile(r"\bmedia\b", re.IGNORECASE)),
    ("begin/commit", re.compile(r"^(BEGIN|COMMIT|ROLLBACK)\b", re.IGNORECASE)),
    ("other", re.compile(r"")),
)
# moto_server's request log line (werkzeug's): "PUT /bucket/key HTTP/1.1" 200
_REQUEST_LOG = re.compile(r'"([A-Z]+) (\S+) HTTP/[\d.]+" (\d{3})')
# How long the outbox may take to deliver a batch's webhooks before the window closes.
_SETTLE_TIMEOUT_S = 20.0
_FAKE_S3_CREDENTIALS = {  # moto takes any; botocore needs some to sign with
    "AWS_ACCESS_KEY_ID": "mediasvc-bench",
    "AWS_SECRET_ACCESS_KEY": "mediasvc-bench-secret",
}


def short(statement: str, chars: int = 72) -> str:
    """The start of a statement, enough to tell it from the others in a table."""
    return statement if len(statement) <= chars else statement[: chars - 1] + "…"


def shortened(counter: Counter[str]) -> Counter[str]:
    """`counter` keyed by the start of each statement (those that start alike, summed)."""
    found: Counter[str] = Counter()
    for statement, n in counter.items():
        found[short(statement)] += n
    return found


def group_of(statement: str) -> str:
    """The table group a round trip's label falls in."""
    return next(name for name, pattern in STATEMENT_GROUPS if pattern.search(statement))


# --- what a window of work cost -----------------------------------------------------------


@dataclass(slots=True)
class Cost:
    """What a deployment did over one or more windows of uploads."""

    uploads: list[Upload] = field(default_factory=list)
    wall_s: float = 0.0
    cpu_s: Counter[str] = field(default_factory=Counter)
    db: Counts = field(default_factory=Counts)
    commits: int = 0
    wal_bytes: int = 0
    events: int = 0
    webhooks: int = 0
    s3: Counter[str] = field(default_factory=Counter)

    @property
    def ok(self) -> int:
        return sum(1 for u in self.uploads if u.status == 201)

    @property
    def uploads_per_s(self) -> float:
        return self.ok / self.wall_s if self.wall_s else 0.0

    def add(self, other: Cost) -> None:
        self.uploads += other.uploads
        self.wall_s += other.wall_s
        self.cpu_s.update(other.cpu_s)
        self.db = Counts(
            self.db.round_trips + other.db.round_trips,
            self.db.transactions + other.db.transactions,
            self.db.connections + other.db.connections,
        )
        self.commits += other.commits
        self.wal_bytes += other.wal_bytes
        self.events += other.events
        self.webhooks += other.webhooks
        self.s3.update(other.s3)

    def per_upload(self, amount: float) -> float:
        return amount / self.ok if self.ok else 0.0

    def cpu_ms(self, part: str) -> float:
        return self.per_upload(self.cpu_s[part] * 1000)

    def stack_cpu_ms(self) -> float:
        return sum(self.cpu_ms(part) for part in PARTS)

    def cores_used(self) -> float:
        """The stack's CPU over the uploads' wall time: the cores it got."""
        return sum(self.cpu_s[part] for part in PARTS) / self.wall_s if self.wall_s else 0.0

    def round_trips(self) -> float:
        return self.per_upload(self.db.round_trips.total())

    def round_trips_by_group(self) -> dict[str, float]:
        return self._by_group(self.db.round_trips)

    def transactions_by_group(self) -> dict[str, float]:
        return self._by_group(self.db.transactions)

    def _by_group(self, counter: Counter[str]) -> dict[str, float]:
        groups: Counter[str] = Counter()
        for statement, n in counter.items():
            groups[group_of(statement)] += n
        return {name: self.per_upload(groups[name]) for name, _ in STATEMENT_GROUPS}

    def by_statement(self, counter: Counter[str]) -> dict[str, float]:
        """Per upload, by the start of each statement, most frequent first."""
        return {s: round(self.per_upload(n), 2) for s, n in shortened(counter).most_common()}


@dataclass(frozen=True, slots=True)
class _Mark:
    """A deployment's counters at one moment (the database's own are read apart)."""

    cpu_s: dict[str, float]
    bench_cpu_s: float
    machine_cpu_s: float
    db: Counts
    webhooks: int
    s3: Counter[str]


# --- the parts around the stack: PostgreSQL, webhooks, S3 ---------------------------------


class Receiver:
    """Webhook endpoint on 127.0.0.1: answers every POST 204 and counts them by path."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        lock = threading.Lock()
        counts = self.counts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(204)
                self.end_headers()
                with lock:
                    counts[self.path] += 1

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._lock = lock

    def count(self, path: str) -> int:
        with self._lock:
            return self.counts[path]

    def __enter__(self) -> Receiver:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class Moto:
    """moto_server on 127.0.0.1 with one bucket; counts the requests its log shows."""

    def __init__(self, scratch: Path) -> None:
        self.log = scratch / "moto.log"
        self.port = free_port()
        self.bucket = f"media-{secrets.token_hex(4)}"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Moto:
        binary = Path(sys.executable).with_name("moto_server")
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [str(binary), "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            if not wait_until_listening(self.process, self.port, timeout_s=30):
                raise StackError("moto_server did not start")
            client = botocore.session.get_session().create_client(
                "s3",
                endpoint_url=self.url,
                region_name="us-east-1",
                aws_access_key_id=_FAKE_S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=_FAKE_S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            )
            client.create_bucket(Bucket=self.bucket)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            stop(self.process, timeout_s=10)

    def requests(self) -> Counter[str]:
        """Requests so far by what they were: `PUT object`, `POST bucket ?delete`, ..."""
        found: Counter[str] = Counter()
        for line in self.log.read_text(errors="replace").splitlines():
            if hit := _REQUEST_LOG.search(line):
                method, target, _status = hit.groups()
                path, _, query = target.partition("?")
                what = "object" if path.strip("/").count("/") else "bucket"
                names = sorted(item.split("=")[0] for item in query.split("&") if item)
                found[f"{method} {what}" + (f" ?{'&'.join(names)}" if names else "")] += 1
        return found

    def cpu_s(self) -> float:
        return procs.cpu_seconds([self.process.pid]) if self.process else 0.0


class _Stack(Stack):
    """`bench.service.Stack` whose PostgreSQL is ours (it runs no cluster of its own when
    MEDIASVC_DATABASE_URL is set), so `parts()` finds it through our pid file."""

    def __init__(self, scratch: Path, *, workers: int, postgres: PostgresCluster) -> None:
        super().__init__(scratch, workers=workers)
        self.postgres = postgres

    def parts(self) -> dict[str, list[int]]:
        found = super().parts()
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self.postgres.data / "postmaster.pid").read_text().split()[0])
            found["postgres"] = procs.descendants(pid)
        return found


@contextlib.contextmanager
def _environ(extra: Mapping[str, str]) -> Iterator[None]:
    """`extra` in our environment for the block: `Stack` starts `dev` with a copy of it."""
    saved = {name: os.environ.get(name) for name in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class Deployment(procs.Stoppable):
    """A dev stack with its own PostgreSQL behind the counting proxy; a context manager.

    `runner` is the event loop the monitoring connection and the clients share.
    """

    def __init__(
        self,
        name: str,
        scratch: Path,
        runner: asyncio.Runner,
        receiver: Receiver,
        *,
        nodes: int,
        workers: int,
        moto: Moto | None = None,
    ) -> None:
        self.name = name
        self.scratch = scratch / name
        self.runner = runner
        self.receiver = receiver
        self.nodes = nodes
        self.workers = workers
        self.moto = moto
        self.jwt_secret = secrets.token_urlsafe(32)
        self.users = (f"{name}-user-{n}" for n in itertools.count())
        self.cluster = PostgresCluster(self.scratch / "postgres")
        self._started = contextlib.ExitStack()
        self._monitor: asyncpg.Connection | None = None
        self._server_version = 0
        self.direct_dsn = ""
        self.stack: _Stack
        self.proxy: CountingProxy

    @property
    def hook_path(self) -> str:
        return f"/{self.name}"

    def __enter__(self) -> Deployment:
        started = self._started
        try:
            self.scratch.mkdir(mode=0o755)
            self.cluster.ensure_initialised()
            pg_port = free_port()
            # Each stop is registered before its start, so a signal mid-start stops it too.
            started.callback(self.cluster.stop)
            self.cluster.start(pg_port)  # the durable defaults, as `make run`'s
            self._monitor = self.runner.run(self._connect(pg_port))
            proxy = started.enter_context(CountingProxy(pg_port))
            self.proxy = proxy
            (self.scratch / "kinds.toml").write_text(KINDS_TOML)
            env = {
                "MEDIASVC_DATABASE_URL": self.cluster.dsn(proxy.port, DATABASE),
                "MEDIASVC_APP_NODES": str(self.nodes),
                "MEDIASVC_JWT_SECRET": self.jwt_secret,
                "MEDIASVC_KINDS_FILE": str(self.scratch / "kinds.toml"),
                "MEDIASVC_WEBHOOK_URL": f"http://127.0.0.1:{self.receiver.port}{self.hook_path}",
                "MEDIASVC_WEBHOOK_SECRET": "whsec_" + base64.b64encode(os.urandom(32)).decode(),
            }
            if self.moto is not None:
                env |= _FAKE_S3_CREDENTIALS | {
                    "MEDIASVC_STORAGE": "s3",
                    "MEDIASVC_S3_BUCKET": self.moto.bucket,
                    "MEDIASVC_S3_ENDPOINT_URL": self.moto.url,
                }
            self.stack = _Stack(self.scratch, workers=self.workers, postgres=self.cluster)
            started.callback(self.stack.__exit__, None, None, None)
            with _environ(env):
                self.stack.__enter__()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        if self._monitor is not None:
            with contextlib.suppress(Exception):
                self.runner.run(self._monitor.close())
        self._started.close()

    async def _connect(self, port: int) -> asyncpg.Connection:
        admin = await asyncpg.connect(self.cluster.dsn(port))
        try:
            await admin.execute(f'CREATE DATABASE "{DATABASE}"')
            self._server_version = int(await admin.fetchval("SHOW server_version_num"))
        finally:
            await admin.close()
        # Ours, past the proxy, kept open: its few reads are not the app's, and opening one
        # per look would fork a backend each time inside the measured window.
        self.direct_dsn = self.cluster.dsn(port, DATABASE)
        return await asyncpg.connect(self.direct_dsn)

    # --- measuring

    def token(self) -> str:
        return mint_token(self.jwt_secret, next(self.users))

    def counters(self) -> _Mark:
        cpu_s = self.stack.cpu()
        if self.moto is not None:
            cpu_s["moto"] = self.moto.cpu_s()
        return _Mark(
            cpu_s=cpu_s,
            bench_cpu_s=time.process_time(),
            machine_cpu_s=_machine_cpu_s(),
            db=self.proxy.snapshot(),
            webhooks=self.receiver.count(self.hook_path),
            s3=self.moto.requests() if self.moto else Counter(),
        )

    def look(self) -> tuple[str, int]:
        """The WAL position and the outbox's event count, on our own connection."""
        assert self._monitor is not None
        return self.runner.run(_look(self._monitor))

    def batch(
        self, body: bytes, content_type: str, clients: int, count: int
    ) -> tuple[Cost, dict[str, float]]:
        """`count` uploads by `clients` clients: what they cost, and the machine's CPU over
        the window (ours, the bench's, everything else's). The window stays open until the
        outbox has delivered their webhooks, so the dispatcher's work is in it; the
        database is read before it opens and after it closes, so our look stays outside."""
        lsn_before, events_before = self.look()
        before = self.counters()
        started = time.perf_counter()
        uploads = self.runner.run(
            upload_all(
                f"{self.stack.base_url}/v1/media", self.token, body, content_type, clients, count
            )
        )
        wall_s = time.perf_counter() - started
        made = sum(1 for u in uploads if u.status == 201)
        deadline = time.monotonic() + _SETTLE_TIMEOUT_S
        while (
            self.receiver.count(self.hook_path) < before.webhooks + made
            and time.monotonic() < deadline
        ):
            time.sleep(0.02)
        after = self.counters()
        window_s = time.perf_counter() - started
        lsn_after, events_after = self.look()
        commits, wal_bytes = self.wal(lsn_before, lsn_after)
        cost = Cost(
            uploads=uploads,
            wall_s=wall_s,
            cpu_s=Counter({part: after.cpu_s[part] - before.cpu_s[part] for part in after.cpu_s}),
            db=after.db.minus(before.db),
            commits=commits,
            wal_bytes=wal_bytes,
            events=events_after - events_before,
            webhooks=after.webhooks - before.webhooks,
            s3=after.s3 - before.s3,
        )
        stack_s = sum(cost.cpu_s.values())
        bench_s = after.bench_cpu_s - before.bench_cpu_s
        machine_s = after.machine_cpu_s - before.machine_cpu_s
        busy = {
            "window_s": window_s,
            "stack_cpu_s": stack_s,
            "bench_cpu_s": bench_s,
            # Everything else the machine ran meanwhile: other jobs, the idle deployment.
            "others_cpu_s": max(0.0, machine_s - stack_s - bench_s),
        }
        return cost, busy

    def wal(self, start: str, end: str) -> tuple[int, int]:
        """Durable commits (WAL COMMIT records, read by pg_waldump) and WAL bytes between
        two WAL positions."""
        waldump = client_binary("pg_waldump", self._server_version)
        done = subprocess.run(
            [
                *as_server_user(),
                waldump,
                "--stats=record",
                "-p",
                str(self.cluster.data / "pg_wal"),
                "-s",
                start,
                "-e",
                end,
            ],
            capture_output=True,
            text=True,
            check=False,
            cwd="/",
        )
        if done.returncode != 0:  # a count of 0 would read as "no commits"
            raise StackError(f"pg_waldump failed: {done.stderr.strip()[-500:]}")
        commits = 0
        for line in done.stdout.splitlines():
            if line.startswith("Transaction/COMMIT "):
                commits = int(line.split()[1])
        return commits, _lsn(end) - _lsn(start)

    def upload_kind(self, path: Path, mime: str, kind: str) -> tuple[int, int]:
        """One upload of `kind`; the files and bytes it added under the media dir."""
        media = self.stack.data_dir / "media"
        files_before, bytes_before = _tree_size(media)
        body, content_type = multipart_body(path, mime, {"kind": kind})
        [upload] = self.runner.run(
            upload_all(f"{self.stack.base_url}/v1/media", self.token, body, content_type, 1, 1)
        )
        if upload.status != 201:
            raise StackError(f"an upload of kind {kind} was answered {upload.status}")
        files_after, bytes_after = _tree_size(media)
        return files_after - files_before, bytes_after - bytes_before

    def kinds(self) -> list[str]:
        """The kinds the deployment knows, as `GET /v1/limits` lists them."""

        async def fetch() -> list[str]:
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"{self.stack.base_url}/v1/limits") as response,
            ):
                limits = await response.json()
            return sorted(limits["kinds"])

        return self.runner.run(fetch())

    def row_bytes(self) -> dict[str, float]:
        """The mean size of a row (`pg_column_size`, indexes not counted) of the tables an
        upload writes: media rows stay, events go after 7 days, budgets after a minute."""
        assert self._monitor is not None
        return self.runner.run(_row_bytes(self._monitor))

    def commit_ceiling(self, seconds: float, connections: int = 8) -> float:
        """One-row autocommit INSERTs from `connections` connections for `seconds`, on this
        deployment's durable PostgreSQL, past the proxy: commits per second."""
        return self.runner.run(_commit_burst(self.direct_dsn, seconds, connections))


_ROW_TABLES = ("media", "events", "event_deliveries", "user_budgets")


async def _row_bytes(conn: asyncpg.Connection) -> dict[str, float]:
    found = {}
    for table in _ROW_TABLES:  # names from the constant above, never from input
        mean = await conn.fetchval(f"SELECT avg(pg_column_size(t.*)) FROM {table} t")  # noqa: S608
        found[table] = round(float(mean or 0.0), 1)
    return found


async def _look(conn: asyncpg.Connection) -> tuple[str, int]:
    lsn = await conn.fetchval("SELECT pg_current_wal_lsn()::text")
    events = await conn.fetchval("SELECT count(*) FROM events")
    return str(lsn), int(events)


async def _commit_burst(dsn: str, seconds: float, connections: int) -> float:
    conns = [await asyncpg.connect(dsn) for _ in range(connections)]
    await conns[0].execute("CREATE TABLE IF NOT EXISTS capacity_probe (n bigint)")
    done = 0
    deadline = time.perf_counter() + seconds

    async def insert(conn: asyncpg.Connection) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await conn.execute("INSERT INTO capacity_probe VALUES ($1)", done)
            done += 1

    started = time.perf_counter()
    try:
        await asyncio.gather(*(insert(c) for c in conns))
    finally:
        for conn in conns:
            await conn.close()
    return done / (time.perf_counter() - started)


def _lsn(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) + int(low, 16)


def _machine_cpu_s() -> float:
    """CPU seconds the whole machine spent busy so far (/proc/stat: all but idle, iowait)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _tree_size(root: Path) -> tuple[int, int]:
    files = [p for p in root.rglob("*") if p.is_file()] if root.exists() else []
    return len(files), sum(p.stat().st_size for p in files)
