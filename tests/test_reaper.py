"""The reaper, and crashes: after `gc`, storage and database agree exactly."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import images
import pytest
from gates import wait_until
from support import (
    Client,
    bearer,
    file_part,
    multipart_body,
    parametrize_backends,
    post_media,
    stored_keys,
    through_pgbouncer,
)

from mediasvc.appkeys import DB, STORAGE
from mediasvc.config import Settings
from mediasvc.flows.reaper import reap
from mediasvc.ids import is_media_id
from mediasvc.keys import variant_key
from mediasvc.spool import CHUNK_BYTES
from mediasvc.stack.localproc import free_port, wait_until_listening

pytestmark = parametrize_backends


async def put_object(client: Client, key: str, tmp_path: Path) -> None:
    source = tmp_path / "object"
    source.write_bytes(b"variant")
    await client.app[STORAGE].put(key, source, "image/webp")


async def assert_consistent(client: Client) -> None:
    """Every row is ready and owns exactly its stored variants; no other object exists."""
    rows = await client.app[DB].fetch("SELECT status, variants FROM media")
    assert {r["status"] for r in rows} <= {"ready"}
    owned = sorted(v["key"] for r in rows for v in r["variants"].values())
    assert await stored_keys(client) == owned


async def gc(client: Client, settings: Settings, grace_s: float = 0) -> Any:
    return await reap(client.app[DB], client.app[STORAGE], settings.spool_dir, grace_s=grace_s)


@through_pgbouncer
async def test_crash_leftovers_are_finished_or_undone(
    client: Client, settings: Settings, tmp_path: Path
) -> None:
    """A row stuck in processing with two objects, one stuck in deleting, an orphan object,
    a stale spool file: one gc pass removes them all and keeps the ready media intact."""
    ready = await (await post_media(client, images.make_jpeg())).json()
    crashed_upload = "A" * 22
    crashed_delete = "B" * 22
    orphan = "C" * 22
    db = client.app[DB]
    for media_id, status in ((crashed_upload, "processing"), (crashed_delete, "deleting")):
        await db.execute(
            "INSERT INTO media (id, owner, kind, visibility, status, original_mime,"
            " original_bytes, sha256) VALUES ($1, 'alice', 'post', 'public', $2, 'image/jpeg',"
            " 1, 'x')",
            media_id,
            status,
        )
    await put_object(client, variant_key(crashed_upload, "full.webp"), tmp_path)
    await put_object(client, variant_key(crashed_upload, "small.webp"), tmp_path)
    await put_object(client, variant_key(crashed_delete, "large.webp"), tmp_path)
    await put_object(client, variant_key(orphan, "thumbnail.webp", private=True), tmp_path)
    settings.spool_dir.mkdir(exist_ok=True)
    (settings.spool_dir / "dead.upload").write_bytes(b"half an upload")

    report = await gc(client, settings)

    assert report.rows_removed == 2
    assert report.orphans_removed == 1
    assert report.spool_removed == 1
    assert report.errors == []
    await assert_consistent(client)
    assert (await client.get(f"/v1/media/{ready['id']}")).status == 200


async def test_grace_period_protects_work_in_progress(
    client: Client, settings: Settings, tmp_path: Path
) -> None:
    """Within the grace period nothing is touched: a live upload looks just like a crash."""
    await client.app[DB].execute(
        "INSERT INTO media (id, owner, kind, visibility, status, original_mime,"
        " original_bytes, sha256) VALUES ($1, 'alice', 'post', 'public', 'processing',"
        " 'image/jpeg', 1, 'x')",
        "D" * 22,
    )
    await put_object(client, variant_key("E" * 22, "full.webp"), tmp_path)
    report = await gc(client, settings, grace_s=3600)
    assert (report.rows_removed, report.orphans_removed) == (0, 0)
    assert await client.app[DB].fetchval("SELECT count(*) FROM media") == 1


@through_pgbouncer
async def test_concurrent_reapers_do_the_work_once(
    client: Client, settings: Settings, tmp_path: Path
) -> None:
    """Three nodes reaping at once: each stuck row is removed exactly once, no errors."""
    for n in range(10):
        media_id = f"{n:0>22}"
        await client.app[DB].execute(
            "INSERT INTO media (id, owner, kind, visibility, status, original_mime,"
            " original_bytes, sha256) VALUES ($1, 'alice', 'post', 'public', 'processing',"
            " 'image/jpeg', 1, 'x')",
            media_id,
        )
        await put_object(client, variant_key(media_id, "full.webp"), tmp_path)
    reports = await asyncio.gather(*(gc(client, settings) for _ in range(3)))
    assert sum(r.rows_removed for r in reports) == 10
    assert all(r.errors == [] for r in reports)
    await assert_consistent(client)


# Image workers per app process in `serve`, and so uploads that can be mid-processing at once.
WORKERS = 2


def serve(settings: Settings, port: int) -> subprocess.Popen[bytes]:
    """`python -m mediasvc serve` as a real process on the test's database and storage."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIASVC_")}
    env.update(replace(settings, app_port=port, workers=WORKERS, log_format="json").to_env())
    process = subprocess.Popen(
        [sys.executable, "-m", "mediasvc", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if wait_until_listening(process, port, timeout_s=30):
        return process
    process.kill()
    raise AssertionError("serve did not start")


async def post_many(base: str, count: int, *, held: asyncio.Event | None = None) -> list[int | str]:
    """Concurrent uploads; each result is the created id, a status, or a connection error.

    With `held`, each body stops after two chunks of the app's spooling (so that it has
    written the first to its spool file: it reads one chunk ahead) until `held` is set.
    """
    if held is None:
        image = images.make_jpeg(width=3000, height=2000)
    else:
        image = images.make_noisy_jpeg(width=1500, height=1000)  # about 3 MB
        assert len(image) > 2 * CHUNK_BYTES
    body, content_type = multipart_body([file_part(image)])
    headers = {**bearer(), "Content-Type": content_type}

    async def in_two_parts() -> AsyncIterator[bytes]:
        assert held is not None
        yield body[: 2 * CHUNK_BYTES]
        await held.wait()
        yield body[2 * CHUNK_BYTES :]

    async def one(http: aiohttp.ClientSession) -> int | str:
        # A stream either way: aiohttp warns (an error here) about large in-memory bodies.
        data = io.BytesIO(body) if held is None else in_two_parts()
        try:
            async with http.post(f"{base}/v1/media", data=data, headers=headers) as response:
                if response.status == 201:
                    return str((await response.json())["id"])
                return response.status
        except aiohttp.ClientError as exc:
            return f"error: {type(exc).__name__}"

    async with aiohttp.ClientSession() as http:
        return list(await asyncio.gather(*(one(http) for _ in range(count))))


def image_workers(app_pid: int) -> list[int]:
    """The app's image worker processes: its children started by multiprocessing's spawn."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        if ppid == app_pid and b"spawn_main" in cmdline:
            pids.append(int(stat.parent.name))
    return pids


async def stop_image_workers(base: str, app_pid: int) -> list[int]:
    """Start every image worker of the app at `base` (they start on first use), then
    SIGSTOP them: from then on an upload stays `processing` until they are continued."""

    async def all_started(http: aiohttp.ClientSession) -> bool:
        # Concurrent readiness probes each run a no-op job on an idle worker.
        async def probe() -> None:
            async with http.get(f"{base}/readyz") as response:
                await response.read()

        await asyncio.gather(*(probe() for _ in range(WORKERS)))
        return len(image_workers(app_pid)) == WORKERS

    async with aiohttp.ClientSession() as http:
        await wait_until(lambda: all_started(http), "every image worker runs")
    pids = image_workers(app_pid)
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    return pids


async def processing(client: Client, count: int) -> bool:
    """Whether `count` rows are `processing`: reserved, their variants not made yet."""
    rows = await client.app[DB].fetchval("SELECT count(*) FROM media WHERE status = 'processing'")
    return bool(rows == count)


def spooling(settings: Settings) -> int:
    """Uploads whose file part is being received now (one spool file each)."""
    return len(list(settings.spool_dir.glob("*.upload")))


def refuses_connections(port: int) -> bool:
    """Whether nothing listens on `port` any more (the app began its shutdown)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except (ConnectionRefusedError, ConnectionResetError):
        # Reset: the listening socket closed with this connection still in its backlog.
        return True
    return False


@pytest.mark.parametrize("moment", ["receiving", "processing"])
async def test_sigkill_mid_upload_then_gc_restores_agreement(
    client: Client, settings: Settings, moment: str
) -> None:
    """The app SIGKILLed while uploads run (at two different moments): afterwards, gc makes
    storage and database agree exactly; every 201 the clients saw is a ready media."""
    port = free_port()
    process = await asyncio.to_thread(serve, settings, port)
    base = f"http://127.0.0.1:{port}"
    held = asyncio.Event()
    try:
        [done] = await post_many(base, 1)  # acknowledged before the kill: must survive it
        assert is_media_id(str(done)), done
        if moment == "receiving":
            uploads = asyncio.create_task(post_many(base, WORKERS, held=held))
            await wait_until(lambda: spooling(settings) == WORKERS, "every upload is spooling")
        else:
            await stop_image_workers(base, process.pid)
            uploads = asyncio.create_task(post_many(base, WORKERS))
            await wait_until(lambda: processing(client, WORKERS), "every upload is processing")
        process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(process.wait)
        held.set()
        statuses = [done, *await uploads]
    finally:
        held.set()
        process.kill()
        process.wait()
    # The killed app's image workers (stopped ones too) die with it: PR_SET_PDEATHSIG.
    report = await gc(client, settings)
    assert report.errors == []
    if moment == "receiving":
        assert report.spool_removed >= WORKERS  # the half-received files
    else:
        assert report.rows_removed == WORKERS  # the uploads caught processing
    await assert_consistent(client)
    # Every acknowledged upload survived. (One made ready just before the kill may exist
    # without its 201 having reached the client: that is consistent too.)
    ready = {r["id"] for r in await client.app[DB].fetch("SELECT id FROM media")}
    acknowledged = {s for s in statuses if isinstance(s, str) and not s.startswith("error")}
    assert acknowledged <= ready


async def test_sigterm_lets_running_uploads_finish(client: Client, settings: Settings) -> None:
    """SIGTERM mid-upload: the upload still gets its 201, the process exits cleanly,
    nothing is left in processing."""
    port = free_port()
    process = await asyncio.to_thread(serve, settings, port)
    try:
        workers = await stop_image_workers(f"http://127.0.0.1:{port}", process.pid)
        uploads = asyncio.create_task(post_many(f"http://127.0.0.1:{port}", WORKERS))
        await wait_until(lambda: processing(client, WORKERS), "every upload is processing")
        process.send_signal(signal.SIGTERM)
        # Shutdown has begun once the app stops listening; only then may the uploads go on.
        await wait_until(lambda: refuses_connections(port), "the app stops listening")
        for pid in workers:
            os.kill(pid, signal.SIGCONT)
        statuses = await uploads
        assert await asyncio.to_thread(process.wait, 40) == 0
    finally:
        process.kill()
        await asyncio.to_thread(process.wait)
    assert all(isinstance(s, str) and is_media_id(s) for s in statuses)  # both answered 201
    assert await client.app[DB].fetchval("SELECT count(*) FROM media WHERE status <> 'ready'") == 0
    await assert_consistent(client)
