"""`python -m mediasvc dev` (what `make run` starts): the whole service on one machine.

Starts, in order, a private PostgreSQL cluster under `$MEDIASVC_DATA_DIR/postgres` (unless
`MEDIASVC_DATABASE_URL` is set), the migrations, `$MEDIASVC_APP_NODES` app nodes (`serve`)
as child processes, node i on port `$MEDIASVC_APP_PORT + i`, and nginx on
127.0.0.1:`$MEDIASVC_HTTP_PORT`. Ctrl-C or SIGTERM stops them in reverse order: nginx, then
the app nodes (each drains its uploads and stops its workers), then PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType

import asyncpg

from mediasvc.auth import mint_token
from mediasvc.config import Settings, env_name, setting_from_env
from mediasvc.db.migrate import migrate_database
from mediasvc.kinds import kind_rules
from mediasvc.stack.localproc import free_port, stop, wait_until_listening
from mediasvc.stack.nginxconf import NginxError, NginxProcess, Site, render
from mediasvc.stack.pgcluster import ClusterError, PostgresCluster

DATABASE = "mediasvc"
# Secrets `make run` generates once and keeps in the data dir (mode 0600).
JWT_SECRET_FILE = "jwt-secret"  # noqa: S105 - a file name, not a secret
SIGNING_SECRET_FILE = "url-signing-secret"  # noqa: S105 - a file name, not a secret
_APP_START_TIMEOUT_S = 60.0
_APP_STOP_TIMEOUT_S = 40.0
# A node bound to every interface is reached, by us and by the printed URLs, over loopback.
_WILDCARD_TO_LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104 - not a bind


class DevError(Exception):
    """The dev stack could not start; the message says what to do."""


def dev_secret(data_dir: Path, name: str = JWT_SECRET_FILE, *, create: bool = True) -> str:
    """A secret kept in the data dir; the JWT one lets `token` work beside `make run`."""
    path = data_dir / name
    if not path.exists():
        if not create:
            raise DevError(f"no MEDIASVC_JWT_SECRET and no {path}: start `make run` first")
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def _add_dev_secrets(env: dict[str, str], data_dir: Path, *, create: bool) -> None:
    """Set the secrets `env` leaves unset to those kept in the data dir (made now if
    `create`; else only those a `make run` made)."""
    for name, file in (
        ("jwt_secret", JWT_SECRET_FILE),
        ("url_signing_secret", SIGNING_SECRET_FILE),
    ):
        # Empty is unset, as `Settings.from_env` reads it.
        if not env.get(env_name(name)) and (create or (data_dir / file).exists()):
            env[env_name(name)] = dev_secret(data_dir, file, create=create)


def env_beside_dev(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a command run beside `make run` (`gc`, `events`, `rerender`,
    `usage`, ...): the given one (default: ours), and where it leaves the database URL or a
    secret unset, what the running dev stack of its data dir uses (its PostgreSQL's address,
    the secrets kept in the data dir). Without a dev stack it is the environment as it is,
    so production commands read only their own settings."""
    result = dict(os.environ if env is None else env)
    data_dir = setting_from_env("data_dir", result).resolve()
    if not (data_dir / JWT_SECRET_FILE).exists():
        return result  # no `make run` ever ran with this data dir
    result[env_name("data_dir")] = str(data_dir)
    _add_dev_secrets(result, data_dir, create=False)
    if not result.get(env_name("database_url")):
        cluster = PostgresCluster(data_dir / "postgres")
        port = cluster.running_port()
        if port is not None:
            result[env_name("database_url")] = cluster.dsn(port, DATABASE)
    return result


def run() -> int:
    """Start everything, wait for Ctrl-C/SIGTERM or a child's death, stop everything."""
    # The children's environment: ours, with what `dev` supplies where nothing is set (the
    # data dir made absolute, secrets kept in it, a dev token, a database of its own).
    env = dict(os.environ)
    data_dir = setting_from_env("data_dir", env).resolve()
    env[env_name("data_dir")] = str(data_dir)
    _add_dev_secrets(env, data_dir, create=True)
    # The upload page at / offers this token, so a browser needs no copy and paste.
    dev_token = mint_token(
        setting_from_env("jwt_secret", env),
        "dev",
        # Checked on every token when set, this one too.
        issuer=setting_from_env("jwt_issuer", env),
        audience=setting_from_env("jwt_audience", env),
    )
    env.setdefault(env_name("dev_token"), dev_token)
    # nginx runs beside the nodes: they purge its cache of deleted variants (every node
    # does; a file one removed is simply not there for the others).
    if not env.get(env_name("nginx_cache_dir")):
        env[env_name("nginx_cache_dir")] = str(data_dir / "nginx" / "cache")
    stop = _StopFlag()
    try:
        with ExitStack() as stack:
            if not env.get(env_name("database_url")):
                env[env_name("database_url")] = stack.enter_context(_postgres(data_dir))
            settings = Settings.from_env(env)
            # A bad kinds file stops `dev` before a node starts, as it stops `serve`.
            kind_rules(settings)
            ports = node_ports(settings)
            asyncio.run(migrate_database(settings.database_url))
            # Each node is a separate `serve` process on its own port; they share nothing
            # but PostgreSQL and the storage, exactly as on separate hosts.
            nodes = [
                stack.enter_context(_app(replace(settings, app_port=port), env)) for port in ports
            ]
            nginx = stack.enter_context(_nginx(settings, data_dir, [n.address for n in nodes]))
            _print_welcome(settings, nodes)
            while not stop.requested:
                if any(node.process.poll() is not None for node in nodes):
                    print("mediasvc: an app node exited; stopping", file=sys.stderr)
                    return 1
                if not nginx.running:
                    print("mediasvc: nginx exited; stopping", file=sys.stderr)
                    return 1
                time.sleep(0.2)
            print("\nmediasvc: stopping", file=sys.stderr)
    except (ClusterError, NginxError) as exc:
        raise DevError(str(exc)) from exc
    return 0


def node_ports(settings: Settings) -> list[int]:
    """The app nodes' ports, node i on `MEDIASVC_APP_PORT + i`, checked free before any starts.

    A port someone else listens on would pass the start check (it accepts connections) while
    our node dies on it, so a taken port is refused here, naming the setting to change.
    """
    first, count = settings.app_port, settings.app_nodes
    ports = list(range(first, first + count))
    span = f"{first}-{ports[-1]}" if count > 1 else str(first)
    if ports[-1] > 65535:
        raise DevError(
            f"MEDIASVC_APP_PORT={first} with MEDIASVC_APP_NODES={count} needs ports {span},"
            " past 65535; choose a lower MEDIASVC_APP_PORT"
        )
    if settings.http_port in ports:
        raise DevError(
            f"MEDIASVC_HTTP_PORT={settings.http_port} is one of the app nodes' ports {span}"
            " (MEDIASVC_APP_PORT + node); choose ports that do not overlap"
        )
    also = f", like the {count - 1} after it" if count > 1 else ""
    for node, port in enumerate(ports):
        if not _port_free(settings.app_host, port):
            raise DevError(
                f"port {port} (MEDIASVC_APP_PORT + {node}) on {settings.app_host} is in use;"
                f" set MEDIASVC_APP_PORT to a port that is free{also}"
            )
    return ports


def _port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # As the app's own listener does, so a port left in TIME_WAIT does not count as taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _authority(host: str, port: int, *, for_client: bool = False) -> str:
    """`host:port`, IPv6 in brackets; for a client, a wildcard address becomes loopback."""
    if for_client:
        host = _WILDCARD_TO_LOOPBACK.get(host, host)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _StopFlag:
    """Set by SIGINT or SIGTERM; the main loop checks it."""

    def __init__(self) -> None:
        self.requested = False
        signal.signal(signal.SIGINT, self._set)
        signal.signal(signal.SIGTERM, self._set)

    def _set(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True


@contextmanager
def _postgres(data_dir: Path) -> Iterator[str]:
    cluster = PostgresCluster(data_dir / "postgres")
    cluster.ensure_initialised()
    port = free_port()
    cluster.start(port)
    try:
        asyncio.run(_ensure_database(cluster.dsn(port)))
        yield cluster.dsn(port, DATABASE)
    finally:
        cluster.stop()


async def _ensure_database(admin_dsn: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await conn.close()


@dataclass(frozen=True)
class _Node:
    process: subprocess.Popen[bytes]
    address: str  # host:port, as nginx's upstream names it
    metrics_url: str


@contextmanager
def _app(settings: Settings, env: Mapping[str, str]) -> Iterator[_Node]:
    """`serve` with `settings`, in `env` (which carries what `to_env` cannot write: PATH,
    the files some settings were read from)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "mediasvc", "serve"],
        env={**env, **settings.to_env()},
        start_new_session=True,  # we deliver the signals, in order
    )
    try:
        address = _authority(settings.app_host, settings.app_port)
        if not wait_until_listening(
            process, settings.app_port, host=settings.app_host, timeout_s=_APP_START_TIMEOUT_S
        ):
            if process.poll() is not None:
                raise DevError("the app exited at start; its error is printed above")
            raise DevError(f"the app did not listen on {address} in {_APP_START_TIMEOUT_S:.0f}s")
        client = _authority(settings.app_host, settings.app_port, for_client=True)
        yield _Node(process, address, f"http://{client}/metrics")
    finally:
        stop(process, timeout_s=_APP_STOP_TIMEOUT_S)


@contextmanager
def _nginx(settings: Settings, data_dir: Path, upstreams: list[str]) -> Iterator[NginxProcess]:
    config = render(
        Site.for_settings(settings, listen=f"127.0.0.1:{settings.http_port}", upstreams=upstreams),
        data_dir / "nginx",
    )
    settings.media_dir.mkdir(parents=True, exist_ok=True)
    nginx = NginxProcess(config)
    nginx.start(wait_for=("127.0.0.1", settings.http_port))
    try:
        yield nginx
    finally:
        nginx.stop()


def _print_welcome(settings: Settings, nodes: list[_Node]) -> None:
    assert settings.jwt_secret is not None
    token = settings.dev_token or mint_token(
        settings.jwt_secret, "dev", issuer=settings.jwt_issuer, audience=settings.jwt_audience
    )
    base = f"http://127.0.0.1:{settings.http_port}"
    count = f"{len(nodes)} app node{'s' if len(nodes) > 1 else ''}"
    metrics = "\n".join(f"  {node.metrics_url}" for node in nodes)
    print(
        f"""
mediasvc is running at {base}  ({count}; Ctrl-C stops everything)
Upload page: {base}/  (the dev token below is filled in)

  export TOKEN={token}
  curl -H "Authorization: Bearer $TOKEN" -F file=@photo.jpg {base}/v1/media

Metrics, on each app node's own port (nginx does not serve /metrics):
{metrics}

More tokens: .venv/bin/python -m mediasvc token SUB [--admin] [--space SPACE ...]
""",
        flush=True,
    )
