"""The monitors' fixed tables (Alembic revision ``0002_monitors``).

* ``monitor_configs``: one row per subscription and monitor: the validated configuration, the
  *plan* derived from it (what partial aggregates are built against), the schedule and its state.
* ``monitor_partials``: mergeable partial aggregates per time bucket, appended by the ingest
  listener and compacted by runs (see ``scrutiny.monitors.partials``).
* ``measurements``: one row per run, finished or not, with the limits in force at that moment.
* ``alerts``: one row per violation episode of a metric's threshold.
* ``webhooks`` and ``alert_notifications``: where alerts are delivered, and the delivery outbox.
"""

from __future__ import annotations

import sqlalchemy as sa

from scrutiny.store.tables import metadata
from scrutiny.store.types import JSONType, UTCDateTime

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER PRIMARY KEY only


def _sub_fk() -> sa.Column:
    return sa.Column(
        "subscription_id", sa.String(64), sa.ForeignKey("subscriptions.id", ondelete="CASCADE"), nullable=False
    )


monitor_configs = sa.Table(
    "monitor_configs",
    metadata,
    sa.Column(
        "subscription_id",
        sa.String(64),
        sa.ForeignKey("subscriptions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("monitor", sa.String(40), primary_key=True),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("table_kind", sa.String(20), nullable=False),  # payload | feedback: what it aggregates
    sa.Column("config", JSONType, nullable=False),
    sa.Column("plan", JSONType, nullable=True),
    sa.Column("plan_id", sa.String(32), nullable=True),  # partials are built for this plan only
    sa.Column("plan_ready", sa.Boolean, nullable=False),  # partials cover every stored row
    sa.Column("period_seconds", sa.Integer, nullable=False),
    sa.Column("next_run_at", UTCDateTime(), nullable=True),
    sa.Column("run_requested_at", UTCDateTime(), nullable=True),
    sa.Column("last_run_at", UTCDateTime(), nullable=True),
    sa.Column("last_status", sa.String(20), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

monitor_partials = sa.Table(
    "monitor_partials",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    _sub_fk(),
    sa.Column("monitor", sa.String(40), nullable=False),
    sa.Column("plan_id", sa.String(32), nullable=False),
    sa.Column("bucket", UTCDateTime(), nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("min_ts", UTCDateTime(), nullable=False),
    sa.Column("max_ts", UTCDateTime(), nullable=False),
    sa.Column("state", sa.LargeBinary, nullable=False),
    sa.Index("ix_monitor_partials_lookup", "subscription_id", "monitor", "plan_id", "bucket"),
)

measurements = sa.Table(
    "measurements",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    _sub_fk(),
    sa.Column("monitor", sa.String(40), nullable=False),
    sa.Column("timestamp", UTCDateTime(), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # finished | insufficient_data | error
    sa.Column("trigger", sa.String(20), nullable=False),  # schedule | manual
    sa.Column("window_start", UTCDateTime(), nullable=True),
    sa.Column("window_end", UTCDateTime(), nullable=True),
    sa.Column("records", sa.BigInteger, nullable=False),
    sa.Column("values", JSONType, nullable=False),
    sa.Column("thresholds", JSONType, nullable=False),
    sa.Column("violations", JSONType, nullable=False),
    sa.Column("details", JSONType, nullable=False),
    sa.Column("message", sa.Text, nullable=True),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    sa.Index("ix_measurements_lookup", "subscription_id", "monitor", "timestamp"),
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    _sub_fk(),
    sa.Column("monitor", sa.String(40), nullable=False),
    sa.Column("metric", sa.String(200), nullable=False),
    sa.Column("limit_type", sa.String(20), nullable=False),  # lower_limit | upper_limit
    sa.Column("limit_value", sa.Double, nullable=False),
    sa.Column("status", sa.String(10), nullable=False),  # open | closed
    sa.Column("value", sa.Double, nullable=True),  # latest value seen in the episode
    sa.Column("worst_value", sa.Double, nullable=True),
    sa.Column("opened_at", UTCDateTime(), nullable=False),
    sa.Column("closed_at", UTCDateTime(), nullable=True),
    sa.Column("opened_measurement_id", sa.String(36), nullable=False),
    sa.Column("last_measurement_id", sa.String(36), nullable=False),
    sa.Column("runs", sa.Integer, nullable=False),  # violating runs in the episode
    sa.Column("message", sa.Text, nullable=False),
    sa.Index("ix_alerts_open", "subscription_id", "monitor", "status"),
)

webhooks = sa.Table(
    "webhooks",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("subscription_id", sa.String(64), sa.ForeignKey("subscriptions.id", ondelete="CASCADE"), nullable=True),
    sa.Column("monitors", JSONType, nullable=True),  # null: every monitor
    sa.Column("sealed_secret", sa.LargeBinary, nullable=True),  # HMAC key, Fernet-encrypted, never returned
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

alert_notifications = sa.Table(
    "alert_notifications",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("webhook_id", sa.String(36), sa.ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    sa.Column("alert_id", sa.String(36), sa.ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False),
    sa.Column("event", sa.String(20), nullable=False),  # alert.opened | alert.closed
    sa.Column("body", JSONType, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UTCDateTime(), nullable=True),  # null once delivered or given up
    sa.Column("delivered_at", UTCDateTime(), nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Index("ix_alert_notifications_due", "next_attempt_at"),
)
