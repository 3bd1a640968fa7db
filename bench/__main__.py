"""`python -m bench`: run everything, print the table, and the JSON summary as the last line.

python -m bench                 # the full run (`make bench`): a few minutes on 2 cores
python -m bench --quick         # one tiny round of everything, for the smoke test
python -m bench --no-service    # skip the HTTP stack (no PostgreSQL or nginx needed)
python -m bench --no-peers      # the service without its peers (Node, FastAPI)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import avif, peers, procs, quality, receive, report, rounds, sharp_baselines
from bench.graphics import QUICK_SCORED, write_graphics
from bench.inputs import write_inputs
from mediasvc.imaging import encode
from mediasvc.imaging.job import DEFAULT_RULES

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one tiny round (smoke test)")
    parser.add_argument("--no-service", action="store_true", help="skip the HTTP stack")
    parser.add_argument("--no-peers", action="store_true", help="skip the service-level peers")
    parser.add_argument("--rounds", type=int, default=15, help="single-process rounds")
    parser.add_argument("--service-rounds", type=int, default=10, help="throughput rounds")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    procs.exit_on_sigterm()
    workers = os.cpu_count() or 1
    single_rounds = 1 if args.quick else args.rounds
    service_rounds = 1 if args.quick else args.service_rounds
    sizes = (
        rounds.BatchSizes(pipeline=workers, clients={c: c for c in rounds.CLIENT_LEVELS})
        if args.quick
        else rounds.BatchSizes(pipeline=4 * workers, clients={1: 4, 2: 12, 4: 16})
    )
    with tempfile.TemporaryDirectory(prefix="mediasvc-bench-") as tmp:
        scratch = Path(tmp)
        scratch.chmod(0o755)  # the service's PostgreSQL and nginx workers must reach into it
        (scratch / "inputs").mkdir()
        _say("drawing inputs")
        inputs = write_inputs(scratch / "inputs", with_48mp=not args.quick)
        graphics = write_graphics(scratch / "inputs")
        _say(f"single-process rounds: {single_rounds}")
        single = rounds.single_process(inputs, single_rounds, scratch)
        compared = quality.compare(inputs[rounds.MAIN_INPUT].path, single.outputs)
        _say("content-aware encoding: graphics and photos")
        encoded = rounds.encoding(
            graphics,
            inputs,
            scratch,
            rounds=1 if args.quick else rounds.ENCODING_ROUNDS,
            scored=QUICK_SCORED if args.quick else None,
        )
        _say("AVIF beside WebP, and the 2560 px ladder: the photo set")
        beside = avif.measure(
            inputs, scratch, rounds=1 if args.quick else avif.ROUNDS, quick=args.quick
        )
        _say("memory: fresh workers")
        memory = rounds.memory(inputs)
        _say("the receive path alone: the intake against its floor")
        receiving = receive.measure(
            inputs[rounds.MAIN_INPUT],
            rounds=1 if args.quick else receive.ROUNDS,
            batch=4 if args.quick else receive.BATCH,
        )
        through = None
        if not args.no_service:
            _say(f"throughput rounds: {service_rounds} (pipeline on {workers} processes, service)")
            through = rounds.throughput(
                inputs[rounds.MAIN_INPUT],
                workers,
                service_rounds,
                sizes,
                scratch,
                with_peers=not args.no_peers,
            )
    summary = report.summarise(single, through, memory, compared, encoded) | beside.summary()
    summary |= receiving.summary(summary.get("service_app_cpu_ms_tiny_upload"))
    print(report.table(inputs, single, through, memory, compared, encoded, summary))
    print("\n" + avif.table(beside))
    document = {
        "summary": summary,
        "targets": [asdict(t) | {"met": t.met} for t in report.targets(summary)],
        **report.environment(single.sharp_versions),
        "settings": {
            "quality": DEFAULT_RULES.quality,
            "webp_effort": encode.WEBP_EFFORT,
            "webp_lossless_method": encode.WEBP_LOSSLESS_METHOD,
            "libvips_threads_per_worker": single.concurrency,
            "workers": workers,
            "single_process_rounds": single_rounds,
            "throughput_rounds": service_rounds,
            "batch_sizes": asdict(sizes),
            "quick": args.quick,
            "sharp_version": sharp_baselines.SHARP_VERSION,
            "sharp_skipped": single.sharp_skipped,
            "graphic_min_flat_share": encode.GRAPHIC_MIN_FLAT_SHARE,
            "graphic_palette": {
                "quality": encode.PALETTE_QUALITY,
                "min_psnr_db": encode.PALETTE_MIN_PSNR_DB,
                "lossless_up_to_colours": encode.PALETTE_COLOURS,
            },
            "encoding_rounds": 1 if args.quick else rounds.ENCODING_ROUNDS,
            "avif_beside_webp": {
                "quality": encode.AVIF_BESIDE_WEBP_QUALITY,
                "small_quality": encode.AVIF_BESIDE_WEBP_SMALL_QUALITY,
                "small_size": encode.AVIF_SMALL_SIZE,
                "effort": encode.AVIF_BESIDE_WEBP_EFFORT,
                "subsample": encode.AVIF_BESIDE_WEBP_SUBSAMPLE,
            },
            "avif_rounds": 1 if args.quick else avif.ROUNDS,
            "ladder_2560": {spec.name: spec.size for spec in avif.LADDER_2560},
        },
        "inputs": {
            i.name: {"width": i.width, "height": i.height, "bytes": i.bytes, "note": i.note}
            for i in [*inputs.values(), *graphics.values()]
        },
        "quality": compared,
        "encoding": {name: asdict(e) for name, e in encoded.items()},
        "avif": {
            photo: {
                "webp_bytes": beside.webp_bytes[photo],
                "avif_bytes": beside.avif_bytes[photo],
                "ssimulacra2": beside.scores[photo],
            }
            for photo in beside.photos
        },
        "peak_rss_mb": memory,
        "peers": _peers_document(through),
    }
    path = report.save(args.results_dir, document)
    print(f"\nresults: {path}")
    print(json.dumps(summary))
    return 0


def _peers_document(through: rounds.Throughput | None) -> dict[str, Any]:
    """The service-level peers' setup and output check, for the results file."""
    found = through.peers if through else None
    return {
        "node_packages": list(peers.NODE_PACKAGES),
        "skipped": found.skipped if found else {},
        "service_output": found.service_output if found else {},
        "outputs": found.outputs if found else {},
        "output_check": {
            name: dict(zip(("same", "why"), found.same_output(name), strict=True))
            for name in found.outputs
        }
        if found
        else {},
    }


def _say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
