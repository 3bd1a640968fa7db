"""A bounded load test: mixed good and bad uploads at the pool's capacity, one injected
fault, then the invariant check. Loopback only; stops by itself.

    .venv/bin/python -m bench.loadtest [--seconds 60] [--workers 2] [--queue 4]

It starts its own PostgreSQL cluster and `python -m mediasvc dev` against it (so it can
read the database afterwards), drives `workers + queue` concurrent clients for the given
time, SIGKILLs one image worker half-way, and reports requests, statuses, p50/p99 and
whether every 201 has a ready row with five files and nothing else exists. The last line
is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
import pyvips

from mediasvc.stack.localproc import free_port, stop
from mediasvc.stack.pgcluster import PostgresCluster

ROOT = Path(__file__).resolve().parents[1]
GOOD_SHARE = 0.7  # the rest of the traffic is refused in different ways

Input = tuple[str, bytes, str, int]  # name, bytes, declared type, expected status


def inputs() -> tuple[list[Input], list[Input]]:
    """Good photos, and the usual abuse with the answer each must get."""
    noise = pyvips.Image.gaussnoise(1600, 1200, sigma=40)
    photo = noise.bandjoin([128, 64]).cast("uchar").copy(interpretation="srgb")
    jpeg = photo.jpegsave_buffer(Q=85)
    png = photo.resize(0.5).bandjoin(200).cast("uchar").pngsave_buffer()
    bomb = (  # a PNG header claiming 30000x30000
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00u0\x00\x00u0\x08\x02\x00\x00\x00"
        + b"\x00" * 68
    )
    good = [("jpeg", jpeg, "image/jpeg", 201), ("png", png, "image/png", 201)]
    bad = [
        ("truncated", jpeg[: len(jpeg) // 3], "image/jpeg", 422),
        ("html", b"<html><script>alert(1)</script></html>" * 100, "image/jpeg", 415),
        ("bomb", bomb, "image/png", 422),
    ]
    return good, bad


@dataclass
class Result:
    """What the clients saw."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    created: list[str] = field(default_factory=list)
    unexpected: Counter[str] = field(default_factory=Counter)


@dataclass
class Stack:
    """A private PostgreSQL cluster and `mediasvc dev` against it, in a scratch dir."""

    scratch: Path
    cluster: PostgresCluster
    dsn: str
    dev: subprocess.Popen[bytes]
    base: str
    token: str

    def stop(self) -> None:
        stop(self.dev, timeout_s=60)
        self.cluster.stop()
        shutil.rmtree(self.scratch, ignore_errors=True)


def start_stack(workers: int, queue: int) -> Stack:
    """The stack, started and answering; its token read from the welcome text."""
    scratch = Path(tempfile.mkdtemp(prefix="mediasvc-load-"))
    scratch.chmod(0o755)  # PostgreSQL and nginx's workers must reach it
    cluster = PostgresCluster(scratch / "postgres")
    cluster.ensure_initialised()
    pg_port = free_port()
    cluster.start(pg_port)
    asyncio.run(_create_database(cluster.dsn(pg_port)))
    dsn = cluster.dsn(pg_port, "mediasvc")
    http_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIASVC_")}
    env.update(
        MEDIASVC_DATA_DIR=str(scratch / "data"),
        MEDIASVC_HTTP_PORT=str(http_port),
        MEDIASVC_DATABASE_URL=dsn,
        MEDIASVC_WORKERS=str(workers),
        MEDIASVC_QUEUE_MAX=str(queue),
        # All clients share one address: nginx's per-client limits are not under test.
        MEDIASVC_RATE_UPLOADS_PER_MIN="1000000",
        MEDIASVC_RATE_API_PER_S="100000",
        # ... and one token: the per-owner cap on uploads in flight is not under test.
        MEDIASVC_OWNER_MAX_INFLIGHT="1000",
        MEDIASVC_LOG_FORMAT="json",
    )
    dev = subprocess.Popen(
        [sys.executable, "-m", "mediasvc", "dev"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert dev.stdout is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and dev.poll() is None:
        if match := re.search(r"export TOKEN=(\S+)", dev.stdout.readline().decode()):
            base = f"http://127.0.0.1:{http_port}"
            return Stack(scratch, cluster, dsn, dev, base, match[1])
    dev.kill()
    cluster.stop()
    raise RuntimeError("the dev stack did not start")


async def _create_database(admin_dsn: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute("CREATE DATABASE mediasvc")
    finally:
        await conn.close()


async def client(
    http: aiohttp.ClientSession,
    stack: Stack,
    deadline: float,
    files: tuple[list[Input], list[Input]],
    result: Result,
) -> None:
    """Upload until the deadline, one request at a time."""
    good, bad = files
    while time.monotonic() < deadline:
        pool = good if random.random() < GOOD_SHARE else bad  # noqa: S311 - a traffic mix
        name, data, declared, expected = random.choice(pool)  # noqa: S311
        form = aiohttp.FormData()
        form.add_field("file", data, filename=f"x.{name}", content_type=declared)
        started = time.monotonic()
        try:
            async with http.post(
                f"{stack.base}/v1/media",
                data=form,
                headers={"Authorization": f"Bearer {stack.token}"},
            ) as response:
                body = await response.json(content_type=None)
                status = response.status
        except aiohttp.ClientError as exc:
            result.statuses[type(exc).__name__] += 1
            continue
        result.latencies.append(time.monotonic() - started)
        result.statuses[str(status)] += 1
        if status == 201:
            result.created.append(body["id"])
        if status != expected and status not in (500, 503):
            result.unexpected[f"{name}->{status}"] += 1


def _children(pid: int) -> list[tuple[int, bytes]]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append((int(entry.name), cmdline))
    return found


def kill_one_worker(dev_pid: int) -> int | None:
    """SIGKILL one image worker: a `spawn` child of the app, itself a child of `dev`."""
    for app_pid, cmdline in _children(dev_pid):
        if b"serve" in cmdline:
            for worker_pid, worker_cmdline in _children(app_pid):
                if b"spawn_main" in worker_cmdline:
                    os.kill(worker_pid, signal.SIGKILL)
                    return worker_pid
    return None


async def drive(stack: Stack, seconds: float, concurrency: int) -> tuple[Result, int | None]:
    """Run the clients; half-way through, kill one image worker."""
    files = inputs()
    result = Result()
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as http:
        clients = [
            asyncio.create_task(client(http, stack, deadline, files, result))
            for _ in range(concurrency)
        ]
        await asyncio.sleep(seconds / 2)
        killed = await asyncio.to_thread(kill_one_worker, stack.dev.pid)
        await asyncio.gather(*clients)
    return result, killed


async def check_invariant(stack: Stack, created: list[str]) -> dict[str, int]:
    """Every 201 is a ready row with five files; no other row, file or spool entry."""
    conn = await asyncpg.connect(stack.dsn)
    try:
        rows = await conn.fetch("SELECT id, status FROM media")
    finally:
        await conn.close()
    by_media, spooled = await asyncio.to_thread(_disk_state, stack.scratch / "data")
    ids = {r["id"] for r in rows}
    return {
        "rows": len(rows),
        "rows_not_ready": sum(1 for r in rows if r["status"] != "ready"),
        "rows_without_201": len(ids - set(created)),
        "created_without_row": len(set(created) - ids),
        "media_without_five_files": sum(1 for i in ids if by_media[i] != 5),
        "files_without_row": sum(n for media_id, n in by_media.items() if media_id not in ids),
        "spool_entries": spooled,
    }


def _disk_state(data_dir: Path) -> tuple[Counter[str], int]:
    """Variant files per media id, and how many entries the spool holds."""
    media, spool = data_dir / "media", data_dir / "spool"
    files = [p for p in media.rglob("*") if p.is_file()] if media.exists() else []
    spooled = len(list(spool.iterdir())) if spool.exists() else 0
    return Counter(p.parent.name for p in files), spooled


def run(seconds: float, workers: int, queue: int) -> dict[str, object]:
    """The whole load test; returns its summary."""
    stack = start_stack(workers, queue)
    try:
        result, killed = asyncio.run(drive(stack, seconds, workers + queue))
        invariant = asyncio.run(check_invariant(stack, result.created))
    finally:
        stack.stop()
    ok = sorted(result.latencies)
    holds = invariant["rows"] == len(result.created) and all(
        value == 0 for key, value in invariant.items() if key != "rows"
    )
    return {
        "seconds": seconds,
        "clients": workers + queue,
        "requests": sum(result.statuses.values()),
        "statuses": dict(result.statuses),
        "unexpected": dict(result.unexpected),
        "p50_ms": round(1000 * statistics.median(ok), 1) if ok else None,
        "p99_ms": round(1000 * ok[min(len(ok) - 1, int(len(ok) * 0.99))], 1) if ok else None,
        "fault": f"SIGKILL image worker {killed} at {seconds / 2:.0f} s",
        "invariant": invariant,
        "invariant_holds": holds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loadtest")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--queue", type=int, default=4)
    args = parser.parse_args()
    summary = run(args.seconds, args.workers, args.queue)
    for key, value in summary.items():
        print(f"{key:>16}: {value}")
    print(json.dumps(summary))
    return 0 if summary["invariant_holds"] else 1


if __name__ == "__main__":
    sys.exit(main())
