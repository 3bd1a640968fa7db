"""Clients generated from the OpenAPI document work: openapi-typescript turns the served
document into TypeScript types (as the README says to), `tsc --noEmit` type-checks a small
fetch client against them (`tests/ts/`: strict, and lines that must not compile), and the
compiled client uploads an image to the live app and reads the Media it gets back.

The npm tools are pinned and installed once into the repository's `.cache/` (never
globally), so a run after the first installs nothing; a fresh clone installs once.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import images
import pytest
from aiohttp.test_utils import TestClient
from support import bearer

from mediasvc.config import Settings

Client = TestClient[Any, Any]
# Pinned, so a new release cannot fail an unchanged document; typescript 5, the major
# openapi-typescript 7 supports.
TOOLS = ("openapi-typescript@7.13.0", "typescript@5.9.3")
ROOT = Path(__file__).parent.parent
CACHE = ROOT / ".cache" / "npm" / "openapi-client"
SOURCES = Path(__file__).parent / "ts"


@pytest.fixture(scope="session")
def node_bin() -> Path:
    """The directory holding `openapi-typescript` and `tsc`, installed if missing."""
    stamp = CACHE / "installed"
    if not stamp.exists() or stamp.read_text() != " ".join(TOOLS):
        shutil.rmtree(CACHE, ignore_errors=True)
        CACHE.mkdir(parents=True)
        subprocess.run(
            ["npm", "install", "--prefix", str(CACHE), "--no-audit", "--no-fund", *TOOLS],
            check=True,
            capture_output=True,
            timeout=300,
        )
        stamp.write_text(" ".join(TOOLS))
    return CACHE / "node_modules" / ".bin"


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """With the session cookie configured, so both security schemes are generated."""
    result: Settings = make_settings(auth_cookie="access_token")
    return result


async def run(*argv: str | Path, cwd: Path) -> str:
    """Run `argv` without blocking the app's event loop; its stdout, or fail with both."""
    process = await asyncio.create_subprocess_exec(
        *map(str, argv),
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, f"{argv[0]}: {out.decode()}{err.decode()}"
    return out.decode()


async def generated(client: Client, node_bin: Path, where: Path) -> Path:
    """`tests/ts/` beside `api.d.ts` generated from the document the app serves."""
    response = await client.get("/v1/openapi.json")
    assert response.status == 200
    (where / "openapi.json").write_text(json.dumps(await response.json()))
    for source in SOURCES.iterdir():
        shutil.copy(source, where / source.name)
    await run(node_bin / "openapi-typescript", "openapi.json", "-o", "api.d.ts", cwd=where)
    return where


async def test_the_generated_types_type_check_the_client(
    client: Client, node_bin: Path, tmp_path: Path
) -> None:
    """`tsc --noEmit` passes: the client compiles against the generated types, and each
    line that must not compile (an unknown problem code, a wrong visibility, a Media
    without its required members) does not."""
    project = await generated(client, node_bin, tmp_path)
    api = (project / "api.d.ts").read_text()
    assert '"/v1/uploads/{media_id}/complete"' in api
    assert '"payload_too_large"' in api
    await run(node_bin / "tsc", "-p", ".", "--noEmit", cwd=project)


async def test_the_compiled_client_uploads_and_reads_the_media(
    client: Client, node_bin: Path, tmp_path: Path
) -> None:
    """Compiled and run with node against the app: the upload is ready with a thumbnail
    and a placeholder colour, and a refusal comes back as the problem's code."""
    project = await generated(client, node_bin, tmp_path)
    await run(node_bin / "tsc", "-p", ".", cwd=project)
    (project / "out" / "package.json").write_text('{"type": "module"}')
    token = bearer()["Authorization"].removeprefix("Bearer ")
    photo = base64.b64encode(images.make_jpeg(width=300, height=200)).decode()
    api = str(client.make_url("/")).rstrip("/")
    lines = (await run("node", "out/upload.js", api, token, photo, cwd=project)).splitlines()
    uploaded, refused = (json.loads(line) for line in lines)
    assert uploaded["status"] == "ready"
    assert uploaded["location"] == f"/v1/media/{uploaded['id']}"
    assert uploaded["url"].endswith("/thumbnail.webp")
    assert uploaded["color"].startswith("#")
    assert refused == {"refused": 415, "code": "unsupported_media_type"}
    assert (await client.get(f"/v1/media/{uploaded['id']}")).status == 200
