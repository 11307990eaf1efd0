"""The monitor framework: partial aggregates kept at ingest, backfill, windows, no double counting."""

from __future__ import annotations

import threading
import zlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from pydantic import Field

from scrutiny.demo import credit
from scrutiny.monitors import registry
from scrutiny.monitors.base import Direction, Metric, Monitor, MonitorConfig, Result, Window
from scrutiny.monitors.partials import KeyedCounts, pack, unpack
from scrutiny.monitors.tables import monitor_partials
from tests.support.monitors import T0, payload_records, spread, subscribe_credit


class RowCheckConfig(MonitorConfig):
    start_minutes: int | None = None  # window start, minutes before now
    end_minutes: int | None = None
    min_rows: int | None = None
    max_rows: int | None = None
    scale: float = Field(1.0, description="part of the plan: changing it rebuilds partials")
    fail: bool = False
    fail_build: bool = False


@dataclass
class RowCheckPartial:
    n: int
    amount: float
    idhash: int

    def merge(self, other: RowCheckPartial) -> RowCheckPartial:
        return RowCheckPartial(self.n + other.n, self.amount + other.amount, (self.idhash + other.idhash) % (1 << 61))

    def to_bytes(self) -> bytes:
        return pack({"n": self.n, "amount": self.amount, "idhash": self.idhash})


def id_hash(ids: Any) -> int:
    return sum(zlib.crc32(str(i).encode()) for i in ids) % (1 << 61)


class RowCheck(Monitor):
    """A test monitor whose partial identifies exactly which rows it saw."""

    name = "rowcheck"
    config_model = RowCheckConfig
    metrics = {"rows": Metric(Direction.EITHER), "amount": Metric(Direction.EITHER), "idhash": Metric(Direction.EITHER)}

    def plan(self, sub: Any, config: Any) -> dict[str, Any]:
        return {"scale": config.scale, "fail_build": config.fail_build}

    def columns(self, plan: Any) -> list[str]:
        return ["LoanAmount"]

    def build(self, plan: Any, batch: Any) -> RowCheckPartial:
        if plan["fail_build"]:
            raise ValueError("planned aggregation failure")
        return RowCheckPartial(
            len(batch), float(np.nansum(batch.columns["LoanAmount"])) * plan["scale"], id_hash(batch.ids)
        )

    def empty(self, plan: Any) -> RowCheckPartial:
        return RowCheckPartial(0, 0.0, 0)

    def load_partial(self, data: bytes) -> RowCheckPartial:
        d = unpack(data)
        return RowCheckPartial(int(d["n"]), float(d["amount"]), int(d["idhash"]))

    def window(self, config: Any, now: Any, last: Any) -> Window:
        return Window(
            start=now - timedelta(minutes=config.start_minutes) if config.start_minutes is not None else None,
            end=now - timedelta(minutes=config.end_minutes) if config.end_minutes is not None else now,
            min_rows=config.min_rows,
            max_rows=config.max_rows,
        )

    def evaluate(self, run: Any) -> Result:
        if run.config.fail:
            raise RuntimeError("planned failure")
        p = run.partial()
        rows = list(run.batches(["LoanAmount"]))
        n_rows = sum(len(b) for b in rows)
        return Result(
            values={"rows": p.n, "amount": p.amount, "idhash": float(p.idhash)},
            details={
                "rows_read_back": n_rows,
                "idhash_read_back": id_hash(np.concatenate([b.ids for b in rows])) if rows else 0,
            },
        )


@pytest.fixture
def rowcheck():
    mon = registry.register(RowCheck())
    yield mon
    registry.unregister(mon.name)


def expected(frame: pd.DataFrame, now: Any, cfg: dict[str, Any]) -> tuple[int, float, int]:
    """The window by its definition, on the rows in memory."""
    df = frame.sort_values(["ts", "id"], ascending=False)
    end = now - timedelta(minutes=cfg["end_minutes"]) if cfg.get("end_minutes") is not None else now
    df = df[df.ts < end]
    if cfg.get("start_minutes") is not None:
        k = int((df.ts >= now - timedelta(minutes=cfg["start_minutes"])).sum())
    else:
        k = len(df)
    if cfg.get("min_rows") is not None:
        k = max(k, cfg["min_rows"])
    if cfg.get("max_rows") is not None:
        k = min(k, cfg["max_rows"])
    sel = df.iloc[:k]
    return len(sel), float(sel.amount.sum()) * cfg.get("scale", 1.0), id_hash(sel.id)


def log_rows(
    service: Any, sub: Any, frame: pd.DataFrame, times: list[Any], prefix: str, batches: int = 4
) -> pd.DataFrame:
    recs = payload_records(frame, times, [10] * len(frame), prefix=prefix)
    order = np.random.default_rng(1).permutation(len(recs))  # batches not in time order
    for part in np.array_split(order, batches):
        service.payloads.store(sub.id, [recs[i] for i in part])
    return pd.DataFrame(
        {
            "id": [f"{prefix}{i}-1" for i in range(len(frame))],
            "ts": pd.to_datetime([t for t in times], utc=True),
            "amount": frame["LoanAmount"].to_numpy(dtype=float),
        }
    )


WINDOWS = [
    {},
    {"start_minutes": 95},
    {"start_minutes": 95, "min_rows": 400},
    {"max_rows": 123},
    {"start_minutes": 200, "max_rows": 77},
    {"end_minutes": 130},
    {"start_minutes": 250, "end_minutes": 47},
    {"min_rows": 10_000},
]


def test_pack_roundtrip_and_keyed_counts() -> None:
    data = {"a": np.arange(6, dtype=np.int64).reshape(2, 3), "b": np.array([0.5, np.nan]), "s": 3, "k": ["x", None]}
    out = unpack(pack(data))
    np.testing.assert_array_equal(out["a"], data["a"])
    np.testing.assert_array_equal(out["b"], data["b"])
    assert out["s"] == 3 and out["k"] == ["x", None]
    rng = np.random.default_rng(0)
    vals = np.asarray(rng.choice(["m", "f", None], 1000), dtype=object)
    outcome = rng.integers(0, 2, 1000)
    whole = KeyedCounts.tally(vals, outcome, 2)
    merged = KeyedCounts.tally(vals[:300], outcome[:300], 2).merge(KeyedCounts.tally(vals[300:], outcome[300:], 2))
    assert whole.as_dict().keys() == merged.as_dict().keys()
    for k, v in whole.as_dict().items():
        np.testing.assert_array_equal(v, merged.as_dict()[k])
    np.testing.assert_array_equal(whole.missing, merged.missing)
    assert whole.missing.sum() == sum(v is None for v in vals)
    for j in (0, 1):
        assert whole.as_dict()["m"][j] == sum(1 for v, o in zip(vals, outcome, strict=True) if v == "m" and o == j)


def test_windows_match_their_definition(service, engine_server, rowcheck, german) -> None:
    sub = subscribe_credit(service, engine_server.url)
    service.monitors.configure(sub.id, "rowcheck", {})
    times = spread(600, T0, timedelta(hours=5), seed=3)
    frame = log_rows(service, sub, german.iloc[np.arange(600) % 1000], times, "w")
    now = T0 + timedelta(hours=5, minutes=1)
    for cfg in WINDOWS:
        service.monitors.configure(sub.id, "rowcheck", cfg)
        for _ in range(2):  # the second run reads compacted partials
            m = service.monitors.run(sub.id, "rowcheck", now=now)
            assert m["status"] == "finished", m
            n, amount, h = expected(frame, now, cfg)
            assert m["values"]["rows"] == n, cfg
            assert m["values"]["amount"] == pytest.approx(amount, rel=1e-12), cfg
            assert int(m["values"]["idhash"]) == h, cfg
            assert m["records"] == n
            assert m["details"]["rows_read_back"] == n and m["details"]["idhash_read_back"] == h, cfg


def test_backfill_equals_live_aggregation_and_plan_changes_rebuild(service, engine_server, rowcheck, german) -> None:
    sub = subscribe_credit(service, engine_server.url)
    times = spread(300, T0, timedelta(hours=3), seed=4)
    before = log_rows(service, sub, german.iloc[:300], times, "b")  # stored before the monitor exists
    service.monitors.configure(sub.id, "rowcheck", {})
    times2 = spread(200, T0 + timedelta(hours=1), timedelta(hours=3), seed=5)
    after = log_rows(service, sub, german.iloc[300:500], times2, "a")
    frame = pd.concat([before, after])
    now = T0 + timedelta(hours=4, minutes=30)
    m = service.monitors.run(sub.id, "rowcheck", now=now)
    assert (m["values"]["rows"], int(m["values"]["idhash"])) == (500, id_hash(frame.id))
    # duplicates are not counted twice
    log_rows(service, sub, german.iloc[:300], times, "b")
    assert service.monitors.run(sub.id, "rowcheck", now=now)["values"]["rows"] == 500
    # a plan change rebuilds from stored rows; old partials are gone
    with service.store.engine.connect() as conn:
        old = {
            r[0]
            for r in conn.execute(sa.select(monitor_partials.c.plan_id).where(monitor_partials.c.monitor == "rowcheck"))
        }
    service.monitors.configure(sub.id, "rowcheck", {"scale": 2.0})
    with service.store.engine.connect() as conn:
        new = {
            r[0]
            for r in conn.execute(sa.select(monitor_partials.c.plan_id).where(monitor_partials.c.monitor == "rowcheck"))
        }
    assert len(new) == 1 and not (old & new)
    m = service.monitors.run(sub.id, "rowcheck", now=now)
    assert m["values"]["amount"] == pytest.approx(2.0 * frame.amount.sum(), rel=1e-12)
    # thresholds do not change the plan: partials are kept
    service.monitors.configure(
        sub.id, "rowcheck", {"scale": 2.0, "thresholds": [{"metric": "rows", "type": "upper_limit", "value": 10}]}
    )
    with service.store.engine.connect() as conn:
        kept = {
            r[0]
            for r in conn.execute(sa.select(monitor_partials.c.plan_id).where(monitor_partials.c.monitor == "rowcheck"))
        }
    assert kept == new


def test_concurrent_writes_during_rebuilds_are_counted_once(service, engine_server, rowcheck, german) -> None:
    sub = subscribe_credit(service, engine_server.url)
    service.monitors.configure(sub.id, "rowcheck", {})
    errors: list[BaseException] = []

    def write(k: int) -> None:
        try:
            for j in range(6):
                idx = np.arange(20) + 20 * j
                times = spread(20, T0 + timedelta(minutes=10 * j), timedelta(hours=2), seed=k * 10 + j)
                recs = payload_records(german.iloc[idx], times, [5] * 20, prefix=f"c{k}_{j}_")
                service.payloads.store(sub.id, recs)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for scale in (2.0, 3.0, 4.0, 1.0):
        service.monitors.configure(sub.id, "rowcheck", {"scale": scale})
    for t in threads:
        t.join()
    assert not errors
    m = service.monitors.run(sub.id, "rowcheck", now=T0 + timedelta(days=1))
    assert m["values"]["rows"] == 3 * 6 * 20
    assert m["details"]["rows_read_back"] == 360


def test_a_failing_run_stores_an_error_not_values(service, engine_server, rowcheck, german) -> None:
    sub = subscribe_credit(service, engine_server.url)
    service.monitors.configure(
        sub.id, "rowcheck", {"fail": True, "thresholds": [{"metric": "rows", "type": "upper_limit", "value": 1}]}
    )
    log_rows(service, sub, german.iloc[:50], spread(50, T0, timedelta(hours=1)), "e")
    m = service.monitors.run(sub.id, "rowcheck", now=T0 + timedelta(hours=2))
    assert m["status"] == "error" and m["values"] == {} and m["violations"] == []
    assert "planned failure" in m["message"]
    assert service.monitors.get(sub.id, "rowcheck")["last_status"] == "error"
    assert service.monitors.alerts(subscription_id=sub.id) == []


def test_configuration_errors_name_the_field(service, engine_server, rowcheck) -> None:
    from scrutiny.errors import InvalidInput, NotFound

    sub = subscribe_credit(service, engine_server.url)
    with pytest.raises(InvalidInput, match="unknown metric 'row'") as e:
        service.monitors.configure(
            sub.id, "rowcheck", {"thresholds": [{"metric": "row", "type": "lower_limit", "value": 1}]}
        )
    assert e.value.context["field"] == "thresholds[0].metric"
    with pytest.raises(InvalidInput) as e:
        service.monitors.configure(sub.id, "rowcheck", {"scal": 1})
    assert e.value.context["field"] == "scal"
    with pytest.raises(NotFound, match="unknown monitor 'nope'"):
        service.monitors.configure(sub.id, "nope", {})
    assert credit.LABEL  # the fixture data is the real German credit set


def test_deleting_a_subscription_removes_its_monitor_state(service, engine_server, rowcheck, german) -> None:
    from scrutiny.monitors.tables import alerts, measurements, monitor_configs

    sub = subscribe_credit(service, engine_server.url)
    service.monitors.configure(
        sub.id, "rowcheck", {"thresholds": [{"metric": "rows", "type": "upper_limit", "value": 1}]}
    )
    log_rows(service, sub, german.iloc[:20], spread(20, T0, timedelta(hours=1)), "d")
    assert service.monitors.run(sub.id, "rowcheck", now=T0 + timedelta(hours=2))["violations"]
    service.subscriptions.delete(sub.id)
    with service.store.engine.connect() as conn:
        for table in (monitor_configs, monitor_partials, measurements, alerts):
            assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one() == 0, table.name


def test_a_failing_aggregation_never_blocks_ingest(service, engine_server, rowcheck, german) -> None:
    sub = subscribe_credit(service, engine_server.url)
    service.monitors.configure(sub.id, "rowcheck", {"fail_build": True})  # no rows yet: nothing to aggregate
    frame = log_rows(service, sub, german.iloc[:40], spread(40, T0, timedelta(hours=1)), "f1")
    assert service.payloads.read(sub.id, limit=1)[0] == 40  # the rows are stored all the same
    assert service.monitors.get(sub.id, "rowcheck")["partials_ready"] is False
    m = service.monitors.run(sub.id, "rowcheck", now=T0 + timedelta(hours=2))
    assert m["status"] == "error" and "planned aggregation failure" in m["message"]
    service.monitors.configure(sub.id, "rowcheck", {})  # fixed: rebuilt from every stored row
    m = service.monitors.run(sub.id, "rowcheck", now=T0 + timedelta(hours=2))
    assert (m["values"]["rows"], int(m["values"]["idhash"])) == (40, id_hash(frame.id))
