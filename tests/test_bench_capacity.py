"""Smoke test for `python -m bench.capacity` (docs/capacity.md): one tiny round of each part.

Only the shape of the output is checked, never a time or a count: the budget is measured
and written down by the command, not asserted here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from support import run_to_end

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("app", "workers", "nginx", "postgres")

SUMMARY_KEYS = {
    *(f"cpu_ms_per_upload_{part}" for part in PARTS),
    "cpu_ms_per_upload",
    "db_round_trips_per_upload",
    "db_transactions_per_upload",
    "db_commits_per_upload",
    "wal_bytes_per_upload",
    "outbox_events_per_upload",
    "webhooks_per_upload",
    "s3_requests_per_upload",
    "s3_puts_per_upload",
    # The built-in kinds, and one of the README's examples that the run configures.
    *(f"bytes_stored_per_upload_{kind}" for kind in ("post", "avatar", "archive")),
    "uploads_per_s_1_node",
    "uploads_per_s_2_nodes",
    "two_nodes_over_one_uploads_per_s",
    "cores_used_2_nodes",
    "predicted_uploads_per_s_2_nodes",
    *(f"cpu_ms_per_upload_2_nodes_{part}" for part in PARTS),
    "pg_commit_ceiling_per_s",
    "others_cores_during_batches",
    *(f"app_nodes_{tag}" for tag in ("100k", "1000k")),
    *(f"db_commits_per_s_{tag}" for tag in ("100k", "1000k")),
    *(f"bucket_puts_per_s_{tag}" for tag in ("100k", "1000k")),
}


def test_quick_capacity_run_ends_with_the_summary_line_and_keeps_its_results(
    tmp_path: Path,
) -> None:
    """A one-round capacity run exits 0, prints its JSON summary last, and saves the budget
    of each deployment, the kinds' bytes and the sizing for both daily volumes."""
    run = run_to_end(
        [sys.executable, "-m", "bench.capacity", "--quick", "--results-dir", str(tmp_path)],
        cwd=ROOT,
        timeout_s=240,  # a bound on a stuck run, not a measure: ~25 s on 2 quiet cores
    )

    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary.keys() >= SUMMARY_KEYS
    assert all(isinstance(summary[key], int | float) for key in SUMMARY_KEYS)
    [saved] = tmp_path.glob("capacity-*.json")
    document = json.loads(saved.read_text())
    assert document["summary"] == summary
    assert document["budget"].keys() == {"one_node", "two_nodes", "s3"}
    for deployment in document["budget"].values():
        assert deployment["cpu_ms"].keys() == {*PARTS, "total"}
        assert deployment["failed"] == 0
        assert deployment["db_round_trips_by_statement"]
    assert document["s3_requests_per_upload"]
    assert [size["uploads_per_day"] for size in document["sizing"]] == [100_000, 1_000_000]
    assert document.keys() >= {"machine", "versions", "kinds", "at_rest_per_s"}
