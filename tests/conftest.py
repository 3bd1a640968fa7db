"""Real parts for the suite: one PostgreSQL cluster per session, one database per test
(cloned from a migrated template), the app on a real socket, and nginx rendered from the
project's own templates in front of it."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from support import JWT_SECRET, SIGNING_SECRET

from mediasvc.app import create_app
from mediasvc.config import Settings
from mediasvc.db.migrate import migrate_database
from mediasvc.nginxconf import NginxProcess, Site, render
from mediasvc.pgcluster import FAST_UNSAFE, PostgresCluster, free_port

TEMPLATE_DB = "mediasvc_template"


@dataclass(frozen=True)
class PgServer:
    """The session's PostgreSQL server."""

    cluster: PostgresCluster
    port: int

    def dsn(self, database: str = "postgres") -> str:
        return self.cluster.dsn(self.port, database)


@pytest.fixture(scope="session")
def public_tmp() -> Iterator[Path]:
    """A scratch directory the postgres user and nginx's workers may traverse (0755)."""
    path = Path(tempfile.mkdtemp(prefix="mediasvc-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres(public_tmp: Path) -> Iterator[PgServer]:
    """A throwaway cluster on a free port, with a migrated template database."""
    cluster = PostgresCluster(public_tmp / "postgres")
    cluster.ensure_initialised()
    server = PgServer(cluster, free_port())
    cluster.start(server.port, settings=FAST_UNSAFE)
    try:
        asyncio.run(_create_template(server))
        yield server
    finally:
        cluster.stop()


async def _create_template(server: PgServer) -> None:
    conn = await asyncpg.connect(server.dsn())
    try:
        await conn.execute(f"CREATE DATABASE {TEMPLATE_DB}")
    finally:
        await conn.close()
    await migrate_database(server.dsn(TEMPLATE_DB))


@pytest.fixture
async def database_url(postgres: PgServer) -> AsyncIterator[str]:
    """A fresh, migrated database for this test alone."""
    name = f"test_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(postgres.dsn())
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
        yield postgres.dsn(name)
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    finally:
        await admin.close()


@pytest.fixture
def data_dir(public_tmp: Path) -> Iterator[Path]:
    """This test's data directory (media, spool, nginx runtime), reachable by nginx."""
    path = public_tmp / f"data-{secrets.token_hex(4)}"
    path.mkdir(mode=0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def make_settings(database_url: str, data_dir: Path) -> Callable[..., Settings]:
    """Settings for this test; keyword arguments override single fields."""
    base = Settings(
        database_url=database_url,
        url_signing_secret=SIGNING_SECRET,
        jwt_secret=JWT_SECRET,
        data_dir=data_dir,
        media_dir=data_dir / "media",
        spool_dir=data_dir / "spool",
        workers=2,
        queue_max=4,
        job_timeout_s=30.0,
        db_timeout_s=5.0,
        log_format="json",
    )

    def make(**overrides: Any) -> Settings:
        return replace(base, **overrides)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """Default test settings."""
    return make_settings()


@pytest.fixture
async def client(settings: Settings, aiohttp_client: Any) -> TestClient[Any, Any]:
    """The app on a real socket, resources opened through its cleanup contexts."""
    client: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    return client


@pytest.fixture
async def nginx(client: TestClient[Any, Any], settings: Settings) -> AsyncIterator[str]:
    """nginx from the project's templates in front of `client`'s server; yields its base URL."""
    port = free_port()
    config = render(
        Site.for_settings(
            settings, listen=f"127.0.0.1:{port}", upstreams=[f"127.0.0.1:{client.server.port}"]
        ),
        settings.data_dir / "nginx",
    )
    settings.media_dir.mkdir(parents=True, exist_ok=True)
    process = NginxProcess(config)
    await asyncio.to_thread(process.start, ("127.0.0.1", port))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await asyncio.to_thread(process.stop)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain HTTP client for talking to nginx."""
    async with aiohttp.ClientSession() as session:
        yield session
