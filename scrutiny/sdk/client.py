"""The Python client: ``scrutiny.Client(url, api_key)``.

It finds the server and key by itself when run beside ``scrutiny serve`` (``SCRUTINY_URL``,
``SCRUTINY_API_KEY``, or the key file the server writes in ``SCRUTINY_DATA_DIR``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import httpx
import orjson

from scrutiny.sdk.monitors import Alerts, FeedbackLogging, Monitors, Webhooks, measurement_list, measurements_frame
from scrutiny.sdk.records import ARROW, PayloadRecord, arrow_bytes, frames_to_arrow, records_to_arrow

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_URL = "http://127.0.0.1:8080"
RETRY_STATUS = {502, 503, 504}


class ScrutinyAPIError(Exception):
    """A non-2xx answer from the API, with its error code and the record/row/field it names."""

    def __init__(self, status: int, body: Any) -> None:
        err = body.get("error", {}) if isinstance(body, dict) else {}
        self.status = status
        self.code = err.get("code", "error")
        self.message = err.get("message") or (body if isinstance(body, str) else str(body))
        self.details = err
        super().__init__(f"HTTP {status} {self.code}: {self.message}")


def _find_key(data_dir: str | Path | None) -> str | None:
    if os.environ.get("SCRUTINY_API_KEY"):
        return os.environ["SCRUTINY_API_KEY"]
    base = Path(data_dir or os.environ.get("SCRUTINY_DATA_DIR") or Path.home() / ".scrutiny").expanduser()
    path = base / "api_key"
    return path.read_text().strip() if path.exists() else None


class Client:
    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        data_dir: str | Path | None = None,
        retries: int = 3,
    ) -> None:
        self.url = (url or os.environ.get("SCRUTINY_URL") or DEFAULT_URL).rstrip("/")
        key = api_key or _find_key(data_dir)
        if not key:
            raise ValueError("no API key: pass api_key=, set SCRUTINY_API_KEY, or run beside `scrutiny serve`")
        self.retries = retries
        self.http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {key}", "User-Agent": "scrutiny-sdk"},
            timeout=timeout,
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=16),
        )
        self.bindings = Bindings(self)
        self.subscriptions = Subscriptions(self)
        self.alerts = Alerts(self)
        self.webhooks = Webhooks(self)

    # -- plumbing ----------------------------------------------------------------------------
    def request(self, method: str, path: str, *, retry: bool = False, **kwargs: Any) -> httpx.Response:
        """One call; idempotent calls (``retry=True``) are retried on connection errors and 502-504."""
        attempts = self.retries if retry else 1
        delay = 0.2
        for attempt in range(1, attempts + 1):
            try:
                r = self.http.request(method, path, **kwargs)
            except (httpx.ConnectError, httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.WriteError):
                if attempt == attempts:
                    raise
                time.sleep(delay)
                delay *= 2
                continue
            if r.status_code in RETRY_STATUS and attempt < attempts:
                time.sleep(delay)
                delay *= 2
                continue
            if r.status_code >= 400:
                try:
                    body = r.json()
                except ValueError:
                    body = r.text
                raise ScrutinyAPIError(r.status_code, body)
            return r
        raise AssertionError("unreachable")  # pragma: no cover

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, retry=True, **kw).json()

    def post(self, path: str, json: Any = None, **kw: Any) -> Any:
        r = self.request(
            "POST",
            path,
            content=orjson.dumps(json, option=orjson.OPT_SERIALIZE_NUMPY),
            headers={"Content-Type": "application/json"},
            **kw,
        )
        return r.json() if r.content else None

    def data_marts(self) -> list[dict[str, Any]]:
        return list(self.get("/v1/data_marts")["data_marts"])

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Resource:
    def __init__(self, client: Client, data: dict[str, Any]) -> None:
        self.client = client
        self.data = data

    def __getattr__(self, name: str) -> Any:
        try:
            return self.data[name]
        except KeyError:
            raise AttributeError(name) from None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.data.get('id')} {self.data.get('name', '')!r}>"


class Binding(Resource):
    def deployments(self) -> list[dict[str, Any]]:
        """Discovery: the engine's deployments, asked of the engine now."""
        return list(self.client.get(f"/v1/bindings/{self.id}/deployments")["deployments"])

    def delete(self) -> None:
        self.client.request("DELETE", f"/v1/bindings/{self.id}")


class Bindings:
    def __init__(self, client: Client) -> None:
        self.client = client

    def create(
        self,
        *,
        name: str,
        engine_type: str = "custom",
        credentials: dict[str, Any],
        request_headers: dict[str, str] | None = None,
        description: str | None = None,
    ) -> Binding:
        body = {"name": name, "engine_type": engine_type, "credentials": credentials}
        if request_headers:
            body["request_headers"] = request_headers
        if description:
            body["description"] = description
        return Binding(self.client, self.client.post("/v1/bindings", body))

    def list(self) -> list[Binding]:
        return [Binding(self.client, b) for b in self.client.get("/v1/bindings")["bindings"]]

    def get(self, binding_id: str) -> Binding:
        return Binding(self.client, self.client.get(f"/v1/bindings/{binding_id}"))


class PayloadLogging:
    """``subscription.payload_logging``: store and read the payload table."""

    def __init__(self, subscription: Subscription) -> None:
        self.subscription = subscription
        self.client = subscription.client

    def store(
        self,
        records: PayloadRecord | Iterable[PayloadRecord] | pd.DataFrame,
        outputs: pd.DataFrame | None = None,
        *,
        meta: pd.DataFrame | None = None,
        scoring_ids: list[str] | None = None,
        scoring_timestamps: Any = None,
        response_times: Any = None,
        batch_size: int = 1000,
        max_in_flight: int = 4,
    ) -> dict[str, int]:
        """Log payload records, or a DataFrame of inputs with one of outputs (one payload row per row).

        Large inputs are split into batches of ``batch_size`` records sent ``max_in_flight`` at a
        time. Records get a scoring_id here when they have none, so a retried batch is never
        stored twice. Returns ``{"stored", "duplicates", "records"}`` summed over the batches.
        """
        bodies: Iterator[tuple[bytes, str]]
        if outputs is not None:
            frame = cast("pd.DataFrame", records)
            bodies = self._frame_bodies(
                frame, outputs, meta, scoring_ids, scoring_timestamps, response_times, batch_size
            )
        else:
            if isinstance(records, PayloadRecord):
                records = [records]
            bodies = self._record_bodies(list(records), batch_size)  # type: ignore[arg-type]
        total = {"stored": 0, "duplicates": 0, "records": 0}
        path = f"/v1/subscriptions/{self.subscription.id}/payloads"

        def send(item: tuple[bytes, str]) -> dict[str, int]:
            body, ctype = item
            return self.client.request("POST", path, retry=True, content=body, headers={"Content-Type": ctype}).json()

        with ThreadPoolExecutor(max_workers=max(1, max_in_flight)) as pool:
            for result in pool.map(send, bodies):
                for k in total:
                    total[k] += int(result.get(k, 0))
        return total

    @staticmethod
    def _record_bodies(records: list[PayloadRecord], batch_size: int) -> Iterator[tuple[bytes, str]]:
        import uuid

        for rec in records:
            if rec.scoring_id is None:
                rec.scoring_id = str(uuid.uuid4())
        for start in range(0, len(records), batch_size):
            chunk = records[start : start + batch_size]
            table = records_to_arrow(chunk)
            if table is not None:
                yield arrow_bytes(table), ARROW
            else:
                yield orjson.dumps([r.to_json() for r in chunk], option=orjson.OPT_SERIALIZE_NUMPY), "application/json"

    @staticmethod
    def _frame_bodies(
        inputs: pd.DataFrame,
        outputs: pd.DataFrame,
        meta: pd.DataFrame | None,
        scoring_ids: list[str] | None,
        scoring_timestamps: Any,
        response_times: Any,
        batch_size: int,
    ) -> Iterator[tuple[bytes, str]]:
        """Convert the frames to Arrow once, then send zero-copy slices of ``batch_size`` rows."""
        import uuid

        n = len(inputs)
        ids = list(scoring_ids) if scoring_ids is not None else [str(uuid.uuid4()) for _ in range(n)]
        table = frames_to_arrow(
            inputs,
            outputs,
            meta=meta,
            scoring_ids=ids,
            scoring_timestamps=scoring_timestamps,
            response_times=response_times,
        )
        for start in range(0, n, batch_size):
            yield arrow_bytes(table.slice(start, batch_size)), ARROW

    def get_table_content(
        self, *, limit: int | None = None, start: datetime | None = None, end: datetime | None = None
    ) -> pd.DataFrame:
        """The payload table as a DataFrame (all of it by default, read as Parquet)."""
        import io

        import pandas as pd

        params: dict[str, Any] = {}
        if start is not None:
            params["start"] = start.isoformat()
        if end is not None:
            params["end"] = end.isoformat()
        if limit is not None:
            params["limit"] = limit
            page = self.client.get(f"/v1/subscriptions/{self.subscription.id}/payloads", params=params)
            return pd.DataFrame(page["rows"])
        params["format"] = "parquet"
        r = self.client.request(
            "GET", f"/v1/subscriptions/{self.subscription.id}/payloads/export", retry=True, params=params
        )
        return pd.read_parquet(io.BytesIO(r.content))

    def count(self, *, start: datetime | None = None, end: datetime | None = None) -> int:
        params: dict[str, Any] = {"limit": 1}
        if start is not None:
            params["start"] = start.isoformat()
        if end is not None:
            params["end"] = end.isoformat()
        return int(self.client.get(f"/v1/subscriptions/{self.subscription.id}/payloads", params=params)["total"])


class Subscription(Resource):
    def __init__(self, client: Client, data: dict[str, Any]) -> None:
        super().__init__(client, data)
        self.payload_logging = PayloadLogging(self)
        self.feedback_logging = FeedbackLogging(self)
        self.monitors = Monitors(self)

    def measurements(
        self,
        *,
        monitor: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        status: str | None = None,
        limit: int = 1000,
        wide: bool = False,
    ) -> pd.DataFrame:
        """Measurements as a DataFrame: one row per (measurement, metric) with its limits and
        whether it was violated (``wide=True``: one row per measurement, a column per metric)."""
        rows = self.measurement_list(monitor=monitor, start=start, end=end, status=status, limit=limit)
        return measurements_frame(rows, wide=wide)

    def measurement_list(self, **kw: Any) -> list[dict[str, Any]]:
        """Measurements as the API returns them (values, thresholds, violations, details)."""
        return measurement_list(self.client, self.id, **kw)

    def refresh(self) -> Subscription:
        self.data = self.client.get(f"/v1/subscriptions/{self.id}")
        return self

    def score(self, fields: list[str] | pd.DataFrame, values: list[list[Any]] | None = None) -> dict[str, Any]:
        """Score through the engine in the common format (not logged as payload)."""
        if values is None and hasattr(fields, "columns"):
            frame = fields
            fields, values = [str(c) for c in frame.columns], frame.values.tolist()  # type: ignore[union-attr]
        return dict(self.client.post(f"/v1/subscriptions/{self.id}/score", {"fields": fields, "values": values}))

    def upload_training_data(self, frame: pd.DataFrame) -> Subscription:
        """Replace the training data; statistics are recomputed on the server."""
        import io

        buf = io.BytesIO()
        frame.to_parquet(buf, index=False)
        self.data = self.client.request(
            "PUT",
            f"/v1/subscriptions/{self.id}/training_data",
            content=buf.getvalue(),
            headers={"Content-Type": "application/vnd.apache.parquet"},
        ).json()
        return self

    def delete(self) -> None:
        self.client.request("DELETE", f"/v1/subscriptions/{self.id}")

    def explain(self, scoring_id: str | None = None, method: str = "lime", **kw: Any) -> dict[str, Any]:
        """Explain a logged transaction (or ``record=`` inline): see ``scrutiny.sdk.explanations``."""
        from scrutiny.sdk.explanations import explain

        return explain(self.client, self.id, scoring_id, method, **kw)

    def explanations(self, scoring_id: str | None = None, **params: Any) -> list[dict[str, Any]]:
        """Stored explanations, newest first (``scoring_id``, ``method``, ``status``, ``limit`` filter)."""
        query = {k: v for k, v in {"scoring_id": scoring_id, **params}.items() if v is not None}
        return list(self.client.get(f"/v1/subscriptions/{self.id}/explanations", params=query)["explanations"])


class Subscriptions:
    def __init__(self, client: Client) -> None:
        self.client = client

    def create(
        self,
        *,
        binding_id: str,
        asset_properties: dict[str, Any],
        deployment_id: str | None = None,
        deployment: dict[str, Any] | None = None,
        training_data_path: str | None = None,
        training_data: pd.DataFrame | None = None,
    ) -> Subscription:
        """Subscribe a discovered deployment (``deployment_id``) or a scoring URL given by hand
        (``deployment={"name", "scoring_url"}``); training data as a server-side path or a DataFrame."""
        body: dict[str, Any] = {"binding_id": binding_id, "asset_properties": asset_properties}
        if deployment_id is not None:
            body["deployment_id"] = deployment_id
        if deployment is not None:
            body["deployment"] = deployment
        if training_data_path is not None:
            body["training_data"] = {"path": str(training_data_path)}
        sub = Subscription(self.client, self.client.post("/v1/subscriptions", body))
        if training_data is not None:
            sub.upload_training_data(training_data)
        return sub

    def list(self, binding_id: str | None = None) -> list[Subscription]:
        params = {"binding_id": binding_id} if binding_id else None
        return [
            Subscription(self.client, s) for s in self.client.get("/v1/subscriptions", params=params)["subscriptions"]
        ]

    def get(self, subscription_id: str) -> Subscription:
        return Subscription(self.client, self.client.get(f"/v1/subscriptions/{subscription_id}"))
