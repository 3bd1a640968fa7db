"""AVIF sequences (`avis`) and multi-image AVIFs: sniffed, limited from the header, decoded.

libvips' heifload reads an AVIF's still items only, so a sequence is served as its primary
image (libavif writes the first frame there) while its track's frames are counted and
limited before any decode (`mediasvc.imaging.avif`).
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import images
import pytest
import pyvips
from aiohttp.test_utils import TestClient
from support import post_media

from mediasvc.imaging import pipeline
from mediasvc.imaging.avif import AvifSequence, avif_sequence
from mediasvc.imaging.formats import LOADERS, sniff
from mediasvc.imaging.job import DEFAULT_RULES, BadImage, Facts, Job
from mediasvc.imaging.variants import LARGEST, VARIANTS

# Lossy AV1 then lossy WebP/JPEG on flat frames.
FRAME_TOLERANCE = 20


def run(tmp_path: Path, data: bytes, **rule_overrides: Any) -> Facts:
    """Run the pipeline in this process on `data` as an AVIF, under the default rules."""
    work = Path(tempfile.mkdtemp(dir=tmp_path))
    source = work / "source.avif"
    source.write_bytes(data)
    (work / "out").mkdir()
    job = Job(
        source=str(source),
        out_dir=str(work / "out"),
        mime="image/avif",
        rules=replace(DEFAULT_RULES, **rule_overrides),
    )
    return pipeline.process(job)


def background(path: str) -> images.RGB:
    """The colour in the top-left corner of the image file at `path` (its first frame)."""
    image = pyvips.Image.new_from_file(path)
    box = image.extract_area(0, 0, 8, 8)
    r, g, b = (round(box.extract_band(i).avg()) for i in range(3))
    return r, g, b


def largest(facts: Facts) -> str:
    """The path of the largest variant."""
    return next(v.path for v in facts.variants if v.name == LARGEST.name)


def near(actual: images.RGB, expected: images.RGB) -> bool:
    """Whether every channel of `actual` is within FRAME_TOLERANCE of `expected`."""
    return max(abs(a - e) for a, e in zip(actual, expected, strict=True)) <= FRAME_TOLERANCE


class TestSniffing:
    def test_avis_brand_is_sniffed_as_avif_and_goes_to_heifload(self) -> None:
        """A file whose ftyp major brand is `avis` is image/avif, which heifload decodes."""
        data = images.make_avif_sequence()
        assert data[4:12] == b"ftypavis"
        assert sniff(data) == "image/avif"
        assert LOADERS["image/avif"] == "heifload"


class TestSequenceHeader:
    def test_sequence_track_gives_frame_size_and_count(self, tmp_path: Path) -> None:
        """The picture track of a sequence is read from its boxes: coded size and sample count."""
        path = tmp_path / "seq.avif"
        path.write_bytes(images.make_avif_sequence(width=100, height=60, frames=7))
        assert avif_sequence(str(path)) == AvifSequence(width=100, height=60, frames=7)

    @pytest.mark.parametrize(
        "factory", [images.make_avif, images.make_multi_image_avif], ids=["still", "multi-image"]
    )
    def test_files_without_a_track_have_no_sequence(self, tmp_path: Path, factory: Any) -> None:
        """Stills and multi-image AVIFs (items only, no `moov`) report no sequence."""
        path = tmp_path / "still.avif"
        path.write_bytes(factory())
        assert avif_sequence(str(path)) is None

    def test_malformed_containers_give_no_sequence_and_never_raise(self, tmp_path: Path) -> None:
        """Cut anywhere before the end of `moov`, or with a box that overruns, it reads as none."""
        data = images.make_avif_sequence()
        _, moov, moov_end = next(box for box in images.isobmff_boxes(data) if box[0] == "moov")
        overrun = bytearray(data)
        overrun[moov - 8 : moov - 4] = (len(data) * 2).to_bytes(4, "big")
        path = tmp_path / "bad.avif"
        for bad in [data[:cut] for cut in range(0, moov_end, 3)] + [bytes(overrun)]:
            path.write_bytes(bad)
            assert avif_sequence(str(path)) is None

    def test_endless_empty_boxes_are_walked_within_a_budget(self, tmp_path: Path) -> None:
        """A hundred thousand empty boxes before the track end the walk rather than being read."""
        data = images.make_avif_sequence()
        moov = next(s for kind, s, _ in images.isobmff_boxes(data) if kind == "moov") - 8
        path = tmp_path / "boxes.avif"
        path.write_bytes(data[:moov] + b"\0\0\0\x08free" * 100_000 + data[moov:])
        assert avif_sequence(str(path)) is None


class TestDecode:
    @pytest.mark.parametrize(
        ("crop", "size"), [("none", (120, 90)), ("square", (90, 90))], ids=["post", "avatar"]
    )
    def test_sequence_gives_five_webp_variants_of_its_first_frame(
        self, tmp_path: Path, crop: str, size: tuple[int, int]
    ) -> None:
        """An `avis` file gives five still WebPs of frame 0; the source's frames are counted."""
        facts = run(tmp_path, images.make_avif_sequence(frames=5), crop=crop)
        assert (facts.width, facts.height, facts.frames) == (120, 90, 5)
        assert facts.processing["frames"] == 1
        assert [v.name for v in facts.variants] == [spec.name for spec in VARIANTS]
        for spec, variant in zip(VARIANTS, facts.variants, strict=True):
            image = pyvips.Image.new_from_file(variant.path)
            scale = min(1, spec.size / max(size))
            expected = (round(size[0] * scale), round(size[1] * scale))
            assert (variant.width, variant.height) == (image.width, image.height) == expected
            assert variant.mime == "image/webp"
            assert pyvips.Image.new_from_file(variant.path, n=-1).height == variant.height
        assert near(background(largest(facts)), images.FRAME_COLOURS[0])

    def test_sequence_gives_first_frame_only_for_jpeg_output(self, tmp_path: Path) -> None:
        """With JPEG output each variant is one JPEG frame showing the sequence's first frame."""
        facts = run(tmp_path, images.make_avif_sequence(frames=5), output_format="jpeg")
        assert {v.mime for v in facts.variants} == {"image/jpeg"}
        full = pyvips.Image.new_from_file(largest(facts))
        assert (full.width, full.height) == (120, 90)
        assert near(background(largest(facts)), images.FRAME_COLOURS[0])

    def test_multi_image_avif_gives_its_primary_image(self, tmp_path: Path) -> None:
        """Of several still items, the one `pitm` names is decoded, not the first one stored."""
        facts = run(tmp_path, images.make_multi_image_avif(images=3, primary=1))
        assert facts.frames == 1
        assert (facts.width, facts.height) == (120, 90)
        assert near(background(largest(facts)), images.FRAME_COLOURS[1])


class TestLimits:
    @pytest.mark.parametrize(
        ("rules", "code"),
        [
            ({"max_frames": 4}, "too_many_frames"),
            ({"max_animation_pixels": 120 * 90 * 5 - 1}, "too_many_pixels"),
        ],
        ids=["frames", "animation-pixels"],
    )
    def test_sequence_over_a_limit_is_refused_from_the_header(
        self, tmp_path: Path, rules: dict[str, int], code: str
    ) -> None:
        """A 5-frame sequence whose coded frames are zeroed is refused by its track's header."""
        data = images.make_avif_sequence(frames=5, corrupt_pixels=True)
        with pytest.raises(BadImage) as refused:
            run(tmp_path, data, **rules)
        assert refused.value.code == code

    def test_zeroed_frames_are_refused_as_damaged_within_the_limits(self, tmp_path: Path) -> None:
        """The same file within the limits reaches the decode, which fails: the header did it."""
        with pytest.raises(BadImage) as refused:
            run(tmp_path, images.make_avif_sequence(frames=5, corrupt_pixels=True))
        assert refused.value.code == "invalid_image"


async def test_avif_sequence_upload_answers_201(client: TestClient[Any, Any]) -> None:
    """Through the real app an AVIF sequence becomes a ready media of five WebP variants."""
    data = images.make_avif_sequence(frames=5)
    response = await post_media(client, data, filename="clip.avif", content_type="image/avif")
    assert response.status == 201, await response.text()
    body = await response.json()
    assert body["original"]["mime"] == "image/avif"
    assert body["original"]["frames"] == 5
    assert {v["mime"] for v in body["variants"].values()} == {"image/webp"}
