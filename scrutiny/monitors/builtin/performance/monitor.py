"""Performance (contract §7.6): throughput and response time, from payload records alone.

Nothing is scored. A *request* is one payload record (its first row has the row id
``<scoring_id>-1``); a *record* is one payload row. Per hour bucket the partial keeps the
requests and rows per minute, and each request's response time as exact (value, count) pairs,
so the mean and the percentiles are exact (NumPy's linear interpolation), not binned.

Each run covers the clock hour it falls in: ``requests_per_minute`` = requests in the hour ÷
minutes elapsed (60 for a completed hour; at least 1), likewise ``records_per_minute``;
``average_processing_time`` is the mean response time per request in ms, with p50 and p95.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from pydantic import Field

from scrutiny.core.subscription import RESPONSE_TIME
from scrutiny.ingest.batch import RecordBatch
from scrutiny.monitors.base import (
    PAYLOAD,
    Direction,
    Metric,
    Monitor,
    MonitorConfig,
    Result,
    Run,
    Window,
)
from scrutiny.monitors.partials import pack, unpack

PERCENTILES = {"response_time_p50": 50.0, "response_time_p95": 95.0, "response_time_p99": 99.0}


class PerformanceConfig(MonitorConfig):
    window_minutes: int | None = Field(
        None,
        ge=1,
        le=7 * 24 * 60,
        description="evaluate the last N minutes instead of the current clock hour (contract default)",
    )


@dataclass
class PerformancePartial:
    requests_per_minute: np.ndarray  # int64 [60]
    rows_per_minute: np.ndarray  # int64 [60]
    rt_values: np.ndarray  # float64, sorted unique response times (ms) of requests
    rt_counts: np.ndarray  # int64
    rt_missing: int  # requests without a response time

    @classmethod
    def empty(cls) -> PerformancePartial:
        z = np.zeros(60, dtype=np.int64)
        return cls(z, z.copy(), np.zeros(0), np.zeros(0, dtype=np.int64), 0)

    def merge(self, other: PerformancePartial) -> PerformancePartial:
        if len(other.rt_values) == 0:
            values, counts = self.rt_values, self.rt_counts
        elif len(self.rt_values) == 0:
            values, counts = other.rt_values, other.rt_counts
        else:
            values, inverse = np.unique(np.concatenate([self.rt_values, other.rt_values]), return_inverse=True)
            counts = np.bincount(
                inverse, weights=np.concatenate([self.rt_counts, other.rt_counts]), minlength=len(values)
            )
            counts = counts.astype(np.int64)
        return PerformancePartial(
            self.requests_per_minute + other.requests_per_minute,
            self.rows_per_minute + other.rows_per_minute,
            values,
            counts,
            self.rt_missing + other.rt_missing,
        )

    def to_bytes(self) -> bytes:
        return pack(
            {
                "req": self.requests_per_minute,
                "rows": self.rows_per_minute,
                "rt_v": self.rt_values,
                "rt_c": self.rt_counts,
                "rt_missing": self.rt_missing,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> PerformancePartial:
        d = unpack(data)
        return cls(d["req"], d["rows"], d["rt_v"], d["rt_c"], int(d["rt_missing"]))

    @property
    def requests(self) -> int:
        return int(self.requests_per_minute.sum())

    @property
    def rows(self) -> int:
        return int(self.rows_per_minute.sum())

    def mean(self) -> float | None:
        n = int(self.rt_counts.sum())
        return float(np.dot(self.rt_values, self.rt_counts) / n) if n else None

    def percentile(self, q: float) -> float | None:
        """Exactly ``np.percentile(times, q)`` (linear interpolation) over the expanded counts."""
        n = int(self.rt_counts.sum())
        if n == 0:
            return None
        h = (n - 1) * q / 100.0
        lo = int(np.floor(h))
        hi = min(lo + 1, n - 1)
        cum = np.cumsum(self.rt_counts)
        v_lo = self.rt_values[np.searchsorted(cum, lo, side="right")]
        v_hi = self.rt_values[np.searchsorted(cum, hi, side="right")]
        return float(v_lo + (h - lo) * (v_hi - v_lo))


def first_rows(batch: RecordBatch) -> np.ndarray:
    """True for the first row of each record (row id ``<scoring_id>-1``).

    Ingest batches carry each row's record index (rows of a record are consecutive), so this is
    one vectorised comparison; rows read back from the table are recognised by their id."""
    n = len(batch)
    if n == 0:
        return np.zeros(0, dtype=bool)
    rec = batch.record_index
    if rec is not None and len(rec) == n:
        out = np.ones(n, dtype=bool)
        out[1:] = rec[1:] != rec[:-1]
        return out
    return np.fromiter((s[-2:] == "-1" for s in batch.ids.tolist()), dtype=bool, count=n)


class PerformanceMonitor(Monitor):
    name = "performance"
    table = PAYLOAD
    config_model = PerformanceConfig
    default_period = timedelta(minutes=1)
    enabled_by_default = True
    description = "throughput (requests and records per minute) and response time, from payload records"
    metrics = {
        "records_per_minute": Metric(Direction.EITHER, 0, None, "payload rows per minute"),
        "requests_per_minute": Metric(Direction.EITHER, 0, None, "scoring requests per minute"),
        "average_processing_time": Metric(Direction.LOWER, 0, None, "mean response time per request (ms)"),
        "response_time_p50": Metric(Direction.LOWER, 0, None, "median response time (ms)"),
        "response_time_p95": Metric(Direction.LOWER, 0, None, "95th percentile response time (ms)"),
        "response_time_p99": Metric(Direction.LOWER, 0, None, "99th percentile response time (ms)"),
    }

    def plan(self, sub: Any, config: Any) -> dict[str, Any]:
        return {"v": 1}

    def columns(self, plan: Any) -> list[str]:
        return [RESPONSE_TIME]

    def build(self, plan: Any, batch: RecordBatch) -> PerformancePartial:
        minute = ((batch.timestamps - batch.timestamps.astype("datetime64[h]")) // np.timedelta64(1, "m")).astype(
            np.int64
        )
        first = first_rows(batch)
        rows = np.bincount(minute, minlength=60).astype(np.int64)
        requests = np.bincount(minute[first], minlength=60).astype(np.int64)
        rt = batch.columns.get(RESPONSE_TIME)
        if rt is None:
            rt = np.full(len(batch), np.nan)
        rt = rt[first]
        known = ~np.isnan(rt)
        values, counts = np.unique(rt[known], return_counts=True)
        return PerformancePartial(
            requests, rows, values.astype(np.float64), counts.astype(np.int64), int((~known).sum())
        )

    def empty(self, plan: Any) -> PerformancePartial:
        return PerformancePartial.empty()

    def load_partial(self, data: bytes) -> PerformancePartial:
        return PerformancePartial.from_bytes(data)

    def window(self, config: Any, now: datetime, last: dict[str, Any] | None) -> Window:
        if config.window_minutes:
            return Window(start=now - timedelta(minutes=config.window_minutes), end=now)
        return Window(start=now.replace(minute=0, second=0, microsecond=0), end=now)

    def evaluate(self, run: Run) -> Result:
        p: PerformancePartial = run.partial()
        start, end = run.window.start, run.window.end
        if start is not None and end is not None:
            minutes = (end - start).total_seconds() / 60.0
        elif run.window_start is not None and run.window_end is not None:
            minutes = (run.window_end - run.window_start).total_seconds() / 60.0
        else:
            minutes = 0.0
        minutes = max(1.0, minutes)
        values: dict[str, float | None] = {
            "requests_per_minute": p.requests / minutes,
            "records_per_minute": p.rows / minutes,
            "average_processing_time": p.mean(),
        }
        for key, q in PERCENTILES.items():
            values[key] = p.percentile(q)
        details: dict[str, Any] = {
            "requests": p.requests,
            "records": p.rows,
            "minutes": minutes,
            "requests_without_response_time": p.rt_missing,
        }
        if start is not None and end is not None and _hour(start) == _hour(end - timedelta(microseconds=1)):
            details["per_minute"] = _per_minute(p, start, end)
        return Result(values=values, details=details)


def _hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def _per_minute(p: PerformancePartial, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Requests and rows for each clock minute of the window (idle minutes included)."""
    from scrutiny.monitors.run.reader import iso

    out = []
    t = start.replace(second=0, microsecond=0)
    while t < end:
        m = t.minute
        out.append({"minute": iso(t), "requests": int(p.requests_per_minute[m]), "records": int(p.rows_per_minute[m])})
        t += timedelta(minutes=1)
    return out
