"""`python -m bench.capacity`: what one upload costs a deployment, and what 100 k and 1 M
uploads a day need (docs/capacity.md).

    python -m bench.capacity             # the full run: about 2 minutes on 2 cores
    python -m bench.capacity --quick     # one tiny round of each part (the smoke test)

Each deployment (`bench.counted`) is `python -m mediasvc dev` against a PostgreSQL cluster
of its own, behind a counting proxy, with webhooks on and every upload from a user of its
own, its upload budget charged, so each upload pays what it would in production:

1. **one node**, N image workers (N = cores): the budget of one upload of the 12 MP photo
   (`bench.inputs`) at 2 clients: CPU per part from `/proc`, database round trips and
   transactions from the proxy, durable commits and WAL bytes from `pg_waldump` between
   two WAL positions, outbox rows from the tables, webhooks from the receiver;
2. **two nodes** (`MEDIASVC_APP_NODES=2`) with N/2 workers each, on the same machine, the
   same PostgreSQL and storage: its batches interleaved with (1)'s, every other round in
   reverse order, to check that the budget adds up when the work is split over nodes;
3. **one node on S3** (`moto_server` on 127.0.0.1): bucket requests per upload, counted
   from moto's own request log.

Then one upload per kind (the built-in `post` and `avatar`, and the README's example kinds)
for the bytes stored, counted on disk under the media dir; a short burst of one-row
commits for this machine's PostgreSQL commit ceiling; and the sizing that follows for
100 k and 1 M uploads a day. Prints a table, and last one JSON line; the whole document
goes to `bench/results/capacity-<UTC time>.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import procs
from bench.counted import KINDS_TOML, PARTS, Cost, Deployment, Moto, Receiver, shortened
from bench.inputs import photo_jpeg
from bench.service import multipart_body

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# One client per core, as `make bench`'s compared service level.
CLIENTS = 2

# Sizing assumptions (docs/capacity.md states them): the busiest hour carries this many
# times the mean hour's uploads; cores are provisioned to be at most this busy at that peak;
# an app node has this many cores, and there are at least this many (one may fail).
PEAK_FACTOR = 3.0
UTILISATION = 0.7
NODE_CORES = 4
MIN_NODES = 2
DAILY = (100_000, 1_000_000)


# --- the run ------------------------------------------------------------------------------


@dataclass(slots=True)
class Run:
    """Everything one run measured."""

    cores: int
    rounds: int
    batch: int
    one: Cost = field(default_factory=Cost)
    two: Cost = field(default_factory=Cost)
    s3: Cost = field(default_factory=Cost)
    # Per round: the two-node deployment's uploads/s over the one-node's in the same round.
    paired: list[float] = field(default_factory=list)
    busy: Counter[str] = field(default_factory=Counter)
    kinds: dict[str, tuple[int, int]] = field(default_factory=dict)
    # Each deployment at rest (no uploads) for a while: what its timers and pollers cost.
    idle: dict[str, Cost] = field(default_factory=dict)
    commit_ceiling_per_s: float = 0.0
    row_bytes: dict[str, float] = field(default_factory=dict)
    input_bytes: int = 0


def measure(scratch: Path, *, quick: bool) -> Run:
    """The three deployments, as the module docstring says."""
    cores = os.cpu_count() or 1
    run = Run(cores, rounds=1 if quick else 3, batch=4 if quick else 16)
    photo = scratch / "photo_12mp.jpg"
    photo.write_bytes(photo_jpeg(4000, 2880))  # bench.inputs' main input
    run.input_bytes = photo.stat().st_size
    body, content_type = multipart_body(photo, "image/jpeg")
    with Receiver() as receiver, asyncio.Runner() as runner:
        with contextlib.ExitStack() as started:
            _say("starting one node, and two nodes beside it")
            one = started.enter_context(
                Deployment("one", scratch, runner, receiver, nodes=1, workers=cores)
            )
            two = started.enter_context(
                Deployment("two", scratch, runner, receiver, nodes=2, workers=max(1, cores // 2))
            )
            warm = 1 if quick else 2
            for deployment in (one, two):  # start the workers, the pools' connections
                deployment.batch(body, content_type, CLIENTS, warm * CLIENTS * deployment.nodes)
            _say("both at rest")
            run.idle = at_rest([one, two], 1.0 if quick else 6.0)
            for number in range(run.rounds):
                _say(f"round {number + 1} of {run.rounds}: {run.batch} uploads on each")
                order = [one, two] if number % 2 == 0 else [two, one]
                rates = {}
                for deployment in order:
                    cost, busy = deployment.batch(body, content_type, CLIENTS, run.batch)
                    (run.one if deployment is one else run.two).add(cost)
                    run.busy.update(busy)
                    rates[deployment.name] = cost.uploads_per_s
                if rates["one"]:
                    run.paired.append(rates["two"] / rates["one"])
            _say("one upload per kind")
            for kind in one.kinds():
                run.kinds[kind] = one.upload_kind(photo, "image/jpeg", kind)
            _say("PostgreSQL's commit ceiling")
            run.row_bytes = one.row_bytes()
            run.commit_ceiling_per_s = one.commit_ceiling(0.5 if quick else 2.0)
        _say("one node on S3 (moto)")
        with (
            Moto(scratch) as moto,
            Deployment("s3", scratch, runner, receiver, nodes=1, workers=cores, moto=moto) as s3,
        ):
            s3.batch(body, content_type, CLIENTS, CLIENTS)
            cost, _busy = s3.batch(body, content_type, CLIENTS, 4 if quick else 16)
            run.s3.add(cost)
    return run


def at_rest(deployments: Sequence[Deployment], seconds: float) -> dict[str, Cost]:
    """What each deployment does over `seconds` with no uploads, all at once."""
    before = {d.name: d.counters() for d in deployments}
    time.sleep(seconds)
    found = {}
    for d in deployments:
        after, start = d.counters(), before[d.name]
        found[d.name] = Cost(
            wall_s=seconds,
            cpu_s=Counter({part: after.cpu_s[part] - start.cpu_s[part] for part in PARTS}),
            db=after.db.minus(start.db),
        )
    return found


def per_second(cost: Cost) -> dict[str, Any]:
    """A deployment at rest, per second."""
    return {
        "cpu_ms": {part: round(cost.cpu_s[part] * 1000 / cost.wall_s, 1) for part in PARTS},
        "db_round_trips": round(cost.db.round_trips.total() / cost.wall_s, 2),
        "db_round_trips_by_statement": {
            s: round(n / cost.wall_s, 2) for s, n in shortened(cost.db.round_trips).most_common()
        },
    }


# --- what the numbers say -----------------------------------------------------------------


def budget(cost: Cost) -> dict[str, Any]:
    """One upload's cost, per upload."""
    return {
        "uploads": cost.ok,
        "failed": len(cost.uploads) - cost.ok,
        "uploads_per_s": round(cost.uploads_per_s, 2),
        "cores_used": round(cost.cores_used(), 2),
        "cpu_ms": {part: round(cost.cpu_ms(part), 1) for part in PARTS}
        | {"total": round(cost.stack_cpu_ms(), 1)},
        "db_round_trips": round(cost.round_trips(), 2),
        "db_round_trips_by_group": {
            name: round(n, 2) for name, n in cost.round_trips_by_group().items()
        },
        "db_round_trips_by_statement": cost.by_statement(cost.db.round_trips),
        "db_transactions": round(cost.per_upload(cost.db.transactions.total()), 2),
        "db_transactions_by_first_statement": cost.by_statement(cost.db.transactions),
        "db_connections_opened": cost.db.connections,
        "db_commits": round(cost.per_upload(cost.commits), 2),
        "wal_bytes": round(cost.per_upload(cost.wal_bytes)),
        "outbox_events": round(cost.per_upload(cost.events), 2),
        "webhooks": round(cost.per_upload(cost.webhooks), 2),
    }


def s3_client_cpu_ms(run: Run) -> float:
    """The app's CPU per upload for storing to a bucket rather than to disk (aiobotocore:
    signing and sending five PutObjects), from the S3 deployment against the budget's."""
    return max(0.0, run.s3.cpu_ms("app") - run.one.cpu_ms("app"))


def per_extra_node(run: Run) -> dict[str, float]:
    """What each app node beyond the first adds to one upload, from the two-node deployment
    (one node more than the budget's): every node's dispatcher wakes at every event's
    NOTIFY and looks for work (a claim and a backlog read), and its event loop runs that."""
    one, two = run.one, run.two
    return {
        "app_cpu_ms": max(0.0, two.cpu_ms("app") - one.cpu_ms("app")),
        "outbox_round_trips": max(
            0.0, two.round_trips_by_group()["outbox"] - one.round_trips_by_group()["outbox"]
        ),
        "outbox_transactions": max(
            0.0, two.transactions_by_group()["outbox"] - one.transactions_by_group()["outbox"]
        ),
    }


def node_uploads_per_s(run: Run) -> float:
    """What one app node of NODE_CORES cores takes at UTILISATION (app, workers, nginx),
    storing to a bucket."""
    ms = sum(run.one.cpu_ms(part) for part in ("app", "workers", "nginx")) + s3_client_cpu_ms(run)
    return NODE_CORES * UTILISATION * 1000 / ms if ms else 0.0


def sizing(run: Run, per_day: int) -> dict[str, Any]:
    """What `per_day` uploads of the bench photo need, storing to a bucket: the one-node
    budget at the peak rate, plus the S3 client's CPU (`s3_client_cpu_ms`) and what each
    node beyond the first adds (`per_extra_node`)."""
    one, s3 = run.one, run.s3
    peak = per_day / 86400 * PEAK_FACTOR
    extra = per_extra_node(run)

    def cores(nodes: int) -> dict[str, float]:
        busy = {part: peak * one.cpu_ms(part) / 1000 for part in PARTS}
        busy["app"] += peak * (s3_client_cpu_ms(run) + extra["app_cpu_ms"] * (nodes - 1)) / 1000
        return busy

    nodes = MIN_NODES
    while sum(cores(nodes)[p] for p in ("app", "workers", "nginx")) / UTILISATION > (
        nodes * NODE_CORES
    ):
        nodes += 1
    busy = cores(nodes)
    round_trips = one.round_trips() + extra["outbox_round_trips"] * (nodes - 1)
    transactions = one.per_upload(one.db.transactions.total()) + extra["outbox_transactions"] * (
        nodes - 1
    )
    puts = s3.per_upload(sum(n for what, n in s3.s3.items() if what.startswith("PUT object")))
    commits = one.per_upload(one.commits)
    return {
        "uploads_per_day": per_day,
        "mean_per_s": round(per_day / 86400, 2),
        "peak_per_s": round(peak, 2),
        "busy_cores_at_peak": {part: round(n, 2) for part, n in busy.items()},
        "app_nodes": nodes,
        "app_node_cores_busy": round(sum(busy[p] for p in ("app", "workers", "nginx")), 2),
        "postgres_cores": round(busy["postgres"] / UTILISATION, 2),
        "db_round_trips_per_upload": round(round_trips, 2),
        "db_round_trips_per_s": round(peak * round_trips, 1),
        "db_transactions_per_s": round(peak * transactions, 1),
        "db_commits_per_s": round(peak * commits, 1),
        "wal_mb_per_s": round(peak * one.per_upload(one.wal_bytes) / 1e6, 3),
        "wal_gb_per_day": round(per_day * one.per_upload(one.wal_bytes) / 1e9, 2),
        "bucket_puts_per_s": round(peak * puts, 1),
        "bucket_requests_per_s": round(peak * s3.per_upload(s3.s3.total()), 1),
        "webhooks_per_s": round(peak * one.per_upload(one.webhooks), 1),
        "stored_gb_per_day": {
            kind: round(per_day * stored / 1e9, 1) for kind, (_f, stored) in run.kinds.items()
        },
    }


def summary(run: Run) -> dict[str, Any]:
    """The JSON line: flat numbers, the budget's first."""
    one, two, s3 = run.one, run.two, run.s3
    line: dict[str, Any] = {
        f"cpu_ms_per_upload_{part}": round(one.cpu_ms(part), 1) for part in PARTS
    }
    line["cpu_ms_per_upload"] = round(one.stack_cpu_ms(), 1)
    line |= {
        "db_round_trips_per_upload": round(one.round_trips(), 2),
        "db_transactions_per_upload": round(one.per_upload(one.db.transactions.total()), 2),
        "db_commits_per_upload": round(one.per_upload(one.commits), 2),
        "wal_bytes_per_upload": round(one.per_upload(one.wal_bytes)),
        "outbox_events_per_upload": round(one.per_upload(one.events), 2),
        "webhooks_per_upload": round(one.per_upload(one.webhooks), 2),
        "s3_requests_per_upload": round(s3.per_upload(s3.s3.total()), 2),
        "s3_puts_per_upload": round(
            s3.per_upload(sum(n for what, n in s3.s3.items() if what.startswith("PUT"))), 2
        ),
        "s3_app_cpu_ms_per_upload": round(s3.cpu_ms("app"), 1),
        "s3_client_cpu_ms_per_upload": round(s3_client_cpu_ms(run), 1),
    }
    line |= {f"bytes_stored_per_upload_{kind}": b for kind, (_f, b) in run.kinds.items()}
    line |= {f"files_per_upload_{kind}": f for kind, (f, _b) in run.kinds.items()}
    line["media_row_bytes"] = run.row_bytes.get("media", 0.0)
    line |= {
        "uploads_per_s_1_node": round(one.uploads_per_s, 2),
        "uploads_per_s_2_nodes": round(two.uploads_per_s, 2),
        "cores_used_1_node": round(one.cores_used(), 2),
        "cores_used_2_nodes": round(two.cores_used(), 2),
        # The budget's prediction for the two nodes at the cores they got: linear in CPU.
        "predicted_uploads_per_s_2_nodes": round(two.cores_used() * 1000 / one.stack_cpu_ms(), 2)
        if one.stack_cpu_ms()
        else 0.0,
        "two_nodes_over_one_uploads_per_s": round(statistics.median(run.paired), 3)
        if run.paired
        else 0.0,
        "cpu_ms_per_upload_2_nodes": round(two.stack_cpu_ms(), 1),
        **{f"cpu_ms_per_upload_2_nodes_{part}": round(two.cpu_ms(part), 1) for part in PARTS},
        "db_round_trips_per_upload_2_nodes": round(two.round_trips(), 2),
        "db_commits_per_upload_2_nodes": round(two.per_upload(two.commits), 2),
        "pg_commit_ceiling_per_s": round(run.commit_ceiling_per_s),
        "commit_ceiling_uploads_per_s": round(
            run.commit_ceiling_per_s / one.per_upload(one.commits), 1
        )
        if one.commits
        else 0.0,
        "node_uploads_per_s": round(node_uploads_per_s(run), 2),
        "outbox_round_trips_per_extra_node": round(per_extra_node(run)["outbox_round_trips"], 2),
        "ceiling_uploads_per_s_1_node": round(run.cores * 1000 / one.stack_cpu_ms(), 2)
        if one.stack_cpu_ms()
        else 0.0,
    }
    window_s = run.busy["window_s"]
    line["others_cores_during_batches"] = (
        round(run.busy["others_cpu_s"] / window_s, 2) if window_s else 0.0
    )
    for per_day in DAILY:
        size = sizing(run, per_day)
        tag = f"{per_day // 1000}k"
        line[f"app_nodes_{tag}"] = size["app_nodes"]
        line[f"db_round_trips_per_s_{tag}"] = size["db_round_trips_per_s"]
        line[f"db_commits_per_s_{tag}"] = size["db_commits_per_s"]
        line[f"bucket_puts_per_s_{tag}"] = size["bucket_puts_per_s"]
    line["cores"] = run.cores
    return line


def table(run: Run, line: dict[str, Any]) -> str:
    """The human-readable report."""
    one, two, s3 = run.one, run.two, run.s3
    out = [
        f"mediasvc capacity: {run.cores} cores, {CLIENTS} clients, 12 MP photo "
        f"({run.input_bytes / 1e6:.1f} MB), {run.rounds} rounds of {run.batch} uploads per "
        f"deployment; others used {line['others_cores_during_batches']:.2f} cores meanwhile",
        "",
        "budget of one upload      1 node (N workers)   2 nodes (N/2 workers each)",
    ]

    def row(name: str, a: float, b: float, fmt: str = "{:>10.1f}") -> str:
        return f"  {name:<24}{fmt.format(a)}{'':>11}{fmt.format(b)}"

    for part in PARTS:
        out.append(row(f"CPU ms, {part}", one.cpu_ms(part), two.cpu_ms(part)))
    out.append(row("CPU ms, total", one.stack_cpu_ms(), two.stack_cpu_ms()))
    out.append(row("DB round trips", one.round_trips(), two.round_trips(), "{:>10.2f}"))
    for name, n in one.round_trips_by_group().items():
        n2 = two.round_trips_by_group()[name]
        if n or n2:
            out.append(row(f"  {name}", n, n2, "{:>10.2f}"))
    out += [
        row(
            "DB transactions",
            one.per_upload(one.db.transactions.total()),
            two.per_upload(two.db.transactions.total()),
            "{:>10.2f}",
        ),
        row(
            "durable commits (WAL)",
            one.per_upload(one.commits),
            two.per_upload(two.commits),
            "{:>10.2f}",
        ),
        row("WAL KB", one.per_upload(one.wal_bytes) / 1e3, two.per_upload(two.wal_bytes) / 1e3),
        row("outbox events", one.per_upload(one.events), two.per_upload(two.events), "{:>10.2f}"),
        row(
            "webhooks delivered",
            one.per_upload(one.webhooks),
            two.per_upload(two.webhooks),
            "{:>10.2f}",
        ),
        row("uploads/s", one.uploads_per_s, two.uploads_per_s, "{:>10.2f}"),
        row("cores the stack used", one.cores_used(), two.cores_used(), "{:>10.2f}"),
        f"  two nodes, predicted from the budget at the cores they got: "
        f"{line['predicted_uploads_per_s_2_nodes']:.2f} uploads/s (measured "
        f"{two.uploads_per_s:.2f})",
        f"  two nodes over one, uploads/s (median of paired rounds): "
        f"{line['two_nodes_over_one_uploads_per_s']:.3f}",
        f"  the budget's ceiling on {run.cores} cores: {line['ceiling_uploads_per_s_1_node']:.2f}"
        " uploads/s (cores / total CPU per upload)",
    ]
    for name, cost in run.idle.items():
        rest = per_second(cost)
        out.append(
            f"  at rest, {name}: {rest['db_round_trips']:.1f} DB round trips/s; CPU ms/s "
            + ", ".join(f"{part} {ms:.1f}" for part, ms in rest["cpu_ms"].items())
        )
    out += [
        "",
        f"S3 (moto), 1 node, {s3.ok} uploads: "
        f"{line['s3_requests_per_upload']:.2f} requests per upload "
        f"(app CPU {s3.cpu_ms('app'):.1f} ms, moto {s3.cpu_ms('moto'):.1f} ms, not in the budget)",
    ]
    out += [f"  {what:<30}{s3.per_upload(n):>8.2f}" for what, n in s3.s3.most_common()]
    out += ["", "bytes stored per upload, by kind (files under the media dir)"]
    out += [
        f"  {kind:<16}{files:>4} files {stored / 1e3:>10.1f} KB"
        for kind, (files, stored) in run.kinds.items()
    ]
    out += [
        "",
        "database row bytes (pg_column_size, no indexes): "
        + ", ".join(f"{table} {n:.0f}" for table, n in run.row_bytes.items()),
        f"PostgreSQL commit ceiling here (8 connections, one-row autocommit INSERTs): "
        f"{run.commit_ceiling_per_s:.0f}/s",
        "",
        f"sizing, storing to a bucket: peak hour = {PEAK_FACTOR:g}x the mean, cores at most "
        f"{UTILISATION:.0%} busy at peak, {NODE_CORES}-core app nodes, at least {MIN_NODES}",
    ]
    sizes = [sizing(run, per_day) for per_day in DAILY]

    def size_row(name: str, key: str, *inner: str) -> str:
        values = []
        for size in sizes:
            value = size[key]
            for name_in in inner:
                value = value[name_in]
            values.append(value)
        return f"  {name:<34}" + "".join(f"{v:>16}" for v in values)

    out += [
        size_row("uploads a day", "uploads_per_day"),
        size_row("uploads/s, mean", "mean_per_s"),
        size_row("uploads/s, peak", "peak_per_s"),
        *(size_row(f"busy cores at peak, {p}", "busy_cores_at_peak", p) for p in PARTS),
        size_row("app nodes", "app_nodes"),
        size_row("DB round trips per upload", "db_round_trips_per_upload"),
        size_row("DB round trips/s", "db_round_trips_per_s"),
        size_row("DB transactions/s", "db_transactions_per_s"),
        size_row("DB durable commits/s", "db_commits_per_s"),
        size_row("WAL GB/day", "wal_gb_per_day"),
        size_row("bucket PUT/s", "bucket_puts_per_s"),
        size_row("webhooks/s", "webhooks_per_s"),
        *(size_row(f"stored GB/day, all {k}", "stored_gb_per_day", k) for k in run.kinds),
        "",
        f"limits: one {NODE_CORES}-core node at {UTILISATION:.0%}: "
        f"{node_uploads_per_s(run):.1f} uploads/s; PostgreSQL here: "
        f"{line['commit_ceiling_uploads_per_s']:.0f} uploads/s at its commit ceiling; each node "
        f"beyond the first adds {per_extra_node(run)['outbox_round_trips']:.2f} outbox round "
        "trips per upload",
    ]
    return "\n".join(out)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.capacity", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="one tiny round (smoke test)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    procs.exit_on_sigterm()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mediasvc-capacity-") as tmp:
        scratch = Path(tmp)
        scratch.chmod(0o755)  # PostgreSQL and nginx's workers must reach into it
        run = measure(scratch, quick=args.quick)
    line = summary(run)
    print(table(run, line))
    document = {
        "summary": line,
        "budget": {"one_node": budget(run.one), "two_nodes": budget(run.two), "s3": budget(run.s3)},
        "s3_requests_per_upload": run.s3.by_statement(run.s3.s3),
        "at_rest_per_s": {name: per_second(cost) for name, cost in run.idle.items()},
        "kinds": {kind: {"files": f, "bytes": b} for kind, (f, b) in run.kinds.items()},
        "kinds_toml": KINDS_TOML,
        "row_bytes": run.row_bytes,
        "sizing": [sizing(run, per_day) for per_day in DAILY],
        "assumptions": {
            "peak_factor": PEAK_FACTOR,
            "utilisation": UTILISATION,
            "node_cores": NODE_CORES,
            "min_nodes": MIN_NODES,
        },
        "settings": {
            "quick": args.quick,
            "clients": CLIENTS,
            "rounds": run.rounds,
            "uploads_per_batch": run.batch,
            "paired_two_over_one": [round(r, 3) for r in run.paired],
            "busy": {name: round(s, 2) for name, s in run.busy.items()},
            "seconds": round(time.perf_counter() - started, 1),
        },
        **_environment(),
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    path = args.results_dir / f"capacity-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nresults: {path}")
    print(json.dumps(line))
    return 0


def _environment() -> dict[str, Any]:
    from bench.report import environment

    return environment({})


def _say(message: str) -> None:
    print(f"capacity: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
