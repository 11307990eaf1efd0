"""Prometheus metrics: the latest value of every monitor metric per subscription, read from the
store at scrape time (so every server process and every restart reports the same numbers).

Exposed on the default ``prometheus_client`` registry, served by ``GET /metrics``:

* ``scrutiny_monitor_value{subscription_id, deployment_id, asset_name, monitor, metric, qualifier}``
  the metric's value in the newest finished measurement (``qualifier`` is the part after the
  dot of ids like ``disparate_impact.Sex``, else empty);
* ``scrutiny_monitor_limit{..., type}`` the lower/upper limit in force at that measurement;
* ``scrutiny_monitor_violated{...}`` 1 when that value violates a limit;
* ``scrutiny_monitor_records{subscription_id, ..., monitor}`` rows the measurement evaluated;
* ``scrutiny_monitor_last_run_timestamp_seconds{..., monitor}``;
* ``scrutiny_alerts_open{subscription_id, ..., monitor}``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from scrutiny.monitors.run import alerts as alerts_mod
from scrutiny.monitors.run import measurements as ms
from scrutiny.monitors.run.reader import parse_iso

if TYPE_CHECKING:
    from scrutiny.service import Service

SUB_LABELS = ["subscription_id", "deployment_id", "asset_name", "monitor"]


class MonitorCollector(Collector):
    """Reads the newest measurements of every service registered with it (cached ``ttl`` seconds)."""

    def __init__(self, ttl: float = 5.0) -> None:
        self.ttl = ttl
        self._services: list[Service] = []
        self._lock = threading.Lock()
        self._cache: tuple[float, list[Any]] | None = None

    def add(self, service: Service) -> None:
        with self._lock:
            if service not in self._services:
                self._services.append(service)
                self._cache = None

    def remove(self, service: Service) -> None:
        with self._lock:
            if service in self._services:
                self._services.remove(service)
                self._cache = None

    def describe(self) -> list[Any]:
        return []  # values come from the store at collect time

    def collect(self) -> Iterator[Any]:
        yield from self._families()

    def _families(self) -> list[Any]:
        now = time.monotonic()
        with self._lock:
            if self._cache is not None and self._cache[0] > now:
                return self._cache[1]
            services = list(self._services)
        value = GaugeMetricFamily(
            "scrutiny_monitor_value", "Latest value of a monitor metric", labels=[*SUB_LABELS, "metric", "qualifier"]
        )
        limit = GaugeMetricFamily(
            "scrutiny_monitor_limit",
            "Limit in force at the latest measurement",
            labels=[*SUB_LABELS, "metric", "qualifier", "type"],
        )
        violated = GaugeMetricFamily(
            "scrutiny_monitor_violated",
            "1 when the latest value violates a limit",
            labels=[*SUB_LABELS, "metric", "qualifier"],
        )
        records = GaugeMetricFamily(
            "scrutiny_monitor_records", "Records the latest measurement evaluated", labels=SUB_LABELS
        )
        last = GaugeMetricFamily(
            "scrutiny_monitor_last_run_timestamp_seconds",
            "When the latest finished measurement was taken",
            labels=SUB_LABELS,
        )
        open_alerts = GaugeMetricFamily("scrutiny_alerts_open", "Open alerts", labels=SUB_LABELS)
        for svc in services:
            try:
                subs = {s.id: s for s in svc.subscriptions.list()}
                with svc.store.engine.connect() as conn:
                    latest = ms.latest_all(conn)
                    counts = alerts_mod.open_counts(conn)
            except Exception:  # a closed or unreachable store: report nothing for it
                continue
            for m in latest:
                sub = subs.get(m["subscription_id"])
                if sub is None:
                    continue
                base = [sub.id, sub.deployment_id, str((sub.asset or {}).get("name") or ""), m["monitor"]]
                bad = {v["metric"] for v in m["violations"]}
                for key, v in m["values"].items():
                    if v is None:
                        continue
                    metric, _, qualifier = key.partition(".")
                    value.add_metric([*base, metric, qualifier], float(v))
                    violated.add_metric([*base, metric, qualifier], 1.0 if key in bad else 0.0)
                for lim in m["thresholds"]:
                    if lim["value"] is None:
                        continue
                    metric, _, qualifier = lim["metric"].partition(".")
                    limit.add_metric([*base, metric, qualifier, lim["type"]], float(lim["value"]))
                records.add_metric(base, float(m["records"]))
                last.add_metric(base, parse_iso(m["timestamp"]).timestamp())
            for sub_id, monitor, n in counts:
                sub = subs.get(sub_id)
                if sub is not None:
                    open_alerts.add_metric(
                        [sub.id, sub.deployment_id, str((sub.asset or {}).get("name") or ""), monitor], n
                    )
        families = [value, limit, violated, records, last, open_alerts]
        with self._lock:
            self._cache = (now + self.ttl, families)
        return families


_collector: MonitorCollector | None = None
_guard = threading.Lock()


def collector() -> MonitorCollector:
    """The one collector, registered on the default registry on first use."""
    global _collector
    with _guard:
        if _collector is None:
            _collector = MonitorCollector()
            REGISTRY.register(_collector)
        return _collector
