"""Where the background writer delivers spooled records.

* ``StoreSink``: straight into the data mart through the common ingest path
  (``parse_payloads`` + ``write_batch``), in the proxy and in ``scrutiny serve``.
* ``ApiSink``: to a Scrutiny server's ``POST /v1/subscriptions/{id}/payloads``, for the
  embedded logger in an application that has no access to the data mart.

Both return the records they can never store (with the reason) and raise ``Transient`` when
the destination is down; both are idempotent on ``scoring_id``, which makes replay safe.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from scrutiny.errors import InvalidInput, NotFound
from scrutiny.ingest.payloads import parse_payloads
from scrutiny.ingest.writer import PAYLOAD, write_batch
from scrutiny.proxy.convert import Codec, Rejected, payload_record
from scrutiny.proxy.errors import Transient, is_transient
from scrutiny.spool.record import SpoolRecord

if TYPE_CHECKING:
    import httpx

    from scrutiny.proxy.targets import Targets
    from scrutiny.service import Service

log = logging.getLogger("scrutiny.spool")

RejectedRecords = list[tuple[SpoolRecord, str]]


@dataclass
class Delivery:
    stored: int = 0  # rows inserted
    duplicates: int = 0  # rows already stored (a replay), skipped
    rejected: RejectedRecords = field(default_factory=list)  # records that can never be stored, with the reason


class Sink(Protocol):
    def write(self, subscription_id: str, records: list[SpoolRecord], *, isolate: bool = False) -> Delivery:
        """Store ``records``; report those that can never be stored. Raise ``Transient`` when down."""
        ...

    def healthy(self) -> bool:
        """Whether the destination answers at all (tells a bad record from an outage)."""
        ...


Items = list[tuple[SpoolRecord, dict[str, Any]]]


def _store_items(
    items: Items,
    store_some: Callable[[Items], None],
    rejected: RejectedRecords,
    isolate: bool,
    healthy: Callable[[], bool],
) -> None:
    """Store ``items``; when a batch fails on its data, set the bad records aside and store the rest.

    An error that names its record drops that record; otherwise (or after a few named ones,
    to stay O(n log n) when many are bad) the batch is halved until the bad records are alone.
    """
    stack = [items]
    while stack:
        batch = stack.pop()
        named = 0
        while batch:
            try:
                store_some(batch)
                break
            except Rejected as exc:
                index = exc.args[1] if len(exc.args) > 1 else None
                if isinstance(index, int) and 0 <= index < len(batch) and named < 4:
                    named += 1
                    rejected.append((batch[index][0], str(exc.args[0])))
                    batch = batch[:index] + batch[index + 1 :]
                    continue
                reason = str(exc.args[0])
            except Exception as exc:
                if is_transient(exc) and not (isolate and healthy()):
                    raise Transient(str(exc)) from None
                reason = f"{exc.__class__.__name__}: {exc}"
            if len(batch) == 1:
                rejected.append((batch[0][0], reason))
            else:
                mid = len(batch) // 2
                stack += [batch[mid:], batch[:mid]]
            break


class StoreSink:
    def __init__(self, service: Service, targets: Targets) -> None:
        self.service = service
        self.targets = targets

    def healthy(self) -> bool:
        try:
            with self.service.store.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            return True
        except Exception:
            return False

    def write(self, subscription_id: str, records: list[SpoolRecord], *, isolate: bool = False) -> Delivery:
        try:
            target = self.targets.get_sync(subscription_id)
        except NotFound:
            return Delivery(rejected=[(r, f"subscription {subscription_id!r} no longer exists") for r in records])
        except Exception as exc:
            if is_transient(exc):
                raise Transient(str(exc)) from None
            raise
        out = Delivery()
        items: Items = []
        for rec in records:
            try:
                items.append((rec, payload_record(rec, target.codec)))
            except Rejected as exc:
                out.rejected.append((rec, str(exc)))
        state = {"sub": target.subscription}

        def store_some(batch: Items) -> None:
            sub = state["sub"]
            try:
                parsed = parse_payloads([p for _, p in batch], sub)
            except InvalidInput as exc:
                raise Rejected(_reason(exc.reason, exc.context), exc.context.get("record")) from None
            result = write_batch(self.service.store, sub, parsed.batch, parsed.layout, PAYLOAD)
            out.stored += result.stored
            out.duplicates += result.duplicates
            if parsed.layout != sub.layout:  # the first payload defined the schema, or new columns
                self.targets.invalidate(subscription_id)
                state["sub"] = self.targets.get_sync(subscription_id).subscription

        _store_items(items, store_some, out.rejected, isolate, self.healthy)
        return out


class ApiSink:
    """Delivers to a Scrutiny server with a logger key; records are converted here with ``codec``."""

    def __init__(self, client: httpx.Client, codec: Codec | None = None) -> None:
        self.client = client
        self.codec = codec

    def healthy(self) -> bool:
        try:
            return self.client.get("/health").status_code < 500
        except Exception:
            return False

    def write(self, subscription_id: str, records: list[SpoolRecord], *, isolate: bool = False) -> Delivery:
        import httpx

        out = Delivery()
        items: Items = []
        for rec in records:
            try:
                items.append((rec, payload_record(rec, self.codec)))
            except Rejected as exc:
                out.rejected.append((rec, str(exc)))
        path = f"/v1/subscriptions/{subscription_id}/payloads"

        def store_some(batch: Items) -> None:
            body = orjson.dumps([p for _, p in batch], option=orjson.OPT_SERIALIZE_NUMPY)
            try:
                r = self.client.post(path, content=body, headers={"Content-Type": "application/json"})
            except httpx.TransportError as exc:
                raise Transient(f"cannot reach Scrutiny: {exc}") from None
            if r.status_code < 300:
                result = r.json()
                out.stored += int(result.get("stored", 0))
                out.duplicates += int(result.get("duplicates", 0))
                return
            try:
                err = r.json().get("error", {})
            except ValueError:
                err = {}
            message = err.get("message") or r.text[:300]
            if r.status_code == 422:
                raise Rejected(_reason(message, err), err.get("record"))
            if r.status_code == 404:
                raise Rejected(f"subscription {subscription_id!r} not found: {message}")
            if r.status_code == 413:
                if len(batch) > 1:
                    raise RuntimeError("batch too large")  # halved by _store_items
                raise Rejected(f"the record is larger than the server accepts: {message}")
            if r.status_code in (401, 403):
                log.error(
                    "Scrutiny refused the logger's API key (HTTP %s): %s; records stay spooled", r.status_code, message
                )
            raise Transient(f"Scrutiny answered HTTP {r.status_code}: {message}")

        _store_items(items, store_some, out.rejected, isolate, self.healthy)
        return out


def _reason(message: str, context: dict[str, Any]) -> str:
    """A validation error as a dead-letter reason: the record index means nothing outside its batch."""
    where = [f"{k} {context[k]!r}" for k in ("row", "field") if context.get(k) is not None]
    return f"{message} ({', '.join(where)})" if where else message
