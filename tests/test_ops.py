"""Operator commands over a whole deployment (issue 29): `storage copy` from local disk to S3
and the switch (the same bytes served through nginx), an interrupted copy resumed,
`storage verify` finding what is wrong, and `backup` restored into a new cluster and data
dir (the same bytes served through nginx).

The commands run as an operator runs them, `python -m mediasvc ...` in a child process,
except where a test must interrupt one at a point it chooses."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import images
import pytest
from support import Client, bearer, parametrize_backends, post_media, running_nginx

from mediasvc.app import create_app
from mediasvc.appkeys import DB, STORAGE
from mediasvc.config import Settings
from mediasvc.ids import new_media_id
from mediasvc.keys import media_id_of, source_key, variant_key
from mediasvc.kinds import kind_rules
from mediasvc.ops import OpsError
from mediasvc.ops.backup import backup, restore
from mediasvc.ops.storage_copy import copy_storage, target_name
from mediasvc.ops.verify import Missing, verify_storage
from mediasvc.stack.localproc import free_port
from mediasvc.stack.pgcluster import FAST_UNSAFE, PostgresCluster, client_binary
from mediasvc.storage import DirectUpload, DirectUploadTerms, Storage, StoredFile, StoredObject
from mediasvc.storage.open import open_storage

# A kind with every sort of object: variants, their AVIF alternates, the kept source.
KINDS_TOML = """
[kinds.kept]
keep_source = true
formats = ["webp", "avif"]
sizes = { small = 96, large = 320 }
"""


@pytest.fixture
def kinds_file(data_dir: Path) -> Path:
    path = data_dir / "kinds.toml"
    path.write_text(KINDS_TOML)
    return path


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    result: Settings = make_settings(kinds_table=tomllib.loads(KINDS_TOML))
    return result


def command_env(settings: Settings, kinds_file: Path, **extra: str) -> dict[str, str]:
    """What an operator's shell holds for `settings`: the variables and the kinds file."""
    return {
        **os.environ,
        **settings.to_env(),
        "MEDIASVC_KINDS_FILE": str(kinds_file),
        **extra,
    }


async def mediasvc(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    """`python -m mediasvc ARGV` in `env`, to its end."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "mediasvc", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def upload_both(client: Client) -> list[str]:
    """A public photo of the kept kind (with an AVIF alternate), and a private post; ids."""
    ids = []
    for fields in ({"kind": "kept"}, {"kind": "post", "visibility": "private"}):
        response = await post_media(client, images.make_jpeg(width=400, height=300), **fields)
        assert response.status == 201, await response.text()
        ids.append((await response.json())["id"])
    await ensure_alternate(client, ids[0])
    return ids


async def ensure_alternate(client: Client, media_id: str) -> None:
    """Give the media's `large` variant an AVIF alternate, stored and recorded as an upload
    stores one, unless the encoder made one already (it comes with issue 28's encoder)."""
    pool, storage = client.app[DB], client.app[STORAGE]
    variants = await pool.fetchval("SELECT variants FROM media WHERE id = $1", media_id)
    large = variants["large"]
    if large.get("alternates"):
        return
    data = images.make_avif_sequence()
    key = large["key"].replace(".webp", ".avif")
    with tempfile.TemporaryDirectory() as scratch:
        # The backend may move the file into place: a scratch copy of its own.
        (Path(scratch) / "large.avif").write_bytes(data)
        await storage.put(key, Path(scratch) / "large.avif", "image/avif")
    large["alternates"] = [{"key": key, "bytes": len(data), "mime": "image/avif"}]
    await pool.execute("UPDATE media SET variants = $2 WHERE id = $1", media_id, variants)


async def object_count(client: Client, *ids: str) -> int:
    """How many objects the ready media's rows record (of `ids`, or all), kept sources too."""
    rows = await client.app[DB].fetch(
        "SELECT kind, variants FROM media WHERE status = 'ready'"
        " AND (cardinality($1::text[]) = 0 OR id = ANY($1))",
        list(ids),
    )
    return sum(
        len(row["variants"])
        + sum(len(v.get("alternates", [])) for v in row["variants"].values())
        + (row["kind"] == "kept")
        for row in rows
    )


async def served(
    client: Client, nginx: str, http: aiohttp.ClientSession, ids: Iterable[str]
) -> dict[str, bytes]:
    """Every file of these media (each variant, each alternate) as nginx serves it, by
    media, variant and type, found through the app's JSON (private ones signed)."""
    found = {}
    for media_id in ids:
        response = await client.get(f"/v1/media/{media_id}", headers=bearer())
        assert response.status == 200
        for name, variant in (await response.json())["variants"].items():
            files = {variant["mime"]: variant["url"]}
            files.update({mime: alt["url"] for mime, alt in variant.get("alternates", {}).items()})
            for mime, url in files.items():
                async with http.get(nginx + url) as answer:
                    assert answer.status == 200, url
                    found[f"{media_id}/{name}/{mime}"] = await answer.read()
    return found


def s3_settings(settings: Settings, endpoint: str, bucket: str) -> Settings:
    return replace(settings, storage="s3", s3_endpoint_url=endpoint, s3_bucket=bucket)


@contextlib.asynccontextmanager
async def switched(settings: Settings, aiohttp_client: Any) -> AsyncIterator[tuple[Client, str]]:
    """A node and nginx started on `settings` (as after a switch or a restore)."""
    node: Client = await aiohttp_client(create_app(settings))
    async with running_nginx(settings, [node.server.port]) as base_url:
        yield node, base_url


class TestStorageCopy:
    async def test_a_copy_to_s3_serves_the_same_bytes_after_the_switch(
        self,
        client: Client,
        nginx: str,
        http: aiohttp.ClientSession,
        settings: Settings,
        kinds_file: Path,
        s3_endpoint: str,
        s3_bucket: str,
        aiohttp_client: Any,
    ) -> None:
        """A dry run copies nothing; the copy checks every object into the bucket and prints
        the switch; switched, nginx serves every variant and alternate byte for byte as
        from disk, and `storage verify` finds nothing wrong."""
        ids = await upload_both(client)
        objects = await object_count(client)
        before = await served(client, nginx, http, ids)
        env = command_env(
            settings,
            kinds_file,
            MEDIASVC_COPY_TO_S3_BUCKET=s3_bucket,
            MEDIASVC_COPY_TO_S3_ENDPOINT_URL=s3_endpoint,
        )
        target = s3_settings(settings, s3_endpoint, s3_bucket)

        dry = await mediasvc(env, "storage", "copy", "--to", "s3", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert f"would copy {objects} objects" in dry.stdout
        async with open_storage(target) as bucket:
            assert [obj async for obj in bucket.scan()] == []

        copy = await mediasvc(env, "storage", "copy", "--to", "s3")
        assert copy.returncode == 0, copy.stderr
        assert f"copied {objects} objects" in copy.stdout
        assert f"MEDIASVC_STORAGE=s3 MEDIASVC_S3_BUCKET={s3_bucket}" in copy.stdout

        async with switched(target, aiohttp_client) as (node, base_url):
            assert await served(node, base_url, http, ids) == before
        verify = await mediasvc(command_env(target, kinds_file), "storage", "verify")
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert f"verify: ok: 2 media, {objects} objects checked" in verify.stdout

    async def test_an_interrupted_copy_resumes_and_drops_copies_of_deleted_media(
        self, client: Client, settings: Settings, s3_endpoint: str, s3_bucket: str
    ) -> None:
        """Interrupted while storing its fourth object, a copy has recorded three; the next
        run copies only the rest, and after a delete the one after removes that media's
        copies from the bucket."""
        ids = await upload_both(client)
        objects = await object_count(client)
        kept_objects = objects - await object_count(client, ids[1])
        pool, source = client.app[DB], client.app[STORAGE]
        target = s3_settings(settings, s3_endpoint, s3_bucket)
        kinds = kind_rules(settings)

        async with open_storage(target) as bucket:

            async def run(into: Storage) -> Any:
                return await copy_storage(
                    pool,
                    source,
                    into,
                    target_name=target_name(target),
                    kinds=kinds,
                    scratch_dir=settings.spool_dir,
                    jobs=1,
                )

            stalling = StallingStorage(bucket, allowed=3)
            interrupted = asyncio.create_task(run(stalling))
            await stalling.stalled.wait()
            interrupted.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await interrupted

            resumed = await run(bucket)
            assert (resumed.already, resumed.copied, resumed.problems) == (3, objects - 3, [])
            assert (await verify_storage(pool, bucket, kinds)).ok
            assert not [p for p in settings.spool_dir.iterdir() if "storage-copy" in p.name]

            deleted = await client.delete(f"/v1/media/{ids[0]}", headers=bearer())
            assert deleted.status == 204
            again = await run(bucket)
            assert (again.copied, again.removed) == (0, kept_objects)
            left = {media_id_of(obj.key) async for obj in bucket.scan()}
            assert left == {ids[1]}


class WrappedStorage:
    """A backend that hands every call to `inner`; subclasses change one call."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.put_needs_size = inner.put_needs_size

    async def put(self, key: str, source: Path, content_type: str) -> None:
        await self.inner.put(key, source, content_type)

    async def put_all(self, files: Sequence[StoredFile]) -> None:
        for file in files:
            await self.put(file.key, file.path, file.mime)

    def read(self, key: str) -> AsyncIterator[bytes]:
        return self.inner.read(key)

    def scan(self) -> AsyncIterator[StoredObject]:
        return self.inner.scan()

    async def delete(self, keys: Iterable[str]) -> None:
        await self.inner.delete(keys)

    async def delete_under(self, prefix: str) -> list[str]:
        return await self.inner.delete_under(prefix)

    async def check(self) -> None:
        await self.inner.check()

    async def direct_upload(self, key: str, terms: DirectUploadTerms) -> DirectUpload | None:
        return await self.inner.direct_upload(key, terms)


class StallingStorage(WrappedStorage):
    """Stores `allowed` objects, then blocks the next put until cancelled, as a copy
    interrupted mid-write (Ctrl-C) would be."""

    def __init__(self, inner: Storage, *, allowed: int) -> None:
        super().__init__(inner)
        self.allowed = allowed
        self.stalled = asyncio.Event()

    async def put(self, key: str, source: Path, content_type: str) -> None:
        if self.allowed == 0:
            self.stalled.set()
            await asyncio.Event().wait()
        self.allowed -= 1
        await self.inner.put(key, source, content_type)


class UploadingOnFirstRead(WrappedStorage):
    """Before the first object is read, has the app finish one more upload (as a user
    might while a backup runs)."""

    def __init__(self, inner: Storage, client: Client) -> None:
        super().__init__(inner)
        self.client = client
        self.uploaded: list[str] = []

    async def read(self, key: str) -> AsyncIterator[bytes]:  # type: ignore[override]
        if not self.uploaded:
            self.uploaded.append("")  # taken: only the first read uploads
            response = await post_media(self.client, images.make_jpeg())
            assert response.status == 201
            self.uploaded[0] = (await response.json())["id"]
        async for chunk in self.inner.read(key):
            yield chunk


class TestVerify:
    async def test_verify_reports_a_missing_object_a_wrong_size_and_an_orphan(
        self, client: Client, settings: Settings, kinds_file: Path, tmp_path: Path
    ) -> None:
        """Clean after uploads; then a deleted AVIF alternate, a truncated kept source and a
        variant of no media are each reported, and the command exits 1."""
        media_id = (await upload_both(client))[0]
        pool, storage = client.app[DB], client.app[STORAGE]
        kinds = kind_rules(settings)
        assert (await verify_storage(pool, storage, kinds)).ok

        row = await pool.fetchrow(
            "SELECT variants, original_bytes FROM media WHERE id = $1", media_id
        )
        alternate = row["variants"]["large"]["alternates"][0]
        await storage.delete([alternate["key"]])
        (tmp_path / "short").write_bytes(b"x")
        await storage.put(source_key(media_id), tmp_path / "short", "image/jpeg")
        orphan = variant_key(new_media_id(), "large.webp")
        (tmp_path / "orphan").write_bytes(b"RIFF")
        await storage.put(orphan, tmp_path / "orphan", "image/webp")

        report = await verify_storage(pool, storage, kinds)
        assert sorted(report.missing, key=lambda m: m.key) == sorted(
            [
                Missing(alternate["key"], media_id, alternate["bytes"], None),
                Missing(source_key(media_id), media_id, row["original_bytes"], 1),
            ],
            key=lambda m: m.key,
        )
        assert report.orphans == [orphan]

        verify = await mediasvc(command_env(settings, kinds_file), "storage", "verify")
        assert verify.returncode == 1
        assert f"orphan: {orphan}" in verify.stdout
        assert f"missing: {alternate['key']}" in verify.stdout
        assert "2 missing or wrong size, 1 orphans" in verify.stdout


@parametrize_backends
class TestBackup:
    async def test_a_backup_restored_into_a_new_cluster_serves_the_same_bytes(
        self,
        backend: str,
        client: Client,
        nginx: str,
        http: aiohttp.ClientSession,
        settings: Settings,
        kinds_file: Path,
        public_tmp: Path,
        aiohttp_client: Any,
    ) -> None:
        """A dry run writes nothing; an interrupted run's leftovers are replaced; the backup
        holds the dump, a manifest of every object and, from local disk, the media tree (a
        bucket keeps its objects); restored into a new cluster's empty database and a new
        data dir, it passes `storage verify` and nginx serves the same bytes; a second
        restore into the now full database is refused."""
        ids = await upload_both(client)
        objects = await object_count(client)
        before = await served(client, nginx, http, ids)
        env = command_env(settings, kinds_file)
        directory = public_tmp / f"backup-{secrets.token_hex(4)}"

        kinds = kind_rules(settings)
        storage = client.app[STORAGE]
        dry = await backup(settings, directory, storage=storage, kinds=kinds, dry_run=True)
        assert (dry.objects, directory.exists()) == (objects, False)
        # What an interrupted backup leaves: started over.
        partial = directory.with_name(directory.name + ".partial")
        partial.mkdir()
        (partial / "database.dump").write_bytes(b"half")
        done = await mediasvc(env, "backup", str(directory))
        assert done.returncode == 0, done.stderr
        assert not partial.exists()
        assert f"backed up the database, 2 media and {objects} objects" in done.stdout
        assert len((directory / "manifest.jsonl").read_text().splitlines()) == objects
        assert (directory / "media").is_dir() == (backend == "local")

        async with new_database(public_tmp) as database_url:
            data_dir = public_tmp / f"data-{secrets.token_hex(4)}"
            data_dir.mkdir(mode=0o755)
            restored = replace(
                settings,
                database_url=database_url,
                data_dir=data_dir,
                media_dir=data_dir / "media",
                spool_dir=data_dir / "spool",
            )
            try:
                env = command_env(restored, kinds_file)
                run = await mediasvc(env, "restore", str(directory))
                assert run.returncode == 0, run.stdout + run.stderr
                assert f"verify: ok: 2 media, {objects} objects checked" in run.stdout
                async with switched(restored, aiohttp_client) as (node, base_url):
                    assert await served(node, base_url, http, ids) == before
                async with open_storage(restored) as fresh:
                    with pytest.raises(OpsError, match="the database is not empty"):
                        await restore(restored, directory, storage=fresh, kinds=kinds)
            finally:
                shutil.rmtree(data_dir, ignore_errors=True)
                shutil.rmtree(directory, ignore_errors=True)


class TestBackupSnapshot:
    async def test_an_upload_during_the_backup_is_in_neither_the_dump_nor_the_manifest(
        self, client: Client, settings: Settings, tmp_path: Path
    ) -> None:
        """The dump and the manifest are of the snapshot taken first: a media made ready
        while the backup reads objects is in neither; the ones before it are in both."""
        ids = await upload_both(client)
        storage = UploadingOnFirstRead(client.app[STORAGE], client)
        directory = tmp_path / "backup"
        report = await backup(
            settings, directory, storage=storage, kinds=kind_rules(settings), jobs=1
        )
        late = storage.uploaded[0]
        assert (report.media, report.problems) == (2, [])
        lines = (directory / "manifest.jsonl").read_text().splitlines()
        manifest = [json.loads(line) for line in lines]
        assert {media_id_of(entry["key"]) for entry in manifest} == set(ids)
        version = int(await client.app[DB].fetchval("SHOW server_version_num"))
        pg_restore = client_binary("pg_restore", version)
        dump = str(directory / "database.dump")
        listed = await asyncio.to_thread(
            subprocess.run,
            [pg_restore, "--data-only", "--table=media", "-f", "-", dump],
            capture_output=True,
            text=True,
            check=True,
        )
        assert all(media_id in listed.stdout for media_id in ids)
        assert late not in listed.stdout


@contextlib.asynccontextmanager
async def new_database(public_tmp: Path) -> AsyncIterator[str]:
    """A new cluster (its own initdb and data directory) with one empty database."""
    cluster = PostgresCluster(public_tmp / f"restore-pg-{secrets.token_hex(4)}")
    port = free_port()
    await asyncio.to_thread(cluster.ensure_initialised)
    await asyncio.to_thread(cluster.start, port, settings=FAST_UNSAFE)
    try:
        admin = await asyncpg.connect(cluster.dsn(port))
        try:
            await admin.execute("CREATE DATABASE restored")
        finally:
            await admin.close()
        yield cluster.dsn(port, "restored")
    finally:
        await asyncio.to_thread(cluster.stop)
        shutil.rmtree(cluster.root, ignore_errors=True)
