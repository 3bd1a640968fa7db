"""A randomized concurrency check (issue 24): many clients against two app nodes that share
one PostgreSQL and one media directory, one node killed mid-run, the reaper running
throughout on both, webhooks on; then the invariants that must hold whatever interleaving
the run took.

The run is drawn from a seed: `MEDIASVC_RACE_SEED`, else a fresh one, printed. Every
failure message names it; replay with

    MEDIASVC_RACE_SEED=<seed> .venv/bin/python -m pytest tests/test_concurrency_check.py

The seed fixes what each client does (its operations, their options and bytes, the node
each request goes to), which node dies and after how many operations. Which request wins a
race is the machine's: that is why the check is worth running with many seeds.

What a client may be answered while the run goes on: each operation lists its answers by
status and code (`Run.call`); `503 busy` with a `Retry-After` from a live node is allowed a
few times; from the node being killed anything goes (no answer, or any 5xx), and such a
request's outcome is unknown to the test. The invariants, once traffic stopped, the
surviving node's reaper made a last pass with no grace and every webhook was delivered,
are in `check`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import images
import pytest
import structlog
from aiohttp import web
from gates import wait_until
from standardwebhooks import Webhook, WebhookVerificationError
from support import Client, bearer, serving, upload_form

from mediasvc.app import create_app
from mediasvc.appkeys import DB, SETTINGS, STORAGE, UPLOADS
from mediasvc.config import Settings
from mediasvc.flows.reaper import reap
from mediasvc.keys import media_id_of, upload_key

CLIENTS = 16
OPERATIONS = 300
# Traffic ends well inside the test's timeout; running longer is a finding (a hang).
RUN_BOUND_S = 40.0
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=20)
# The background reaper's grace: longer than any request of this run takes (the slowest
# answer is printed; about 1 s here), so it never takes a live request's row or spool file
# (what a grace is for); short enough, with the kill in the first quarter of the run, that
# the killed node's leftovers are often reaped while traffic still runs (else by the last pass).
GRACE_S = 3.0
# Operations between two background reaper passes (on a node drawn each time).
REAP_EVERY = 4
GALLERY, GALLERY_MAX = "gallery", 4
AVATARS = "avatar"
KINDS = {"avatar": {"crop": "square", "collection_max": 1, "replace": True}}
# Idempotency-Keys the clients share, each always sent with its own file.
KEYED_FILES = {f"key-{n}": images.make_tiny(size=9 + n) for n in range(3)}
# `503 busy` (with Retry-After) from a live node: allowed, but more is a finding.
BUSY_ALLOWED = 3
# How often the receiver refuses a delivery it has not accepted yet, so retries run too.
REFUSE = 1 / 8

WEBHOOK_KEY = bytes(range(32))
WEBHOOK_SECRET = "whsec_" + base64.b64encode(WEBHOOK_KEY).decode()


# --- the webhook receiver -------------------------------------------------------------------


@dataclass
class Receiver:
    """Records every delivery that verifies the Standard Webhooks way, first acceptance of
    each `webhook-id` only (delivery is at least once)."""

    rng: random.Random
    url: str = ""
    # Event id -> verified payload, in the order they were first accepted.
    accepted: dict[str, dict[str, Any]] = field(default_factory=dict)
    unverified: list[str] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            payload = Webhook(WEBHOOK_SECRET).verify(body, dict(request.headers))
        except WebhookVerificationError:
            self.unverified.append(request.headers.get("webhook-id", "(no id)"))
            return web.Response(status=400)
        event_id = request.headers["webhook-id"]
        if event_id not in self.accepted and self.rng.random() < REFUSE:
            return web.Response(status=503)
        self.accepted.setdefault(event_id, payload)
        return web.Response(status=204)

    def by_media(self) -> dict[str, list[dict[str, Any]]]:
        """Each media's accepted events, in acceptance (which is recording) order."""
        found: dict[str, list[dict[str, Any]]] = {}
        for payload in self.accepted.values():
            found.setdefault(payload["data"]["id"], []).append(payload)
        return found


def receiving(rng: random.Random) -> AbstractAsyncContextManager[Receiver]:
    """A receiver on a free loopback port."""
    return serving(Receiver(rng))


# --- the run --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """What a request got: its status and JSON body, or None for both when the answer is
    unknown (a request to the node being killed)."""

    status: int | None
    body: Any = None


@dataclass
class Run:
    """The shared state of one run: the nodes, what the clients were answered, and what the
    test knows must have happened because of it."""

    seed: int
    database_url: str
    nodes: list[Client]
    victim: int
    kill_at: int
    killed: asyncio.Event = field(default_factory=asyncio.Event)
    traffic_over: bool = False
    started: int = 0
    done: int = 0
    reaps: asyncio.Queue[bool] = field(default_factory=asyncio.Queue)
    # Media the test was answered as ready (201, or 200 for a replay), and their kinds.
    ready: dict[str, str] = field(default_factory=dict)
    # Answered 204 to a DELETE of a ready media; a DELETE that got no answer.
    deleted: set[str] = field(default_factory=set)
    maybe_deleted: set[str] = field(default_factory=set)
    # Upload sessions opened; cancelled (204 to their DELETE); completed without an answer.
    sessions: set[str] = field(default_factory=set)
    cancelled: set[str] = field(default_factory=set)
    unsure: set[str] = field(default_factory=set)
    # Requests that could have made a media but got no answer (the killed node's).
    lost: int = 0
    # Old id -> the id whose upload answer said it replaced it.
    said_replaced: dict[str, str] = field(default_factory=dict)
    answers: Counter[tuple[str, str]] = field(default_factory=Counter)
    busy: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    slowest_s: float = 0.0
    inflight_at_kill: int = 0
    killed_after: int = 0
    victim_shutdown: str | None = None
    reaped: Counter[str] = field(default_factory=Counter)

    def take(self) -> bool:
        """Claim one operation of the run's budget; False once it is spent."""
        if self.started >= OPERATIONS or self.traffic_over:
            return False
        self.started += 1
        return True

    def finished(self) -> None:
        self.done += 1
        if self.done % REAP_EVERY == 0:
            self.reaps.put_nowait(True)

    def pick(self, draw: float) -> int:
        """The node a request goes to: drawn, or the survivor once the other is killed
        (one draw either way, so a client's later draws do not depend on when it died)."""
        node = 0 if draw < 0.5 else 1
        return 1 - self.victim if self.killed.is_set() else node

    def dying(self, node: int) -> bool:
        return node == self.victim and self.killed.is_set()

    async def call(
        self, op: str, draw: float, method: str, path: str, allowed: Collection[str], **kw: Any
    ) -> Reply:
        """Send one request to a drawn node; note any answer not in `allowed` (each "status"
        or "status code") as a problem, unless it comes from the node being killed."""
        node = self.pick(draw)
        client = self.nodes[node]  # no await between pick and send: the node is alive
        started = asyncio.get_running_loop().time()
        try:
            async with client.request(method, path, timeout=REQUEST_TIMEOUT, **kw) as response:
                status = response.status
                text = await response.text()
                retry_after = response.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError, RuntimeError) as exc:
            # RuntimeError: the test client's session was closed with its node.
            return self._no_answer(op, node, repr(exc))
        self.slowest_s = max(self.slowest_s, asyncio.get_running_loop().time() - started)
        try:
            body = json.loads(text) if text else None
        except ValueError:
            body = {"text": text[:200]}
        if status >= 500 and self.dying(node):
            return self._no_answer(op, node, f"{status} {body}")
        code = body.get("code") if isinstance(body, dict) else None
        self.answers[op, f"{status} {code}" if code else str(status)] += 1
        if status == 503 and retry_after:
            self.busy.append(f"{op} on node {node}: 503 {body}")
        elif str(status) not in allowed and f"{status} {code}" not in allowed:
            self.problems.append(f"{op} {method} {path} on node {node}: {status} {body}")
        return Reply(status, body)

    def _no_answer(self, op: str, node: int, what: str) -> Reply:
        self.answers[op, "no answer (killed node)" if self.dying(node) else "no answer"] += 1
        if not self.dying(node):
            self.problems.append(f"{op} on live node {node}: no answer: {what}")
        return Reply(None)

    def saw_ready(self, op: str, body: dict[str, Any]) -> None:
        if body.get("status") != "ready":
            self.problems.append(f"{op} answered a media that is not ready: {body}")
        self.ready[body["id"]] = body["kind"]
        for old in body.get("replaced", ()):
            self.said_replaced[old] = body["id"]


# --- what clients do --------------------------------------------------------------------------


async def form_upload(run: Run, rng: random.Random) -> None:
    """A multipart upload: plain, into the capped gallery, or an avatar (which replaces)."""
    where, size, node = rng.random(), rng.randint(8, 24), rng.random()
    if where < 0.35:
        op, fields, allowed = "upload", {}, {"201"}
    elif where < 0.7:
        op, fields, allowed = (
            "upload to gallery",
            {"collection": GALLERY},
            {"201", "409 collection_full"},
        )
    else:
        op, fields, allowed = "upload avatar", {"kind": "avatar"}, {"201"}
    form = upload_form(
        images.make_tiny(size=size), filename="t.png", content_type="image/png", **fields
    )
    reply = await run.call(op, node, "POST", "/v1/media", allowed, data=form, headers=bearer())
    if reply.status is None:
        run.lost += 1
    elif reply.status == 201:
        run.saw_ready(op, reply.body)


async def keyed_upload(run: Run, rng: random.Random) -> None:
    """An upload with one of a few shared Idempotency-Keys, always with that key's file."""
    key, node = rng.choice(sorted(KEYED_FILES)), rng.random()
    form = upload_form(KEYED_FILES[key], filename="t.png", content_type="image/png")
    reply = await run.call(
        "keyed upload",
        node,
        "POST",
        "/v1/media",
        # 200: a replay of the ready media; 409: the key's media is still being made or
        # being deleted.
        {"201", "200", "409 idempotency_in_progress"},
        data=form,
        headers={**bearer(), "Idempotency-Key": key},
    )
    if reply.status is None:
        run.lost += 1
    elif reply.status in (200, 201):
        run.saw_ready("keyed upload", reply.body)


async def session_upload(run: Run, rng: random.Random) -> None:
    """An upload session: open, PUT the bytes to the signed URL, complete; some cancelled
    (DELETE) before or after the bytes, some abandoned with their bytes sent."""
    where, fate, size = rng.random(), rng.random(), rng.randint(8, 24)
    nodes = [rng.random() for _ in range(3)]
    data = images.make_tiny(size=size)
    asked: dict[str, Any] = {"kind": "post", "content_type": "image/png", "size": len(data)}
    allowed = {"201"}
    if where < 0.3:
        asked["collection"] = GALLERY
        allowed.add("409 collection_full")
    elif where < 0.5:
        asked["kind"] = "avatar"
    opened = await run.call(
        "open session", nodes[0], "POST", "/v1/uploads", allowed, json=asked, headers=bearer()
    )
    if opened.status is None:
        run.lost += 1
    if opened.status != 201:
        return
    media_id = opened.body["id"]
    run.sessions.add(media_id)
    if fate < 0.15:
        await cancel_session(run, media_id, nodes[1])
        return
    upload = opened.body["upload"]
    sent = await run.call(
        "send session bytes",
        nodes[1],
        "PUT",
        upload["url"],
        {"204"},
        data=data,
        headers=upload["headers"],
    )
    if sent.status != 204:
        return
    if fate < 0.3:
        await cancel_session(run, media_id, nodes[2])
        return
    if fate < 0.37:
        return  # abandoned: stays pending, with its raw object, until it expires
    done = await run.call(
        "complete session",
        nodes[2],
        "POST",
        f"/v1/uploads/{media_id}/complete",
        {"201"},
        headers=bearer(),
    )
    if done.status is None:
        run.unsure.add(media_id)
    elif done.status == 201:
        run.saw_ready("complete session", done.body)


async def cancel_session(run: Run, media_id: str, node: float) -> None:
    reply = await run.call(
        "cancel session", node, "DELETE", f"/v1/media/{media_id}", {"204"}, headers=bearer()
    )
    if reply.status == 204:
        run.cancelled.add(media_id)


async def reorder(run: Run, rng: random.Random) -> None:
    """List a collection (the listing must be dense and within the cap at any moment), then
    PUT it back in a shuffled order; membership may have changed meanwhile (409)."""
    collection = GALLERY if rng.random() < 0.8 else AVATARS
    nodes, shuffle = [rng.random(), rng.random()], random.Random(rng.random())  # noqa: S311
    listing = await run.call(
        f"list {collection}",
        nodes[0],
        "GET",
        f"/v1/media?collection={collection}&limit=100",
        {"200"},
        headers=bearer(),
    )
    if listing.status != 200:
        return
    items = listing.body["items"]
    run.problems += [f"mid-run: {fault}" for fault in listing_faults(collection, items)]
    ids = [item["id"] for item in items]
    if not ids:
        return
    shuffle.shuffle(ids)
    await run.call(
        f"reorder {collection}",
        nodes[1],
        "PUT",
        f"/v1/collections/{collection}/order",
        # 404: every item went meanwhile; 409: the membership changed meanwhile.
        {"200", "409 conflict", "404 not_found"},
        json={"ids": ids},
        headers=bearer(),
    )


async def delete(run: Run, rng: random.Random) -> None:
    """Delete a media the test saw ready (it may be gone or going already)."""
    pick, node = rng.random(), rng.random()
    candidates = sorted(run.ready.keys() - run.deleted)
    if not candidates:
        return
    media_id = candidates[int(pick * len(candidates))]
    reply = await run.call(
        "delete",
        node,
        "DELETE",
        f"/v1/media/{media_id}",
        # 404: deleted or replaced already; 409: being deleted right now.
        {"204", "404 not_found", "409 conflict"},
        headers=bearer(),
    )
    if reply.status == 204:
        run.deleted.add(media_id)
    elif reply.status is None:
        run.maybe_deleted.add(media_id)


Operation = Callable[[Run, random.Random], Awaitable[None]]
OPERATION_WEIGHTS: dict[Operation, float] = {
    form_upload: 40,
    keyed_upload: 10,
    session_upload: 22,
    reorder: 13,
    delete: 15,
}


async def client(run: Run, index: int) -> None:
    """One client: operations drawn from its own generator until the budget is spent."""
    rng = random.Random(f"{run.seed}/{index}")  # noqa: S311 (a replayable draw, not a secret)
    ops, weights = list(OPERATION_WEIGHTS), list(OPERATION_WEIGHTS.values())
    while run.take():
        await rng.choices(ops, weights)[0](run, rng)
        run.finished()


async def reaper(run: Run) -> None:
    """A reaper pass with a small grace every few operations, on a node drawn each time."""
    rng = random.Random(f"{run.seed}/reaper")  # noqa: S311
    while await run.reaps.get():
        node = run.pick(rng.random())
        app = run.nodes[node].app
        try:
            report = await reap(app[DB], app[STORAGE], app[SETTINGS].spool_dir, grace_s=GRACE_S)
        except Exception as exc:  # any failure of a live node's reaper is a finding
            if not run.dying(node):
                run.problems.append(f"the reaper on node {node} raised {exc!r}")
            continue
        if report.errors and not run.dying(node):
            run.problems.append(f"the reaper on node {node} reported {report.errors}")
        run.reaped.update(rows=report.rows_removed, orphans=report.orphans_removed)


async def killer(run: Run) -> None:
    """Kill the victim once `kill_at` operations are done and it has an upload in flight
    (or at the end of traffic, if that comes first)."""
    victim = run.nodes[run.victim]

    def due() -> bool:
        in_flight = sum(victim.app[UPLOADS].inflight.values())
        return run.traffic_over or (run.done >= run.kill_at and in_flight > 0)

    await wait_until(due, f"an upload is in flight on the victim (seed {run.seed})", RUN_BOUND_S)
    run.inflight_at_kill = sum(victim.app[UPLOADS].inflight.values())
    run.killed_after = run.done
    run.killed.set()
    run.victim_shutdown = await kill(victim, run.victim, run.database_url)


async def kill(node: Client, index: int, database_url: str) -> str | None:
    """Take node `index` down abruptly: it stops accepting, PostgreSQL ends its connections
    under whatever they were doing (a COMMIT sent and never answered, say), the requests it
    serves are cancelled at once and their connections dropped; then its resources close.
    What it leaves (rows in `processing`, files without rows, claimed webhook deliveries)
    is the other node's to finish. Returns what its shutdown raised, if anything."""
    runner = node.server.runner
    assert runner is not None
    assert runner.server is not None
    for site in list(runner.sites):
        await site.stop()
    conn = await asyncpg.connect(database_url)  # not the node's name: this one must live
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            node_name(index),
        )
    finally:
        await conn.close()
    await runner.server.shutdown(0.01)  # aiohttp reads a timeout of 0 as none at all
    try:
        await node.close()
    except Exception as exc:
        # Its shutdown may fail as its connections did; a second close finishes what the
        # first left (every cleanup context has run once).
        await node.close()
        return repr(exc)
    return None


def node_name(index: int) -> str:
    """The `application_name` of node `index`'s database connections."""
    return f"mediasvc-node-{index}"


# --- the invariants ---------------------------------------------------------------------------


def listing_faults(collection: str, items: list[dict[str, Any]]) -> list[str]:
    """What is wrong with one listing of a collection: positions not 0..n-1 in order, an id
    twice, more items than the cap (the gallery), more than one ready avatar."""
    faults = []
    positions = [item["position"] for item in items]
    ids = [item["id"] for item in items]
    if positions != list(range(len(items))):
        faults.append(f"{collection} listed with positions {positions}")
    if len(set(ids)) != len(ids):
        faults.append(f"{collection} lists an id twice: {ids}")
    if collection == GALLERY and len(items) > GALLERY_MAX:
        faults.append(f"{collection} holds {len(items)} items, over its cap of {GALLERY_MAX}")
    ready = [item["id"] for item in items if item["status"] == "ready"]
    if collection == AVATARS and len(ready) > 1:
        faults.append(f"{collection} holds {len(ready)} ready avatars: {ready}")
    return faults


@dataclass
class Settled:
    """What the run left, read once it settled."""

    rows: dict[str, asyncpg.Record]
    files: list[str]
    events: dict[str, list[dict[str, Any]]]
    recorded: set[str]
    accepted: set[str]
    unverified: list[str]
    listings: dict[str, list[dict[str, Any]]]


async def settle(run: Run, survivor: Client, receiver: Receiver) -> Settled:
    """The survivor's last reaper pass with no grace, every webhook delivered; then what
    is left in the database, the media directory, the receiver and the API."""
    app = survivor.app
    report = await reap(app[DB], app[STORAGE], app[SETTINGS].spool_dir, grace_s=0)
    run.reaped.update(last_rows=report.rows_removed, last_orphans=report.orphans_removed)
    if report.errors:
        run.problems.append(f"the last reaper pass reported {report.errors}")
    pool = app[DB]

    async def delivered() -> bool:
        undelivered = await pool.fetchval(
            "SELECT count(*) FROM event_deliveries WHERE state <> 'delivered'"
        )
        return bool(undelivered == 0)

    await wait_until(delivered, f"every webhook is delivered (seed {run.seed})")
    rows = {r["id"]: r for r in await pool.fetch("SELECT id, status, kind, variants FROM media")}
    recorded = {r["id"] for r in await pool.fetch("SELECT id FROM events")}
    listings = {}
    for collection in (GALLERY, AVATARS):
        response = await survivor.get(
            f"/v1/media?collection={collection}&limit=100", headers=bearer()
        )
        assert response.status == 200, f"seed {run.seed}: {await response.text()}"
        listings[collection] = (await response.json())["items"]
    media_dir = app[SETTINGS].media_dir
    files = sorted(
        str(path.relative_to(media_dir)) for path in media_dir.rglob("*") if path.is_file()
    )
    return Settled(
        rows=rows,
        files=files,
        events=receiver.by_media(),
        recorded=recorded,
        accepted=set(receiver.accepted),
        unverified=receiver.unverified,
        listings=listings,
    )


def check(run: Run, seen: Settled) -> list[str]:
    """Every invariant the settled run must keep; what broke, one line each."""
    faults = list(run.problems)
    if len(run.busy) > BUSY_ALLOWED:
        faults.append(f"{len(run.busy)} answers of 503 busy from live nodes: {run.busy}")
    for collection, items in seen.listings.items():
        faults += listing_faults(collection, items)

    # Rows: after a pass with no grace, only ready media and open sessions are left.
    ready_rows = {m for m, row in seen.rows.items() if row["status"] == "ready"}
    for media_id, row in seen.rows.items():
        if row["status"] not in ("ready", "pending"):
            faults.append(f"{media_id} is still {row['status']} after the last reaper pass")
    # Files: each a recorded variant of a ready media, or an open session's raw bytes.
    variant_keys = {m: {v["key"] for v in seen.rows[m]["variants"].values()} for m in ready_rows}
    for key in seen.files:
        media_id = media_id_of(key)
        row = seen.rows.get(media_id) if media_id is not None else None
        if row is None:
            faults.append(f"{key} is stored without a row")
        elif row["status"] == "ready" and key not in variant_keys[row["id"]]:
            faults.append(f"{key} is not among the variants of its ready media")
        elif row["status"] == "pending" and key != upload_key(row["id"]):
            faults.append(f"{key} is stored for an open session")
    stored = set(seen.files)
    for media_id in sorted(ready_rows):
        missing = sorted(variant_keys[media_id] - stored)
        if missing:
            faults.append(f"{media_id} is ready but its files {missing} are gone")
    for media_id in sorted(run.cancelled & seen.rows.keys()):
        faults.append(f"{media_id}, a cancelled session, is still {seen.rows[media_id]['status']}")
    for media_id in sorted(run.deleted & seen.rows.keys()):
        faults.append(
            f"{media_id} was deleted (204) but its row is {seen.rows[media_id]['status']}"
        )

    # Events: every recorded event delivered, signed; per media `media.ready`, then at most
    # one of `media.deleted` (what a 204 said) or `media.replaced` (an avatar, by a newer one).
    if seen.unverified:
        faults.append(f"deliveries whose signature did not verify: {seen.unverified}")
    if seen.recorded != seen.accepted:
        faults.append(
            f"events recorded but never accepted: {sorted(seen.recorded - seen.accepted)}; "
            f"accepted but never recorded: {sorted(seen.accepted - seen.recorded)}"
        )
    types = {m: [e["type"] for e in events] for m, events in seen.events.items()}
    allowed_histories = (
        ["media.ready"],
        ["media.ready", "media.deleted"],
        ["media.ready", "media.replaced"],
    )
    for media_id, history in types.items():
        if history not in allowed_histories:
            faults.append(f"{media_id} has the events {history}")
    for media_id in sorted(run.ready):
        history = types.get(media_id, [])
        if history[:1] != ["media.ready"]:
            faults.append(f"{media_id} was answered ready but its events are {history}")
        if media_id not in ready_rows and len(history) != 2:
            faults.append(f"{media_id} was answered ready, is gone, and its events are {history}")
    for media_id in sorted(ready_rows):
        if types.get(media_id) != ["media.ready"]:
            faults.append(f"{media_id} is ready and its events are {types.get(media_id)}")
    unexplained = sorted(types.keys() - run.ready.keys() - run.unsure)
    if len(unexplained) > run.lost:
        faults.append(
            f"events for {unexplained}, media no answer named, though only {run.lost} "
            "requests went unanswered"
        )
    for media_id in sorted((run.sessions - run.ready.keys() - run.unsure) & types.keys()):
        faults.append(f"{media_id}, a session never completed, has the events {types[media_id]}")
    for media_id in sorted(run.deleted):
        if types.get(media_id) != ["media.ready", "media.deleted"]:
            faults.append(f"{media_id} was deleted (204) and its events are {types.get(media_id)}")
    for media_id, events in sorted(seen.events.items()):
        last = events[-1]
        if last["type"] == "media.deleted" and media_id not in run.deleted | run.maybe_deleted:
            faults.append(f"{media_id} has media.deleted, but no DELETE of it was answered 204")
        if last["type"] == "media.replaced":
            successor = last["data"].get("replaced_by")
            if last["data"]["kind"] != "avatar" or types.get(successor, [])[:1] != ["media.ready"]:
                faults.append(f"{media_id} was replaced by {successor}, which never became ready")
    for old, new in sorted(run.said_replaced.items()):
        last = seen.events.get(old, [{}])[-1]
        if (last.get("type"), last.get("data", {}).get("replaced_by")) != ("media.replaced", new):
            faults.append(
                f"{new}'s answer said it replaced {old}, whose events are {types.get(old)}"
            )
    return faults


@pytest.fixture
def plain_tracebacks() -> Iterator[None]:
    """Tracebacks in the test's log as plain text. Both nodes share this process's event
    loop (in production each has its own, and logs JSON): the development renderer's rich
    tracebacks, with locals, take about a second each, and the killed node's failures would
    stall the survivor's requests past the reaper's grace."""
    saved = structlog.get_config()
    plain = structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
    structlog.configure(
        processors=[
            plain if isinstance(p, structlog.dev.ConsoleRenderer) else p
            for p in saved["processors"]
        ]
    )
    yield
    structlog.configure(**saved)


async def test_concurrent_traffic_with_a_node_killed_keeps_every_invariant(
    make_settings: Callable[..., Settings],
    database_url: str,
    data_dir: Path,
    aiohttp_client: Any,
    plain_tracebacks: None,
) -> None:
    """Whatever the interleaving: no 5xx but the killed node's, collections dense and within
    their caps, every media answered ready still stored or removed by the test's own
    requests, a webhook for every committed change and none for anything else, and no file
    without its row."""
    seed = int(os.environ.get("MEDIASVC_RACE_SEED") or secrets.randbelow(2**32))
    print(f"MEDIASVC_RACE_SEED={seed}")
    draws = random.Random(seed)  # noqa: S311
    async with receiving(random.Random(f"{seed}/receiver")) as receiver:  # noqa: S311
        nodes = []
        for index in range(2):
            settings = make_settings(
                # Named, so that the kill ends this node's connections and no others.
                database_url=f"{database_url}?application_name={node_name(index)}",
                workers=1,
                queue_max=32,
                collection_max=GALLERY_MAX,
                kinds_table={"kinds": KINDS},
                # Each node its own spool, as on separate machines; the test runs the reaper.
                spool_dir=data_dir / f"spool-{index}",
                reaper_interval_s=3600.0,
                webhook_urls=(receiver.url,),
                webhook_secret=WEBHOOK_KEY,
                webhook_timeout_s=0.5,
                webhook_backoff_s=0.01,
            )
            nodes.append(await aiohttp_client(create_app(settings)))
        run = Run(
            seed,
            database_url,
            nodes,
            victim=draws.randrange(2),
            kill_at=draws.randint(OPERATIONS // 10, OPERATIONS // 4),
        )
        reaping = asyncio.create_task(reaper(run))
        killing = asyncio.create_task(killer(run))
        traffic = asyncio.gather(*(client(run, index) for index in range(CLIENTS)))
        timed_out = False
        try:
            await asyncio.wait_for(traffic, RUN_BOUND_S)
        except TimeoutError:
            timed_out = True
        finally:
            run.traffic_over = True
            run.reaps.put_nowait(False)
            await killing
            await reaping
        assert not timed_out, f"seed {seed}: traffic did not end within {RUN_BOUND_S} s"
        seen = await settle(run, nodes[1 - run.victim], receiver)
    print(
        f"seed {seed}: node {run.victim} killed after {run.killed_after} of {OPERATIONS} "
        f"operations "
        f"(kill_at {run.kill_at}) with {run.inflight_at_kill} uploads in flight, its shutdown "
        f"raising {run.victim_shutdown}; "
        f"{len(run.ready)} answered ready, {len(run.deleted)} deleted, "
        f"{len(run.said_replaced)} said replaced, {len(seen.accepted)} events; "
        f"reaped {dict(run.reaped)}; slowest answer {run.slowest_s:.2f} s; answers "
        f"{dict(sorted(run.answers.items()))}"
    )
    faults = check(run, seen)
    assert not faults, f"seed {seed}: " + "\n".join(faults)
