"""The Azure ML Studio adapter against a faithful local Azure (token, management and scoring
routes), serving the real German credit models in the new, classic and Designer formats."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from scrutiny._server import BackgroundServer, free_port
from scrutiny.core.scoring_format import ScoringRequest
from scrutiny.engines import BindingConfig, Deployment, ModelContext, engine_class
from scrutiny.engines.azure.auth import unique_ids
from scrutiny.engines.azure.studio import AzureStudioEngine, execute_url
from scrutiny.engines.errors import (
    DiscoveryUnsupported,
    EngineAuthError,
    EngineBadResponse,
    EngineError,
    EngineRejected,
    EngineResponseShape,
    EngineServerError,
    EngineTimeout,
    EngineUnreachable,
)
from scrutiny.errors import InvalidInput, NotFound
from tests.servers.azure import (
    CLIENT_SECRET,
    AzureState,
    classic_url,
    create_azure_app,
    default_state,
    designer_url,
    principal,
)
from tests.servers.models import served_models
from tests.support.engines import assert_matches_model, context_for, rows_for

KINDS = {"binary": "credit-risk", "multiclass": "loan-purpose", "regression": "credit-amount"}


@pytest.fixture(scope="module")
def az() -> Iterator[tuple[str, AzureState]]:
    state = default_state()
    with BackgroundServer(create_azure_app(state)) as srv:
        yield srv.url, state


def make_engine(url: str, *, read_timeout: float = 60.0, **overrides: Any) -> AzureStudioEngine:
    creds = principal(url, **overrides)
    return AzureStudioEngine(
        BindingConfig("b-studio", "studio-test", "azure_ml_studio", {}, creds, read_timeout=read_timeout, retries=2)
    )


@pytest.fixture(scope="module")
def engine(az: tuple[str, AzureState]) -> Iterator[AzureStudioEngine]:
    e = make_engine(az[0])
    yield e
    e.close()


def manual(url: str, key: str, fmt: str, **options: Any) -> Deployment:
    """A classic service or Designer endpoint registered by hand: a scoring URL and its key."""
    return Deployment(
        id=url.rsplit("/", 2)[-2],
        name="manual",
        scoring_url=url,
        credentials={"token": key},
        options={"format": fmt, **options},
    )


def _names(exc: EngineError, deployment: str) -> None:
    text = str(exc)
    assert "'studio-test' (azure_ml_studio)" in text and f"deployment {deployment!r}" in text
    assert CLIENT_SECRET not in text


def test_registered_under_its_type_and_openscale_aliases() -> None:
    for name in ("azure_ml_studio", "azure_machine_learning", "azure_machine_learning_studio"):
        assert engine_class(name) is AzureStudioEngine


def test_a_service_principal_is_all_four_keys_or_none() -> None:
    AzureStudioEngine.check_credentials({})  # classic services only: bound by URL and key
    with pytest.raises(InvalidInput, match="missing tenant"):
        AzureStudioEngine.check_credentials({"client_id": "a", "client_secret": "b", "subscription_id": "c"})
    with pytest.raises(InvalidInput, match="management_url"):
        AzureStudioEngine.check_credentials({"management_url": "file:///etc"})


def test_execute_url_from_swagger_location() -> None:
    assert (
        execute_url("https://ussouthcentral.services.azureml.net/subscriptions/w/services/s/swagger.json")
        == "https://ussouthcentral.services.azureml.net/subscriptions/w/services/s/execute?api-version=2.0&format=swagger"
    )


def test_ids_are_names_unless_two_services_share_one() -> None:
    assert unique_ids([("a", "rg1"), ("b", "rg1"), ("a", "rg2")]) == ["rg1/a", "b", "rg2/a"]


# -- discovery ---------------------------------------------------------------------------------


def test_discovery_pages_through_web_services(engine: AzureStudioEngine, az: tuple[str, AzureState]) -> None:
    url, state = az
    before = state.calls["management"]
    deps = {d.id: d for d in engine.list_deployments()}
    listed = [s for s in state.studio.values() if s.listed]
    assert set(deps) == {s.name for s in listed}
    assert state.calls["management"] - before == -(-len(listed) // state.page_size)
    d = deps["credit-risk-ws"]
    svc = state.studio["credit-risk-ws"]
    assert (
        d.scoring_url
        == f"{url}/studio/workspaces/{'e5a1f2c3d4b5461a8f9e0d1c2b3a4f5e'}/services/{svc.service_id}/execute?api-version=2.0&format=swagger"
    )
    assert d.name == "Credit Risk Ws" and d.status == "Succeeded" and d.created_at == "2026-01-05T09:30:00.0000000Z"
    assert d.deployment_rn and d.deployment_rn.endswith("/webServices/credit-risk-ws")
    assert d.options["format"] == "new" and d.options["resource_id"] == d.deployment_rn
    assert d.credentials is None  # keys are read when subscribing, not when listing


def test_get_deployment_reads_key_schema_and_outputs(engine: AzureStudioEngine, az: tuple[str, AzureState]) -> None:
    _, state = az
    d = engine.get_deployment("loan-purpose-ws")
    assert d.credentials == {"token": state.studio["loan-purpose-ws"].key}
    assert d.options["input_name"] == "input1" and d.options["output_name"] == "output1"
    assert d.options["output_schema"]['Scored Probabilities for Class "car"'] == "Number"
    schema = {c["name"]: c["type"] for c in d.asset_properties["input_data_schema"]}
    assert schema["LoanDuration"] == "integer" and schema["CheckingStatus"] == "string"
    assert "credentials" not in d.to_dict()
    with pytest.raises(NotFound, match="no Studio web service 'nope'"):
        engine.get_deployment("nope")


def test_the_token_is_cached_and_renewed_before_it_expires(az: tuple[str, AzureState]) -> None:
    url, state = az
    state.token_seconds = 5  # renewed after 80% of a short lifetime: 4 s
    try:
        e = make_engine(url)
        before = state.calls["token"]
        e.list_deployments()
        e.list_deployments()
        assert state.calls["token"] - before == 1
        renew_at = e.tokens._tokens["https://management.azure.com/.default"][1]
        time.sleep(max(0.0, renew_at - time.monotonic()) + 0.1)
        e.list_deployments()
        assert state.calls["token"] - before == 2
    finally:
        state.token_seconds = 3599


def test_a_wrong_client_secret_is_an_auth_error(az: tuple[str, AzureState]) -> None:
    e = make_engine(az[0], client_secret="not-the-secret")
    with pytest.raises(EngineAuthError, match="AADSTS7000215: Invalid client secret provided") as info:
        e.list_deployments()
    assert "not-the-secret" not in str(info.value)
    with pytest.raises(EngineAuthError, match="invalid_request"):
        make_engine(az[0], tenant="nope").list_deployments()


def test_without_a_principal_services_are_registered_by_hand() -> None:
    e = AzureStudioEngine(BindingConfig("b", "studio-test", "azure_ml_studio", {}, {}))
    with pytest.raises(DiscoveryUnsupported, match="scoring URL and its key"):
        e.list_deployments()


# -- scoring -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
def test_new_web_service_scores_like_the_model(engine: AzureStudioEngine, kind: str) -> None:
    model = served_models()[KINDS[kind]]
    d = engine.get_deployment(f"{model.name}-ws")
    request = rows_for(model, 40, start=200)
    ctx = context_for(model)
    out = engine.score(d, request, ctx)
    assert_matches_model(out, model, request, ctx)
    assert "CheckingStatus" not in out.fields  # echoed inputs dropped


@pytest.mark.parametrize("fmt", ["classic", "designer"])
@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
def test_manual_classic_and_designer_services_score_like_the_model(
    engine: AzureStudioEngine, az: tuple[str, AzureState], fmt: str, kind: str
) -> None:
    url, state = az
    model = served_models()[KINDS[kind]]
    svc = state.studio[f"{model.name}-{fmt}"]
    target = classic_url(url, svc) if fmt == "classic" else designer_url(url, svc)
    request = rows_for(model, 25, start=300)
    ctx = context_for(model)
    out = engine.score(manual(target, svc.key, fmt), request, ctx)
    assert_matches_model(out, model, request, ctx)


def test_class_columns_follow_the_subscription_label_order(
    engine: AzureStudioEngine, az: tuple[str, AzureState]
) -> None:
    url, state = az
    model = served_models()["loan-purpose"]
    svc = state.studio["loan-purpose-classic"]
    request = rows_for(model, 10)
    ctx = context_for(model)
    reversed_ctx = context_for(model, labels=list(reversed(model.classes)))
    straight = engine.score(manual(classic_url(url, svc), svc.key, "classic"), request, ctx)
    backwards = engine.score(manual(classic_url(url, svc), svc.key, "classic"), request, reversed_ctx)
    p = straight.fields.index("probability")
    assert [list(reversed(r[p])) for r in straight.values] == [r[p] for r in backwards.values]


def test_unknown_class_column_is_a_shape_error(engine: AzureStudioEngine, az: tuple[str, AzureState]) -> None:
    url, state = az
    model = served_models()["loan-purpose"]
    svc = state.studio["loan-purpose-classic"]
    ctx = context_for(model, labels=["car", "home", "other", "travel"])
    with pytest.raises(EngineResponseShape, match="no probability column for class 'travel'"):
        engine.score(manual(classic_url(url, svc), svc.key, "classic"), rows_for(model, 2), ctx)


def test_subscription_named_outputs_are_kept(engine: AzureStudioEngine) -> None:
    model = served_models()["credit-risk"]
    d = engine.get_deployment("credit-risk-ws")
    ctx = context_for(model, prediction_field="Scored Labels", probability_fields=["Scored Probabilities"])
    out = engine.score(d, rows_for(model, 3), ctx)
    assert set(out.fields) == {"Scored Labels", "Scored Probabilities"}
    assert all(isinstance(r[out.fields.index("Scored Probabilities")], float) for r in out.values)  # cast from strings


def test_the_input_name_is_configurable(engine: AzureStudioEngine, az: tuple[str, AzureState]) -> None:
    model = served_models()["credit-risk"]
    d = engine.get_deployment("credit-risk-ws")
    d.options["input_name"] = "applicants"
    with pytest.raises(EngineRejected, match="Missing required inputs: input1") as info:
        engine.score(d, rows_for(model, 2), context_for(model))
    _names(info.value, "credit-risk-ws")
    assert info.value.engine_status == 400


def test_internal_calls_are_marked(engine: AzureStudioEngine, az: tuple[str, AzureState]) -> None:
    model = served_models()["credit-risk"]
    engine.score(engine.get_deployment("credit-risk-ws"), rows_for(model, 2), context_for(model))
    assert az[1].exchanges[-1]["internal"] == "1"


# -- keys --------------------------------------------------------------------------------------


def test_a_wrong_key_is_an_auth_error(engine: AzureStudioEngine, az: tuple[str, AzureState]) -> None:
    url, state = az
    model = served_models()["credit-risk"]
    svc = state.studio["credit-risk-classic"]
    with pytest.raises(EngineAuthError, match="HTTP 401") as info:
        engine.score(manual(classic_url(url, svc), "wrong-key", "classic"), rows_for(model, 2), context_for(model))
    assert info.value.context["engine_code"] == "Unauthorized"
    _names(info.value, svc.service_id)


def test_a_rotated_key_is_fetched_again(az: tuple[str, AzureState]) -> None:
    url, state = az
    e = make_engine(url)
    model = served_models()["credit-risk"]
    d = e.get_deployment("credit-risk-ws")
    state.rotate_key("credit-risk-ws")
    before = state.calls["studio:listKeys"]
    out = e.score(d, rows_for(model, 3), context_for(model))
    assert len(out) == 3 and state.calls["studio:listKeys"] - before == 1
    e.score(d, rows_for(model, 3), context_for(model))  # the new key is kept
    assert state.calls["studio:listKeys"] - before == 1


# -- failures ----------------------------------------------------------------------------------


def test_a_slow_service_is_a_timeout(az: tuple[str, AzureState]) -> None:
    e = make_engine(az[0], read_timeout=0.5)
    d = e.get_deployment("fault-slow-ws")
    t0 = time.monotonic()
    with pytest.raises(EngineTimeout) as info:
        e.score(d, rows_for(served_models()["credit-risk"], 1), ModelContext(problem_type="binary"))
    assert time.monotonic() - t0 < 2.5
    _names(info.value, "fault-slow-ws")


@pytest.mark.parametrize(
    ("service", "error", "what"),
    [
        ("fault-500-ws", EngineServerError, "HTTP 500"),
        ("fault-garbage-ws", EngineBadResponse, "not JSON"),
        ("fault-shape-ws", EngineResponseShape, "no 'Results' object"),
    ],
)
def test_failures_are_distinct_and_name_the_deployment(
    engine: AzureStudioEngine, service: str, error: type[EngineError], what: str
) -> None:
    d = engine.get_deployment(service)
    with pytest.raises(error, match=what) as info:
        engine.score(d, rows_for(served_models()["credit-risk"], 2), context_for(served_models()["credit-risk"]))
    _names(info.value, service)


def test_an_unreachable_service(engine: AzureStudioEngine) -> None:
    d = manual(f"http://127.0.0.1:{free_port()}/studio/workspaces/w/services/gone/execute?api-version=2.0", "k", "new")
    with pytest.raises(EngineUnreachable, match="cannot connect") as info:
        engine.score(d, rows_for(served_models()["credit-risk"], 1), ModelContext(problem_type="binary"))
    _names(info.value, "gone")


def test_a_row_count_mismatch_is_a_shape_error(engine: AzureStudioEngine) -> None:
    from scrutiny.engines import NativeResponse

    body = b'{"Results": {"output1": [{"Scored Labels": "Risk", "Scored Probabilities": "0.7"}]}}'
    d = Deployment(id="one-row", name="x", options={"format": "new"})
    decoded = engine.decode_response(
        d, NativeResponse(200, body), ModelContext(labels=["No Risk", "Risk"], problem_type="binary"), 2
    )
    assert len(decoded) == 1  # score() compares this with the rows it sent


def test_decode_request_reads_every_format(engine: AzureStudioEngine) -> None:
    model = served_models()["credit-risk"]
    request = rows_for(model, 3)
    ctx = context_for(model)
    for fmt in ("new", "classic", "designer"):
        d = Deployment(id="x", name="x", options={"format": fmt})
        native = engine.encode_request(d, request, ctx)
        logged = engine.decode_request(d, native, ctx)
        assert logged.fields == request.fields and logged.values == request.values
    with pytest.raises(InvalidInput, match="Inputs"):
        from scrutiny.engines import NativeRequest

        engine.decode_request(Deployment(id="x", name="x"), NativeRequest(b'{"data": []}'), ctx)
    assert isinstance(request, ScoringRequest)
