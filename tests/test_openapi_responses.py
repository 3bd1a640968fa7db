"""Every response the OpenAPI document promises is one the app gives: for each operation, one
test makes the app answer each status the operation documents, checks the answer against
the schema documented for that status, and finally that the app's own record of what it
answered (`answers.ANSWERS`, by route template) holds every documented status.

Why a test per operation rather than one check over the whole suite's responses: it holds
whatever subset of the suite runs and in whatever order, and a new documented status fails
here, next to the exercise that must be added for it. Faults are real where they are
cheap: a closed database pool (503), a job timeout too short for any job (500), an
in-flight cap of zero (429).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import images
import pytest
from aiohttp.http_parser import HttpRequestParserPy
from answers import ANSWERS, Answer, record_answers
from contract import Contract, Operation
from support import JWT_SECRET, Client, bearer, exchange, request_head, upload_form

from mediasvc.app import create_app
from mediasvc.appkeys import DB, STORAGE
from mediasvc.auth import mint_token
from mediasvc.config import Settings
from mediasvc.flows.sessions import content_path
from mediasvc.keys import upload_key
from mediasvc.kinds import kind_rules
from mediasvc.signing import sign_path
from mediasvc.web.openapi import build_document

MakeClient = Callable[..., Awaitable[Client]]
OverBudget = Callable[..., Awaitable[Client]]

APP = "https://app.example.com"
COOKIE = "access_token"
PHOTO = images.make_jpeg(width=320, height=240)
HTML = b"<html><script>alert(1)</script></html>" + b" " * 200
# `single` holds one item per collection; `tiny` takes files of at most 1000 bytes; `queue`
# holds every upload for an admin's decision.
KINDS = {
    "single": {"collection_max": 1},
    "tiny": {"max_bytes": 1000},
    "queue": {"moderation": "review"},
}
BASE = {
    "workers": 1,
    "cors_origins": (APP,),
    "auth_cookie": COOKIE,
    "kinds_table": {"kinds": KINDS},
}


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """The settings every client here starts from."""
    result: Settings = make_settings(**BASE)
    return result


@pytest.fixture
def contract(settings: Settings) -> Contract:
    """The document these settings serve."""
    return Contract(build_document(settings, kind_rules(settings)))


@pytest.fixture
def made(make_settings: Callable[..., Settings], aiohttp_client: Any) -> MakeClient:
    """Apps on these settings with `overrides`, each recording what it answers."""

    async def make(**overrides: Any) -> Client:
        app = create_app(make_settings(**{**BASE, **overrides}))
        record_answers(app)
        client: Client = await aiohttp_client(app)
        return client

    return make


@pytest.fixture
def over_budget(contract: Contract, made: MakeClient) -> OverBudget:
    """Makes a node on `budget` (each user's budget for `operation`, one a minute) and checks
    that its answer to a second request of the same user is the documented 429; the node."""

    async def exhaust(
        operation: Operation, send: Callable[[Client], Awaitable[Any]], **budget: int
    ) -> Client:
        tight = await made(**budget)
        await send(tight)
        await contract.check(operation, await send(tight), 429)
        return tight

    return exhaust


def answered(*clients: Client) -> set[Answer]:
    return set().union(*(client.app[ANSWERS] for client in clients))


def assert_all_answered(contract: Contract, operation: Operation, *clients: Client) -> None:
    """The app answered `operation` with every status it documents."""
    seen = {status for method, path, status in answered(*clients) if (method, path) == operation}
    missing = contract.statuses(operation) - seen
    assert not missing, f"{operation}: documented, never answered: {sorted(missing)}"


def space_token(sub: str, *spaces: str) -> dict[str, str]:
    token = mint_token(JWT_SECRET, sub, spaces=spaces)
    return {"Authorization": f"Bearer {token}"}


async def uploaded(client: Client, data: bytes = PHOTO, **fields: str) -> dict[str, Any]:
    response = await client.post("/v1/media", data=upload_form(data, **fields), headers=bearer())
    assert response.status == 201, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def opened(client: Client, data: bytes = PHOTO, **members: Any) -> dict[str, Any]:
    body = {"content_type": "image/jpeg", "size": len(data), **members}
    response = await client.post("/v1/uploads", json=body, headers=bearer())
    assert response.status == 201, await response.text()
    session: dict[str, Any] = await response.json()
    return session


async def close_database(client: Client) -> None:
    """The database goes away: every query is now refused as unavailable."""
    await client.app[DB].close()


async def test_create_media(contract: Contract, client: Client, made: MakeClient) -> None:
    """POST /v1/media answers 201, 200, 303 and each documented refusal."""
    op = ("POST", "/v1/media")
    check = contract.check
    await check(op, await client.post("/v1/media", data=upload_form(PHOTO), headers=bearer()), 201)
    key = {"Idempotency-Key": "k-1", **bearer()}
    for status in (201, 200):
        await check(
            op, await client.post("/v1/media", data=upload_form(PHOTO), headers=key), status
        )
    redirect = upload_form(PHOTO, success_redirect=f"{APP}/done")
    response = await client.post(
        "/v1/media", data=redirect, headers=bearer(), allow_redirects=False
    )
    await check(op, response, 303)
    assert response.headers["Location"].startswith(f"{APP}/done?media=")
    await check(op, await client.post("/v1/media", data=b"x", headers=bearer()), 400)
    await check(op, await client.post("/v1/media", data=upload_form(PHOTO)), 401)
    into_space = upload_form(PHOTO, space="team")
    await check(op, await client.post("/v1/media", data=into_space, headers=bearer()), 403)
    await uploaded(client, kind="single", collection="one")
    full = upload_form(PHOTO, kind="single", collection="one")
    await check(op, await client.post("/v1/media", data=full, headers=bearer()), 409)
    tiny = upload_form(PHOTO, kind="tiny")
    await check(op, await client.post("/v1/media", data=tiny, headers=bearer()), 413)
    await check(op, await client.post("/v1/media", data=upload_form(HTML), headers=bearer()), 415)
    truncated = upload_form(PHOTO[: len(PHOTO) // 2])
    await check(op, await client.post("/v1/media", data=truncated, headers=bearer()), 422)

    capped = await made(owner_max_inflight=0)
    await check(op, await capped.post("/v1/media", data=upload_form(PHOTO), headers=bearer()), 429)
    hasty = await made(job_timeout_s=0.001)
    await check(op, await hasty.post("/v1/media", data=upload_form(PHOTO), headers=bearer()), 500)
    await close_database(client)
    await check(op, await client.post("/v1/media", data=upload_form(PHOTO), headers=bearer()), 503)
    assert_all_answered(contract, op, client, capped, hasty)


async def test_list_media(contract: Contract, client: Client, over_budget: OverBudget) -> None:
    """GET /v1/media answers a page, and refuses a bad parameter, no token, another owner."""
    op = ("GET", "/v1/media")
    await uploaded(client, collection="album")
    page = await contract.check(
        op, await client.get("/v1/media?collection=album", headers=bearer()), 200
    )
    assert len(page["items"]) == 1
    await contract.check(op, await client.get("/v1/media?limit=0", headers=bearer()), 400)
    await contract.check(op, await client.get("/v1/media"), 401)
    await contract.check(op, await client.get("/v1/media?owner=bob", headers=bearer()), 403)
    tight = await over_budget(
        op, lambda on: on.get("/v1/media", headers=bearer()), user_reads_per_min=1
    )
    assert_all_answered(contract, op, client, tight)


async def test_get_media(contract: Contract, client: Client, over_budget: OverBudget) -> None:
    """GET /v1/media/{id} answers the media, a bad token's 401 and an unknown id's 404."""
    op = ("GET", "/v1/media/{media_id}")
    media = await uploaded(client)
    await contract.check(op, await client.get(f"/v1/media/{media['id']}"), 200)
    await contract.check(op, await client.get(f"/v1/media/{media['id']}", headers=bearer()), 200)
    nonsense = {"Authorization": "Bearer nonsense"}
    await contract.check(op, await client.get(f"/v1/media/{media['id']}", headers=nonsense), 401)
    await contract.check(op, await client.get("/v1/media/" + "A" * 22), 404)
    tight = await over_budget(
        op, lambda on: on.get(f"/v1/media/{media['id']}", headers=bearer()), user_reads_per_min=1
    )
    assert_all_answered(contract, op, client, tight)


async def test_delete_media(contract: Contract, client: Client, over_budget: OverBudget) -> None:
    """DELETE /v1/media/{id}: 204 for the owner, 403 for another, 409 while processing."""
    op = ("DELETE", "/v1/media/{media_id}")
    media = await uploaded(client)
    path = f"/v1/media/{media['id']}"
    await contract.check(op, await client.delete(path), 401)
    await contract.check(op, await client.delete(path, headers=bearer("bob")), 403)
    await contract.check(op, await client.delete(path, headers=bearer()), 204)
    await contract.check(op, await client.delete(path, headers=bearer()), 404)
    # A session is cancelled (204); once its bytes are being processed it is 409.
    session = await opened(client)
    await client.app[DB].execute(
        "UPDATE media SET status = 'processing' WHERE id = $1", session["id"]
    )
    await contract.check(
        op, await client.delete(f"/v1/media/{session['id']}", headers=bearer()), 409
    )
    kept = await uploaded(client)
    tight = await over_budget(
        op,
        lambda on: on.delete(f"/v1/media/{kept['id']}", headers=bearer()),
        user_deletes_per_min=1,
    )
    assert_all_answered(contract, op, client, tight)


async def test_get_variant(contract: Contract, client: Client, over_budget: OverBudget) -> None:
    """GET /v1/media/{id}/{variant} redirects, or refuses a bad token and an unknown id."""
    op = ("GET", "/v1/media/{media_id}/{variant}")
    media = await uploaded(client)
    path = f"/v1/media/{media['id']}/small"
    await contract.check(op, await client.get(path, allow_redirects=False), 302)
    nonsense = {"Authorization": "Bearer nonsense"}
    await contract.check(op, await client.get(path, headers=nonsense, allow_redirects=False), 401)
    await contract.check(op, await client.get(f"/v1/media/{'A' * 22}/small"), 404)
    tight = await over_budget(
        op, lambda on: on.get(path, headers=bearer(), allow_redirects=False), user_reads_per_min=1
    )
    assert_all_answered(contract, op, client, tight)


async def test_put_collection_order(contract: Contract, client: Client) -> None:
    """PUT /v1/collections/{c}/order: 200 for a permutation, 409 for anything else."""
    op = ("PUT", "/v1/collections/{collection}/order")
    first = await uploaded(client, collection="album")
    second = await uploaded(client, collection="album")
    ids = [second["id"], first["id"]]
    path = "/v1/collections/album/order"
    await contract.check(op, await client.put(path, json={"ids": ids}, headers=bearer()), 200)
    await contract.check(op, await client.put(path, json={"ids": "x"}, headers=bearer()), 400)
    await contract.check(op, await client.put(path, json={"ids": ids}), 401)
    other = f"{path}?owner=bob"
    await contract.check(op, await client.put(other, json={"ids": ids}, headers=bearer()), 403)
    unknown = "/v1/collections/none/order"
    await contract.check(op, await client.put(unknown, json={"ids": ids}, headers=bearer()), 404)
    await contract.check(op, await client.put(path, json={"ids": ids[:1]}, headers=bearer()), 409)
    assert_all_answered(contract, op, client)


async def test_delete_space_media(
    contract: Contract, client: Client, over_budget: OverBudget
) -> None:
    """DELETE /v1/spaces/{space}/media: 202 for a manager, 403 for a member, 400 for a
    malformed space, 429 over the deletes budget."""
    op = ("DELETE", "/v1/spaces/{space}/media")
    path = "/v1/spaces/team-1/media"
    manager = {"Authorization": f"Bearer {mint_token(JWT_SECRET, 'mod', manages=['team-1'])}"}
    await contract.check(op, await client.delete(path), 401)
    await contract.check(op, await client.delete(path, headers=space_token("bob", "team-1")), 403)
    await contract.check(op, await client.delete("/v1/spaces/a%20b/media", headers=manager), 400)
    await contract.check(op, await client.delete(path, headers=manager), 202)
    tight = await over_budget(
        op, lambda on: on.delete(path, headers=manager), user_deletes_per_min=1
    )
    assert_all_answered(contract, op, client, tight)


async def test_create_upload_session(
    contract: Contract, client: Client, over_budget: OverBudget
) -> None:
    """POST /v1/uploads: 201, 200 for a replayed key, and each refusal at open."""
    op = ("POST", "/v1/uploads")
    declared = {"content_type": "image/jpeg", "size": len(PHOTO)}

    async def post(body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        return await client.post("/v1/uploads", json=body, headers=headers)

    await contract.check(op, await post(declared, bearer()), 201)
    key = {"Idempotency-Key": "s-1", **bearer()}
    for status in (201, 200):
        await contract.check(op, await post(declared, key), status)
    await contract.check(op, await post({"size": len(PHOTO)}, bearer()), 400)
    await contract.check(op, await post(declared), 401)
    await contract.check(op, await post({**declared, "space": "team"}, bearer()), 403)
    single = {**declared, "kind": "single", "collection": "one"}
    await contract.check(op, await post(single, bearer()), 201)
    await contract.check(op, await post(single, bearer()), 409)
    await contract.check(op, await post({**declared, "kind": "tiny"}, bearer()), 413)
    await contract.check(op, await post({**declared, "content_type": "image/tiff"}, bearer()), 415)
    await contract.check(op, await post({**declared, "size": 1}, key), 422)
    tight = await over_budget(
        op,
        lambda on: on.post("/v1/uploads", json=declared, headers=bearer()),
        user_uploads_per_min=1,
    )
    assert_all_answered(contract, op, client, tight)


async def test_put_upload_content(
    contract: Contract, client: Client, settings: Settings, made: MakeClient
) -> None:
    """PUT /v1/uploads/{id}/content: 204, or the refusal of a bad URL, bad bytes or an owner
    with every in-flight slot taken."""
    op = ("PUT", "/v1/uploads/{media_id}/content")

    async def put(url: str, data: bytes) -> Any:
        return await client.put(url, data=data, headers={"Content-Type": "image/jpeg"})

    session = await opened(client)
    url = session["upload"]["url"]
    await contract.check(op, await put(url, PHOTO), 204)
    await contract.check(op, await put(url.replace("md5=", "md5=A"), PHOTO), 403)
    # Signed as the app would, for a session that does not exist.
    unknown = sign_path(content_path("A" * 22), settings.url_signing_secret, 60)
    await contract.check(op, await put(unknown, PHOTO), 404)
    done = await client.post(session["complete_url"], headers=bearer())
    assert done.status == 201
    await contract.check(op, await put(url, PHOTO), 409)
    waiting = await opened(client)
    old = sign_path(
        content_path(waiting["id"]), settings.url_signing_secret, 60, now=time.time() - 3600
    )
    await contract.check(op, await put(old, PHOTO), 410)
    small = await opened(client, size=len(PHOTO) - 1)
    await contract.check(op, await put(small["upload"]["url"], PHOTO), 413)
    html = await opened(client, HTML)
    await contract.check(op, await put(html["upload"]["url"], HTML), 415)
    empty = await opened(client)
    await contract.check(op, await put(empty["upload"]["url"], b""), 422)
    capped = await made(owner_max_inflight=0)
    busy_owner = await opened(client)
    await contract.check(op, await capped.put(busy_owner["upload"]["url"], data=PHOTO), 429)
    # A body whose chunked framing breaks, as aiohttp's pure-Python parser hands it over
    # (tests/test_hostile.py, TestBrokenFraming): 400 incomplete_body, the session kept.
    broken = await opened(client)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(aiohttp.web_protocol, "HttpRequestParser", HttpRequestParserPy)
        head = request_head("PUT", broken["upload"]["url"], "Transfer-Encoding: chunked")
        status, problem = await exchange(client, head, b"1\r\nx\r\n" + b"0" * 9000 + b"\r\n")
    assert status == 400
    contract.validate(
        contract.response(op, 400)["content"]["application/problem+json"]["schema"], problem
    )
    assert_all_answered(contract, op, client, capped)


async def test_complete_upload_session(
    contract: Contract, client: Client, made: MakeClient, tmp_path: Path
) -> None:
    """POST /v1/uploads/{id}/complete: 201, 200 again, 202 asynchronously, each refusal."""
    op = ("POST", "/v1/uploads/{media_id}/complete")

    async def sent(on: Client, data: bytes = PHOTO, **members: Any) -> dict[str, Any]:
        session = await opened(on, data, **members)
        response = await on.put(session["upload"]["url"], data=data)
        assert response.status == 204, await response.text()
        return session

    async def complete(on: Client, session: dict[str, Any], **headers: str) -> Any:
        return await on.post(session["complete_url"], headers=headers or bearer())

    session = await sent(client)
    await contract.check(op, await complete(client, session), 201)
    await contract.check(op, await complete(client, session), 200)
    later = await sent(client)
    await contract.check(op, await complete(client, later, Prefer="respond-async", **bearer()), 202)
    await contract.check(op, await complete(client, later, Authorization="Bearer x"), 401)
    cookie = {"Cookie": f"{COOKIE}={bearer()['Authorization'].removeprefix('Bearer ')}"}
    await contract.check(
        op, await complete(client, later, Origin="https://evil.example", **cookie), 403
    )
    await contract.check(
        op, await complete(client, {"complete_url": f"/v1/uploads/{'A' * 22}/complete"}), 404
    )
    await contract.check(op, await complete(client, await opened(client)), 409)
    elsewhere = await client.post(
        later["complete_url"], json={"collection": "elsewhere"}, headers=bearer()
    )
    await contract.check(op, elsewhere, 409)
    malformed = await client.post(later["complete_url"], json={"kind": 5}, headers=bearer())
    await contract.check(op, malformed, 400)
    expired = await sent(client)
    await client.app[DB].execute(
        "UPDATE media SET expires_at = now() - interval '1 second' WHERE id = $1", expired["id"]
    )
    await contract.check(op, await complete(client, expired), 410)

    async def stored(data: bytes, **members: Any) -> dict[str, Any]:
        """A session whose object was written straight to the store (a presigned upload
        is checked by the store, not by the app), holding `data`."""
        session = await opened(client, **members)
        raw = tmp_path / session["id"]
        raw.write_bytes(data)
        await client.app[STORAGE].put(upload_key(session["id"]), raw, "image/jpeg")
        return session

    await contract.check(op, await complete(client, await stored(PHOTO, size=len(PHOTO) - 1)), 413)
    await contract.check(op, await complete(client, await stored(HTML)), 415)
    truncated = PHOTO[: len(PHOTO) // 2]
    await contract.check(op, await complete(client, await sent(client, truncated)), 422)

    capped = await made(owner_max_inflight=0)
    await contract.check(op, await complete(capped, await sent(client)), 429)
    hasty = await made(job_timeout_s=0.001)
    await contract.check(op, await complete(hasty, await sent(hasty)), 500)
    waiting = await sent(client)
    await close_database(client)
    await contract.check(op, await complete(client, waiting), 503)
    assert_all_answered(contract, op, client, capped, hasty)


@pytest.mark.parametrize(
    ("path", "operation"),
    [
        ("/v1/limits", ("GET", "/v1/limits")),
        ("/v1/openapi.json", ("GET", "/v1/openapi.json")),
        ("/healthz", ("GET", "/healthz")),
        ("/metrics", ("GET", "/metrics")),
        ("/", ("GET", "/")),
    ],
)
async def test_documents_that_always_answer(
    contract: Contract, client: Client, path: str, operation: Operation
) -> None:
    """The limits, this document, liveness, metrics and the page answer 200, and refuse a
    request with a body encoding as every operation does (415)."""
    await contract.check(operation, await client.get(path), 200)
    encoded = {"Content-Encoding": "gzip"}
    await contract.check(operation, await client.get(path, headers=encoded), 415)
    assert_all_answered(contract, operation, client)


async def test_readyz(contract: Contract, client: Client) -> None:
    """GET /readyz: 200 while everything answers, 503 naming the database when it does not."""
    op = ("GET", "/readyz")
    await contract.check(op, await client.get("/readyz"), 200)
    encoded = {"Content-Encoding": "gzip"}
    await contract.check(op, await client.get("/readyz", headers=encoded), 415)
    await close_database(client)
    body = await contract.check(op, await client.get("/readyz"), 503)
    assert body["checks"]["database"] == "unavailable"
    assert_all_answered(contract, op, client)


async def test_page_assets(contract: Contract, client: Client) -> None:
    """GET /static/{name}: the file, 304 when it has not changed, 404 for any other name."""
    op = ("GET", "/static/{name}")
    first = await client.get("/static/app.css")
    await contract.check(op, first, 200)
    again = {"If-None-Match": first.headers["ETag"]}
    await contract.check(op, await client.get("/static/app.css", headers=again), 304)
    await contract.check(op, await client.get("/static/secrets.txt"), 404)
    assert_all_answered(contract, op, client)


async def test_moderate_media(contract: Contract, client: Client) -> None:
    """POST /v1/media/{id}/moderation: 200 allowed, 204 denied, 409 once decided, and the
    refusals of a bad body, no token, a non-admin and an unknown id."""
    op = ("POST", "/v1/media/{media_id}/moderation")
    admin = {"Authorization": f"Bearer {mint_token(JWT_SECRET, 'root', admin=True)}"}
    first, second = await uploaded(client, kind="queue"), await uploaded(client, kind="queue")

    async def decide(media_id: str, body: Any, headers: dict[str, str] | None) -> Any:
        return await client.post(f"/v1/media/{media_id}/moderation", json=body, headers=headers)

    allow, deny = {"decision": "allow"}, {"decision": "deny"}
    await contract.check(op, await decide(first["id"], {"decision": "maybe"}, admin), 400)
    await contract.check(op, await decide(first["id"], allow, None), 401)
    await contract.check(op, await decide(first["id"], allow, bearer()), 403)
    await contract.check(op, await decide("k3Jx9QmT2vLr8WcA5nYpZb", allow, admin), 404)
    await contract.check(op, await decide(first["id"], allow, admin), 200)
    await contract.check(op, await decide(first["id"], deny, admin), 409)
    await contract.check(op, await decide(second["id"], deny, admin), 204)
    assert_all_answered(contract, op, client)


async def test_list_moderation(contract: Contract, client: Client) -> None:
    """GET /v1/moderation: the queue for admins; a bad status, no token, a non-admin."""
    op = ("GET", "/v1/moderation")
    admin = {"Authorization": f"Bearer {mint_token(JWT_SECRET, 'root', admin=True)}"}
    await uploaded(client, kind="queue")
    page = await contract.check(op, await client.get("/v1/moderation", headers=admin), 200)
    assert len(page["items"]) == 1
    await contract.check(op, await client.get("/v1/moderation?status=ready", headers=admin), 400)
    await contract.check(op, await client.get("/v1/moderation"), 401)
    await contract.check(op, await client.get("/v1/moderation", headers=bearer()), 403)


ADMIN = bearer("root", admin=True)


async def test_add_blocklist_entry(contract: Contract, client: Client) -> None:
    """POST /v1/blocklist: 201 new, 200 blocked already, 400 bad body, 401, 403 non-admin."""
    op = ("POST", "/v1/blocklist")
    entry = {"sha256": "a" * 64, "reason": "report"}
    await contract.check(op, await client.post("/v1/blocklist", json=entry, headers=ADMIN), 201)
    await contract.check(op, await client.post("/v1/blocklist", json=entry, headers=ADMIN), 200)
    both = {**entry, "pdq": "b" * 64}
    await contract.check(op, await client.post("/v1/blocklist", json=both, headers=ADMIN), 400)
    await contract.check(op, await client.post("/v1/blocklist", json=entry), 401)
    refused = await client.post("/v1/blocklist", json=entry, headers=bearer())
    await contract.check(op, refused, 403)
    assert_all_answered(contract, op, client)


async def test_list_blocklist(contract: Contract, client: Client) -> None:
    """GET /v1/blocklist: 200 a page, 400 a bad cursor, 401, 403 non-admin."""
    op = ("GET", "/v1/blocklist")
    await contract.check(op, await client.get("/v1/blocklist", headers=ADMIN), 200)
    bad = await client.get("/v1/blocklist?cursor=%%%", headers=ADMIN)
    await contract.check(op, bad, 400)
    await contract.check(op, await client.get("/v1/blocklist"), 401)
    await contract.check(op, await client.get("/v1/blocklist", headers=bearer()), 403)
    assert_all_answered(contract, op, client)


async def test_remove_blocklist_entry(contract: Contract, client: Client) -> None:
    """DELETE /v1/blocklist/{id}: 204, then 404; 401, 403 non-admin."""
    op = ("DELETE", "/v1/blocklist/{entry_id}")
    added = await client.post("/v1/blocklist", json={"pdq": "c" * 64, "reason": "x"}, headers=ADMIN)
    path = f"/v1/blocklist/{(await added.json())['id']}"
    await contract.check(op, await client.delete(path), 401)
    await contract.check(op, await client.delete(path, headers=bearer()), 403)
    await contract.check(op, await client.delete(path, headers=ADMIN), 204)
    await contract.check(op, await client.delete(path, headers=ADMIN), 404)
    assert_all_answered(contract, op, client)


async def test_take_down_media(contract: Contract, client: Client) -> None:
    """POST /v1/media/{id}/takedown: 200 with what was blocked and removed; 400 bad body,
    401, 403 non-admin, 404 unknown, 409 not ready."""
    op = ("POST", "/v1/media/{media_id}/takedown")
    media = await uploaded(client)
    path = f"/v1/media/{media['id']}/takedown"
    body = {"reason": "report"}
    await contract.check(op, await client.post(path, json={"similar": 1}, headers=ADMIN), 400)
    await contract.check(op, await client.post(path, json=body), 401)
    await contract.check(op, await client.post(path, json=body, headers=bearer()), 403)
    session = await opened(client)
    pending = f"/v1/media/{session['id']}/takedown"
    await contract.check(op, await client.post(pending, json=body, headers=ADMIN), 409)
    await contract.check(op, await client.post(path, json=body, headers=ADMIN), 200)
    await contract.check(op, await client.post(path, json=body, headers=ADMIN), 404)
    assert_all_answered(contract, op, client)


def test_every_operation_has_its_test(contract: Contract) -> None:
    """A new operation in the document needs its exercise in this module."""
    exercised = {
        ("POST", "/v1/media"),
        ("GET", "/v1/media"),
        ("GET", "/v1/media/{media_id}"),
        ("DELETE", "/v1/media/{media_id}"),
        ("GET", "/v1/media/{media_id}/{variant}"),
        ("POST", "/v1/media/{media_id}/moderation"),
        ("GET", "/v1/moderation"),
        ("POST", "/v1/media/{media_id}/takedown"),
        ("PUT", "/v1/collections/{collection}/order"),
        ("DELETE", "/v1/spaces/{space}/media"),
        ("POST", "/v1/uploads"),
        ("PUT", "/v1/uploads/{media_id}/content"),
        ("POST", "/v1/uploads/{media_id}/complete"),
        ("POST", "/v1/blocklist"),
        ("GET", "/v1/blocklist"),
        ("DELETE", "/v1/blocklist/{entry_id}"),
        ("GET", "/v1/limits"),
        ("GET", "/v1/openapi.json"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/"),
        ("GET", "/static/{name}"),
    }
    assert set(contract.operations()) == exercised
