"""The performance monitor against hand-computed expectations: requests and rows per minute,
response-time mean and percentiles, per-minute counts, on both stores and through backfill."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from tests.support.monitors import T0, payload_records, subscribe_credit


def log(service, sub, german, n_records: int, seed: int, start, span: timedelta, prefix: str):
    """Records of 1-3 rows with known times and response times; returns (times, rows per record, ms)."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 4, n_records)
    offsets = np.sort(rng.uniform(0, span.total_seconds(), n_records))
    times = [start + timedelta(seconds=float(s)) for s in offsets]
    ms = rng.integers(3, 900, n_records)
    ms_list: list[int | None] = [int(v) for v in ms]
    ms_list[0] = None  # a record without a response time
    recs = []
    row = 0
    for i in range(n_records):
        frame = german.iloc[row % 900 : row % 900 + int(sizes[i])]
        row += int(sizes[i])
        recs += payload_records(frame, [times[i]], [ms_list[i]], rows_per_record=int(sizes[i]), prefix=f"{prefix}{i}_")
    for part in np.array_split(np.arange(len(recs)), 5):
        service.payloads.store(sub.id, [recs[i] for i in part])
    naive = [t.replace(tzinfo=None) for t in times]
    return (
        np.array(naive, dtype="datetime64[us]"),
        sizes,
        np.array([np.nan if v is None else v for v in ms_list], dtype=float),
    )


def expected(times, sizes, ms, start, end):
    sel = (times >= np.datetime64(start.replace(tzinfo=None), "us")) & (
        times < np.datetime64(end.replace(tzinfo=None), "us")
    )
    minutes = max(1.0, (end - start).total_seconds() / 60)
    rt = ms[sel]
    rt = rt[~np.isnan(rt)]
    return {
        "requests_per_minute": sel.sum() / minutes,
        "records_per_minute": sizes[sel].sum() / minutes,
        "average_processing_time": rt.mean(),
        "response_time_p50": np.percentile(rt, 50),
        "response_time_p95": np.percentile(rt, 95),
        "response_time_p99": np.percentile(rt, 99),
    }


def test_current_hour_and_trailing_window(service, engine_server, german) -> None:
    sub = subscribe_credit(service, engine_server.url)
    times, sizes, ms = log(service, sub, german, 400, 1, T0, timedelta(hours=3), "a")
    now = T0 + timedelta(hours=2, minutes=37, seconds=30)
    m = service.monitors.run(sub.id, "performance", now=now)
    hour = now.replace(minute=0, second=0, microsecond=0)
    for k, v in expected(times, sizes, ms, hour, now).items():
        assert m["values"][k] == pytest.approx(v, rel=1e-12), k
    per_minute = m["details"]["per_minute"]
    assert len(per_minute) == 38  # minutes 0..37 of the hour, idle ones included
    t64 = times.astype("datetime64[m]")
    for entry in per_minute:
        minute = np.datetime64(entry["minute"].replace("Z", ""), "m")
        assert entry["requests"] == int((t64 == minute).sum())
        assert entry["records"] == int(sizes[t64 == minute].sum())
    # a finished hour divides by 60
    m = service.monitors.run(sub.id, "performance", start=T0, end=T0 + timedelta(hours=1), now=T0 + timedelta(hours=1))
    for k, v in expected(times, sizes, ms, T0, T0 + timedelta(hours=1)).items():
        assert m["values"][k] == pytest.approx(v, rel=1e-12), k
    # a trailing window across two clock hours
    service.monitors.configure(sub.id, "performance", {"window_minutes": 90})
    m = service.monitors.run(sub.id, "performance", now=now)
    for k, v in expected(times, sizes, ms, now - timedelta(minutes=90), now).items():
        assert m["values"][k] == pytest.approx(v, rel=1e-12), k
    assert "per_minute" not in m["details"]
    assert m["details"]["requests_without_response_time"] == int(
        (np.isnan(ms) & (times >= np.datetime64((now - timedelta(minutes=90)).replace(tzinfo=None), "us"))).sum()
    )


def test_backfilled_partials_count_requests_by_row_id(service, engine_server, german) -> None:
    """Rows stored while performance was off are rebuilt from the table, where requests are
    recognised by their row ids: the same numbers as partials built at ingest."""
    sub = subscribe_credit(service, engine_server.url)
    service.monitors.disable(sub.id, "performance")
    times, sizes, ms = log(service, sub, german, 300, 2, T0, timedelta(hours=1), "b")
    service.monitors.configure(sub.id, "performance", {})
    end = T0 + timedelta(hours=1)
    m = service.monitors.run(sub.id, "performance", start=T0, end=end, now=end)
    for k, v in expected(times, sizes, ms, T0, end).items():
        assert m["values"][k] == pytest.approx(v, rel=1e-12), k
    assert m["details"]["requests"] == 300 and m["details"]["records"] == int(sizes.sum())


def test_no_traffic_is_zero_throughput_not_an_error(service, engine_server) -> None:
    sub = subscribe_credit(service, engine_server.url)
    service.monitors.configure(sub.id, "performance", {})
    m = service.monitors.run(sub.id, "performance", now=T0 + timedelta(minutes=30))
    assert m["status"] == "finished"
    assert m["values"]["requests_per_minute"] == 0 and m["values"]["average_processing_time"] is None


def test_run_window_bounds_from_the_api(client, service, engine_server, german) -> None:
    sub = subscribe_credit(service, engine_server.url)
    log(service, sub, german, 50, 3, T0, timedelta(hours=1), "w")
    base = f"/v1/subscriptions/{sub.id}/monitors/performance/runs"
    naive = {
        "start": T0.replace(tzinfo=None).isoformat(),
        "end": (T0 + timedelta(hours=1)).replace(tzinfo=None).isoformat(),
    }
    r = client.post(base, params=naive)  # no zone: UTC
    assert r.status_code == 201, r.text
    assert r.json()["values"]["requests_per_minute"] == pytest.approx(50 / 60)
    r = client.post(base, params={"start": naive["end"], "end": naive["start"]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "start"
