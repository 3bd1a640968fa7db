"""The PDQ perceptual hash of an upload's decoded pixels (`imaging.pdq`), as the pipeline
computes it: near-copies hash close, other pictures far, flat ones are marked unusable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import images
import pytest

from mediasvc.imaging.job import Facts, Job
from mediasvc.imaging.pipeline import process

# Meta's threshold for "the same picture" (MEDIASVC_BLOCKLIST_PDQ_DISTANCE's default).
SAME = 31


def facts_of(tmp_path: Path, data: bytes, mime: str = "image/jpeg", name: str = "x") -> Facts:
    source = tmp_path / name
    source.write_bytes(data)
    out = tmp_path / f"{name}.out"
    out.mkdir()
    return process(Job(source=str(source), out_dir=str(out), mime=mime))


def distance(a: Facts, b: Facts) -> int:
    return (int(a.pdq.hash, 16) ^ int(b.pdq.hash, 16)).bit_count()


def test_every_upload_gets_a_distinctive_pdq_hash(tmp_path: Path) -> None:
    """A photo-like picture gets 64 hex digits of hash and a quality worth matching on."""
    facts = facts_of(tmp_path, images.make_scene_jpeg())

    assert len(facts.pdq.hash) == 64
    assert int(facts.pdq.hash, 16) != 0
    assert facts.pdq.usable


@pytest.mark.parametrize(
    ("label", "copy"),
    [
        ("re-encoded at quality 55", {"quality": 55}),
        ("resized to 95%", {"scale": 0.95}),
        ("resized to 95% and re-encoded", {"scale": 0.95, "quality": 70}),
    ],
)
def test_a_near_copy_hashes_within_the_distance(
    tmp_path: Path, label: str, copy: dict[str, Any]
) -> None:
    """Re-encoding and slight resizing move the hash by a few bits, far under 31."""
    original = facts_of(tmp_path, images.make_scene_jpeg(), name="a")
    near = facts_of(tmp_path, images.make_scene_jpeg(**copy), name="b")

    assert distance(original, near) <= 10, label


def test_another_picture_of_the_same_size_hashes_far(tmp_path: Path) -> None:
    """Two different pictures of one size differ in far more than 31 bits."""
    one = facts_of(tmp_path, images.make_scene_jpeg(seed=1), name="a")
    other = facts_of(tmp_path, images.make_scene_jpeg(seed=2), name="b")

    assert distance(one, other) > 3 * SAME


def test_the_same_picture_in_another_format_hashes_the_same(tmp_path: Path) -> None:
    """The hash is of the decoded pixels, not the file: PNG and JPEG of one picture agree."""
    picture = images.scene()
    jpeg = facts_of(tmp_path, picture.jpegsave_buffer(Q=92), name="a")
    png = facts_of(tmp_path, picture.pngsave_buffer(), "image/png", name="b")

    assert distance(jpeg, png) <= 4


def test_a_flat_picture_is_not_matched_on(tmp_path: Path) -> None:
    """Four flat quadrants have too little structure: PDQ quality under 50, unusable."""
    facts = facts_of(tmp_path, images.make_jpeg())

    assert not facts.pdq.usable


def test_animations_and_alpha_are_hashed_from_the_first_frame_on_white(tmp_path: Path) -> None:
    """An animated GIF and a PNG with transparency get a hash like any still."""
    gif = facts_of(tmp_path, images.make_animated_gif(), "image/gif", name="a")
    png = facts_of(tmp_path, images.make_photo_png(alpha=True), "image/png", name="b")

    assert len(gif.pdq.hash) == len(png.pdq.hash) == 64
