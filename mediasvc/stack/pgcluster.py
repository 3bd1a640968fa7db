"""A private PostgreSQL cluster in a directory, for `make run` and the test suite.

The server binaries refuse to run as root, so when we are root every command runs as the
`postgres` user (`runuser -u postgres --`) and the cluster directory belongs to it. The
server listens on 127.0.0.1 only, with no Unix socket, and a password kept in the
directory (mode 0600) so other local users cannot log in.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

SUPERUSER = "postgres"
# Settings for a throwaway test cluster: durability traded for speed.
FAST_UNSAFE = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")


class ClusterError(Exception):
    """The cluster could not be created, started or stopped; the message says why."""


@dataclass(frozen=True, slots=True)
class PostgresCluster:
    """One cluster directory: `root/data` (PGDATA), `root/password`, `root/server.log`."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    @property
    def password_file(self) -> Path:
        return self.root / "password"

    def dsn(self, port: int, database: str = "postgres") -> str:
        """A connection URL for `database` on this cluster."""
        password = quote(self.password_file.read_text().strip(), safe="")
        return f"postgresql://{SUPERUSER}:{password}@127.0.0.1:{port}/{database}"

    def ensure_initialised(self) -> None:
        """Run initdb once; later calls find the cluster and do nothing."""
        if (self.data / "PG_VERSION").exists():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        _check_reachable_by_server(self.root)
        self.password_file.write_text(secrets.token_urlsafe(24))
        self.password_file.chmod(0o600)
        _give_to_server_user(self.root)
        self._run(
            _binary("initdb"),
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "--auth-host=scram-sha-256",
            "--auth-local=peer",
            f"--pwfile={self.password_file}",
            "--encoding=UTF8",
            "--locale=C",
        )

    def start(self, port: int, *, settings: tuple[str, ...] = ()) -> None:
        """Start the server on 127.0.0.1:`port` and wait until it accepts connections.

        A server left running by an earlier run that was killed is stopped first, so
        starting twice in a row works.
        """
        if self.is_running():
            self.stop()
        options = [
            f"-p {port}",
            "-c listen_addresses=127.0.0.1",
            "-c unix_socket_directories=''",
            *(f"-c {setting}" for setting in settings),
        ]
        self._run(
            _binary("pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log_file),
            "-o",
            " ".join(options),
            "-w",
            "-t",
            "60",
            "start",
        )

    def is_running(self) -> bool:
        """Whether a server is running on this cluster's directory."""
        if not (self.data / "postmaster.pid").exists():
            return False
        result = self._run(_binary("pg_ctl"), "-D", str(self.data), "status", check=False)
        return result.returncode == 0

    def running_port(self) -> int | None:
        """The port of the server running on this directory (as its `postmaster.pid` says),
        or None when none is; for commands run beside `make run`."""
        try:
            lines = (self.data / "postmaster.pid").read_text().splitlines()
        except OSError:
            return None
        # Line 4 of the pid file is the port (PostgreSQL's `LOCK_FILE_LINE_PORT`).
        return int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else None

    def stop(self) -> None:
        """Stop the server (fast shutdown: open sessions are ended, nothing is lost)."""
        self._run(_binary("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)

    def _run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*as_server_user(), *argv],
            capture_output=True,
            text=True,
            check=False,
            cwd="/",  # the server user may not be allowed into our working directory
            # Own session: a Ctrl-C meant for `make run` must not reach the postmaster before
            # the app has drained; we stop it ourselves, last.
            start_new_session=True,
        )
        if check and result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
            hint = f" (see {self.log_file})" if self.log_file.exists() else ""
            raise ClusterError(f"{Path(argv[0]).name} failed: {' / '.join(tail)}{hint}")
        return result


def client_binary(name: str, server_version_num: int) -> str:
    """A client program (pg_dump, pg_restore) of the server's major version, from Debian's
    versioned directory: pg_dump refuses a newer server, and /usr/bin's wrapper picks its
    version from local clusters, not from the server it is pointed at. Without that
    version, the newest installed (which reads and writes older servers' formats)."""
    major = server_version_num // 10000
    exact = Path(f"/usr/lib/postgresql/{major}/bin/{name}")
    return str(exact) if exact.exists() else _binary(name)


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    # Debian keeps the server binaries off PATH, under a versioned directory.
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not candidates:
        raise ClusterError(f"{name} not found: install PostgreSQL (make install does)")
    return candidates[-1]


def _is_root() -> bool:
    return os.geteuid() == 0


def as_server_user() -> list[str]:
    """The command prefix that runs a program as the server user (when we are root: the
    server binaries, and PgBouncer, refuse to run as root)."""
    return ["runuser", "-u", SUPERUSER, "--"] if _is_root() else []


def _give_to_server_user(root: Path) -> None:
    if _is_root():
        shutil.chown(root, SUPERUSER, SUPERUSER)
        shutil.chown(root / "password", SUPERUSER, SUPERUSER)
        root.chmod(0o700)


def _check_reachable_by_server(root: Path) -> None:
    """Fail early, in plain words, when the server user cannot reach the directory."""
    if not _is_root():
        return
    result = subprocess.run(
        ["runuser", "-u", SUPERUSER, "--", "test", "-x", str(root.parent)],
        check=False,
        cwd="/",
    )
    if result.returncode != 0:
        raise ClusterError(
            f"the {SUPERUSER} user cannot reach {root.parent}; "
            "put MEDIASVC_DATA_DIR under a directory others may traverse (e.g. /srv or /tmp)"
        )
