"""Behind PgBouncer in transaction mode (tests/pooler.py): what the pooler breaks, and that
the settings for it avoid it. The flows themselves run through it in their own modules,
marked `through_pgbouncer`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack

import asyncpg
import pytest
from pooler import POOL_SIZE, PgBouncer

from mediasvc import db
from mediasvc.config import Settings

# More clients than the pooler has server connections, and no more than two app pools
# (of 10) hold, each running queries in turn.
CLIENTS = POOL_SIZE + 6
ROUNDS = 20


async def take_turns(connections: Sequence[db.Connection]) -> None:
    """Each connection runs a few different parameterised queries, interleaved with the
    others', so the pooler lends each statement whichever server connection is free."""
    for round_ in range(ROUNDS):
        await asyncio.gather(
            *(
                conn.fetchval(f"SELECT $1::int + {i % 3}", round_)
                for i, conn in enumerate(connections)
            )
        )


async def test_the_pooler_lends_connections_per_transaction(
    pgbouncer: PgBouncer, database_url: str
) -> None:
    """With asyncpg's default statement cache, named statements meet the wrong server
    connections: the fixture really pools per transaction (else the tests through it would
    prove nothing)."""
    url = pgbouncer.url(database_url)
    connections = [await asyncpg.connect(url) for _ in range(CLIENTS)]
    try:
        with pytest.raises(asyncpg.PostgresError, match="prepared statement"):
            await take_turns(connections)
    finally:
        await asyncio.gather(*(conn.close() for conn in connections))


async def test_the_transaction_pooler_setting_keeps_to_unnamed_statements(
    pgbouncer: PgBouncer, database_url: str, make_settings: Callable[..., Settings]
) -> None:
    """With MEDIASVC_DATABASE_POOLER=transaction the same interleaving works, from pools
    (as the nodes run) and from single connections (as the commands run)."""
    settings = make_settings(
        database_url=pgbouncer.url(database_url), database_pooler="transaction"
    )
    async with (
        db.open_pool(settings) as first,
        db.open_pool(settings) as second,
        AsyncExitStack() as stack,
    ):
        pooled = [
            await stack.enter_async_context(pool.acquire())
            for pool in (first, second)
            for _ in range(CLIENTS // 2)
        ]
        await take_turns(pooled)
    single = [await db.connect(settings.database_url) for _ in range(CLIENTS)]
    try:
        await take_turns(single)
    finally:
        await asyncio.gather(*(conn.close() for conn in single))
