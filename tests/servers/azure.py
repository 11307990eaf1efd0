"""A faithful local Azure: Azure AD token endpoint, Resource Manager routes, Studio and ML service scoring.

Reproduces the documented routes (engines.md §6-§7) and their quirks, serving the real German
credit models:

* ``POST /{tenant}/oauth2/v2.0/token``: client credentials, checked; ``expires_in`` honoured.
* Management (bearer token of the management scope, checked for expiry; 400 without
  ``api-version``; ``nextLink`` paging with ``$skiptoken``): Studio web services (list, get,
  ``listKeys``), ML workspaces, online endpoints, their deployments, ``listKeys`` and ``token``.
* Studio scoring: new (all-string records, scalar ``Scored Probabilities``), classic
  (``ColumnNames``/``Values``/``ColumnTypes``, per-class columns) and Designer (numbers as numbers);
  400 when the input table is missing, 401 on a wrong or missing key.
* ML service scoring: ``input``, ``data`` and ``input_data`` bodies; answers as a double-encoded
  JSON string, plain JSON, a bare list or ``{"predictions"}``; key, AML-token or AAD-token auth;
  ``azureml-model-deployment`` pins a deployment, else the traffic split applies.

``tests/fixtures/azure`` holds the documented request/response pairs this fake is checked
against (``tests/engines/test_azure_contract.py``).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import numpy as np
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from scrutiny.demo import credit

from .models import ServedModel, served_models

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
SUBSCRIPTION = "0b1f6471-1bf0-4dda-aec3-cb9272f09590"
CLIENT_ID = "5e3c1a2b-7d4f-4c1e-9b8a-2f6d0e1c3a47"
CLIENT_SECRET = "scrutiny-test-client-secret~0001"
RESOURCE_GROUP = "credit-rg"
STUDIO_WORKSPACE = "e5a1f2c3d4b5461a8f9e0d1c2b3a4f5e"
MANAGEMENT_SCOPE = "https://management.azure.com/.default"
ML_SCOPE = "https://ml.azure.com/.default"
STUDIO_API = "2017-01-01"
SERVICE_API = "2023-10-01"
CREATED = "2026-01-05T09:30:00.0000000Z"
FAULTS = ("fault-500", "fault-slow", "fault-garbage", "fault-shape")


@dataclass
class StudioService:
    name: str
    model: str | None  # a key of served_models(); None for faults
    fmt: str = "new"  # new | classic | designer
    listed: bool = True  # "new" services are in Resource Manager; classic and Designer are not
    key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    service_id: str = field(default_factory=lambda: secrets.token_hex(16))


@dataclass
class OnlineEndpoint:
    name: str
    workspace: str
    auth_mode: str  # Key | AMLToken | AADToken
    style: str  # double | plain | list | predictions
    deployments: dict[str, str | None]  # deployment name -> model (None: a fault)
    traffic: dict[str, int]
    listed: bool = True  # legacy ACI/AKS services are not
    key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    key2: str = field(default_factory=lambda: secrets.token_urlsafe(24))


@dataclass
class AzureState:
    studio: dict[str, StudioService]
    endpoints: dict[str, OnlineEndpoint]
    workspaces: tuple[str, ...] = ("credit-ws", "risk-ws")
    clients: dict[str, str] = field(default_factory=lambda: {CLIENT_ID: CLIENT_SECRET})
    token_seconds: int = 3599
    aml_token_seconds: int = 3600
    page_size: int = 2
    slow_seconds: float = 1.5
    tokens: dict[str, tuple[str, float]] = field(default_factory=dict)  # AAD token -> (scope, expires)
    aml_tokens: dict[str, tuple[str, float]] = field(default_factory=dict)  # endpoint token -> (endpoint, expires)
    calls: Counter[str] = field(default_factory=Counter)
    exchanges: list[dict[str, Any]] = field(default_factory=list)

    def rotate_key(self, name: str) -> None:
        if name in self.studio:
            self.studio[name].key = secrets.token_urlsafe(24)
        else:
            self.endpoints[name].key = secrets.token_urlsafe(24)


def default_state() -> AzureState:
    studio = [
        StudioService("credit-risk-ws", "credit-risk"),
        StudioService("loan-purpose-ws", "loan-purpose"),
        StudioService("credit-amount-ws", "credit-amount"),
        *(StudioService(f"{f}-ws", None) for f in FAULTS),
        StudioService("credit-risk-classic", "credit-risk", "classic", listed=False),
        StudioService("loan-purpose-classic", "loan-purpose", "classic", listed=False),
        StudioService("credit-amount-classic", "credit-amount", "classic", listed=False),
        StudioService("credit-risk-designer", "credit-risk", "designer", listed=False),
        StudioService("loan-purpose-designer", "loan-purpose", "designer", listed=False),
        StudioService("credit-amount-designer", "credit-amount", "designer", listed=False),
    ]
    endpoints = [
        OnlineEndpoint(
            "credit-risk-ep",
            "credit-ws",
            "Key",
            "double",
            {"blue": "credit-risk", "green": "credit-risk"},
            {"blue": 100, "green": 0},
        ),
        OnlineEndpoint("loan-purpose-ep", "credit-ws", "AMLToken", "plain", {"blue": "loan-purpose"}, {"blue": 100}),
        OnlineEndpoint("credit-amount-ep", "credit-ws", "AADToken", "list", {"blue": "credit-amount"}, {"blue": 100}),
        OnlineEndpoint("credit-risk-proba-ep", "risk-ws", "Key", "predictions", {"main": "credit-risk"}, {"main": 100}),
        OnlineEndpoint(
            "credit-risk-aci", "legacy", "Key", "double", {"default": "credit-risk"}, {"default": 100}, listed=False
        ),
        *(
            OnlineEndpoint(f, "legacy", "Key", "plain", {"default": None}, {"default": 100}, listed=False)
            for f in FAULTS
        ),
    ]
    return AzureState({s.name: s for s in studio}, {e.name: e for e in endpoints})


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _arm_error(code: str, message: str, status: int) -> Response:
    return _json({"error": {"code": code, "message": message}}, status)


# -- model outputs in each Azure shape ---------------------------------------------------------


def _string(v: Any) -> str:
    return repr(float(v)) if isinstance(v, (float, np.floating)) else str(v)


def _studio_columns(model: ServedModel, df: Any, *, designer: bool) -> list[tuple[str, list[Any]]]:
    """The scoring module's columns: 'Scored Labels' and 'Scored Probabilities' (one per class for multiclass)."""
    pred, proba = model.predict(df)
    cols: list[tuple[str, list[Any]]] = []
    if proba is not None and proba.shape[1] > 2:
        for j, c in enumerate(model.classes):
            name = f"Scored Probabilities_{c}" if designer else f'Scored Probabilities for Class "{c}"'
            cols.append((name, proba[:, j].tolist()))
        cols.append(("Scored Labels", pred.tolist()))
    elif proba is not None:
        cols += [("Scored Labels", pred.tolist()), ("Scored Probabilities", proba[:, 1].tolist())]
    else:
        cols.append(("Scored Labels", pred.tolist()))
    return cols


def _column_type(name: str) -> str:
    return "Int32" if name in credit.NUMERIC_FEATURES else "String"


def studio_answer(svc: StudioService, model: ServedModel, body: Any, input_name: str) -> Response:
    inputs = body.get("Inputs") if isinstance(body, dict) else None
    if not isinstance(inputs, dict) or input_name not in inputs:
        return _json(
            {
                "error": {
                    "code": "BadArgument",
                    "message": "Invalid argument provided.",
                    "details": [
                        {
                            "code": "MissingInputs",
                            "target": input_name,
                            "message": f"Missing required inputs: {input_name}.",
                        }
                    ],
                }
            },
            400,
        )
    table = inputs[input_name]
    try:
        if svc.fmt == "classic":
            names, rows = list(table["ColumnNames"]), [list(r) for r in table["Values"]]
        else:
            names = list(table[0]) if table else list(model.features)
            rows = [[r.get(n) for n in names] for r in table]
        df = model.frame(rows, names)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        return _json(
            {"error": {"code": "ModuleExecutionError", "message": f"Module execution encountered an error: {exc}"}}, 400
        )
    scored = _studio_columns(model, df, designer=svc.fmt == "designer")
    if svc.fmt == "designer":  # numbers stay numbers
        records = [dict(zip(names, r, strict=True)) for r in rows]
        for i, rec in enumerate(records):
            rec.update({name: values[i] for name, values in scored})
        return _json({"Results": {"WebServiceOutput0": records}})
    all_names = names + [n for n, _ in scored]
    all_rows = [[*map(_string, r), *(_string(values[i]) for _, values in scored)] for i, r in enumerate(rows)]
    if svc.fmt == "classic":
        types = [_column_type(n) for n in names] + [
            "Double" if n.startswith("Scored Prob") else "String" for n, _ in scored
        ]
        if model.problem_type == "regression":
            types[-1] = "Double"
        value = {"ColumnNames": all_names, "ColumnTypes": types, "Values": all_rows}
        return _json({"Results": {"output1": {"type": "table", "value": value}}})
    return _json({"Results": {"output1": [dict(zip(all_names, r, strict=True)) for r in all_rows]}})


def service_rows(model: ServedModel, body: Any) -> Any:
    """The rows of any of the three documented request bodies, as the model's frame."""
    if isinstance(body, dict) and isinstance(body.get("input"), list):
        recs = body["input"]
        return model.frame([[r.get(f) for f in model.features] for r in recs])
    if isinstance(body, dict) and isinstance(body.get("input_data"), dict):
        split = body["input_data"]
        return model.frame([list(r) for r in split["data"]], list(split["columns"]))
    if isinstance(body, dict) and isinstance(body.get("data"), list):
        rows = body["data"]
        if rows and isinstance(rows[0], dict):
            return model.frame([[r.get(f) for f in model.features] for r in rows])
        return model.frame([list(r) for r in rows])
    raise ValueError("expected 'input', 'data' or 'input_data'")


def service_answer(ep: OnlineEndpoint, model: ServedModel, df: Any) -> bytes:
    pred, proba = model.predict(df)
    if ep.style == "list":
        return orjson.dumps(pred.tolist())
    if ep.style == "predictions":
        return orjson.dumps({"predictions": proba.tolist() if proba is not None else pred.tolist()})
    if proba is not None:
        records = [
            {"Scored Labels": p, "Scored Probabilities": row}
            for p, row in zip(pred.tolist(), proba.tolist(), strict=True)
        ]
    else:
        records = [{"Scored Labels": p} for p in pred.tolist()]
    if ep.style == "double":  # run() returned json.dumps(...), and the server encoded that string again
        return orjson.dumps(orjson.dumps({"output": records}).decode())
    return orjson.dumps({"output": records})


# -- the application ---------------------------------------------------------------------------


def create_azure_app(state: AzureState | None = None) -> Starlette:
    st = state or default_state()
    models = served_models()

    def base(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    def bearer(request: Request) -> str:
        header = request.headers.get("authorization", "")
        return header[7:] if header.startswith("Bearer ") else ""

    def aad_ok(token: str, scope: str) -> str | None:
        """None when ``token`` is a live token of ``scope``; else the ARM error code."""
        found = st.tokens.get(token)
        if found is None or found[0] != scope:
            return "InvalidAuthenticationToken"
        if found[1] < time.time():
            return "ExpiredAuthenticationToken"
        return None

    # -- Azure AD ----------------------------------------------------------------------------
    async def token(request: Request) -> Response:
        st.calls["token"] += 1
        form = await request.form()
        if request.path_params["tenant"] != TENANT:
            return _json(
                {
                    "error": "invalid_request",
                    "error_description": f"AADSTS90002: Tenant '{request.path_params['tenant']}' not found. Check to make sure you have the correct tenant ID.",
                },
                400,
            )
        if form.get("grant_type") != "client_credentials":
            return _json(
                {
                    "error": "unsupported_grant_type",
                    "error_description": "AADSTS70003: The app requested an unsupported grant type.",
                },
                400,
            )
        client = str(form.get("client_id") or "")
        if client not in st.clients:
            return _json(
                {
                    "error": "unauthorized_client",
                    "error_description": f"AADSTS700016: Application with identifier '{client}' was not found in the directory.",
                },
                400,
            )
        if not secrets.compare_digest(str(form.get("client_secret") or ""), st.clients[client]):
            return _json(
                {
                    "error": "invalid_client",
                    "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value.",
                    "error_codes": [7000215],
                },
                401,
            )
        scope = str(form.get("scope") or "")
        if scope not in (MANAGEMENT_SCOPE, ML_SCOPE):
            return _json(
                {
                    "error": "invalid_scope",
                    "error_description": f"AADSTS70011: The provided value for scope {scope} is not valid.",
                },
                400,
            )
        value = secrets.token_urlsafe(32)
        st.tokens[value] = (scope, time.time() + st.token_seconds)
        st.calls[f"token:{scope}"] += 1
        return _json(
            {
                "token_type": "Bearer",
                "expires_in": st.token_seconds,
                "ext_expires_in": st.token_seconds,
                "access_token": value,
            }
        )

    # -- Resource Manager --------------------------------------------------------------------
    def page(request: Request, items: list[dict[str, Any]], api: str) -> Response:
        start = int(request.query_params.get("$skiptoken") or 0)
        chunk = items[start : start + st.page_size]
        out: dict[str, Any] = {"value": chunk}
        if start + st.page_size < len(items):
            query = urlencode({"api-version": api, "$skiptoken": start + st.page_size})
            out["nextLink"] = f"{base(request)}{request.url.path}?{query}"
        return _json(out)

    def studio_resource(request: Request, svc: StudioService, *, full: bool) -> dict[str, Any]:
        rid = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.MachineLearning/webServices/{svc.name}"
        model = models.get(svc.model or "")
        props: dict[str, Any] = {
            "title": svc.name.replace("-", " ").title(),
            "description": f"{svc.model or 'fault'} web service",
            "createdOn": CREATED,
            "modifiedOn": CREATED,
            "provisioningState": "Succeeded",
            "swaggerLocation": f"{base(request)}/studio/workspaces/{STUDIO_WORKSPACE}/services/{svc.service_id}/swagger.json",
            "packageType": "Graph",
            "readOnly": False,
        }
        if full and model is not None:
            features = {
                f: {
                    "type": "Integer" if f in credit.NUMERIC_FEATURES else "String",
                    **({"format": "Int32"} if f in credit.NUMERIC_FEATURES else {}),
                }
                for f in model.features
            }
            scored = {"Scored Labels": {"type": "Number" if model.problem_type == "regression" else "String"}}
            if model.problem_type == "binary":
                scored["Scored Probabilities"] = {"type": "Number", "format": "Double"}
            elif model.problem_type == "multiclass":
                scored.update(
                    {
                        f'Scored Probabilities for Class "{c}"': {"type": "Number", "format": "Double"}
                        for c in model.classes
                    }
                )
            props["input"] = {"type": "object", "properties": {"input1": {"type": "object", "properties": features}}}
            props["output"] = {
                "type": "object",
                "properties": {"output1": {"type": "object", "properties": {**features, **scored}}},
            }
        return {
            "id": rid,
            "name": svc.name,
            "location": "South Central US",
            "type": "Microsoft.MachineLearning/webServices",
            "tags": {},
            "properties": props,
        }

    def workspace_id(ws: str) -> str:
        return f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.MachineLearningServices/workspaces/{ws}"

    def endpoint_resource(request: Request, ep: OnlineEndpoint) -> dict[str, Any]:
        return {
            "id": f"{workspace_id(ep.workspace)}/onlineEndpoints/{ep.name}",
            "name": ep.name,
            "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints",
            "location": "westeurope",
            "identity": {"type": "SystemAssigned"},
            "kind": "Managed",
            "properties": {
                "authMode": ep.auth_mode,
                "description": "",
                "scoringUri": f"{base(request)}/online/{ep.workspace}/{ep.name}/score",
                "swaggerUri": f"{base(request)}/online/{ep.workspace}/{ep.name}/swagger.json",
                "traffic": dict(ep.traffic),
                "provisioningState": "Succeeded",
                "publicNetworkAccess": "Enabled",
            },
            "systemData": {
                "createdAt": "2026-01-05T09:30:00.0000000+00:00",
                "createdBy": "monitor@example.com",
                "createdByType": "User",
            },
        }

    def deployment_resource(ep: OnlineEndpoint, name: str) -> dict[str, Any]:
        model = ep.deployments[name] or "fault"
        return {
            "id": f"{workspace_id(ep.workspace)}/onlineEndpoints/{ep.name}/deployments/{name}",
            "name": name,
            "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments",
            "kind": "Managed",
            "sku": {"name": "Default", "capacity": 1},
            "properties": {
                "endpointComputeType": "Managed",
                "model": f"{workspace_id(ep.workspace)}/models/{model}/versions/3",
                "instanceType": "Standard_DS3_v2",
                "provisioningState": "Succeeded",
            },
            "systemData": {"createdAt": "2026-01-06T10:00:00.0000000+00:00"},
        }

    async def management(request: Request) -> Response:
        token = bearer(request)
        if not token:
            return _arm_error(
                "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.", 401
            )
        problem = aad_ok(token, MANAGEMENT_SCOPE)
        if problem:
            return _arm_error(problem, f"The access token is invalid or has expired ({problem}).", 401)
        api = request.query_params.get("api-version")
        if not api:
            return _arm_error(
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
                400,
            )
        parts = request.url.path.strip("/").split("/")
        st.calls["management"] += 1
        if parts[:2] != ["subscriptions", SUBSCRIPTION]:
            return _arm_error(
                "SubscriptionNotFound",
                f"The subscription '{parts[1] if len(parts) > 1 else ''}' could not be found.",
                404,
            )
        rest = parts[2:]
        if rest == ["providers", "Microsoft.MachineLearning", "webServices"]:
            return page(request, [studio_resource(request, s, full=False) for s in st.studio.values() if s.listed], api)
        if rest == ["providers", "Microsoft.MachineLearningServices", "workspaces"]:
            items = [
                {
                    "id": workspace_id(w),
                    "name": w,
                    "type": "Microsoft.MachineLearningServices/workspaces",
                    "location": "westeurope",
                    "properties": {"friendlyName": w},
                }
                for w in st.workspaces
            ]
            return page(request, items, api)
        if len(rest) >= 6 and rest[0] == "resourceGroups" and rest[1] == RESOURCE_GROUP and rest[2] == "providers":
            ns, kind, tail = rest[3], rest[4], rest[5:]
            if ns == "Microsoft.MachineLearning" and kind == "webServices":
                svc = st.studio.get(tail[0])
                if svc is None or not svc.listed:
                    return _arm_error(
                        "ResourceNotFound",
                        f"The Resource 'Microsoft.MachineLearning/webServices/{tail[0]}' under resource group '{RESOURCE_GROUP}' was not found.",
                        404,
                    )
                if tail[1:] == [] and request.method == "GET":
                    return _json(studio_resource(request, svc, full=True))
                if tail[1:] == ["listKeys"] and request.method == "GET":
                    st.calls["studio:listKeys"] += 1
                    return _json({"primary": svc.key, "secondary": secrets.token_urlsafe(24)})
            if ns == "Microsoft.MachineLearningServices" and kind == "workspaces" and tail and tail[0] in st.workspaces:
                ws, sub = tail[0], tail[1:]
                eps = [e for e in st.endpoints.values() if e.workspace == ws and e.listed]
                if sub == ["onlineEndpoints"] and request.method == "GET":
                    return page(request, [endpoint_resource(request, e) for e in eps], api)
                if len(sub) >= 2 and sub[0] == "onlineEndpoints":
                    ep = next((e for e in eps if e.name == sub[1]), None)
                    if ep is None:
                        return _arm_error("ResourceNotFound", f"Online endpoint {sub[1]} not found.", 404)
                    if sub[2:] == ["deployments"] and request.method == "GET":
                        return page(request, [deployment_resource(ep, d) for d in ep.deployments], api)
                    if sub[2:] == ["listKeys"] and request.method == "POST":
                        st.calls["service:listKeys"] += 1
                        if ep.auth_mode != "Key":
                            return _arm_error("BadRequest", "Keys are only available for key-auth endpoints.", 400)
                        return _json({"primaryKey": ep.key, "secondaryKey": ep.key2})
                    if sub[2:] == ["token"] and request.method == "POST":
                        st.calls["service:token"] += 1
                        if ep.auth_mode != "AMLToken":
                            return _arm_error("BadRequest", "Tokens are only available for AMLToken endpoints.", 400)
                        value, now = secrets.token_urlsafe(40), time.time()
                        st.aml_tokens[value] = (ep.name, now + st.aml_token_seconds)
                        return _json(
                            {
                                "accessToken": value,
                                "expiryTimeUtc": int(now + st.aml_token_seconds),
                                "refreshAfterTimeUtc": int(now + st.aml_token_seconds / 2),
                                "tokenType": "Bearer",
                            }
                        )
        return _arm_error("ResourceNotFound", f"No route for {request.method} {request.url.path}", 404)

    # -- Studio scoring ----------------------------------------------------------------------
    def studio_service(service_id: str) -> StudioService | None:
        return next((s for s in st.studio.values() if s.service_id == service_id), None)

    async def studio_execute(request: Request) -> Response:
        svc = studio_service(request.path_params["service_id"])
        if svc is None or request.path_params["workspace"] != STUDIO_WORKSPACE:
            return _json({"error": {"code": "WebServiceNotFound", "message": "Web service not found."}}, 404)
        if request.query_params.get("api-version") != "2.0":
            return _json(
                {
                    "error": {
                        "code": "BadArgument",
                        "message": "Invalid argument provided.",
                        "details": [{"code": "InvalidApiVersion", "message": "api-version 2.0 is required"}],
                    }
                },
                400,
            )
        return await studio_score(request, svc, "input1")

    async def designer_score(request: Request) -> Response:
        svc = st.studio.get(request.path_params["name"])
        if svc is None or svc.fmt != "designer":
            return _json({"error": {"code": "NotFound", "message": "Service not found."}}, 404)
        return await studio_score(request, svc, "WebServiceInput0")

    async def studio_score(request: Request, svc: StudioService, input_name: str) -> Response:
        st.calls[f"score:{svc.name}"] += 1
        if not secrets.compare_digest(bearer(request), svc.key):
            return _json(
                {
                    "error": {
                        "code": "Unauthorized",
                        "message": "Authorization failed. The API key is missing or invalid.",
                    }
                },
                401,
                {"WWW-Authenticate": "Bearer"},
            )
        raw = await request.body()
        record: dict[str, Any] = {
            "service": svc.name,
            "body": raw,
            "internal": request.headers.get("x-scrutiny-internal"),
        }
        st.exchanges.append(record)
        if svc.model is None:
            response = await fault(svc.name.removesuffix("-ws"))
        else:
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                return _json({"error": {"code": "BadArgument", "message": "The request body is not valid JSON."}}, 400)
            response = await asyncio.to_thread(studio_answer, svc, models[svc.model], body, input_name)
        record["status"], record["response_body"] = response.status_code, bytes(response.body)
        return response

    async def swagger(request: Request) -> Response:
        svc = studio_service(request.path_params["service_id"])
        if svc is None:
            return _json({"error": {"code": "WebServiceNotFound", "message": "Web service not found."}}, 404)
        return _json(
            {
                "swagger": "2.0",
                "info": {"title": svc.name, "version": "2.0"},
                "basePath": "/",
                "paths": {"/execute?api-version=2.0&format=swagger": {"post": {"operationId": "execute"}}},
            }
        )

    # -- ML service scoring ------------------------------------------------------------------
    async def online_score(request: Request) -> Response:
        ep = st.endpoints.get(request.path_params["endpoint"])
        if ep is None or ep.workspace != request.path_params["workspace"]:
            return _json({"message": "endpoint not found"}, 404)
        st.calls[f"score:{ep.name}"] += 1
        token = bearer(request)
        if ep.auth_mode == "Key":
            ok = bool(token) and (secrets.compare_digest(token, ep.key) or secrets.compare_digest(token, ep.key2))
        elif ep.auth_mode == "AMLToken":
            found = st.aml_tokens.get(token)
            ok = found is not None and found[0] == ep.name and found[1] > time.time()
        else:
            ok = aad_ok(token, ML_SCOPE) is None
        if not ok:
            return Response("", status_code=401, headers={"WWW-Authenticate": "Bearer"})
        pinned = request.headers.get("azureml-model-deployment")
        if pinned is not None and pinned not in ep.deployments:
            return _json({"message": f"deployment {pinned} not found in endpoint {ep.name}"}, 404)
        chosen = pinned or max(ep.traffic, key=lambda d: ep.traffic[d])
        raw = await request.body()
        record: dict[str, Any] = {
            "endpoint": ep.name,
            "deployment": chosen,
            "body": raw,
            "internal": request.headers.get("x-scrutiny-internal"),
        }
        st.exchanges.append(record)
        model_name = ep.deployments[chosen]
        if model_name is None:
            response = await fault(ep.name)
        else:
            try:
                df = service_rows(models[model_name], orjson.loads(raw))
                out = await asyncio.to_thread(service_answer, ep, models[model_name], df)
                response = Response(out, media_type="application/json", headers={"azureml-model-deployment": chosen})
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                response = _json(
                    {"message": f"An unexpected error occurred in scoring script: {exc}"},
                    500 if isinstance(exc, KeyError) else 400,
                )
        record["status"], record["response_body"] = response.status_code, bytes(response.body)
        return response

    async def fault(name: str) -> Response:
        if name == "fault-500":
            return _json({"error": {"code": "InternalServerError", "message": "The model crashed."}}, 500)
        if name == "fault-garbage":
            return Response("<html><body>upstream connect error</body></html>", media_type="text/html")
        if name == "fault-shape":
            return _json({"Answer": "yes"})
        await asyncio.sleep(st.slow_seconds)
        return _json({"Results": {}})

    app = Starlette(
        routes=[
            Route("/{tenant}/oauth2/v2.0/token", token, methods=["POST"]),
            Route("/subscriptions/{path:path}", management, methods=["GET", "POST"]),
            Route("/studio/workspaces/{workspace}/services/{service_id}/execute", studio_execute, methods=["POST"]),
            Route("/studio/workspaces/{workspace}/services/{service_id}/swagger.json", swagger, methods=["GET"]),
            Route("/designer/{name}/score", designer_score, methods=["POST"]),
            Route("/online/{workspace}/{endpoint}/score", online_score, methods=["POST"]),
        ]
    )
    app.state.azure = st
    return app


def principal(base_url: str, **overrides: Any) -> dict[str, Any]:
    """Binding credentials for this server: the service principal and the two test hooks."""
    return {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "tenant": TENANT,
        "subscription_id": SUBSCRIPTION,
        "authority_url": base_url,
        "management_url": base_url,
        **overrides,
    }


def execute_url(base_url: str, svc: StudioService) -> str:
    return f"{base_url}/studio/workspaces/{STUDIO_WORKSPACE}/services/{svc.service_id}/execute?api-version=2.0&format=swagger"


def classic_url(base_url: str, svc: StudioService) -> str:
    return f"{base_url}/studio/workspaces/{STUDIO_WORKSPACE}/services/{svc.service_id}/execute?api-version=2.0&details=true"


def designer_url(base_url: str, svc: StudioService) -> str:
    return f"{base_url}/designer/{svc.name}/score"


def legacy_url(base_url: str, ep: OnlineEndpoint) -> str:
    return f"{base_url}/online/{ep.workspace}/{ep.name}/score"


__all__ = [
    "CLIENT_ID",
    "CLIENT_SECRET",
    "SUBSCRIPTION",
    "TENANT",
    "AzureState",
    "classic_url",
    "create_azure_app",
    "default_state",
    "designer_url",
    "execute_url",
    "legacy_url",
    "principal",
]
