"""The scheduler inside ``scrutiny serve``: runs each enabled monitor on its period, runs queued
on-demand runs, and delivers alert notifications.

Its state lives in the store (``monitor_configs.next_run_at`` / ``run_requested_at``,
``alert_notifications.next_attempt_at``), so it survives restarts: a monitor that was due while
the server was down runs once when it comes back (missed periods are not replayed). A run is
claimed by moving ``next_run_at`` forward with a compare-and-set before it starts, so several
servers on one PostgreSQL store never run the same monitor twice; a server that dies mid-run
leaves the claim to expire (``lease``) and the run happens again.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import sqlalchemy as sa

from scrutiny.monitors import registry
from scrutiny.monitors.tables import monitor_configs
from scrutiny.store.types import utcnow

if TYPE_CHECKING:
    from scrutiny.service import Service

log = logging.getLogger("scrutiny.scheduler")


class Scheduler:
    def __init__(
        self, service: Service, *, tick: float = 5.0, workers: int = 2, lease: timedelta = timedelta(minutes=30)
    ) -> None:
        self.service = service
        self.tick = tick
        self.lease = lease
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scrutiny-monitor")
        self._running: dict[tuple[str, str], Future[Any]] = {}
        self._http = httpx.Client(follow_redirects=False)

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> Scheduler:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="scrutiny-scheduler", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._http.close()

    def wake(self) -> None:
        """Look for work now (a run was queued, an alert was raised)."""
        self._wake.set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_due()
                self.service.monitors.webhooks.deliver_due(self._http)
            except Exception:  # the loop must survive a store outage
                log.warning("scheduler pass failed", exc_info=True)
            self._wake.wait(self.tick)
            self._wake.clear()

    # -- one pass -------------------------------------------------------------------------------------
    def run_due(self, now: datetime | None = None) -> list[tuple[str, str]]:
        """Claim and start every due run; returns the (subscription, monitor) pairs started."""
        now = now or utcnow()
        c = monitor_configs.c
        self._running = {k: f for k, f in self._running.items() if not f.done()}
        with self.service.store.engine.connect() as conn:
            due = conn.execute(
                sa.select(c.subscription_id, c.monitor, c.next_run_at, c.run_requested_at, c.period_seconds)
                .where(
                    c.enabled.is_(True),
                    sa.or_(c.next_run_at <= now, c.run_requested_at.is_not(None)),
                )
                .order_by(c.next_run_at)
                .limit(100)
            ).all()
        started = []
        for row in due:
            key = (row.subscription_id, row.monitor)
            mon = registry.find(row.monitor)
            if key in self._running or mon is None or not mon.computed:
                continue
            if not self._claim(row, now):
                continue
            trigger = "manual" if row.run_requested_at is not None else "schedule"
            self._running[key] = self._pool.submit(self._run, row, trigger)
            started.append(key)
        return started

    def _claim(self, row: Any, now: datetime) -> bool:
        c = monitor_configs.c
        cond = [c.subscription_id == row.subscription_id, c.monitor == row.monitor]
        cond.append(c.next_run_at == row.next_run_at if row.next_run_at is not None else c.next_run_at.is_(None))
        cond.append(
            c.run_requested_at == row.run_requested_at
            if row.run_requested_at is not None
            else c.run_requested_at.is_(None)
        )
        with self.service.store.write() as conn:
            res = conn.execute(
                monitor_configs.update().where(*cond).values(next_run_at=now + self.lease, run_requested_at=None)
            )
            return bool(res.rowcount == 1)

    def _run(self, row: Any, trigger: str) -> None:
        period = timedelta(seconds=int(row.period_seconds))
        started = utcnow()
        try:
            self.service.monitors.run(row.subscription_id, row.monitor, trigger=trigger)
        except Exception as exc:  # a disabled monitor, a deleted subscription: logged, not fatal
            log.info("scheduled %s run on %s did not happen: %s", row.monitor, row.subscription_id, exc)
        finally:
            base = row.next_run_at if row.next_run_at is not None else started
            following = base + period
            if following <= started:  # behind schedule (a restart): do not replay missed periods
                following = started + period
            if trigger == "manual" and row.next_run_at is not None and row.next_run_at > started:
                following = row.next_run_at  # an on-demand run does not move the schedule
            c = monitor_configs.c
            try:
                with self.service.store.write() as conn:
                    conn.execute(
                        monitor_configs.update()
                        .where(c.subscription_id == row.subscription_id, c.monitor == row.monitor, c.enabled.is_(True))
                        .values(next_run_at=following)
                    )
            except Exception:
                log.warning("could not reschedule %s on %s", row.monitor, row.subscription_id, exc_info=True)
            self.wake()  # deliver the notifications this run may have queued

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Block until the runs started so far finish (tests, the demo)."""
        for f in list(self._running.values()):
            f.result(timeout=timeout)
