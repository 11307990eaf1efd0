"""Custom monitors: metrics a user computes and posts, with thresholds, alerts and charts like
the built-in monitors' (OpenScale's custom monitors).

A definition names the monitor and its metrics, each with optional default limits; it is kept
in the data mart (``monitor_definitions``) and registered as a monitor, so configuring it on a
subscription, its measurements, alerts, Prometheus and the dashboard work as for the others.
Its values are posted (``MonitorService.record``); the scheduler never runs it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from scrutiny.errors import Conflict, InvalidInput
from scrutiny.monitors import registry
from scrutiny.monitors.base import Direction, LimitType, Metric, Monitor, Run, Threshold
from scrutiny.store.tables import metadata
from scrutiny.store.types import JSONType, UTCDateTime, utcnow

if TYPE_CHECKING:
    from scrutiny.core.subscription import Subscription
    from scrutiny.store import Store

definitions = sa.Table(
    "monitor_definitions",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("description", sa.Text, nullable=True),
    # [{"id", "name", "description", "thresholds": [{"type": "lower_limit" | "upper_limit", "default"}]}]
    sa.Column("metrics", JSONType, nullable=False),
    sa.Column("tags", JSONType, nullable=False),  # [{"name", "description", "required"}]
    sa.Column("created_at", UTCDateTime(), nullable=False),
)


def slug(name: str) -> str:
    """The id OpenScale derives from a name: ``my model performance`` -> ``my_model_performance``."""
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


class CustomMonitor(Monitor):
    """A monitor whose values are posted; subclassed per definition (``of``)."""

    computed = False
    definition: dict[str, Any]

    @classmethod
    def of(cls, definition: dict[str, Any]) -> CustomMonitor:
        metrics = {m["id"]: _metric(m) for m in definition["metrics"]}
        attrs = {
            "name": definition["id"],
            "description": definition.get("description") or definition["name"],
            "metrics": metrics,
            "definition": definition,
        }
        return type(f"Custom_{definition['id']}", (cls,), attrs)()

    def default_thresholds(self, sub: Subscription, config: Any) -> list[Threshold]:
        return [
            Threshold(metric=m["id"], type=LimitType(t["type"]), value=t["default"])
            for m in self.definition["metrics"]
            for t in m.get("thresholds") or []
            if t.get("default") is not None
        ]

    def evaluate(self, run: Run) -> Any:
        raise InvalidInput(
            f"{self.name} is a custom monitor: its values are posted "
            "(POST /v1/subscriptions/{id}/monitors/{monitor}/measurements), not computed"
        )


def _metric(m: dict[str, Any]) -> Metric:
    kinds = {t["type"] for t in m.get("thresholds") or []}
    direction = Direction.EITHER
    if kinds == {LimitType.LOWER.value}:
        direction = Direction.HIGHER
    elif kinds == {LimitType.UPPER.value}:
        direction = Direction.LOWER
    return Metric(direction, description=m.get("description") or m["name"])


def parse(body: Any) -> dict[str, Any]:
    """A definition from ``{"name", "description"?, "metrics": [{"name", "description"?,
    "thresholds": [{"type", "default"}]}], "tags": [{"name", "description"?, "required"?}]}``,
    with errors that name the field."""
    if not isinstance(body, dict):
        raise InvalidInput("a monitor definition must be an object")
    name = body.get("name")
    if not isinstance(name, str) or not slug(name):
        raise InvalidInput("name is required (letters or digits)", field="name")
    mid = slug(name)
    if len(mid) > 40:
        raise InvalidInput("the name makes an id longer than 40 characters", field="name")
    if registry.find(mid) is not None and not isinstance(registry.find(mid), CustomMonitor):
        raise Conflict(f"{mid!r} is a built-in monitor", field="name")
    metrics_in = body.get("metrics")
    if not isinstance(metrics_in, list) or not metrics_in:
        raise InvalidInput("metrics must list at least one metric", field="metrics")
    metrics: list[dict[str, Any]] = []
    for i, m in enumerate(metrics_in):
        if not isinstance(m, dict) or not isinstance(m.get("name"), str) or not slug(m["name"]):
            raise InvalidInput("a metric needs a name", field=f"metrics[{i}].name")
        thresholds = []
        for j, t in enumerate(m.get("thresholds") or []):
            where = f"metrics[{i}].thresholds[{j}]"
            if not isinstance(t, dict) or t.get("type") not in (LimitType.LOWER.value, LimitType.UPPER.value):
                raise InvalidInput("type must be lower_limit or upper_limit", field=f"{where}.type")
            default = t.get("default")
            if default is not None and (isinstance(default, bool) or not isinstance(default, (int, float))):
                raise InvalidInput("default must be a number", field=f"{where}.default")
            thresholds.append({"type": t["type"], "default": default})
        metric_id = slug(m["name"])
        if any(x["id"] == metric_id for x in metrics):
            raise InvalidInput(f"metric {metric_id!r} is listed twice", field=f"metrics[{i}].name")
        metrics.append(
            {"id": metric_id, "name": m["name"], "description": m.get("description"), "thresholds": thresholds}
        )
    tags = []
    for i, t in enumerate(body.get("tags") or []):
        if not isinstance(t, dict) or not isinstance(t.get("name"), str) or not t["name"]:
            raise InvalidInput("a tag needs a name", field=f"tags[{i}].name")
        tags.append(
            {"name": t["name"], "description": t.get("description"), "required": bool(t.get("required", False))}
        )
    return {"id": mid, "name": name, "description": body.get("description"), "metrics": metrics, "tags": tags}


def create(store: Store, definition: dict[str, Any]) -> dict[str, Any]:
    """Store a definition and register its monitor; the same name again is a conflict."""
    row = {**definition, "created_at": utcnow()}
    with store.write() as conn:
        if conn.execute(sa.select(definitions.c.id).where(definitions.c.id == definition["id"])).first() is not None:
            raise Conflict(f"monitor definition {definition['id']!r} exists already", field="name")
        conn.execute(definitions.insert().values(**row))
    registry.register(CustomMonitor.of(row))
    return row


def load(store: Store) -> list[dict[str, Any]]:
    """Every definition of this data mart, registered as a monitor."""
    with store.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.select(definitions).order_by(definitions.c.created_at))]
    for row in rows:
        registry.register(CustomMonitor.of(row))
    return rows


def values_of(metrics: Any, mon: CustomMonitor) -> tuple[dict[str, float | None], list[dict[str, Any]]]:
    """Posted ``metrics`` (OpenScale: a list of objects, each with metric values and tag values)
    as (values, tags). Unknown metrics and missing required tags are errors; a metric posted
    twice is too (post one measurement per tag set)."""
    if isinstance(metrics, dict):
        metrics = [metrics]
    if not isinstance(metrics, list) or not metrics:
        raise InvalidInput("metrics must be a list of objects of metric values and tags", field="metrics")
    known = set(mon.metrics)
    tag_names = {t["name"] for t in mon.definition.get("tags") or []}
    values: dict[str, float | None] = {}
    tags: list[dict[str, Any]] = []
    for i, item in enumerate(metrics):
        if not isinstance(item, dict):
            raise InvalidInput("a metrics entry must be an object", field=f"metrics[{i}]")
        for key, value in item.items():
            where = f"metrics[{i}].{key}"
            if key in tag_names:
                tags.append({"id": key, "value": value})
            elif key in known:
                if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                    raise InvalidInput("a metric value must be a number or null", field=where)
                if key in values:
                    raise InvalidInput(f"{key} is posted twice: post one measurement per tag set", field=where)
                values[key] = value
            else:
                raise InvalidInput(
                    f"{key!r} is neither a metric ({', '.join(sorted(known))}) nor a tag of {mon.name}", field=where
                )
    missing = [
        t["name"]
        for t in mon.definition.get("tags") or []
        if t["required"] and t["name"] not in {x["id"] for x in tags}
    ]
    if missing:
        raise InvalidInput(f"required tags {missing} are missing", field="metrics")
    return values, tags
