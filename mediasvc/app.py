"""The application factory: wiring only, no I/O until the app starts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from mediasvc import db, usage
from mediasvc.appkeys import (
    DB,
    IMAGES,
    KINDS,
    METRICS,
    MODERATION,
    SESSIONS,
    SETTINGS,
    SPACE_DELETIONS,
    STORAGE,
    UPLOADS,
    VERIFIER,
)
from mediasvc.auth import TokenVerifier
from mediasvc.config import Settings
from mediasvc.events.dispatcher import running_dispatcher
from mediasvc.flows.moderation import ModerationFlow
from mediasvc.flows.processing import Processor, imaging_pool
from mediasvc.flows.reaper import reap
from mediasvc.flows.sessions import SessionFlow
from mediasvc.flows.space_deletion import SpaceDeletions
from mediasvc.flows.upload import UploadFlow
from mediasvc.form import UploadForm
from mediasvc.kinds import default_kind, kind_rules
from mediasvc.metrics import Metrics
from mediasvc.moderation import running_moderator
from mediasvc.nginxcache import running_purger
from mediasvc.spaces import MAX_HEADER_BYTES
from mediasvc.storage.open import open_storage
from mediasvc.timers import every, in_background
from mediasvc.web.budgets import add_headers as budget_headers
from mediasvc.web.cors import cors
from mediasvc.web.middlewares import (
    problem_errors,
    provider_keys,
    request_log,
    unencoded_bodies,
)
from mediasvc.web.routes import setup_routes

log = structlog.get_logger(__name__)


def create_app(settings: Settings) -> web.Application:
    """The aiohttp application for `settings`; resources open when it starts.

    A bad kinds table (`MEDIASVC_KINDS_FILE`) raises `ConfigError` here, before anything
    starts, as a bad setting does in `Settings.from_env`.
    """
    app = web.Application(
        # CORS outside the problem middleware, so that problems carry its headers too.
        middlewares=[request_log, cors, problem_errors, unencoded_bodies, provider_keys],
        handler_args={
            # aiohttp's default (8190 bytes) is too short for a token listing many spaces.
            "max_field_size": MAX_HEADER_BYTES,
            # Never inflate a request body (`unencoded_bodies` refuses encoded ones): inflating
            # costs CPU on the event loop, and an encoding aiohttp cannot decode (br, zstd)
            # would be refused while the headers are parsed, closing the connection on a
            # client (nginx) that is still sending.
            "auto_decompress": False,
        },
    )
    app[SETTINGS] = settings
    app[KINDS] = kind_rules(settings)
    app[METRICS] = Metrics()
    app[VERIFIER] = TokenVerifier.from_settings(settings)
    # Dependency order: database, then storage, then the workers that feed it, then the
    # flows built on all three.
    app.cleanup_ctx.extend(
        [
            _spool_dir,
            _database,
            _storage,
            _imaging_pool,
            _upload_flow,
            _reaper_timer,
            _usage_gauges,
            _space_deleter,
            _session_completer,
            _event_dispatcher,
            _cache_purger,
            _provider_keys,
        ]
    )
    setup_routes(app)
    app.on_response_prepare.append(budget_headers)
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
    pool = imaging_pool(app[SETTINGS])
    app[IMAGES] = pool
    app[METRICS].watch(pool, app[DB])
    yield
    await pool.close()


async def _upload_flow(app: web.Application) -> AsyncIterator[None]:
    settings, kinds = app[SETTINGS], app[KINDS]
    processor = Processor.for_kinds(app[IMAGES], kinds)
    # The moderation hook's HTTP client lives as long as the flows that ask it.
    async with running_moderator(settings, app[METRICS]) as moderator:
        app[UPLOADS] = UploadFlow(
            settings=settings,
            db=app[DB],
            storage=app[STORAGE],
            processor=processor,
            form=UploadForm(
                kinds,
                default_kind=default_kind(settings),
                redirect_origins=frozenset(settings.cors_origins),
            ),
            metrics=app[METRICS],
            moderator=moderator,
        )
        app[SESSIONS] = SessionFlow(
            db=app[DB],
            storage=app[STORAGE],
            processor=processor,
            kinds=kinds,
            uploads=app[UPLOADS],
            spool_dir=settings.spool_dir,
            url_signing_secret=settings.url_signing_secret,
            ttl_s=settings.upload_session_ttl_s,
        )
        app[MODERATION] = ModerationFlow(settings, app[DB], app[STORAGE], kinds)
        yield
        # Background completions may still be asking the hook.
        await app[SESSIONS].close()


async def _provider_keys(app: web.Application) -> AsyncIterator[None]:
    """The identity provider's keys, fetched at start and refreshed in the background."""
    provider = app[VERIFIER].provider
    if provider is None:
        yield
        return
    async with in_background(provider.keep_fresh()):
        yield


async def _event_dispatcher(app: web.Application) -> AsyncIterator[None]:
    """Webhook deliveries from the outbox, on every node (nothing without a webhook URL)."""
    async with running_dispatcher(app[SETTINGS], app[DB], app[METRICS]):
        yield


async def _cache_purger(app: web.Application) -> AsyncIterator[None]:
    """Removed public variants purged from this host's nginx cache (`nginxcache`), on every
    node with MEDIASVC_NGINX_CACHE_DIR."""
    async with running_purger(app[SETTINGS], app[DB]):
        yield


async def _reaper_timer(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]

    async def reap_once() -> None:
        report = await reap(
            app[DB], app[STORAGE], settings.spool_dir, grace_s=settings.reaper_grace_s
        )
        reaped = app[METRICS].reaper
        reaped.labels("rows").inc(report.rows_removed)
        reaped.labels("listed").inc(report.listed_removed)
        reaped.labels("orphans").inc(report.orphans_removed)
        reaped.labels("spool").inc(report.spool_removed)

    async with every(settings.reaper_interval_s, reap_once, "reaper.failed"):
        yield


async def _usage_gauges(app: web.Application) -> AsyncIterator[None]:
    """The usage gauges: computed by one node per interval, read by every node (`usage`)."""
    settings, kinds = app[SETTINGS], app[KINDS]
    keeping = usage.source_kinds(kinds)

    async def refresh() -> None:
        await usage.refresh(app[DB], app[METRICS], keeping, max_age_s=settings.usage_interval_s)

    async with every(settings.usage_interval_s, refresh, "usage.refresh_failed"):
        yield


async def _space_deleter(app: web.Application) -> AsyncIterator[None]:
    """Spaces being emptied, on every node: whichever node accepted the request, any node
    finishes it (`flows.space_deletion`), on the reaper's interval or at once when kicked."""
    settings = app[SETTINGS]
    deletions = SpaceDeletions(db=app[DB], storage=app[STORAGE], settings=settings)
    app[SPACE_DELETIONS] = deletions
    async with deletions.running(settings.reaper_interval_s):
        yield


async def _session_completer(app: web.Application) -> AsyncIterator[None]:
    """Sessions that complete by themselves, on every node (`SessionFlow.complete_due`)."""

    async def complete_due() -> None:
        await app[SESSIONS].complete_due()

    interval_s = app[SETTINGS].auto_complete_interval_s
    async with every(interval_s, complete_due, "session.completer_failed"):
        yield
