"""Prometheus metrics of the proxy and its spool.

Each runtime keeps its metrics in a registry of its own, so several can live in one process
(tests, an application embedding the logger). ``publish()`` makes them part of
prometheus-client's default registry, which ``GET /metrics`` serves: one collector there
yields every published registry's families, summing the series they share.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from scrutiny.spool.spool import Spool

CONTENT_TYPE = CONTENT_TYPE_LATEST
FAST = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
SLOW = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ProxyMetrics:
    """Requests and engine timings (proxy), spool and background-writer figures (both forms)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "scrutiny_proxy_requests",
            "Proxied scoring requests by outcome: logged, not_logged (internal marker), engine_error "
            "(non-2xx, timeout, unreachable: passed through, not logged), refused (auth, unknown "
            "subscription, bad input), spool_full, unavailable",
            ["subscription", "outcome"],
            registry=r,
        )
        self.engine_errors = Counter(
            "scrutiny_proxy_engine_errors",
            "Failed engine calls passed through to the caller, by kind (status_5xx, status_4xx, timeout, unreachable)",
            ["subscription", "kind"],
            registry=r,
        )
        self.engine_latency = Histogram(
            "scrutiny_proxy_engine_latency_seconds",
            "Time the engine took to answer a proxied request",
            ["subscription"],
            buckets=SLOW,
            registry=r,
        )
        self.overhead = Histogram(
            "scrutiny_proxy_overhead_seconds",
            "Time the proxy added to a request: total minus the engine's time (includes the spool fsync)",
            buckets=FAST,
            registry=r,
        )
        self.fsync = Histogram(
            "scrutiny_spool_fsync_seconds", "Duration of each group write+fsync of the spool", buckets=FAST, registry=r
        )
        self.fsync_group = Histogram(
            "scrutiny_spool_fsync_group_records",
            "Records made durable by one fsync (group commit)",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=r,
        )
        self.flushed = Counter(
            "scrutiny_spool_records_flushed", "Spooled records committed to the data mart", registry=r
        )
        self.duplicates = Counter(
            "scrutiny_spool_records_duplicate",
            "Spooled records already in the data mart (replay after a crash), skipped by scoring_id",
            registry=r,
        )
        self.flush_errors = Counter(
            "scrutiny_spool_flush_errors",
            "Failed attempts to deliver a batch to the data mart (retried with backoff)",
            registry=r,
        )
        self.dead_letters = Counter(
            "scrutiny_spool_dead_letters",
            "Records that can never be stored, moved to the dead-letter file with the reason",
            registry=r,
        )
        self.flush_seconds = Histogram(
            "scrutiny_spool_flush_seconds", "Time to deliver one batch to the data mart", buckets=SLOW, registry=r
        )
        self.unlogged = Counter(
            "scrutiny_embedded_unlogged",
            "Embedded-logger records that could not be spooled (the scoring call still succeeded)",
            registry=r,
        )
        self._spool_gauges: list[Gauge] = []
        self._children: dict[str, SubscriptionMetrics] = {}

    def of(self, subscription_id: str) -> SubscriptionMetrics:
        """The per-subscription children, bound once (label lookups cost a lock and a dict each)."""
        hit = self._children.get(subscription_id)
        if hit is None:
            if len(self._children) > 10_000:
                self._children.clear()
            hit = self._children[subscription_id] = SubscriptionMetrics(self, subscription_id)
        return hit

    def watch_spool(self, spool: Spool) -> None:
        """Gauges read from the spool when scraped."""
        for name, doc, fn in (
            ("scrutiny_spool_depth_records", "Spooled records not yet committed to the data mart", lambda: spool.depth),
            ("scrutiny_spool_bytes", "Bytes in the spool's segment files", lambda: spool.bytes),
            (
                "scrutiny_spool_limit_bytes",
                "The spool's bound; at it, requests are refused with 503",
                lambda: spool.max_bytes,
            ),
            (
                "scrutiny_spool_near_full",
                "1 when the spool is past its warning fraction of the bound",
                lambda: float(spool.near_full),
            ),
            ("scrutiny_spool_segments", "Segment files in the spool", lambda: spool.segments),
            (
                "scrutiny_spool_refused",
                "Records refused because the spool was full (cumulative)",
                lambda: spool.refused,
            ),
        ):
            g = Gauge(name, doc, registry=self.registry)
            g.set_function(fn)
            self._spool_gauges.append(g)

        def on_fsync(seconds: float, records: int) -> None:
            self.fsync.observe(seconds)
            self.fsync_group.observe(records)

        spool.on_fsync = on_fsync

    def render(self) -> bytes:
        return generate_latest(self.registry)


class SubscriptionMetrics:
    def __init__(self, m: ProxyMetrics, sub: str) -> None:
        self._m = m
        self._sub = sub
        self._outcomes: dict[str, Any] = {}
        self.engine_latency = m.engine_latency.labels(sub)

    def outcome(self, outcome: str) -> None:
        child = self._outcomes.get(outcome)
        if child is None:
            child = self._outcomes[outcome] = self._m.requests.labels(self._sub, outcome)
        child.inc()

    def engine_error(self, kind: str) -> None:
        self._m.engine_errors.labels(self._sub, kind).inc()


class _Published(Collector):
    """The live proxies' and embedded loggers' metrics, as part of the default registry."""

    def __init__(self) -> None:
        self.members: weakref.WeakSet[ProxyMetrics] = weakref.WeakSet()

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
        for member in list(self.members):
            for fam in member.registry.collect():
                if fam.name not in families:
                    families[fam.name] = Metric(fam.name, fam.documentation, fam.type, fam.unit)
                    values[fam.name] = {}
                merged = values[fam.name]
                for sample in fam.samples:
                    key = (sample.name, tuple(sorted(sample.labels.items())))
                    if key not in merged:
                        merged[key] = sample.value
                    elif sample.name.endswith("_created"):
                        merged[key] = min(merged[key], sample.value)
                    else:
                        merged[key] += sample.value
        for name, fam in families.items():
            for (sample_name, labels), value in values[name].items():
                fam.add_sample(sample_name, dict(labels), value)
            yield fam


_published: _Published | None = None
_publish_lock = threading.Lock()


def publish(metrics: ProxyMetrics) -> None:
    """Serve ``metrics`` on ``GET /metrics`` (prometheus-client's default registry)."""
    global _published
    with _publish_lock:
        if _published is None:
            _published = _Published()
            REGISTRY.register(_published)
        _published.members.add(metrics)


def unpublish(metrics: ProxyMetrics) -> None:
    with _publish_lock:
        if _published is not None:
            _published.members.discard(metrics)
