"""Events: Standard Webhooks from the outbox, to a real receiver on loopback.

The receiver verifies every request with the `standardwebhooks` package (the reference
algorithm), answers from a script the test sets, and records what arrived and when it was
answered; tests wait on it (`Receiver.wait_for`), never on a guessed delay.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import itertools
import os
import random
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import asyncpg
import images
import pytest
from contract import Contract
from gates import wait_until
from pooler import PgBouncer
from support import JWT_SECRET, SIGNING_SECRET, Client, bearer, through_pgbouncer, upload_tiny
from webhooks import FAST, HANG, KEY, SECRET, Receiver, media_of, receiving

from mediasvc import db
from mediasvc.app import create_app
from mediasvc.appkeys import DB
from mediasvc.config import ConfigError, Settings
from mediasvc.db import events as events_queries
from mediasvc.events import outbox
from mediasvc.events.dispatcher import (
    MAX_DELAY_S,
    POLL_S,
    POLL_UNHEARD_S,
    Dispatcher,
    retry_delay,
    running_dispatcher,
)
from mediasvc.events.signing import Signer
from mediasvc.kinds import kind_rules
from mediasvc.metrics import Metrics
from mediasvc.stack.localproc import free_port, stop, wait_until_listening
from mediasvc.web.openapi import build_document


@functools.cache
def webhooks() -> Contract:
    """The OpenAPI document whose `webhooks` every event about a media must match."""
    settings = Settings(
        database_url="postgresql://unused/unused",
        url_signing_secret=SIGNING_SECRET,
        jwt_secret=JWT_SECRET,
    )
    return Contract(build_document(settings, kind_rules(settings)))


def check_webhook(payload: dict[str, Any]) -> None:
    """`payload` matches the document's schema for its event type."""
    contract = webhooks()
    operation = contract.document["webhooks"][payload["type"]]["post"]
    contract.validate(operation["requestBody"]["content"]["application/json"]["schema"], payload)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """One receiver for the test; afterwards, every event it got about a media (not the
    stand-ins `record` writes) is checked against the document's `webhooks`."""
    async with receiving() as started:
        yield started
    for arrival in started.arrivals:
        if arrival.payload is not None and "id" in arrival.payload["data"]:
            check_webhook(arrival.payload)


@pytest.fixture
def settings(make_settings: Any, receiver: Receiver) -> Settings:
    """The app sends its webhooks to `receiver`, with timings small enough to watch."""
    result: Settings = make_settings(webhook_urls=(receiver.url,), **FAST)
    return result


async def upload(client: Client, **fields: str) -> dict[str, Any]:
    response = await upload_tiny(client, **fields)
    assert response.status == 201, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def record(settings: Settings, *events: tuple[str, str]) -> list[str]:
    """Record `(type, media_id)` events straight into the outbox, one transaction; their ids."""
    made = [outbox.event(type, media_id, {"media_id": media_id}) for type, media_id in events]
    conn = await db.connect(settings.database_url)
    try:
        async with conn.transaction():
            await outbox.record(conn, settings, made)
    finally:
        await conn.close()
    return [e.id for e in made]


async def delivery_rows(settings: Settings) -> list[asyncpg.Record]:
    conn = await db.connect(settings.database_url)
    try:
        return await conn.fetch(
            "SELECT event_id, url, state, attempts, claimed_by, last_status, last_error"
            " FROM event_deliveries ORDER BY seq, url"
        )
    finally:
        await conn.close()


# --- settings and signing -----------------------------------------------------------------

REQUIRED = {
    "MEDIASVC_DATABASE_URL": "postgresql://x@127.0.0.1/db",
    "MEDIASVC_JWT_SECRET": "s" * 32,
    "MEDIASVC_URL_SIGNING_SECRET": "k" * 32,
}


class TestSettings:
    def test_urls_and_secret_are_read(self) -> None:
        """Comma-separated URLs (spaces and repeats dropped) and the secret's key bytes."""
        settings = Settings.from_env(
            {
                **REQUIRED,
                "MEDIASVC_WEBHOOK_URL": "https://a.example/hook, http://10.0.0.5:9000/h,"
                "https://a.example/hook",
                "MEDIASVC_WEBHOOK_SECRET": SECRET,
                "MEDIASVC_WEBHOOK_TIMEOUT_S": "3",
            }
        )
        assert settings.webhook_urls == ("https://a.example/hook", "http://10.0.0.5:9000/h")
        assert settings.webhook_secret == KEY
        assert (settings.webhook_timeout_s, settings.webhook_retry_s) == (3.0, 86400.0)

    def test_unpadded_secret_is_accepted(self) -> None:
        """As the reference library does, the base64 may come without its padding."""
        secret = "whsec_" + base64.b64encode(bytes(25)).decode().rstrip("=")
        env = {
            **REQUIRED,
            "MEDIASVC_WEBHOOK_URL": "https://a.example/",
            "MEDIASVC_WEBHOOK_SECRET": secret,
        }
        assert Settings.from_env(env).webhook_secret == bytes(25)

    @pytest.mark.parametrize(
        "secret",
        [
            "whsec_" + base64.b64encode(bytes(23)).decode(),  # 23 bytes: one short
            "whsec_" + base64.b64encode(bytes(65)).decode(),  # one too many
            base64.b64encode(KEY).decode(),  # no whsec_ prefix
            "whsec_" + "!" * 40,  # not base64
            "whsec_" + base64.b64encode(KEY).decode()[:-3] + "*==",  # a stray character
        ],
    )
    def test_a_short_or_malformed_secret_stops_startup(self, secret: str) -> None:
        """One line naming the variable, without echoing the secret."""
        env = {
            **REQUIRED,
            "MEDIASVC_WEBHOOK_URL": "https://a.example/",
            "MEDIASVC_WEBHOOK_SECRET": secret,
        }
        with pytest.raises(ConfigError) as refused:
            Settings.from_env(env)
        message = str(refused.value)
        assert message.startswith("MEDIASVC_WEBHOOK_SECRET: must be whsec_")
        assert "\n" not in message
        assert secret not in message

    def test_a_url_needs_a_secret(self) -> None:
        """Unsigned webhooks are never sent."""
        with pytest.raises(ConfigError, match="MEDIASVC_WEBHOOK_SECRET is required"):
            Settings.from_env({**REQUIRED, "MEDIASVC_WEBHOOK_URL": "https://a.example/"})

    @pytest.mark.parametrize("urls", ["ftp://a.example/", "https://a.example/, nope", ","])
    def test_a_bad_url_stops_startup(self, urls: str) -> None:
        """Each URL must be http(s); the error names the variable and the value."""
        env = {**REQUIRED, "MEDIASVC_WEBHOOK_URL": urls, "MEDIASVC_WEBHOOK_SECRET": SECRET}
        with pytest.raises(ConfigError, match=r"^MEDIASVC_WEBHOOK_URL="):
            Settings.from_env(env)


class TestSigning:
    def test_the_specifications_known_answer(self) -> None:
        """The reference test vector: this secret, id, timestamp and body, this signature."""
        key = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        headers = Signer(key).headers(
            "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, '{"test": 2432232314}'
        )
        assert headers == {
            "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "webhook-timestamp": "1614265330",
            "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        }

    def test_backoff_doubles_with_jitter_up_to_the_cap(self) -> None:
        """Attempt n waits between half and all of base·2^(n-1), never more than the cap."""
        for attempt in range(1, 40):
            full = min(MAX_DELAY_S, 5 * 2 ** (attempt - 1))
            delays = [retry_delay(attempt, 5) for _ in range(50)]
            assert all(full / 2 <= d <= full for d in delays)
            assert len(set(delays)) > 1  # jittered


# --- what is sent ---------------------------------------------------------------------------


class TestPayload:
    @through_pgbouncer
    async def test_ready_is_signed_the_standard_webhooks_way(
        self, client: Client, receiver: Receiver
    ) -> None:
        """An upload's `media.ready` verifies with the reference library and carries the
        Media JSON; `webhook-id` is the event's id in the outbox."""
        media = await upload(client)
        [arrival] = await receiver.accepted_of(media["id"])
        assert arrival.payload is not None, "the signature did not verify"
        assert arrival.payload["type"] == "media.ready"
        assert arrival.payload["timestamp"].endswith("Z")
        data = arrival.payload["data"]
        assert data["id"] == media["id"]
        assert data["status"] == "ready"
        assert data["variants"]["small"]["url"] == media["variants"]["small"]["url"]
        # Not the owner's view: no hash of the original, no processing report.
        assert "sha256" not in data["original"]
        assert "processing" not in data
        ids = await client.app[DB].fetch("SELECT id FROM events")
        assert [r["id"] for r in ids] == [arrival.event_id]

    async def test_each_event_type_matches_its_webhook_schema(
        self, make_settings: Any, receiver: Receiver, aiohttp_client: Any
    ) -> None:
        """`media.ready` of a private media (null URLs), `media.replaced` (with
        `replaced_by`) and `media.deleted` each match the schema the document gives them."""
        kinds = {"avatar": {"crop": "square", "collection_max": 1, "replace": True}}
        settings = make_settings(webhook_urls=(receiver.url,), kinds_table={"kinds": kinds}, **FAST)
        client = await aiohttp_client(create_app(settings))
        first = await upload(client, kind="avatar", visibility="private")
        second = await upload(client, kind="avatar")
        assert (await client.delete(f"/v1/media/{second['id']}", headers=bearer())).status == 204
        arrivals = [
            *await receiver.accepted_of(first["id"], 2),
            *await receiver.accepted_of(second["id"], 2),
        ]
        assert [a.type for a in arrivals] == [
            "media.ready",
            "media.replaced",
            "media.ready",
            "media.deleted",
        ]
        for arrival in arrivals:
            assert arrival.payload is not None
            check_webhook(arrival.payload)
        assert arrivals[0].payload is not None
        assert arrivals[0].payload["data"]["variants"]["small"]["url"] is None

    async def test_private_media_urls_never_leave_in_a_webhook(
        self, client: Client, receiver: Receiver
    ) -> None:
        """A private media's event has no variant URL at all: signed URLs are minted only
        for a caller the API has checked."""
        media = await upload(client, visibility="private")
        assert "md5=" in media["variants"]["small"]["url"]  # the API's answer is signed
        [arrival] = await receiver.accepted_of(media["id"])
        variants = arrival.payload["data"]["variants"] if arrival.payload else {}
        assert set(variants) == set(media["variants"])
        assert all(v["url"] is None for v in variants.values())
        assert b"/private" not in arrival.body
        assert b"md5" not in arrival.body

    async def test_delivery_goes_on_after_the_database_ends_the_nodes_connections(
        self, client: Client, receiver: Receiver, settings: Settings
    ) -> None:
        """After PostgreSQL ends every connection of the app (a restart, a failover), the
        dispatcher keeps running: an event recorded afterwards is delivered."""
        media = await upload(client)
        await receiver.accepted_of(media["id"])
        conn = await db.connect(settings.database_url)
        try:
            ended = await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await conn.close()
        assert ended >= 2  # the dispatcher's LISTEN connection and a pooled one at least
        (event_id,) = await record(settings, ("media.ready", "after-the-restart"))
        await receiver.wait_for(lambda: event_id in receiver.accepted, "the later event")

    @pytest.mark.parametrize("listen", [True, False], ids=["listen-url", "no-listen-url"])
    async def test_behind_a_transaction_pooler_it_listens_directly_or_polls(
        self,
        make_settings: Any,
        receiver: Receiver,
        pgbouncer: PgBouncer,
        database_url: str,
        listen: bool,
    ) -> None:
        """Behind PgBouncer in transaction mode a dispatcher LISTENs only on
        MEDIASVC_DATABASE_LISTEN_URL (straight to PostgreSQL); without it, nothing LISTENs
        and it polls every second. Either way an event recorded while it runs goes out."""
        settings = make_settings(
            database_url=pgbouncer.url(database_url),
            database_pooler="transaction",
            database_listen_url=database_url if listen else None,
            webhook_urls=(receiver.url,),
            **FAST,
        )
        direct = await db.connect(database_url)
        try:
            async with (
                db.open_pool(settings) as pool,
                running_dispatcher(settings, pool, Metrics()) as dispatcher,
            ):
                assert dispatcher is not None
                assert dispatcher.poll_s == (POLL_S if listen else POLL_UNHEARD_S)

                async def listening() -> int:
                    count: int = await direct.fetchval(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND query LIKE 'LISTEN %'"
                    )
                    return count

                async def listening_once() -> bool:
                    return await listening() == 1

                if listen:
                    await wait_until(listening_once, "the dispatcher LISTENs")
                (event_id,) = await record(settings, ("media.ready", "behind-the-pooler"))
                await receiver.wait_for(lambda: event_id in receiver.accepted, "the event")
                assert await listening() == (1 if listen else 0)
        finally:
            await direct.close()

    @pytest.mark.parametrize("error", [asyncpg.InternalClientError, RuntimeError])
    async def test_a_failing_round_does_not_stop_the_dispatcher(
        self,
        client: Client,
        receiver: Receiver,
        settings: Settings,
        monkeypatch: pytest.MonkeyPatch,
        error: type[Exception],
    ) -> None:
        """A claim that raises (asyncpg's error for a connection the server ended
        mid-operation, or anything unexpected) costs one round: the next one delivers."""
        real_claim = events_queries.claim
        failed = asyncio.Event()

        async def claim_failing_once(*args: Any, **kwargs: Any) -> Any:
            if not failed.is_set():
                failed.set()
                raise error("cannot switch to state 12; another operation (2) is in progress")
            return await real_claim(*args, **kwargs)

        monkeypatch.setattr(events_queries, "claim", claim_failing_once)
        (event_id,) = await record(settings, ("media.ready", "after-a-bad-round"))
        await receiver.wait_for(lambda: event_id in receiver.accepted, "the event")
        assert failed.is_set()

    @through_pgbouncer
    async def test_delete_follows_ready(self, client: Client, receiver: Receiver) -> None:
        """`media.deleted` (Media JSON, status deleting) is sent only once `media.ready` was
        accepted: while the ready one keeps failing after the delete, nothing else goes."""
        recovered = asyncio.Event()
        receiver.policy = lambda a: 200 if recovered.is_set() or a.type != "media.ready" else 500
        media = await upload(client)
        await receiver.wait_for(lambda: len(receiver.arrivals) >= 1, "media.ready")
        response = await client.delete(f"/v1/media/{media['id']}", headers=bearer())
        assert response.status == 204
        # Two more failed attempts: each a round in which the dispatcher could have sent
        # the (by then recorded) delete, had it not waited for the ready one.
        seen = len(receiver.arrivals)
        await receiver.wait_for(lambda: len(receiver.arrivals) >= seen + 2, "two more tries")
        recovered.set()
        ready, deleted = await receiver.accepted_of(media["id"], 2)
        assert (ready.type, deleted.type) == ("media.ready", "media.deleted")
        assert deleted.payload is not None
        assert deleted.payload["data"]["status"] == "deleting"
        first_deleted = next(a for a in receiver.arrivals if a.event_id == deleted.event_id)
        assert ready.answered_at is not None
        assert first_deleted.arrived_at > ready.answered_at
        tries = len(receiver.arrivals) - 1
        assert [a.type for a in receiver.arrivals] == ["media.ready"] * tries + ["media.deleted"]

    async def test_replace_sends_replaced_for_the_old_media(
        self, make_settings: Any, receiver: Receiver, aiohttp_client: Any
    ) -> None:
        """A replacing kind's upload: `media.ready` for the new media and `media.replaced`
        for the one it retired, naming its successor."""
        kinds = {"avatar": {"crop": "square", "collection_max": 1, "replace": True}}
        settings = make_settings(webhook_urls=(receiver.url,), kinds_table={"kinds": kinds}, **FAST)
        client = await aiohttp_client(create_app(settings))
        first = await upload(client, kind="avatar")
        second = await upload(client, kind="avatar")
        ready, replaced = await receiver.accepted_of(first["id"], 2)
        assert (ready.type, replaced.type) == ("media.ready", "media.replaced")
        assert replaced.payload is not None
        assert replaced.payload["data"]["replaced_by"] == second["id"]
        assert replaced.payload["data"]["status"] == "deleting"
        [new] = await receiver.accepted_of(second["id"])
        assert new.type == "media.ready"

    async def test_an_asynchronous_session_failure_sends_upload_failed(
        self, client: Client, receiver: Receiver
    ) -> None:
        """Bad bytes completed with `Prefer: respond-async`: `upload.failed` carries the media
        (status failed) and its problem."""
        data = images.make_jpeg()[:400]
        opened = await client.post(
            "/v1/uploads",
            json={"kind": "post", "content_type": "image/jpeg", "size": len(data)},
            headers=bearer(),
        )
        session = await opened.json()
        upload_url = session["upload"]["url"]
        assert (await client.put(upload_url, data=data)).status == 204
        completed = await client.post(
            session["complete_url"], headers={**bearer(), "Prefer": "respond-async"}
        )
        assert completed.status == 202
        [arrival] = await receiver.accepted_of(session["id"])
        assert arrival.payload is not None
        assert arrival.payload["type"] == "upload.failed"
        assert arrival.payload["data"]["status"] == "failed"
        assert arrival.payload["data"]["problem"]["code"] == "invalid_image"

    async def test_a_rolled_back_upload_sends_nothing(
        self, client: Client, receiver: Receiver
    ) -> None:
        """When the transaction that wrote `media.ready` fails at commit, the upload is
        undone and no event exists to send; the next upload's event is the only one."""
        pool = client.app[DB]
        await pool.execute(
            """
            CREATE FUNCTION refuse_commit() RETURNS trigger LANGUAGE plpgsql
                AS $$ BEGIN RAISE EXCEPTION 'refused at commit'; END $$;
            CREATE CONSTRAINT TRIGGER refuse_commit AFTER INSERT ON event_deliveries
                DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_commit();
            """
        )
        response = await upload_tiny(client)
        assert response.status == 500
        assert await pool.fetchval("SELECT count(*) FROM media") == 0
        assert await pool.fetchval("SELECT count(*) FROM events") == 0
        await pool.execute("DROP TRIGGER refuse_commit ON event_deliveries")
        media = await upload(client)
        [arrival] = await receiver.accepted_of(media["id"])
        assert [a.event_id for a in receiver.arrivals] == [arrival.event_id]
        assert await pool.fetchval("SELECT count(*) FROM events") == 1


# --- delivery ---------------------------------------------------------------------------------


class TestDelivery:
    async def test_failures_and_a_timeout_are_retried_until_the_receiver_recovers(
        self, client: Client, receiver: Receiver
    ) -> None:
        """500, no answer within the timeout, 503, then 200: four attempts of one event,
        all with the same id and body, each signed anew; counted in the metrics."""
        receiver.script = [500, HANG, 503]
        media = await upload(client)
        [accepted] = await receiver.accepted_of(media["id"])
        assert [a.status for a in receiver.arrivals] == [500, None, 503, 200]
        assert {a.event_id for a in receiver.arrivals} == {accepted.event_id}
        assert {a.body for a in receiver.arrivals} == {accepted.body}
        assert all(a.payload is not None for a in receiver.arrivals)
        pool = client.app[DB]
        # The receiver answered; the dispatcher records it right after.
        query = "SELECT state, attempts, last_status FROM event_deliveries"
        await wait_until(
            lambda: pool.fetchval("SELECT state = 'delivered' FROM event_deliveries"),
            "the delivery is recorded",
        )
        row = await pool.fetchrow(query)
        assert dict(row) == {"state": "delivered", "attempts": 4, "last_status": 200}
        metrics = await (await client.get("/metrics")).text()
        assert 'mediasvc_webhook_deliveries_total{outcome="retried"} 3.0' in metrics
        assert 'mediasvc_webhook_deliveries_total{outcome="delivered"} 1.0' in metrics
        assert "mediasvc_webhook_delivery_latency_seconds_count 1.0" in metrics

    async def test_each_url_has_its_own_delivery(
        self, make_settings: Any, receiver: Receiver, aiohttp_client: Any
    ) -> None:
        """With two URLs, one failing does not hold up the other; each gets the event."""
        async with receiving() as down:
            recovered = asyncio.Event()
            down.policy = lambda _: 500 if not recovered.is_set() else 200
            urls = (down.url, receiver.url)
            client = await aiohttp_client(create_app(make_settings(webhook_urls=urls, **FAST)))
            media = await upload(client)
            [arrival] = await receiver.accepted_of(media["id"])
            await down.wait_for(lambda: len(down.arrivals) >= 2, "a retry")
            assert not down.accepted
            recovered.set()
            [late] = await down.accepted_of(media["id"])
            assert late.event_id == arrival.event_id
            assert late.body == arrival.body

    async def test_order_per_media_holds_across_nodes_under_failures(
        self, make_settings: Any, receiver: Receiver
    ) -> None:
        """8 media with 5 events each, three already queued per media when three
        dispatchers start and the rest recorded while they run, a receiver failing a third
        of the requests at random: every media's events are accepted in order, and none
        arrives before the previous one of its media was accepted."""
        settings = make_settings(webhook_urls=(receiver.url,), **FAST)
        chance = random.Random(18)  # noqa: S311 (a failure pattern, not a secret)
        receiver.policy = lambda _: 500 if chance.random() < 1 / 3 else 200
        media_ids = [f"media-{i}" for i in range(8)]
        expected: dict[str, list[str]] = {m: [] for m in media_ids}
        async with db.open_pool(settings) as pool, contextlib.AsyncExitStack() as running:
            for round_ in range(5):
                if round_ == 3:
                    await running.enter_async_context(_dispatchers(settings, pool, 3))
                recorded = await record(settings, *(("media.ready", m) for m in media_ids))
                for media_id, event_id in zip(media_ids, recorded, strict=True):
                    expected[media_id].append(event_id)
            await receiver.wait_for(lambda: len(receiver.accepted) == 40, "all 40 events")
        for media_id, event_ids in expected.items():
            accepted = [a for a in receiver.accepted.values() if media_of(a) == media_id]
            assert [a.event_id for a in accepted] == event_ids
            for earlier, later in itertools.pairwise(event_ids):
                answered = receiver.accepted[earlier].answered_at
                assert answered is not None
                first_try = next(a for a in receiver.arrivals if a.event_id == later)
                assert first_try.arrived_at > answered
        assert any(a.status == 500 for a in receiver.arrivals)


@asynccontextmanager
async def _dispatchers(
    settings: Settings, pool: asyncpg.Pool, count: int
) -> AsyncIterator[list[Dispatcher]]:
    """`count` dispatchers on one database, as `count` nodes would run them."""
    async with running_dispatcher(settings, pool, Metrics()) as first:
        assert first is not None
        if count == 1:
            yield [first]
            return
        async with _dispatchers(settings, pool, count - 1) as others:
            yield [first, *others]


# --- nodes, and the command line --------------------------------------------------------------


def serve(settings: Settings, port: int, log: str) -> subprocess.Popen[bytes]:
    """`python -m mediasvc serve` as a real process sending webhooks to the receiver."""
    node = replace(
        settings,
        app_port=port,
        workers=1,
        log_format="json",
        # A lease of 2 x 1 + 1 s: what the surviving node waits before taking over.
        webhook_timeout_s=1.0,
        webhook_backoff_s=0.05,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIASVC_")}
    env.update(node.to_env())
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "mediasvc", "serve"], env=env, stdout=out, stderr=out
        )
    if wait_until_listening(process, port, timeout_s=30):
        return process
    process.kill()
    raise AssertionError(f"serve did not start; see {log}")


async def cli(settings: Settings, *args: str) -> tuple[int, str]:
    """`python -m mediasvc ARGS` on the test's database: exit status and output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIASVC_")}
    env["MEDIASVC_DATABASE_URL"] = settings.database_url
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mediasvc",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode()


class TestNodes:
    async def test_a_node_killed_mid_delivery_leaves_it_to_the_other(
        self, settings: Settings, receiver: Receiver
    ) -> None:
        """Two nodes; the receiver holds the first request until its node is SIGKILLed: the
        other node delivers that event after the lease, with the same id and body, and
        every event is accepted exactly once."""
        hold = asyncio.Event()
        receiver.script = [hold]
        ports = [free_port(), free_port()]
        nodes = await asyncio.gather(
            *(
                asyncio.to_thread(serve, settings, port, str(settings.data_dir / f"node{i}.log"))
                for i, port in enumerate(ports)
            )
        )
        try:
            event_ids = await record(settings, *(("media.ready", f"media-{i}") for i in range(5)))
            await receiver.wait_for(lambda: len(receiver.arrivals) >= 1, "a first request")
            held = receiver.arrivals[0]
            conn = await db.connect(settings.database_url)
            try:
                holder = await conn.fetchval(
                    "SELECT claimed_by FROM event_deliveries WHERE event_id = $1", held.event_id
                )
            finally:
                await conn.close()
            victim = next(n for n in nodes if holder.endswith(f":{n.pid}"))
            survivor = next(n for n in nodes if n is not victim)
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            await receiver.wait_for(lambda: held.event_id in receiver.accepted, "the takeover")
            await receiver.wait_for(lambda: len(receiver.accepted) == 5, "every event")

            async def all_recorded() -> bool:
                return {r["state"] for r in await delivery_rows(settings)} == {"delivered"}

            await wait_until(all_recorded, "the nodes record every delivery")
        finally:
            hold.set()
            for node in nodes:
                stop(node)
        assert held.status is None  # the killed node's request never got its answer
        retried = [a for a in receiver.arrivals if a.event_id == held.event_id]
        assert [a.status for a in retried] == [None, 200]
        assert retried[1].body == held.body
        assert set(receiver.accepted) == set(event_ids)
        # Duplicates on the wire, if any, are of known events, with their one body.
        for arrival in receiver.arrivals:
            assert arrival.body == receiver.accepted[arrival.event_id].body
        rows = {r["event_id"]: r for r in await delivery_rows(settings)}
        assert rows[held.event_id]["state"] == "delivered"
        assert rows[held.event_id]["attempts"] == 2
        assert rows[held.event_id]["claimed_by"].endswith(f":{survivor.pid}")

    async def test_given_up_deliveries_are_listed_and_retried_by_the_cli(
        self, make_settings: Any, receiver: Receiver
    ) -> None:
        """A receiver down past MEDIASVC_WEBHOOK_RETRY_S: both events are given up and kept;
        `events` lists them, `events retry ID` requeues one and `--all-failed` the rest,
        which arrive once the receiver is back."""
        settings = make_settings(webhook_urls=(receiver.url,), webhook_retry_s=0.2, **FAST)
        receiver.default = 500
        metrics = Metrics()
        async with db.open_pool(settings) as pool, running_dispatcher(settings, pool, metrics):
            first, second = await record(settings, ("media.ready", "m1"), ("media.ready", "m2"))

            async def both_given_up() -> bool:
                return [r["state"] for r in await delivery_rows(settings)] == ["failed"] * 2

            await wait_until(both_given_up, "both deliveries are given up")
            status, listing = await cli(settings, "events")
            assert status == 0, listing
            lines = listing.splitlines()
            assert lines[0].split()[:5] == ["EVENT", "TYPE", "MEDIA", "URL", "STATE"]
            for event_id in (first, second):
                [line] = [line for line in lines if line.startswith(event_id)]
                assert "given up" in line
                assert "HTTP 500: receiver says no" in line
            assert lines[-1] == "0 pending, 2 given up"
            given_up = {"outcome": "given_up"}
            sample = metrics.registry.get_sample_value(
                "mediasvc_webhook_deliveries_total", given_up
            )
            assert sample == 2

            receiver.default = 200
            status, out = await cli(settings, "events", "retry", first)
            assert (status, out) == (0, f"requeued {first} to {receiver.url}\n")
            await receiver.wait_for(lambda: first in receiver.accepted, "the retried event")
            assert second not in receiver.accepted
            status, out = await cli(settings, "events", "retry", "--all-failed")
            assert (status, out) == (0, f"requeued {second} to {receiver.url}\n")
            await receiver.wait_for(lambda: second in receiver.accepted, "the other event")
            status, out = await cli(settings, "events", "retry", "--all-failed")
            assert status == 1
            assert out.startswith("nothing to requeue")
        status, listing = await cli(settings, "events")
        assert listing == "0 pending, 0 given up\n"
