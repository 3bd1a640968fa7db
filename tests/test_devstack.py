"""`python -m mediasvc dev` (what `make run` starts), run for real as a user would."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import images
import pytest
from support import upload_form

from mediasvc.stack.localproc import free_port

START_TIMEOUT_S = 90
STOP_TIMEOUT_S = 60
# The last line of what the stack prints once everything listens.
WELCOME_END = re.compile(rb"More tokens: .*\n")


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes whose command line or environment names `text`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if text.encode() in cmdline or text.encode() in environ:
            found.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


def consecutive_free_ports(count: int) -> int:
    """The first of `count` consecutive ports on 127.0.0.1 that nothing listens on now."""
    for _ in range(100):
        first = free_port()
        if first + count - 1 > 65535:
            continue
        with contextlib.ExitStack() as held:
            try:
                for port in range(first + 1, first + count):
                    sock = held.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return first
    raise AssertionError(f"no {count} consecutive free ports found")


@pytest.fixture
def dev_env(public_tmp: Path) -> Iterator[dict[str, str]]:
    """Environment for a dev stack with its own data dir and ports: nginx's, then two nodes'."""
    data_dir = public_tmp / f"dev-{os.getpid()}-{time.monotonic_ns()}"
    env = {key: value for key, value in os.environ.items() if not key.startswith("MEDIASVC_")}
    http_port = consecutive_free_ports(3)
    env.update(MEDIASVC_DATA_DIR=str(data_dir), MEDIASVC_HTTP_PORT=str(http_port))
    env.update(MEDIASVC_APP_PORT=str(http_port + 1), MEDIASVC_WORKERS="1")
    yield env
    assert processes_mentioning(str(data_dir)) == []


def start_dev(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str, str]:
    """Start the stack; returns the process, the token it printed and all it printed."""
    process = subprocess.Popen(
        [sys.executable, "-m", "mediasvc", "dev"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT_S
    printed = b""
    while time.monotonic() < deadline and process.poll() is None:
        # Raw reads: a buffered reader could hold the token line while select() waits.
        ready, _, _ = select.select([process.stdout], [], [], 1.0)
        if ready:
            printed += os.read(process.stdout.fileno(), 65536)
            token = re.search(rb"export TOKEN=(\S+)", printed)
            if token and WELCOME_END.search(printed):
                return process, token[1].decode(), printed.decode()
    stop_dev(process)
    raise AssertionError(f"dev stack did not start:\n{printed.decode()}")


def stop_dev(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(STOP_TIMEOUT_S)
    finally:
        if process.stdout is not None:
            process.stdout.close()


async def test_dev_stack_serves_uploads_and_stops_cleanly_twice(dev_env: dict[str, str]) -> None:
    """Start, upload through nginx, fetch a variant, SIGTERM; again; nothing left running."""
    base = f"http://127.0.0.1:{dev_env['MEDIASVC_HTTP_PORT']}"
    for _ in range(2):
        process, token, _ = await asyncio.to_thread(start_dev, dev_env)
        try:
            async with aiohttp.ClientSession() as http:
                async with http.post(
                    f"{base}/v1/media",
                    data=upload_form(images.make_jpeg()),
                    headers={"Authorization": f"Bearer {token}"},
                ) as response:
                    assert response.status == 201, await response.text()
                    body = await response.json()
                async with http.get(base + body["variants"]["thumbnail"]["url"]) as response:
                    assert response.status == 200
                    assert response.headers["Content-Type"] == "image/webp"
                # Readiness is the operator's: on the node's own port, not through nginx.
                node = f"http://127.0.0.1:{dev_env['MEDIASVC_APP_PORT']}"
                async with http.get(f"{node}/readyz") as response:
                    assert response.status == 200
                # The upload page offers the very token the stack printed.
                async with http.get(f"{base}/") as response:
                    assert f'name="mediasvc-dev-token" content="{token}"' in await response.text()
        finally:
            assert await asyncio.to_thread(stop_dev, process) == 0
        assert processes_mentioning(dev_env["MEDIASVC_DATA_DIR"]) == []


async def test_token_command_mints_tokens_the_dev_stack_accepts(dev_env: dict[str, str]) -> None:
    """`python -m mediasvc token bob --admin` uses the secret in the data dir."""
    process, _, _ = await asyncio.to_thread(start_dev, dev_env)
    try:
        result = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "mediasvc", "token", "bob", "--admin"],
            env=dev_env,
            capture_output=True,
            text=True,
            check=True,
        )
        minted = result.stdout.strip()
        base = f"http://127.0.0.1:{dev_env['MEDIASVC_HTTP_PORT']}"
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{base}/v1/media",
                data=upload_form(images.make_tiny(), filename="t.png"),
                headers={"Authorization": f"Bearer {minted}"},
            ) as response,
        ):
            assert response.status == 201
            assert (await response.json())["owner"] == "bob"
    finally:
        assert await asyncio.to_thread(stop_dev, process) == 0


async def test_commands_beside_the_dev_stack_find_its_database_and_storage(
    dev_env: dict[str, str],
) -> None:
    """With nothing but the data dir set (as `make run` leaves a shell), `usage`, `gc`,
    `events` and `rerender` reach the stack's database and storage and do their work."""
    process, token, _ = await asyncio.to_thread(start_dev, dev_env)
    try:
        base = f"http://127.0.0.1:{dev_env['MEDIASVC_HTTP_PORT']}"
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{base}/v1/media",
                data=upload_form(images.make_jpeg()),
                headers={"Authorization": f"Bearer {token}"},
            ) as response,
        ):
            assert response.status == 201

        def command(*argv: str) -> str:
            result = subprocess.run(
                [sys.executable, "-m", "mediasvc", *argv],
                env=dev_env,
                capture_output=True,
                text=True,
                check=False,
            )
            assert result.returncode == 0, result.stderr
            return result.stdout

        printed = await asyncio.to_thread(command, "usage", "--by", "owner")
        assert printed.splitlines()[1].split()[:2] == ["dev", "1"]
        assert "rows finished: 0" in await asyncio.to_thread(command, "gc")
        assert "0 pending, 0 given up" in await asyncio.to_thread(command, "events")
        printed = await asyncio.to_thread(command, "rerender")
        assert printed.splitlines()[-1] == "summary: 1 up to date"
    finally:
        assert await asyncio.to_thread(stop_dev, process) == 0


async def test_dev_stack_puts_node_i_on_app_port_plus_i_and_prints_their_metrics(
    dev_env: dict[str, str],
) -> None:
    """With MEDIASVC_APP_PORT=P and two nodes, the printed metrics URLs use P and P+1 and answer."""
    first = int(dev_env["MEDIASVC_APP_PORT"])
    dev_env.update(MEDIASVC_APP_NODES="2")
    process, _, printed = await asyncio.to_thread(start_dev, dev_env)
    try:
        urls = re.findall(r"http://\S+/metrics", printed)
        assert urls == [f"http://127.0.0.1:{port}/metrics" for port in (first, first + 1)]
        async with aiohttp.ClientSession() as http:
            for url in urls:
                async with http.get(url) as response:
                    assert response.status == 200
                    assert response.content_type == "text/plain"
                    assert "# TYPE mediasvc_uploads_total counter" in await response.text()
            # Through nginx the same path is not served: metrics stay on the nodes' ports.
            base = f"http://127.0.0.1:{dev_env['MEDIASVC_HTTP_PORT']}"
            async with http.get(f"{base}/metrics") as response:
                assert response.status == 404
    finally:
        assert await asyncio.to_thread(stop_dev, process) == 0


def test_dev_stack_refuses_an_app_port_in_use_before_starting_anything(
    dev_env: dict[str, str],
) -> None:
    """A listener on MEDIASVC_APP_PORT + 1 stops `dev` with one line naming that port."""
    first = int(dev_env["MEDIASVC_APP_PORT"])
    # A database URL of its own, so no PostgreSQL is started: the refusal comes first.
    dev_env.update(
        MEDIASVC_APP_NODES="2",
        MEDIASVC_DATABASE_URL="postgresql://nobody@127.0.0.1:1/none",
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", first + 1))
        taken.listen()
        result = subprocess.run(
            [sys.executable, "-m", "mediasvc", "dev"],
            env=dev_env,
            capture_output=True,
            text=True,
            timeout=STOP_TIMEOUT_S,
            check=False,
        )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"mediasvc: port {first + 1} (MEDIASVC_APP_PORT + 1) on 127.0.0.1 is in use;"
        " set MEDIASVC_APP_PORT to a port that is free, like the 1 after it"
    ]
    assert result.stdout == ""


def test_nginx_conf_command_renders_a_site_for_several_nodes(tmp_path: Path) -> None:
    """`nginx-conf` writes the site with every upstream, readable by its owner only."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MEDIASVC_")},
        "MEDIASVC_DATABASE_URL": "postgresql://x@127.0.0.1/db",
        "MEDIASVC_JWT_SECRET": "s" * 32,
        "MEDIASVC_URL_SIGNING_SECRET": "k" * 32,
        "MEDIASVC_STORAGE": "s3",
        "MEDIASVC_S3_BUCKET": "my-media",
    }
    subprocess.run(
        [
            sys.executable,
            "-m",
            "mediasvc",
            "nginx-conf",
            str(tmp_path),
            "--upstream",
            "a:1",
            "--upstream",
            "b:2",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    site = (tmp_path / "mediasvc.conf").read_text()
    assert "server a:1 " in site
    assert "server b:2 " in site
    assert "media-s3.conf" in site
    assert "rewrite ^ /my-media/$variant_key? break;" in (tmp_path / "media-s3.conf").read_text()
    assert (tmp_path / "mediasvc.conf").stat().st_mode & 0o077 == 0
