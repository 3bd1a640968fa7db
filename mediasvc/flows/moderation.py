"""An admin's decision on a quarantined media (`POST /v1/media/{id}/moderation`).

    allow: (public media) copy each file from `private/` to its public key → the row
           `quarantined` → `ready` with those keys, `media.ready` (and a replacing kind's
           retirements), one transaction (`flows.ready`) → delete the private copies
    deny:  the delete flow, announcing `media.deleted`

A quarantined media's files are all under `private/` (`flows.upload`), so until the
transaction commits nothing of it is at a plain URL; a copy that fails, or a row that was
decided or deleted meanwhile, leaves the public copies to be removed (here if the row is
still quarantined, else by the purge or the reaper's orphan scan).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import asyncpg
import structlog

from mediasvc import db
from mediasvc.config import Settings
from mediasvc.db import queries
from mediasvc.errors import Busy, Conflict
from mediasvc.flows.delete import delete_media
from mediasvc.flows.ready import become_ready, remove_retired
from mediasvc.keys import PRIVATE_PREFIX, is_private
from mediasvc.kinds import KindRules
from mediasvc.models import Media, StoredAlternate, StoredVariant
from mediasvc.storage import Storage, StorageError

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ModerationFlow:
    """Carries out admins' decisions; made once for the app."""

    settings: Settings
    db: asyncpg.Pool
    storage: Storage
    kinds: Mapping[str, KindRules]

    async def allow(self, media: Media) -> Media:
        """The quarantined `media` becomes `ready`, where everyone who may see it does."""
        self._check_quarantined(media)
        variants = media.variants
        if not media.is_private:
            variants = {name: _published(v) for name, v in media.variants.items()}
        moved = [
            pair
            for variant, published in zip(media.variants.values(), variants.values(), strict=True)
            for pair in _moves(variant, published)
            if pair[0] != pair[1]
        ]
        try:
            await self._copy(moved)
            kind = self.kinds.get(media.kind)
            replacing = kind is not None and kind.replace
            ready, retired = await become_ready(
                self.db,
                self.settings,
                partial(queries.release_quarantine, media_id=media.id, variants=variants),
                owner=media.owner,
                collection=media.collection if replacing else None,
                keep_others=kind.collection_max - 1 if kind is not None else 0,
            )
        except BaseException:
            await asyncio.shield(self._unpublish(media.id, [new for _, new, _ in moved]))
            raise
        await self._delete_quietly([old for old, _, _ in moved])
        await asyncio.shield(remove_retired(self.db, self.storage, retired))
        return ready

    async def deny(self, media: Media) -> None:
        """Delete the quarantined `media`; receivers hear `media.deleted`."""
        self._check_quarantined(media)
        await delete_media(self.db, self.storage, media, self.settings, announce=True)

    @staticmethod
    def _check_quarantined(media: Media) -> None:
        if media.status != "quarantined":
            raise Conflict(f"The media is {media.status}, not quarantined.")

    async def _copy(self, moves: list[tuple[str, str, str]]) -> None:
        """Copy each object (old key, new key, type) through a scratch file in the spool."""
        for old, new, mime in moves:
            with tempfile.TemporaryDirectory(dir=self.settings.spool_dir) as scratch:
                path = Path(scratch) / "copy"
                out = await asyncio.to_thread(path.open, "wb")
                try:
                    async for chunk in self.storage.read(old):
                        await asyncio.to_thread(out.write, chunk)
                    await asyncio.to_thread(out.close)
                    await self.storage.put(new, path, mime)
                except StorageError as exc:
                    log.warning("moderation.copy_failed", error=str(exc))
                    raise Busy("Storage is unavailable; try again shortly.") from exc
                finally:
                    out.close()

    async def _unpublish(self, media_id: str, keys: list[str]) -> None:
        """After a failed allow: remove the public copies unless the media is ready with
        them after all (a concurrent allow, or a COMMIT whose answer was lost)."""
        async with db.connection(self.db) as conn:
            current = await queries.get_media(conn, media_id)
        if current is None or current.status != "ready":
            await self._delete_quietly(keys)

    async def _delete_quietly(self, keys: list[str]) -> None:
        if not keys:
            return
        try:
            await self.storage.delete(keys)
        except StorageError as exc:
            # Kept under the media's prefixes: its purge removes them with it.
            log.warning("moderation.copies_left", error=str(exc))


def _published(variant: StoredVariant) -> StoredVariant:
    """The variant at its public keys."""
    return replace(
        variant,
        key=_public(variant.key),
        alternates=tuple(
            StoredAlternate(_public(a.key), a.bytes, a.mime) for a in variant.alternates
        ),
    )


def _public(key: str) -> str:
    return key.removeprefix(PRIVATE_PREFIX) if is_private(key) else key


def _moves(old: StoredVariant, new: StoredVariant) -> list[tuple[str, str, str]]:
    """(old key, new key, type) of a variant's file and its alternates'."""
    return [(old.key, new.key, old.mime)] + [
        (a.key, b.key, a.mime) for a, b in zip(old.alternates, new.alternates, strict=True)
    ]
