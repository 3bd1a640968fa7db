"""Emptying a space (`DELETE /v1/spaces/{space}/media`, `spaces delete`): every media of it
goes, whatever its status, with `media.deleted` for the ready ones, finished by any node."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import images
import jwt
import pytest
from aiohttp import web
from gates import DEADLINE_S, wait_until
from locks import held_locks
from support import (
    JWT_SECRET,
    Client,
    parametrize_backends,
    send_direct,
    serving,
    stored_keys,
    through_pgbouncer,
    upload_form,
)

from mediasvc import cli
from mediasvc.app import create_app
from mediasvc.appkeys import DB, SESSIONS, STORAGE
from mediasvc.auth import mint_token
from mediasvc.config import Settings
from mediasvc.flows.processing import Processor
from mediasvc.flows.space_deletion import SpaceDeletions
from mediasvc.keys import media_id_of

PHOTO = images.make_jpeg(width=320, height=240)
CHAT = "conversation:8f2c"
OTHER = "conversation:77aa"
WEBHOOK_KEY = bytes(range(32))


def token(sub: str, *, spaces: tuple[str, ...] = (), manages: tuple[str, ...] = ()) -> Any:
    """An Authorization header for `sub`, a member of `spaces`, managing `manages`."""
    minted = mint_token(JWT_SECRET, sub, spaces=spaces, manages=manages)
    return {"Authorization": f"Bearer {minted}"}


ALICE = token("alice", spaces=(CHAT, OTHER))  # uploads, a member of both
MANAGER = token("mod", manages=(CHAT,))  # manages the chat, and is no member of it
ADMIN = {"Authorization": f"Bearer {mint_token(JWT_SECRET, 'root', admin=True)}"}


class Events:
    """A webhook receiver that keeps every event body it is sent."""

    def __init__(self) -> None:
        self.url = ""
        self.bodies: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(json.loads(await request.read()))
        return web.Response(text="ok")

    def of(self, type: str) -> set[str]:
        return {body["data"]["id"] for body in self.bodies if body["type"] == type}


@pytest.fixture
async def events() -> AsyncIterator[Events]:
    """Where the app sends its webhooks."""
    async with serving(Events()) as receiver:
        yield receiver


@pytest.fixture
def settings(make_settings: Callable[..., Settings], events: Events) -> Settings:
    """Webhooks on; every node looks for unfinished jobs twice a second."""
    result: Settings = make_settings(
        webhook_urls=(events.url,),
        webhook_secret=WEBHOOK_KEY,
        webhook_backoff_s=0.01,
        reaper_interval_s=0.5,
    )
    return result


async def share(client: Client, space: str | None = CHAT) -> str:
    """A ready media of alice's in `space`; its id."""
    fields = {} if space is None else {"space": space}
    response = await client.post("/v1/media", data=upload_form(PHOTO, **fields), headers=ALICE)
    assert response.status == 201, await response.text()
    media_id: str = (await response.json())["id"]
    return media_id


async def session(client: Client, data: bytes | None = None, space: str = CHAT) -> str:
    """An upload session of alice's in `space`; with `data`, its bytes sent; its id."""
    body = {"content_type": "image/jpeg", "size": len(data or PHOTO), "space": space}
    response = await client.post("/v1/uploads", json=body, headers=ALICE)
    assert response.status == 201, await response.text()
    opened: dict[str, Any] = await response.json()
    if data is not None:
        assert await send_direct(client, opened["upload"], data) in (200, 201, 204)
    return str(opened["id"])


async def failed_session(client: Client) -> str:
    """A session whose bytes were not an image, completed asynchronously: kept `failed`."""
    half = PHOTO[: len(PHOTO) // 2]
    media_id = await session(client, half)
    response = await client.post(
        f"/v1/uploads/{media_id}/complete", headers={**ALICE, "Prefer": "respond-async"}
    )
    assert response.status == 202
    await asyncio.wait_for(asyncio.gather(*client.app[SESSIONS].running), DEADLINE_S)
    assert await status_of(client, media_id) == "failed"
    return media_id


async def status_of(client: Client, media_id: str) -> str | None:
    status: str | None = await client.app[DB].fetchval(
        "SELECT status FROM media WHERE id = $1", media_id
    )
    return status


async def space_rows(client: Client, space: str = CHAT) -> dict[str, str]:
    rows = await client.app[DB].fetch("SELECT id, status FROM media WHERE space = $1", space)
    return {row["id"]: row["status"] for row in rows}


async def job_left(client: Client, space: str = CHAT) -> bool:
    return bool(
        await client.app[DB].fetchval(
            "SELECT count(*) FROM space_deletions WHERE space = $1", space
        )
    )


async def until_emptied(client: Client, space: str = CHAT) -> None:
    """Until the app's own loop removed the space's media and ended its job."""

    async def emptied() -> bool:
        return not await space_rows(client, space) and not await job_left(client, space)

    await wait_until(emptied, f"{space} is empty and its job ended")


class HeldProcessing:
    """Uploads that reach the worker pool wait there until `go` is set."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.entered: asyncio.Queue[None] = asyncio.Queue()
        self.go = asyncio.Event()
        real_run = Processor.run

        async def held_run(processor: Processor, *args: Any) -> Any:
            self.entered.put_nowait(None)
            await self.go.wait()
            return await real_run(processor, *args)

        monkeypatch.setattr(Processor, "run", held_run)


@through_pgbouncer
@parametrize_backends
async def test_every_status_goes_and_receivers_hear_of_the_ready_ones(
    client: Client, events: Events, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ready media, a waiting session, a failed upload and one still processing (held in
    the pool) all go: 202 counts the five, the first four go at once, the processing one
    once it is ready; `media.deleted` for the three that were ready; the other space and
    media outside spaces stay, with every object of theirs."""
    ready = [await share(client), await share(client)]
    pending = await session(client)
    failed = await failed_session(client)
    kept = [await share(client, OTHER), await share(client, None)]
    held = HeldProcessing(monkeypatch)
    upload = asyncio.ensure_future(
        client.post("/v1/media", data=upload_form(PHOTO, space=CHAT), headers=ALICE)
    )
    await asyncio.wait_for(held.entered.get(), DEADLINE_S)
    (processing,) = set(await space_rows(client)) - {*ready, pending, failed}

    response = await client.delete(f"/v1/spaces/{CHAT}/media", headers=MANAGER)
    assert response.status == 202
    assert await response.json() == {"space": CHAT, "media": 5}

    async def only_processing_left() -> bool:
        return await space_rows(client) == {processing: "processing"}

    await wait_until(only_processing_left, "all but the processing upload are gone")
    assert await job_left(client)
    held.go.set()
    answer = await asyncio.wait_for(upload, DEADLINE_S)
    # Its client hears it is ready; it goes with the space all the same.
    assert answer.status == 201
    await until_emptied(client)
    assert sorted(await space_rows(client, OTHER)) == [kept[0]]
    assert await status_of(client, kept[1]) == "ready"
    assert {media_id_of(key) for key in await stored_keys(client)} == set(kept)

    async def told() -> bool:
        return events.of("media.deleted") >= {*ready, processing}

    await wait_until(told, "media.deleted arrived for the three ready media")
    assert events.of("media.deleted") == {*ready, processing}


async def test_who_may_empty_a_space(client: Client) -> None:
    """Admins and the space's managers get 202; a member without the manage claim, or the
    manager of another space, 403; no token 401; a malformed space 400."""
    path = f"/v1/spaces/{CHAT}/media"
    await share(client)
    member = token("bob", spaces=(CHAT,))
    other_manager = token("mod2", spaces=(CHAT,), manages=(OTHER,))
    for refused in (ALICE, member, other_manager):
        response = await client.delete(path, headers=refused)
        assert response.status == 403
        assert (await response.json())["code"] == "forbidden"
    assert len(await space_rows(client)) == 1
    assert (await client.delete(path)).status == 401
    assert (await client.delete("/v1/spaces/a%20b/media", headers=ADMIN)).status == 400
    response = await client.delete(path, headers=ADMIN)
    assert (response.status, await response.json()) == (202, {"space": CHAT, "media": 1})
    await until_emptied(client)


async def test_uploads_after_the_request_are_kept(client: Client) -> None:
    """The deletion covers what the space held when it was asked for: a later upload into
    the space stays, and asking again covers it too."""
    await share(client)
    response = await client.delete(f"/v1/spaces/{CHAT}/media", headers=MANAGER)
    assert (await response.json())["media"] == 1
    await until_emptied(client)
    later = await share(client)
    assert await status_of(client, later) == "ready"
    response = await client.delete(f"/v1/spaces/{CHAT}/media", headers=MANAGER)
    assert (await response.json())["media"] == 1
    await until_emptied(client)


async def test_a_locked_media_is_skipped_not_waited_for(client: Client, settings: Settings) -> None:
    """A pass never waits on a row another transaction holds (a single delete, the reaper):
    it removes the rest and keeps the job; once the lock goes, the next pass ends it."""
    locked, free = await share(client), await share(client)
    deletions = SpaceDeletions(db=client.app[DB], storage=client.app[STORAGE], settings=settings)
    async with held_locks(settings.database_url) as held:
        await held.rows([locked])
        assert await deletions.start(CHAT, "test") == 2
        done = await asyncio.wait_for(deletions.run(CHAT), DEADLINE_S)
        assert (done.removed, done.finished) == (1, False)
        assert await space_rows(client) == {locked: "ready"}
        assert await status_of(client, free) is None
    done = await deletions.run(CHAT)
    assert (done.removed, done.finished) == (1, True)


async def test_a_job_a_node_left_is_finished_by_another(
    client: Client, settings: Settings, aiohttp_client: Any
) -> None:
    """A job recorded by a node that stopped before its first pass is finished by any other
    node's timer."""
    await share(client)
    await share(client)
    stopped = SpaceDeletions(db=client.app[DB], storage=client.app[STORAGE], settings=settings)
    assert await stopped.start(CHAT, "node-a") == 2
    await aiohttp_client(create_app(settings))  # a second node, never told of the job
    await until_emptied(client)


async def test_the_command_empties_a_space(
    client: Client, settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """`spaces delete --dry-run` counts; `spaces delete` removes and says how many."""
    ids = {await share(client), await share(client)}
    kept = await share(client, OTHER)
    for name, value in settings.to_env().items():
        monkeypatch.setenv(name, value)
    assert await asyncio.to_thread(cli.main, ["spaces", "delete", CHAT, "--dry-run"]) == 0
    assert said(capsys) == [f"space {CHAT}: 2 media would be removed"]
    assert set(await space_rows(client)) == ids
    assert await asyncio.to_thread(cli.main, ["spaces", "delete", CHAT]) == 0
    assert said(capsys) == [f"space {CHAT}: 2 of 2 media removed"]
    assert await space_rows(client) == {}
    assert not await job_left(client)
    assert set(await space_rows(client, OTHER)) == {kept}


def said(capsys: Any) -> list[str]:
    """The command's own lines on stdout (the app's log lines share it here)."""
    return [line for line in capsys.readouterr().out.splitlines() if line.startswith("space ")]


def test_the_token_command_lists_managed_spaces(
    monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    """`token SUB --manage SPACE` mints the manage claim the API checks."""
    monkeypatch.setenv("MEDIASVC_JWT_SECRET", JWT_SECRET)
    assert cli.main(["token", "mod", "--manage", CHAT]) == 0
    claims = jwt.decode(capsys.readouterr().out.strip(), JWT_SECRET, algorithms=["HS256"])
    assert claims["mediasvc_manage"] == [CHAT]
