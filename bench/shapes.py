"""What the Media JSON costs per upload: the answer to an upload (a ready media, five
variants, the owner's view) made the way the app makes it now (`contract.shapes` models,
`model_dump_json`) against the hand-written dict and `json.dumps` it replaced.

    .venv/bin/python -m bench.shapes [--rounds N]

Prints microseconds per answer (median of `rounds` rounds of 2 000 answers each) for
building, serialising and both; docs/performance.md, "The Media JSON", keeps the numbers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from mediasvc.config import Settings
from mediasvc.contract.representation import timestamp, uploaded_view, variant_url
from mediasvc.imaging.variants import VARIANTS
from mediasvc.models import Media, Original, Placeholder, StoredVariant

PER_ROUND = 2_000
_LADDER = {spec.name: i for i, spec in enumerate(VARIANTS)}


def ready_media() -> Media:
    """A ready public media of a 12-megapixel JPEG, as a row reads back."""
    media_id = "k3Jx9QmT2vLr8WcA5nYpZb"
    return Media(
        id=media_id,
        owner="alice",
        kind="post",
        collection="profile",
        position=0,
        slot=0,
        visibility="public",
        space=None,
        status="ready",
        original=Original("image/jpeg", 4_200_000, "9f2c" * 16, 4000, 3000, 1),
        variants={
            spec.name: StoredVariant(
                f"{media_id[:2]}/{media_id}/{spec.name}.webp",
                spec.size,
                spec.size,
                spec.size * 3 // 4,
                30 * spec.size,
                "image/webp",
            )
            for spec in reversed(VARIANTS)  # jsonb's own key order
        },
        placeholder=Placeholder("1QcSHQRnh493V4dIh4eXh1h4kJUI", "#7a8c9e"),
        processing={
            "rotated_from_orientation": 6,
            "color": "sRGB",
            "removed": ["exif", "gps"],
            "frames": 1,
            "encoding": "lossy",
        },
        created_at=datetime.now(UTC),
    )


def hand_written(media: Media, settings: Settings) -> dict[str, Any]:
    """The upload answer as `web.representation.media_json` built it before the models
    (owner's view, with `replaced`)."""
    original: dict[str, Any] = {
        "mime": media.original.mime,
        "bytes": media.original.bytes,
        "width": media.original.width,
        "height": media.original.height,
        "frames": media.original.frames,
    }
    document: dict[str, Any] = {
        "id": media.id,
        "owner": media.owner,
        "kind": media.kind,
        "collection": media.collection,
        "position": media.position,
        "visibility": media.visibility,
        "space": media.space,
        "status": media.status,
        "original": original,
        "variants": {
            name: {
                "url": variant_url(v.key, settings),
                "width": v.width,
                "height": v.height,
                "bytes": v.bytes,
                "mime": v.mime,
            }
            for name, v in sorted(media.variants.items(), key=lambda item: _LADDER[item[0]])
        },
        "placeholder": (
            None
            if media.placeholder is None
            else {
                "thumbhash": media.placeholder.thumbhash,
                "dominant_color": media.placeholder.dominant_color,
            }
        ),
        "created_at": timestamp(media.created_at),
    }
    original["sha256"] = media.original.sha256
    document["processing"] = media.processing
    document["replaced"] = []
    return document


def per_answer_us(work: Callable[[], object], rounds: int) -> float:
    """Median microseconds of one `work()` over `rounds` rounds."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(PER_ROUND):
            work()
        times.append((time.perf_counter() - started) / PER_ROUND * 1e6)
    return statistics.median(times)


def measure(rounds: int) -> dict[str, float]:
    """Microseconds per upload answer, each way."""
    settings = Settings(
        database_url="postgresql://unused/unused",
        url_signing_secret="s" * 32,
        jwt_secret="j" * 32,
    )
    media = ready_media()
    old = hand_written(media, settings)
    new = uploaded_view(media, settings, [])
    assert json.loads(new.model_dump_json()) == old, "the two answers differ"
    return {
        "dict_build_us": per_answer_us(lambda: hand_written(media, settings), rounds),
        "dict_dumps_us": per_answer_us(lambda: json.dumps(old), rounds),
        "dict_total_us": per_answer_us(
            lambda: json.dumps(hand_written(media, settings)).encode(), rounds
        ),
        "model_build_us": per_answer_us(lambda: uploaded_view(media, settings, []), rounds),
        "model_dumps_us": per_answer_us(lambda: new.model_dump_json().encode(), rounds),
        "model_total_us": per_answer_us(
            lambda: uploaded_view(media, settings, []).model_dump_json().encode(), rounds
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    numbers = measure(parser.parse_args().rounds)
    for name, value in numbers.items():
        print(f"{name:16} {value:8.1f}")
    print(json.dumps({name: round(value, 1) for name, value in numbers.items()}))


if __name__ == "__main__":
    main()
