"""Contract fixtures for Azure: the documented request/response pairs, checked on both sides.

The adapters must produce the documented requests and read the documented responses; the fake
server must answer the documented requests in the documented shape (every documented field, of
the documented type), so tests that run against it mean something about the real services.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from scrutiny._server import BackgroundServer
from scrutiny.core.outputs import normalize_rows
from scrutiny.core.scoring_format import ScoringRequest
from scrutiny.engines import BindingConfig, Deployment, ModelContext, NativeResponse
from scrutiny.engines.azure.service import AzureServiceEngine
from scrutiny.engines.azure.studio import AzureStudioEngine
from tests.servers.azure import (
    CLIENT_ID,
    CLIENT_SECRET,
    ML_SCOPE,
    SUBSCRIPTION,
    TENANT,
    AzureState,
    classic_url,
    create_azure_app,
    default_state,
    designer_url,
    execute_url,
    legacy_url,
    principal,
)
from tests.servers.models import served_models
from tests.support.contract import differences, load
from tests.support.engines import rows_for


@pytest.fixture(scope="module")
def az() -> Iterator[tuple[str, AzureState]]:
    state = default_state()
    with BackgroundServer(create_azure_app(state)) as srv:
        yield srv.url, state


def aad_token(url: str, scope: str = "https://management.azure.com/.default") -> str:
    r = httpx.post(
        f"{url}/{TENANT}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "scope": scope,
        },
    )
    r.raise_for_status()
    return str(r.json()["access_token"])


def arm(url: str, method: str, path: str, api: str | None, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, url + path, params={"api-version": api} if api else None, headers=headers)


# -- Azure AD and Resource Manager -------------------------------------------------------------


def test_token_endpoint(az: tuple[str, AzureState]) -> None:
    url, _ = az
    doc = load("azure", "token.json")
    form = {**doc["request"]["form"], "client_secret": CLIENT_SECRET}
    r = httpx.post(f"{url}/{TENANT}/oauth2/v2.0/token", data=form)
    assert r.status_code == 200 and differences(r.json(), doc["response"]) == []
    wrong = httpx.post(f"{url}/{TENANT}/oauth2/v2.0/token", data={**form, "client_secret": "nope"})
    assert wrong.status_code == doc["errors"]["wrong_secret"]["status"]
    assert differences(wrong.json(), doc["errors"]["wrong_secret"]["body"]) == []
    assert wrong.json()["error_description"].startswith("AADSTS7000215")
    tenant = httpx.post(f"{url}/nope/oauth2/v2.0/token", data=form)
    assert tenant.status_code == 400 and differences(tenant.json(), doc["errors"]["unknown_tenant"]["body"]) == []


def test_studio_management_routes(az: tuple[str, AzureState]) -> None:
    url, _ = az
    doc = load("azure", "studio_management.json")
    token = aad_token(url)
    listing = arm(
        url,
        "GET",
        f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.MachineLearning/webServices",
        "2017-01-01",
        token,
    )
    assert differences(listing.json(), doc["list"]["response"]) == []
    rid = listing.json()["value"][0]["id"]
    assert differences(arm(url, "GET", rid, "2017-01-01", token).json(), doc["get"]["response"]) == []
    assert (
        differences(arm(url, "GET", f"{rid}/listKeys", "2017-01-01", token).json(), doc["listKeys"]["response"]) == []
    )
    following = httpx.get(listing.json()["nextLink"], headers={"Authorization": f"Bearer {token}"})
    assert following.status_code == 200 and following.json()["value"][0]["id"] != rid
    missing = arm(url, "GET", rid, None, token)
    assert missing.status_code == 400
    assert missing.json() == doc["errors"]["missing_api_version"]["body"]
    anonymous = arm(url, "GET", rid, "2017-01-01", None)
    assert anonymous.status_code == 401 and differences(anonymous.json(), doc["errors"]["no_token"]["body"]) == []


def test_service_management_routes(az: tuple[str, AzureState]) -> None:
    url, _ = az
    doc = load("azure", "service_management.json")
    token = aad_token(url)
    api = "2023-10-01"
    ws = arm(
        url, "GET", f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.MachineLearningServices/workspaces", api, token
    )
    assert differences(ws.json(), doc["workspaces"]["response"]) == []
    eps = arm(url, "GET", ws.json()["value"][0]["id"] + "/onlineEndpoints", api, token).json()
    assert differences(eps, doc["onlineEndpoints"]["response"]) == []
    key_ep = next(e for e in eps["value"] if e["properties"]["authMode"] == "Key")
    token_ep = next(e for e in eps["value"] if e["properties"]["authMode"] == "AMLToken")
    assert (
        differences(arm(url, "GET", key_ep["id"] + "/deployments", api, token).json(), doc["deployments"]["response"])
        == []
    )
    assert (
        differences(arm(url, "POST", key_ep["id"] + "/listKeys", api, token).json(), doc["listKeys"]["response"]) == []
    )
    assert differences(arm(url, "POST", token_ep["id"] + "/token", api, token).json(), doc["token"]["response"]) == []
    assert arm(url, "POST", key_ep["id"] + "/listKeys", None, token).status_code == 400


# -- scoring: adapters against the documented bodies --------------------------------------------


def _engine(cls: type, url: str) -> Any:
    return cls(BindingConfig("b-doc", "azure-doc", cls.engine_type, {}, principal(url)))


def _check_decoded(engine: Any, case: dict[str, Any], body: bytes) -> None:
    classification = case["problem_type"] != "regression"
    ctx = ModelContext(
        feature_fields=case["common"]["fields"],
        labels=case["labels"],
        problem_type=case["problem_type"],
        probability_fields=["probability"] if classification else [],
    )
    d = Deployment(id="doc", name="doc", scoring_url="http://doc", options=case["options"])
    out = engine.decode_response(d, NativeResponse(200, body), ctx, len(case["common"]["values"]))
    assert set(out.fields) <= {"prediction", "probability"}, out.fields  # output columns only
    norm = normalize_rows(
        out.fields,
        out.values,
        classification=classification,
        labels=case["labels"],
        prediction_field="prediction",
        probability_fields=ctx.probability_fields,
    )
    assert norm.prediction.tolist() == case["expected"]["prediction"]
    if "probability" in case["expected"]:
        np.testing.assert_allclose(norm.probability, case["expected"]["probability"], rtol=0, atol=1e-12)  # type: ignore[arg-type]
    else:
        assert norm.probability is None
    request = engine.encode_request(d, ScoringRequest(case["common"]["fields"], case["common"]["values"]), ctx)
    assert orjson.loads(request.body) == case["request"]
    logged = engine.decode_request(d, request, ctx)
    assert logged.fields == case["common"]["fields"] and logged.values == case["common"]["values"]


@pytest.mark.parametrize("case", load("azure", "studio_scoring.json"), ids=lambda c: c["name"])
def test_studio_adapter_speaks_the_documented_formats(case: dict[str, Any]) -> None:
    _check_decoded(_engine(AzureStudioEngine, "http://unused"), case, orjson.dumps(case["response"]))


@pytest.mark.parametrize("case", load("azure", "service_scoring.json"), ids=lambda c: c["name"])
def test_service_adapter_speaks_the_documented_formats(case: dict[str, Any]) -> None:
    _check_decoded(_engine(AzureServiceEngine, "http://unused"), case, orjson.dumps(case["response"]))


# -- scoring: the fake against the documented bodies --------------------------------------------

_STUDIO_SERVICE = {"binary": "credit-risk", "multiclass": "loan-purpose", "regression": "credit-amount"}


@pytest.mark.parametrize("case", load("azure", "studio_scoring.json"), ids=lambda c: c["name"])
def test_fake_studio_answers_in_the_documented_shape(az: tuple[str, AzureState], case: dict[str, Any]) -> None:
    url, state = az
    fmt = case["options"]["format"]
    model = served_models()[_STUDIO_SERVICE[case["problem_type"]]]
    svc = state.studio[model.name + {"new": "-ws", "classic": "-classic", "designer": "-designer"}[fmt]]
    target = {"new": execute_url, "classic": classic_url, "designer": designer_url}[fmt](url, svc)
    request = rows_for(model, 3)
    input_name = next(iter(case["request"]["Inputs"]))
    if fmt == "classic":
        table: Any = {"ColumnNames": request.fields, "Values": [[str(v) for v in r] for r in request.values]}
    else:
        table = [dict(zip(request.fields, r, strict=True)) for r in request.values]
    headers = {"Authorization": f"Bearer {svc.key}"}
    r = httpx.post(target, json={"Inputs": {input_name: table}, "GlobalParameters": {}}, headers=headers)
    assert r.status_code == 200, r.text
    assert differences(r.json(), case["response"]) == []
    errors = load("azure", "errors.json")
    missing = httpx.post(target, json={"Inputs": {"other": table}, "GlobalParameters": {}}, headers=headers)
    assert missing.status_code == 400
    if fmt != "designer":
        assert missing.json() == errors["studio_missing_input"]["body"]
    wrong = httpx.post(target, json={"Inputs": {input_name: table}}, headers={"Authorization": "Bearer wrong"})
    assert wrong.status_code == 401 and wrong.json() == errors["studio_wrong_key"]["body"]
    assert httpx.post(target, json={"Inputs": {input_name: table}}).status_code == 401


def test_fake_service_answers_in_the_documented_shapes(az: tuple[str, AzureState]) -> None:
    url, state = az
    cases = {c["name"]: c for c in load("azure", "service_scoring.json")}
    risk = served_models()["credit-risk"]
    rows = rows_for(risk, 3)
    records = [dict(zip(rows.fields, r, strict=True)) for r in rows.values]
    ep = state.endpoints["credit-risk-ep"]
    r = httpx.post(legacy_url(url, ep), json={"input": records}, headers={"Authorization": f"Bearer {ep.key}"})
    assert isinstance(r.json(), str), "the scoring script's json.dumps is encoded once more"
    documented = orjson.loads(cases["OpenScale contract: input records, double-encoded JSON answer"]["response"])
    assert differences(orjson.loads(r.json()), documented) == []
    assert r.headers["azureml-model-deployment"] == "blue"
    proba_ep = state.endpoints["credit-risk-proba-ep"]
    r = httpx.post(
        legacy_url(url, proba_ep), json={"data": rows.values}, headers={"Authorization": f"Bearer {proba_ep.key}"}
    )
    assert differences(r.json(), cases["Azure default: data rows, predictions list"]["response"]) == []
    amount = served_models()["credit-amount"]
    split = rows_for(amount, 3)
    body = {"input_data": {"columns": split.fields, "index": [0, 1, 2], "data": split.values}}
    aad = aad_token(url, ML_SCOPE)
    r = httpx.post(
        legacy_url(url, state.endpoints["credit-amount-ep"]), json=body, headers={"Authorization": f"Bearer {aad}"}
    )
    assert differences(r.json(), cases["MLflow model without a scoring script: input_data split"]["response"]) == []
    wrong = httpx.post(legacy_url(url, ep), json={"input": records}, headers={"Authorization": "Bearer wrong"})
    assert wrong.status_code == load("azure", "errors.json")["service_wrong_key"]["status"]
    management_token = aad_token(url)  # a token of another audience is refused too
    assert (
        httpx.post(
            legacy_url(url, state.endpoints["credit-amount-ep"]),
            json=body,
            headers={"Authorization": f"Bearer {management_token}"},
        ).status_code
        == 401
    )
