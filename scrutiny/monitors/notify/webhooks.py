"""Webhooks: where alert events go, and the worker that delivers them.

Notifications are queued in ``alert_notifications`` in the same transaction as the alert, so
none is lost when the process stops. The worker POSTs each one as JSON; a non-2xx answer or a
connection error is retried with exponential backoff (``base``, 2·base, 4·base... capped at one
hour) up to ``max_attempts``; every attempt's error is kept. With a secret, the body is signed:
``X-Scrutiny-Signature: sha256=<hex HMAC of the body>``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import orjson
import sqlalchemy as sa

from scrutiny.errors import InvalidInput, NotFound
from scrutiny.monitors.run.reader import iso
from scrutiny.monitors.tables import alert_notifications, webhooks
from scrutiny.store.types import utcnow

if TYPE_CHECKING:
    from scrutiny.service import Service

log = logging.getLogger("scrutiny.webhooks")


@dataclass
class DeliveryPolicy:
    base_seconds: float = 2.0
    max_seconds: float = 3600.0
    max_attempts: int = 10
    timeout: float = 10.0

    def delay(self, attempts: int) -> timedelta:
        return timedelta(seconds=min(self.max_seconds, self.base_seconds * 2 ** max(0, attempts - 1)))


def to_api(r: Any) -> dict[str, Any]:
    m = r._mapping if hasattr(r, "_mapping") else r
    return {
        "id": m["id"],
        "url": m["url"],
        "subscription_id": m["subscription_id"],
        "monitors": m["monitors"],
        "has_secret": m["sealed_secret"] is not None,
        "description": m["description"],
        "created_at": iso(m["created_at"]),
    }


def delivery_to_api(r: Any) -> dict[str, Any]:
    m = r._mapping
    return {
        "id": int(m["id"]),
        "webhook_id": m["webhook_id"],
        "alert_id": m["alert_id"],
        "event": m["event"],
        "attempts": int(m["attempts"]),
        "delivered_at": iso(m["delivered_at"]),
        "next_attempt_at": iso(m["next_attempt_at"]),
        "last_error": m["last_error"],
        "created_at": iso(m["created_at"]),
    }


class WebhookService:
    def __init__(self, service: Service, policy: DeliveryPolicy | None = None) -> None:
        self.service = service
        self.policy = policy or DeliveryPolicy()

    @property
    def engine(self) -> sa.Engine:
        return self.service.store.engine

    def create(
        self,
        url: str,
        *,
        subscription_id: str | None = None,
        monitors: list[str] | None = None,
        secret: str | None = None,
        description: str | None = None,
    ) -> dict[str, Any]:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise InvalidInput("url must be an http(s) URL", field="url")
        if subscription_id is not None:
            self.service.subscriptions.get(subscription_id)
        if monitors is not None:
            from scrutiny.monitors import registry

            for i, name in enumerate(monitors):
                if registry.find(name) is None:
                    raise InvalidInput(f"unknown monitor {name!r}", field=f"monitors[{i}]")
        row = {
            "id": str(uuid.uuid4()),
            "url": url,
            "subscription_id": subscription_id,
            "monitors": monitors,
            "sealed_secret": self.service.box.seal({"secret": secret}) if secret else None,
            "description": description,
            "created_at": utcnow(),
        }
        with self.service.store.write() as conn:
            conn.execute(webhooks.insert().values(**row))
        return to_api(row)

    def delete(self, webhook_id: str) -> None:
        with self.service.store.write() as conn:
            if conn.execute(webhooks.delete().where(webhooks.c.id == webhook_id)).rowcount == 0:
                raise NotFound(f"webhook {webhook_id!r} not found")

    def deliveries(self, webhook_id: str, limit: int = 100) -> list[dict[str, Any]]:
        n = alert_notifications.c
        with self.engine.connect() as conn:
            q = sa.select(alert_notifications).where(n.webhook_id == webhook_id).order_by(n.id.desc()).limit(limit)
            return [delivery_to_api(r) for r in conn.execute(q)]

    # -- delivery ---------------------------------------------------------------------------------
    def deliver_due(self, http: httpx.Client, now: datetime | None = None, limit: int = 50) -> int:
        """Send the notifications that are due; returns how many were delivered."""
        now = now or utcnow()
        n = alert_notifications.c
        with self.engine.connect() as conn:
            due = conn.execute(
                sa.select(alert_notifications, webhooks.c.url, webhooks.c.sealed_secret)
                .join(webhooks, webhooks.c.id == n.webhook_id)
                .where(n.next_attempt_at.is_not(None), n.next_attempt_at <= now)
                .order_by(n.next_attempt_at, n.id)
                .limit(limit)
            ).all()
        delivered = 0
        for row in due:
            if not self._claim(row, now):
                continue  # another worker took it
            delivered += self._send(http, row)
        return delivered

    def _claim(self, row: Any, now: datetime) -> bool:
        """Push the next attempt out before sending, so two workers never send the same one twice."""
        n = alert_notifications.c
        lease = now + timedelta(seconds=self.policy.timeout * 3)
        with self.service.store.write() as conn:
            res = conn.execute(
                alert_notifications.update()
                .where(n.id == row.id, n.next_attempt_at == row.next_attempt_at)
                .values(next_attempt_at=lease)
            )
            return bool(res.rowcount == 1)

    def _send(self, http: httpx.Client, row: Any) -> int:
        body = orjson.dumps({**row.body, "delivery_id": int(row.id), "attempt": int(row.attempts) + 1})
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "scrutiny-webhooks",
            "X-Scrutiny-Event": row.event,
            "X-Scrutiny-Delivery": str(row.id),
        }
        if row.sealed_secret is not None:
            secret = self.service.box.open(bytes(row.sealed_secret))["secret"].encode()
            headers["X-Scrutiny-Signature"] = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        error = None
        try:
            r = http.post(row.url, content=body, headers=headers, timeout=self.policy.timeout)
            if not 200 <= r.status_code < 300:
                error = f"HTTP {r.status_code}"
        except httpx.HTTPError as exc:
            error = f"{exc.__class__.__name__}: {exc}"[:500]
        attempts = int(row.attempts) + 1
        now = utcnow()
        n = alert_notifications.c
        if error is None:
            values: dict[str, Any] = {
                "attempts": attempts,
                "delivered_at": now,
                "next_attempt_at": None,
                "last_error": None,
            }
        elif attempts >= self.policy.max_attempts:
            values = {
                "attempts": attempts,
                "next_attempt_at": None,
                "last_error": f"gave up after {attempts} attempts: {error}",
            }
            log.warning("webhook delivery %s to %s failed for good: %s", row.id, row.url, error)
        else:
            values = {"attempts": attempts, "next_attempt_at": now + self.policy.delay(attempts), "last_error": error}
        with self.service.store.write() as conn:
            conn.execute(alert_notifications.update().where(n.id == row.id).values(**values))
        return 1 if error is None else 0

    def list(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [to_api(r) for r in conn.execute(sa.select(webhooks).order_by(webhooks.c.created_at))]
