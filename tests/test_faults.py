"""Faults injected for real: a frozen or stopped PostgreSQL, an erroring storage, a full
disk, a hung job. Each test checks the answer, the state afterwards, and recovery without
a restart."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import images
import pytest
from aiohttp import web
from conftest import s3_admin_client
from support import Client, assert_nothing_left, bearer, post_media, stored_keys, upload_form

from mediasvc.app import create_app
from mediasvc.appkeys import DB, STORAGE
from mediasvc.config import Settings
from mediasvc.db.migrate import migrate_database
from mediasvc.flows.reaper import reap
from mediasvc.stack.localproc import free_port
from mediasvc.stack.pgcluster import FAST_UNSAFE, PostgresCluster


@dataclass
class OwnPostgres:
    """A cluster for this test alone, so it can be frozen and stopped."""

    cluster: PostgresCluster
    port: int

    def pids(self) -> list[int]:
        """The postmaster and every process it started."""
        postmaster = int((self.cluster.data / "postmaster.pid").read_text().split()[0])
        children = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == postmaster:
                    children.append(int(entry.name))
        return [postmaster, *children]

    def freeze(self) -> None:
        for pid in self.pids():
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in self.pids():
            os.kill(pid, signal.SIGCONT)


@pytest.fixture
def own_postgres(public_tmp: Path) -> Iterator[OwnPostgres]:
    """A private, migrated cluster; always thawed and stopped at the end."""
    server = OwnPostgres(PostgresCluster(public_tmp / f"pg-{secrets.token_hex(4)}"), free_port())
    server.cluster.ensure_initialised()
    server.cluster.start(server.port, settings=FAST_UNSAFE)
    asyncio.run(migrate_database(server.cluster.dsn(server.port)))
    try:
        yield server
    finally:
        if server.cluster.is_running():
            server.thaw()
        server.cluster.stop()


@pytest.fixture
async def db_client(
    own_postgres: OwnPostgres, make_settings: Any, aiohttp_client: Any
) -> tuple[Client, Settings]:
    """The app on the private cluster, with short database timeouts."""
    settings = make_settings(
        database_url=own_postgres.cluster.dsn(own_postgres.port), db_timeout_s=2.0
    )
    client: Client = await aiohttp_client(create_app(settings))
    return client, settings


async def upload(client: Client) -> aiohttp.ClientResponse:
    response: aiohttp.ClientResponse = await post_media(client, images.make_jpeg())
    return response


# A COMMIT that makes a media ready outlasts the client's timeout, and still succeeds: the
# client's cancel request is swallowed, as one waiting for a slow synchronous standby would
# be answered late. Deferred, so it runs at COMMIT, after every statement was answered.
SLOW_READY_COMMIT = """
CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        PERFORM pg_sleep(2);
    EXCEPTION WHEN query_canceled THEN
        NULL;
    END;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER slow_ready AFTER UPDATE ON media DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.status = 'ready') EXECUTE FUNCTION slow_commit();
"""


class TestDatabase:
    async def test_frozen_database_means_bounded_503_then_recovery(
        self, db_client: tuple[Client, Settings], own_postgres: OwnPostgres
    ) -> None:
        """SIGSTOPped PostgreSQL: uploads and reads 503 within the timeout, /healthz stays 200,
        /readyz 503; after SIGCONT the next upload works, no restart."""
        client, settings = db_client
        created = await (await upload(client)).json()
        own_postgres.freeze()
        try:
            for response in await asyncio.wait_for(
                asyncio.gather(upload(client), client.get(f"/v1/media/{created['id']}")), 20
            ):
                assert response.status == 503
                assert response.headers["Retry-After"]
                assert (await response.json())["code"] == "busy"
            assert (await client.get("/healthz")).status == 200
            assert (await asyncio.wait_for(client.get("/readyz"), 20)).status == 503
            assert list(settings.spool_dir.iterdir()) == []
        finally:
            own_postgres.thaw()
        assert (await upload(client)).status == 201
        assert (await client.get("/readyz")).status == 200

    async def test_stopped_database_means_503_then_recovery(
        self, db_client: tuple[Client, Settings], own_postgres: OwnPostgres
    ) -> None:
        """PostgreSQL shut down and started again: 503 meanwhile, then uploads work."""
        client, settings = db_client
        own_postgres.cluster.stop()
        response = await upload(client)
        assert response.status == 503
        assert list(settings.spool_dir.iterdir()) == []
        own_postgres.cluster.start(own_postgres.port, settings=FAST_UNSAFE)
        assert (await upload(client)).status == 201

    async def test_a_commit_answered_too_late_keeps_the_ready_media(
        self, make_settings: Any, aiohttp_client: Any
    ) -> None:
        """The COMMIT that makes a media ready succeeds after the client's timeout: the
        upload answers 503, the media stays ready with all its files (the undo must not
        remove what committed), and a retry with the same Idempotency-Key gets it."""
        client: Client = await aiohttp_client(create_app(make_settings(db_timeout_s=0.5)))
        pool = client.app[DB]
        await pool.execute(SLOW_READY_COMMIT)
        data, headers = images.make_jpeg(), {**bearer(), "Idempotency-Key": "slow-commit"}
        response = await client.post("/v1/media", data=upload_form(data), headers=headers)
        assert response.status == 503
        assert (await response.json())["code"] == "busy"
        await pool.execute("DROP TRIGGER slow_ready ON media")
        [row] = await pool.fetch("SELECT id, status, variants FROM media")
        assert row["status"] == "ready"
        assert await stored_keys(client) == sorted(v["key"] for v in row["variants"].values())
        retried = await client.post("/v1/media", data=upload_form(data), headers=headers)
        assert retried.status == 200
        assert (await retried.json())["id"] == row["id"]


class FlakyS3Edge:
    """An HTTP hop in front of the S3 server that starts failing after N object writes.

    A fake only at the network edge, to make storage fail between two variants of one
    upload; everything behind it is the real S3 server.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.fail_after_puts: int | None = None
        self.puts = 0
        self.down = False

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.method == "PUT" and request.path.count("/") > 2:
            self.puts += 1
            if self.fail_after_puts is not None and self.puts > self.fail_after_puts:
                self.down = True
        if self.down:
            return web.Response(
                status=503,
                text="<Error><Code>ServiceUnavailable</Code><Message>down</Message></Error>",
                content_type="application/xml",
            )
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method,
                self.upstream + request.path_qs,
                headers=headers,
                data=await request.read(),
                allow_redirects=False,
            ) as upstream,
        ):
            return web.Response(
                status=upstream.status,
                body=await upstream.read(),
                headers={
                    k: v
                    for k, v in upstream.headers.items()
                    if k.lower() not in ("content-length", "transfer-encoding", "connection")
                },
            )


@pytest.fixture
async def flaky_s3(s3_endpoint: str, s3_bucket: str) -> AsyncIterator[tuple[FlakyS3Edge, str]]:
    """The edge on a free port; yields it and its URL."""
    edge = FlakyS3Edge(s3_endpoint)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", edge.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield edge, f"http://127.0.0.1:{port}"
    await runner.cleanup()


class TestStorage:
    @pytest.fixture
    def backend(self) -> str:
        return "s3"

    async def test_storage_failing_between_variants_is_503_and_the_reaper_cleans_up(
        self,
        flaky_s3: tuple[FlakyS3Edge, str],
        make_settings: Any,
        aiohttp_client: Any,
        s3_endpoint: str,
        s3_bucket: str,
    ) -> None:
        """Two variants written, then storage fails: 503; once storage is back, the reaper
        removes the tombstone row and the two objects, and the bucket is empty again."""
        edge, url = flaky_s3
        settings = make_settings(s3_endpoint_url=url, storage_timeout_s=2.0)
        client: Client = await aiohttp_client(create_app(settings))
        edge.fail_after_puts = 2
        response = await upload(client)
        assert response.status == 503
        assert (await response.json())["code"] == "busy"
        rows = await client.app[DB].fetch("SELECT status FROM media")
        assert [r["status"] for r in rows] == ["deleting"]
        assert (await client.get("/v1/media", headers=bearer())).status == 200
        listed = await (await client.get("/v1/media", headers=bearer())).json()
        assert listed["items"] == []
        admin = s3_admin_client(s3_endpoint)
        assert admin.list_objects_v2(Bucket=s3_bucket)["KeyCount"] == 2

        edge.down = False
        edge.fail_after_puts = None
        report = await reap(client.app[DB], client.app[STORAGE], settings.spool_dir, grace_s=0)
        assert report.rows_removed == 1
        assert report.errors == []
        await assert_nothing_left(client, settings)
        assert (await upload(client)).status == 201

    async def test_storage_down_before_any_write_records_nothing(
        self, flaky_s3: tuple[FlakyS3Edge, str], make_settings: Any, aiohttp_client: Any
    ) -> None:
        """Storage refusing every write: 503 with Retry-After, no row, no spool, no object."""
        edge, url = flaky_s3
        settings = make_settings(s3_endpoint_url=url, storage_timeout_s=2.0)
        client: Client = await aiohttp_client(create_app(settings))
        edge.down = True
        response = await upload(client)
        assert response.status == 503
        assert response.headers["Retry-After"]
        edge.down = False
        await assert_nothing_left(client, settings)


@pytest.fixture
def tiny_disk(public_tmp: Path) -> Iterator[Path]:
    """A 2 MB tmpfs: a disk that fills up for real."""
    path = public_tmp / f"disk-{secrets.token_hex(4)}"
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(path)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


class TestFullDisk:
    async def test_full_spool_disk_is_507_and_leaves_nothing(
        self, tiny_disk: Path, make_settings: Any, aiohttp_client: Any
    ) -> None:
        """An upload bigger than the free spool space: 507, no row, no partial spool file."""
        settings = make_settings(spool_dir=tiny_disk / "spool")
        client: Client = await aiohttp_client(create_app(settings))
        big = images.make_noisy_jpeg(width=1500, height=1000)
        assert len(big) > 2 * 1024 * 1024, len(big)
        response = await post_media(client, big)
        assert response.status == 507
        assert (await response.json())["code"] == "insufficient_storage"
        await assert_nothing_left(client, settings)
        assert (await upload(client)).status == 201

    async def test_full_media_disk_is_503_and_leaves_nothing(
        self, tiny_disk: Path, make_settings: Any, aiohttp_client: Any
    ) -> None:
        """No room for the variants: 503, and whatever was written is removed."""
        (tiny_disk / "filler").write_bytes(b"\0" * (2 * 1024 * 1024 - 64 * 1024))
        settings = make_settings(media_dir=tiny_disk / "media")
        client: Client = await aiohttp_client(create_app(settings))
        big = images.make_noisy_jpeg(width=1500, height=1000)
        response = await post_media(client, big)
        assert response.status == 503
        await assert_nothing_left(client, settings)


class TestHungJob:
    async def test_job_past_the_timeout_is_500_and_leaves_nothing(
        self, make_settings: Any, aiohttp_client: Any
    ) -> None:
        """A job killed at MEDIASVC_JOB_TIMEOUT_S: 500 processing_timeout, nothing stored,
        and the next upload (with a sane timeout) succeeds on the replaced worker."""
        settings = make_settings(job_timeout_s=0.05)
        client: Client = await aiohttp_client(create_app(settings))
        big = images.make_jpeg(width=4000, height=3000)
        response = await post_media(client, big)
        assert response.status == 500
        assert (await response.json())["code"] == "processing_timeout"
        await assert_nothing_left(client, settings)
        assert await stored_keys(client) == []
