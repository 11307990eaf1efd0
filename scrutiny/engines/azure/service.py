"""Azure Machine Learning service: managed online endpoints and (by hand) ACI/AKS web services (engines.md §7).

Discovery walks workspaces -> online endpoints -> their deployments through the management API
(``nextLink`` paging). Each endpoint is a deployment (scored with the endpoint's traffic split),
and so is each of its deployments (``endpoint/deployment``, pinned with the
``azureml-model-deployment`` header), so blue and green can be monitored apart. Key-auth
endpoints are scored with their primary key (``listKeys``, fetched again after a 401 since keys
get rotated); ``AMLToken`` endpoints with a short-lived token from the endpoint's ``token``
action and ``AADToken`` endpoints with a service-principal token, both renewed before expiry.
Legacy ACI/AKS services are registered by hand as a scoring URI plus key.

Deployment option ``request_format`` picks the request body: ``input`` (OpenScale's contract,
the default: ``{"input": [records]}``), ``data`` (Azure's default ``{"data": [[...]]}``) or
``input_data`` (MLflow models deployed without a scoring script: ``{"input_data": {"columns",
"index", "data"}}``). Responses may be JSON or JSON inside a JSON string, holding records
(``Scored Labels``/``Scored Probabilities``), a dict of columns, or plain lists, bare or under
``output``/``predictions``/``result``.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from scrutiny.core.scoring_format import ScoringRequest, ScoringResponse, decode_json_string
from scrutiny.engines.azure.auth import AzureHttpEngine, unique_ids
from scrutiny.engines.base import Deployment, ModelContext, NativeRequest, NativeResponse
from scrutiny.engines.errors import EngineAuthError, EngineBadResponse, EngineResponseShape
from scrutiny.engines.native_tables import (
    Columns,
    NativeShapeError,
    as_labels,
    assemble_class_columns,
    from_columns,
    from_list,
    from_records,
    keep_outputs,
    ordered_rows,
    rename_roles,
    to_response,
)
from scrutiny.errors import InvalidInput, NotFound

API_VERSION = "2023-10-01"
REQUEST_FORMATS = ("input", "data", "input_data")
PREDICTIONS = ("Scored Labels", "prediction", "predictions", "label")
PROBABILITIES = ("Scored Probabilities", "probability", "probabilities")
_WRAPPERS = ("output", "outputs", "predictions", "result", "results")
MODEL_DEPLOYMENT_HEADER = "azureml-model-deployment"


class AzureServiceEngine(AzureHttpEngine):
    engine_type = "azure_ml_service"
    aliases = ("azure_machine_learning_service",)

    # -- discovery ---------------------------------------------------------------------------
    def list_deployments(self) -> list[Deployment]:
        self.require_principal()
        m = self.management
        workspaces = list(
            m.pages(
                f"/subscriptions/{m.subscription}/providers/Microsoft.MachineLearningServices/workspaces",
                api_version=API_VERSION,
            )
        )
        endpoints: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for ws in workspaces:
            endpoints += [(ws, ep) for ep in m.pages(f"{ws['id']}/onlineEndpoints", api_version=API_VERSION)]
        with ThreadPoolExecutor(max_workers=max(1, min(8, len(endpoints)))) as pool:
            children = list(
                pool.map(lambda pair: list(m.pages(f"{pair[1]['id']}/deployments", api_version=API_VERSION)), endpoints)
            )
        ids = unique_ids([(str(ep.get("name")), str(ws.get("name"))) for ws, ep in endpoints])
        out: list[Deployment] = []
        for dep_id, (ws, ep), kids in zip(ids, endpoints, children, strict=True):
            endpoint = self._endpoint(dep_id, ws, ep, kids)
            out.append(endpoint)
            out += [self._pinned(endpoint, kid) for kid in kids]
        return out

    def get_deployment(self, deployment_id: str) -> Deployment:
        dep = next((d for d in self.list_deployments() if d.id == deployment_id), None)
        if dep is None:
            raise NotFound(f"engine {self.binding.name!r} has no online endpoint or deployment {deployment_id!r}")
        if self.auth_mode(dep) == "Key":
            dep.credentials = {"token": self.fetch_key(dep)}
        return dep

    def _endpoint(self, dep_id: str, ws: dict[str, Any], ep: dict[str, Any], kids: list[dict[str, Any]]) -> Deployment:
        props = ep.get("properties") or {}
        traffic = props.get("traffic") or {}
        name = str(ep.get("name") or dep_id)
        created = (ep.get("systemData") or {}).get("createdAt")
        return Deployment(
            id=dep_id,
            name=name,
            scoring_url=props.get("scoringUri"),
            description=str(
                props.get("description")
                or f"online endpoint in workspace {ws.get('name')}; traffic "
                + (", ".join(f"{k} {v}%" for k, v in traffic.items()) or "none")
            ),
            type="online",
            created_at=created,
            deployment_rn=ep.get("id"),
            status=props.get("provisioningState"),
            asset={
                "asset_id": name,
                "name": name,
                "asset_type": "model",
                "url": props.get("scoringUri"),
                "created_at": created,
                "runtime_environment": "Azure ML managed online endpoint",
                "deployments": [str(k.get("name")) for k in kids],
            },
            options={
                "resource_id": ep.get("id"),
                "auth_mode": props.get("authMode") or "Key",
                "traffic": traffic,
                "workspace": ws.get("name"),
            },
        )

    def _pinned(self, endpoint: Deployment, kid: dict[str, Any]) -> Deployment:
        props = kid.get("properties") or {}
        name = str(kid.get("name"))
        model = str(props.get("model") or "")
        parts = model.strip("/").split("/")
        model_id = f"{parts[-3]}:{parts[-1]}" if len(parts) >= 4 and parts[-2] == "versions" else model or name
        created = (kid.get("systemData") or {}).get("createdAt")
        weight = (endpoint.options.get("traffic") or {}).get(name)
        return Deployment(
            id=f"{endpoint.id}/{name}",
            name=f"{endpoint.name} / {name}",
            scoring_url=endpoint.scoring_url,
            description=f"deployment {name} of {endpoint.name} ({weight if weight is not None else 0}% of traffic)",
            type="online",
            created_at=created,
            deployment_rn=kid.get("id"),
            status=props.get("provisioningState"),
            request_headers={MODEL_DEPLOYMENT_HEADER: name},
            asset={
                "asset_id": model_id,
                "name": model_id,
                "asset_type": "model",
                "url": model or None,
                "created_at": created,
                "runtime_environment": str((kid.get("sku") or {}).get("name") or props.get("instanceType") or "")
                or None,
            },
            options={**endpoint.options, "model_deployment": name},
        )

    # -- scoring credentials -----------------------------------------------------------------
    def _endpoint_id(self, deployment: Deployment) -> str:
        return str(deployment.options["resource_id"])

    def fetch_key(self, deployment: Deployment) -> str:
        keys = self.management.call(
            "POST", f"{self._endpoint_id(deployment)}/listKeys", api_version=API_VERSION, deployment=deployment.id
        )
        key = keys.get("primaryKey") or keys.get("secondaryKey")
        if not key:
            raise self.error(EngineAuthError, "listKeys returned no key for the endpoint", deployment)
        return str(key)

    def fetch_endpoint_token(self, deployment: Deployment) -> tuple[str, float]:
        data = self.management.call(
            "POST", f"{self._endpoint_id(deployment)}/token", api_version=API_VERSION, deployment=deployment.id
        )
        token = data.get("accessToken")
        if not token:
            raise self.error(EngineAuthError, "the endpoint's token action returned no accessToken", deployment)
        now = time.time()
        expiry = float(data.get("expiryTimeUtc") or now + 3600)
        refresh_after = float(data.get("refreshAfterTimeUtc") or 0) or expiry - min(300.0, 0.2 * (expiry - now))
        return str(token), max(0.0, min(refresh_after, expiry) - now)

    # -- conversion --------------------------------------------------------------------------
    @staticmethod
    def _request_format(deployment: Deployment, context: ModelContext) -> str:
        fmt = str({**deployment.options, **context.options}.get("request_format") or "input")
        if fmt not in REQUEST_FORMATS:
            raise InvalidInput(
                f"request_format must be one of {', '.join(REQUEST_FORMATS)}", field="deployment.options.request_format"
            )
        return fmt

    def encode_request(self, deployment: Deployment, request: ScoringRequest, context: ModelContext) -> NativeRequest:
        fmt = self._request_format(deployment, context)
        body: Any
        if fmt == "input":
            body = {"input": [dict(zip(request.fields, row, strict=True)) for row in request.values]}
        else:
            fields, rows = ordered_rows(request, context.feature_fields)
            if fmt == "data":
                body = {"data": rows}
            else:
                body = {"input_data": {"columns": fields, "index": list(range(len(rows))), "data": rows}}
        return NativeRequest(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY))

    def decode_request(self, deployment: Deployment, native: NativeRequest, context: ModelContext) -> ScoringRequest:
        try:
            data = decode_json_string(orjson.loads(native.body), what="request")
        except orjson.JSONDecodeError:
            raise InvalidInput("the request body is not JSON") from None
        if isinstance(data, dict) and isinstance(data.get("input_data"), dict):
            split = data["input_data"]
            return ScoringRequest(
                [str(c) for c in split.get("columns") or []], [list(r) for r in split.get("data") or []]
            )
        if isinstance(data, dict) and isinstance(data.get("input"), list):
            try:
                t = to_response(from_records(data["input"], "input"))
            except NativeShapeError as exc:
                raise InvalidInput(str(exc), field="input") from None
            return ScoringRequest(t.fields, t.values)
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            rows = data["data"]
            if rows and all(isinstance(r, dict) for r in rows):
                t = to_response(from_records(rows, "data"))
                return ScoringRequest(t.fields, t.values)
            fields = list(context.feature_fields or [])
            if not fields:
                raise InvalidInput(
                    "positional 'data' rows need the subscription's feature_fields", field="feature_fields"
                )
            for r, row in enumerate(rows, start=1):
                if not isinstance(row, list) or len(row) != len(fields):
                    raise InvalidInput(f"row is not a list of {len(fields)} values", row=r, field="data")
            return ScoringRequest(fields, [list(r) for r in rows])
        raise InvalidInput("the request holds none of 'input', 'data' or 'input_data'")

    def decode_response(
        self, deployment: Deployment, native: NativeResponse, context: ModelContext, n_rows: int | None
    ) -> ScoringResponse:
        try:
            table = self._table(decode_json_string(self.json(native, deployment)), context)
        except InvalidInput as exc:  # a JSON string inside the JSON that is not JSON
            raise self.error(EngineBadResponse, exc.message, deployment, body=native.body) from None
        except NativeShapeError as exc:
            raise self.error(EngineResponseShape, str(exc), deployment, body=native.body) from None
        table = keep_outputs(table, context.feature_fields)
        if context.problem_type != "regression":
            for name in PREDICTIONS:
                if name in table:
                    table[name] = as_labels(table[name], context.labels)
            probs = context.probability_fields
            target = probs[0] if len(probs) == 1 else PROBABILITIES[0]
            if target not in table and PROBABILITIES[0] not in table:
                try:
                    table = assemble_class_columns(table, context.labels, target)
                except NativeShapeError as exc:
                    raise self.error(EngineResponseShape, str(exc), deployment, body=native.body) from None
        return to_response(rename_roles(table, context, predictions=PREDICTIONS, probabilities=PROBABILITIES))

    @staticmethod
    def _table(data: Any, context: ModelContext) -> Columns:
        if isinstance(data, dict):
            for key in _WRAPPERS:
                inner = decode_json_string(data.get(key)) if key in data else None
                if isinstance(inner, list):
                    return from_list(inner, context, prediction=PREDICTIONS[0], probability=PROBABILITIES[0], what=key)
                if isinstance(inner, dict):
                    return from_columns(inner, key)
            if data and all(isinstance(v, list) for v in data.values()):
                return from_columns(data)
            raise NativeShapeError(f"response has none of {', '.join(_WRAPPERS)} (keys: {sorted(data)[:8]})")
        if isinstance(data, list):
            return from_list(data, context, prediction=PREDICTIONS[0], probability=PROBABILITIES[0], what="response")
        raise NativeShapeError("response is neither an object nor a list")


__all__ = ["AzureServiceEngine"]
