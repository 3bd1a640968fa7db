"""What the Media JSON costs per upload: the answer to an upload (a ready media, five
variants, the owner's view) made the way the app makes it now (`contract.shapes` models,
`model_dump_json`) against the same members as a plain dict and `json.dumps`, as it was
answered before the models (the dict is the app's own, `representation.media_document`,
so both sides stay the answer the app gives today).

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
from mediasvc.contract.representation import media_document, uploaded_view
from mediasvc.imaging.variants import VARIANTS
from mediasvc.models import Media, Original, Placeholder, StoredVariant

PER_ROUND = 2_000


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


def as_dict(media: Media, settings: Settings) -> dict[str, Any]:
    """The upload answer as plain data, `json.dumps`-ready: what the app validates into the
    model (`representation.media_document`, owner's view, with `replaced`), and what it
    answered with before the models."""
    document = media_document(media, settings, full=True, owner=True, signed_urls=True)
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
    old = as_dict(media, settings)
    new = uploaded_view(media, settings, [])
    assert json.loads(new.model_dump_json()) == old, "the two answers differ"
    return {
        "dict_build_us": per_answer_us(lambda: as_dict(media, settings), rounds),
        "dict_dumps_us": per_answer_us(lambda: json.dumps(old), rounds),
        "dict_total_us": per_answer_us(
            lambda: json.dumps(as_dict(media, settings)).encode(), rounds
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
