"""Charging a request to its user's budgets (`mediasvc.budgets`), once the token verified,
and telling the client its budget in every answer."""

from __future__ import annotations

from typing import Literal

from aiohttp import web

from mediasvc import budgets, db
from mediasvc.appkeys import DB, SETTINGS
from mediasvc.auth import Principal
from mediasvc.budgets import Budget, Spent
from mediasvc.db import queries
from mediasvc.errors import TooManyRequests
from mediasvc.kinds import KindRules

# What the request spent so far, for the headers of its answer (`add_headers`).
SPENT = web.RequestKey("mediasvc.spent", list[Spent])


def operation_budget(
    request: web.Request, operation: Literal["uploads", "deletes", "reads"]
) -> Budget | None:
    """The configured budget for `operation`; None if it is off."""
    settings = request.app[SETTINGS]
    per_minute = {
        "uploads": settings.user_uploads_per_min,
        "deletes": settings.user_deletes_per_min,
        "reads": settings.user_reads_per_min,
    }[operation]
    return Budget(operation, per_minute) if per_minute else None


def kind_budget(kind: KindRules) -> Budget | None:
    """A kind's own upload budget (`uploads_per_minute` in the kinds file), if it has one."""
    per_minute = kind.uploads_per_minute
    return Budget(f"uploads.{kind.name}", per_minute) if per_minute else None


async def charge(request: web.Request, principal: Principal, budget: Budget | None) -> None:
    """Spend one request of `principal`'s `budget`; `TooManyRequests` if it is used up.

    Admins have no budget. A refused request spends nothing.
    """
    if budget is None or principal.admin:
        return
    async with db.connection(request.app[DB]) as conn:
        allowed, ahead_s = await queries.spend_budget(
            conn,
            principal.sub,
            budget.operation,
            interval_s=budget.interval_s,
            burst=budget.per_minute,
        )
    spent = Spent(budget, allowed, ahead_s)
    request.setdefault(SPENT, []).append(spent)
    if not allowed:
        raise TooManyRequests(
            f"You have used your {budget.per_minute} {budget.operation} per minute; "
            f"try again in {spent.retry_after_s} s.",
            retry_after=spent.retry_after_s,
            limit=budget.per_minute,
            budget=budget.operation,
        )


async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare`: the budget headers on any answer to a request that spent."""
    spent = request.get(SPENT)
    if spent:
        response.headers.update(budgets.headers(spent))
