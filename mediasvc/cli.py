"""`python -m mediasvc COMMAND`: serve, migrate, token, gc, events, blocklist, dev,
nginx-conf, problem-codes.

`blocklist` also works from the checkout beside `make run`: an unset database URL is taken
from the dev stack of the data dir (`devstack.env_beside_dev`)."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import asyncpg
from aiohttp import web

from mediasvc import db
from mediasvc.app import create_app
from mediasvc.auth import DEFAULT_TOKEN_TTL_S, mint_token
from mediasvc.config import ConfigError, Settings, database_url_from_env, setting_from_env
from mediasvc.contract import codes
from mediasvc.db import blocklist
from mediasvc.db.migrate import migrate_database
from mediasvc.events import admin as events_admin
from mediasvc.flows.reaper import reap
from mediasvc.imaging.confine import LandlockRefused
from mediasvc.log import configure_logging
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
        "problem-codes", help="print the README's table of problem codes (from the registry)"
    )
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
            return _token(args.sub, admin=args.admin, spaces=args.space, ttl_s=args.ttl)
        if args.command == "gc":
            return asyncio.run(_gc())
        if args.command == "events" and args.events_command == "retry":
            return asyncio.run(_retry_events(args.event_id))
        if args.command == "events":
            return asyncio.run(_show_events())
        if args.command == "blocklist":
            return asyncio.run(_blocklist(args))
        if args.command == "nginx-conf":
            return _nginx_conf(args.directory, args.listen, args.upstream)
        return devstack.run()
    except (ConfigError, devstack.DevError, LandlockRefused) as exc:
        print(f"mediasvc: {exc}", file=sys.stderr)
        return 2


def _serve() -> int:
    settings = Settings.from_env()
    configure_logging(settings.log_format)
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


async def _gc() -> int:
    settings = Settings.from_env()
    configure_logging(settings.log_format)
    async with db.open_pool(settings) as pool, open_storage(settings) as storage:
        report = await reap(pool, storage, settings.spool_dir, grace_s=settings.reaper_grace_s)
    print(
        f"rows finished: {report.rows_removed}, orphan objects removed: "
        f"{report.orphans_removed}, spool entries removed: {report.spool_removed}"
    )
    for error in report.errors:
        print(f"error: {error}", file=sys.stderr)
    return 1 if report.errors else 0


async def _show_events() -> int:
    print("\n".join(await events_admin.show(database_url_from_env())))
    return 0


async def _retry_events(event_id: str | None) -> int:
    requeued = await events_admin.retry(database_url_from_env(), event_id)
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


def _database_url() -> str:
    """The database URL for a command that needs nothing else, completed beside `make run`."""
    return database_url_from_env(devstack.env_beside_dev())


async def _blocklist(args: argparse.Namespace) -> int:
    """`blocklist add|list|remove`, on the database directly (entries say `cli`)."""
    conn = await asyncpg.connect(_database_url())
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
    applied = asyncio.run(migrate_database(database_url_from_env()))
    print("applied: " + (", ".join(applied) or "nothing pending"))
    return 0


def _token(sub: str, *, admin: bool, spaces: list[str], ttl_s: int) -> int:
    bad = next((space for space in spaces if not is_space_id(space)), None)
    if bad is not None:
        raise ConfigError(f"--space {bad!r}: {SPACE_ID_RULE}")
    token = mint_token(
        _token_secret(),
        sub,
        admin=admin,
        spaces=spaces,
        spaces_claim=setting_from_env("jwt_spaces_claim"),
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
