"""PostgreSQL access: the asyncpg pool. Queries live in `db.queries`, migrations in `db.migrate`.

Everything here also works through a pooler in transaction mode (PgBouncer's
`pool_mode = transaction`, `MEDIASVC_DATABASE_POOLER=transaction`), which lends a server
connection for one transaction, or one statement outside a transaction, and then to any
other client. So nothing may outlive a transaction on the server side:

- no named prepared statement: asyncpg's statement cache is off behind such a pooler, and
  asyncpg then uses the unnamed statement, sending its Parse again with each Bind and
  Execute (asyncpg does so on purpose for PgBouncer), so whichever server runs it has it;
- only transaction-scoped advisory locks (`pg_advisory_xact_lock`), the migrations' too;
- no SET, no LISTEN (`Settings.listen_url`), no cursor outside a transaction.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from mediasvc.config import Settings
from mediasvc.errors import BadRequest, Busy

# What query functions take: a plain connection or one lent by the pool.
Connection = asyncpg.Connection | PoolConnectionProxy
T = TypeVar("T")


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Skip asyncpg's reset query when a connection returns to the pool.

    The service leaves no session state behind: it never SETs, LISTENs or keeps cursors,
    and takes only transaction-scoped advisory locks; asyncpg still rolls back any open
    transaction itself. That saves a round trip per borrowed connection (two per upload).
    """


# asyncpg's own default: named statements, prepared once per connection and reused.
STATEMENT_CACHE_SIZE = 100


def statement_cache_size(settings: Settings) -> int:
    """asyncpg's `statement_cache_size`: none behind a transaction pooler, where a named
    statement would be prepared on one server connection and used on another."""
    return 0 if settings.database_pooler == "transaction" else STATEMENT_CACHE_SIZE


@asynccontextmanager
async def open_pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """A connection pool with bounded connect and command times, so a hung server means 503."""
    pool = await asyncpg.create_pool(
        settings.database_url,
        min_size=1,
        max_size=10,
        timeout=settings.db_timeout_s,
        command_timeout=settings.db_timeout_s,
        statement_cache_size=statement_cache_size(settings),
        init=_init_connection,
        reset=_keep_session,
    )
    try:
        yield pool
    finally:
        await pool.close()


async def connect(database_url: str) -> asyncpg.Connection:
    """One connection for a command (`migrate`, `events`, `blocklist`): without asyncpg's
    statement cache, so it works through a transaction pooler whatever the settings say; a
    command's few statements gain nothing from the cache."""
    return await asyncpg.connect(database_url, statement_cache_size=0)


# What a value the request carried can raise: an integer out of range for its column
# (asyncpg refuses to encode it) or text PostgreSQL cannot store (a NUL byte). Validation
# in front should catch these; this makes sure a miss is a 400, never a 503.
INVALID_VALUE = (asyncpg.exceptions._base.DataError, asyncpg.DataError)

# What a down, hung or restarting server raises: these become 503, never 500.
UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
    asyncpg.TooManyConnectionsError,
    # A connection the server ended in the middle of an operation (a restart, a failover,
    # pg_terminate_backend): asyncpg's protocol refuses the next call with this.
    asyncpg.InternalClientError,
)


# What PostgreSQL aborts a transaction with when it lost a race to another: the lock order
# (docs/decisions.md) should make these impossible; if one happens anyway the transaction is
# retried once, and a second loss is a 503 to retry, never a 500.
CONTENDED = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)


@asynccontextmanager
async def connection(pool: asyncpg.Pool) -> AsyncIterator[Connection]:
    """A pooled connection; an unreachable database surfaces as `Busy` (503)."""
    try:
        async with pool.acquire() as conn:
            yield conn
    except INVALID_VALUE as exc:
        # Checked before UNAVAILABLE: asyncpg's client-side DataError is an InterfaceError.
        raise BadRequest("A value in the request is out of range or not valid text.") from exc
    except UNAVAILABLE as exc:
        raise Busy("The database is unavailable; try again shortly.") from exc
    except CONTENDED as exc:
        raise Busy("The database is contended; try again shortly.", retry_after=1) from exc


async def transaction(pool: asyncpg.Pool, work: Callable[[Connection], Awaitable[T]]) -> T:
    """Run `work` in one transaction, once more if PostgreSQL aborted it as the loser of a
    deadlock or serialization conflict (a second loss is `Busy`).

    Safe because `work` does nothing but SQL (storage and HTTP calls stay outside
    transactions): a rolled-back attempt left no trace.
    """
    async with connection(pool) as conn:
        try:
            async with conn.transaction():
                return await work(conn)
        except CONTENDED:
            pass
        async with conn.transaction():
            return await work(conn)
