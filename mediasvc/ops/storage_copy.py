"""`storage copy --to s3|local`: every object of every ready media onto the other backend,
each checked there by size and sha256, for a switch of `MEDIASVC_STORAGE` with no media
lost.

The target's settings are this command's own, changed by `MEDIASVC_COPY_TO_*` variables:
`MEDIASVC_COPY_TO_S3_BUCKET=b` is `MEDIASVC_S3_BUCKET=b` for the target alone, and `--to`
is its `MEDIASVC_STORAGE`. Each object checked on the target is recorded in the
`storage_copies` table (per target), so a run that is interrupted, or run again later,
copies only what is new since: media uploaded meanwhile, and a re-render's new keys. Copies
the source no longer has (a media deleted or re-rendered since) are removed from the target.
A recorded copy is not looked at again: keys are written once (a re-render writes new ones),
so its bytes cannot have changed in the source.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from mediasvc import db
from mediasvc.config import ConfigError, Settings, StorageKind, env_name
from mediasvc.db import inventory
from mediasvc.kinds import KindRules
from mediasvc.ops.objects import Expected, expected_objects, read_digest
from mediasvc.ops.progress import Progress, each, human_bytes
from mediasvc.storage import ObjectMissing, Storage

COPY_TO_PREFIX = "MEDIASVC_COPY_TO_"
# Media read per query; objects copied at once.
BATCH = 200
DEFAULT_JOBS = 8
# The settings that say where each backend's objects are: what the switch changes.
_WHERE = {
    "s3": ("storage", "s3_bucket", "s3_prefix", "s3_endpoint_url", "s3_region"),
    "local": ("storage", "media_dir"),
}


def target_env(env: Mapping[str, str], to: StorageKind) -> dict[str, str]:
    """The environment the target's settings are read from: `env`, each
    `MEDIASVC_COPY_TO_X` put in place of `MEDIASVC_X`, and the backend `to`."""
    changed = {
        "MEDIASVC_" + name.removeprefix(COPY_TO_PREFIX): value
        for name, value in env.items()
        if name.startswith(COPY_TO_PREFIX)
    }
    return {**env, **changed, env_name("storage"): to}


def target_name(settings: Settings) -> str:
    """The backend the settings name, as `storage_copies` records it: `s3://bucket/prefix`
    at its endpoint, or `local:/absolute/media/dir`."""
    if settings.storage == "s3":
        where = f" at {settings.s3_endpoint_url}" if settings.s3_endpoint_url else ""
        return f"s3://{settings.s3_bucket}/{settings.s3_prefix}{where}"
    return f"local:{settings.media_dir.resolve()}"


def check_target(source: Settings, target: Settings) -> None:
    """Refuse a target that is the source itself."""
    if target_name(source) == target_name(target):
        raise ConfigError(
            f"the target is the storage in use ({target_name(source)}): set"
            f" {COPY_TO_PREFIX}S3_BUCKET or {COPY_TO_PREFIX}MEDIA_DIR to another one"
        )


def switch_steps(target: Settings) -> list[str]:
    """What the operator does once the copy is complete: the settings to change."""
    changed = {
        env_name(name): str(getattr(target, name))
        for name in _WHERE[target.storage]
        if getattr(target, name) not in (None, "")
    }
    settings = " ".join(f"{name}={value}" for name, value in changed.items())
    return [
        "to switch to the copy:",
        "  1. stop uploads (stop the app nodes; nginx may keep serving reads)",
        "  2. run this command again: it copies only what changed since",
        f"  3. set {settings} on every node, render nginx's site again"
        " (`python -m mediasvc nginx-conf`) and start the nodes",
        "  4. run `python -m mediasvc storage verify`: it must report no problem",
        "  5. keep the old storage until you are sure; then remove it",
    ]


@dataclass
class CopyReport:
    """What one run did (or, dry, would do)."""

    media: int = 0
    copied: int = 0
    copied_bytes: int = 0
    # Recorded by an earlier run: not copied again.
    already: int = 0
    # Sources of kinds that do not keep them, found absent: nothing to copy.
    absent: int = 0
    removed: int = 0
    problems: list[str] = field(default_factory=list)
    dry_run: bool = False

    def summary(self) -> str:
        verb = "would copy" if self.dry_run else "copied"
        removed = "would remove" if self.dry_run else "removed"
        return (
            f"storage copy: {self.media} media; {verb} {self.copied} objects"
            f" ({human_bytes(self.copied_bytes)}), {self.already} copied before,"
            f" {removed} {self.removed} stale copies, {len(self.problems)} problems"
        )


@dataclass(frozen=True)
class _Copier:
    pool: asyncpg.Pool
    source: Storage
    target: Storage
    target_name: str
    scratch_dir: Path
    report: CopyReport
    progress: Progress

    async def copy(self, expected: Expected) -> None:
        """Read from the source into a scratch file, store it on the target, read it back;
        record it once the bytes there are the source's."""
        scratch = self.scratch_dir / f".storage-copy-{secrets.token_hex(8)}"
        try:
            try:
                read = await read_digest(self.source, expected.key, scratch)
            except ObjectMissing:
                if expected.required:
                    self.report.problems.append(f"missing from the source: {expected.key}")
                else:
                    self.report.absent += 1
                return
            if read.bytes != expected.bytes:
                self.report.problems.append(
                    f"wrong size in the source: {expected.key}: {read.bytes} bytes,"
                    f" the row says {expected.bytes}"
                )
                return
            # The target may move the scratch file into place (local disk).
            await self.target.put(expected.key, scratch, expected.mime)
            written = await read_digest(self.target, expected.key)
            if written != read:
                self.report.problems.append(f"differs after the copy: {expected.key}")
                return
            async with db.connection(self.pool) as conn:
                await inventory.record_copy(
                    conn, self.target_name, expected.key, expected.media_id, read.bytes, read.sha256
                )
            self.report.copied += 1
            self.report.copied_bytes += read.bytes
            self.progress.advance(objects=1, size=read.bytes)
        finally:
            scratch.unlink(missing_ok=True)

    async def remove(self, keys: list[str]) -> None:
        """Remove copies the source no longer has, then their record."""
        if not keys:
            return
        self.report.removed += len(keys)
        if self.report.dry_run:
            return
        await self.target.delete(keys)
        async with db.connection(self.pool) as conn:
            await inventory.forget_copies(conn, self.target_name, keys)


async def copy_storage(
    pool: asyncpg.Pool,
    source: Storage,
    target: Storage,
    *,
    target_name: str,
    kinds: Mapping[str, KindRules],
    scratch_dir: Path,
    dry_run: bool = False,
    jobs: int = DEFAULT_JOBS,
    progress: Progress | None = None,
) -> CopyReport:
    """Copy what the target does not have yet; see the module's docstring."""
    report = CopyReport(dry_run=dry_run)
    progress = progress or Progress("storage copy")
    copier = _Copier(pool, source, target, target_name, scratch_dir, report, progress)
    await asyncio.to_thread(scratch_dir.mkdir, parents=True, exist_ok=True)
    async with db.connection(pool) as conn:
        progress.total = await inventory.count_ready(conn)
    after = ""
    while True:
        async with db.connection(pool) as conn:
            batch = await inventory.ready_media(conn, after, BATCH)
            copied = await inventory.copied_keys(conn, target_name, [m.id for m in batch])
        if not batch:
            break
        after = batch[-1].id
        objects = [obj for media in batch for obj in expected_objects(media, kinds)]
        wanted = [obj for obj in objects if obj.key not in copied]
        report.media += len(batch)
        report.already += len(objects) - len(wanted)
        # A re-render since the last run: the media's old keys are no longer its objects.
        await copier.remove(sorted(copied.keys() - {obj.key for obj in objects}))
        if dry_run:
            # Sizes as recorded; sources of kinds that do not keep them are not looked for.
            required = [obj for obj in wanted if obj.required]
            report.copied += len(required)
            report.copied_bytes += sum(obj.bytes for obj in required)
        else:
            await each(wanted, jobs, copier.copy)
        progress.advance(len(batch))
    async with db.connection(pool) as conn:
        gone = await inventory.copies_of_gone_media(conn, target_name)
    await copier.remove(gone)
    progress.close()
    return report
