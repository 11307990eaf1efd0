"""Monitor configuration per subscription: validate, store, plan, and rebuild partials when the plan changes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from scrutiny.core.subscription import Subscription
from scrutiny.errors import InvalidInput, NotFound
from scrutiny.ingest.writer import table_name
from scrutiny.monitors import partials
from scrutiny.monitors.base import LimitType, Monitor, Schedule, Threshold, base_metric
from scrutiny.monitors.run.reader import iso
from scrutiny.monitors.tables import monitor_configs
from scrutiny.store import records
from scrutiny.store.types import utcnow

if TYPE_CHECKING:
    from scrutiny.store import Store


@dataclass
class ConfigRow:
    subscription_id: str
    monitor: str
    enabled: bool
    table_kind: str
    config: dict[str, Any]
    plan: dict[str, Any] | None
    plan_id: str | None
    plan_ready: bool
    period_seconds: int
    next_run_at: datetime | None
    run_requested_at: datetime | None
    last_run_at: datetime | None
    last_status: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, m: Any) -> ConfigRow:
        return cls(**{k: m[k] for k in cls.__dataclass_fields__})


def get_row(conn: sa.Connection, sub_id: str, monitor: str) -> ConfigRow | None:
    mc = monitor_configs.c
    r = conn.execute(sa.select(monitor_configs).where(mc.subscription_id == sub_id, mc.monitor == monitor)).first()
    return ConfigRow.of(r._mapping) if r else None


def list_rows(conn: sa.Connection, sub_id: str | None = None) -> list[ConfigRow]:
    q = sa.select(monitor_configs).order_by(monitor_configs.c.subscription_id, monitor_configs.c.monitor)
    if sub_id is not None:
        q = q.where(monitor_configs.c.subscription_id == sub_id)
    return [ConfigRow.of(r._mapping) for r in conn.execute(q)]


# -- thresholds --------------------------------------------------------------------------------------


def effective_thresholds(mon: Monitor, sub: Subscription, config: Any) -> list[Threshold]:
    """The monitor's defaults, overridden metric by metric by the user's; ``value: null`` removes."""
    user = list(getattr(config, "thresholds", []) or [])
    overridden = {t.metric for t in user}
    out = [t for t in mon.default_thresholds(sub, config) if t.metric not in overridden]
    out += [t for t in user if t.value is not None]
    return out


def check_thresholds(mon: Monitor, config: Any) -> None:
    for i, t in enumerate(getattr(config, "thresholds", []) or []):
        where = f"thresholds[{i}]"
        metric = mon.metrics.get(base_metric(t.metric))
        if metric is None:
            known = ", ".join(sorted(mon.metrics))
            raise InvalidInput(f"unknown metric {t.metric!r}; {mon.name} reports {known}", field=f"{where}.metric")
        if not metric.allows(t.type):
            better = "higher" if t.type is LimitType.UPPER else "lower"
            other = "lower_limit" if t.type is LimitType.UPPER else "upper_limit"
            raise InvalidInput(
                f"{t.metric} is better {better}: it takes a {other}, not a {t.type.value}", field=f"{where}.type"
            )
        if t.value is None:
            continue
        if (metric.low is not None and t.value < metric.low) or (metric.high is not None and t.value > metric.high):
            lo = "-inf" if metric.low is None else f"{metric.low:g}"
            hi = "inf" if metric.high is None else f"{metric.high:g}"
            raise InvalidInput(
                f"threshold {t.value:g} for {t.metric} is out of range [{lo}, {hi}]", field=f"{where}.value"
            )


# -- what a column holds (configuration checks) -------------------------------------------------------


class ColumnValues:
    """Values a column takes: from the training statistics, then from the stored payload rows."""

    def __init__(self, store: Store, sub: Subscription) -> None:
        self.store = store
        self.sub = sub

    def __call__(self, column: str, limit: int = 1000) -> list[Any]:
        seen: list[Any] = []
        stats = ((self.sub.training_statistics or {}).get("features") or {}).get(column) or {}
        distinct = stats.get("distinct")
        if isinstance(distinct, dict):
            seen.extend(distinct.keys())
        name = self.sub.layout.payload_table
        with self.store.engine.connect() as conn:
            if records.exists(conn, name) and self.has_column(column):
                q = conn.dialect.identifier_preparer.quote
                rows = conn.exec_driver_sql(
                    f"SELECT DISTINCT {q(column)} FROM {q(name)} WHERE {q(column)} IS NOT NULL LIMIT {int(limit)}"
                ).all()
                seen.extend(r[0] for r in rows)
        out: list[Any] = []
        keys: set[str] = set()
        for v in seen:
            key = str(v)
            if key not in keys:
                keys.add(key)
                out.append(v)
        return out[:limit]

    def has_column(self, column: str) -> bool:
        layout = self.sub.layout
        return column in layout.features or column in layout.extra or column == layout.prediction_column


# -- reading and writing configurations ---------------------------------------------------------------


def view(mon: Monitor, sub: Subscription, row: ConfigRow | None) -> dict[str, Any]:
    """A monitor's configuration as the API shows it (defaults for a monitor never configured)."""
    enabled = row.enabled if row else mon.enabled_by_default
    try:
        config = mon.parse_config(row.config if row else {})
    except InvalidInput:  # never configured, and its configuration has required fields
        config = None
    sched = (config.schedule if config is not None else None) or Schedule.of(mon.default_period)
    return {
        "monitor": mon.name,
        "enabled": enabled,
        "table": mon.table,
        "config": config.model_dump(mode="json", exclude={"thresholds", "schedule"}) if config is not None else None,
        "thresholds": [t.to_dict() for t in effective_thresholds(mon, sub, config)] if config is not None else [],
        "schedule": sched.model_dump(),
        "next_run_at": iso(row.next_run_at) if row and enabled else None,
        "last_run_at": iso(row.last_run_at) if row else None,
        "last_status": row.last_status if row else None,
        "partials_ready": bool(row.plan_ready) if row else False,
        "updated_at": iso(row.updated_at) if row else None,
    }


def put(store: Store, sub: Subscription, mon: Monitor, body: dict[str, Any], *, enabled: bool = True) -> ConfigRow:
    """Validate and store a configuration; rebuild partials if what they depend on changed."""
    config = mon.parse_config(body)
    check_thresholds(mon, config)
    config = mon.validate(sub, config, ColumnValues(store, sub))
    plan = mon.plan(sub, config) if enabled else None
    now = utcnow()
    period = int(mon.period(config).total_seconds())
    values = {
        "enabled": enabled,
        "table_kind": mon.table,
        "config": config.model_dump(mode="json", exclude_unset=False),
        "period_seconds": period,
        "updated_at": now,
    }
    with store.write() as conn:
        partials.lock_exclusive(conn, sub.id)
        row = get_row(conn, sub.id, mon.name)
        if row is None:
            conn.execute(
                monitor_configs.insert().values(
                    subscription_id=sub.id,
                    monitor=mon.name,
                    plan=None,
                    plan_id=None,
                    plan_ready=False,
                    next_run_at=now if enabled and mon.computed else None,
                    created_at=now,
                    **values,
                )
            )
        else:
            if not mon.computed:
                values["next_run_at"] = None
            elif enabled and (not row.enabled or row.next_run_at is None or row.period_seconds != period):
                values["next_run_at"] = now if not row.enabled else _next(row.last_run_at, period, now)
            if not enabled:
                values["next_run_at"] = None
            conn.execute(
                monitor_configs.update()
                .where(monitor_configs.c.subscription_id == sub.id, monitor_configs.c.monitor == mon.name)
                .values(**values)
            )
        same_plan = (
            row is not None
            and row.plan_ready
            and row.enabled
            and enabled
            and row.plan_id is not None
            and partials.canonical(row.plan) == partials.canonical(plan)
        )
        if not enabled:
            partials.rebuild(conn, sub, mon, None)
        elif not same_plan:
            partials.rebuild(conn, sub, mon, plan)
        out = get_row(conn, sub.id, mon.name)
    assert out is not None
    return out


def ensure_fresh_plan(store: Store, sub: Subscription, mon: Monitor, row: ConfigRow) -> ConfigRow:
    """Rebuild partials when the plan the current subscription implies (training statistics,
    labels) differs from the stored one, or when they do not cover every row yet."""
    config = mon.parse_config(row.config)
    plan = mon.plan(sub, config)
    if (
        row.plan_ready
        and partials.canonical(row.plan) == partials.canonical(plan)
        and (plan is None) == (row.plan_id is None)
    ):
        return row
    with store.write() as conn:
        partials.rebuild(conn, sub, mon, plan)
        out = get_row(conn, sub.id, mon.name)
    assert out is not None
    return out


def _next(last: datetime | None, period: int, now: datetime) -> datetime:
    if last is None:
        return now
    return max(now, last + timedelta(seconds=period))


def disable(store: Store, sub: Subscription, mon: Monitor) -> ConfigRow:
    with store.write() as conn:
        row = get_row(conn, sub.id, mon.name)
    if row is None:
        if not mon.enabled_by_default:
            raise NotFound(f"monitor {mon.name!r} is not configured on subscription {sub.id!r}")
        return put(store, sub, mon, {}, enabled=False)
    return put(store, sub, mon, row.config, enabled=False)


def insert_default(conn: sa.Connection, sub: Subscription, mon: Monitor, kind: str, batch_rows: int) -> Any:
    """Create the configuration of a monitor that is on by default (performance), from the
    ingest listener, the first time a subscription logs rows."""
    if mon.table != kind:
        return None
    config = mon.parse_config({})
    plan = mon.plan(sub, config)
    plan_id = partials.default_plan_id(sub.id, mon.name, plan) if plan is not None else None
    name = table_name(sub.layout, kind)
    q = conn.dialect.identifier_preparer.quote
    stored = int(conn.exec_driver_sql(f"SELECT COUNT(*) FROM {q(name)}").scalar_one())
    now = utcnow()
    values = {
        "subscription_id": sub.id,
        "monitor": mon.name,
        "enabled": True,
        "table_kind": mon.table,
        "config": config.model_dump(mode="json"),
        "plan": plan,
        "plan_id": plan_id,
        # rows stored before this batch (an upgraded data mart) have no partials yet: the first
        # run rebuilds them
        "plan_ready": stored <= batch_rows,
        "period_seconds": int(mon.period(config).total_seconds()),
        "next_run_at": now,
        "created_at": now,
        "updated_at": now,
    }
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        conn.execute(pg_insert(monitor_configs).values(**values).on_conflict_do_nothing())
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        conn.execute(sqlite_insert(monitor_configs).values(**values).on_conflict_do_nothing())
    row = get_row(conn, sub.id, mon.name)
    if row is None:
        return None
    return SimpleNamespace(monitor=row.monitor, enabled=row.enabled, table_kind=row.table_kind, plan_id=row.plan_id)
