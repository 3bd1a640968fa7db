"""How race tests force an interleaving: hold a lock from a second connection.

`held_locks` opens its own connection and transaction, takes the service's own advisory
locks (the same SQL the flows run) or row locks, and keeps them until the test releases
them. `lock_waiters` counts the backends PostgreSQL shows waiting for a lock, so a test
knows that a flow has reached the lock (it is queued) before it releases.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import asyncpg
from gates import wait_until

from mediasvc.db import queries


class HeldLocks:
    """A transaction on its own connection that holds locks until `release` (or the block of
    `held_locks` ends, which rolls it back)."""

    def __init__(self, conn: asyncpg.Connection, tx: asyncpg.transaction.Transaction) -> None:
        self.conn = conn
        self._tx: asyncpg.transaction.Transaction | None = tx

    async def collection(self, owner: str, collection: str) -> None:
        """Hold an owner's collection lock, as a reorder or an insert does."""
        await queries.lock_collection(self.conn, owner, collection)

    async def owner(self, owner: str) -> None:
        """Hold an owner's upload lock, as a quota check does."""
        await queries.lock_owner(self.conn, owner)

    async def rows(self, ids: Sequence[str]) -> None:
        """Hold the row locks of `ids`, in id order."""
        await self.conn.execute(
            "SELECT 1 FROM media WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE", list(ids)
        )

    async def release(self, *, commit: bool = False) -> None:
        """End the transaction (rolled back unless `commit`): every lock is let go."""
        if self._tx is not None:
            tx, self._tx = self._tx, None
            await (tx.commit() if commit else tx.rollback())


@asynccontextmanager
async def held_locks(dsn: str) -> AsyncIterator[HeldLocks]:
    """A `HeldLocks` on a new connection to `dsn`, its transaction begun; at the end of the
    block the transaction is rolled back (unless released before) and the connection closed."""
    conn = await asyncpg.connect(dsn)
    try:
        tx = conn.transaction()
        await tx.start()
        held = HeldLocks(conn, tx)
        try:
            yield held
        finally:
            await held.release()
    finally:
        await conn.close()


async def lock_waiters(dsn: str) -> int:
    """How many backends are waiting for a lock right now."""
    conn = await asyncpg.connect(dsn)
    try:
        count: int = await conn.fetchval(
            "SELECT count(DISTINCT pid) FROM pg_locks WHERE NOT granted"
        )
        return count
    finally:
        await conn.close()


async def until_waiting(dsn: str, count: int) -> None:
    """Return once `count` backends wait for a lock (the flows under test are queued)."""

    async def queued() -> bool:
        return await lock_waiters(dsn) >= count

    await wait_until(queued, f"{count} backends wait for a lock")
