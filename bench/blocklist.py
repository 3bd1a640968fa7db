"""What the blocklist costs (issue 30): `python -m bench.blocklist`.

1. The PDQ hash per upload: `imaging.pdq.pdq_of` on a 12 MP photo's decoded largest
   variant (1024 px), as the pipeline calls it in a worker, against the whole job.
2. The upload's blocklist lookup (`db.blocklist.is_blocked`) with 10 000 PDQ entries and
   10 000 sha256 entries, in a throwaway PostgreSQL cluster of the machine's version.

Prints a line each and, last, a JSON line with `pdq_ms_per_upload`,
`pdq_share_of_job`, `blocklist_lookup_ms_10k`. docs/decisions.md ("Blocklist and PDQ")
has the numbers of one run.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg

from bench.inputs import photo_jpeg
from mediasvc.db import blocklist
from mediasvc.db.migrate import migrate_database
from mediasvc.imaging.decode import decode
from mediasvc.imaging.job import Job
from mediasvc.imaging.pdq import pdq_of
from mediasvc.imaging.pipeline import process
from mediasvc.stack.localproc import free_port
from mediasvc.stack.pgcluster import FAST_UNSAFE, PostgresCluster

ENTRIES = 10_000
ROUNDS = 20
LOOKUPS = 200


def _median_ms(run: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def pdq_cost(work: Path) -> tuple[float, float]:
    """Median ms of the PDQ hash, and of the whole job, for a 12 MP JPEG."""
    source = work / "photo.jpg"
    source.write_bytes(photo_jpeg(4000, 3000))
    out = work / "out"
    out.mkdir()
    job = Job(source=str(source), out_dir=str(out), mime="image/jpeg")
    image = decode(job).image
    pdq_ms = _median_ms(lambda: pdq_of(image), ROUNDS)
    job_ms = _median_ms(lambda: process(job), 5)
    return pdq_ms, job_ms


def lookup_cost(work: Path) -> float:
    """Median ms of one upload's lookup, with `ENTRIES` PDQ and sha256 entries listed."""
    work.chmod(0o755)  # the postgres user traverses it when we are root
    cluster = PostgresCluster(work / "postgres")
    cluster.ensure_initialised()
    port = free_port()
    cluster.start(port, settings=FAST_UNSAFE)
    try:
        return asyncio.run(_lookups(cluster.dsn(port)))
    finally:
        cluster.stop()


async def _lookups(dsn: str) -> float:
    await migrate_database(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        for _ in range(ENTRIES):
            await blocklist.add(
                conn, sha256=secrets.token_hex(32), pdq=None, reason="b", created_by="b"
            )
            await blocklist.add(
                conn, sha256=None, pdq=secrets.token_hex(32), reason="b", created_by="b"
            )
        await conn.execute("ANALYZE blocklist")
        times = []
        for _ in range(LOOKUPS):
            started = time.perf_counter()
            await blocklist.is_blocked(conn, secrets.token_hex(32), secrets.token_hex(32), 31)
            times.append(time.perf_counter() - started)
    finally:
        await conn.close()
    return statistics.median(times) * 1000


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="mediasvc-bench-blocklist-") as scratch:
        work = Path(scratch)
        pdq_ms, job_ms = pdq_cost(work)
        print(f"PDQ hash per 12 MP upload: {pdq_ms:.1f} ms of a {job_ms:.0f} ms job")
        lookup_ms = lookup_cost(work)
        print(f"blocklist lookup, {ENTRIES} PDQ + {ENTRIES} sha256 entries: {lookup_ms:.2f} ms")
    summary = {
        "pdq_ms_per_upload": round(pdq_ms, 1),
        "pdq_share_of_job": round(pdq_ms / job_ms, 3),
        "blocklist_lookup_ms_10k": round(lookup_ms, 2),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
