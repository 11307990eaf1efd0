"""SDK: feedback logging, monitors, measurements (as DataFrames), alerts and webhooks.

sub.feedback_logging.store(frame_with_labels)
sub.monitors.quality.enable(min_feedback_data_size=50, thresholds=[{"metric": "accuracy", "type": "lower_limit", "value": 0.75}])
sub.monitors.quality.run()                      # a measurement, now
sub.measurements(monitor="quality")             # a DataFrame, one row per metric value
client.alerts.list(status="open")
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    import pandas as pd

    from scrutiny.sdk.client import Client, Subscription

MONITORS = ("quality", "fairness", "drift", "performance")


def _iso(t: datetime | str | None) -> str | None:
    if t is None or isinstance(t, str):
        return t
    return t.isoformat()


def _params(**kw: Any) -> dict[str, Any]:
    return {k: _iso(v) if isinstance(v, datetime) else v for k, v in kw.items() if v is not None}


class FeedbackLogging:
    """``subscription.feedback_logging``: labelled rows for the quality monitor."""

    def __init__(self, subscription: Subscription) -> None:
        self.subscription = subscription
        self.client = subscription.client

    @property
    def _path(self) -> str:
        return f"/v1/subscriptions/{self.subscription.id}/feedback"

    def store(
        self,
        data: pd.DataFrame | dict[str, Any] | Iterable[dict[str, Any]] | str | Path,
        *,
        batch_size: int = 5000,
        header: bool | None = None,
        delimiter: str = ",",
        on_error: str = "stop",
    ) -> dict[str, Any]:
        """Log feedback: a DataFrame (features and label, or ``scoring_id`` and label), a
        ``{"fields", "values"}`` dict, a list of row dicts, or a CSV file path.

        Rows with a ``scoring_id`` are joined to the payload row they label; the others are
        scored through the engine. Unlinked rows get a ``feedback_id`` here, so a retried batch
        is never stored twice. Returns the server's counts summed over the batches.
        """
        if isinstance(data, (str, Path)):
            text = Path(data).expanduser().read_bytes()
            params = _params(header=header, delimiter=delimiter, on_error=on_error)
            r = self.client.request(
                "POST", self._path, retry=True, content=text, headers={"Content-Type": "text/csv"}, params=params
            )
            return dict(r.json())
        if isinstance(data, dict):
            fields, values = list(data["fields"]), [list(v) for v in data["values"]]
        elif hasattr(data, "columns"):
            fields = [str(c) for c in data.columns]  # type: ignore[union-attr]
            values = data.astype(object).where(data.notna(), None).values.tolist()  # type: ignore[union-attr]
        else:
            rows = list(data)
            fields = list(dict.fromkeys(k for r in rows for k in r))
            values = [[r.get(f) for f in fields] for r in rows]
        if "scoring_id" not in fields and "feedback_id" not in fields:
            fields.append("feedback_id")
            for v in values:
                v.append(str(uuid.uuid4()))
        elif "feedback_id" not in fields:
            sid = fields.index("scoring_id")
            fields.append("feedback_id")
            for v in values:
                v.append(None if v[sid] is not None else str(uuid.uuid4()))
        total: dict[str, Any] = {
            "stored": 0,
            "duplicates": 0,
            "records": 0,
            "linked": 0,
            "scored": 0,
            "ignored_fields": [],
            "errors": [],
        }
        for start in range(0, len(values), max(1, batch_size)):
            body = orjson.dumps(
                {"fields": fields, "values": values[start : start + batch_size]},
                option=orjson.OPT_SERIALIZE_NUMPY,
            )
            r = self.client.request(
                "POST",
                self._path,
                retry=True,
                content=body,
                headers={"Content-Type": "application/json"},
                params=_params(on_error=on_error),
            ).json()
            for k in ("stored", "duplicates", "records", "linked", "scored"):
                total[k] += int(r.get(k, 0))
            total["ignored_fields"] = sorted(set(total["ignored_fields"]) | set(r.get("ignored_fields", [])))
            total["errors"] += [{**e, "row": e["row"] + start} for e in r.get("errors", []) if e.get("row")]
        return total

    def get_table_content(self, *, limit: int | None = None) -> pd.DataFrame:
        """The feedback table (with the prediction each row judges) as a DataFrame."""
        import io

        import pandas as pd

        if limit is not None:
            page = self.client.get(self._path, params={"limit": limit})
            return pd.DataFrame(page["rows"])
        r = self.client.request("GET", self._path + "/export", retry=True, params={"format": "parquet"})
        return pd.read_parquet(io.BytesIO(r.content))

    def count(self) -> int:
        return int(self.client.get(self._path, params={"limit": 1})["total"])


class MonitorHandle:
    """One monitor of a subscription: ``sub.monitors.quality``."""

    def __init__(self, subscription: Subscription, name: str) -> None:
        self.subscription = subscription
        self.client = subscription.client
        self.name = name

    @property
    def _path(self) -> str:
        return f"/v1/subscriptions/{self.subscription.id}/monitors/{self.name}"

    def enable(self, **config: Any) -> dict[str, Any]:
        """Enable (or reconfigure) the monitor with its configuration fields, ``thresholds`` and
        ``schedule``; the server validates them (errors name the field)."""
        return dict(self.client.request("PUT", self._path, json={**config, "enabled": True}).json())

    update = enable

    def disable(self) -> dict[str, Any]:
        return dict(self.client.request("DELETE", self._path).json())

    def get(self) -> dict[str, Any]:
        """Configuration, thresholds in force, schedule, last run."""
        return dict(self.client.get(self._path))

    def run(self, *, start: datetime | None = None, end: datetime | None = None, wait: bool = True) -> dict[str, Any]:
        """Run now; returns the stored measurement (``wait=False``: queue it for the scheduler)."""
        params = _params(start=start, end=end, wait=None if wait else "false")
        return dict(self.client.request("POST", self._path + "/runs", params=params).json())

    def measurements(self, **kw: Any) -> pd.DataFrame:
        return self.subscription.measurements(monitor=self.name, **kw)

    def recommendations(self) -> list[dict[str, Any]]:
        """Suggested configuration entries (fairness: the protected attributes found)."""
        return list(self.client.get(self._path + "/recommendations")["recommendations"])

    def latest(self) -> dict[str, Any] | None:
        """The newest finished measurement, or None."""
        rows = self.subscription.measurement_list(monitor=self.name, status="finished", limit=1)
        return rows[0] if rows else None


class Monitors:
    """``sub.monitors``: ``sub.monitors.quality``, ``sub.monitors["drift"]``, ``sub.monitors.list()``."""

    def __init__(self, subscription: Subscription) -> None:
        self.subscription = subscription

    def __getattr__(self, name: str) -> MonitorHandle:
        if name.startswith("_"):
            raise AttributeError(name)
        return MonitorHandle(self.subscription, name)

    def __getitem__(self, name: str) -> MonitorHandle:
        return MonitorHandle(self.subscription, name)

    def list(self) -> list[dict[str, Any]]:
        return list(self.subscription.client.get(f"/v1/subscriptions/{self.subscription.id}/monitors")["monitors"])


def measurement_list(
    client: Client,
    sub_id: str,
    *,
    monitor: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    status: str | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    params = _params(monitor=monitor, start=start, end=end, status=status, limit=limit)
    return list(client.get(f"/v1/subscriptions/{sub_id}/measurements", params=params)["measurements"])


def measurements_frame(rows: list[dict[str, Any]], *, wide: bool = False) -> pd.DataFrame:
    """One row per (measurement, metric) with its limits and whether it was violated; ``wide``:
    one row per measurement, one column per metric."""
    import pandas as pd

    if wide:
        frame = pd.DataFrame(
            [
                {
                    "measurement_id": m["id"],
                    "timestamp": m["timestamp"],
                    "monitor": m["monitor"],
                    "status": m["status"],
                    "records": m["records"],
                    **m["values"],
                }
                for m in rows
            ]
        )
        if len(frame):
            frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
        return frame
    out = []
    for m in rows:
        limits: dict[str, dict[str, float]] = {}
        for lim in m["thresholds"]:
            limits.setdefault(lim["metric"], {})[lim["type"]] = lim["value"]
        bad = {v["metric"] for v in m["violations"]}
        base = {
            "measurement_id": m["id"],
            "timestamp": m["timestamp"],
            "monitor": m["monitor"],
            "status": m["status"],
            "records": m["records"],
        }
        if not m["values"]:
            out.append(
                {
                    **base,
                    "metric": None,
                    "value": None,
                    "lower_limit": None,
                    "upper_limit": None,
                    "violated": False,
                    "message": m["message"],
                }
            )
        for key, value in m["values"].items():
            lim = limits.get(key, {})
            out.append(
                {**base, "metric": key, "value": value, "lower_limit": lim.get("lower_limit"),
                 "upper_limit": lim.get("upper_limit"), "violated": key in bad, "message": m["message"]}
            )  # fmt: skip
    columns = [
        "measurement_id",
        "timestamp",
        "monitor",
        "status",
        "records",
        "metric",
        "value",
        "lower_limit",
        "upper_limit",
        "violated",
        "message",
    ]
    frame = pd.DataFrame(out, columns=columns)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    frame["value"] = frame["value"].astype(float)
    return frame


class Alerts:
    """``client.alerts``."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def list(
        self,
        *,
        status: str | None = None,
        subscription_id: str | None = None,
        monitor: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        params = _params(status=status, subscription_id=subscription_id, monitor=monitor, limit=limit)
        return list(self.client.get("/v1/alerts", params=params)["alerts"])

    def frame(self, **kw: Any) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.list(**kw))


class Webhooks:
    """``client.webhooks``: where alerts are delivered."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def create(
        self,
        url: str,
        *,
        subscription_id: str | None = None,
        monitors: list[str] | None = None,
        secret: str | None = None,
        description: str | None = None,
    ) -> dict[str, Any]:
        body = _params(
            url=url, subscription_id=subscription_id, monitors=monitors, secret=secret, description=description
        )
        return dict(self.client.post("/v1/webhooks", body))

    def delete(self, webhook_id: str) -> None:
        self.client.request("DELETE", f"/v1/webhooks/{webhook_id}")

    def deliveries(self, webhook_id: str) -> list[dict[str, Any]]:
        return list(self.client.get(f"/v1/webhooks/{webhook_id}/deliveries")["deliveries"])

    def list(self) -> list[dict[str, Any]]:
        return list(self.client.get("/v1/webhooks")["webhooks"])
