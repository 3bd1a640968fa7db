"""Service-level peers: the upload services a team would deploy instead of mediasvc.

Each peer is a whole service answering the same POST (one multipart `file` part) with the
same five default-ladder WebP variants at the service's quality and effort written to disk,
with one app process per core, behind its own nginx with mediasvc's site settings for an
upload (`client_max_body_size` from the app's default cap, `proxy_request_buffering off`,
`client_body_buffer_size 256k`, an upstream with keepalive, nginx's worker count):

- `node_naive` (`bench/peer_node.mjs`): Express + multer memory storage + five
  `sharp(buffer).rotate().resize(...).webp(...)` calls, as Node teams write it.
- `node_tuned` (the same file): busboy streaming to a temp file, one decode, each smaller
  variant derived from the next larger.
- `fastapi_pillow` (`bench/peer_fastapi.py`): uvicorn with one worker per core, `UploadFile`,
  python-magic, Pillow in the request path, as the avatar guides write it.

express, multer, busboy and sharp are installed with npm, pinned, into the bench's cache
beside sharp's (`sharp_baselines.npm_install`), once. Output is checked, not assumed:
`output` reads a peer's five files back (pixel sizes and bytes) for `same_output`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import pyvips

from bench import procs
from bench.service import Level, post_once, upload_all
from bench.sharp_baselines import SHARP_VERSION, SharpUnavailable, npm_install
from mediasvc.config import Settings
from mediasvc.imaging.encode import WEBP_EFFORT
from mediasvc.imaging.job import DEFAULT_RULES
from mediasvc.imaging.variants import VARIANTS
from mediasvc.stack.localproc import free_port, wait_until_listening

ROOT = Path(__file__).resolve().parents[1]
NODE_SERVER = Path(__file__).resolve().with_name("peer_node.mjs")
PEERS = ("node_naive", "node_tuned", "fastapi_pillow")
NODE_PACKAGES = (f"sharp@{SHARP_VERSION}", "express@5.3.0", "multer@2.5.0", "busboy@1.6.0")


def _default_max_upload_bytes() -> int:
    found = next(f for f in fields(Settings) if f.name == "max_upload_bytes").default
    assert isinstance(found, int)
    return found


# The app's default upload cap plus room for the form: what mediasvc's nginx allows
# (`Settings.body_limit_bytes`), read from the field so the two cannot drift.
MAX_UPLOAD_BYTES = _default_max_upload_bytes()
BODY_LIMIT_BYTES = MAX_UPLOAD_BYTES + 64 * 1024
# Total bytes of a peer's five files within this share of mediasvc's, and the same pixel
# sizes, or its output is reported as different.
BYTES_TOLERANCE = 0.10
SIZE_TOLERANCE_PX = 1
_START_TIMEOUT_S = 60.0

Output = dict[str, tuple[int, int, int]]  # variant name -> (width, height, bytes)


class PeerUnavailable(Exception):
    """A peer could not be installed or started; the message says why."""


def install_node() -> Path:
    """The cache entry holding the Node peers' packages, installed with npm if needed."""
    versions = "-".join(spec.replace("@", "") for spec in NODE_PACKAGES)
    try:
        return npm_install(f"peers-{versions}", NODE_PACKAGES)
    except SharpUnavailable as exc:
        raise PeerUnavailable(str(exc)) from None


_NGINX_CONF = """\
daemon off;
worker_processes 2;
worker_rlimit_nofile 2048;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{
    worker_connections 1024;
}}
http {{
    access_log {dir}/access.log;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65s;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    upstream peer_app {{
        server 127.0.0.1:{app_port} max_fails=0;
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port};
        server_tokens off;
        client_max_body_size {body_limit};
        location / {{
            proxy_pass http://peer_app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_request_buffering off;
            client_body_buffer_size 256k;
            proxy_read_timeout 120s;
            proxy_send_timeout 120s;
        }}
    }}
}}
"""


class Peer(procs.Stoppable):
    """One peer service and its nginx on free ports, in a scratch dir; a context manager."""

    def __init__(self, name: str, scratch: Path, *, workers: int, node_dir: Path | None) -> None:
        self.name = name
        self.dir = scratch / "peers" / name
        self.out_dir = self.dir / "out"
        self.workers = workers
        self.node_dir = node_dir
        self.app_port = free_port()
        self.port = free_port()
        self._app: subprocess.Popen[bytes] | None = None
        self._nginx: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/media"

    def _command(self) -> tuple[list[str], dict[str, str]]:
        env = dict(
            os.environ,
            PEER_OUT_DIR=str(self.out_dir),
            PEER_TMP_DIR=str(self.dir / "tmp"),
            PEER_VARIANTS=json.dumps([[spec.name, spec.size] for spec in VARIANTS]),
            PEER_QUALITY=str(DEFAULT_RULES.quality),
            PEER_EFFORT=str(WEBP_EFFORT),
            PEER_MAX_BYTES=str(MAX_UPLOAD_BYTES),
            PEER_WORKERS=str(self.workers),
            PEER_PORT=str(self.app_port),
        )
        if self.name == "fastapi_pillow":
            command = [sys.executable, "-m", "uvicorn", "bench.peer_fastapi:app"]
            command += ["--host", "127.0.0.1", "--port", str(self.app_port)]
            command += ["--workers", str(self.workers), "--no-access-log", "--log-level=warning"]
            return command, env
        node = shutil.which("node")
        if node is None or self.node_dir is None:
            raise PeerUnavailable("node is not on PATH, or the Node peers are not installed")
        env |= {"PEER_MODE": self.name.removeprefix("node_"), "PEER_NODE_DIR": str(self.node_dir)}
        return [node, str(NODE_SERVER)], env

    def __enter__(self) -> Peer:
        for directory in (self.out_dir, self.dir / "tmp", self.dir / "nginx" / "tmp"):
            directory.mkdir(parents=True, exist_ok=True)
        command, env = self._command()
        # Its own session: stopping the group ends the cluster's or uvicorn's workers too.
        self._app = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=(self.dir / "app.log").open("wb"),
            start_new_session=True,
        )
        nginx_dir = self.dir / "nginx"
        config = nginx_dir / "nginx.conf"
        config.write_text(
            _NGINX_CONF.format(
                dir=nginx_dir, app_port=self.app_port, port=self.port, body_limit=BODY_LIMIT_BYTES
            )
        )
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        self._nginx = subprocess.Popen(
            [binary, "-p", str(nginx_dir), "-e", str(nginx_dir / "error.log"), "-c", str(config)],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        for process, port, what in (
            (self._app, self.app_port, "app"),
            (self._nginx, self.port, "nginx"),
        ):
            if not wait_until_listening(process, port, timeout_s=_START_TIMEOUT_S):
                log = (self.dir / "app.log").read_text(errors="replace")[-1000:]
                self.close()
                raise PeerUnavailable(f"{self.name}: its {what} did not start\n{log}")
        return self

    def close(self) -> None:
        """Stop its nginx, then its app (each with its whole process group)."""
        for attribute, sig in (("_nginx", signal.SIGQUIT), ("_app", signal.SIGTERM)):
            process = getattr(self, attribute)
            setattr(self, attribute, None)
            if process is not None:
                _stop_group(process, sig)

    def parts(self) -> dict[str, list[int]]:
        """The peer's processes: its app (with its workers) and its nginx."""
        tree = procs.parents()
        return {
            part: procs.descendants(process.pid, tree) if process else []
            for part, process in (("app", self._app), ("nginx", self._nginx))
        }

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far per part."""
        return {part: procs.cpu_seconds(pids) for part, pids in self.parts().items()}

    def peak_rss_mb(self) -> float:
        """The app's peak resident memory: VmHWM summed over its processes (an upper bound:
        pages the cluster's or uvicorn's workers share are counted in each)."""
        return sum(procs.peak_rss_mb(pid) for pid in self.parts()["app"])

    def upload(self, body: bytes, content_type: str, clients: int, count: int) -> Level:
        """`count` uploads by `clients` concurrent clients, as `service.Stack.upload`."""
        level = Level(clients)
        before, client_before = self.cpu(), time.process_time()
        start = time.perf_counter()
        level.uploads = asyncio.run(upload_all(self.url, "", body, content_type, clients, count))
        level.wall_s = time.perf_counter() - start
        after = self.cpu()
        level.add_cpu({part: after[part] - before[part] for part in after})
        level.add_cpu({"client": time.process_time() - client_before})
        return level

    def probe(self, body: bytes, content_type: str) -> Output:
        """One upload; the five files it wrote, read back from disk."""
        answer = asyncio.run(post_once(self.url, "", body, content_type))
        return read_output(self.out_dir / str(answer["id"]))


def _stop_group(process: subprocess.Popen[bytes], sig: int) -> None:
    """Signal the process group `process` leads (it was started in a session of its own,
    above), and kill the group if its leader lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def read_output(folder: Path) -> Output:
    """Width, height and bytes of each variant file in `folder`."""
    found = {}
    for spec in VARIANTS:
        path = folder / f"{spec.name}.webp"
        size = path.stat().st_size  # first: a missing file is an OSError, not pyvips'
        header = pyvips.Image.new_from_file(str(path))
        found[spec.name] = (header.width, header.height, size)
    return found


def compare(service: Output, peer: Output) -> tuple[bool, str]:
    """Whether the peer's output equals the service's (the same pixel sizes, to the rounding
    of the short side, and total bytes within `BYTES_TOLERANCE`), and if not, how not."""
    differences = [
        f"{name} {peer[name][0]}x{peer[name][1]} against {w}x{h}" if name in peer else f"no {name}"
        for name, (w, h, _) in service.items()
        if name not in peer or not _same_size(peer[name][:2], (w, h))
    ]
    ratio = bytes_ratio(service, peer)
    if abs(ratio - 1) > BYTES_TOLERANCE:
        differences.append(f"bytes: the service's are {ratio:.2f} of the peer's")
    return not differences, "; ".join(differences)


def _same_size(peer: tuple[int, ...], service: tuple[int, ...]) -> bool:
    # Within a pixel: a ladder derived size by size rounds the short side at every step
    # (2880 * 1024 / 4000 = 737.3 -> 737, then 368.5 -> 369, ... 46.1 -> 47), one resized
    # from the source rounds once (46); both are the same work at the same size.
    return all(abs(a - b) <= SIZE_TOLERANCE_PX for a, b in zip(peer, service, strict=True))


def bytes_ratio(service: Output, peer: Output) -> float:
    """The service's total bytes over the peer's, five variants each."""
    return sum(b for *_, b in service.values()) / max(1, sum(b for *_, b in peer.values()))


@dataclass(slots=True)
class PeerResults:
    """Each peer at each client count over all rounds, paired with the service's batches."""

    levels: dict[str, dict[int, Level]] = field(default_factory=dict)
    # Per peer, per round: service uploads/s over the peer's at each client count, in the
    # same round (the drift of this machine's capacity cancels in a pair).
    paired: dict[str, list[dict[int, float]]] = field(default_factory=dict)
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, Output] = field(default_factory=dict)
    service_output: Output = field(default_factory=dict)
    service_peak_rss_mb: float = 0.0
    skipped: dict[str, str] = field(default_factory=dict)

    def service_over(self, peer: str, clients: int) -> float:
        """Median over rounds of the service's uploads/s over the peer's at `clients`."""
        ratios = sorted(r[clients] for r in self.paired.get(peer, []) if clients in r)
        if not ratios:
            return 0.0
        middle = len(ratios) // 2
        return ratios[middle] if len(ratios) % 2 else (ratios[middle - 1] + ratios[middle]) / 2

    def same_output(self, peer: str) -> tuple[bool, str]:
        """The output check for `peer` (see `compare`)."""
        if peer not in self.outputs or not self.service_output:
            return False, "not checked"
        return compare(self.service_output, self.outputs[peer])
