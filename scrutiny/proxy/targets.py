"""What a proxied request needs to know about its subscription, cached so the store is not on the
scoring path: the subscription, its engine adapter (with the binding's credentials), the
deployment and the model context.

Entries are refreshed in the background after ``ttl`` seconds and kept while the store is
down (stale-while-revalidate), so scoring keeps working through a data mart outage.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from scrutiny.core.subscription import Subscription
from scrutiny.errors import NotFound, StoreUnavailable
from scrutiny.proxy.convert import Codec
from scrutiny.proxy.errors import is_transient

if TYPE_CHECKING:
    from scrutiny.service import Service

log = logging.getLogger("scrutiny.proxy")

# Engines whose native format is the common format: a {fields, values} body is native for them.
COMMON_NATIVE = frozenset({"custom"})


@dataclass(frozen=True)
class Target:
    subscription: Subscription
    codec: Codec

    @property
    def speaks_common(self) -> bool:
        return self.codec.engine.engine_type in COMMON_NATIVE


class Targets:
    def __init__(self, service: Service, ttl: float = 5.0, negative_ttl: float = 2.0) -> None:
        self.service = service
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self._cache: dict[str, tuple[float, Target]] = {}
        self._missing: dict[str, float] = {}
        self._refreshing: set[str] = set()

    def load(self, sub_id: str) -> Target:
        """Read the subscription and build its adapter now (blocking; store errors propagate)."""
        svc = self.service
        svc.subscriptions.forget(sub_id)
        sub = svc.subscriptions.get(sub_id)
        codec = Codec(
            svc.bindings.engine(sub.binding_id), svc.subscriptions.deployment(sub), svc.subscriptions.context(sub)
        )
        target = Target(sub, codec)
        self._cache[sub_id] = (time.monotonic() + self.ttl, target)
        self._missing.pop(sub_id, None)
        return target

    def invalidate(self, sub_id: str) -> None:
        self._cache.pop(sub_id, None)
        self.service.subscriptions.forget(sub_id)

    def get_sync(self, sub_id: str) -> Target:
        """For the background writer: fresh when possible, the last known one while the store is down."""
        hit = self._cache.get(sub_id)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        try:
            return self.load(sub_id)
        except Exception as exc:
            if hit is not None and is_transient(exc):
                return hit[1]
            raise

    async def get(self, sub_id: str) -> Target:
        """For the scoring path: never waits for the store when an entry exists."""
        now = time.monotonic()
        hit = self._cache.get(sub_id)
        if hit is not None:
            if hit[0] <= now and sub_id not in self._refreshing:
                self._refreshing.add(sub_id)
                asyncio.get_running_loop().create_task(self._refresh(sub_id))
            return hit[1]
        gone = self._missing.get(sub_id)
        if gone is not None and gone > now:
            raise NotFound(f"subscription {sub_id!r} not found")
        try:
            return await anyio.to_thread.run_sync(self.load, sub_id)
        except NotFound:
            if len(self._missing) > 10_000:
                self._missing.clear()
            self._missing[sub_id] = now + self.negative_ttl
            raise
        except Exception as exc:
            if is_transient(exc):
                raise StoreUnavailable(
                    f"the data mart is unavailable and subscription {sub_id!r} is not cached yet: nothing was scored"
                ) from None
            raise

    async def _refresh(self, sub_id: str) -> None:
        try:
            await anyio.to_thread.run_sync(self.load, sub_id)
        except NotFound:
            self._cache.pop(sub_id, None)  # deleted: the next request gets 404
        except Exception as exc:
            if is_transient(exc):
                log.debug("store unavailable; serving subscription %s from cache", sub_id)
            else:
                log.warning("refreshing subscription %s failed: %s", sub_id, exc)
            hit = self._cache.get(sub_id)
            if hit is not None:  # try again after a short pause, keep serving the cached entry
                self._cache[sub_id] = (time.monotonic() + min(self.ttl, 1.0), hit[1])
        finally:
            self._refreshing.discard(sub_id)
