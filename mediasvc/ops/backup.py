"""`backup DIR` and `restore DIR`: the database and a manifest of every object, taken from
one snapshot, plus the media tree when storage is local disk.

    DIR/backup.json        what the backup is: format, when, storage kind, counts
    DIR/database.dump      `pg_dump --format=custom` of the whole database
    DIR/manifest.jsonl     one line per object of every ready media: key, bytes, sha256, mime
    DIR/media/...          the objects themselves, by key (local disk only)

Consistency: a REPEATABLE READ transaction exports its snapshot (`pg_export_snapshot()`),
pg_dump dumps from that snapshot (`--snapshot`), and the manifest is read from the same
transaction: the dump and the manifest describe the same moment, whatever uploads and
deletes run meanwhile. The objects are read while the snapshot is held; one deleted
in between is reported, and the backup exits non-zero (run it again).

With S3 the bucket keeps the objects (versioning or replication): the backup holds the
manifest, which says which version of each key the database expects (by sha256).

A backup is written to `DIR.partial` and renamed to DIR when complete: an interrupted run
leaves no DIR, and the next run starts over. `restore` copies the media tree first (only
into a storage that holds nothing but objects of this backup: an interrupted restore), then
restores the database in one transaction (`pg_restore --single-transaction`) into a database
that has no tables, then runs `storage verify`.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from mediasvc import db
from mediasvc.config import Settings
from mediasvc.db import inventory
from mediasvc.kinds import KindRules
from mediasvc.ops import OpsError
from mediasvc.ops.objects import Digest, Expected, expected_objects, file_digest, read_digest
from mediasvc.ops.progress import Progress, each, human_bytes
from mediasvc.ops.verify import VerifyReport, verify_storage
from mediasvc.stack.pgcluster import client_binary
from mediasvc.storage import ObjectMissing, Storage

FORMAT = 1
INFO = "backup.json"
DUMP = "database.dump"
MANIFEST = "manifest.jsonl"
MEDIA_TREE = "media"
BATCH = 500
DEFAULT_JOBS = 8

# Tables and views of the application; any one makes a database not empty for `restore`.
_USER_RELATIONS = """
SELECT count(*) FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
"""


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """One object of the backup."""

    key: str
    bytes: int
    sha256: str
    mime: str


@dataclass
class BackupReport:
    """What a backup wrote (or, dry, would write)."""

    directory: Path
    media: int = 0
    objects: int = 0
    bytes: int = 0
    problems: list[str] = field(default_factory=list)
    dry_run: bool = False

    def summary(self) -> str:
        verb = "would back up" if self.dry_run else "backed up"
        return (
            f"backup: {verb} the database, {self.media} media and {self.objects} objects"
            f" ({human_bytes(self.bytes)}) to {self.directory}; {len(self.problems)} problems"
        )


@dataclass
class RestoreReport:
    """What a restore did, and the `storage verify` that followed it."""

    objects: int = 0
    bytes: int = 0
    # Already in the storage (an interrupted restore's, or kept in the bucket).
    present: int = 0
    verify: VerifyReport | None = None
    dry_run: bool = False

    def summary(self) -> str:
        verb = "would restore" if self.dry_run else "restored"
        checked = ""
        if self.verify is not None:
            checked = "; verify " + ("ok" if self.verify.ok else "FAILED")
        return (
            f"restore: {verb} the database and {self.objects} objects"
            f" ({human_bytes(self.bytes)}), {self.present} already there{checked}"
        )


async def backup(
    settings: Settings,
    directory: Path,
    *,
    storage: Storage,
    kinds: Mapping[str, KindRules],
    dry_run: bool = False,
    jobs: int = DEFAULT_JOBS,
    progress: Progress | None = None,
) -> BackupReport:
    """Write a backup to `directory` (new, or empty); see the module's docstring."""
    progress = progress or Progress("backup")
    report = BackupReport(directory, dry_run=dry_run)
    if await asyncio.to_thread(_has_files, directory):
        raise OpsError(f"{directory} is not empty: back up into a new directory")
    partial = directory.with_name(directory.name + ".partial")
    tree = partial / MEDIA_TREE if settings.storage == "local" else None
    if not dry_run:
        # What an interrupted run left: it is started over.
        await asyncio.to_thread(shutil.rmtree, partial, ignore_errors=True)
        # The dump holds owners' ids (often email addresses): for its operator only.
        await asyncio.to_thread(partial.mkdir, mode=0o700, parents=True)
    entries: list[ManifestEntry] = []

    async def take(expected: Expected) -> None:
        into = None if tree is None else tree / expected.key
        if into is not None:
            await asyncio.to_thread(into.parent.mkdir, parents=True, exist_ok=True)
        try:
            digest = await read_digest(storage, expected.key, into)
        except ObjectMissing:
            if expected.required:
                report.problems.append(f"missing (deleted during the backup?): {expected.key}")
            return
        if digest.bytes != expected.bytes:
            report.problems.append(
                f"wrong size: {expected.key}: {digest.bytes} bytes, the row says {expected.bytes}"
            )
        entries.append(ManifestEntry(expected.key, digest.bytes, digest.sha256, expected.mime))
        progress.advance(objects=1, size=digest.bytes)

    async with (
        db.open_pool(settings) as pool,
        pool.acquire() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        snapshot = await conn.fetchval("SELECT pg_export_snapshot()")
        server_version = int(await conn.fetchval("SHOW server_version_num"))
        progress.total = await inventory.count_ready(conn)
        dump = None
        if not dry_run:
            dump = await _start(
                client_binary("pg_dump", server_version),
                ["--format=custom", f"--snapshot={snapshot}", f"--file={partial / DUMP}"],
                settings.database_url,
            )
        try:
            after = ""
            while batch := await inventory.ready_media(conn, after, BATCH):
                after = batch[-1].id
                objects = [obj for media in batch for obj in expected_objects(media, kinds)]
                report.media += len(batch)
                if dry_run:
                    required = [obj for obj in objects if obj.required]
                    report.objects += len(required)
                    report.bytes += sum(obj.bytes for obj in required)
                else:
                    await each(objects, jobs, take)
                progress.advance(len(batch))
            if dump is not None:
                # The snapshot must stay exported until pg_dump has taken it: the
                # transaction ends only after pg_dump has.
                await _finish(dump, "pg_dump")
        finally:
            if dump is not None:
                await _stop(dump)
    progress.close()
    if dry_run:
        return report
    entries.sort(key=lambda entry: entry.key)
    report.objects = len(entries)
    report.bytes = sum(entry.bytes for entry in entries)
    info = {
        "format": FORMAT,
        "created_at": datetime.now(UTC).isoformat(),
        "storage": settings.storage,
        "media_tree": tree is not None,
        "server_version_num": server_version,
        "media": report.media,
        "objects": report.objects,
        "bytes": report.bytes,
    }
    await asyncio.to_thread(_write_backup_files, partial, directory, entries, info)
    return report


async def restore(
    settings: Settings,
    directory: Path,
    *,
    storage: Storage,
    kinds: Mapping[str, KindRules],
    dry_run: bool = False,
    jobs: int = DEFAULT_JOBS,
    progress: Progress | None = None,
) -> RestoreReport:
    """Restore the backup in `directory` into the (empty) database and storage the settings
    name, then verify; see the module's docstring."""
    progress = progress or Progress("restore")
    report = RestoreReport(dry_run=dry_run)
    info, entries = await asyncio.to_thread(_read_backup, directory)
    async with db.open_pool(settings) as pool:
        async with db.connection(pool) as conn:
            if await conn.fetchval(_USER_RELATIONS):
                raise OpsError(
                    "the database is not empty: restore into a new database"
                    " (createdb), before `migrate` or any node has run on it"
                )
            server_version = int(await conn.fetchval("SHOW server_version_num"))
        pg_restore = client_binary("pg_restore", server_version)
        # The dump must be readable before anything is written.
        listing = await _start(pg_restore, ["--list", str(directory / DUMP)], None)
        await _finish(listing, "pg_restore")
        stored: dict[str, int] = {obj.key: obj.bytes async for obj in storage.scan()}
        sizes = {entry.key: entry.bytes for entry in entries}
        if info["media_tree"]:
            foreign = [key for key, size in stored.items() if sizes.get(key) != size]
            if foreign:
                raise OpsError(
                    f"the storage is not empty ({len(foreign)} objects not from this backup,"
                    f" e.g. {foreign[0]}): restore into empty storage"
                )
            todo = [entry for entry in entries if entry.key not in stored]
        else:
            # The bucket holds the objects; `storage verify` below says if any is missing.
            todo = []
        report.present = len(entries) - len(todo)
        report.objects = len(todo)
        report.bytes = sum(entry.bytes for entry in todo)
        if dry_run:
            return report
        scratch_dir = settings.spool_dir
        await asyncio.to_thread(scratch_dir.mkdir, parents=True, exist_ok=True)

        async def put(entry: ManifestEntry) -> None:
            scratch = scratch_dir / f".restore-{secrets.token_hex(8)}"
            try:
                digest = await asyncio.to_thread(
                    _copy_checked, directory / MEDIA_TREE / entry.key, scratch
                )
                if digest != Digest(entry.bytes, entry.sha256):
                    raise OpsError(f"the backup's copy of {entry.key} is damaged (sha256 differs)")
                await storage.put(entry.key, scratch, entry.mime)
            finally:
                scratch.unlink(missing_ok=True)
            progress.advance(objects=1, size=entry.bytes)

        await each(todo, jobs, put)
        # Last, and all or nothing: an interrupted restore leaves the database empty again.
        await _finish(
            await _start(
                pg_restore,
                [
                    "--single-transaction",
                    "--no-owner",
                    "--no-privileges",
                    "--exit-on-error",
                    str(directory / DUMP),
                ],
                settings.database_url,
            ),
            "pg_restore",
        )
        progress.close()
        report.verify = await verify_storage(pool, storage, kinds)
    return report


def _write_backup_files(
    partial: Path, directory: Path, entries: Sequence[ManifestEntry], info: dict[str, Any]
) -> None:
    with (partial / MANIFEST).open("w") as out:
        for entry in entries:
            out.write(json.dumps(asdict(entry)) + "\n")
    (partial / INFO).write_text(json.dumps(info, indent=2) + "\n")
    if directory.exists():
        directory.rmdir()  # checked empty before the backup began
    # Complete now: it takes its name in one step.
    partial.rename(directory)


def _has_files(directory: Path) -> bool:
    return directory.exists() and any(directory.iterdir())


def _read_backup(directory: Path) -> tuple[dict[str, Any], list[ManifestEntry]]:
    try:
        info: dict[str, Any] = json.loads((directory / INFO).read_text())
        with (directory / MANIFEST).open() as lines:
            entries = [ManifestEntry(**json.loads(line)) for line in lines]
    except (OSError, ValueError, TypeError) as exc:
        raise OpsError(f"{directory} is not a complete backup: {exc}") from None
    if info.get("format") != FORMAT:
        raise OpsError(f"{directory}: backup format {info.get('format')!r}, expected {FORMAT}")
    return info, entries


def _copy_checked(source: Path, scratch: Path) -> Digest:
    try:
        shutil.copyfile(source, scratch)
    except FileNotFoundError:
        raise OpsError(f"the backup has no copy of {source}") from None
    return file_digest(scratch)


async def _start(
    program: str, arguments: list[str], database_url: str | None
) -> asyncio.subprocess.Process:
    """Start a PostgreSQL client program on `database_url` (its password in the child's
    environment, not on a command line other users can read in `ps`)."""
    env = dict(os.environ)
    if database_url is not None:
        url, password = _without_password(database_url)
        arguments = [*arguments, f"--dbname={url}"]
        if password is not None:
            env["PGPASSWORD"] = password
    return await asyncio.create_subprocess_exec(
        program,
        *arguments,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def _finish(process: asyncio.subprocess.Process, name: str) -> None:
    """Wait for the program; its last lines of errors become an `OpsError`. Cancelled (an
    interrupted command), it is stopped too."""
    try:
        _, errors = await process.communicate()
    finally:
        await _stop(process)
    if process.returncode != 0:
        tail = errors.decode(errors="replace").strip().splitlines()[-3:]
        raise OpsError(f"{name} failed: {' / '.join(tail)}")


async def _stop(process: asyncio.subprocess.Process) -> None:
    """Stop the program if it still runs (the command failed or was interrupted)."""
    if process.returncode is None:
        process.terminate()
        await asyncio.shield(process.wait())


def _without_password(database_url: str) -> tuple[str, str | None]:
    parts = urlsplit(database_url)
    if parts.password is None:
        return database_url, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]  # still percent-encoded, as libpq reads it
    netloc = f"{user}@{host}" if user else host
    return urlunsplit(parts._replace(netloc=netloc)), unquote(parts.password)
