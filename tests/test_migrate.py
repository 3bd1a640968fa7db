"""Numbered migrations applied once, under an advisory lock."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest
from support import through_pgbouncer

from mediasvc.config import Settings
from mediasvc.db.migrate import load_migrations, migrate_database


@through_pgbouncer
async def test_migrations_apply_once_even_when_nodes_start_together(
    database_url: str, settings: Settings
) -> None:
    """Five concurrent migrators on a fresh database, directly or through a transaction
    pooler: each file is applied exactly once."""
    conn = await asyncpg.connect(database_url)
    try:
        # Everything the migrations made, whatever tables they add over time.
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()
    results = await asyncio.gather(*(migrate_database(settings.database_url) for _ in range(5)))
    applied = [name for result in results for name in result]
    assert sorted(applied) == sorted(m.name for m in load_migrations())
    conn = await asyncpg.connect(database_url)
    try:
        versions = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
        assert [r["version"] for r in versions] == [m.version for m in load_migrations()]
        assert await conn.fetchval("SELECT to_regclass('media') IS NOT NULL")
    finally:
        await conn.close()


async def test_migrating_an_up_to_date_database_does_nothing(database_url: str) -> None:
    """The template is already migrated: nothing is pending."""
    assert await migrate_database(database_url) == []


def test_misnamed_migration_files_are_refused(tmp_path: Path) -> None:
    """Files must be NNNN_name.sql with unique numbers."""
    (tmp_path / "1_init.sql").write_text("SELECT 1")
    with pytest.raises(ValueError, match=r"0001_name\.sql"):
        load_migrations(tmp_path)
    (tmp_path / "1_init.sql").unlink()
    (tmp_path / "0001_a.sql").write_text("SELECT 1")
    (tmp_path / "0001_b.sql").write_text("SELECT 1")
    with pytest.raises(ValueError, match="duplicate"):
        load_migrations(tmp_path)
