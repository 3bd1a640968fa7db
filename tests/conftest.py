"""Real parts for the suite: one PostgreSQL cluster per session, one database per test
(cloned from a migrated template), the app on a real socket, and nginx rendered from the
project's own templates in front of it; for the tests marked `through_pgbouncer`, once more
with the app behind PgBouncer in transaction mode."""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import botocore.session
import pytest
from aiohttp.test_utils import TestClient
from answers import record_answers
from pooler import PgBouncer, running_pgbouncer
from support import JWT_SECRET, SIGNING_SECRET, running_nginx

from bench import procs
from mediasvc.app import create_app
from mediasvc.config import Settings
from mediasvc.db.migrate import migrate_database
from mediasvc.stack.localproc import free_port
from mediasvc.stack.pgcluster import FAST_UNSAFE, PostgresCluster

TEMPLATE_DB = "mediasvc_template"
DEPLOY_README = Path(__file__).resolve().parents[1] / "deploy" / "README.md"
# moto accepts any credentials; botocore only needs some to sign with.
S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "mediasvc-test",
    "AWS_SECRET_ACCESS_KEY": "mediasvc-test-secret",
}


@dataclass(frozen=True)
class PgServer:
    """The session's PostgreSQL server."""

    cluster: PostgresCluster
    port: int

    def dsn(self, database: str = "postgres") -> str:
        return self.cluster.dsn(self.port, database)

    @asynccontextmanager
    async def scratch_database(self, prefix: str, template: str = "") -> AsyncIterator[str]:
        """A new database named `prefix_<random>` (a copy of `template`, or empty), dropped
        when the block ends; its DSN."""
        name = f"{prefix}_{secrets.token_hex(6)}"
        admin = await asyncpg.connect(self.dsn())
        try:
            copy = f" TEMPLATE {template}" if template else ""
            await admin.execute(f"CREATE DATABASE {name}{copy}")
            yield self.dsn(name)
            await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        finally:
            await admin.close()


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


@pytest.fixture(scope="session")
def pgbouncer(postgres: PgServer, public_tmp: Path) -> Iterator[PgBouncer]:
    """PgBouncer in transaction-pooling mode in front of the session's cluster."""
    with running_pgbouncer(public_tmp / "pgbouncer", postgres.cluster, postgres.port) as pooler:
        yield pooler


@pytest.fixture
def database_route(request: pytest.FixtureRequest) -> str:
    """How the app reaches PostgreSQL: `direct`, or through `pgbouncer`; tests run both ways
    with `support.through_pgbouncer`."""
    return str(getattr(request, "param", "direct"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test run on both backends goes through PgBouncer on local disk only: the backend
    does not change what the app asks of the database, and the S3 run would double the
    added time. (An S3-only test, the session completer's, still goes through it.)"""

    def twin(item: pytest.Item, backend: str) -> tuple[str, ...]:
        params = {**_params(item), "backend": backend}
        return (str(item.parent and item.parent.nodeid), item.name.split("[")[0], repr(params))

    pooled = [item for item in items if _params(item).get("database_route") == "pgbouncer"]
    on_local = {twin(item, "local") for item in pooled if _params(item).get("backend") == "local"}
    dropped = [
        item
        for item in pooled
        if _params(item).get("backend") == "s3" and twin(item, "local") in on_local
    ]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]


def _params(item: pytest.Item) -> dict[str, Any]:
    callspec = getattr(item, "callspec", None)
    return dict(callspec.params) if callspec is not None else {}


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
    async with postgres.scratch_database("test", template=TEMPLATE_DB) as dsn:
        yield dsn


@contextmanager
def moto_server(**env: str) -> Iterator[str]:
    """A local S3-compatible server (`bench.procs.moto_server`, with `env` added to its
    environment), with the fake credentials set here for the clients; yields its URL."""
    with pytest.MonkeyPatch.context() as patch, procs.moto_server(**env) as url:
        for name, value in S3_CREDENTIALS.items():
            patch.setenv(name, value)
        yield url


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A local S3-compatible server (moto_server) in its own process, spoken to over HTTP."""
    with moto_server() as url:
        yield url


def s3_admin_client(endpoint: str) -> Any:
    """A synchronous botocore client for fixtures and checks (the app uses aiobotocore)."""
    return botocore.session.get_session().create_client(
        "s3", endpoint_url=endpoint, region_name="us-east-1"
    )


def deploy_cors_rules(origins: list[str]) -> dict[str, Any]:
    """deploy/README.md's CORS document for upload sessions, allowing `origins`."""
    section = DEPLOY_README.read_text().split("## Bucket rules for upload sessions", 1)[1]
    document: dict[str, Any] = json.loads(
        section.split("--cors-configuration '", 1)[1].split("'", 1)[0]
    )
    for rule in document["CORSRules"]:
        rule["AllowedOrigins"] = origins
    return document


def apply_cors_rules(settings: Settings, origins: list[str]) -> None:
    """What the operator does once per bucket (`aws s3api put-bucket-cors`)."""
    s3_admin_client(settings.s3_endpoint_url or "").put_bucket_cors(
        Bucket=settings.s3_bucket, CORSConfiguration=deploy_cors_rules(origins)
    )


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> Iterator[str]:
    """A fresh bucket that nginx may read (the policy the deploy docs describe)."""
    name = f"media-{secrets.token_hex(6)}"
    client = s3_admin_client(s3_endpoint)
    client.create_bucket(Bucket=name)
    client.put_bucket_policy(Bucket=name, Policy=json.dumps(nginx_read_policy(name)))
    yield name
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=name, Key=item["Key"])
    client.delete_bucket(Bucket=name)


def nginx_read_policy(bucket: str) -> dict[str, Any]:
    """Anonymous GetObject for nginx's address only: the read path needs no credentials."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "nginx-reads-variants",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/*",
                "Condition": {"IpAddress": {"aws:SourceIp": ["127.0.0.1/32"]}},
            }
        ],
    }


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """Which storage the test runs on; modules opt in to both with `parametrize_backends`."""
    return str(getattr(request, "param", "local"))


@pytest.fixture
def data_dir(public_tmp: Path) -> Iterator[Path]:
    """This test's data directory (media, spool, nginx runtime), reachable by nginx."""
    path = public_tmp / f"data-{secrets.token_hex(4)}"
    path.mkdir(mode=0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def make_settings(
    database_url: str,
    data_dir: Path,
    backend: str,
    database_route: str,
    request: pytest.FixtureRequest,
) -> Callable[..., Settings]:
    """Settings for this test; keyword arguments override single fields. Through PgBouncer,
    the app's URL is the pooler's (`database_url` stays direct, for the test's own checks),
    and no LISTEN URL is set: dispatchers poll."""
    database: dict[str, Any] = {"database_url": database_url}
    if database_route == "pgbouncer":
        pooler: PgBouncer = request.getfixturevalue("pgbouncer")
        database = {"database_url": pooler.url(database_url), "database_pooler": "transaction"}
    storage: dict[str, Any] = {}
    if backend == "s3":
        storage = {
            "storage": "s3",
            "s3_endpoint_url": request.getfixturevalue("s3_endpoint"),
            "s3_bucket": request.getfixturevalue("s3_bucket"),
            "storage_timeout_s": 3.0,
        }
    base = Settings(
        **database,
        url_signing_secret=SIGNING_SECRET,
        jwt_secret=JWT_SECRET,
        data_dir=data_dir,
        media_dir=data_dir / "media",
        spool_dir=data_dir / "spool",
        workers=2,
        queue_max=4,
        # Race tests send many uploads of one owner at once; the cap has its own tests.
        owner_max_inflight=100,
        # Likewise the per-user budgets (tests/test_budgets.py turns them on).
        user_uploads_per_min=0,
        user_deletes_per_min=0,
        user_reads_per_min=0,
        job_timeout_s=30.0,
        db_timeout_s=5.0,
        log_format="json",
        **storage,
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
    """The app on a real socket, resources opened through its cleanup contexts; what it
    answers is recorded (`answers.ANSWERS`) for the OpenAPI tests."""
    app = create_app(settings)
    record_answers(app)
    client: TestClient[Any, Any] = await aiohttp_client(app)
    return client


@pytest.fixture
async def nginx(client: TestClient[Any, Any], settings: Settings) -> AsyncIterator[str]:
    """nginx from the project's templates in front of `client`'s server; yields its base URL."""
    async with running_nginx(settings, [client.server.port]) as base_url:
        yield base_url


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain HTTP client for talking to nginx."""
    async with aiohttp.ClientSession() as session:
        yield session
