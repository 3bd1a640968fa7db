"""Races forced, not hoped for: each test holds a lock from a second connection (as the
competing flow would), starts the flow under test, and checks that it either finishes
without that lock or queues on it and then comes out right (docs/decisions.md, lock order).

Every interleaving here deadlocked, or answered 500, before the lock order was one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import images
import pytest
from gates import DEADLINE_S
from locks import HeldLocks, held_locks, until_waiting
from support import (
    Client,
    assert_one_media_left,
    bearer,
    collection_positions,
    post_media,
    stored_keys,
    through_pgbouncer,
    upload_form,
)

from mediasvc.appkeys import DB, STORAGE
from mediasvc.config import Settings
from mediasvc.db import queries
from mediasvc.errors import InvalidImage
from mediasvc.flows.processing import Processor
from mediasvc.flows.reaper import reap
from mediasvc.imaging.job import Facts

T = TypeVar("T")

TINY = images.make_tiny()


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """Room for many concurrent uploads of one owner; a collection of ten; avatars replace."""
    result: Settings = make_settings(
        queue_max=64,
        collection_max=10,
        kinds_table={"kinds": {"avatar": {"collection_max": 1, "replace": True}}},
    )
    return result


async def finished(work: Awaitable[T]) -> T:
    """`work`'s result; fails the test if it is still waiting at the deadline (it must not
    need the lock the test holds)."""
    return await asyncio.wait_for(work, DEADLINE_S)


async def queued_then_released(
    settings: Settings, hold: Callable[[HeldLocks], Awaitable[None]], requests: list[Any]
) -> list[Any]:
    """Start `requests` while `hold` holds a lock, wait until each waits for a lock (its
    flow is queued), release, and return their responses."""
    async with held_locks(settings.database_url) as held:
        await hold(held)
        answers = asyncio.gather(*requests)
        await until_waiting(settings.database_url, len(requests))
        await held.release()
        return list(await finished(answers))


async def upload(client: Client, **fields: str) -> Any:
    return await post_media(client, TINY, filename="t.png", **fields)


async def fill(client: Client, count: int, collection: str = "gallery") -> list[str]:
    ids = []
    for _ in range(count):
        response = await upload(client, collection=collection)
        assert response.status == 201, await response.text()
        ids.append((await response.json())["id"])
    return ids


async def statuses(client: Client) -> list[str]:
    return [row["status"] for row in await client.app[DB].fetch("SELECT status FROM media")]


class TestRemovalsTakeNoCollectionLock:
    async def test_eight_deletes_in_one_gallery_all_204_and_positions_stay_dense(
        self, client: Client, settings: Settings
    ) -> None:
        """ "Select all, delete" on 8 of 10 photos while a reorder holds the gallery: every
        delete answers 204 without waiting for it, and the two left are at 0 and 1."""
        ids = await fill(client, 10)
        async with held_locks(settings.database_url) as held:
            await held.collection("alice", "gallery")
            deletes = [client.delete(f"/v1/media/{i}", headers=bearer()) for i in ids[:8]]
            responses = await finished(asyncio.gather(*deletes))
        assert [r.status for r in responses] == [204] * 8
        assert await collection_positions(client, "gallery") == [(ids[8], 0), (ids[9], 1)]
        assert not [key for key in await stored_keys(client) if any(i in key for i in ids[:8])]

    async def test_a_failed_upload_is_undone_while_a_reorder_holds_the_gallery(
        self, client: Client, settings: Settings, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An upload that fails in processing after its row was inserted is undone (422,
        no row) while another transaction holds the collection lock."""
        reached, fail = asyncio.Event(), asyncio.Event()

        async def failing_run(self: Processor, kind: str, source: Path, *args: Any) -> Facts:
            reached.set()
            await fail.wait()
            raise InvalidImage("The test's decoder refused the file.")

        (kept,) = await fill(client, 1)
        monkeypatch.setattr(Processor, "run", failing_run)
        pending = asyncio.ensure_future(upload(client, collection="gallery"))
        await finished(reached.wait())
        async with held_locks(settings.database_url) as held:
            await held.collection("alice", "gallery")
            fail.set()
            response = await finished(pending)
            assert response.status == 422
            # The reorder that holds the lock now touches the gallery's rows: nothing waits.
            await finished(queries.reorder(held.conn, "alice", "gallery", [kept]))
            await held.release(commit=True)
        assert await collection_positions(client, "gallery") == [(kept, 0)]

    async def test_a_refused_session_body_is_discarded_while_a_reorder_holds_the_gallery(
        self, client: Client, settings: Settings
    ) -> None:
        """A signed PUT of bytes that are not an image gets 415 and removes its pending
        session while another transaction holds the collection lock and then reorders."""
        (kept,) = await fill(client, 1)
        response = await client.post(
            "/v1/uploads",
            json={"kind": "post", "content_type": "image/png", "size": 64, "collection": "gallery"},
            headers=bearer(),
        )
        assert response.status == 201, await response.text()
        session = await response.json()
        async with held_locks(settings.database_url) as held:
            await held.collection("alice", "gallery")
            put = client.put(session["upload"]["url"], data=b"not an image" * 5)
            assert (await finished(put)).status == 415
            await finished(queries.reorder(held.conn, "alice", "gallery", [kept]))
            await held.release(commit=True)
        assert await statuses(client) == ["ready"]
        assert await collection_positions(client, "gallery") == [(kept, 0)]

    async def test_the_reaper_purges_a_gallery_while_its_lock_is_held(
        self, client: Client, settings: Settings
    ) -> None:
        """Rows of a gallery stuck in processing and deleting are purged by the reaper while
        the gallery's lock is held; the ready items keep dense positions."""
        ids = await fill(client, 4)
        await client.app[DB].execute(
            "UPDATE media SET status = CASE WHEN id = $1 THEN 'processing' ELSE 'deleting' END,"
            " updated_at = now() - interval '1 hour' WHERE id = ANY($2::text[])",
            ids[0],
            ids[:3],
        )
        async with held_locks(settings.database_url) as held:
            await held.collection("alice", "gallery")
            report = await finished(
                reap(client.app[DB], client.app[STORAGE], settings.spool_dir, grace_s=60)
            )
        assert report.rows_removed == 3
        assert report.errors == []
        assert await collection_positions(client, "gallery") == [(ids[3], 0)]


class TestQueuedOnTheLockThenRight:
    async def test_replacing_uploads_queued_on_the_avatar_lock_leave_exactly_one(
        self, client: Client, settings: Settings
    ) -> None:
        """Five avatars that all wait for the avatar collection's lock, then run one after
        another: all 201, one ready avatar left with only its own files."""
        responses = await queued_then_released(
            settings,
            lambda held: held.collection("alice", "avatar"),
            [upload(client, kind="avatar") for _ in range(5)],
        )
        assert [r.status for r in responses] == [201] * 5
        await assert_one_media_left(client)

    @through_pgbouncer
    async def test_uploads_queued_on_a_full_collection_make_exactly_the_cap(
        self, client: Client, settings: Settings
    ) -> None:
        """Eight uploads queued on a collection of ten holding six: four 201, four 409 (eight:
        each waits on one of the app's ten pooled connections)."""
        await fill(client, 6)
        responses = await queued_then_released(
            settings,
            lambda held: held.collection("alice", "gallery"),
            [upload(client, collection="gallery") for _ in range(8)],
        )
        assert sorted(r.status for r in responses) == [201] * 4 + [409] * 4
        positions = await collection_positions(client, "gallery")
        assert [p for _, p in positions] == list(range(10))

    async def test_a_reused_expired_idempotency_key_queued_behind_a_reorder(
        self, client: Client, settings: Settings
    ) -> None:
        """An upload reusing an expired Idempotency-Key of a gallery item queues on the
        gallery's lock without holding that item's row, so the reorder holding the lock
        updates the row and commits, and the upload then makes a new media."""
        key = {"Idempotency-Key": "same-key"}
        first = await client.post(
            "/v1/media",
            data=upload_form(TINY, filename="t.png", collection="gallery"),
            headers={**bearer(), **key},
        )
        old = (await first.json())["id"]
        await client.app[DB].execute(
            "UPDATE media SET created_at = now() - interval '25 hours' WHERE id = $1", old
        )
        async with held_locks(settings.database_url) as held:
            await held.collection("alice", "gallery")
            again = asyncio.ensure_future(
                client.post(
                    "/v1/media",
                    data=upload_form(TINY, filename="t.png", collection="gallery"),
                    headers={**bearer(), **key},
                )
            )
            await until_waiting(settings.database_url, 1)
            # The reorder's update of the old item must not wait on the queued upload.
            await finished(queries.reorder(held.conn, "alice", "gallery", [old]))
            await held.release(commit=True)
            response = await finished(again)
        assert response.status == 201, await response.text()
        assert (await response.json())["id"] != old
        assert [p for _, p in await collection_positions(client, "gallery")] == [0, 1]


class TestQuotaQueue:
    @pytest.fixture
    def settings(self, make_settings: Callable[..., Settings]) -> Settings:
        """Room for two media per owner, and for many concurrent uploads."""
        result: Settings = make_settings(queue_max=64, owner_max_media=2)
        return result

    async def test_uploads_queued_on_the_owner_lock_cannot_pass_the_quota(
        self, client: Client, settings: Settings
    ) -> None:
        """Six uploads queued on the owner's quota lock with room for two: two 201, four 409."""
        responses = await queued_then_released(
            settings, lambda held: held.owner("alice"), [upload(client) for _ in range(6)]
        )
        assert sorted(r.status for r in responses) == [201] * 2 + [409] * 4
        assert await statuses(client) == ["ready", "ready"]
