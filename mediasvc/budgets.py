"""Request budgets per verified user: how many uploads, deletes and reads of the API one
user may make per minute, shared by every node (kept in PostgreSQL, `db.queries`).

Each budget is a GCRA: `per_minute` requests spread over a minute, and room for all of
them at once (a user who made none for a minute may make a minute's worth in a burst).
Only tokens that verified spend anything, so a forged token cannot spend a victim's
budget; admins (the product's own backend acting for everyone) have none. The answer to
every request that spent one carries the IETF draft's `RateLimit-Policy` and `RateLimit`
headers; a refusal is `429 too_many_requests` with `Retry-After`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# The window every budget is stated over (`w` in the headers).
WINDOW_S = 60


@dataclass(frozen=True, slots=True)
class Budget:
    """`per_minute` requests of one operation (`uploads`, `deletes`, `reads`, or
    `uploads.<kind>` for a kind's own budget)."""

    operation: str
    per_minute: int

    @property
    def interval_s(self) -> float:
        return WINDOW_S / self.per_minute

    @property
    def policy(self) -> str:
        """This budget as a `RateLimit-Policy` item."""
        return f'"{self.operation}";q={self.per_minute};w={WINDOW_S}'


@dataclass(frozen=True, slots=True)
class Spent:
    """One request against a budget: whether it was allowed, and the budget after it."""

    budget: Budget
    allowed: bool
    # How far the budget's theoretical arrival time is ahead of now.
    ahead_s: float

    @property
    def remaining(self) -> int:
        if not self.allowed:
            return 0
        return max(0, self.budget.per_minute - math.ceil(self.ahead_s / self.budget.interval_s))

    @property
    def reset_s(self) -> int:
        """Seconds until the budget is whole again."""
        return math.ceil(self.ahead_s)

    @property
    def retry_after_s(self) -> int:
        """Seconds until a refused request would be allowed."""
        budget = self.budget
        return max(1, math.ceil(self.ahead_s - budget.interval_s * (budget.per_minute - 1)))

    @property
    def state(self) -> str:
        """This budget as a `RateLimit` item."""
        return f'"{self.budget.operation}";r={self.remaining};t={self.reset_s}'


def headers(spent: list[Spent]) -> dict[str, str]:
    """The `RateLimit-Policy` and `RateLimit` headers for the budgets a request spent."""
    return {
        "RateLimit-Policy": ", ".join(s.budget.policy for s in spent),
        "RateLimit": ", ".join(s.state for s in spent),
    }
