"""A custom ML engine that follows OpenScale's contract, serving real scikit-learn models.

``scrutiny engine demo`` runs it alone, as a working example of the contract; ``scrutiny demo``
and the tests run it beside the API. It serves three deployments trained at start on the
German credit data: ``credit-risk`` (binary), ``loan-purpose`` (multiclass) and
``credit-amount`` (regression).

Options reproduce what real engines do, so the adapter is tested against them: discovery in
Form A or Form B, no auth, HTTP Basic, a static bearer token or one minted from a token
endpoint, a path prefix, responses that echo the inputs, the reference engine's wrong-order
``labels``, and (``faults=True``) deployments that fail in each way an engine can.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from scrutiny.demo import credit

CREATED = "2026-01-05T09:30:00Z"


@dataclass
class EngineOptions:
    discovery_form: str = "A"  # "A" (engines written for OpenScale) or "B" (normalised)
    auth: str = "none"  # none | basic | bearer | minted
    username: str = "demo"
    password: str = "demo-password"
    token: str = "demo-token"
    apikey: str = "demo-apikey"
    token_ttl: int = 3600
    prefix: str = ""  # e.g. "/spaces/abc"
    echo_inputs: bool = False
    wrong_order_labels: bool = True  # the reference engine's labels disagree with its vectors
    faults: bool = False
    slow_seconds: float = 3.0
    discovery: bool = True


class _Json(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


@dataclass
class _Model:
    name: str
    problem_type: str
    features: list[str]
    estimator: Any
    labels: list[str] = field(default_factory=list)
    label_column: str = credit.LABEL

    def score(self, fields: list[str], values: list[list[Any]]) -> tuple[list[str], list[list[Any]], list[str] | None]:
        import pandas as pd

        missing = [f for f in self.features if f not in fields]
        if missing:
            raise ValueError(f"missing fields: {missing}")
        df = pd.DataFrame(values, columns=fields)[self.features]
        if self.problem_type == "regression":
            pred = self.estimator.predict(df)
            return ["prediction"], [[round(float(p), 6)] for p in pred], None
        proba = self.estimator.predict_proba(df)
        classes = [str(c) for c in self.estimator.classes_]
        pred = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
        return (
            ["prediction", "probability"],
            [[p, row] for p, row in zip(pred.tolist(), proba.tolist(), strict=True)],
            classes,
        )


@cache
def _trained() -> dict[str, _Model]:
    """The three models, trained once per process (read-only afterwards, safe to share)."""
    data = credit.load_german()
    return {
        "credit-risk": _Model("credit-risk", "binary", credit.FEATURES, credit.train_credit_model(data), credit.LABELS),
        "loan-purpose": _Model(
            "loan-purpose",
            "multiclass",
            credit.PURPOSE_FEATURES,
            credit.train_purpose_model(data),
            credit.PURPOSE_CLASSES,
            label_column="LoanPurposeClass",
        ),
        "credit-amount": _Model(
            "credit-amount",
            "regression",
            credit.AMOUNT_FEATURES,
            credit.train_amount_model(data),
            label_column="LoanAmount",
        ),
    }


FAULTS = ("fault-500", "fault-html", "fault-shape", "fault-rows", "fault-slow", "fault-400", "fault-flaky")


def create_engine_app(options: EngineOptions | None = None, models: dict[str, Any] | None = None) -> Starlette:
    """The engine as an ASGI app. ``app.state.stats`` counts calls for tests and benchmarks."""
    opts = options or EngineOptions()
    served = models if models is not None else dict(_trained())
    minted: dict[str, float] = {}
    stats: Counter[str] = Counter()
    prefix = opts.prefix.rstrip("/")

    def base_url(request: Request) -> str:
        return str(request.base_url).rstrip("/") + prefix

    def authorized(request: Request) -> bool:
        header = request.headers.get("authorization", "")
        if opts.auth == "none":
            return True
        if opts.auth == "basic":
            expected = base64.b64encode(f"{opts.username}:{opts.password}".encode()).decode()
            return secrets.compare_digest(header, f"Basic {expected}")
        if opts.auth == "bearer":
            return secrets.compare_digest(header, f"Bearer {opts.token}")
        if opts.auth == "minted":
            token = header.removeprefix("Bearer ")
            return minted.get(token, 0) > time.monotonic()
        return False

    def deny() -> JSONResponse:
        return JSONResponse({"error": "unauthorized"}, status_code=401, headers={"WWW-Authenticate": "Bearer"})

    async def mint(request: Request) -> Response:
        form = await request.form()
        if form.get("apikey") != opts.apikey:
            return JSONResponse({"error": "invalid apikey"}, status_code=400)
        token = secrets.token_urlsafe(16)
        minted[token] = time.monotonic() + opts.token_ttl
        stats["tokens_minted"] += 1
        return JSONResponse({"access_token": token, "token_type": "Bearer", "expires_in": opts.token_ttl})

    def resource(request: Request, name: str, model: _Model | None) -> dict[str, Any]:
        url = f"{base_url(request)}/v1/deployments/{name}/online"
        problem = model.problem_type if model else "binary"
        props: dict[str, Any] = {"problem_type": problem, "input_data_type": "structured"}
        if opts.discovery_form == "A":
            return {
                "metadata": {"guid": name, "created_at": CREATED, "modified_at": CREATED},
                "entity": {
                    "name": f"{name} deployment",
                    "description": f"scikit-learn {problem} model on German credit data",
                    "scoring_url": url,
                    "asset": {"name": name, "guid": name},
                    "asset_properties": {**props, "predicted_target_field": "prediction"},
                },
            }
        return {
            "metadata": {"guid": name, "url": f"{base_url(request)}/v1/deployments/{name}", "created_at": CREATED},
            "entity": {
                "name": name,
                "description": "",
                "type": "online",
                "deployment_rn": f"demo:deployment/{name}",
                "scoring_endpoint": {"url": url, "request_headers": {"Content-Type": "application/json"}},
                "asset": {
                    "asset_id": f"{name}-model",
                    "asset_rn": f"demo:model/{name}",
                    "url": f"{base_url(request)}/v1/models/{name}",
                    "name": name,
                    "asset_type": "model",
                    "created_at": CREATED,
                },
                "asset_properties": {**props, "label_column": model.label_column if model else credit.LABEL},
            },
        }

    async def deployments(request: Request) -> Response:
        if not authorized(request):
            return deny()
        stats["discovery"] += 1
        items = [resource(request, n, m) for n, m in served.items()]
        if opts.faults:
            items += [resource(request, n, None) for n in FAULTS]
        return _Json({"count": len(items), "resources": items})

    async def online(request: Request) -> Response:
        if not authorized(request):
            return deny()
        name = request.path_params["deployment_id"]
        stats[f"calls:{name}"] += 1
        stats["calls"] += 1
        if request.headers.get("x-scrutiny-internal") == "1":
            stats["internal_calls"] += 1
        body = await request.body()
        if opts.faults and name == "fault-flaky" and stats["calls:fault-flaky"] % 2 == 1:
            return JSONResponse({"error": "temporarily unavailable"}, status_code=503)  # every other call
        if opts.faults and name in FAULTS and name != "fault-flaky":
            return await _fault(name, body)
        if name == "fault-flaky":
            name = "credit-risk"
        model = served.get(name)
        if model is None:
            return JSONResponse({"error": f"no deployment {name!r}"}, status_code=404)
        try:
            req = orjson.loads(body)
            fields, values = req["fields"], req["values"]
            if values and not isinstance(values[0], list):
                values = [values]
            stats["rows"] += len(values)
            out_fields, out_values, classes = await asyncio.to_thread(model.score, fields, values)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            return JSONResponse({"error": f"bad scoring request: {exc}"}, status_code=400)
        if opts.echo_inputs:
            out_fields = list(fields) + out_fields
            out_values = [list(i) + o for i, o in zip(values, out_values, strict=True)]
        payload: dict[str, Any] = {"fields": out_fields, "values": out_values}
        if classes and opts.wrong_order_labels:
            payload["labels"] = list(reversed(classes))
        elif classes:
            payload["labels"] = classes
        return _Json(payload)

    async def _fault(name: str, body: bytes) -> Response:
        if name == "fault-500":
            return JSONResponse({"error": "model crashed"}, status_code=500)
        if name == "fault-400":
            return JSONResponse({"error": "bad input for this model"}, status_code=400)
        if name == "fault-html":
            return Response("<html><body>Gateway page</body></html>", media_type="text/html")
        if name == "fault-shape":
            return JSONResponse({"result": "ok"})
        if name == "fault-rows":
            return JSONResponse({"fields": ["prediction", "probability"], "values": []})
        await asyncio.sleep(opts.slow_seconds)  # fault-slow
        return JSONResponse({"fields": ["prediction"], "values": [["No Risk"]]})

    async def stats_route(request: Request) -> Response:
        return JSONResponse(dict(stats))

    routes = [
        Route(f"{prefix}/v1/deployments/{{deployment_id}}/online", online, methods=["POST"]),
        Route(f"{prefix}/v1/token", mint, methods=["POST"]),
        Route("/_stats", stats_route),
    ]
    if opts.discovery:
        routes.append(Route(f"{prefix}/v1/deployments", deployments))
    app = Starlette(routes=routes)
    app.state.stats = stats
    app.state.models = served
    app.state.options = opts
    return app
