"""An identity provider's signing keys (its JWKS), held in memory by `kid`.

PyJWT's `PyJWKClient` fetches, checks and parses the key set. It speaks urllib, which
blocks, so it only ever runs in a thread; this module decides when it runs:

- at start and every `REFRESH_S` in the background, so keys the provider retires stop
  verifying within that time, and a token whose `kid` is known costs no network at all;
- when a token names a `kid` not yet known (the provider rotated its keys), at once, but
  at most once per `UNKNOWN_KID_COOLDOWN_S`, so tokens with forged `kid`s cannot make
  every request a fetch. Requests waiting for the same fetch share it.

PyJWKClient's own caches are not used: its set cache refetches (blocking) when it
expires, and its per-`kid` cache never forgets a key the provider has removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import jwt
import structlog
from jwt import PyJWK, PyJWKClient

log = structlog.get_logger(__name__)

REFRESH_S = 300.0
UNKNOWN_KID_COOLDOWN_S = 30.0
# A provider slower than this is treated as down for this fetch; the old keys stay in use.
FETCH_TIMEOUT_S = 5.0
# What identity providers sign with. Keys for other algorithms in the set are left out.
ALGORITHMS = frozenset({"RS256", "ES256"})


class KeyFetchFailed(Exception):
    """The key set could not be fetched or read; the message says why."""


class ProviderKeys:
    """The signing keys published at one JWKS URL."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = FETCH_TIMEOUT_S,
        cooldown_s: float = UNKNOWN_KID_COOLDOWN_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._client = PyJWKClient(url, cache_jwk_set=False, timeout=timeout_s)
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._keys: dict[str, PyJWK] = {}
        self._fetching: asyncio.Future[None] | None = None
        self._last_unknown_kid_fetch: float | None = None

    def get(self, kid: str) -> PyJWK | None:
        """The key named `kid` as last fetched; never touches the network."""
        return self._keys.get(kid)

    async def find(self, kid: str) -> PyJWK | None:
        """The key named `kid`, fetching the set again if the `kid` is new to us and the
        cooldown since the last such fetch has passed; None if the provider has no such key.

        Raises `KeyFetchFailed` if a fetch was made and failed.
        """
        if (key := self._keys.get(kid)) is not None:
            return key
        if self._fetching is None:
            now = self._clock()
            last = self._last_unknown_kid_fetch
            if last is not None and now - last < self._cooldown_s:
                return None
            self._last_unknown_kid_fetch = now
        await self.refresh()
        return self._keys.get(kid)

    async def refresh(self) -> None:
        """Fetch the key set now, or wait for the fetch already under way."""
        if self._fetching is None:
            self._fetching = asyncio.ensure_future(self._fetch())
            self._fetching.add_done_callback(self._fetch_done)
        # A caller that goes away (client gone) must not cancel a fetch others wait for.
        await asyncio.shield(self._fetching)

    def _fetch_done(self, _: asyncio.Future[None]) -> None:
        self._fetching = None

    async def _fetch(self) -> None:
        try:
            keys = await asyncio.to_thread(self._client.get_signing_keys, True)
        # PyJWT's own errors (unreachable, not a key set, no usable key), and json's
        # ValueError for a body that is not JSON at all.
        except (jwt.PyJWTError, ValueError) as exc:
            log.warning("jwks.fetch_failed", url=self.url, error=str(exc))
            raise KeyFetchFailed(f"cannot fetch the keys at {self.url}: {exc}") from None
        self._keys = {
            key.key_id: key for key in keys if key.key_id and key.algorithm_name in ALGORITHMS
        }
        log.info("jwks.fetched", url=self.url, kids=sorted(self._keys))

    async def keep_fresh(self, every_s: float = REFRESH_S) -> None:
        """Fetch now and then every `every_s` until cancelled; a failed fetch keeps the
        keys already held (it is logged) and is tried again at the next interval."""
        while True:
            with contextlib.suppress(KeyFetchFailed):  # logged where it happened
                await self.refresh()
            await asyncio.sleep(every_s)
