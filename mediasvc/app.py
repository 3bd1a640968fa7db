"""The application factory: wiring only, no I/O until the app starts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from mediasvc import db
from mediasvc.appkeys import DB, POOL, SETTINGS, STORAGE, VERIFIER
from mediasvc.auth import TokenVerifier
from mediasvc.config import Settings
from mediasvc.imaging.pool import ImagingPool
from mediasvc.storage import open_storage
from mediasvc.web.middlewares import problem_errors, request_log
from mediasvc.web.routes import setup_routes


def create_app(settings: Settings) -> web.Application:
    """The aiohttp application for `settings`; resources open when it starts."""
    app = web.Application(middlewares=[request_log, problem_errors])
    app[SETTINGS] = settings
    app[VERIFIER] = TokenVerifier(secret=settings.jwt_secret, public_key=settings.jwt_public_key)
    # Dependency order: database, then storage, then the workers that feed it.
    app.cleanup_ctx.extend([_spool_dir, _database, _storage, _imaging_pool])
    setup_routes(app)
    return app


async def _spool_dir(app: web.Application) -> AsyncIterator[None]:
    await asyncio.to_thread(app[SETTINGS].spool_dir.mkdir, parents=True, exist_ok=True)
    yield


async def _database(app: web.Application) -> AsyncIterator[None]:
    async with db.open_pool(app[SETTINGS]) as pool:
        app[DB] = pool
        yield


async def _storage(app: web.Application) -> AsyncIterator[None]:
    async with open_storage(app[SETTINGS]) as storage:
        app[STORAGE] = storage
        yield


async def _imaging_pool(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    pool = ImagingPool(
        workers=settings.workers,
        queue_max=settings.queue_max,
        timeout_s=settings.job_timeout_s,
    )
    app[POOL] = pool
    yield
    await pool.close()
