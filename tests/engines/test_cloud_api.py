"""SageMaker, Azure ML Studio and Azure ML Service end to end, through the REST API.

For each engine: bind it (POST /v1/bindings), discover (GET .../deployments) or register a
deployment by hand, subscribe (POST /v1/subscriptions), score (POST .../score), then log the
traffic the engine saw the way the proxy does (its native request and response, decoded by the
adapter) and read the stored payload rows back: prediction, probability vector and
prediction_probability must equal the same pipeline's in-process answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from scrutiny._server import BackgroundServer
from scrutiny.core.scoring_format import ScoringRequest
from scrutiny.engines import NativeRequest, NativeResponse
from scrutiny.service import Service
from tests.servers.azure import AzureState, classic_url, create_azure_app, principal
from tests.servers.azure import default_state as azure_state
from tests.servers.models import ServedModel, served_models
from tests.servers.sagemaker import ACCESS_KEY, SECRET_KEY, SageMakerState, create_sagemaker_app
from tests.servers.sagemaker import default_state as sagemaker_state
from tests.support.engines import TOLERANCE, expected, input_schema, rows_for


@pytest.fixture(scope="module")
def sagemaker() -> Iterator[tuple[str, SageMakerState]]:
    state = sagemaker_state()
    with BackgroundServer(create_sagemaker_app(state)) as srv:
        yield srv.url, state


@pytest.fixture(scope="module")
def azure() -> Iterator[tuple[str, AzureState]]:
    state = azure_state()
    with BackgroundServer(create_azure_app(state)) as srv:
        yield srv.url, state


def bind(client: httpx.Client, engine_type: str, credentials: dict[str, Any]) -> str:
    r = client.post(
        "/v1/bindings", json={"name": f"{engine_type} test", "engine_type": engine_type, "credentials": credentials}
    )
    assert r.status_code == 201, r.text
    shown = r.text
    for key in ("secret_access_key", "client_secret"):
        if key in credentials:
            assert credentials[key] not in shown  # write-only
    return str(r.json()["id"])


def subscribe(client: httpx.Client, binding_id: str, model: ServedModel, **where: Any) -> dict[str, Any]:
    props: dict[str, Any] = {
        "problem_type": model.problem_type,
        "input_data_schema": input_schema(model),
        "label_column": model.label_column,
    }
    if model.problem_type != "regression":
        props["labels"] = model.classes
    r = client.post("/v1/subscriptions", json={"binding_id": binding_id, "asset_properties": props, **where})
    assert r.status_code == 201, r.text
    return dict(r.json())


def score_and_check(client: httpx.Client, sub_id: str, model: ServedModel, request: ScoringRequest) -> None:
    r = client.post(f"/v1/subscriptions/{sub_id}/score", json={"fields": request.fields, "values": request.values})
    assert r.status_code == 200, r.text
    out = r.json()
    pred, proba = expected(model, request)
    column = {f: [row[i] for row in out["values"]] for i, f in enumerate(out["fields"])}
    if proba is None:
        np.testing.assert_allclose(column["prediction"], pred, rtol=0, atol=TOLERANCE)
        return
    assert column["prediction"] == pred.tolist()
    np.testing.assert_allclose(column["probability"], proba, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(column["prediction_probability"], proba.max(axis=1), rtol=0, atol=TOLERANCE)


def log_engine_traffic(
    client: httpx.Client, service: Service, sub_id: str, exchange: tuple[NativeRequest, NativeResponse], scoring_id: str
) -> int:
    """What the proxy does with a forwarded call: decode both native bodies, log them as payload."""
    sub = service.subscriptions.get(sub_id)
    engine = service.bindings.engine(sub.binding_id)
    deployment = service.subscriptions.deployment(sub)
    ctx = service.subscriptions.context(sub)
    native_request, native_response = exchange
    request = engine.decode_request(deployment, native_request, ctx)
    response = engine.decode_response(deployment, native_response, ctx, len(request))
    record = {
        "scoring_id": scoring_id,
        "request": request.to_dict(),
        "response": response.to_dict(),
        "response_time": 12,
    }
    r = client.post(f"/v1/subscriptions/{sub_id}/payloads", json=[record])
    assert r.status_code == 200, r.text
    assert r.json()["stored"] == len(request)
    return len(request)


def check_stored_rows(
    client: httpx.Client, sub_id: str, model: ServedModel, request: ScoringRequest, scoring_id: str
) -> None:
    page = client.get(f"/v1/subscriptions/{sub_id}/payloads", params={"limit": 1000}).json()
    rows = sorted(
        (r for r in page["rows"] if r["scoring_id"].startswith(scoring_id + "-")),
        key=lambda r: int(r["scoring_id"].rsplit("-", 1)[1]),
    )
    assert len(rows) == len(request)
    for i, f in enumerate(request.fields):  # features stored with their schema types
        assert [r[f] for r in rows] == [v[i] for v in request.values], f
    pred, proba = expected(model, request)
    if proba is None:
        np.testing.assert_allclose([r["prediction"] for r in rows], pred, rtol=0, atol=TOLERANCE)
        assert "probability" not in rows[0]
        return
    stored = [orjson.loads(r["probability"]) if isinstance(r["probability"], str) else r["probability"] for r in rows]
    assert [r["prediction"] for r in rows] == pred.tolist()
    np.testing.assert_allclose(stored, proba, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose([r["prediction_probability"] for r in rows], proba.max(axis=1), rtol=0, atol=TOLERANCE)


# -- Amazon SageMaker --------------------------------------------------------------------------


def test_sagemaker_end_to_end(client: httpx.Client, service: Service, sagemaker: tuple[str, SageMakerState]) -> None:
    url, state = sagemaker
    creds = {
        "access_key_id": ACCESS_KEY,
        "secret_access_key": SECRET_KEY,
        "region": "us-east-1",
        "endpoint_url": url,
        "runtime_endpoint_url": url,
    }
    bid = bind(client, "amazon_sagemaker", creds)  # the OpenScale name is accepted
    deployments = {d["id"]: d for d in client.get(f"/v1/bindings/{bid}/deployments").json()["deployments"]}
    assert deployments["credit-risk"]["deployment_rn"].endswith(":endpoint/credit-risk")
    assert deployments["credit-risk"]["asset"]["url"].startswith("s3://")

    risk = served_models()["credit-risk"]
    sub = subscribe(
        client, bid, risk, deployment_id="credit-risk", deployment={"options": {"content_type": "text/csv"}}
    )
    assert sub["deployment"]["options"]["content_type"] == "text/csv"
    assert sub["asset"]["asset_rn"].endswith(":model/credit-risk-model")
    request = rows_for(risk, 25, start=40)
    score_and_check(client, sub["id"], risk, request)
    call = state.invocations[-1]
    assert call["content_type"] == "text/csv" and call["custom_attributes"] == "scrutiny-internal=1"
    exchange = (
        NativeRequest(call["body"], call["content_type"]),
        NativeResponse(200, call["response_body"], call["response_content_type"]),
    )
    log_engine_traffic(client, service, sub["id"], exchange, "sm-1")
    check_stored_rows(client, sub["id"], risk, request, "sm-1")

    amount = served_models()["credit-amount"]
    sub2 = subscribe(client, bid, amount, deployment_id="credit-amount")
    request2 = rows_for(amount, 10)
    score_and_check(client, sub2["id"], amount, request2)
    call = state.invocations[-1]
    log_engine_traffic(
        client,
        service,
        sub2["id"],
        (
            NativeRequest(call["body"], call["content_type"]),
            NativeResponse(200, call["response_body"], call["response_content_type"]),
        ),
        "sm-2",
    )
    check_stored_rows(client, sub2["id"], amount, request2, "sm-2")


def test_sagemaker_errors_reach_the_api_naming_engine_and_deployment(
    client: httpx.Client, sagemaker: tuple[str, SageMakerState]
) -> None:
    url, _ = sagemaker
    bid = bind(
        client,
        "sagemaker",
        {
            "access_key_id": ACCESS_KEY,
            "secret_access_key": SECRET_KEY,
            "region": "us-east-1",
            "endpoint_url": url,
            "runtime_endpoint_url": url,
        },
    )
    risk = served_models()["credit-risk"]
    sub = subscribe(client, bid, risk, deployment_id="fault-model-error")
    request = rows_for(risk, 2)
    r = client.post(f"/v1/subscriptions/{sub['id']}/score", json={"fields": request.fields, "values": request.values})
    assert r.status_code == 502
    err = r.json()["error"]
    assert err["code"] == "engine_server_error" and err["engine_code"] == "ModelError"
    assert "(sagemaker)" in err["message"] and "deployment 'fault-model-error'" in err["message"]
    assert SECRET_KEY not in r.text


# -- Azure ML Studio ---------------------------------------------------------------------------


def test_azure_studio_end_to_end(client: httpx.Client, service: Service, azure: tuple[str, AzureState]) -> None:
    url, state = azure
    bid = bind(client, "azure_ml_studio", principal(url))
    deployments = {d["id"]: d for d in client.get(f"/v1/bindings/{bid}/deployments").json()["deployments"]}
    assert deployments["credit-risk-ws"]["scoring_url"].endswith("/execute?api-version=2.0&format=swagger")

    risk = served_models()["credit-risk"]
    sub = subscribe(client, bid, risk, deployment_id="credit-risk-ws")
    assert state.studio["credit-risk-ws"].key not in client.get(f"/v1/subscriptions/{sub['id']}").text  # sealed at rest
    request = rows_for(risk, 20, start=60)
    score_and_check(client, sub["id"], risk, request)
    call = state.exchanges[-1]
    log_engine_traffic(
        client, service, sub["id"], (NativeRequest(call["body"]), NativeResponse(200, call["response_body"])), "st-1"
    )
    check_stored_rows(client, sub["id"], risk, request, "st-1")

    # A classic multiclass service, registered by hand as its scoring URL and key.
    purpose = served_models()["loan-purpose"]
    svc = state.studio["loan-purpose-classic"]
    manual = {
        "name": "loan purpose (classic)",
        "scoring_url": classic_url(url, svc),
        "credentials": {"token": svc.key},
        "options": {"format": "classic"},
    }
    sub2 = subscribe(client, bid, purpose, deployment=manual)
    assert svc.key not in client.get(f"/v1/subscriptions/{sub2['id']}").text
    request2 = rows_for(purpose, 15)
    score_and_check(client, sub2["id"], purpose, request2)
    call = state.exchanges[-1]
    log_engine_traffic(
        client, service, sub2["id"], (NativeRequest(call["body"]), NativeResponse(200, call["response_body"])), "st-2"
    )
    check_stored_rows(client, sub2["id"], purpose, request2, "st-2")


# -- Azure ML Service --------------------------------------------------------------------------


def test_azure_service_end_to_end(client: httpx.Client, service: Service, azure: tuple[str, AzureState]) -> None:
    url, state = azure
    bid = bind(client, "azure_machine_learning_service", principal(url))
    deployments = {d["id"]: d for d in client.get(f"/v1/bindings/{bid}/deployments").json()["deployments"]}
    assert {"credit-risk-ep", "credit-risk-ep/green", "loan-purpose-ep"} <= set(deployments)

    risk = served_models()["credit-risk"]
    sub = subscribe(client, bid, risk, deployment_id="credit-risk-ep/green")
    request = rows_for(risk, 20, start=80)
    score_and_check(client, sub["id"], risk, request)
    call = state.exchanges[-1]
    assert call["deployment"] == "green"
    log_engine_traffic(
        client, service, sub["id"], (NativeRequest(call["body"]), NativeResponse(200, call["response_body"])), "sv-1"
    )
    check_stored_rows(client, sub["id"], risk, request, "sv-1")

    # A token-auth endpoint, sent Azure's default {"data": [[...]]} body as the subscription asks.
    purpose = served_models()["loan-purpose"]
    sub2 = subscribe(
        client, bid, purpose, deployment_id="loan-purpose-ep", deployment={"options": {"request_format": "data"}}
    )
    request2 = rows_for(purpose, 15)
    score_and_check(client, sub2["id"], purpose, request2)
    call = state.exchanges[-1]
    assert "data" in orjson.loads(call["body"])
    log_engine_traffic(
        client, service, sub2["id"], (NativeRequest(call["body"]), NativeResponse(200, call["response_body"])), "sv-2"
    )
    check_stored_rows(client, sub2["id"], purpose, request2, "sv-2")


# -- the SDK calls of docs/engines.md ----------------------------------------------------------


def test_the_documented_sdk_calls(
    api: tuple[BackgroundServer, str], sagemaker: tuple[str, SageMakerState], azure: tuple[str, AzureState]
) -> None:
    import scrutiny

    srv, key = api
    sm_url, _ = sagemaker
    az_url, az = azure
    risk, purpose = served_models()["credit-risk"], served_models()["loan-purpose"]
    with scrutiny.Client(srv.url, api_key=key) as client:
        aws = client.bindings.create(
            name="aws production",
            engine_type="sagemaker",
            credentials={
                "access_key_id": ACCESS_KEY,
                "secret_access_key": SECRET_KEY,
                "region": "us-east-1",
                "endpoint_url": sm_url,
                "runtime_endpoint_url": sm_url,
            },
        )
        assert "credit-risk" in {d["id"] for d in aws.deployments()}
        sub = client.subscriptions.create(
            binding_id=aws.id,
            deployment_id="credit-risk",
            deployment={"options": {"content_type": "text/csv", "accept": "application/json"}},
            asset_properties={
                "problem_type": "binary",
                "labels": risk.classes,
                "label_column": "Risk",
                "feature_fields": risk.features,
            },
        )
        request = rows_for(risk, 5)
        out = sub.score(request.fields, request.values)
        assert [r[0] for r in out["values"]] == expected(risk, request)[0].tolist()

        studio = client.bindings.create(
            name="azure studio", engine_type="azure_ml_studio", credentials=principal(az_url)
        )
        svc = az.studio["loan-purpose-classic"]
        classic = client.subscriptions.create(
            binding_id=studio.id,
            deployment={
                "name": "loan purpose (classic)",
                "scoring_url": classic_url(az_url, svc),
                "credentials": {"token": svc.key},
                "options": {"format": "classic"},
            },
            asset_properties={
                "problem_type": "multiclass",
                "labels": purpose.classes,
                "feature_fields": purpose.features,
            },
        )
        request = rows_for(purpose, 5)
        out = classic.score(request.fields, request.values)
        assert [r[0] for r in out["values"]] == expected(purpose, request)[0].tolist()

        ml = client.bindings.create(name="azure ml", engine_type="azure_ml_service", credentials=principal(az_url))
        pinned = client.subscriptions.create(
            binding_id=ml.id,
            deployment_id="credit-risk-ep/green",
            deployment={"options": {"request_format": "input"}},
            asset_properties={
                "problem_type": "binary",
                "labels": risk.classes,
                "label_column": "Risk",
                "feature_fields": risk.features,
            },
        )
        request = rows_for(risk, 5)
        out = pinned.score(request.fields, request.values)
        assert [r[0] for r in out["values"]] == expected(risk, request)[0].tolist()
        assert az.exchanges[-1]["deployment"] == "green"
