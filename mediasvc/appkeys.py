"""Typed keys for everything the application object holds."""

import asyncpg
from aiohttp import web

from mediasvc.auth import TokenVerifier
from mediasvc.config import Settings
from mediasvc.flows.moderation import ModerationFlow
from mediasvc.flows.sessions import SessionFlow
from mediasvc.flows.space_deletion import SpaceDeletions
from mediasvc.flows.upload import UploadFlow
from mediasvc.imaging.pool import ImagingPool
from mediasvc.kinds import KindRules
from mediasvc.metrics import Metrics
from mediasvc.storage import Storage

SETTINGS = web.AppKey("mediasvc.settings", Settings)
# Every kind's rules, computed once from the settings by `create_app`.
KINDS = web.AppKey("mediasvc.kinds", dict[str, KindRules])
VERIFIER = web.AppKey("mediasvc.verifier", TokenVerifier)
DB = web.AppKey("mediasvc.db", asyncpg.Pool)
STORAGE = web.AppKey("mediasvc.storage", Storage)
IMAGES = web.AppKey("mediasvc.images", ImagingPool)
METRICS = web.AppKey("mediasvc.metrics", Metrics)
UPLOADS = web.AppKey("mediasvc.uploads", UploadFlow)
SESSIONS = web.AppKey("mediasvc.sessions", SessionFlow)
SPACE_DELETIONS = web.AppKey("mediasvc.space_deletions", SpaceDeletions)
MODERATION = web.AppKey("mediasvc.moderation", ModerationFlow)
