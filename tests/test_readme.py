"""The README's programs run as written: each is taken from the README itself (not a copy),
run against the service, and must do what the README says it does. Its tables cannot drift
from their homes: the problem codes are the registry's rendering, and the settings it names
(and `deploy/mediasvc.env.example` lists) are the `Settings` fields' variables."""

from __future__ import annotations

import asyncio
import base64
import re
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import images
import pytest
from gates import DEADLINE_S, wait_listening
from support import README, Client, bearer, readme_program, upload_tiny

from mediasvc.cli import main
from mediasvc.config import Settings, env_name
from mediasvc.contract import codes
from mediasvc.stack.localproc import free_port

ENV_EXAMPLE = README.parent / "deploy" / "mediasvc.env.example"
SETTINGS = {env_name(setting.name) for setting in fields(Settings)}
KEY = bytes(range(32))


class Program:
    """A README program running in its own interpreter; its printed lines, as they come."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []

    async def line(self, matches: Callable[[str], bool], what: str) -> str:
        """The first printed line (from now or before) that `matches`."""
        while not any(matches(line) for line in self.lines):
            assert self.process.stdout is not None
            raw = await asyncio.wait_for(self.process.stdout.readline(), DEADLINE_S)
            assert raw, f"the program ended before printing {what}"
            self.lines.append(raw.decode().rstrip("\n"))
        return next(line for line in self.lines if matches(line))


@pytest.fixture
async def receiver(tmp_path: Path) -> AsyncIterator[tuple[Program, int]]:
    """The README's webhook receiver, listening on a free port with the test's secret."""
    source = tmp_path / "receiver.py"
    source.write_text(readme_program("python", "async def media_events("))
    port = free_port()
    env = {
        "MEDIASVC_WEBHOOK_SECRET": "whsec_" + base64.b64encode(KEY).decode(),
        "PORT": str(port),
        "PATH": "/usr/bin:/bin",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(source), env=env, stdout=asyncio.subprocess.PIPE
    )
    program = Program(process)
    try:
        yield program, port
    finally:
        process.kill()
        await process.wait()


@pytest.fixture
def settings(make_settings: Any, receiver: tuple[Program, int]) -> Settings:
    """The app sends its webhooks to the README's receiver."""
    _, port = receiver
    result: Settings = make_settings(
        webhook_urls=(f"http://127.0.0.1:{port}/hooks/media",),
        webhook_secret=KEY,
        webhook_backoff_s=0.05,
    )
    return result


async def test_the_webhook_receiver_handles_ready_and_deleted(
    client: Client, receiver: tuple[Program, int]
) -> None:
    """The README's receiver verifies each event and prints what it does with it: attach a
    new media with its thumbnail's URL, then forget it once deleted."""
    program, port = receiver
    await wait_listening(port, "the README's receiver listens")
    response = await upload_tiny(client)
    assert response.status == 201
    media = await response.json()
    attached = await program.line(lambda line: media["id"] in line, "the attach line")
    assert attached == (
        f"attach {media['id']} to the post; thumbnail: {media['variants']['thumbnail']['url']}"
    )
    assert (await client.delete(f"/v1/media/{media['id']}", headers=bearer())).status == 204
    forgot = await program.line(lambda line: line.startswith("forget"), "the forget line")
    assert forgot == f"forget {media['id']}"


async def test_the_curl_tour_runs_against_nginx(client: Client, nginx: str, tmp_path: Path) -> None:
    """The README's curl tour, run by bash against the app behind nginx (only the base URL
    differs from `make run`'s): every step answers what its comment says."""
    tour = readme_program("sh", "# refusals are problems")
    assert tour.startswith("B=http://127.0.0.1:8080 ")
    (tmp_path / "photo.jpg").write_bytes(images.make_jpeg(width=640, height=480))
    token = bearer()["Authorization"].removeprefix("Bearer ")
    process = await asyncio.create_subprocess_exec(
        "bash",
        "-euo",
        "pipefail",
        "-c",
        tour.replace("B=http://127.0.0.1:8080", f"B={nginx}", 1),
        cwd=tmp_path,
        env={"TOKEN": token, "PATH": "/usr/bin:/bin"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), DEADLINE_S)
    assert process.returncode == 0, err.decode()
    text = out.decode()
    lines = text.splitlines()
    assert "HTTP/1.1 200 OK" in lines
    assert "cache-control: public, max-age=31536000, immutable" in text.lower()
    # 404 without the token, the signed URL, 200 via nginx ... 204 for the delete.
    codes = [line for line in lines if re.fullmatch(r"\d{3}", line)]
    assert codes == ["404", "200", "204"]
    assert any("/private/" in line and "md5=" in line for line in lines)
    assert '"code": "unsupported_media_type"' in text
    assert '"max_upload_bytes"' in text


def readme_section(heading: str) -> str:
    """The README's text under `## heading`, up to the next heading of that level."""
    return README.read_text().split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def test_the_errors_table_is_the_registry_rendered(capsys: pytest.CaptureFixture[str]) -> None:
    """The "Errors" section holds `python -m mediasvc problem-codes`'s table as printed: a
    code added, moved or reworded in `contract.codes` fails here until the README has it."""
    assert main(["problem-codes"]) == 0
    printed = capsys.readouterr().out
    assert printed == codes.readme_table()
    assert printed in readme_section("Errors")


def test_the_configuration_table_names_only_settings() -> None:
    """Each variable in the "Configuration" table is a setting's: `_X` after a first name is
    `MEDIASVC_X` or `MEDIASVC_<first word>_X`, and `MEDIASVC_RATE_*` some setting's prefix."""
    rows = [line for line in readme_section("Configuration").splitlines() if line.startswith("| `")]
    assert len(rows) > 20
    for row in rows:
        names = re.findall(r"`(MEDIASVC_[A-Z0-9_*]+|_[A-Z0-9_]+)`", row.split("|")[1])
        first_word = names[0].removeprefix("MEDIASVC_").split("_")[0]
        for name in names:
            if name.endswith("*"):
                assert any(setting.startswith(name[:-1]) for setting in SETTINGS), name
            elif name.startswith("_"):
                assert {f"MEDIASVC{name}", f"MEDIASVC_{first_word}{name}"} & SETTINGS, name
            else:
                assert name in SETTINGS, name


def test_the_env_example_lists_every_setting_and_no_other() -> None:
    """`deploy/mediasvc.env.example`, which the README calls the full list, names exactly
    the settings' variables."""
    assert set(re.findall(r"MEDIASVC_[A-Z0-9_]+", ENV_EXAMPLE.read_text())) == SETTINGS
