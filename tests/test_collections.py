"""Collections: the cap under concurrency, atomic reorders, and listing with cursors."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from support import Client, bearer, collection_positions, through_pgbouncer, upload_tiny

from mediasvc.config import Settings


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    """Room in the queue for the concurrent tests below (tiny images, quick jobs)."""
    result: Settings = make_settings(queue_max=64, collection_max=5)
    return result


async def fill(client: Client, count: int, collection: str = "profile") -> list[str]:
    """Upload `count` items into a collection one by one; their ids in upload order."""
    ids = []
    for _ in range(count):
        response = await upload_tiny(client, collection=collection)
        assert response.status == 201
        ids.append((await response.json())["id"])
    return ids


async def open_session(client: Client, **members: Any) -> str:
    """Open an upload session into the `profile` collection; its id."""
    body = {
        "kind": "post",
        "content_type": "image/png",
        "size": 100,
        "collection": "profile",
        **members,
    }
    opened = await client.post("/v1/uploads", json=body, headers=bearer())
    assert opened.status == 201, await opened.text()
    session_id: str = (await opened.json())["id"]
    return session_id


class TestCap:
    async def test_sixth_item_is_409_collection_full(self, client: Client) -> None:
        """The cap counts live items; the refusal names the limit."""
        await fill(client, 5)
        response = await upload_tiny(client, collection="profile")
        assert response.status == 409
        problem = await response.json()
        assert problem["code"] == "collection_full"
        assert problem["limit"] == 5

    @through_pgbouncer
    async def test_twenty_concurrent_uploads_into_a_collection_of_five_make_exactly_five(
        self, client: Client
    ) -> None:
        """The cap is checked in the insert's transaction, so races cannot exceed it."""
        responses = await asyncio.gather(
            *(upload_tiny(client, collection="profile") for _ in range(20))
        )
        statuses = sorted(r.status for r in responses)
        assert statuses == [201] * 5 + [409] * 15
        rows = await collection_positions(client, "profile")
        assert [p for _, p in rows] == [0, 1, 2, 3, 4]

    async def test_collections_are_per_owner(self, client: Client) -> None:
        """Bob's 'profile' is not Alice's."""
        await fill(client, 5)
        assert (await upload_tiny(client, "bob", collection="profile")).status == 201


class TestOrder:
    async def test_items_not_ready_may_be_left_out_and_follow_the_listed_ones(
        self, client: Client
    ) -> None:
        """With two ready items and an open session, listing only the ready ones reverses
        them and puts the session after; leaving a ready one out is 409."""
        first, second = await fill(client, 2)
        pending = await open_session(client)
        path = "/v1/collections/profile/order"
        response = await client.put(path, json={"ids": [second, first]}, headers=bearer())
        assert response.status == 200
        assert (await response.json())["ids"] == [second, first, pending]
        assert await collection_positions(client, "profile") == [
            (second, 0),
            (first, 1),
            (pending, 2),
        ]
        response = await client.put(path, json={"ids": [pending, first]}, headers=bearer())
        assert response.status == 409
        response = await client.put(path, json={"ids": [first, pending, second]}, headers=bearer())
        assert response.status == 200
        assert await collection_positions(client, "profile") == [
            (first, 0),
            (pending, 1),
            (second, 2),
        ]

    async def test_an_upload_or_a_session_may_choose_its_position(self, client: Client) -> None:
        """`position` puts a new item there and moves the later ones one on, for a form
        upload and an upload session alike; past the end it appends; without a collection
        it is 400."""
        a, b = await fill(client, 2)
        first = await upload_tiny(client, collection="profile", position="0")
        assert first.status == 201
        front = (await first.json())["id"]
        middle = await open_session(client, position=2)
        last = await upload_tiny(client, collection="profile", position="99")
        end = (await last.json())["id"]
        assert [i for i, _ in await collection_positions(client, "profile")] == [
            front,
            a,
            middle,
            b,
            end,
        ]
        nowhere = await upload_tiny(client, position="1")
        assert nowhere.status == 400
        assert (await nowhere.json())["field"] == "position"

    async def test_reorder_applies_the_permutation(self, client: Client) -> None:
        """Positions follow the order given; the answer echoes it."""
        ids = await fill(client, 4)
        wanted = [ids[2], ids[0], ids[3], ids[1]]
        response = await client.put(
            "/v1/collections/profile/order", json={"ids": wanted}, headers=bearer()
        )
        assert response.status == 200
        assert await response.json() == {"collection": "profile", "ids": wanted}
        assert await collection_positions(client, "profile") == [
            (i, n) for n, i in enumerate(wanted)
        ]

    @pytest.mark.parametrize(
        "change",
        [lambda ids: ids[:-1], lambda ids: [*ids, ids[0]], lambda ids: [*ids[:-1], "x" * 22]],
        ids=["missing", "duplicate", "foreign"],
    )
    async def test_anything_but_a_permutation_is_409_and_changes_nothing(
        self, client: Client, change: Any
    ) -> None:
        """Missing, repeated or foreign ids are refused as a whole."""
        ids = await fill(client, 3)
        before = await collection_positions(client, "profile")
        response = await client.put(
            "/v1/collections/profile/order", json={"ids": change(ids)}, headers=bearer()
        )
        assert response.status == 409
        assert (await response.json())["code"] == "conflict"
        assert await collection_positions(client, "profile") == before

    @pytest.mark.parametrize("body", ["not json", '{"ids": "abc"}', "[1, 2]", '{"ids": [1]}'])
    async def test_malformed_bodies_are_400(self, client: Client, body: str) -> None:
        """The body must be {"ids": [strings]}."""
        await fill(client, 1)
        response = await client.put(
            "/v1/collections/profile/order",
            data=body,
            headers={**bearer(), "Content-Type": "application/json"},
        )
        assert response.status == 400

    async def test_unknown_collection_is_404(self, client: Client) -> None:
        """Nothing to reorder in a collection that does not exist (for this owner)."""
        await fill(client, 2)
        response = await client.put(
            "/v1/collections/profile/order", json={"ids": []}, headers=bearer("bob")
        )
        assert response.status == 404

    async def test_concurrent_reorders_serialise(self, client: Client) -> None:
        """Ten racing reorders: the final order is exactly one of them, positions dense."""
        ids = await fill(client, 5)
        orders = [random.sample(ids, len(ids)) for _ in range(10)]
        responses = await asyncio.gather(
            *(
                client.put("/v1/collections/profile/order", json={"ids": o}, headers=bearer())
                for o in orders
            )
        )
        assert all(r.status == 200 for r in responses)
        final = await collection_positions(client, "profile")
        assert [p for _, p in final] == [0, 1, 2, 3, 4]
        assert [i for i, _ in final] in orders

    async def test_admin_may_reorder_anothers_collection_and_others_may_not(
        self, client: Client
    ) -> None:
        """?owner= is for admins only."""
        ids = await fill(client, 2)
        path = "/v1/collections/profile/order?owner=alice"
        body = {"ids": ids[::-1]}
        assert (await client.put(path, json=body, headers=bearer("bob"))).status == 403
        assert (await client.put(path, json=body, headers=bearer("root", admin=True))).status == 200


class TestListing:
    async def test_collection_pages_follow_position_order_each_item_once(
        self, client: Client
    ) -> None:
        """Pages of 2 over 5 items give every item once, in position order."""
        ids = await fill(client, 5)
        seen, cursor = [], None
        while True:
            query = "collection=profile&limit=2" + (f"&cursor={cursor}" if cursor else "")
            page = await (await client.get(f"/v1/media?{query}", headers=bearer())).json()
            seen += [item["id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == ids

    async def test_a_delete_while_paging_skips_nothing(self, client: Client) -> None:
        """Deleting an item already seen does not make the next page skip one."""
        ids = await fill(client, 5)
        first = await (
            await client.get("/v1/media?collection=profile&limit=2", headers=bearer())
        ).json()
        assert [item["id"] for item in first["items"]] == ids[:2]
        assert (await client.delete(f"/v1/media/{ids[0]}", headers=bearer())).status == 204
        query = f"collection=profile&limit=2&cursor={first['next_cursor']}"
        second = await (await client.get(f"/v1/media?{query}", headers=bearer())).json()
        assert [(item["id"], item["position"]) for item in second["items"]] == [
            (ids[2], 1),
            (ids[3], 2),
        ]

    async def test_pagination_is_stable_under_concurrent_inserts(self, client: Client) -> None:
        """Items added while paging appear after the ones already seen, never twice."""
        first = await fill(client, 3, "gallery")
        page = await (
            await client.get("/v1/media?collection=gallery&limit=2", headers=bearer())
        ).json()
        added = await fill(client, 2, "gallery")
        rest = await (
            await client.get(
                f"/v1/media?collection=gallery&limit=10&cursor={page['next_cursor']}",
                headers=bearer(),
            )
        ).json()
        seen = [i["id"] for i in page["items"]] + [i["id"] for i in rest["items"]]
        assert seen == first + added

    async def test_without_collection_newest_first_and_only_own(self, client: Client) -> None:
        """The plain listing is the caller's media, newest first, across pages."""
        mine = [(await (await upload_tiny(client)).json())["id"] for _ in range(3)]
        await upload_tiny(client, "bob")
        first = await (await client.get("/v1/media?limit=2", headers=bearer())).json()
        second = await (
            await client.get(f"/v1/media?limit=2&cursor={first['next_cursor']}", headers=bearer())
        ).json()
        listed = [i["id"] for i in first["items"] + second["items"]]
        assert listed == mine[::-1]
        assert second["next_cursor"] is None

    @pytest.mark.parametrize(
        "query", ["limit=0", "limit=101", "limit=x", "cursor=%%%", "cursor=WzFd"]
    )
    async def test_bad_paging_parameters_are_400(self, client: Client, query: str) -> None:
        """Out-of-range limits and forged cursors are refused."""
        response = await client.get(f"/v1/media?{query}", headers=bearer())
        assert response.status == 400

    async def test_listing_needs_a_token(self, client: Client) -> None:
        """There is no anonymous listing."""
        assert (await client.get("/v1/media")).status == 401
