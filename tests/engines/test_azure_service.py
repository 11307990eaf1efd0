"""The Azure ML service adapter against a faithful local Azure: workspaces, online endpoints and
their deployments, key / AML-token / AAD-token auth, and scoring scripts that answer in each of
the documented shapes, serving the real German credit models."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from scrutiny._server import BackgroundServer
from scrutiny.engines import BindingConfig, Deployment, ModelContext, NativeRequest, NativeResponse, engine_class
from scrutiny.engines.azure.service import AzureServiceEngine
from scrutiny.engines.errors import (
    DiscoveryUnsupported,
    EngineAuthError,
    EngineBadResponse,
    EngineError,
    EngineResponseShape,
    EngineServerError,
    EngineTimeout,
)
from scrutiny.errors import InvalidInput, NotFound
from tests.servers.azure import CLIENT_SECRET, AzureState, create_azure_app, default_state, legacy_url, principal
from tests.servers.models import served_models
from tests.support.engines import assert_matches_model, context_for, rows_for


@pytest.fixture(scope="module")
def az() -> Iterator[tuple[str, AzureState]]:
    state = default_state()
    with BackgroundServer(create_azure_app(state)) as srv:
        yield srv.url, state


def make_engine(url: str, *, read_timeout: float = 60.0, **overrides: Any) -> AzureServiceEngine:
    creds = principal(url, **overrides)
    return AzureServiceEngine(
        BindingConfig("b-svc", "service-test", "azure_ml_service", {}, creds, read_timeout=read_timeout, retries=2)
    )


@pytest.fixture(scope="module")
def engine(az: tuple[str, AzureState]) -> Iterator[AzureServiceEngine]:
    e = make_engine(az[0])
    yield e
    e.close()


def legacy(url: str, state: AzureState, name: str, **options: Any) -> Deployment:
    """An ACI/AKS web service registered by hand: its scoring URI and key."""
    ep = state.endpoints[name]
    return Deployment(
        id=name, name=name, scoring_url=legacy_url(url, ep), credentials={"token": ep.key}, options=options
    )


def _names(exc: EngineError, deployment: str) -> None:
    text = str(exc)
    assert "'service-test' (azure_ml_service)" in text and f"deployment {deployment!r}" in text
    assert CLIENT_SECRET not in text


def test_registered_under_its_type_and_openscale_alias() -> None:
    assert engine_class("azure_ml_service") is AzureServiceEngine
    assert engine_class("azure_machine_learning_service") is AzureServiceEngine


# -- discovery ---------------------------------------------------------------------------------


def test_discovery_walks_workspaces_endpoints_and_deployments(
    engine: AzureServiceEngine, az: tuple[str, AzureState]
) -> None:
    url, _ = az
    deps = {d.id: d for d in engine.list_deployments()}
    assert set(deps) == {
        "credit-risk-ep",
        "credit-risk-ep/blue",
        "credit-risk-ep/green",
        "loan-purpose-ep",
        "loan-purpose-ep/blue",
        "credit-amount-ep",
        "credit-amount-ep/blue",
        "credit-risk-proba-ep",
        "credit-risk-proba-ep/main",
    }
    ep = deps["credit-risk-ep"]
    assert ep.scoring_url == f"{url}/online/credit-ws/credit-risk-ep/score"
    assert ep.created_at == "2026-01-05T09:30:00.0000000+00:00" and ep.status == "Succeeded"
    assert ep.options["auth_mode"] == "Key" and ep.options["traffic"] == {"blue": 100, "green": 0}
    assert ep.request_headers == {}
    green = deps["credit-risk-ep/green"]
    assert green.request_headers == {"azureml-model-deployment": "green"}
    assert green.asset["asset_id"] == "credit-risk:3" and "0% of traffic" in green.description
    assert deps["loan-purpose-ep"].options["auth_mode"] == "AMLToken"
    assert all(d.credentials is None for d in deps.values())


def test_get_deployment_reads_the_key_of_key_endpoints_only(
    engine: AzureServiceEngine, az: tuple[str, AzureState]
) -> None:
    _, state = az
    assert engine.get_deployment("credit-risk-ep").credentials == {"token": state.endpoints["credit-risk-ep"].key}
    assert engine.get_deployment("loan-purpose-ep").credentials is None  # token auth: short-lived, fetched when scoring
    with pytest.raises(NotFound):
        engine.get_deployment("nope")


def test_without_a_principal_services_are_registered_by_hand() -> None:
    with pytest.raises(DiscoveryUnsupported):
        AzureServiceEngine(BindingConfig("b", "service-test", "azure_ml_service", {}, {})).list_deployments()


# -- scoring -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "model_name"),
    [
        ("credit-risk-ep", "credit-risk"),  # key auth, double-encoded {"output": records}
        ("credit-risk-ep/green", "credit-risk"),  # pinned deployment
        ("loan-purpose-ep", "loan-purpose"),  # AML token, plain {"output": records}
        ("credit-amount-ep", "credit-amount"),  # AAD token, bare list
        ("credit-risk-proba-ep", "credit-risk"),  # {"predictions": [[...]]}
    ],
)
@pytest.mark.parametrize("request_format", ["input", "data", "input_data"])
def test_endpoints_score_like_the_model(
    engine: AzureServiceEngine, az: tuple[str, AzureState], endpoint: str, model_name: str, request_format: str
) -> None:
    model = served_models()[model_name]
    d = engine.get_deployment(endpoint)
    d.options["request_format"] = request_format
    request = rows_for(model, 30, start=500)
    ctx = context_for(model)
    out = engine.score(d, request, ctx)
    assert_matches_model(out, model, request, ctx)
    served = az[1].exchanges[-1]
    assert served["deployment"] == (
        endpoint.split("/")[1] if "/" in endpoint else "blue" if endpoint != "credit-risk-proba-ep" else "main"
    )
    assert served["internal"] == "1"
    assert next(iter(orjson.loads(served["body"]))) == request_format


def test_aml_tokens_are_renewed_before_they_expire(az: tuple[str, AzureState]) -> None:
    url, state = az
    state.aml_token_seconds = 8  # refreshAfterTimeUtc: in 3 to 4 s (whole seconds)
    try:
        e = make_engine(url)
        d = e.get_deployment("loan-purpose-ep")
        model = served_models()["loan-purpose"]
        before = state.calls["service:token"]
        e.score(d, rows_for(model, 2), context_for(model))
        e.score(d, rows_for(model, 2), context_for(model))
        assert state.calls["service:token"] - before == 1
        renew_at = e._scoring_auth[str(d.options["resource_id"])][1]
        time.sleep(max(0.0, renew_at - time.monotonic()) + 0.1)
        e.score(d, rows_for(model, 2), context_for(model))
        assert state.calls["service:token"] - before == 2
    finally:
        state.aml_token_seconds = 3600


def test_a_rotated_key_is_fetched_again(az: tuple[str, AzureState]) -> None:
    url, state = az
    e = make_engine(url)
    d = e.get_deployment("credit-risk-proba-ep/main")
    state.rotate_key("credit-risk-proba-ep")
    before = state.calls["service:listKeys"]
    model = served_models()["credit-risk"]
    request = rows_for(model, 3)
    assert_matches_model(e.score(d, request, context_for(model)), model, request, context_for(model))
    assert state.calls["service:listKeys"] - before == 1
    response = asyncio.run(e.asend(d, e.encode_request(d, request, context_for(model)), internal=False))
    assert response.status == 200  # the proxy's path uses the renewed key too


def test_a_legacy_service_registered_by_hand(engine: AzureServiceEngine, az: tuple[str, AzureState]) -> None:
    url, state = az
    model = served_models()["credit-risk"]
    request = rows_for(model, 20)
    ctx = context_for(model)
    assert_matches_model(engine.score(legacy(url, state, "credit-risk-aci"), request, ctx), model, request, ctx)
    wrong = Deployment(
        id="credit-risk-aci",
        name="x",
        scoring_url=legacy_url(url, state.endpoints["credit-risk-aci"]),
        credentials={"token": "wrong"},
    )
    with pytest.raises(EngineAuthError, match="HTTP 401") as info:
        engine.score(wrong, request, ctx)
    _names(info.value, "credit-risk-aci")


def test_scored_labels_arriving_as_strings_take_the_label_type(engine: AzureServiceEngine) -> None:
    ctx = ModelContext(labels=[0, 1], problem_type="binary")
    body = orjson.dumps(orjson.dumps({"output": [{"Scored Labels": "1", "Scored Probabilities": [0.3, 0.7]}]}).decode())
    out = engine.decode_response(Deployment(id="x", name="x"), NativeResponse(200, body), ctx, 1)
    assert out.fields == ["prediction", "probability"] and out.values == [[1, [0.3, 0.7]]]


def test_a_string_that_is_not_json_is_a_bad_response(engine: AzureServiceEngine) -> None:
    with pytest.raises(EngineBadResponse, match="not valid JSON") as info:
        engine.decode_response(
            Deployment(id="odd", name="x"),
            NativeResponse(200, b'"oops: model failed"'),
            ModelContext(problem_type="binary"),
            1,
        )
    _names(info.value, "odd")


# -- failures ----------------------------------------------------------------------------------


def test_a_slow_service_is_a_timeout(az: tuple[str, AzureState]) -> None:
    url, state = az
    e = make_engine(url, read_timeout=0.5)
    with pytest.raises(EngineTimeout) as info:
        e.score(
            legacy(url, state, "fault-slow"),
            rows_for(served_models()["credit-risk"], 1),
            ModelContext(problem_type="binary"),
        )
    _names(info.value, "fault-slow")


@pytest.mark.parametrize(
    ("name", "error", "what"),
    [
        ("fault-500", EngineServerError, "HTTP 500"),
        ("fault-garbage", EngineBadResponse, "not JSON"),
        ("fault-shape", EngineResponseShape, "none of output"),
    ],
)
def test_failures_are_distinct_and_name_the_deployment(
    engine: AzureServiceEngine, az: tuple[str, AzureState], name: str, error: type[EngineError], what: str
) -> None:
    url, state = az
    model = served_models()["credit-risk"]
    with pytest.raises(error, match=what) as info:
        engine.score(legacy(url, state, name), rows_for(model, 2), context_for(model))
    _names(info.value, name)


def test_a_wrong_client_secret_is_an_auth_error(az: tuple[str, AzureState]) -> None:
    with pytest.raises(EngineAuthError, match="AADSTS7000215"):
        make_engine(az[0], client_secret="nope").list_deployments()


def test_decode_request_reads_every_format(engine: AzureServiceEngine) -> None:
    model = served_models()["credit-risk"]
    request = rows_for(model, 3)
    ctx = context_for(model)
    for fmt in ("input", "data", "input_data"):
        d = Deployment(id="x", name="x", options={"request_format": fmt})
        logged = engine.decode_request(d, engine.encode_request(d, request, ctx), ctx)
        assert logged.fields == request.fields and logged.values == request.values
    with pytest.raises(InvalidInput, match="request_format must be one of"):
        engine.encode_request(Deployment(id="x", name="x", options={"request_format": "csv"}), request, ctx)
    with pytest.raises(InvalidInput, match="none of 'input', 'data' or 'input_data'"):
        engine.decode_request(Deployment(id="x", name="x"), NativeRequest(b'{"rows": []}'), ctx)
