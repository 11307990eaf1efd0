"""Forwarding fidelity through the proxy for the cloud engines' native formats: SageMaker (CSV
and JSON through boto3, SigV4-signed), Azure ML Service and Azure ML Studio (JSON, AAD / key
auth), against the faithful local servers of their adapter tests. The application sends what
it would send to the engine and gets exactly what the engine answered; the stored rows equal
the same pipeline's in-process predictions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from scrutiny._server import BackgroundServer
from scrutiny.core.scoring_format import ScoringRequest
from scrutiny.service import Service
from tests.servers.azure import AzureState, create_azure_app, principal
from tests.servers.azure import default_state as azure_state
from tests.servers.models import ServedModel, served_models
from tests.servers.sagemaker import ACCESS_KEY, SECRET_KEY, SageMakerState, create_sagemaker_app
from tests.servers.sagemaker import default_state as sagemaker_state
from tests.support.engines import TOLERANCE, expected, input_schema, rows_for
from tests.support.proxy import Proxied, payload_rows, serve


@pytest.fixture
def proxied(service: Service) -> Iterator[Proxied]:
    yield from serve(service)


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


def subscribe(svc: Service, engine_type: str, credentials: dict[str, Any], model: ServedModel, **where: Any) -> Any:
    binding, _ = svc.bindings.create(name=f"{engine_type} test", engine_type=engine_type, credentials=credentials)
    props: dict[str, Any] = {
        "problem_type": model.problem_type,
        "input_data_schema": input_schema(model),
        "label_column": model.label_column,
    }
    if model.problem_type != "regression":
        props["labels"] = model.classes
    return svc.subscriptions.create(binding_id=binding.id, asset_properties=props, **where)


def native_body(svc: Service, sub: Any, request: ScoringRequest) -> tuple[bytes, str, dict[str, str]]:
    """What an application of this engine sends: built here with the adapter's own encoder."""
    engine = svc.bindings.engine(sub.binding_id)
    native = engine.encode_request(svc.subscriptions.deployment(sub), request, svc.subscriptions.context(sub))
    return native.body, native.content_type, dict(native.headers)


def check_rows(svc: Service, sub_id: str, scoring_id: str, model: ServedModel, request: ScoringRequest) -> None:
    rows = sorted(
        (r for r in payload_rows(svc, sub_id) if r["scoring_id"].startswith(scoring_id + "-")),
        key=lambda r: int(r["scoring_id"].rsplit("-", 1)[1]),
    )
    assert len(rows) == len(request)
    for i, f in enumerate(request.fields):
        assert [r[f] for r in rows] == [v[i] for v in request.values], f
    pred, proba = expected(model, request)
    if proba is None:
        np.testing.assert_allclose([r["prediction"] for r in rows], pred, rtol=0, atol=TOLERANCE)
        return
    assert [r["prediction"] for r in rows] == pred.tolist()
    np.testing.assert_allclose([r["probability"] for r in rows], proba, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose([r["prediction_probability"] for r in rows], proba.max(axis=1), rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("content_type", ["text/csv", "application/json"])
def test_sagemaker_through_the_proxy(
    proxied: Proxied, sagemaker: tuple[str, SageMakerState], content_type: str
) -> None:
    url, state = sagemaker
    creds = {
        "access_key_id": ACCESS_KEY,
        "secret_access_key": SECRET_KEY,
        "region": "us-east-1",
        "endpoint_url": url,
        "runtime_endpoint_url": url,
    }
    risk = served_models()["credit-risk"]
    sub = subscribe(
        proxied.svc,
        "sagemaker",
        creds,
        risk,
        deployment_id="credit-risk",
        deployment={"options": {"content_type": content_type}},
    )
    request = rows_for(risk, 6, start=30)
    body, ctype, headers = native_body(proxied.svc, sub, request)
    assert ctype == content_type
    with proxied.client() as c:  # the application holds no AWS keys: the binding signs
        r = c.post(f"/proxy/{sub.id}", content=body, headers={**headers, "Content-Type": ctype})
    call = state.invocations[-1]
    assert r.status_code == 200, r.text
    assert call["body"] == body and call["content_type"] == content_type  # forwarded byte for byte
    assert call["custom_attributes"] is None  # application traffic, not marked internal
    assert r.content == call["response_body"]
    assert r.headers["content-type"] == call["response_content_type"]
    assert r.headers["x-amzn-invoked-production-variant"] == "AllTraffic"
    proxied.flush()
    check_rows(proxied.svc, sub.id, r.headers["x-scrutiny-scoring-id"], risk, request)

    # a SageMaker error reaches the application as SageMaker sent it, and is not logged
    fault = subscribe(proxied.svc, "sagemaker", creds, risk, deployment_id="fault-model-error")
    with proxied.client() as c:
        e = c.post(f"/proxy/{fault.id}", content=body, headers={"Content-Type": ctype})
    assert e.status_code == state.invocations[-1]["status"] >= 400
    assert e.headers["x-amzn-errortype"].startswith("ModelError")
    assert "x-scrutiny-scoring-id" not in e.headers
    proxied.flush()
    assert payload_rows(proxied.svc, fault.id) == []


def test_azure_ml_service_through_the_proxy(proxied: Proxied, azure: tuple[str, AzureState]) -> None:
    url, state = azure
    risk = served_models()["credit-risk"]
    sub = subscribe(proxied.svc, "azure_ml_service", principal(url), risk, deployment_id="credit-risk-ep/green")
    request = rows_for(risk, 5, start=90)
    body, ctype, headers = native_body(proxied.svc, sub, request)
    with proxied.client() as c:  # no Azure token in the application: the binding's principal is used
        r = c.post(f"/proxy/{sub.id}", content=body, headers={**headers, "Content-Type": ctype})
    call = state.exchanges[-1]
    assert r.status_code == 200, r.text
    assert call["body"] == body and call["deployment"] == "green" and call["internal"] is None
    assert r.content == call["response_body"]
    assert r.headers["azureml-model-deployment"] == "green"
    proxied.flush()
    check_rows(proxied.svc, sub.id, r.headers["x-scrutiny-scoring-id"], risk, request)


def test_azure_ml_studio_through_the_proxy(proxied: Proxied, azure: tuple[str, AzureState]) -> None:
    url, state = azure
    purpose = served_models()["loan-purpose"]
    sub = subscribe(proxied.svc, "azure_ml_studio", principal(url), purpose, deployment_id="loan-purpose-ws")
    request = rows_for(purpose, 4, start=5)
    body, ctype, headers = native_body(proxied.svc, sub, request)
    with proxied.client() as c:
        r = c.post(f"/proxy/{sub.id}", content=body, headers={**headers, "Content-Type": ctype})
    call = state.exchanges[-1]
    assert r.status_code == 200, r.text
    assert call["body"] == body and r.content == call["response_body"]
    proxied.flush()
    check_rows(proxied.svc, sub.id, r.headers["x-scrutiny-scoring-id"], purpose, request)
