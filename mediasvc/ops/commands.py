"""The shell side of the operator commands: settings from the environment (beside `make run`
too), the database and storage opened, the report printed, the exit status.

Exit status: 0 all well, 1 problems found (or the command could not do its work), 130
interrupted (run it again: it resumes or starts over safely).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar, get_args

from mediasvc import db
from mediasvc.config import Settings, StorageKind
from mediasvc.kinds import kind_rules
from mediasvc.log import configure_logging
from mediasvc.ops import OpsError, backup, storage_copy, verify
from mediasvc.stack import devstack
from mediasvc.storage import StorageError
from mediasvc.storage.open import open_storage

INTERRUPTED = 130
# `storage copy --to`'s choices.
BACKENDS: tuple[str, ...] = get_args(StorageKind)

R = TypeVar("R")


def storage_copy_command(to: StorageKind, *, dry_run: bool, jobs: int) -> int:
    """`storage copy --to`: copy, print the report and the switch-over steps."""
    env = devstack.env_beside_dev()
    settings = _settings(env)
    target = Settings.from_env(storage_copy.target_env(env, to))
    storage_copy.check_target(settings, target)

    async def work() -> int:
        async with (
            db.open_pool(settings) as pool,
            open_storage(settings) as source,
            open_storage(target) as destination,
        ):
            report = await storage_copy.copy_storage(
                pool,
                source,
                destination,
                target_name=storage_copy.target_name(target),
                kinds=kind_rules(settings),
                scratch_dir=settings.spool_dir,
                dry_run=dry_run,
                jobs=jobs,
            )
        print(*report.problems, report.summary(), sep="\n")
        if not dry_run and not report.problems:
            print(*storage_copy.switch_steps(target), sep="\n")
        return 1 if report.problems else 0

    return _run(work)


def storage_verify_command() -> int:
    """`storage verify`: print every problem and the summary; 1 if there is any."""
    settings = _settings(devstack.env_beside_dev())

    async def work() -> int:
        async with db.open_pool(settings) as pool, open_storage(settings) as storage:
            report = await verify.verify_storage(pool, storage, kind_rules(settings))
        print(*report.lines(), sep="\n")
        return 0 if report.ok else 1

    return _run(work)


def backup_command(directory: Path, *, dry_run: bool, jobs: int) -> int:
    """`backup DIR`."""

    def show(report: backup.BackupReport) -> int:
        print(*report.problems, report.summary(), sep="\n")
        return 1 if report.problems else 0

    return _backup_job(backup.backup, directory, dry_run=dry_run, jobs=jobs, show=show)


def restore_command(directory: Path, *, dry_run: bool, jobs: int) -> int:
    """`restore DIR`: restore, then print `storage verify`'s report."""

    def show(report: backup.RestoreReport) -> int:
        if report.verify is not None:
            print(*report.verify.lines(), sep="\n")
        print(report.summary())
        return 0 if report.verify is None or report.verify.ok else 1

    return _backup_job(backup.restore, directory, dry_run=dry_run, jobs=jobs, show=show)


def _backup_job(
    operation: Callable[..., Awaitable[R]],
    directory: Path,
    *,
    dry_run: bool,
    jobs: int,
    show: Callable[[R], int],
) -> int:
    """Run `backup.backup` or `backup.restore` (one signature) against the storage the
    settings name; `show` prints the report and returns the exit status."""
    settings = _settings(devstack.env_beside_dev())

    async def work() -> int:
        async with open_storage(settings) as storage:
            report = await operation(
                settings,
                directory,
                storage=storage,
                kinds=kind_rules(settings),
                dry_run=dry_run,
                jobs=jobs,
            )
        return show(report)

    return _run(work)


def _settings(env: dict[str, str]) -> Settings:
    settings = Settings.from_env(env)
    configure_logging(settings.log_format)
    return settings


def _run(work: Callable[[], Coroutine[Any, Any, int]]) -> int:
    try:
        return asyncio.run(work())
    except KeyboardInterrupt:
        print("\ninterrupted: run the command again to resume", file=sys.stderr)
        return INTERRUPTED
    except (OpsError, StorageError, *db.UNAVAILABLE) as exc:
        print(f"mediasvc: {exc}", file=sys.stderr)
        return 1
