"""Kinds from a TOML file: each rule at its boundary, replace-on-upload, startup errors."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any

import aiohttp
import images
import pytest
import pyvips
from gates import wait_until
from support import (
    Client,
    assert_nothing_left,
    assert_one_media_left,
    bearer,
    field_part,
    file_part,
    multipart_body,
    readme_program,
    stored_keys,
)

from mediasvc.app import create_app
from mediasvc.appkeys import DB, SETTINGS
from mediasvc.config import ConfigError, Settings
from mediasvc.kinds import KIND_KEYS, default_kind, kind_rules

# A 100x100 JPEG with a one-character comment, and the same with two: one byte apart.
EXACT = images.make_jpeg(width=100, height=100, comment="x")
ONE_MORE = images.make_jpeg(width=100, height=100, comment="xx")
assert len(ONE_MORE) == len(EXACT) + 1

KINDS = {
    "avatar": {
        "crop": "square",
        "max_bytes": len(EXACT),
        "min_width": 100,
        "min_height": 100,
        "collection_max": 1,
        "replace": True,
    },
    "post": {"max_bytes": 5 * 1024 * 1024},
    "og": {"output": "jpeg", "quality": 85},
    "chat": {"accept": ["image/png", "image/webp"], "animated": False, "max_width": 2000},
}


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    """The issue's kinds file, plus a PNG/WebP-only chat kind that keeps first frames."""
    result: Settings = make_settings(kinds_table={"kinds": KINDS}, queue_max=16)
    return result


async def post(client: Client, data: bytes, *, kind_first: bool = True, **fields: str) -> Any:
    """Upload `data` with `fields`, the kind before the file or after it."""
    parts = [field_part(name, value) for name, value in fields.items()]
    file = file_part(data)
    body, content_type = multipart_body([*parts, file] if kind_first else [file, *parts])
    return await client.post(
        "/v1/media", data=body, headers={**bearer(), "Content-Type": content_type}
    )


async def problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status == status, await response.text()
    body: dict[str, Any] = await response.json()
    assert body["code"] == code
    return body


class TestByteCap:
    @pytest.mark.parametrize("kind_first", [True, False], ids=["kind-first", "kind-after"])
    async def test_the_cap_passes_at_the_limit_and_refuses_one_byte_more(
        self, client: Client, settings: Settings, kind_first: bool
    ) -> None:
        """max_bytes bytes pass; one more is 413 with the kind's limit, wherever the kind is."""
        refused = await post(client, ONE_MORE, kind_first=kind_first, kind="avatar")
        body = await problem(refused, 413, "payload_too_large")
        assert body["limit"] == len(EXACT)
        await assert_nothing_left(client, settings)
        assert (await post(client, EXACT, kind_first=kind_first, kind="avatar")).status == 201

    async def test_other_kinds_keep_their_own_cap(self, client: Client) -> None:
        """The avatar's small cap does not apply to a post."""
        big = images.make_jpeg(width=1200, height=900)
        assert len(big) > len(EXACT)
        assert (await post(client, big, kind="post")).status == 201


class TestSize:
    async def test_at_the_minimum_passes_and_one_pixel_less_is_too_small(
        self, client: Client, settings: Settings
    ) -> None:
        """100x100 passes; 99x100 is 422 too_small naming the minimum and the actual size."""
        small = images.make_jpeg(width=99, height=100)
        body = await problem(await post(client, small, kind="avatar"), 422, "too_small")
        assert (body["min_width"], body["min_height"]) == (100, 100)
        assert (body["actual_width"], body["actual_height"]) == (99, 100)
        await assert_nothing_left(client, settings)
        assert (await post(client, EXACT, kind="avatar")).status == 201

    async def test_wider_than_the_maximum_is_too_large(self, client: Client) -> None:
        """A kind's max_width is checked on the displayed size."""
        wide = images.make_png(width=2001, height=10)
        body = await problem(await post(client, wide, kind="chat"), 422, "too_large")
        assert (body["max_width"], body["actual_width"]) == (2000, 2001)
        ok = images.make_png(width=2000, height=10)
        assert (await post(client, ok, kind="chat")).status == 201


class TestTypesAndOutput:
    @pytest.mark.parametrize("kind_first", [True, False], ids=["kind-first", "kind-after"])
    async def test_a_type_outside_accept_is_415(
        self, client: Client, settings: Settings, kind_first: bool
    ) -> None:
        """A JPEG is accepted globally but not by the PNG/WebP-only chat kind."""
        response = await post(client, images.make_jpeg(), kind_first=kind_first, kind="chat")
        body = await problem(response, 415, "unsupported_media_type")
        assert body["accepted"] == ["image/png", "image/webp"]
        await assert_nothing_left(client, settings)

    async def test_a_kind_that_keeps_first_frames_makes_stills(self, client: Client) -> None:
        """`animated = false`: an animated WebP gives one-frame variants."""
        response = await post(client, images.make_animated_webp(), kind="chat")
        assert response.status == 201, await response.text()
        media = await response.json()
        for name in media["variants"]:
            key = media["variants"][name]["url"].removeprefix("/media/")
            # All frames loaded: an animation would be a strip several frames high.
            image = pyvips.Image.new_from_file(str(client_media(client, key)), n=-1)
            assert image.height == media["variants"][name]["height"]

    async def test_a_jpeg_kind_is_served_by_nginx_as_jpeg(
        self, client: Client, nginx: str, http: aiohttp.ClientSession
    ) -> None:
        """The og kind writes progressive JPEG variants that nginx serves as image/jpeg."""
        response = await post(client, images.make_png(alpha=True), kind="og")
        media = await response.json()
        for variant in media["variants"].values():
            assert variant["mime"] == "image/jpeg"
            assert variant["url"].endswith(".jpg")
            async with http.get(nginx + variant["url"]) as served:
                assert served.status == 200
                assert served.headers["Content-Type"] == "image/jpeg"
                data = await served.read()
            assert data[:2] == b"\xff\xd8"
            assert 0xC2 in images.jpeg_segments(data)  # SOF2: progressive


def client_media(client: Client, key: str) -> Path:
    """Where local storage keeps `key`."""
    return client.app[SETTINGS].media_dir / key


class TestNames:
    async def test_an_unknown_kind_is_400_naming_the_known_ones(
        self, client: Client, settings: Settings
    ) -> None:
        """The refusal lists every configured kind, and nothing was spooled."""
        body = await problem(await post(client, EXACT, kind="banner"), 400, "bad_request")
        assert body["field"] == "kind"
        assert set(body["known"]) == {"post", "avatar", "og", "chat"}
        await assert_nothing_left(client, settings)

    async def test_limits_lists_every_kind_with_its_effective_rules(self, client: Client) -> None:
        """GET /v1/limits shows each kind's rules, inherited ones included."""
        kinds = (await (await client.get("/v1/limits")).json())["kinds"]
        assert kinds["avatar"]["max_bytes"] == len(EXACT)
        assert (kinds["avatar"]["crop"], kinds["avatar"]["replace"]) == ("square", True)
        assert kinds["og"]["output"] == "image/jpeg"
        assert kinds["og"]["quality"] == 85
        assert kinds["chat"]["accept"] == ["image/png", "image/webp"]
        assert kinds["post"]["max_pixels"] == 60_000_000  # inherited from the global limit

    async def test_media_of_a_kind_removed_from_the_file_still_read_and_delete(
        self, client: Client, settings: Settings, aiohttp_client: Any
    ) -> None:
        """The kind is stored by name; restarting without it breaks neither read nor delete."""
        created = await (await post(client, images.make_png(), kind="chat")).json()
        without = {name: rules for name, rules in KINDS.items() if name != "chat"}
        other: Client = await aiohttp_client(
            create_app(Settings(**{**_fields(settings), "kinds_table": {"kinds": without}}))
        )
        response = await other.get(f"/v1/media/{created['id']}", headers=bearer())
        assert (await response.json())["kind"] == "chat"
        assert (await other.delete(f"/v1/media/{created['id']}", headers=bearer())).status == 204


def _fields(settings: Settings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in settings.__dataclass_fields__}


class TestReplace:
    async def test_a_new_avatar_replaces_the_old_one(
        self, client: Client, settings: Settings
    ) -> None:
        """The second avatar answers which media it replaced; the first is gone, files too."""
        first = await (await post(client, EXACT, kind="avatar")).json()
        assert first["collection"] == "avatar"
        assert first["replaced"] == []
        second = await (await post(client, EXACT, kind="avatar")).json()
        assert second["replaced"] == [first["id"]]
        assert (await client.get(f"/v1/media/{first['id']}", headers=bearer())).status == 404
        keys = await stored_keys(client)
        assert len(keys) == 5
        assert all(second["id"] in key for key in keys)
        listing = await (await client.get("/v1/media?collection=avatar", headers=bearer())).json()
        assert [item["id"] for item in listing["items"]] == [second["id"]]

    async def test_concurrent_replacing_uploads_leave_exactly_one(
        self, client: Client, settings: Settings
    ) -> None:
        """Ten racing avatars: one item is left, and only its five files."""
        responses = await asyncio.gather(*(post(client, EXACT, kind="avatar") for _ in range(10)))
        assert [r.status for r in responses] == [201] * 10
        await assert_one_media_left(client)

    async def test_an_avatar_being_deleted_is_not_replaced_as_well(self, client: Client) -> None:
        """A delete that marks the old avatar while the new one's retirement waits for that
        row wins: the new upload replaced nothing (one removal, not two, is recorded)."""
        first = await (await post(client, EXACT, kind="avatar")).json()
        pool = client.app[DB]
        async with pool.acquire() as conn, conn.transaction():
            # The delete's first step, held open: the old row is locked mid-change.
            await conn.execute("UPDATE media SET status = 'deleting' WHERE id = $1", first["id"])
            upload = asyncio.create_task(post(client, EXACT, kind="avatar"))

            async def waits_for_the_row() -> bool:
                waiting = await pool.fetchval(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
                return bool(waiting)

            await wait_until(waits_for_the_row, "the replacing upload waits for the old row")
        second = await upload
        assert second.status == 201
        assert (await second.json())["replaced"] == []
        status = await pool.fetchval("SELECT status FROM media WHERE id = $1", first["id"])
        assert status == "deleting"

    async def test_a_reader_always_sees_exactly_one_avatar(self, client: Client) -> None:
        """While avatars keep replacing each other, every listing holds exactly one ready."""
        await post(client, EXACT, kind="avatar")
        uploads = asyncio.gather(*(post(client, EXACT, kind="avatar") for _ in range(4)))
        counts = []
        while not uploads.done():
            listing = await client.get("/v1/media?collection=avatar", headers=bearer())
            items = (await listing.json())["items"]
            # The owner also sees uploads still processing; ready is what others are shown.
            counts.append(sum(item["status"] == "ready" for item in items))
        await uploads
        assert counts
        assert set(counts) == {1}


class TestFile:
    def write(self, tmp_path: Path, text: str) -> dict[str, str]:
        path = tmp_path / "kinds.toml"
        path.write_text(textwrap.dedent(text))
        return {
            "MEDIASVC_DATABASE_URL": "postgresql://x/y",
            "MEDIASVC_URL_SIGNING_SECRET": "s" * 32,
            "MEDIASVC_JWT_SECRET": "j" * 32,
            "MEDIASVC_KINDS_FILE": str(path),
        }

    def test_the_issue_example_loads(self, tmp_path: Path) -> None:
        """The README's kinds file, taken from the README, gives the rules it says."""
        env = self.write(tmp_path, readme_program("toml", "[kinds.avatar]"))
        kinds = kind_rules(Settings.from_env(env))
        assert kinds["avatar"].max_bytes == 2097152
        assert kinds["avatar"].image.min_width == 100
        assert (kinds["avatar"].collection_max, kinds["avatar"].replace) == (1, True)
        assert kinds["post"].max_bytes == 5242880
        assert kinds["post"].image.crop == "none"
        assert (kinds["og"].image.output_format, kinds["og"].image.quality) == ("jpeg", 85)

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("[kinds.avatar]\nsize = 3\n", "kinds.avatar.size: unknown key"),
            ('[kinds.avatar]\nmax_bytes = "2MB"\n', "kinds.avatar.max_bytes: must be an integer"),
            ("[kinds.avatar]\nreplace = 1\n", "kinds.avatar.replace: must be true or false"),
            (
                "[kinds.post]\nmax_bytes = 99999999999\n",
                "kinds.post.max_bytes: must be at most 26214400",
            ),
            ("[kinds.post]\nmax_pixels = 70000000\n", "kinds.post.max_pixels: must be at most"),
            ("[kinds.avatar]\nreplace = true\n", "kinds.avatar.replace: needs collection_max"),
            ('[kinds.chat]\naccept = ["image/tiff"]\n', "kinds.chat.accept: image/tiff"),
            ('[kinds.chat]\noutput = "gif"\n', "kinds.chat.output: must be one of"),
            ("[kinds.chat]\nquality = 0\n", "kinds.chat.quality: must be a positive integer"),
            ("[kinds.chat]\nmin_width = 10\nmax_width = 5\n", "kinds.chat.min_width"),
            ('[kinds."Big Kind"]\n', "kinds.Big Kind: a kind's name"),
            ("[other]\nx = 1\n", "MEDIASVC_KINDS_FILE"),
            ("[kinds.avatar\n", "not valid TOML"),
            ('builtins = "no"\n', "'builtins' must be true or false"),
            ('default = "chat"\n', "default: 'chat' is not a kind"),
            ('builtins = false\ndefault = "post"\n[kinds.chat]\n', "default: 'post'"),
        ],
    )
    def test_a_bad_file_stops_startup_with_one_line_naming_the_key(
        self, tmp_path: Path, text: str, message: str
    ) -> None:
        """Every mistake in the file is one line that says where it is."""
        # The file is read with the settings, its tables made into rules by the app.
        with pytest.raises(ConfigError) as caught:
            create_app(Settings.from_env(self.write(tmp_path, text)))
        assert message in str(caught.value)
        assert "\n" not in str(caught.value)
        assert "MEDIASVC_KINDS_FILE" in str(caught.value)

    def test_builtins_off_and_a_default_kind_leave_only_the_files_kinds(
        self, tmp_path: Path
    ) -> None:
        """`builtins = false`: no `post` nor `avatar`; `default` names the kind of an upload
        that sends none."""
        env = self.write(
            tmp_path,
            """
            builtins = false
            default = "chat"

            [kinds.chat]
            max_bytes = 1048576
            """,
        )
        settings = Settings.from_env(env)
        assert set(kind_rules(settings)) == {"chat"}
        assert default_kind(settings) == "chat"

    def test_without_a_file_post_and_avatar_are_as_before(self) -> None:
        """No file: a post keeps its aspect, an avatar is square, both with the global caps."""
        kinds = kind_rules(Settings(database_url="", url_signing_secret=""))
        assert set(kinds) == {"post", "avatar"}
        assert (kinds["post"].image.crop, kinds["avatar"].image.crop) == ("none", "square")
        assert kinds["post"].max_bytes == kinds["avatar"].max_bytes == 25 * 1024 * 1024
        assert not kinds["avatar"].replace


def test_limits_describe_a_kind_with_exactly_the_file_keys() -> None:
    """What /v1/limits answers per kind is what a kinds file may say, key for key."""
    kinds = kind_rules(Settings(database_url="", url_signing_secret=""))
    assert set(kinds["post"].describe().model_dump()) == KIND_KEYS


class TestOnlyTheProductsKinds:
    @pytest.fixture
    def settings(self, make_settings: Any) -> Settings:
        """A product that allows its own `chat` kind only, and uploads default to it."""
        result: Settings = make_settings(
            kinds_table={
                "builtins": False,
                "default": "chat",
                "kinds": {"chat": {"max_bytes": 200_000}},
            }
        )
        return result

    async def test_the_builtin_kinds_are_refused_and_uploads_default_to_chat(
        self, client: Client
    ) -> None:
        """`post` (with its global 25 MiB) is an unknown kind; an upload naming none is a
        chat, with chat's cap; /v1/limits lists chat alone."""
        refused = await post(client, images.make_png(), kind="post")
        assert refused.status == 400
        assert (await refused.json())["known"] == ["chat"]
        made = await post(client, images.make_png())
        assert made.status == 201, await made.text()
        assert (await made.json())["kind"] == "chat"
        limits = await (await client.get("/v1/limits")).json()
        assert list(limits["kinds"]) == ["chat"]
