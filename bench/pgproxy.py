"""A PostgreSQL wire-protocol proxy that counts what the app asks of the database.

It sits between the app nodes and PostgreSQL (their `MEDIASVC_DATABASE_URL` names it) and
forwards every byte unchanged, so the count is of what asyncpg really sends, not of what
the code seems to do. What it counts:

- a **round trip** is the client sending what it then waits for: a `Sync` (asyncpg's
  extended protocol: Bind/Execute/Sync, pipelined), a `Flush` (asyncpg preparing a
  statement: Parse/Describe/Flush, labelled `prepare: ...`, which a warm connection does
  not repeat) or a simple `Query` (`execute()` without arguments: `BEGIN`, `COMMIT`).
  Each is labelled with the statement it ran. Connecting (startup, SCRAM) is counted
  apart, as `connections`;
- a **transaction** ends at a `ReadyForQuery` whose status is idle (`I`): an explicit
  BEGIN ... COMMIT, or one statement outside a transaction (autocommit). It is labelled
  with its first statement after `BEGIN`. `pg_stat_database.xact_commit` counts the same
  thing (read-only ones too), but only as often as backends flush their statistics.

The proxy answers an SSL or GSSAPI encryption request with "no" itself (loopback only), so
the rest of the conversation is plain and readable. It runs its own event loop in a
thread, so the caller may block.
"""

from __future__ import annotations

import asyncio
import re
import struct
import threading
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from bench import procs

# The request codes a client may send before its startup message (protocol 3.0).
_SSL_REQUEST = 80877103
_GSSENC_REQUEST = 80877104
_READ_CHUNK = 65536
_SPACE = re.compile(r"\s+")


def label(sql: str) -> str:
    """The statement on one line, its whitespace collapsed."""
    return _SPACE.sub(" ", sql).strip()


@dataclass(slots=True)
class Counts:
    """What crossed the proxy so far."""

    round_trips: Counter[str] = field(default_factory=Counter)
    transactions: Counter[str] = field(default_factory=Counter)
    connections: int = 0

    def minus(self, earlier: Counts) -> Counts:
        """What crossed between `earlier` and this snapshot."""
        return Counts(
            self.round_trips - earlier.round_trips,
            self.transactions - earlier.transactions,
            self.connections - earlier.connections,
        )


class CountingProxy(procs.Stoppable):
    """Listens on 127.0.0.1 (a free port) and forwards to `upstream_port`; a context manager.

    `snapshot()` is a copy of the counts, safe to call from any thread.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self._counts = Counts()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._server: asyncio.Server | None = None

    def __enter__(self) -> CountingProxy:
        self._thread.start()
        if not self._ready.wait(10) or self._server is None:
            raise RuntimeError("the counting proxy did not start")
        return self

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def snapshot(self) -> Counts:
        with self._lock:
            return Counts(
                Counter(self._counts.round_trips),
                Counter(self._counts.transactions),
                self._counts.connections,
            )

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            # Connections still open (none, once the app has stopped) end with the loop.
            self._server.close()
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.close()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_w.close()
            return
        conversation = _Conversation(self)
        try:
            await conversation.startup(client_r, client_w, server_w)
            await asyncio.gather(
                conversation.pump(client_r, server_w, conversation.from_client),
                conversation.pump(server_r, client_w, conversation.from_server),
            )
        except (OSError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            # Only the proxy's own shutdown cancels; ending quietly keeps asyncio's stream
            # callback from logging the cancellation as an error.
            pass
        finally:
            for writer in (client_w, server_w):
                writer.close()

    def count(self, *, round_trip: str | None = None, transaction: str | None = None) -> None:
        with self._lock:
            if round_trip is not None:
                self._counts.round_trips[round_trip] += 1
            if transaction is not None:
                self._counts.transactions[transaction] += 1

    def connected(self) -> None:
        with self._lock:
            self._counts.connections += 1


class _Conversation:
    """One client connection: its prepared statements, and the round trips it awaits."""

    def __init__(self, proxy: CountingProxy) -> None:
        self.proxy = proxy
        self.statements: dict[str, str] = {}
        # What the client has sent since its last Sync: (parsed, bound) statements.
        self.parsed: list[str] = []
        self.bound: list[str] = []
        self.executed = False
        # One label per round trip the client started and the server has not answered.
        self.awaited: deque[str] = deque()
        self.transaction: str | None = None
        self.connected = False

    async def startup(
        self,
        client_r: asyncio.StreamReader,
        client_w: asyncio.StreamWriter,
        server_w: asyncio.StreamWriter,
    ) -> None:
        """Refuse encryption requests (loopback: plain is fine, and readable), then forward
        the startup message."""
        while True:
            head = await client_r.readexactly(8)
            length, code = struct.unpack("!ii", head)
            if code in (_SSL_REQUEST, _GSSENC_REQUEST):
                client_w.write(b"N")
                await client_w.drain()
                continue
            rest = await client_r.readexactly(length - 8)
            server_w.write(head + rest)
            await server_w.drain()
            return

    async def pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        inspect: Callable[[bytes, bytes], None],
    ) -> None:
        """Forward every chunk as it comes, and read the typed messages in it."""
        pending = b""
        while chunk := await reader.read(_READ_CHUNK):
            writer.write(chunk)
            pending += chunk
            # Each message: a type byte, then its length (counting itself, not the type).
            while len(pending) >= 5:
                size = struct.unpack_from("!i", pending, 1)[0] + 1
                if len(pending) < size:
                    break
                inspect(pending[0:1], pending[5:size])
                pending = pending[size:]
            await writer.drain()
        writer.close()

    def from_client(self, kind: bytes, body: bytes) -> None:
        if kind == b"P":
            name, query = _cstrings(body, 2)
            self.statements[name] = query
            self.parsed.append(query)
        elif kind == b"B":
            _portal, name = _cstrings(body, 2)
            self.bound.append(self.statements.get(name, "?"))
        elif kind == b"E":
            self.executed = True
        elif kind in (b"S", b"H"):
            # The client now waits for the answer: a round trip, whichever ends it.
            if self.executed and self.bound:
                what = label(self.bound[0])
            elif self.parsed:
                what = "prepare: " + label(self.parsed[0])
            else:
                what = "sync" if kind == b"S" else "flush"
            self.proxy.count(round_trip=what)
            if kind == b"S":  # only a Sync is answered by ReadyForQuery
                self.awaited.append(what)
            self.parsed, self.bound, self.executed = [], [], False
        elif kind == b"Q":
            (query,) = _cstrings(body, 1)
            self.proxy.count(round_trip=label(query))
            self.awaited.append(label(query))

    def from_server(self, kind: bytes, body: bytes) -> None:
        if kind != b"Z":
            return
        if not self.connected:  # the ReadyForQuery that ends the startup
            self.connected = True
            self.proxy.connected()
            return
        what = self.awaited.popleft() if self.awaited else "?"
        if self.transaction is None or self.transaction.upper().startswith("BEGIN"):
            self.transaction = what
        if body[:1] == b"I":  # idle: the transaction (or the one statement) is over
            self.proxy.count(transaction=self.transaction)
            self.transaction = None


def _cstrings(body: bytes, count: int) -> list[str]:
    """The first `count` NUL-terminated strings of a message body."""
    found, start = [], 0
    for _ in range(count):
        end = body.index(b"\0", start)
        found.append(body[start:end].decode(errors="replace"))
        start = end + 1
    return found
