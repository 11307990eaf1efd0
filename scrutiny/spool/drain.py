"""The background writer: reads the spool in order, delivers batches, then lets the spool go.

It never drops a record. While the destination is down it retries the same batch with
exponential backoff (the spool grows meanwhile, up to its bound). A record that can never be
stored goes to the dead-letter file with the reason, so it cannot block the records behind
it. If a "transient" error persists while the store answers a probe, the batch is retried
record by record, so one poisoned record cannot hold the spool hostage either.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from scrutiny.proxy.errors import Transient
from scrutiny.spool.deadletter import DeadLetters
from scrutiny.spool.framing import Frame
from scrutiny.spool.record import SpoolRecord
from scrutiny.spool.sinks import Sink
from scrutiny.spool.spool import Item, Spool

if TYPE_CHECKING:
    from scrutiny.proxy.metrics import ProxyMetrics

log = logging.getLogger("scrutiny.spool")


class Drainer:
    def __init__(
        self,
        spool: Spool,
        sink: Sink,
        dead_letters: DeadLetters,
        metrics: ProxyMetrics | None = None,
        *,
        batch_records: int = 2000,
        backoff_initial: float = 0.25,
        backoff_max: float = 15.0,
        isolate_after: int = 5,
        idle_wait: float = 0.5,
        linger: float = 0.05,
    ) -> None:
        self.spool = spool
        self.sink = sink
        self.dead_letters = dead_letters
        self.metrics = metrics
        self.batch_records = batch_records
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.isolate_after = isolate_after
        self.idle_wait = idle_wait
        # Wait this long after a delivery before the next one, so batches fill up under load:
        # each delivery has a fixed cost (a transaction, a commit fsync, the monitors' partial
        # aggregates). The records are durable meanwhile; only the data mart sees them later.
        self.linger = linger
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.flushed = 0
        self.duplicates = 0
        self.errors = 0
        self.outage_since: float | None = None

    def start(self) -> Drainer:
        self._thread = threading.Thread(
            target=self._run, name=f"spool-drainer:{self.spool.directory.name}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, drain_timeout: float = 5.0) -> None:
        """Give the writer ``drain_timeout`` seconds to empty the spool, then stop it. What is left
        stays in the spool and is replayed by the next process."""
        if drain_timeout > 0:
            self.wait_empty(drain_timeout)
        self._stop.set()
        self.spool.data_event.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def wait_empty(self, timeout: float) -> bool:
        """Wait until every durable record is committed (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self.spool.depth > 0 or self.spool._pending_bytes or self.spool._inflight_bytes:
            if time.monotonic() > deadline or self._stop.is_set():
                return False
            time.sleep(0.02)
        return True

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- the loop --------------------------------------------------------------------------------
    def _run(self) -> None:
        cursor = self.spool.first_cursor()
        last = 0.0
        while not self._stop.is_set():
            try:
                pause = last + self.linger - time.monotonic()
                if pause > 0 and self._stop.wait(pause):
                    return
                self.spool.data_event.clear()
                items, after = self.spool.read(cursor, self.batch_records)
                if not items:
                    self.spool.commit(cursor, 0)  # lets a rotated, fully drained segment go
                    self.spool.data_event.wait(self.idle_wait)
                    continue
                n = sum(1 for it in items if isinstance(it.entry, Frame))
                if not self._deliver(items):
                    return  # stopping mid-outage: the spool keeps the batch
                last = time.monotonic()
                self.spool.commit(after, n)
                cursor = after
            except Exception:  # a bug must not kill the writer silently; the batch is retried
                log.exception("spool writer: unexpected error; retrying in %.1f s", self.backoff_max)
                self.errors += 1
                if self._stop.wait(self.backoff_max):
                    return

    def _deliver(self, items: list[Item]) -> bool:
        """Store one batch read from the spool; False if asked to stop before it is stored."""
        dead: list[tuple[str, dict[str, object]]] = []
        groups: dict[str, list[SpoolRecord]] = {}
        for it in items:
            entry = it.entry
            if not isinstance(entry, Frame):
                if entry.torn:
                    log.warning(
                        "spool: skipping a torn record at the end of segment %s (never acknowledged)", it.segment
                    )
                else:
                    dead.append(("damaged spool bytes", DeadLetters.damaged(entry.data, it.segment, entry.offset)))
                continue
            try:
                rec = SpoolRecord.decode(entry.payload)
            except ValueError as exc:
                dead.append((str(exc), DeadLetters.damaged(entry.payload, it.segment, entry.offset)))
                continue
            groups.setdefault(rec.subscription_id, []).append(rec)
        for sub_id, records in groups.items():
            failures = 0
            delay = self.backoff_initial
            while True:
                t0 = time.perf_counter()
                try:
                    delivery = self.sink.write(sub_id, records, isolate=failures >= self.isolate_after)
                except Transient as exc:
                    failures += 1
                    self._outage(exc, failures)
                    if self._stop.wait(delay):
                        return False
                    delay = min(delay * 2, self.backoff_max)
                    continue
                if self.outage_since is not None:
                    log.info(
                        "spool: the data mart is back after %.1f s; delivering %d spooled records",
                        time.monotonic() - self.outage_since,
                        self.spool.depth,
                    )
                    self.outage_since = None
                break
            stored = len(records) - len(delivery.rejected)
            self.flushed += stored
            self.duplicates += delivery.duplicates
            if self.metrics is not None:
                self.metrics.flushed.inc(stored)
                self.metrics.duplicates.inc(delivery.duplicates)
                self.metrics.flush_seconds.observe(time.perf_counter() - t0)
            for rec, reason in delivery.rejected:
                log.warning("spool: record %s of subscription %s cannot be stored: %s", rec.scoring_id, sub_id, reason)
                dead.append((reason, rec.describe()))
        if dead:
            self.dead_letters.add(dead)  # durable before the spool lets the records go
            if self.metrics is not None:
                self.metrics.dead_letters.inc(len(dead))
        return True

    def _outage(self, exc: Exception, failures: int) -> None:
        self.errors += 1
        if self.metrics is not None:
            self.metrics.flush_errors.inc()
        now = time.monotonic()
        if self.outage_since is None:
            self.outage_since = now
            self._last_log = now
            log.warning(
                "spool: cannot deliver to the data mart (%s); %d records kept in the spool, retrying with backoff",
                _short(exc),
                self.spool.depth,
            )
        elif now - self._last_log >= 30:
            self._last_log = now
            log.warning(
                "spool: data mart still unavailable after %.0f s (%d attempts); %d records (%d bytes) in the spool",
                now - self.outage_since,
                failures,
                self.spool.depth,
                self.spool.bytes,
            )


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else exc.__class__.__name__
