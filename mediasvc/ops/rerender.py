"""`python -m mediasvc rerender`: every matching ready media made again under its kind's
current rules (`flows.rerender`), with a line per media and a summary.

Run it after changing a kind's `sizes`, `formats` or `quality` (and restarting the nodes,
so nginx serves the new names). Safe to interrupt (Ctrl-C) and run again: finished media
are skipped as up to date, and files of an interrupted render are removed by the reaper.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from contextlib import aclosing
from typing import TextIO

from mediasvc import db
from mediasvc.config import ConfigError, Settings
from mediasvc.db.queries import RerenderSelection
from mediasvc.flows.processing import Processor, imaging_pool
from mediasvc.flows.rerender import Options, Rendered, Rerenderer, describe
from mediasvc.kinds import kind_rules
from mediasvc.storage.open import open_storage

# How each outcome reads in a media's line and in the summary.
_WORDS = {
    "rerendered": "rerendered",
    "would_rerender": "would rerender",
    "up_to_date": "up to date, skipped",
    "no_source": "no source, skipped (--from-largest re-derives it from its largest variant)",
    "unknown_kind": "kind not configured, skipped",
    "changed": "changed meanwhile, skipped",
    "failed": "failed, kept as it was",
}


async def rerender(
    settings: Settings,
    selection: RerenderSelection,
    options: Options,
    *,
    limit: int | None = None,
    jobs: int | None = None,
    out: TextIO = sys.stdout,
) -> int:
    """Run the command; 1 if any media failed, else 0."""
    kinds = kind_rules(settings)
    if selection.kind is not None and selection.kind not in kinds:
        known = ", ".join(sorted(kinds))
        raise ConfigError(f"--kind {selection.kind!r} is not a configured kind (known: {known})")
    concurrency = jobs or settings.workers
    settings.spool_dir.mkdir(parents=True, exist_ok=True)
    images = imaging_pool(settings)
    counts: Counter[str] = Counter()
    try:
        async with db.open_pool(settings) as pool, open_storage(settings) as storage:
            flow = Rerenderer(settings, pool, storage, Processor.for_kinds(images, kinds), kinds)
            total = await flow.count(selection)
            total = total if limit is None else min(total, limit)
            dry = "dry run, nothing is changed: " if options.dry_run else ""
            print(f"{dry}{total} {describe(selection)}", file=out, flush=True)
            width = len(str(total))
            results = flow.run(selection, options, concurrency=concurrency, limit=limit)
            async with aclosing(results):
                async for rendered in results:
                    counts[rendered.outcome] += 1
                    done = sum(counts.values())
                    print(f"[{done:>{width}}/{total}] {line(rendered)}", file=out, flush=True)
    except asyncio.CancelledError:
        print(summary(counts) + "; interrupted: run again to finish", file=out, flush=True)
        raise
    finally:
        await images.close()
    print(summary(counts), file=out, flush=True)
    return 1 if counts["failed"] else 0


def line(rendered: Rendered) -> str:
    """One media's progress line."""
    words = _WORDS[rendered.outcome]
    if rendered.origin is not None and rendered.outcome in ("rerendered", "would_rerender"):
        words += f" from its {rendered.origin}"
    return f"{rendered.media_id} {words}" + (f": {rendered.detail}" if rendered.detail else "")


def summary(counts: Counter[str]) -> str:
    """The last line: how many of each outcome."""
    parts = [f"{counts[outcome]} {_WORDS[outcome].split(',')[0]}" for outcome in _WORDS]
    shown = [part for part in parts if not part.startswith("0 ")]
    return "summary: " + (", ".join(shown) if shown else "nothing matched")
