"""`python -m mediasvc COMMAND`: serve, migrate, token, gc, events, rerender, usage, spaces,
storage copy|verify, backup, restore, blocklist, dev, nginx-conf, cache-purger,
problem-codes.

Commands other than `serve`, `nginx-conf` and `cache-purger` also work from the checkout
beside `make run`: what the environment leaves unset (the database URL, the secrets) they
take from the dev stack of the data dir (`devstack.env_beside_dev`)."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from mediasvc import db
from mediasvc.app import create_app
from mediasvc.auth import DEFAULT_TOKEN_TTL_S, mint_token
from mediasvc.config import ConfigError, Settings, database_url_from_env, setting_from_env
from mediasvc.contract import codes
from mediasvc.db import blocklist
from mediasvc.db.migrate import migrate_database
from mediasvc.db.queries import RerenderSelection
from mediasvc.events import admin as events_admin
from mediasvc.flows.reaper import reap
from mediasvc.flows.rerender import Options
from mediasvc.flows.space_deletion import SpaceDeletions
from mediasvc.heap import keep_freed_buffers
from mediasvc.imaging.confine import LandlockRefused
from mediasvc.log import configure_logging
from mediasvc.nginxcache import running_purger
from mediasvc.ops import commands as ops
from mediasvc.ops.rerender import rerender as run_rerender
from mediasvc.ops.usage import show_usage
from mediasvc.spaces import SPACE_ID_RULE, is_space_id
from mediasvc.stack import devstack
from mediasvc.stack.nginxconf import Site, render
from mediasvc.storage.open import open_storage

# Time given to in-flight uploads after SIGTERM before the app exits.
SHUTDOWN_DRAIN_S = 30.0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run one command; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m mediasvc")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the app (config from MEDIASVC_* variables)")
    commands.add_parser("migrate", help="apply pending SQL migrations")
    token = commands.add_parser("token", help="print a JWT for SUB signed with the secret")
    token.add_argument("sub")
    token.add_argument(
        "--admin", action="store_true", help="add the admin claim (mediasvc_admin: true)"
    )
    token.add_argument(
        "--space",
        action="append",
        default=[],
        metavar="SPACE",
        help="list SPACE in the token's spaces claim: its media become visible (repeat)",
    )
    token.add_argument(
        "--manage",
        action="append",
        default=[],
        metavar="SPACE",
        help="list SPACE in the token's manage claim: it may empty the space (repeat)",
    )
    token.add_argument("--ttl", type=int, default=DEFAULT_TOKEN_TTL_S, help="seconds valid")
    commands.add_parser("gc", help="run the reaper once: finish crashed uploads and deletes")
    events = commands.add_parser(
        "events", help="list webhook deliveries pending or given up; `events retry` requeues"
    )
    events_commands = events.add_subparsers(dest="events_command")
    retry = events_commands.add_parser("retry", help="requeue given-up deliveries")
    which = retry.add_mutually_exclusive_group(required=True)
    which.add_argument("event_id", nargs="?", help="the event (evt_...) to requeue")
    which.add_argument("--all-failed", action="store_true", help="every given-up delivery")
    again = commands.add_parser(
        "rerender",
        help="make ready media's variants again under their kind's current rules (sizes, "
        "formats, quality), from the kept source",
    )
    again.add_argument("--kind", help="only media of this kind")
    again.add_argument("--owner", help="only media of this owner (token subject)")
    again.add_argument("--space", help="only media of this space")
    again.add_argument(
        "--since", type=_moment, help="only media uploaded at or after DATE (ISO 8601; UTC)"
    )
    again.add_argument(
        "--from-largest",
        action="store_true",
        help="media without a kept source: re-derive from the largest variant (never upscaled)",
    )
    again.add_argument("--dry-run", action="store_true", help="list what would change")
    again.add_argument(
        "--force",
        action="store_true",
        help="also media whose sizes and formats match (after a quality change)",
    )
    again.add_argument("--limit", type=_positive, help="look at no more than N media")
    again.add_argument(
        "--jobs", type=_positive, help="media in flight at once (default: MEDIASVC_WORKERS)"
    )
    usage = commands.add_parser(
        "usage", help="media, stored bytes (variants, sources) and pending sessions"
    )
    usage.add_argument("--by", choices=("owner", "space", "kind"), help="one line per group")
    usage.add_argument("--top", type=_positive, default=20, help="the N largest groups")
    spaces = commands.add_parser("spaces", help="act on a space's media")
    spaces_commands = spaces.add_subparsers(dest="spaces_command", required=True)
    empty = spaces_commands.add_parser(
        "delete", help="remove every media of SPACE, whatever its status (as the API's DELETE)"
    )
    empty.add_argument("space")
    empty.add_argument("--dry-run", action="store_true", help="only count what would go")
    blocked = commands.add_parser(
        "blocklist", help="images refused on upload: add, list, remove (as POST /v1/blocklist)"
    )
    blocked_commands = blocked.add_subparsers(dest="blocklist_command", required=True)
    add = blocked_commands.add_parser("add", help="block a file or a picture")
    what = add.add_mutually_exclusive_group(required=True)
    what.add_argument("--sha256", type=_hex_hash, help="a file's sha256 (64 hex digits)")
    what.add_argument("--pdq", type=_hex_hash, help="a picture's PDQ hash (64 hex digits)")
    what.add_argument("--file", type=Path, help="the file to block (its sha256 is taken)")
    add.add_argument("--reason", required=True, help="why (kept with the entry, for admins)")
    blocked_commands.add_parser("list", help="every entry, oldest first")
    remove = blocked_commands.add_parser("remove", help="unblock: remove the entry ID")
    remove.add_argument("entry_id", type=int, metavar="ID")
    commands.add_parser("dev", help="PostgreSQL + app + nginx in the foreground (make run)")
    site = commands.add_parser(
        "nginx-conf", help="render the nginx site for these settings into DIR (production)"
    )
    site.add_argument("directory", type=Path)
    site.add_argument("--listen", default="80", help="nginx `listen` value, e.g. 443 ssl")
    site.add_argument(
        "--upstream", action="append", required=True, help="an app node, host:port (repeat)"
    )
    commands.add_parser(
        "cache-purger",
        help="keep removed variants out of this host's nginx cache (MEDIASVC_NGINX_CACHE_DIR),"
        " on an nginx host without a node",
    )
    commands.add_parser(
        "problem-codes", help="print the README's table of problem codes (from the registry)"
    )
    storage = commands.add_parser("storage", help="copy media to the other backend; verify")
    storage_commands = storage.add_subparsers(dest="storage_command", required=True)
    copy = storage_commands.add_parser(
        "copy", help="copy every object to the backend MEDIASVC_COPY_TO_* describe"
    )
    copy.add_argument("--to", choices=ops.BACKENDS, required=True)
    verify = storage_commands.add_parser("verify", help="rows against objects and back")
    backup = commands.add_parser("backup", help="database, manifest (and local media) to DIR")
    restore = commands.add_parser("restore", help="DIR into an empty database and storage")
    for command in (copy, verify, backup, restore):
        # verify changes nothing anyway: accepted so that scripts may pass it to every one.
        command.add_argument("--dry-run", action="store_true", help="say what, change nothing")
    for command in (copy, backup, restore):
        command.add_argument("--jobs", type=int, default=8, help="objects handled at once")
    for command in (backup, restore):
        command.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    if args.command == "problem-codes":
        print(codes.readme_table(), end="")
        return 0
    try:
        if args.command == "serve":
            return _serve()
        if args.command == "migrate":
            return _migrate()
        if args.command == "token":
            return _token(
                args.sub, admin=args.admin, spaces=args.space, manages=args.manage, ttl_s=args.ttl
            )
        if args.command == "gc":
            return asyncio.run(_gc())
        if args.command == "events" and args.events_command == "retry":
            return asyncio.run(_retry_events(args.event_id))
        if args.command == "events":
            return asyncio.run(_show_events())
        if args.command == "rerender":
            selection = RerenderSelection(args.kind, args.owner, args.space, args.since)
            options = Options(args.from_largest, dry_run=args.dry_run, force=args.force)
            settings = _settings()
            configure_logging(settings.log_format)
            return asyncio.run(
                run_rerender(settings, selection, options, limit=args.limit, jobs=args.jobs)
            )
        if args.command == "usage":
            return asyncio.run(show_usage(_settings(), by=args.by, top=args.top))
        if args.command == "spaces":
            return asyncio.run(_delete_space(args.space, dry_run=args.dry_run))
        if args.command == "storage" and args.storage_command == "copy":
            return ops.storage_copy_command(args.to, dry_run=args.dry_run, jobs=args.jobs)
        if args.command == "storage":
            return ops.storage_verify_command()
        if args.command in ("backup", "restore"):
            run = ops.backup_command if args.command == "backup" else ops.restore_command
            return run(args.directory, dry_run=args.dry_run, jobs=args.jobs)
        if args.command == "blocklist":
            return asyncio.run(_blocklist(args))
        if args.command == "nginx-conf":
            return _nginx_conf(args.directory, args.listen, args.upstream)
        if args.command == "cache-purger":
            return asyncio.run(_cache_purger())
        return devstack.run()
    except (ConfigError, devstack.DevError, LandlockRefused) as exc:
        print(f"mediasvc: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130  # what a shell reports for Ctrl-C


def _serve() -> int:
    settings = Settings.from_env()
    configure_logging(settings.log_format)
    keep_freed_buffers()  # the serve process only: image workers are started afresh
    web.run_app(
        create_app(settings),
        host=settings.app_host,
        port=settings.app_port,
        access_log=None,
        shutdown_timeout=SHUTDOWN_DRAIN_S,
        print=None,
    )
    return 0


def _nginx_conf(directory: Path, listen: str, upstreams: list[str]) -> int:
    settings = Settings.from_env()
    render(Site.for_settings(settings, listen=listen, upstreams=upstreams), directory)
    print(f"wrote {directory}/mediasvc.conf (include it inside http {{ }}) and its snippets")
    return 0


async def _cache_purger() -> int:
    settings = Settings.from_env()
    configure_logging(settings.log_format)
    if settings.storage != "s3" or settings.nginx_cache_dir is None:
        raise ConfigError("cache-purger needs MEDIASVC_STORAGE=s3 and MEDIASVC_NGINX_CACHE_DIR")
    async with db.open_pool(settings) as pool, running_purger(settings, pool):
        await asyncio.Event().wait()  # until SIGTERM or Ctrl-C
    return 0


def _settings() -> Settings:
    """Settings for a command: the environment's, completed beside `make run`."""
    return Settings.from_env(devstack.env_beside_dev())


def _database_url() -> str:
    """The database URL for a command that needs nothing else (migrate, events)."""
    return database_url_from_env(devstack.env_beside_dev())


def _moment(raw: str) -> datetime:
    """`--since`: an ISO 8601 date or time; without a zone, UTC."""
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date or time: {raw!r}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _positive(raw: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise argparse.ArgumentTypeError(f"not a positive integer: {raw!r}")
    return int(raw)


async def _gc() -> int:
    settings = _settings()
    configure_logging(settings.log_format)
    async with db.open_pool(settings) as pool, open_storage(settings) as storage:
        report = await reap(pool, storage, settings.spool_dir, grace_s=settings.reaper_grace_s)
        # Spaces being emptied whose node stopped: finished here as by any node's timer.
        spaces = await SpaceDeletions(db=pool, storage=storage, settings=settings).run_all()
    print(
        f"rows finished: {report.rows_removed}, listed objects removed: "
        f"{report.listed_removed}, orphan objects removed: "
        f"{report.orphans_removed}, spool entries removed: {report.spool_removed}, "
        f"space media removed: {sum(done.removed for done in spaces)}"
    )
    errors = report.errors + [error for done in spaces for error in done.errors]
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    return 1 if errors else 0


async def _delete_space(space: str, *, dry_run: bool) -> int:
    """`spaces delete`: what `DELETE /v1/spaces/{space}/media` does, run here to its end
    (uploads still processing are left to the app's nodes, which remove them when they end)."""
    if not is_space_id(space):
        raise ConfigError(f"space {space!r}: {SPACE_ID_RULE}")
    settings = _settings()
    configure_logging(settings.log_format)
    async with db.open_pool(settings) as pool, open_storage(settings) as storage:
        deletions = SpaceDeletions(db=pool, storage=storage, settings=settings)
        if dry_run:
            print(f"space {space}: {await deletions.count(space)} media would be removed")
            return 0
        count = await deletions.start(space, "cli")
        progress = _Progress(space, count)
        # Passes until one removes nothing: what is left is processing or another's purge.
        while True:
            done = await deletions.run(space, progress)
            progress.before += done.removed
            if done.finished or not done.removed or done.errors:
                break
    if progress.shown:
        print(file=sys.stderr)
    for error in done.errors:
        print(f"error: {error}", file=sys.stderr)
    left = "" if done.finished else "; the rest (processing, or being removed) is left to the app"
    print(f"space {space}: {progress.before} of {count} media removed{left}")
    return 1 if done.errors else 0


class _Progress:
    """A line on a terminal counting the media removed over every pass (none elsewhere)."""

    def __init__(self, space: str, count: int) -> None:
        self.space, self.count, self.before = space, count, 0
        self.shown = sys.stderr.isatty()

    def __call__(self, removed_this_pass: int) -> None:
        if self.shown:
            removed = self.before + removed_this_pass
            line = f"\rspace {self.space}: {removed}/{self.count} removed"
            print(line, end="", file=sys.stderr, flush=True)


async def _show_events() -> int:
    print("\n".join(await events_admin.show(_database_url())))
    return 0


async def _retry_events(event_id: str | None) -> int:
    requeued = await events_admin.retry(_database_url(), event_id)
    for queued_event, url in requeued:
        print(f"requeued {queued_event} to {url}")
    if not requeued:
        print("nothing to requeue: no given-up delivery" + (f" of {event_id}" if event_id else ""))
        return 1
    return 0


def _hex_hash(raw: str) -> str:
    """A sha256 or PDQ hash on the command line: 64 hex digits (either case)."""
    if not re.fullmatch(r"[0-9a-fA-F]{64}", raw):
        raise argparse.ArgumentTypeError(f"not 64 hex digits: {raw!r}")
    return raw.lower()


async def _blocklist(args: argparse.Namespace) -> int:
    """`blocklist add|list|remove`, on the database directly (entries say `cli`)."""
    conn = await db.connect(_database_url())
    try:
        if args.blocklist_command == "add":
            sha256 = args.sha256
            if args.file is not None:
                sha256 = await asyncio.to_thread(_file_sha256, args.file)
            entry, created = await blocklist.add(
                conn, sha256=sha256, pdq=args.pdq, reason=args.reason, created_by="cli"
            )
            print(("added" if created else "already blocked") + ":")
            print("\n".join(_entries_table([entry])))
            return 0
        if args.blocklist_command == "remove":
            if await blocklist.remove(conn, args.entry_id):
                print(f"removed {args.entry_id}")
                return 0
            print(f"no blocklist entry {args.entry_id}", file=sys.stderr)
            return 1
        found, after = [], 0
        while page := await blocklist.entries(conn, after=after, limit=1000):
            found += page
            after = page[-1].id
        print("\n".join([*_entries_table(found), f"{len(found)} entries"]))
        return 0
    finally:
        await conn.close()


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _entries_table(entries: Sequence[blocklist.Entry]) -> list[str]:
    """Aligned columns, one line per entry; the reason last, unpadded."""
    if not entries:
        return []
    rows = [("ID", "KIND", "HASH", "ADDED", "BY", "REASON")]
    rows += [
        (
            str(e.id),
            "sha256" if e.sha256 is not None else "pdq",
            e.sha256 or e.pdq or "",
            e.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            e.created_by,
            e.reason,
        )
        for e in entries
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return [
        "  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]])
        for row in rows
    ]


def _migrate() -> int:
    configure_logging()
    applied = asyncio.run(migrate_database(_database_url()))
    print("applied: " + (", ".join(applied) or "nothing pending"))
    return 0


def _token(sub: str, *, admin: bool, spaces: list[str], manages: list[str], ttl_s: int) -> int:
    for option, listed in (("--space", spaces), ("--manage", manages)):
        bad = next((space for space in listed if not is_space_id(space)), None)
        if bad is not None:
            raise ConfigError(f"{option} {bad!r}: {SPACE_ID_RULE}")
    token = mint_token(
        _token_secret(),
        sub,
        admin=admin,
        spaces=spaces,
        spaces_claim=setting_from_env("jwt_spaces_claim"),
        manages=manages,
        manage_claim=setting_from_env("jwt_manage_claim"),
        subject_claim=setting_from_env("jwt_subject_claim"),
        admin_claim=setting_from_env("jwt_admin_claim"),
        ttl_s=ttl_s,
        # A service that checks `iss` / `aud` checks them on its own tokens too.
        issuer=setting_from_env("jwt_issuer"),
        audience=setting_from_env("jwt_audience"),
    )
    print(token)
    return 0


def _token_secret() -> str:
    secret: str | None = setting_from_env("jwt_secret")
    if secret:
        return secret
    return devstack.dev_secret(setting_from_env("data_dir"), create=False)
