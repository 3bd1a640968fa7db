"""The receive path alone: the app's CPU to take one 4 MB form, against the least an aiohttp
app must spend on the same bytes (issue 31, `service_app_cpu_ms_per_upload`).

One aiohttp process, no nginx, database or imaging, two routes:
- `/intake`: `mediasvc.ingest.spooled_upload`, what `POST /v1/media` runs on a body before
  anything else (multipart, the caps, libmagic's sniff, sha256, the spool file);
- `/floor`: the body as aiohttp hands it over, hashed with sha256 and written to a file. No
  multipart and no checks: what any aiohttp app that hashes and spools an upload pays.

The gap between them is all a faster intake (another parser, fewer hops) could win; the
floor, with the per-request cost of a tiny upload through the whole stack, is the least the
app can spend on a 4 MB upload in this design (docs/performance.md).

`python -m bench.receive PORT SPOOL_DIR` serves the routes; `measure` starts that process,
sends batches to each route in turn from two clients, and reads its CPU from /proc.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from aiohttp import web

from bench import procs
from bench.inputs import Input
from bench.service import multipart_body, upload_all
from mediasvc.config import Settings
from mediasvc.form import UploadForm
from mediasvc.heap import keep_freed_buffers
from mediasvc.ingest import spooled_upload
from mediasvc.kinds import kind_rules
from mediasvc.stack.localproc import free_port, wait_until_listening

ROUTES = ("intake", "floor")
CLIENTS = 2
ROUNDS = 4
BATCH = 30


@dataclass(slots=True)
class Receiving:
    """The server's CPU milliseconds per upload, one entry per batch, for each route."""

    cpu_ms: dict[str, list[float]] = field(default_factory=lambda: {r: [] for r in ROUTES})

    def median_ms(self, route: str) -> float:
        return statistics.median(self.cpu_ms[route]) if self.cpu_ms[route] else 0.0

    def summary(self, tiny_upload_ms: float | None) -> dict[str, float]:
        """The two keys, and with a tiny upload's app CPU (the per-request part) the floor
        of the app's CPU for a 4 MB upload in this design."""
        found = {f"receive_{route}_cpu_ms": round(self.median_ms(route), 2) for route in ROUTES}
        if tiny_upload_ms is not None:
            floor = tiny_upload_ms + self.median_ms("floor")
            found["service_app_cpu_floor_ms"] = round(floor, 1)
        return found


def measure(main: Input, rounds: int = ROUNDS, batch: int = BATCH) -> Receiving:
    """Batches of `main`'s form to each route, alternating which goes first."""
    result = Receiving()
    body, content_type = multipart_body(main.path, main.mime)
    port = free_port()
    with (
        tempfile.TemporaryDirectory(prefix="mediasvc-receive-") as spool,
        tempfile.TemporaryFile("w+") as output,
    ):
        # Its output goes to a file, not a pipe nobody reads while it serves: a server that
        # fills a pipe stops.
        server = subprocess.Popen(
            [sys.executable, "-m", "bench.receive", str(port), spool],
            cwd=Path(__file__).resolve().parents[1],
            stdout=subprocess.DEVNULL,
            stderr=output,
            text=True,
        )
        try:
            if not wait_until_listening(server, port, timeout_s=30):
                raise RuntimeError(f"the receive server did not start: {_tail(output)}")
            for number in range(rounds + 1):  # round 0 warms both routes up, unmeasured
                order = ROUTES if number % 2 else ROUTES[::-1]
                for route in order:
                    url = f"http://127.0.0.1:{port}/{route}"
                    before = procs.cpu_seconds([server.pid])
                    sent = asyncio.run(upload_all(url, "", body, content_type, CLIENTS, batch))
                    spent = procs.cpu_seconds([server.pid]) - before
                    if any(upload.status != 200 for upload in sent):
                        raise RuntimeError(f"/{route} refused the form: {_tail(output)}")
                    if number:
                        result.cpu_ms[route].append(spent / len(sent) * 1000)
        finally:
            server.terminate()
            server.wait(10)
    return result


def _tail(output: IO[str]) -> str:
    output.seek(0)
    return output.read()[-2000:]


def _app(spool_dir: Path) -> web.Application:
    settings = Settings.from_env(
        {
            "MEDIASVC_DATA_DIR": str(spool_dir),
            "MEDIASVC_DATABASE_URL": "postgresql://unused@127.0.0.1/unused",
            "MEDIASVC_URL_SIGNING_SECRET": "s" * 40,
            "MEDIASVC_JWT_SECRET": "j" * 40,
        }
    )
    form = UploadForm(kind_rules(settings))

    async def intake(request: web.Request) -> web.Response:
        async with spooled_upload(request, spool_dir=spool_dir, form=form) as upload:
            return web.Response(text=upload.sha256)

    async def floor(request: web.Request) -> web.Response:
        digest = hashlib.sha256()
        path = spool_dir / f"floor-{os.urandom(8).hex()}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            async for chunk in request.content.iter_any():
                digest.update(chunk)
                os.write(fd, chunk)
        finally:
            os.close(fd)
            path.unlink()
        return web.Response(text=digest.hexdigest())

    app = web.Application(handler_args={"auto_decompress": False})
    app.router.add_post("/intake", intake)
    app.router.add_post("/floor", floor)
    return app


if __name__ == "__main__":
    keep_freed_buffers()  # as the serve process does (`mediasvc.cli`)
    port, spool = int(sys.argv[1]), Path(sys.argv[2])
    web.run_app(_app(spool), host="127.0.0.1", port=port, print=None, access_log=None)
