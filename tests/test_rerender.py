"""Re-rendering (issue 29): after a kind's sizes change, `rerender` makes every ready
media's variants again from its kept source (or its largest variant), under new keys that
nginx serves, swaps them in one transaction with a `media.rerendered` event, and removes
the old files; a run that is interrupted leaves nothing the reaper and the next run do not
finish."""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing, asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import images
import pytest
import pyvips
from aiohttp import web
from gates import wait_until
from support import (
    Client,
    bearer,
    parametrize_backends,
    post_media,
    running_nginx,
    stored_keys,
    webhook_receiver,
)

from mediasvc.appkeys import DB, IMAGES, STORAGE
from mediasvc.config import Settings
from mediasvc.db import queries
from mediasvc.db.queries import RerenderSelection
from mediasvc.flows.processing import Processor
from mediasvc.flows.reaper import reap
from mediasvc.flows.rerender import Options, Rendered, Rerenderer
from mediasvc.keys import source_key, variant_key_pattern
from mediasvc.kinds import kind_rules
from mediasvc.ops.rerender import rerender
from mediasvc.storage import Storage, StoredFile

BEFORE = {
    "kept": {"keep_source": True, "sizes": {"small": 100, "big": 400}},
    "plain": {"sizes": {"small": 100, "big": 400}},
}
# The redesign: other names, other sizes, a larger top size than any stored variant.
AFTER = {
    "kept": {"keep_source": True, "sizes": {"thumb": 64, "card": 300, "hero": 1200}},
    "plain": {"sizes": {"thumb": 64, "card": 300, "hero": 1200}},
}
PHOTO = images.make_jpeg(width=1600, height=1200)


@pytest.fixture
async def hooks() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A webhook receiver: its URL and the events it got."""
    got: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        got.append(json.loads(await request.read()))
        return web.Response(text="ok")

    async with webhook_receiver(handle) as url:
        yield url, got


@pytest.fixture
def settings(make_settings: Any, hooks: tuple[str, list[dict[str, Any]]]) -> Settings:
    result: Settings = make_settings(
        kinds_table={"kinds": BEFORE},
        webhook_urls=(hooks[0],),
        webhook_secret=bytes(range(32)),
        webhook_backoff_s=0.01,
    )
    return result


@pytest.fixture
def redesigned(settings: Settings) -> Settings:
    """The same service after the operator changed the kinds file."""
    return replace(settings, kinds_table={"kinds": AFTER})


async def upload(client: Client, kind: str, data: bytes = PHOTO, **fields: str) -> dict[str, Any]:
    response = await post_media(client, data, kind=kind, **fields)
    assert response.status == 201, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def fetch(client: Client, media_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/media/{media_id}", headers=bearer())
    assert response.status == 200
    body: dict[str, Any] = await response.json()
    return body


async def run(settings: Settings, **options: Any) -> tuple[int, list[str]]:
    """The command, as `python -m mediasvc rerender` runs it; its status and lines."""
    out = io.StringIO()
    limit = options.pop("limit", None)
    selection = RerenderSelection(kind=options.pop("kind", None))
    status = await rerender(settings, selection, Options(**options), limit=limit, out=out)
    return status, out.getvalue().splitlines()


def outcomes(lines: list[str]) -> set[str]:
    """The media lines without their counters (media finish in any order)."""
    return {line.split("] ", 1)[1] for line in lines if line.startswith("[")}


def dimensions(data: bytes) -> tuple[int, int]:
    image = pyvips.Image.new_from_buffer(data, "")
    return image.width, image.height


async def live_keys(client: Client) -> list[str]:
    """Every key the rows point at (variants), and the kept sources."""
    rows = await client.app[DB].fetch("SELECT id, kind, variants FROM media")
    keys = [v["key"] for row in rows for v in row["variants"].values()]
    keys += [source_key(row["id"]) for row in rows if row["kind"] == "kept"]
    return sorted(keys)


@parametrize_backends
async def test_a_changed_ladder_is_rendered_anew_served_and_announced(
    client: Client,
    redesigned: Settings,
    http: aiohttp.ClientSession,
    hooks: tuple[str, list[dict[str, Any]]],
) -> None:
    """Each media gets the new ladder at new keys, served by nginx at the new sizes; the old
    files are gone, nothing is left listed for removal, and `media.rerendered` carries the
    new variants."""
    first, second = await upload(client, "kept"), await upload(client, "kept")
    old_urls = [v["url"] for media in (first, second) for v in media["variants"].values()]

    status, lines = await run(redesigned, kind="kept")

    assert status == 0, lines
    assert lines[0] == "2 ready media of kind kept"
    assert all(" rerendered from its source: " in line for line in lines[1:3]), lines
    assert lines[-1] == "summary: 2 rerendered"
    assert await stored_keys(client) == await live_keys(client)
    assert await client.app[DB].fetchval("SELECT count(*) FROM object_removals") == 0
    async with running_nginx(redesigned, [client.server.port]) as nginx:
        for media in (first, second):
            now = await fetch(client, media["id"])
            assert list(now["variants"]) == ["thumb", "card", "hero"]
            for name, size in AFTER["kept"]["sizes"].items():
                url = now["variants"][name]["url"]
                assert url not in old_urls
                async with http.get(nginx + url) as served:
                    assert served.status == 200
                    assert dimensions(await served.read()) == (size, size * 3 // 4)
        for url in old_urls:
            async with http.get(nginx + url) as served:
                assert served.status == 404
    await wait_until(
        lambda: len([e for e in hooks[1] if e["type"] == "media.rerendered"]) == 2,
        "both media.rerendered events",
    )
    announced = {e["data"]["id"]: e["data"] for e in hooks[1] if e["type"] == "media.rerendered"}
    assert list(announced[first["id"]]["variants"]) == ["thumb", "card", "hero"]


async def test_an_interrupted_run_is_finished_by_the_next(
    client: Client, redesigned: Settings
) -> None:
    """A run stopped after the first media leaves it done and the other as it was (served
    from its old files); the next run skips the first as up to date and does the other."""
    ids = sorted([(await upload(client, "kept"))["id"] for _ in range(2)])

    status, lines = await run(redesigned, limit=1)
    assert (status, lines[-1]) == (0, "summary: 1 rerendered")
    assert list((await fetch(client, ids[0]))["variants"]) == ["thumb", "card", "hero"]
    assert list((await fetch(client, ids[1]))["variants"]) == ["small", "big"]
    assert await stored_keys(client) == await live_keys(client)

    status, lines = await run(redesigned)
    assert outcomes(lines) == {
        f"{ids[0]} up to date, skipped",
        f"{ids[1]} rerendered from its source: thumb 64x48, card 300x225, hero 1200x900",
    }
    assert lines[-1] == "summary: 1 rerendered, 1 up to date"


class HeldStorage:
    """The app's storage, whose writes after the first `let_through` wait for `release`;
    `held` is set once those have been written and the next one waits."""

    def __init__(self, inner: Storage, let_through: int) -> None:
        self.inner, self.left, self.let_through, self.finished = inner, let_through, let_through, 0
        self.written = asyncio.Event() if let_through else _set_event()
        self.held = asyncio.Event()
        self.release = asyncio.Event()

    async def put(self, key: str, source: Path, content_type: str) -> None:
        if self.left <= 0:
            await self.written.wait()
            self.held.set()
            await self.release.wait()
        self.left -= 1
        await self.inner.put(key, source, content_type)
        self.finished += 1
        if self.finished == self.let_through:
            self.written.set()

    async def put_all(self, files: Sequence[StoredFile]) -> None:
        for file in files:
            await self.put(file.key, file.path, file.mime)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _set_event() -> asyncio.Event:
    event = asyncio.Event()
    event.set()
    return event


@asynccontextmanager
async def rerenderer(client: Client, settings: Settings, storage: Any) -> AsyncIterator[Rerenderer]:
    kinds = kind_rules(settings)
    yield Rerenderer(
        settings, client.app[DB], storage, Processor.for_kinds(client.app[IMAGES], kinds), kinds
    )


async def test_a_render_killed_mid_write_leaves_its_files_to_the_reaper(
    client: Client, redesigned: Settings
) -> None:
    """Stopped after two of its new files are written, before the swap: the media still has
    its old set, the written files are listed for removal and the reaper removes them once
    due; the next run renders it."""
    media = await upload(client, "kept")
    storage = HeldStorage(client.app[STORAGE], let_through=2)
    async with rerenderer(client, replace(redesigned, reaper_grace_s=0), storage) as flow:
        results = flow.run(RerenderSelection(), Options(), concurrency=1)

        async def first() -> Rendered:
            async with aclosing(results):
                return await anext(results)

        task = asyncio.create_task(first())
        await storage.held.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    written = [k for k in await stored_keys(client) if k not in await live_keys(client)]
    assert len(written) == 2
    assert list((await fetch(client, media["id"]))["variants"]) == ["small", "big"]

    report = await reap(client.app[DB], client.app[STORAGE], redesigned.spool_dir, grace_s=3600)
    # Every new key was listed before the writes began: the three sizes, two of them written.
    assert report.listed_removed == 3
    assert await stored_keys(client) == await live_keys(client)
    _, lines = await run(redesigned)
    assert lines[-1] == "summary: 1 rerendered"


async def test_a_media_changed_meanwhile_keeps_its_new_state(
    client: Client, redesigned: Settings
) -> None:
    """A render that started from variants the row no longer has (another run swapped
    first) does not swap, and removes its own files."""
    media_id = (await upload(client, "kept"))["id"]
    async with rerenderer(client, redesigned, client.app[STORAGE]) as flow:
        async with client.app[DB].acquire() as conn:
            stale = await queries.get_media(conn, media_id)
        assert stale is not None
        assert (await flow.one(stale, Options())).outcome == "rerendered"
        again = await flow.one(stale, Options())
    assert (again.outcome, again.detail) == ("changed", "changed while it was re-rendered")
    assert await stored_keys(client) == await live_keys(client)


async def test_media_without_a_source_are_skipped_or_rederived_from_the_largest(
    client: Client, redesigned: Settings
) -> None:
    """A kind that keeps no source: listed and skipped; with `from_largest` its largest
    variant (400 px) is the source, and the 1200 px size is not upscaled."""
    media = await upload(client, "plain")
    before = await stored_keys(client)

    status, lines = await run(redesigned)
    assert lines[1] == (
        f"[1/1] {media['id']} no source, skipped (--from-largest re-derives it from its "
        "largest variant): no kept source"
    )
    assert lines[-1] == "summary: 1 no source"
    assert await stored_keys(client) == before

    status, lines = await run(redesigned, from_largest=True)
    assert status == 0
    assert "rerendered from its largest variant" in lines[1]
    now = await fetch(client, media["id"])
    sizes = {name: (v["width"], v["height"]) for name, v in now["variants"].items()}
    assert sizes == {"thumb": (64, 48), "card": (300, 225), "hero": (400, 300)}
    # The upload's own report stays: what was done to the uploaded file.
    assert now["original"]["width"] == 1600
    assert await stored_keys(client) == await live_keys(client)


async def test_a_dry_run_lists_what_would_change_and_changes_nothing(
    client: Client, redesigned: Settings
) -> None:
    """Every line says what would happen; rows, files and events stay as they were."""
    kept, plain = await upload(client, "kept"), await upload(client, "plain")
    rows = await client.app[DB].fetch("SELECT * FROM media ORDER BY id")
    keys = await stored_keys(client)
    events = await client.app[DB].fetchval("SELECT count(*) FROM events")

    status, lines = await run(redesigned, dry_run=True, from_largest=True)
    assert status == 0

    assert lines[0] == "dry run, nothing is changed: 2 ready media"
    assert outcomes(lines) == {
        f"{kept['id']} would rerender from its source",
        f"{plain['id']} would rerender from its largest variant",
    }
    assert lines[-1] == "summary: 2 would rerender"
    assert await client.app[DB].fetch("SELECT * FROM media ORDER BY id") == rows
    assert await stored_keys(client) == keys
    assert await client.app[DB].fetchval("SELECT count(*) FROM events") == events


def test_nginx_serves_both_layouts_and_nothing_else() -> None:
    """Untagged names (as uploaded) and tagged ones (re-rendered); not a bad tag."""
    pattern = re.compile(variant_key_pattern(["thumb"]))
    prefix = f"k3/{'k3' + 'a' * 20}/"
    assert pattern.fullmatch(prefix + "thumb.webp")
    assert pattern.fullmatch(prefix + "thumb.0f3a9c2e.avif")
    assert not pattern.fullmatch(prefix + "thumb.0F3A9C2E.webp")
    assert not pattern.fullmatch(prefix + "thumb.0f3a9c2e.tmp")
    assert not pattern.fullmatch(prefix + ".thumb.0f3a9c2e.webp.1234.tmp")
