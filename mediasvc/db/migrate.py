"""Apply the numbered `mediasvc/sql/NNNN_*.sql` files, once each, under an advisory lock.

Several nodes may start at once: the lock makes one of them apply a file while the others
wait, and they then find it applied. The lock is transaction-scoped, taken again in each
file's transaction, so that migrating through a transaction pooler (PgBouncer) works too: a
session lock would stay on whichever server connection the pooler lent for it, and its
unlock could run on another.
The files are package data, read through `importlib.resources`, so an installed wheel
migrates as a checkout does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable

import asyncpg

from mediasvc.db import connect

SQL_DIR = files("mediasvc") / "sql"
# An arbitrary constant: the lock only has to be the same number on every node.
_LOCK_ID = 0x6D656469617376
_LOCK = f"SELECT pg_advisory_xact_lock({_LOCK_ID})"
_APPLIED = "SELECT EXISTS (SELECT FROM schema_migrations WHERE version = $1)"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered SQL file."""

    version: int
    name: str
    sql: str


def load_migrations(directory: Traversable = SQL_DIR) -> list[Migration]:
    """Every migration file in version order; a misnamed or duplicate file is an error."""
    migrations = []
    for path in sorted(directory.iterdir(), key=lambda entry: entry.name):
        if not path.name.endswith(".sql"):
            continue
        match = _NAME.match(path.name)
        if match is None:
            raise ValueError(f"migration file name must look like 0001_name.sql: {path.name}")
        migrations.append(Migration(int(match[1]), path.name, path.read_text("utf-8")))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise ValueError(f"duplicate migration numbers in {directory}")
    return migrations


async def migrate(conn: asyncpg.Connection, directory: Traversable = SQL_DIR) -> list[str]:
    """Apply what is pending, each file in its own transaction; returns the names applied."""
    async with conn.transaction():
        await conn.execute(_LOCK)
        await conn.execute(_CREATE_LEDGER)
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
    applied_now = []
    for migration in load_migrations(directory):
        if migration.version in done:
            continue
        async with conn.transaction():
            await conn.execute(_LOCK)
            # Another node may have applied it since we looked.
            if await conn.fetchval(_APPLIED, migration.version):
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
        applied_now.append(migration.name)
    return applied_now


async def migrate_database(database_url: str) -> list[str]:
    """Connect, apply what is pending, disconnect."""
    conn = await connect(database_url)
    try:
        return await migrate(conn)
    finally:
        await conn.close()
