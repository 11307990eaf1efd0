"""Builders for the proxy tests: the API with its proxy on a loopback port (``serve``),
subscriptions on the demo engine, and an engine with a native format of its own (MLflow's
scoring-server protocol, engines.md §2) with a small adapter, so forwarding fidelity is tested on
a format that is not the common one."""

from __future__ import annotations

import csv
import io
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from scrutiny._server import BackgroundServer
from scrutiny.api.app import create_app
from scrutiny.core.scoring_format import ScoringRequest, ScoringResponse
from scrutiny.core.subscription import Subscription
from scrutiny.demo import credit
from scrutiny.engines import Deployment, ModelContext, NativeRequest, NativeResponse, register
from scrutiny.engines.errors import EngineResponseShape
from scrutiny.engines.http import HttpEngine
from scrutiny.errors import InvalidInput
from scrutiny.proxy.runtime import ProxyRuntime
from scrutiny.security import Role
from scrutiny.service import Service

CREDIT_PROPS = {
    "problem_type": "binary",
    "label_column": credit.LABEL,
    "feature_fields": credit.FEATURES,
    "categorical_fields": credit.CATEGORICAL_FEATURES,
    "prediction_field": "prediction",
    "probability_fields": ["probability"],
}


def subscribe(
    svc: Service,
    engine_url: str,
    german: Any,
    *,
    deployment_id: str | None = "credit-risk",
    engine_type: str = "custom",
    deployment: dict[str, Any] | None = None,
    credentials: dict[str, Any] | None = None,
) -> Subscription:
    binding, _ = svc.bindings.create(
        name=f"{engine_type} engine",
        engine_type=engine_type,
        credentials=credentials if credentials is not None else {"url": engine_url},
    )
    return svc.subscriptions.create(
        binding_id=binding.id,
        deployment_id=None if deployment else deployment_id,
        deployment=deployment,
        asset_properties=dict(CREDIT_PROPS),
        training_frame=german,
    )


def logger_key(svc: Service) -> str:
    key, _ = svc.keys.create("application", Role.LOGGER)
    return key


def rows(german: Any, n: int, start: int = 0) -> list[list[Any]]:
    return german[credit.FEATURES].iloc[start : start + n].values.tolist()


def payload_rows(svc: Service, sub_id: str) -> list[dict[str, Any]]:
    _, out = svc.payloads.read(sub_id, limit=10_000)
    return out


def wait_for(predicate: Any, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


# -- an MLflow-style scoring server ----------------------------------------------------------------


def mlflow_style_app(model: Any) -> Starlette:
    """``POST /invocations`` with ``dataframe_split``, ``dataframe_records`` or CSV; answers
    ``{"predictions": [{"prediction", "probability"}, ...]}`` (a pyfunc returning a DataFrame)."""
    import pandas as pd

    stats: Counter[str] = Counter()
    seen: list[dict[str, Any]] = []

    async def invocations(request: Request) -> Response:
        body = await request.body()
        stats["calls"] += 1
        seen.append(
            {
                "path": request.url.path,
                "query": request.url.query,
                "headers": {k.lower(): v for k, v in request.headers.items()},
            }
        )
        ctype = request.headers.get("content-type", "").split(";")[0]
        try:
            if ctype == "text/csv":
                frame = pd.read_csv(io.BytesIO(body))
            else:
                data = orjson.loads(body)
                keys = {"dataframe_split", "dataframe_records", "instances", "inputs"} & set(data)
                if len(keys) != 1:
                    raise ValueError("must be a JSON dictionary with exactly one of the input fields")
                if "dataframe_split" in data:
                    frame = pd.DataFrame(data["dataframe_split"]["data"], columns=data["dataframe_split"]["columns"])
                else:
                    frame = pd.DataFrame(data.get("dataframe_records") or data.get("instances"))
            proba = model.predict_proba(frame[credit.FEATURES])
        except Exception as exc:  # MLflow answers any bad input this way
            return JSONResponse({"error_code": "BAD_REQUEST", "message": str(exc)}, status_code=400)
        classes = [str(c) for c in model.classes_]
        pred = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
        out = [{"prediction": p, "probability": v} for p, v in zip(pred.tolist(), proba.tolist(), strict=True)]
        return Response(orjson.dumps({"predictions": out}), media_type="application/json")

    app = Starlette(
        routes=[
            Route("/invocations", invocations, methods=["POST"]),
            Route("/invocations/{rest:path}", invocations, methods=["POST"]),
        ]
    )
    app.state.stats = stats
    app.state.seen = seen
    return app


@register
class MlflowStyleEngine(HttpEngine):
    """A minimal adapter for the server above (the full MLflow adapter lives with the engines)."""

    engine_type = "mlflow-test"

    def list_deployments(self) -> list[Deployment]:
        return []

    def encode_request(self, deployment: Deployment, request: ScoringRequest, context: ModelContext) -> NativeRequest:
        return NativeRequest(orjson.dumps({"dataframe_split": {"columns": request.fields, "data": request.values}}))

    def decode_request(self, deployment: Deployment, native: NativeRequest, context: ModelContext) -> ScoringRequest:
        if native.content_type.split(";")[0] == "text/csv":
            reader = list(csv.reader(io.StringIO(native.body.decode())))
            fields, values = reader[0], [[_number(v) for v in row] for row in reader[1:] if row]
            return ScoringRequest(fields, values)
        data = orjson.loads(native.body)
        if "dataframe_split" in data:
            split = data["dataframe_split"]
            return ScoringRequest(list(split["columns"]), [list(r) for r in split["data"]])
        records = data.get("dataframe_records") or data.get("instances")
        if isinstance(records, list) and records:
            fields = list(records[0])
            return ScoringRequest(fields, [[r.get(f) for f in fields] for r in records])
        raise InvalidInput("not an MLflow scoring request")

    def decode_response(
        self, deployment: Deployment, native: NativeResponse, context: ModelContext, n_rows: int | None
    ) -> ScoringResponse:
        data = self.json(native, deployment)
        preds = data.get("predictions") if isinstance(data, dict) else data
        if not isinstance(preds, list):
            raise self.error(EngineResponseShape, "no 'predictions' list", deployment, body=native.body)
        if preds and isinstance(preds[0], dict):
            fields = list(preds[0])
            return ScoringResponse(fields, [[p.get(f) for f in fields] for p in preds])
        return ScoringResponse(["prediction"], [[p] for p in preds])


def _number(text: str) -> Any:
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def to_csv(fields: list[str], values: list[list[Any]]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(fields)
    w.writerows(values)
    return buf.getvalue().encode()


def proxy_client(url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def served(srv: Any) -> Any:
    """The app a ``BackgroundServer`` runs (its ``state`` holds the test servers' call records)."""
    return srv.server.config.app


@dataclass
class Proxied:
    """The API (and its proxy) on a loopback port: its URL, a logger key, the admin key."""

    url: str
    key: str
    admin: str
    svc: Service
    app: Any

    @property
    def runtime(self) -> ProxyRuntime:
        rt: ProxyRuntime = self.app.state.proxy_runtime
        return rt

    def flush(self) -> None:
        assert self.runtime.drainer.wait_empty(30), "the spool did not drain"

    def client(self, key: str | None = None) -> httpx.Client:
        return proxy_client(self.url, key or self.key)


def serve(svc: Service) -> Iterator[Proxied]:
    app = create_app(service=svc)
    admin = svc.keys.ensure_admin_key()
    assert admin
    with BackgroundServer(app) as srv:
        yield Proxied(srv.url, logger_key(svc), admin, svc, app)
