"""HEIC/HEIF input (`mediasvc.imaging.heif`): sniffed by brand, limited from the header,
decoded once by pillow-heif, upright, sRGB and stripped, in the pipeline, in a sandboxed
worker, through the app and through nginx; refused with a way out without the extra.

Every fixture is made in code by pillow-heif's encoder (`tests/images.py`).
"""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import images
import pytest
import pyvips
import sandbox_probe
from aiohttp.test_utils import TestClient
from imaging_support import make_job, run, run_python, truncated
from PIL import Image
from support import bearer, post_media, upload_form

from mediasvc.app import create_app
from mediasvc.config import Settings
from mediasvc.imaging import formats
from mediasvc.imaging.job import BadImage, Facts, VariantFile
from mediasvc.imaging.pool import ImagingPool

heif = pytest.importorskip("mediasvc.imaging.heif", reason="the mediasvc[heic] extra")

EXIF_ORIENTATION = 0x0112
# HEVC at quality 90, then lossy WebP at quality 80: quadrant centres move a few units.
COLOUR_TOLERANCE = 12
ALPHA_TOLERANCE = 8
# Display P3's green and yellow sit about 40 units from the reference when read as sRGB.
P3_MISREAD = 25
METADATA_MARKERS = (images.EXIF_MARKER.encode(), images.XMP_MARKER.encode())
WEBP_METADATA_CHUNKS = frozenset({"EXIF", "XMP ", "ICCP"})
JPEG_METADATA_SEGMENTS = frozenset({0xE1, 0xE2, 0xED, 0xFE})  # APP1, APP2, APP13, COM


def heic_run(tmp_path: Path, data: bytes, kind: str = "post", **rules: Any) -> Facts:
    """Run the pipeline in this process on `data` as image/heic."""
    return run(tmp_path, data, "image/heic", kind, **rules)


def load(variant: VariantFile) -> pyvips.Image:
    """A written variant, decoded from its bytes."""
    return pyvips.Image.new_from_buffer(Path(variant.path).read_bytes(), "")


def largest(facts: Facts) -> VariantFile:
    """The `full` variant."""
    return next(v for v in facts.variants if v.name == "full")


def header_of(tmp_path: Path, data: bytes) -> Any:
    """`heif.open_header` of `data`, written to a file."""
    path = tmp_path / "source.heic"
    path.write_bytes(data)
    return heif.open_header(str(path))


def assert_reference(image: pyvips.Image, tolerance: int = COLOUR_TOLERANCE) -> None:
    delta = images.max_channel_delta(images.quadrant_colours(image), images.REFERENCE_COLOURS)
    assert delta <= tolerance, images.quadrant_colours(image)


# --------------------------------------------------------------------------
# Sniffing: by brand
# --------------------------------------------------------------------------


class TestSniffing:
    def test_heic_brand_is_image_heic_decoded_by_pillow_heif(self) -> None:
        """What iPhones write (major brand `heic`) is image/heic, on the allow-list."""
        data = images.make_heic()
        assert data[4:12] == b"ftypheic"
        assert formats.sniff(data) == "image/heic"
        assert formats.LOADERS["image/heic"] == formats.LOADERS["image/heif"] == "pillow-heif"

    @pytest.mark.parametrize(
        ("major", "compatible"),
        [(b"heix", (b"mif1", b"heix")), (b"mif1", (b"mif1", b"heic")), (b"msf1", (b"hevc",))],
        ids=["heix", "mif1-heic", "msf1-hevc"],
    )
    def test_any_hevc_brand_makes_it_image_heic(
        self, major: bytes, compatible: tuple[bytes, ...]
    ) -> None:
        """libmagic's image/heif and image/heif-sequence with an HEVC brand become image/heic."""
        assert formats.sniff(images.with_brands(images.make_heic(), major, *compatible)) == (
            "image/heic"
        )

    def test_mif1_alone_is_image_heif_and_decodes(self, tmp_path: Path) -> None:
        """`mif1` with no codec brand is image/heif: libheif finds the HEVC image inside."""
        data = images.with_brands(images.make_heic(), b"mif1", b"mif1", b"miaf")
        assert formats.sniff(data) == "image/heif"
        facts = run(tmp_path, data, "image/heif")
        assert_reference(load(largest(facts)))

    def test_mif1_file_listing_avif_stays_with_libvips(self, tmp_path: Path) -> None:
        """An AVIF whose major brand is `mif1` (libmagic: image/heif) is image/avif, heifload's."""
        data = images.with_brands(images.make_avif(), b"mif1", b"mif1", b"avif", b"miaf")
        assert formats.sniff(data) == "image/avif"
        facts = run(tmp_path, data, "image/avif")
        assert_reference(load(largest(facts)))

    @pytest.mark.parametrize(
        "head",
        [b"", b"\0\0\0\x08ftyp", b"\0\0\0\x40ftypheic\0\0\0\0", b"\0\0\0\x0cftypheic" + b"\0" * 8],
        ids=["empty", "short", "overruns", "undersized"],
    )
    def test_malformed_ftyp_boxes_give_no_brands(self, head: bytes) -> None:
        """A box too short or longer than the bytes sniffed yields no brand, never an error."""
        assert formats.ftyp_brands(head) == frozenset()


# --------------------------------------------------------------------------
# Header first
# --------------------------------------------------------------------------


class TestHeader:
    def test_header_is_read_without_decoding_a_pixel(self, tmp_path: Path) -> None:
        """A file whose coded image is zeroed still gives its header: nothing was decoded."""
        header = header_of(tmp_path, images.make_heic_with_zeroed_pixels())
        assert (header.width, header.height, header.bit_depth, header.alpha) == (128, 96, 8, False)
        with pytest.raises(BadImage) as refused:
            heif.decode(header)
        assert refused.value.code == "invalid_image"

    @pytest.mark.parametrize("bits", [8, 10, 12])
    def test_header_gives_the_bit_depth(self, tmp_path: Path, bits: int) -> None:
        """The primary image's depth is read from the header: 10- and 12-bit HDR included."""
        assert header_of(tmp_path, images.make_heic(bits=bits)).bit_depth == bits

    @pytest.mark.parametrize("orientation", range(1, 9))
    def test_header_size_is_as_displayed_and_orientation_is_the_boxes(
        self, tmp_path: Path, orientation: int
    ) -> None:
        """Width and height are after irot/imir, and the boxes map back to their orientation."""
        header = header_of(tmp_path, images.make_heic(orientation=orientation))
        assert (header.width, header.height) == (640, 480)
        assert header.orientation == orientation

    def test_pixel_bomb_is_refused_from_the_header(self, tmp_path: Path) -> None:
        """A 256x256 file whose ispe claims 30000x30000 is too_many_pixels before any decode."""
        with pytest.raises(BadImage) as refused:
            heic_run(tmp_path, images.make_heic_header_bomb())
        assert refused.value.code == "too_many_pixels"

    def test_grid_canvas_past_the_limit_is_refused_before_any_decode(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A 5 KB grid whose ispe claims 1 MP but whose descriptor makes a 604 MP canvas of
        576 tiles is too_many_pixels from its boxes: libheif decodes nothing."""
        data = images.make_heic_grid_bomb()
        monkeypatch.setattr(heif, "decode", decode_must_not_run)

        with pytest.raises(BadImage) as refused:
            heic_run(tmp_path, data)

        assert len(data) < 30_000
        assert refused.value.code == "too_many_pixels"
        assert refused.value.detail.startswith("The HEIF grid decodes to 24576x24576 from 576")

    def test_grid_canvas_that_is_not_its_ispe_is_refused(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A grid within the limit whose canvas (2048 square) is not its ispe (1024) is
        invalid_image before any decode, rather than decoded and then compared."""
        monkeypatch.setattr(heif, "decode", decode_must_not_run)

        with pytest.raises(BadImage) as refused:
            heic_run(tmp_path, images.make_heic_grid_bomb(tiles=2))

        assert refused.value.code == "invalid_image"
        assert refused.value.reason == "grid 2048x2048, ispe 1024x1024"

    def test_grid_bomb_labelled_avif_is_refused_by_the_libvips_path_too(
        self, tmp_path: Path
    ) -> None:
        """A 16x16 grid (268 MP) with AVIF brands goes to libvips' heifload (libheif too, which
        takes at most 256 references there): refused from its boxes as well."""
        bomb = images.make_heic_grid_bomb(tiles=16)
        data = images.with_brands(bomb, b"avif", b"avif", b"mif1")

        with pytest.raises(BadImage) as refused:
            run(tmp_path, data, "image/avif", "post")

        assert refused.value.code == "too_many_pixels"

    def test_size_bounds_apply_to_the_displayed_size(self, tmp_path: Path) -> None:
        """A portrait-stored file turned by irot is 640 wide as displayed, so over 639."""
        with pytest.raises(BadImage) as refused:
            heic_run(tmp_path, images.make_heic(orientation=6), max_width=639)
        assert refused.value.code == "too_large"
        assert refused.value.extra["actual_width"] == 640


# --------------------------------------------------------------------------
# One decode: upright, sRGB, 8-bit
# --------------------------------------------------------------------------


class TestDecode:
    @pytest.mark.parametrize("orientation", range(1, 9))
    def test_every_rotation_is_displayed_upright_once(
        self, tmp_path: Path, orientation: int
    ) -> None:
        """Each irot/imir (with the same EXIF Orientation) gives the upright 640x480 reference."""
        facts = heic_run(tmp_path, images.make_heic(orientation=orientation))

        assert (facts.width, facts.height, facts.frames) == (640, 480, 1)
        expected = None if orientation == 1 else orientation
        assert facts.processing["rotated_from_orientation"] == expected
        for made in facts.variants:
            image = load(made)
            assert (image.width, image.height) == (made.width, made.height)
            assert made.width * 3 == made.height * 4, made  # landscape, never turned twice
        assert_reference(load(largest(facts)))
        assert_reference(load(facts.variants[0]))

    def test_exif_orientation_alone_is_not_applied(self, tmp_path: Path) -> None:
        """EXIF Orientation 6 with no irot box: shown as stored, as libheif shows it."""
        data = images.make_heic(exif_orientation=6)
        header = header_of(tmp_path, data)
        exif = Image.Exif()
        exif.load(header.exif)
        assert (exif[EXIF_ORIENTATION], header.orientation) == (6, 1)  # control: tag, no box
        facts = heic_run(tmp_path, data)
        assert (facts.width, facts.height) == (640, 480)
        assert facts.processing["rotated_from_orientation"] is None
        assert_reference(load(largest(facts)))

    def test_phone_like_grid_comes_out_upright_in_srgb(self, tmp_path: Path) -> None:
        """A tiled, Display P3, irot 270 photo with GPS (what an iPhone writes) is upright sRGB."""
        data = images.make_heic(
            width=1200, height=900, orientation=6, gps=True, icc="p3", tile_size=256
        )
        facts = heic_run(tmp_path, data)

        assert (facts.width, facts.height) == (1200, 900)
        assert (largest(facts).width, largest(facts).height) == (1024, 768)
        assert_reference(load(largest(facts)))
        assert facts.processing == {
            "rotated_from_orientation": 6,
            "color": "converted from embedded ICC profile",
            "removed": ["exif", "gps", "icc"],
            "frames": 1,
            "encoding": "lossy",  # a photo
            "lossless_variants": [],
        }

    def test_avatar_is_a_square_crop_of_the_upright_image(self, tmp_path: Path) -> None:
        """Kind avatar crops the displayed (turned) image, not the stored one."""
        facts = heic_run(tmp_path, images.make_heic(orientation=8), kind="avatar")
        full = largest(facts)
        assert (full.width, full.height) == (480, 480)

    @pytest.mark.parametrize("bits", [10, 12])
    def test_hdr_samples_are_converted_to_8_bit(self, tmp_path: Path, bits: int) -> None:
        """10- and 12-bit files give 8-bit variants of the reference colours."""
        facts = heic_run(tmp_path, images.make_heic(bits=bits))
        full = load(largest(facts))
        assert full.format == "uchar"
        assert_reference(full)
        assert facts.processing["color"] == "converted to 8-bit sRGB"

    @pytest.mark.parametrize(
        ("options", "color"),
        [
            ({"icc": "p3"}, "converted from embedded ICC profile"),
            ({"nclx_p3": True}, "converted from Display P3 (nclx)"),
        ],
        ids=["icc", "nclx"],
    )
    def test_display_p3_is_converted_to_srgb(
        self, tmp_path: Path, options: dict[str, Any], color: str
    ) -> None:
        """P3 pixels, tagged by ICC profile or by nclx, show the reference colours in sRGB."""
        data = images.make_heic(**options)
        facts = heic_run(tmp_path, data)
        assert_reference(load(largest(facts)))
        assert facts.processing["color"] == color
        # Control: the same pixels read as sRGB are visibly off.
        stored = heif.decode(header_of(tmp_path, data))
        delta = images.max_channel_delta(images.quadrant_colours(stored), images.REFERENCE_COLOURS)
        assert delta > P3_MISREAD

    def test_alpha_is_kept_in_webp_and_flattened_for_jpeg(self, tmp_path: Path) -> None:
        """The quadrant alphas survive into WebP; JPEG output composites them on white."""
        data = images.make_heic(alpha=True)
        webp = load(largest(heic_run(tmp_path, data)))
        alphas = images.quadrant_alphas(webp)
        assert max(abs(a - e) for a, e in zip(alphas, images.REFERENCE_ALPHAS, strict=True)) <= (
            ALPHA_TOLERANCE
        )
        jpeg = load(largest(heic_run(tmp_path, data, output_format="jpeg")))
        assert jpeg.bands == 3
        assert min(images.quadrant_colours(jpeg)[3]) >= 255 - COLOUR_TOLERANCE  # transparent

    def test_burst_gives_its_primary_image_only(self, tmp_path: Path) -> None:
        """Of three images, the one `pitm` names (the second) is decoded; one frame counted."""
        facts = heic_run(tmp_path, images.make_heif_burst(images=3, primary=1))
        assert (facts.width, facts.height, facts.frames) == (120, 90, 1)
        corner = load(largest(facts)).extract_area(0, 0, 8, 8)
        colour = tuple(round(corner.extract_band(i).avg()) for i in range(3))
        assert max(abs(c - e) for c, e in zip(colour, images.FRAME_COLOURS[1], strict=True)) <= (
            COLOUR_TOLERANCE
        )


# --------------------------------------------------------------------------
# Metadata never reaches a variant
# --------------------------------------------------------------------------


class TestMetadata:
    def test_webp_variants_carry_no_exif_gps_xmp_or_icc(self, tmp_path: Path) -> None:
        """No metadata chunk and no marker in any variant; the report lists what was removed."""
        data = images.make_heic(gps=True, xmp=True, icc="p3")
        assert all(marker in data for marker in METADATA_MARKERS)  # control
        facts = heic_run(tmp_path, data)

        for made in facts.variants:
            written = Path(made.path).read_bytes()
            assert not set(images.webp_chunks(written)) & WEBP_METADATA_CHUNKS, made.name
            assert not any(marker in written for marker in METADATA_MARKERS), made.name
        assert facts.processing["removed"] == ["exif", "gps", "icc", "xmp"]

    def test_jpeg_variants_carry_no_metadata_segment(self, tmp_path: Path) -> None:
        """With JPEG output, no APP1 (EXIF/XMP), APP2 (ICC), APP13 or COM segment is written."""
        facts = heic_run(tmp_path, images.make_heic(gps=True, xmp=True), output_format="jpeg")
        for made in facts.variants:
            segments = set(images.jpeg_segments(Path(made.path).read_bytes()))
            assert not segments & JPEG_METADATA_SEGMENTS, made.name

    def test_no_gps_is_reported_when_the_exif_has_none(self, tmp_path: Path) -> None:
        """EXIF without a GPS IFD is reported as exif only."""
        assert heic_run(tmp_path, images.make_heic()).processing["removed"] == ["exif"]


# --------------------------------------------------------------------------
# Refusals
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "factory",
    [
        lambda: truncated(images.make_heic()),
        images.make_heic_without_primary,
        images.make_heic_with_zeroed_pixels,
        lambda: images.with_brands(images.make_avif(), b"heic", b"mif1", b"heic"),
    ],
    ids=["truncated", "no-primary", "zeroed-primary", "av1-inside-heic-brands"],
)
def test_damaged_heif_is_invalid_image(tmp_path: Path, factory: Any) -> None:
    """A truncated file, a missing or undecodable primary image: 422 invalid_image."""
    with pytest.raises(BadImage) as refused:
        heic_run(tmp_path, factory())
    assert refused.value.code == "invalid_image"


# --------------------------------------------------------------------------
# In a sandboxed worker
# --------------------------------------------------------------------------


def decode_must_not_run(header: Any) -> Any:
    """Stands in for `heif.decode` where a test proves no pixel is decoded."""
    raise AssertionError("the HEIF image was decoded")


def peak_rss_mb() -> int:
    """A pool job: the most memory this worker process has held, in MB."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


async def test_grid_bomb_costs_a_worker_no_memory(pool: ImagingPool, tmp_path: Path) -> None:
    """In a memory-capped worker the 604 MP grid is too_many_pixels, and the worker's peak
    memory stays that of an idle worker (decoding it took 900 MB and 3.6 s)."""
    job = make_job(tmp_path, images.make_heic_grid_bomb(), "image/heic")
    idle_peak = await pool.run(peak_rss_mb)

    with pytest.raises(BadImage) as refused:
        await pool.process(job)

    assert refused.value.code == "too_many_pixels"
    assert await pool.run(peak_rss_mb) - idle_peak < 50


def decoders_loaded() -> bool:
    """Run in a worker: whether init_worker loaded pillow-heif (and so libheif)."""
    return "pillow_heif" in sys.modules and "mediasvc.imaging.heif" in sys.modules


@pytest.fixture
async def pool() -> AsyncIterator[ImagingPool]:
    """A real one-worker pool under the service's default memory cap."""
    settings = Settings(database_url="", url_signing_secret="")
    imaging_pool = ImagingPool(
        workers=1, queue_max=0, timeout_s=60, memory_limit_mb=settings.worker_memory_mb
    )
    try:
        yield imaging_pool
    finally:
        await imaging_pool.close()


async def test_sandboxed_worker_decodes_heic_and_stays_confined(
    pool: ImagingPool, tmp_path: Path
) -> None:
    """A confined, memory-capped worker has the decoder loaded, decodes HEIC, and afterwards
    still cannot open a TCP socket; every thread it started carries the filter."""
    assert await pool.run(decoders_loaded)
    job = make_job(tmp_path, images.make_heic(width=1200, height=900, tile_size=256), "image/heic")

    facts = await pool.process(job)

    assert (facts.width, facts.height) == (1200, 900)
    assert len(facts.variants) == 5
    with pytest.raises(PermissionError):
        await pool.run(sandbox_probe.connect_tcp, 9)
    threads = await pool.run(sandbox_probe.confinement_of_each_thread)
    assert {thread["Seccomp"] for thread in threads} == {"2"}


# --------------------------------------------------------------------------
# Through the app and nginx
# --------------------------------------------------------------------------


async def test_heic_upload_gives_five_upright_variants(client: TestClient[Any, Any]) -> None:
    """A phone-like HEIC becomes ready media: displayed size, WebP variants, the owner's report."""
    data = images.make_heic(width=1200, height=900, orientation=6, gps=True, icc="p3")
    response = await post_media(client, data, filename="IMG_0001.HEIC", content_type="image/heic")
    assert response.status == 201, await response.text()
    body = await response.json()
    assert body["original"]["mime"] == "image/heic"
    assert (body["original"]["width"], body["original"]["height"]) == (1200, 900)
    assert (body["variants"]["full"]["width"], body["variants"]["full"]["height"]) == (1024, 768)
    assert {v["mime"] for v in body["variants"].values()} == {"image/webp"}
    owner_view = await (await client.get(f"/v1/media/{body['id']}", headers=bearer())).json()
    assert owner_view["processing"]["removed"] == ["exif", "gps", "icc"]
    assert owner_view["processing"]["rotated_from_orientation"] == 6


async def test_limits_and_kinds_accept_the_heif_types(client: TestClient[Any, Any]) -> None:
    """/v1/limits lists image/heic and image/heif, globally and for each built-in kind."""
    limits = await (await client.get("/v1/limits")).json()
    assert {"image/heic", "image/heif"} <= set(limits["accepted_types"])
    for kind in limits["kinds"].values():
        assert {"image/heic", "image/heif"} <= set(kind["accept"])


async def test_heic_through_nginx_is_served_upright_and_stripped(
    nginx: str, http: aiohttp.ClientSession
) -> None:
    """Uploaded through nginx, the variant nginx serves is the upright reference, no EXIF."""
    data = images.make_heic(orientation=3, gps=True, xmp=True)
    async with http.post(
        f"{nginx}/v1/media",
        data=upload_form(data, filename="photo.heic", content_type="image/heic"),
        headers=bearer(),
    ) as response:
        assert response.status == 201, await response.text()
        body = await response.json()
    async with http.get(nginx + body["variants"]["large"]["url"]) as response:
        assert response.status == 200
        served = await response.read()
    assert not any(marker in served for marker in METADATA_MARKERS)
    assert_reference(pyvips.Image.new_from_buffer(served, ""))


@pytest.fixture
async def client_without_extra(
    monkeypatch: pytest.MonkeyPatch, settings: Settings, aiohttp_client: Any
) -> TestClient[Any, Any]:
    """The app built as if pillow-heif were not installed (the allow-list as formats builds it
    then), so HEIC is off the allow-list and the 415 says how to enable it."""
    for mime in formats.HEIF_TYPES:
        monkeypatch.delitem(formats.LOADERS, mime)
        monkeypatch.setitem(formats.MISSING_DECODERS, mime, formats._ENABLE_HEIF)
    client: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    return client


async def test_without_the_extra_heic_is_415_saying_how_to_enable_it(
    client_without_extra: TestClient[Any, Any],
) -> None:
    """Without pillow-heif, a HEIC upload is 415 whose detail names the extra to install."""
    response = await post_media(
        client_without_extra, images.make_heic(), filename="IMG.HEIC", content_type="image/heic"
    )
    assert response.status == 415
    problem = await response.json()
    assert problem["code"] == "unsupported_media_type"
    assert "pip install 'mediasvc[heic]'" in problem["detail"]
    limits = await (await client_without_extra.get("/v1/limits")).json()
    assert "image/heic" not in limits["accepted_types"]


def test_without_the_extra_formats_leave_heif_off_and_workers_start() -> None:
    """With pillow_heif unimportable, formats list no HEIF type, offer the hint, and a
    hardened worker still starts and processes a JPEG."""
    script = textwrap.dedent(
        """
        import json, sys, tempfile, pathlib
        sys.modules["pillow_heif"] = None  # what an install without the extra looks like
        sys.path.insert(0, "tests")
        import images
        from mediasvc.imaging import formats, pipeline, worker
        from mediasvc.imaging.job import Job
        worker.init_worker()
        work = pathlib.Path(tempfile.mkdtemp())
        (work / "src").write_bytes(images.make_jpeg())
        (work / "out").mkdir()
        facts = pipeline.process(Job(str(work / "src"), str(work / "out"), "image/jpeg"))
        print(json.dumps({
            "loaders": sorted(formats.LOADERS),
            "missing": sorted(formats.MISSING_DECODERS),
            "variants": len(facts.variants),
            "heif_loaded": "mediasvc.imaging.heif" in sys.modules,
        }))
        """
    )
    found = json.loads("".join(run_python(script)))
    assert not set(found["loaders"]) & set(formats.HEIF_TYPES)
    assert found["missing"] == sorted(formats.HEIF_TYPES)
    assert found["variants"] == 5
    assert found["heif_loaded"] is False


def test_hardened_worker_decodes_heic_with_libvips_loaders_blocked(tmp_path: Path) -> None:
    """init_worker blocks every libvips loader off the list; HEIC needs none of them."""
    job = make_job(tmp_path, images.make_heic(orientation=6), "image/heic")
    script = textwrap.dedent(
        f"""
        from mediasvc.imaging import pipeline, worker
        from mediasvc.imaging.job import Job
        worker.init_worker()
        facts = pipeline.process(Job({job.source!r}, {job.out_dir!r}, "image/heic"))
        print(facts.width, facts.height, len(facts.variants))
        """
    )
    assert run_python(script) == ["640 480 5"]
