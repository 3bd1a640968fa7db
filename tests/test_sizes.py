"""Sizes per kind (issue 28): a kind's own ladder through nginx on both backends, never
upscaled, square crops too; the `srcset` the JSON carries; the source kept privately for
`keep_source` kinds and removed with the media; bad ladders and formats stop startup."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path
from typing import Any

import aiohttp
import images
import pytest
import pyvips
from browser import browser_context, site
from support import (
    Client,
    bearer,
    parametrize_backends,
    post_media,
    send_direct,
    stored_bytes,
    stored_keys,
)

from mediasvc.app import create_app
from mediasvc.appkeys import DB, STORAGE
from mediasvc.config import ConfigError, Settings
from mediasvc.flows.reaper import reap
from mediasvc.keys import source_key
from mediasvc.stack.localproc import free_port

LADDER = {"thumb": 128, "card": 512, "screen": 1440, "retina": 2560}
KINDS = {
    "profile_photo": {"sizes": LADDER, "srcset_sizes": "(max-width: 600px) 100vw, 600px"},
    "square": {"sizes": {"a": 100, "b": 300}, "crop": "square"},
    "kept": {"keep_source": True},
}
PHOTO = images.make_jpeg(width=3000, height=2000)


@pytest.fixture
def settings(make_settings: Any) -> Settings:
    result: Settings = make_settings(
        kinds_table={"kinds": KINDS}, owner_max_bytes=10 * 2**20, job_timeout_s=60.0
    )
    return result


async def upload(client: Client, data: bytes, kind: str, **fields: str) -> dict[str, Any]:
    response = await post_media(client, data, kind=kind, **fields)
    assert response.status == 201, await response.text()
    body: dict[str, Any] = await response.json()
    return body


def dimensions(data: bytes) -> tuple[int, int]:
    image = pyvips.Image.new_from_buffer(data, "")
    return image.width, image.height


@parametrize_backends
class TestLadders:
    async def test_a_kinds_own_ladder_is_made_and_served(
        self, client: Client, nginx: str, http: aiohttp.ClientSession
    ) -> None:
        """Four sizes by their names, smallest first; nginx serves each at its size, and
        none of the default ladder's names."""
        media = await upload(client, PHOTO, "profile_photo")
        assert list(media["variants"]) == list(LADDER)
        for name, size in LADDER.items():
            variant = media["variants"][name]
            assert variant["url"].endswith(f"/{name}.webp")
            async with http.get(nginx + variant["url"]) as served:
                assert served.status == 200
                assert dimensions(await served.read()) == (size, round(size * 2 / 3))
        default_name = media["variants"]["thumb"]["url"].replace("thumb.webp", "full.webp")
        async with http.get(nginx + default_name) as served:
            assert served.status == 404

    async def test_a_small_source_is_never_upscaled(self, client: Client) -> None:
        """An 800 px photo stays 800 px at the 1440 and 2560 px sizes."""
        media = await upload(client, images.make_jpeg(width=800, height=600), "profile_photo")
        widths = {name: v["width"] for name, v in media["variants"].items()}
        assert widths == {"thumb": 128, "card": 512, "screen": 800, "retina": 800}
        # One srcset candidate per width: the two 800 px files are one choice.
        srcset = media["srcset"]["image/webp"]
        assert [c.split()[1] for c in srcset.split(", ")] == ["128w", "512w", "800w"]
        assert media["sizes"] == KINDS["profile_photo"]["srcset_sizes"]

    async def test_a_square_ladder_crops_every_size(self, client: Client) -> None:
        media = await upload(client, PHOTO, "square")
        assert [(v["width"], v["height"]) for v in media["variants"].values()] == [
            (100, 100),
            (300, 300),
        ]
        stored = await stored_bytes(client, _key(media["variants"]["b"]["url"]))
        assert dimensions(stored) == (300, 300)


def _key(url: str) -> str:
    return url.split("/media/", 1)[1]


class TestSrcset:
    async def test_chromium_picks_a_candidate_from_the_json(
        self, client: Client, nginx: str
    ) -> None:
        """A page pastes `srcset` and `sizes` as the JSON gives them; in a 300 px wide
        viewport at 2x pixels the image is 600 device pixels wide, and Chromium loads the
        1440 px file (the smallest at least that wide), not the largest."""
        media = await upload(client, PHOTO, "profile_photo")
        # The URLs are paths under the media URL; the test's page is on another origin.
        srcset = media["srcset"]["image/webp"].replace("/media/", f"{nginx}/media/")
        page_html = f'<img id="photo" srcset="{srcset}" sizes="{media["sizes"]}">'
        async with (
            site(free_port(), {"/": lambda _: page_html}) as origin,
            browser_context(
                [origin, nginx], device_scale_factor=2, viewport={"width": 300, "height": 400}
            ) as (context, problems),
        ):
            page = await context.new_page()
            await page.goto(origin + "/")
            await page.wait_for_function("document.getElementById('photo').complete")
            chosen = await page.evaluate("document.getElementById('photo').currentSrc")
        assert problems == []
        assert chosen.endswith("/screen.webp")


@parametrize_backends
class TestKeepSource:
    async def test_the_source_is_kept_privately_and_removed_with_the_media(
        self, client: Client, settings: Settings, nginx: str, http: aiohttp.ClientSession
    ) -> None:
        """The file as received (metadata and all) is stored outside every served prefix;
        DELETE removes it with the variants."""
        data = images.make_jpeg(width=1200, height=900, gps=True)
        media = await upload(client, data, "kept")
        key = source_key(media["id"])
        assert hashlib.sha256(await stored_bytes(client, key)).hexdigest() == (
            hashlib.sha256(data).hexdigest()
        )
        assert "source" not in str(media)
        for path in (f"/media/{key}", f"/media/{key.removeprefix('sources/')}", f"/{key}"):
            async with http.get(nginx + path) as served:
                assert served.status in (403, 404), path
        deleted = await client.delete(f"/v1/media/{media['id']}", headers=bearer())
        assert deleted.status == 204
        assert await stored_keys(client) == []

    async def test_a_sessions_source_is_kept_and_the_reaper_removes_it(
        self, client: Client, settings: Settings
    ) -> None:
        """Completed through an upload session, the source is kept the same way; a row
        stuck past the grace period goes with its source."""
        data = images.make_jpeg(width=640, height=480)
        opened = await client.post(
            "/v1/uploads",
            json={"kind": "kept", "content_type": "image/jpeg", "size": len(data)},
            headers=bearer(),
        )
        session = await opened.json()
        assert await send_direct(client, session["upload"], data) in (200, 204)
        completed = await client.post(session["complete_url"], headers=bearer())
        assert completed.status == 201, await completed.text()
        assert await stored_bytes(client, source_key(session["id"])) == data
        await client.app[DB].execute(
            "UPDATE media SET status = 'processing', updated_at = now() - interval '1 hour'"
        )
        await reap(client.app[DB], client.app[STORAGE], settings.spool_dir, grace_s=60)
        assert await stored_keys(client) == []

    async def test_the_source_counts_in_the_byte_quota(self, client: Client) -> None:
        """The quota counts originals, which the source is: 10 MiB hold what fits."""
        usage = await client.app[DB].fetchval("SELECT coalesce(sum(original_bytes), 0) FROM media")
        assert usage == 0
        media = await upload(client, PHOTO, "kept")
        assert media["original"]["bytes"] == len(PHOTO)
        stored = await client.app[DB].fetchval("SELECT sum(original_bytes) FROM media")
        assert stored == len(await stored_bytes(client, source_key(media["id"])))


class TestBadKindsFiles:
    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("[kinds.p]\nsizes = { big = 5000 }\n", "kinds.p.sizes.big: must be an integer from 1"),
            ("[kinds.p]\nsizes = { a = 10, a = 20 }\n", "not valid TOML"),
            ("[kinds.p]\nsizes = { a = 10, b = 10 }\n", "kinds.p.sizes: two sizes are the same"),
            ("[kinds.p]\nsizes = { Big = 10 }\n", "kinds.p.sizes.Big: a size's name"),
            ("[kinds.p]\nsizes = {}\n", "kinds.p.sizes: must be a table of 1 to 8"),
            (
                "[kinds.p]\nsizes = { a=1, b=2, c=3, d=4, e=5, f=6, g=7, h=8, i=9 }\n",
                "kinds.p.sizes: must be a table of 1 to 8",
            ),
            ('[kinds.p]\nformats = ["webp", "heic"]\n', "kinds.p.formats: unknown format 'heic'"),
            (
                '[kinds.p]\noutput = "jpeg"\nformats = ["webp", "avif"]\n',
                "kinds.p.formats: needs webp output",
            ),
            (
                '[kinds.gifs]\naccept = ["image/gif"]\nformats = ["webp", "avif"]\n',
                "kinds.gifs.formats: this kind takes only animations",
            ),
        ],
    )
    def test_a_bad_ladder_or_format_stops_startup_naming_the_key(
        self, tmp_path: Path, text: str, message: str
    ) -> None:
        path = tmp_path / "kinds.toml"
        path.write_text(textwrap.dedent(text))
        env = {
            "MEDIASVC_DATABASE_URL": "postgresql://x/y",
            "MEDIASVC_URL_SIGNING_SECRET": "s" * 32,
            "MEDIASVC_JWT_SECRET": "j" * 32,
            "MEDIASVC_KINDS_FILE": str(path),
        }
        with pytest.raises(ConfigError) as caught:
            create_app(Settings.from_env(env))
        assert message in str(caught.value)
        assert "\n" not in str(caught.value)
