"""Liveness and readiness."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from aiohttp import web

from mediasvc import db
from mediasvc.appkeys import DB, IMAGES, METRICS, STORAGE
from mediasvc.contract import shapes
from mediasvc.errors import MediaError
from mediasvc.imaging.pool import PoolError
from mediasvc.metrics import CONTENT_TYPE
from mediasvc.storage import StorageError
from mediasvc.web.bodies import answer

_CHECK_TIMEOUT_S = 5.0


async def healthz(request: web.Request) -> web.Response:
    """GET /healthz: the process answers. Dependencies are /readyz's business."""
    return answer(shapes.Health(status="ok"))


async def readyz(request: web.Request) -> web.Response:
    """GET /readyz: 200 when the database, storage and image workers all answer, else 503."""
    checks = await asyncio.gather(
        _check("database", _database(request)),
        _check("storage", request.app[STORAGE].check()),
        _check("workers", request.app[IMAGES].ping()),
    )
    results = dict(checks)
    ready = all(result == "ok" for result in results.values())
    readiness = shapes.Readiness.model_validate(
        {"status": "ready" if ready else "unavailable", "checks": results}
    )
    return answer(
        readiness,
        status=200 if ready else 503,
        headers=None if ready else {"Retry-After": "5"},
    )


async def _database(request: web.Request) -> None:
    async with db.connection(request.app[DB]) as conn:
        await conn.fetchval("SELECT 1")


async def _check(name: str, probe: Awaitable[None]) -> tuple[str, str]:
    try:
        await asyncio.wait_for(probe, _CHECK_TIMEOUT_S)
    except (TimeoutError, MediaError, StorageError, PoolError):
        return name, "unavailable"
    return name, "ok"


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics: Prometheus text for this node (nginx does not expose it)."""
    return web.Response(
        body=request.app[METRICS].exposition(),
        headers={"Content-Type": CONTENT_TYPE},
    )
