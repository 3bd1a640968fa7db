"""`python -m mediasvc usage`: what the service holds, grouped by owner, space or kind, the
largest first, and the total (`mediasvc.usage`)."""

from __future__ import annotations

import sys
from typing import TextIO

from mediasvc import db
from mediasvc.config import Settings
from mediasvc.db.queries import UsageGroup
from mediasvc.kinds import kind_rules
from mediasvc.usage import table, usage


async def show_usage(
    settings: Settings, *, by: UsageGroup, top: int | None, out: TextIO = sys.stdout
) -> int:
    """Print the table (without `by`: the total only)."""
    kinds = kind_rules(settings)
    async with db.open_pool(settings) as pool:
        rows, total = await usage(pool, kinds, by=by, top=top)
    print("\n".join(table(rows, total, by)), file=out)
    return 0
