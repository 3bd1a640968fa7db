"""PgBouncer in transaction-pooling mode in front of the test cluster, as most multi-node
deployments run it (README "Several app nodes", "Behind PgBouncer").

Debian's `pgbouncer` (1.18: no `max_prepared_statements`) runs in the foreground as the
server user (it refuses to run as root, like PostgreSQL), from a directory of its own. It
serves every database of the cluster under the same name (`* =`), with the cluster's
superuser and password, and lends each client a server connection for one transaction
only, in turn (`server_round_robin`): a session-level state (a named prepared statement, a
session lock, a LISTEN) left by one transaction is then met by another client's, and a
client's next transaction does not find it.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from mediasvc.stack.localproc import free_port, stop, wait_until_listening
from mediasvc.stack.pgcluster import SUPERUSER, PostgresCluster, as_server_user

# Server connections per database: one node's pool (10), so that the race tests' queued
# transactions (each waits for a lock on a server connection of its own) all get one;
# two nodes, or a node and the test's own connections, share them.
POOL_SIZE = 10

_CONFIG = """\
[databases]
* = host=127.0.0.1 port={server_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {root}/userlist.txt
pool_mode = transaction
default_pool_size = {pool_size}
; Lend the server connection idle longest, not the one just used: a client's next
; transaction then lands on another server even when few clients are busy.
server_round_robin = 1
max_client_conn = 1000
logfile = {root}/pgbouncer.log
"""


@dataclass(frozen=True, slots=True)
class PgBouncer:
    """A running PgBouncer: where it listens, and the log to read when it misbehaves."""

    port: int
    log_file: Path

    def url(self, direct_url: str) -> str:
        """`direct_url` (a database of the cluster behind) through this PgBouncer."""
        parts = urlsplit(direct_url)
        credentials = parts.netloc.rpartition("@")[0]
        return urlunsplit(parts._replace(netloc=f"{credentials}@127.0.0.1:{self.port}"))


@contextmanager
def running_pgbouncer(
    root: Path, cluster: PostgresCluster, server_port: int
) -> Iterator[PgBouncer]:
    """PgBouncer in transaction mode in front of `cluster` on `server_port`, configured in
    `root` (which the server user must be able to reach), until the block ends."""
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    root.mkdir(mode=0o700)
    port = free_port()
    (root / "pgbouncer.ini").write_text(
        _CONFIG.format(root=root, port=port, server_port=server_port, pool_size=POOL_SIZE)
    )
    password = cluster.password_file.read_text().strip()
    (root / "userlist.txt").write_text(f'"{SUPERUSER}" "{password}"\n')
    (root / "userlist.txt").chmod(0o600)
    if as_server_user():
        for path in (root, *root.iterdir()):
            shutil.chown(path, SUPERUSER, SUPERUSER)
    process = subprocess.Popen(
        [*as_server_user(), binary, str(root / "pgbouncer.ini")],
        cwd="/",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        if not wait_until_listening(process, port, timeout_s=30):
            raise RuntimeError(f"pgbouncer did not start (see {root / 'pgbouncer.log'})")
        yield PgBouncer(port, root / "pgbouncer.log")
    finally:
        stop(process)
