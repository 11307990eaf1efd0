"""API-key checks for the proxy that keep working while the data mart is down.

``KeyService.verify`` reads the store on a cache miss; the proxy wraps it with its own cache
that serves the last answer while the store is unreachable and refreshes it in the background,
so a store outage never stops scoring for keys already seen.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import TYPE_CHECKING

import anyio

from scrutiny.errors import ScrutinyError, StoreUnavailable
from scrutiny.proxy.errors import is_transient

if TYPE_CHECKING:
    from scrutiny.service import Service

GRANT = "log"


class KeyCheck:
    def __init__(self, service: Service, ttl: float = 30.0) -> None:
        self.service = service
        self.ttl = ttl
        # token hash -> (expiry, error or None when the key may log)
        self._cache: dict[str, tuple[float, ScrutinyError | None]] = {}
        self._refreshing: set[str] = set()

    def _verify(self, token: str) -> ScrutinyError | None:
        try:
            self.service.keys.verify(token, GRANT)
            return None
        except ScrutinyError as exc:
            if exc.status in (401, 403):
                return exc
            raise

    async def check(self, token: str | None) -> None:
        """Raise 401/403 for a key that may not log through the proxy, 503 if it cannot be checked."""
        if not token:
            from scrutiny.errors import Unauthorized

            raise Unauthorized(
                "missing API key: send 'Authorization: Bearer <key>' or 'X-Scrutiny-Api-Key: <key>' (a logger key)"
            )
        h = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        hit = self._cache.get(h)
        if hit is not None:
            if hit[0] <= now and h not in self._refreshing:
                self._refreshing.add(h)
                asyncio.get_running_loop().create_task(self._refresh(h, token))
            if hit[1] is not None:
                raise hit[1]
            return
        try:
            error = await anyio.to_thread.run_sync(self._verify, token)
        except Exception as exc:
            if is_transient(exc):
                raise StoreUnavailable("the data mart is unavailable and this API key is not cached yet") from None
            raise
        self._remember(h, error)
        if error is not None:
            raise error

    def _remember(self, h: str, error: ScrutinyError | None) -> None:
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[h] = (time.monotonic() + self.ttl, error)

    async def _refresh(self, h: str, token: str) -> None:
        try:
            self._remember(h, await anyio.to_thread.run_sync(self._verify, token))
        except Exception:
            hit = self._cache.get(h)
            if hit is not None:  # store down: keep the last answer, look again soon
                self._cache[h] = (time.monotonic() + min(self.ttl, 2.0), hit[1])
        finally:
            self._refreshing.discard(h)
