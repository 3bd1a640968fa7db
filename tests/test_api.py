"""The upload API against the real app, real PostgreSQL and real files."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import images
import pytest
import pyvips
from support import (
    Client,
    assert_nothing_left,
    bearer,
    parametrize_backends,
    post_media,
    stored_bytes,
    through_pgbouncer,
    upload_form,
    upload_tiny,
)

from mediasvc.app import create_app
from mediasvc.appkeys import DB
from mediasvc.config import Settings
from mediasvc.imaging.variants import VARIANTS

pytestmark = parametrize_backends


async def stored_file(client: Client, url: str) -> bytes:
    """The stored bytes behind a public variant URL."""
    return await stored_bytes(client, url.removeprefix("/media/"))


class TestUpload:
    @through_pgbouncer
    async def test_upload_answers_201_with_location_and_five_ready_variants(
        self, client: Client, settings: Settings
    ) -> None:
        """A good JPEG becomes a ready media whose JSON matches the design's shape."""
        data = images.make_jpeg(width=1600, height=1200, orientation=6)
        response = await post_media(client, data)
        assert response.status == 201, await response.text()
        body = await response.json()
        assert response.headers["Location"] == f"/v1/media/{body['id']}"
        assert len(body["id"]) == 22
        assert body["owner"] == "alice"
        assert body["status"] == "ready"
        assert body["kind"] == "post"
        assert body["visibility"] == "public"
        assert body["original"] == {
            "mime": "image/jpeg",
            "bytes": len(data),
            "width": 1600,
            "height": 1200,
            "frames": 1,
            "sha256": hashlib.sha256(data).hexdigest(),
        }
        assert list(body["variants"]) == [spec.name for spec in VARIANTS]
        for spec in VARIANTS:
            variant = body["variants"][spec.name]
            assert variant["url"] == f"/media/{body['id'][:2]}/{body['id']}/{spec.name}.webp"
            assert max(variant["width"], variant["height"]) == min(spec.size, 1600)
            assert variant["mime"] == "image/webp"
            assert variant["bytes"] == len(await stored_file(client, variant["url"]))

    async def test_stored_variants_are_upright_webp_of_the_announced_size(
        self, client: Client, settings: Settings
    ) -> None:
        """The files on disk decode to the sizes in the JSON, rotated by EXIF."""
        data = images.make_jpeg(width=640, height=480, orientation=8)
        response = await post_media(client, data)
        body = await response.json()
        full = body["variants"]["full"]
        image = pyvips.Image.new_from_buffer(await stored_file(client, full["url"]), "")
        assert (image.width, image.height) == (full["width"], full["height"]) == (640, 480)
        delta = images.max_channel_delta(images.quadrant_colours(image), images.REFERENCE_COLOURS)
        assert delta <= 30

    async def test_row_is_ready_with_variants_and_spool_is_empty(
        self, client: Client, settings: Settings
    ) -> None:
        """After a 201 the row says ready, lists every key, and no spool file is left."""
        response = await post_media(client, images.make_png(alpha=True), "bob", filename="x.png")
        body = await response.json()
        row = await client.app[DB].fetchrow("SELECT * FROM media WHERE id = $1", body["id"])
        assert row["status"] == "ready"
        assert row["owner"] == "bob"
        assert set(row["variants"]) == {spec.name for spec in VARIANTS}
        assert list(settings.spool_dir.iterdir()) == []

    async def test_avatar_variants_are_square(self, client: Client) -> None:
        """kind=avatar crops to a square before resizing."""
        response = await post_media(client, images.make_jpeg(width=900, height=600), kind="avatar")
        body = await response.json()
        assert body["kind"] == "avatar"
        assert all(v["width"] == v["height"] for v in body["variants"].values())
        assert body["variants"]["full"]["width"] == 600

    async def test_collection_uploads_take_the_next_position(self, client: Client) -> None:
        """Items appended to a collection are numbered 0, 1, 2 in upload order."""
        positions = []
        for _ in range(3):
            response = await upload_tiny(client, collection="profile")
            positions.append((await response.json())["position"])
        assert positions == [0, 1, 2]


class TestRefusals:
    async def test_missing_token_is_401_problem(self, client: Client, settings: Settings) -> None:
        """Without a bearer token nothing is read and the answer is an RFC 9457 problem."""
        response = await client.post("/v1/media", data=upload_form(images.make_tiny()))
        assert response.status == 401
        assert response.headers["Content-Type"].startswith("application/problem+json")
        problem = await response.json()
        assert problem["code"] == "unauthorized"
        assert problem["status"] == 401
        await assert_nothing_left(client, settings)

    async def test_not_multipart_is_400(self, client: Client, settings: Settings) -> None:
        """A raw body instead of a form is a bad request."""
        response = await client.post(
            "/v1/media",
            data=images.make_tiny(),
            headers={**bearer(), "Content-Type": "image/png"},
        )
        assert response.status == 400
        assert (await response.json())["code"] == "bad_request"
        await assert_nothing_left(client, settings)

    async def test_form_without_file_is_400(self, client: Client, settings: Settings) -> None:
        """A form with only text fields has nothing to process."""
        import aiohttp

        form = aiohttp.FormData()
        form.add_field("kind", "post")
        form.add_field("dummy", "x", content_type="text/plain", filename="")
        response = await client.post("/v1/media", data=form, headers=bearer())
        assert response.status == 400
        await assert_nothing_left(client, settings)

    async def test_two_files_are_400(self, client: Client, settings: Settings) -> None:
        """Exactly one file per upload."""
        form = upload_form(images.make_tiny(), filename="a.png")
        form.add_field("file", images.make_tiny(), filename="b.png", content_type="image/png")
        response = await client.post("/v1/media", data=form, headers=bearer())
        assert response.status == 400
        assert "exactly one" in (await response.json())["detail"]
        await assert_nothing_left(client, settings)

    @pytest.mark.parametrize(
        ("field", "value"),
        [("kind", "banner"), ("visibility", "secret"), ("collection", "../etc")],
    )
    async def test_bad_fields_are_400(
        self, client: Client, settings: Settings, field: str, value: str
    ) -> None:
        """Field values outside their allowed sets are refused, naming the field."""
        response = await post_media(client, images.make_tiny(), **{field: value})
        assert response.status == 400
        assert (await response.json())["field"] == field
        await assert_nothing_left(client, settings)

    async def test_file_over_the_cap_is_413_and_leaves_nothing(
        self, make_settings: Any, aiohttp_client: Any
    ) -> None:
        """One byte over MEDIASVC_MAX_UPLOAD_BYTES is refused with the limit in the problem."""
        from mediasvc.app import create_app

        data = images.make_jpeg(width=800, height=600)
        settings = make_settings(max_upload_bytes=len(data) - 1)
        client = await aiohttp_client(create_app(settings))
        response = await post_media(client, data)
        assert response.status == 413
        problem = await response.json()
        assert problem["code"] == "payload_too_large"
        assert problem["limit"] == len(data) - 1
        await assert_nothing_left(client, settings)

    async def test_next_upload_succeeds_after_a_refusal(self, client: Client) -> None:
        """A refused file does not disturb the workers."""
        bad = images.make_jpeg()[:500]
        assert (await post_media(client, bad)).status == 422
        good = await post_media(client, images.make_jpeg())
        assert good.status == 201


class TestRead:
    async def test_get_returns_the_same_json_as_the_upload(self, client: Client) -> None:
        """GET /v1/media/{id} answers the owner what POST answered."""
        created = await (await post_media(client, images.make_jpeg())).json()
        response = await client.get(f"/v1/media/{created['id']}", headers=bearer())
        assert response.status == 200
        assert await response.json() == created

    @pytest.mark.parametrize("reader", ["anonymous", "bob"])
    async def test_public_media_json_hides_owner_hash_and_report_from_others(
        self, client: Client, reader: str
    ) -> None:
        """Others read a public media without its owner, the original's sha256, the PDQ
        hash or the processing report."""
        data = images.make_jpeg(gps=True)
        created = await (await post_media(client, data)).json()
        assert "gps" in json.dumps(created["processing"])
        headers = {} if reader == "anonymous" else bearer(reader)
        response = await client.get(f"/v1/media/{created['id']}", headers=headers)
        assert response.status == 200
        seen = await response.json()
        assert "processing" not in seen
        assert "owner" not in seen
        assert "sha256" not in seen["original"]
        assert hashlib.sha256(data).hexdigest() not in await response.text()
        assert "alice" not in await response.text()
        assert "pdq" not in seen
        expected = {k: v for k, v in created.items() if k not in ("processing", "owner", "pdq")}
        expected["original"] = {k: v for k, v in created["original"].items() if k != "sha256"}
        assert seen == expected

    @pytest.mark.parametrize("reader", ["anonymous", "bob"])
    async def test_public_owner_setting_shows_the_owner_to_everyone(
        self, make_settings: Any, aiohttp_client: Any, reader: str
    ) -> None:
        """With MEDIASVC_PUBLIC_OWNER, anyone reading a public media sees who uploaded it,
        and still not the sha256 or the report."""
        client: Client = await aiohttp_client(create_app(make_settings(public_owner=True)))
        created = await (await post_media(client, images.make_jpeg())).json()
        headers = {} if reader == "anonymous" else bearer(reader)
        seen = await (await client.get(f"/v1/media/{created['id']}", headers=headers)).json()
        assert seen["owner"] == "alice"
        assert "processing" not in seen

    async def test_admin_reads_the_full_json_of_another_owners_media(self, client: Client) -> None:
        """An admin gets the sha256 and the processing report like the owner."""
        created = await (await post_media(client, images.make_jpeg())).json()
        response = await client.get(
            f"/v1/media/{created['id']}", headers=bearer("root", admin=True)
        )
        assert await response.json() == created

    async def test_private_media_is_404_for_others_and_200_for_owner_and_admin(
        self, client: Client
    ) -> None:
        """Private media exist only for their owner and admins."""
        created = await (
            await post_media(client, images.make_jpeg(), "alice", visibility="private")
        ).json()
        path = f"/v1/media/{created['id']}"
        assert (await client.get(path)).status == 404
        assert (await client.get(path, headers=bearer("mallory"))).status == 404
        assert (await client.get(path, headers=bearer("alice"))).status == 200
        assert (await client.get(path, headers=bearer("root", admin=True))).status == 200

    @pytest.mark.parametrize("media_id", ["nope", "A" * 22, "../../etc/passwd"])
    async def test_unknown_ids_are_404_problems(self, client: Client, media_id: str) -> None:
        """Ids that do not exist, or cannot exist, are the same 404."""
        response = await client.get(f"/v1/media/{media_id}")
        assert response.status == 404
        assert (await response.json())["code"] == "not_found"


class TestHealth:
    async def test_healthz_and_readyz_are_200(self, client: Client) -> None:
        """With database, storage and workers up, both probes pass."""
        assert (await client.get("/healthz")).status == 200
        response = await client.get("/readyz")
        assert response.status == 200
        assert (await response.json())["checks"] == {
            "database": "ok",
            "storage": "ok",
            "workers": "ok",
        }

    async def test_unknown_route_is_a_404_problem(self, client: Client) -> None:
        """aiohttp's own 404 is rendered as a problem too."""
        response = await client.get("/nope")
        assert response.status == 404
        assert response.headers["Content-Type"].startswith("application/problem+json")


class TestLimitsAndReport:
    async def test_limits_tell_clients_what_to_send(
        self, client: Client, settings: Settings
    ) -> None:
        """GET /v1/limits reports the settings in force, without a token."""
        response = await client.get("/v1/limits")
        assert response.status == 200
        limits = await response.json()
        assert limits["max_upload_bytes"] == settings.max_upload_bytes
        assert limits["max_pixels"] == settings.max_pixels
        assert limits["max_frames"] == settings.max_frames
        assert limits["collection_max"] == settings.collection_max
        assert "image/jpeg" in limits["accepted_types"]
        assert [v["size"] for v in limits["variants"]] == [spec.size for spec in VARIANTS]
        assert limits["output"]["mime"] == "image/webp"

    async def test_media_json_carries_placeholder_and_processing_report(
        self, client: Client
    ) -> None:
        """A photo with GPS and orientation 6 reports both, and gets a placeholder."""
        data = images.make_jpeg(orientation=6, gps=True)
        body = await (await post_media(client, data)).json()
        assert body["placeholder"]["dominant_color"].startswith("#")
        assert len(body["placeholder"]["thumbhash"]) > 10
        assert body["processing"]["rotated_from_orientation"] == 6
        assert "gps" in body["processing"]["removed"]
        fetched = await (await client.get(f"/v1/media/{body['id']}", headers=bearer())).json()
        assert fetched["placeholder"] == body["placeholder"]
        assert fetched["processing"] == body["processing"]
