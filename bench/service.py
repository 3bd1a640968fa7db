"""The whole service as a user meets it: `python -m mediasvc dev`, then clients POSTing.

The stack is what `make run` starts (PostgreSQL with its normal durable settings, migrations,
the app with its worker pool, nginx in front), on a free port with a throwaway data dir.
Clients send a prebuilt multipart body through nginx and wait for the `201`; CPU time is
read from `/proc` for each part of the stack, so the report can say where the cores went.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench import procs
from mediasvc.stack.localproc import free_port, stop

ROOT = Path(__file__).resolve().parents[1]
_START_TIMEOUT_S = 180.0
_STOP_TIMEOUT_S = 60.0
_TOKEN_PREFIX = "export TOKEN="  # noqa: S105 - the line's prefix, not a secret
_METRICS_URL = re.compile(r"^\s*(http://\S+/metrics)\s*$")
# The upload stages the app times itself (`mediasvc_upload_stage_duration_seconds`).
_STAGE = re.compile(r'^mediasvc_upload_stage_duration_seconds_(sum|count)\{stage="(\w+)"\} (\S+)$')


class StackError(Exception):
    """The dev stack did not start; the message carries the end of its output."""


@dataclass(frozen=True, slots=True)
class Upload:
    """One POST as the client saw it."""

    latency_s: float
    status: int


@dataclass(slots=True)
class Level:
    """Everything measured at one number of concurrent clients, over all rounds."""

    clients: int
    uploads: list[Upload] = field(default_factory=list)
    wall_s: float = 0.0
    cpu_s: dict[str, float] = field(default_factory=dict)
    # Per upload stage (receive, db, process, store, total): seconds summed, and count.
    stage_s: dict[str, float] = field(default_factory=dict)
    stage_n: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> list[float]:
        """Latencies of the uploads answered `201`."""
        return [u.latency_s for u in self.uploads if u.status == 201]

    @property
    def images_per_s(self) -> float:
        return len(self.ok) / self.wall_s if self.wall_s else 0.0

    def add_cpu(self, spent: dict[str, float]) -> None:
        for part, seconds in spent.items():
            self.cpu_s[part] = self.cpu_s.get(part, 0.0) + seconds

    def add_stages(self, seconds: dict[str, float], counts: dict[str, float]) -> None:
        for stage, spent in seconds.items():
            self.stage_s[stage] = self.stage_s.get(stage, 0.0) + spent
            self.stage_n[stage] = self.stage_n.get(stage, 0.0) + counts.get(stage, 0.0)

    def stage_ms(self) -> dict[str, float]:
        """Mean milliseconds per upload stage, as the app measured them."""
        return {st: self.stage_s[st] / n * 1000 for st, n in self.stage_n.items() if n}


def multipart_body(
    path: Path, mime: str, fields: Mapping[str, str] | None = None
) -> tuple[bytes, str]:
    """The upload form: `fields` first (so a kind's cap applies while streaming), then one
    `file` part; built once so clients spend nothing on it."""
    boundary = f"bench-{secrets.token_hex(12)}"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in (fields or {}).items()
    ]
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="upload{path.suffix}"\r\n'
        f"Content-Type: {mime}\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    body = b"".join(parts) + head + path.read_bytes() + tail
    return body, f"multipart/form-data; boundary={boundary}"


class Stack(procs.Stoppable):
    """`python -m mediasvc dev` in a scratch data dir on a free port; a context manager."""

    def __init__(self, scratch: Path, *, workers: int) -> None:
        self.data_dir = scratch / "service"
        self.port = free_port()
        self.workers = workers
        self.token = ""
        self.metrics_urls: list[str] = []
        self._process: subprocess.Popen[str] | None = None
        self._output: deque[str] = deque(maxlen=40)
        self._ready = threading.Event()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Stack:
        # PostgreSQL runs as `postgres` and nginx's workers as `nobody`: both must reach it.
        self.data_dir.mkdir(mode=0o755, parents=True)
        self.data_dir.chmod(0o755)
        env = dict(os.environ)
        env.update(
            MEDIASVC_DATA_DIR=str(self.data_dir),
            MEDIASVC_HTTP_PORT=str(self.port),
            # The app nodes' own ports too (node i on the first + i): the default (8081) is
            # taken wherever another stack or bench already runs.
            MEDIASVC_APP_PORT=str(procs.free_ports(int(env.get("MEDIASVC_APP_NODES", "1")))),
            MEDIASVC_WORKERS=str(self.workers),
            MEDIASVC_LOG_FORMAT="json",
            # Every bench client shares one address: nginx's per-client limits would
            # measure the limiter, not the service.
            MEDIASVC_RATE_UPLOADS_PER_MIN="1000000",
            MEDIASVC_RATE_API_PER_S="100000",
            # ... and one token: the per-owner cap on uploads in flight is not under test.
            MEDIASVC_OWNER_MAX_INFLIGHT="1000",
            # ... nor the per-user upload budget (`budgets`: 60 a minute by default), which
            # answered most of a full run's uploads 429 (0 turns it off).
            MEDIASVC_USER_UPLOADS_PER_MIN="0",
        )
        self._process = subprocess.Popen(
            [sys.executable, "-m", "mediasvc", "dev"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._drain, daemon=True).start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not self._ready.wait(0.2):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise StackError("the dev stack did not start:\n" + "".join(self._output))
        return self

    def _drain(self) -> None:
        # The app's request log goes here too: reading it keeps the pipe from filling up.
        assert self._process is not None
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self._output.append(line)
            if found := _METRICS_URL.match(line):
                self.metrics_urls.append(found[1])
            if line.strip().startswith(_TOKEN_PREFIX):
                self.token = line.strip().removeprefix(_TOKEN_PREFIX)
                self._ready.set()

    def close(self) -> None:
        """Stop the stack (the app, its workers, nginx, PostgreSQL) and drop its data dir."""
        process, self._process = self._process, None
        if process is not None:
            stop(process, timeout_s=_STOP_TIMEOUT_S)
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def parts(self) -> dict[str, list[int]]:
        """The stack's processes by part: the app's event loop, its workers, nginx, PostgreSQL.

        `workers` is everything the app started: the image workers, their forkserver and
        multiprocessing's resource tracker.
        """
        assert self._process is not None
        tree = procs.parents()
        below_dev = procs.descendants(self._process.pid, tree)
        # One `serve` per app node (MEDIASVC_APP_NODES), each with its own worker pool.
        nodes = [p for p in below_dev if "mediasvc serve" in procs.cmdline(p)]
        below_nodes = [p for node in nodes for p in procs.descendants(node, tree)[1:]]
        nginx = [p for p in below_dev if procs.cmdline(p).startswith("nginx")]
        postgres: list[int] = []
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid_file = self.data_dir / "postgres" / "data" / "postmaster.pid"
            postgres = procs.descendants(int(pid_file.read_text().split()[0]), tree)
        return {"app": nodes, "workers": below_nodes, "nginx": nginx, "postgres": postgres}

    def worker_pids(self) -> list[int]:
        """The image workers: started by `spawn`, or forked by the app's forkserver."""
        tree = procs.parents()
        below = self.parts()["workers"]
        servers = [p for p in below if "forkserver" in procs.cmdline(p)]
        return [p for p in below if "spawn_main" in procs.cmdline(p) or tree.get(p) in servers]

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far per part of the stack."""
        parts = self.parts()
        spent = {part: procs.cpu_seconds(pids) for part, pids in parts.items()}
        # A worker that exits (recycled after `max_tasks_per_child` jobs) is reaped by its
        # node, which the kernel then charges with all its CPU: count it with the workers,
        # where it was spent, not with the app that reaped it.
        reaped = procs.reaped_cpu_seconds(parts["app"])
        spent["app"] -= reaped
        spent["workers"] += reaped
        return spent

    def upload(self, body: bytes, content_type: str, clients: int, count: int) -> Level:
        """`count` uploads by `clients` concurrent clients; wall and CPU time of the batch."""
        level = Level(clients)
        stages_before = self.stages()
        before, client_before = self.cpu(), time.process_time()
        start = time.perf_counter()
        level.uploads = asyncio.run(
            upload_all(f"{self.base_url}/v1/media", self.token, body, content_type, clients, count)
        )
        level.wall_s = time.perf_counter() - start
        after = self.cpu()
        level.add_cpu({part: after[part] - before[part] for part in after})
        level.add_cpu({"client": time.process_time() - client_before})
        (sum_after, n_after), (sum_before, n_before) = self.stages(), stages_before
        level.add_stages(
            {st: sum_after[st] - sum_before.get(st, 0.0) for st in sum_after},
            {st: n_after[st] - n_before.get(st, 0.0) for st in n_after},
        )
        return level

    def peak_rss_mb(self) -> float:
        """The app's peak resident memory: VmHWM summed over its nodes and everything they
        started (workers, forkserver, resource tracker), as `peers.Peer.peak_rss_mb`."""
        parts = self.parts()
        return sum(procs.peak_rss_mb(pid) for pid in parts["app"] + parts["workers"])

    def probe(self, body: bytes, content_type: str) -> dict[str, tuple[int, int, int]]:
        """One upload; width, height and bytes of each variant, as its `201` states them."""
        answer = asyncio.run(post_once(f"{self.base_url}/v1/media", self.token, body, content_type))
        variants = answer["variants"]
        assert isinstance(variants, dict)
        return {name: (v["width"], v["height"], v["bytes"]) for name, v in variants.items()}

    def stages(self) -> tuple[dict[str, float], dict[str, float]]:
        """Seconds and counts so far per upload stage, summed over the app nodes' metrics
        (read after the clients are done, so the scrape is outside every timed upload)."""
        totals: dict[str, dict[str, float]] = {"sum": {}, "count": {}}
        for url in self.metrics_urls:
            with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - 127.0.0.1
                text = response.read().decode()
            for line in text.splitlines():
                if found := _STAGE.match(line):
                    kind, stage, value = found.groups()
                    totals[kind][stage] = totals[kind].get(stage, 0.0) + float(value)
        return totals["sum"], totals["count"]


async def upload_all(
    url: str,
    token: str | Callable[[], str],
    body: bytes,
    content_type: str,
    clients: int,
    count: int,
) -> list[Upload]:
    """`count` POSTs of `body` by `clients` concurrent clients, each on a kept-alive
    connection; how each went. `token` is one for every upload, or mints each upload's
    (`bench.counted`: a user each); no `Authorization` header with an empty one (the peers)."""
    remaining = count
    done: list[Upload] = []

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            headers = {"Content-Type": content_type}
            if bearer := token() if callable(token) else token:
                headers["Authorization"] = f"Bearer {bearer}"
            start = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
            done.append(Upload(time.perf_counter() - start, response.status))

    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(client(session) for _ in range(clients)))
    return done


async def post_once(url: str, token: str, body: bytes, content_type: str) -> dict[str, object]:
    """One POST that must be answered 201; its JSON."""
    headers = {"Content-Type": content_type}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    timeout = aiohttp.ClientTimeout(total=120)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(url, data=body, headers=headers) as response,
    ):
        if response.status != 201:
            raise StackError(f"{url} answered {response.status}: {await response.text()}")
        answer: dict[str, object] = await response.json()
        return answer
