"""Usage (issue 29): `python -m mediasvc usage` counts what was uploaded, by owner, space
and kind (media, variant bytes with alternates, kept sources, pending sessions), and the
`mediasvc_usage_*` gauges show the same per kind on every node, computed by one."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import images
import pytest
from support import JWT_SECRET, Client, bearer, through_pgbouncer, upload_form

from mediasvc import db, usage
from mediasvc.appkeys import DB, KINDS, METRICS
from mediasvc.auth import mint_token
from mediasvc.config import Settings
from mediasvc.db import queries
from mediasvc.db.queries import UsageGroup
from mediasvc.metrics import Metrics
from mediasvc.ops.usage import show_usage
from mediasvc.stack import devstack
from mediasvc.stack.pgcluster import PostgresCluster

KINDS_TABLE = {"kinds": {"kept": {"keep_source": True}, "chat": {"sizes": {"s": 64, "m": 200}}}}


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    result: Settings = make_settings(kinds_table=KINDS_TABLE)
    return result


async def upload(client: Client, owner: str, kind: str, space: str | None = None) -> Any:
    token = mint_token(JWT_SECRET, owner, spaces=[space] if space else [])
    fields = {"kind": kind, **({"space": space} if space else {})}
    response = await client.post(
        "/v1/media",
        data=upload_form(images.make_jpeg(width=900, height=600), **fields),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status == 201, await response.text()
    return await response.json()


def variant_bytes(media: dict[str, Any]) -> int:
    return sum(
        v["bytes"] + sum(a["bytes"] for a in v.get("alternates", {}).values())
        for v in media["variants"].values()
    )


@pytest.fixture
async def uploaded(client: Client) -> list[dict[str, Any]]:
    """alice: two `kept` (source kept) and one `chat` in space team; bob: one `post`, and
    an upload session waiting for its bytes (counted as pending, not as media)."""
    media = [
        await upload(client, "alice", "kept"),
        await upload(client, "alice", "kept"),
        await upload(client, "alice", "chat", space="team"),
        await upload(client, "bob", "post"),
    ]
    opened = await client.post(
        "/v1/uploads",
        json={"kind": "chat", "content_type": "image/jpeg", "size": 1000},
        headers=bearer("bob"),
    )
    assert opened.status == 201, await opened.text()
    return media


async def lines(settings: Settings, by: UsageGroup, top: int | None = 20) -> list[str]:
    out = io.StringIO()
    assert await show_usage(settings, by=by, top=top, out=out) == 0
    return out.getvalue().splitlines()


def expected(
    media: list[dict[str, Any]], key: str, source_kinds: tuple[str, ...] = ("kept",)
) -> dict[str | None, tuple[int, int, int]]:
    """Per group: media, variant bytes, source bytes, from the upload answers."""
    groups: dict[str | None, tuple[int, int, int]] = {}
    for item in media:
        count, variants, sources = groups.get(item[key], (0, 0, 0))
        source = item["original"]["bytes"] if item["kind"] in source_kinds else 0
        groups[item[key]] = (count + 1, variants + variant_bytes(item), sources + source)
    return groups


@pytest.mark.parametrize("by", ["owner", "space", "kind"])
async def test_usage_by_group_matches_what_was_uploaded(
    client: Client, settings: Settings, uploaded: list[dict[str, Any]], by: UsageGroup
) -> None:
    """Each group's numbers are the uploads' own: their count, the bytes of their variants
    as the API reported them, the kept sources' sizes; the session counts as pending."""
    async with db.connection(client.app[DB]) as conn:
        rows = await queries.usage(conn, by=by, source_kinds=["kept"], limit=None)
    got = {row.name: (row.media, row.variant_bytes, row.source_bytes) for row in rows}
    assert by is not None
    want = expected(uploaded, by)
    pending = {"owner": "bob", "space": None, "kind": "chat"}[by]
    want.setdefault(pending, (0, 0, 0))
    assert got == want
    assert {row.name: row.pending_sessions for row in rows if row.pending_sessions} == {pending: 1}
    # Largest first.
    assert [r.variant_bytes + r.source_bytes for r in rows] == sorted(
        (r.variant_bytes + r.source_bytes for r in rows), reverse=True
    )


async def test_the_command_prints_a_table_and_the_total(
    client: Client, settings: Settings, uploaded: list[dict[str, Any]]
) -> None:
    """`usage --by owner --top 1`: the header, the largest owner (alice), the total."""
    printed = await lines(settings, "owner", top=1)
    assert printed[0].split() == ["OWNER", "MEDIA", "VARIANTS", "SOURCES", "PENDING", "SESSIONS"]
    assert printed[1].split()[:2] == ["alice", "3"]
    assert len(printed) == 3
    assert printed[2].startswith("total: 4 media, ")
    assert printed[2].endswith(" of sources, 1 pending sessions")
    assert "(no space)" in "\n".join(await lines(settings, "space"))
    assert (await lines(settings, None))[0].startswith("total: 4 media")


@through_pgbouncer
async def test_the_gauges_are_computed_by_one_node_and_shown_by_all(
    client: Client, settings: Settings, uploaded: list[dict[str, Any]]
) -> None:
    """Node A computes the snapshot; node B, refreshing within the interval, only reads it;
    both expose the same numbers; while A holds the lock, B does not compute either."""
    pool, keeping = client.app[DB], usage.source_kinds(client.app[KINDS])
    node_b = Metrics()
    async with pool.acquire() as holder, holder.transaction():
        assert await queries.try_lock_usage(holder)
        assert not await usage.refresh(pool, node_b, keeping, max_age_s=60)
    assert await usage.refresh(pool, client.app[METRICS], keeping, max_age_s=60)
    assert not await usage.refresh(pool, node_b, keeping, max_age_s=60)

    text = await (await client.get("/metrics")).text()
    want = expected(uploaded, "kind")
    for kind, (count, variants, sources) in want.items():
        assert f'mediasvc_usage_media{{kind="{kind}"}} {float(count)}' in text
        assert (
            f'mediasvc_usage_stored_bytes{{kind="{kind}",stored="variants"}} {float(variants)}'
            in text
        )
        assert (
            f'mediasvc_usage_stored_bytes{{kind="{kind}",stored="sources"}} {float(sources)}'
            in text
        )
    assert 'mediasvc_usage_pending_sessions{kind="chat"} 1.0' in text
    assert node_b.exposition().decode().count("mediasvc_usage_media{") == len(want)


def test_commands_beside_make_run_find_its_database_and_secrets(tmp_path: Path) -> None:
    """With no variables set, a command takes the running dev cluster's address (from its
    pid file) and the secrets kept in the data dir; what is set wins; without a dev stack
    the environment stays as it is."""
    assert devstack.env_beside_dev({"MEDIASVC_DATA_DIR": str(tmp_path)}) == {
        "MEDIASVC_DATA_DIR": str(tmp_path)
    }
    (tmp_path / devstack.JWT_SECRET_FILE).write_text("j" * 40)
    (tmp_path / devstack.SIGNING_SECRET_FILE).write_text("s" * 40)
    cluster = PostgresCluster(tmp_path / "postgres")
    cluster.data.mkdir(parents=True)
    cluster.password_file.write_text("pw")
    (cluster.data / "postmaster.pid").write_text("123\n/data\n1700000000\n54321\n\n127.0.0.1\n")

    env = devstack.env_beside_dev({"MEDIASVC_DATA_DIR": str(tmp_path)})
    settings = Settings.from_env(env)
    assert settings.database_url == cluster.dsn(54321, devstack.DATABASE)
    assert (settings.jwt_secret, settings.url_signing_secret) == ("j" * 40, "s" * 40)
    mine = {"MEDIASVC_DATA_DIR": str(tmp_path), "MEDIASVC_DATABASE_URL": "postgresql://h/d"}
    assert devstack.env_beside_dev(mine)["MEDIASVC_DATABASE_URL"] == "postgresql://h/d"
