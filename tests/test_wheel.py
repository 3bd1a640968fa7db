"""The wheel `python -m build` makes, installed by a plain `pip install` into a virtualenv
outside the checkout, runs the service on its own: migrations, nginx templates and the page's
files are package data."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import zipfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import images
import pytest
from conftest import PgServer
from support import bearer, upload_form

from mediasvc.config import Settings
from mediasvc.db.migrate import load_migrations
from mediasvc.stack.localproc import free_port, stop, wait_until_listening
from mediasvc.stack.nginxconf import NginxProcess

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mediasvc"
# The package's files that are not Python: every one must be in the wheel.
DATA_DIRS = ("sql", "nginx", "web/static")


@dataclass(frozen=True)
class Installed:
    """The built wheel and the virtualenv it was installed into."""

    wheel: Path
    venv: Path

    @property
    def command(self) -> Path:
        """The `mediasvc` console script pip wrote."""
        return self.venv / "bin" / "mediasvc"


def _run(
    argv: list[str | Path], *, env: dict[str, str] | None = None, cwd: Path | None = None
) -> str:
    """Run `argv` to the end; its stdout, or a failure showing both streams."""
    result = subprocess.run(argv, capture_output=True, text=True, check=False, env=env, cwd=cwd)
    assert result.returncode == 0, f"{argv}: {result.stdout}\n{result.stderr}"
    return result.stdout


def _outside_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment for the installed commands: no variable that points back at the
    checkout or its virtualenv, and no MEDIASVC_* setting of ours."""
    kept = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("MEDIASVC_") and name not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    return {**kept, **extra}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """`python -m build --wheel`, then a fresh virtualenv and `pip install` of that wheel,
    its dependencies from the same index `make install` uses (pip's own configuration)."""
    scratch = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "build", "--wheel", "--outdir", scratch / "dist", ROOT])
    (wheel,) = (scratch / "dist").glob("mediasvc-*.whl")
    venv = scratch / "venv"
    _run([sys.executable, "-m", "venv", venv])
    _run([venv / "bin" / "python", "-m", "pip", "install", "-q", wheel], cwd=scratch)
    return Installed(wheel, venv)


def test_wheel_carries_the_migrations_templates_and_page_files(installed: Installed) -> None:
    """Every file of `mediasvc/sql/`, `mediasvc/nginx/` and `mediasvc/web/static/` is in the
    wheel, byte for byte."""
    with zipfile.ZipFile(installed.wheel) as wheel:
        for directory in DATA_DIRS:
            files = sorted((PACKAGE / directory).iterdir())
            assert files, directory
            for path in files:
                name = path.relative_to(ROOT).as_posix()
                assert wheel.read(name) == path.read_bytes(), name


@asynccontextmanager
async def serving(command: Path, env: dict[str, str], cwd: Path, port: int) -> AsyncIterator[None]:
    """`mediasvc serve` from the installed wheel, until the block ends."""
    process = await asyncio.to_thread(
        subprocess.Popen, [command, "serve"], env=env, cwd=cwd, stdin=subprocess.DEVNULL
    )
    try:
        listening = await asyncio.to_thread(wait_until_listening, process, port, timeout_s=30)
        assert listening, "the installed app did not listen"
        yield
    finally:
        await asyncio.to_thread(stop, process)


@pytest.fixture
async def empty_database(postgres: PgServer) -> AsyncIterator[str]:
    """A database with no table at all, for the installed migrator."""
    async with postgres.scratch_database("wheel") as dsn:
        yield dsn


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A working directory outside the checkout, so nothing is found relative to it."""
    assert not tmp_path.resolve().is_relative_to(ROOT)
    return tmp_path


async def test_installed_wheel_migrates_renders_nginx_and_serves_an_upload(
    installed: Installed,
    empty_database: str,
    make_settings: Callable[..., Settings],
    outside: Path,
) -> None:
    """From the fresh virtualenv: `migrate` applies every migration to an empty database,
    `nginx-conf` renders a site nginx runs, and `serve` behind it takes an upload whose
    variant nginx serves with the stored bytes, and the page with the wheel's files."""
    python = installed.venv / "bin" / "python"
    where = await asyncio.to_thread(
        _run, [python, "-c", "import mediasvc; print(mediasvc.__file__)"], cwd=outside
    )
    assert Path(where.strip()).is_relative_to(installed.venv), where

    app_port, nginx_port = free_port(), free_port()
    settings = make_settings(database_url=empty_database, app_port=app_port, workers=1)
    env = _outside_env(settings.to_env())

    applied = await asyncio.to_thread(_run, [installed.command, "migrate"], env=env, cwd=outside)
    names = [m.name for m in load_migrations()]
    assert applied.strip() == "applied: " + ", ".join(names)

    site = settings.data_dir / "nginx"
    await asyncio.to_thread(
        _run,
        [
            *(installed.command, "nginx-conf", site),
            *("--listen", f"127.0.0.1:{nginx_port}", "--upstream", f"127.0.0.1:{app_port}"),
        ],
        env=env,
        cwd=outside,
    )
    settings.media_dir.mkdir(parents=True, exist_ok=True)
    nginx = NginxProcess(site / "nginx.conf")
    await asyncio.to_thread(nginx.start, ("127.0.0.1", nginx_port))
    base = f"http://127.0.0.1:{nginx_port}"
    static = Path(where.strip()).parent / "web" / "static"
    try:
        async with (
            serving(installed.command, env, outside, app_port),
            aiohttp.ClientSession() as http,
        ):
            async with http.post(
                f"{base}/v1/media", data=upload_form(images.make_jpeg()), headers=bearer()
            ) as response:
                assert response.status == 201, await response.text()
                body = await response.json()
            for variant in body["variants"].values():
                async with http.get(base + variant["url"]) as response:
                    assert response.status == 200
                    served = await response.read()
                stored = settings.media_dir / variant["url"].removeprefix("/media/")
                assert served == stored.read_bytes()
                assert len(served) == variant["bytes"]
            async with http.get(f"{base}/static/app.js") as response:
                assert response.status == 200
                assert await response.read() == (static / "app.js").read_bytes()
    finally:
        await asyncio.to_thread(nginx.stop)
