"""Smoke test for `bench/` (`make bench`): one tiny round of every measurement.

Only the shape of the output is checked, never a time: speed is reported side by side by
`make bench`, not asserted here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from support import run_to_end

from bench import procs

ROOT = Path(__file__).resolve().parents[1]
PEERS = ("node_naive", "node_tuned", "fastapi_pillow")

SUMMARY_KEYS = {
    "limit_ms",
    "pipeline_ms",
    "pipeline_ips",
    "service_ips",
    "service_p50_ms",
    "service_p99_ms",
    "worker_peak_rss_mb",
    "pillow_naive_ms",
    "pillow_tuned_ms",
    "service_over_pipeline",
    "pipeline_over_limit",
    "pillow_naive_over_pipeline",
    "pillow_tuned_over_pipeline",
    # Issue 19. The quick round runs sharp too: npm installs it once into the user's cache
    # (about 4 s here), and each later run starts from that copy.
    "sharp_naive_over_pipeline",
    "sharp_tuned_over_pipeline",
    "single_upload_over_pipeline_ms",
    "graphics_bytes_ratio",
    "photo_bytes_ratio",
    # Issue 31: the sparse and the dense graphics set, the worst graphic, what the choice
    # costs in job time, and SSIMULACRA2 against lossy only (the quick run scores the
    # variants of 256 px and less).
    "graphics_sparse_bytes_ratio",
    "graphics_dense_bytes_ratio",
    "graphics_worst_bytes_ratio",
    "graphics_job_time_over_lossy_only",
    "graphics_ssimulacra2_minus_lossy_only",
    # Issue 28: AVIF beside WebP, and a 2560 px ladder, on the photo set.
    "avif_bytes_over_webp",
    "avif_ssimulacra2_minus_webp",
    "avif_job_time_over_webp_only",
    "job_time_2560_ladder_over_default",
    # Issue 31: the service-level peers (Express + sharp as written and tuned, FastAPI +
    # Pillow), one tiny round of each beside the service's; npm installs the Node peers'
    # packages once into the same cache as sharp.
    *(f"service_over_{peer}{at}" for peer in PEERS for at in ("", "_4c")),
    *(f"{peer}_{q}_ms_{c}c" for peer in PEERS for q in ("p50", "p99") for c in (1, 2)),
    *(f"{peer}_peak_rss_mb" for peer in PEERS),
    # Issue 31: the app's own CPU for the 4 MB photo and for a 64x48 one, and the receive
    # path alone (the real intake, and its floor: the body hashed and written, no multipart).
    "service_app_cpu_ms_per_upload",
    "service_app_cpu_ms_tiny_upload",
    "receive_intake_cpu_ms",
    "receive_floor_cpu_ms",
    "service_app_cpu_floor_ms",
}


def test_quick_bench_ends_with_the_summary_line_and_keeps_its_results(tmp_path: Path) -> None:
    """A one-round run of the whole bench exits 0, prints its JSON summary last, and saves it."""
    done = run_to_end(
        [sys.executable, "-m", "bench", "--quick", "--results-dir", str(tmp_path)],
        cwd=ROOT,
        timeout_s=300,  # a bound on a stuck run, not a measure: 35-85 s on 2 cores
    )

    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary.keys() >= SUMMARY_KEYS
    assert all(isinstance(summary[key], int | float) for key in SUMMARY_KEYS)
    [saved] = tmp_path.glob("*.json")
    document = json.loads(saved.read_text())
    assert document["summary"] == summary
    assert document.keys() >= {"machine", "versions", "settings", "targets", "encoding", "avif"}
    assert document["versions"]["sharp"]["sharp"] == document["settings"]["sharp_version"]
    assert document["peers"]["output_check"].keys() == set(PEERS)


def test_a_reaped_child_s_cpu_is_told_apart_from_its_parent_s_own() -> None:
    """The kernel charges a reaped child's CPU to its parent: an app node reaping a recycled
    image worker would seem to have spent the worker's whole life (`Stack.cpu` moves it
    back to the workers with `reaped_cpu_seconds`)."""
    me = [os.getpid()]
    before, reaped_before = procs.cpu_seconds(me), procs.reaped_cpu_seconds(me)
    burn = "import time\nstart = time.process_time()\nwhile time.process_time() - start < 0.3: pass"
    subprocess.run([sys.executable, "-c", burn], check=True)
    reaped = procs.reaped_cpu_seconds(me) - reaped_before
    assert reaped >= 0.3
    assert procs.cpu_seconds(me) - before - reaped < 0.2  # this process only waited
