"""The SageMaker adapter, driven through real boto3 against a faithful local SageMaker
(control plane, runtime and STS on loopback, SigV4 checked, real scikit-learn models)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
import pytest

from scrutiny._server import BackgroundServer, free_port
from scrutiny.core.outputs import normalize_rows
from scrutiny.core.scoring_format import ScoringRequest
from scrutiny.engines import BindingConfig, Deployment, ModelContext, NativeRequest, NativeResponse, engine_class
from scrutiny.engines.errors import (
    EngineAuthError,
    EngineBadResponse,
    EngineError,
    EngineRejected,
    EngineResponseShape,
    EngineServerError,
    EngineTimeout,
    EngineUnreachable,
)
from scrutiny.engines.sagemaker.engine import SageMakerEngine
from scrutiny.errors import InvalidInput, NotFound
from tests.servers.models import served_models
from tests.servers.sagemaker import (
    ACCESS_KEY,
    ROLE_ARN,
    SECRET_KEY,
    SageMakerState,
    create_sagemaker_app,
    default_state,
)
from tests.support.contract import differences, load
from tests.support.engines import assert_matches_model, context_for, rows_for


@pytest.fixture(scope="module")
def sm_state() -> SageMakerState:
    return default_state()


@pytest.fixture(scope="module")
def sm_servers(sm_state: SageMakerState) -> Iterator[tuple[str, str]]:
    """(control plane URL, runtime URL): two servers sharing one state, so the two hooks are distinct."""
    with (
        BackgroundServer(create_sagemaker_app(sm_state)) as control,
        BackgroundServer(create_sagemaker_app(sm_state)) as runtime,
    ):
        yield control.url, runtime.url


def make_engine(
    urls: tuple[str, str], *, read_timeout: float = 60.0, retries: int = 2, **creds: Any
) -> SageMakerEngine:
    credentials = {
        "access_key_id": ACCESS_KEY,
        "secret_access_key": SECRET_KEY,
        "region": "us-east-1",
        "endpoint_url": urls[0],
        "runtime_endpoint_url": urls[1],
        **creds,
    }
    cfg = BindingConfig("b-sm", "aws-test", "sagemaker", {}, credentials, read_timeout=read_timeout, retries=retries)
    return SageMakerEngine(cfg)


@pytest.fixture(scope="module")
def engine(sm_servers: tuple[str, str]) -> Iterator[SageMakerEngine]:
    e = make_engine(sm_servers)
    yield e
    e.close()


def dep(name: str, **options: Any) -> Deployment:
    return Deployment(id=name, name=name, scoring_url=name, options=options)


def test_registered_under_its_type_and_openscale_alias() -> None:
    assert engine_class("sagemaker") is SageMakerEngine
    assert engine_class("amazon_sagemaker") is SageMakerEngine


def test_credentials_are_checked_with_the_field_named() -> None:
    with pytest.raises(InvalidInput, match="secret_access_key"):
        SageMakerEngine.check_credentials({"access_key_id": "a", "region": "us-east-1"})
    with pytest.raises(InvalidInput, match="region"):
        SageMakerEngine.check_credentials({"access_key_id": "a", "secret_access_key": "b", "region": "Mars"})
    with pytest.raises(InvalidInput, match="endpoint_url"):
        SageMakerEngine.check_credentials(
            {"access_key_id": "a", "secret_access_key": "b", "region": "us-east-1", "endpoint_url": "ftp://x"}
        )


# -- discovery ---------------------------------------------------------------------------------


def test_discovery_follows_next_token_and_maps_every_field(engine: SageMakerEngine, sm_state: SageMakerState) -> None:
    before = sm_state.calls.get("ListEndpoints", 0)
    deps = {d.id: d for d in engine.list_deployments()}
    assert set(deps) == set(sm_state.endpoints)
    pages = -(-len(sm_state.endpoints) // sm_state.page_size)
    assert sm_state.calls["ListEndpoints"] - before == pages
    d = deps["credit-risk"]
    assert d.name == d.scoring_url == "credit-risk"
    assert d.deployment_rn == "arn:aws:sagemaker:us-east-1:123456789012:endpoint/credit-risk"
    assert d.created_at == "2026-01-05T09:30:00Z"
    assert d.status == "InService"
    assert d.asset["asset_id"] == "credit-risk-model"
    assert d.asset["asset_rn"] == "arn:aws:sagemaker:us-east-1:123456789012:model/credit-risk-model"
    assert d.asset["url"] == "s3://sagemaker-us-east-1-123456789012/credit-risk/output/model.tar.gz"
    assert d.asset["runtime_environment"].endswith("sagemaker-scikit-learn:1.2-1-cpu-py3")
    assert d.asset["production_variants"] == [
        {
            "name": "AllTraffic",
            "model": "credit-risk-model",
            "instance_type": "ml.m5.large",
            "weight": 1.0,
            "instances": 1,
        }
    ]
    assert deps["credit-risk-next"].status == "Creating"  # listed, with its status
    assert d.credentials is None and "credentials" not in d.to_dict()


def test_get_deployment_describes_one_endpoint(engine: SageMakerEngine) -> None:
    assert engine.get_deployment("loan-purpose").asset["asset_id"] == "loan-purpose-model"
    with pytest.raises(NotFound, match="no SageMaker endpoint 'nope'"):
        engine.get_deployment("nope")


def test_fake_control_plane_matches_the_documented_responses(engine: SageMakerEngine) -> None:
    documented = load("sagemaker", "control_plane.json")
    control, _ = engine._clients()
    # botocore parses into Python types; compare the raw JSON the fake sends instead.
    raw: dict[str, Any] = {}

    def capture(http_response: Any, parsed: Any, model: Any, **kw: Any) -> None:
        raw[model.name] = orjson.loads(http_response.content)

    control.meta.events.register("after-call.sagemaker", capture)
    control.list_endpoints(MaxResults=100)
    control.list_endpoints(MaxResults=100, NextToken=raw["ListEndpoints"]["NextToken"])
    control.describe_endpoint(EndpointName="credit-risk")
    control.describe_endpoint_config(EndpointConfigName="credit-risk-config")
    control.describe_model(ModelName="credit-risk-model")
    control.meta.events.unregister("after-call.sagemaker", capture)
    for op in ("ListEndpoints", "DescribeEndpoint", "DescribeEndpointConfig", "DescribeModel"):
        assert differences(raw[op], documented[op]["response"]) == [], op


# -- scoring -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "options"),
    [
        ("credit-risk", {}),
        ("credit-risk", {"content_type": "text/csv"}),
        ("credit-risk", {"content_type": "text/csv", "accept": "text/csv"}),
        ("credit-risk", {"content_type": "application/jsonlines", "accept": "application/jsonlines"}),
        ("credit-risk", {"json_format": "instances"}),
        ("credit-risk", {"json_format": "records"}),
        ("credit-risk-proba", {}),
        ("loan-purpose", {}),
        ("loan-purpose", {"content_type": "text/csv", "accept": "text/csv"}),
        ("credit-amount", {}),
        ("credit-amount", {"content_type": "text/csv", "accept": "text/csv"}),
    ],
)
def test_scores_a_batch_like_the_model_in_process(
    engine: SageMakerEngine, endpoint: str, options: dict[str, Any]
) -> None:
    model = served_models()["credit-risk" if endpoint == "credit-risk-proba" else endpoint]
    request = rows_for(model, 60, start=100)
    ctx = context_for(model)
    out = engine.score(dep(endpoint, **options), request, ctx)
    assert len(out) == 60
    assert_matches_model(out, model, request, ctx)


def test_internal_calls_carry_the_custom_attribute(engine: SageMakerEngine, sm_state: SageMakerState) -> None:
    model = served_models()["credit-risk"]
    engine.score(dep("credit-risk"), rows_for(model, 2), context_for(model))
    assert sm_state.invocations[-1]["custom_attributes"] == "scrutiny-internal=1"
    native = engine.encode_request(dep("credit-risk"), rows_for(model, 2), context_for(model))
    engine.send(dep("credit-risk"), native, internal=False)
    assert sm_state.invocations[-1]["custom_attributes"] is None


def test_csv_follows_the_feature_order_not_the_request_order(engine: SageMakerEngine, sm_state: SageMakerState) -> None:
    model = served_models()["credit-risk"]
    request = rows_for(model, 5)
    shuffled = list(reversed(request.fields))
    index = [request.fields.index(f) for f in shuffled]
    reordered = ScoringRequest(shuffled, [[row[i] for i in index] for row in request.values])
    ctx = context_for(model)
    out = engine.score(dep("credit-risk", content_type="text/csv"), reordered, ctx)
    assert_matches_model(out, model, request, ctx)
    first_line = sm_state.invocations[-1]["body"].decode().splitlines()[0]
    assert first_line.split(",")[0] == str(request.values[0][0])


def test_batches_are_cut_by_encoded_size_in_order(engine: SageMakerEngine, sm_state: SageMakerState) -> None:
    model = served_models()["credit-risk"]
    request = rows_for(model, 300)
    ctx = context_for(model)
    before = len(sm_state.invocations)
    out = engine.score(dep("credit-risk", content_type="text/csv", max_payload_bytes=10_000), request, ctx)
    calls = sm_state.invocations[before:]
    assert len(calls) > 3
    assert all(len(c["body"]) <= 10_000 for c in calls)
    assert sum(c["body"].count(b"\n") for c in calls) == 300
    assert_matches_model(out, model, request, ctx)


def test_a_batch_over_six_megabytes_is_split_not_refused(engine: SageMakerEngine, sm_state: SageMakerState) -> None:
    model = served_models()["credit-risk"]
    base = rows_for(model, 1000)
    request = ScoringRequest(base.fields, base.values * 40)  # 40 000 rows, ~7.2 MB of JSON
    ctx = context_for(model)
    before = len(sm_state.invocations)
    out = engine.score(dep("credit-risk", max_batch_rows=50_000), request, ctx)
    calls = sm_state.invocations[before:]
    assert len(calls) == 2 and all(c["status"] == 200 for c in calls)
    assert all(len(c["body"]) <= 6 * 1024 * 1024 for c in calls)
    assert len(out) == 40_000
    assert_matches_model(out, model, request, ctx)


def test_a_row_over_the_limit_is_named(engine: SageMakerEngine) -> None:
    model = served_models()["credit-risk"]
    request = rows_for(model, 3)
    request.values[1][0] = "x" * 5000
    with pytest.raises(InvalidInput, match="row 2") as info:
        engine.score(dep("credit-risk", max_payload_bytes=4000), request, context_for(model))
    assert "invocation limit" in str(info.value)


def test_predicted_label_is_a_class_index_even_with_numeric_labels(engine: SageMakerEngine) -> None:
    ctx = ModelContext(labels=[1, 2], problem_type="binary")
    body = orjson.dumps(
        {"predictions": [{"score": 0.7, "predicted_label": 1.0}, {"score": 0.2, "predicted_label": 0.0}]}
    )
    out = engine.decode_response(dep("x"), NativeResponse(200, body, "application/json"), ctx, 2)
    norm = normalize_rows(
        out.fields,
        out.values,
        classification=True,
        labels=[1, 2],
        prediction_field="prediction",
        probability_fields=["probability"],
    )
    assert norm.prediction.tolist() == [2, 1]
    np.testing.assert_allclose(norm.probability, [[0.3, 0.7], [0.8, 0.2]], atol=1e-12)  # type: ignore[arg-type]
    assert norm.prediction_probability.tolist() == pytest.approx([0.7, 0.8])  # type: ignore[union-attr]


def test_subscription_names_win_over_the_engine_defaults(engine: SageMakerEngine) -> None:
    ctx = ModelContext(
        labels=["a", "b"], problem_type="binary", prediction_field="predicted_label", probability_fields=["score"]
    )
    body = orjson.dumps({"predictions": [{"score": 0.7, "predicted_label": 1.0}]})
    out = engine.decode_response(dep("x"), NativeResponse(200, body, "application/json"), ctx, 1)
    assert out.fields == ["score", "predicted_label"] and out.values == [[0.7, "b"]]


@pytest.mark.parametrize("case", load("sagemaker", "runtime.json")["invoke"], ids=lambda c: c["name"])
def test_documented_responses_decode_to_the_documented_outputs(engine: SageMakerEngine, case: dict[str, Any]) -> None:
    resp = case["response"]
    body = resp["body"] if isinstance(resp["body"], str) else orjson.dumps(resp["body"]).decode()
    ctx = ModelContext(
        labels=case["labels"],
        problem_type=case["problem_type"],
        probability_fields=[] if case["problem_type"] == "regression" else ["probability"],
    )
    d = dep("doc", content_type=case["request"]["content_type"], accept=case["request"]["accept"])
    n = len(case["expected"]["prediction"])
    out = engine.decode_response(d, NativeResponse(200, body.encode(), resp["content_type"]), ctx, n)
    norm = normalize_rows(
        out.fields,
        out.values,
        classification=case["problem_type"] != "regression",
        labels=case["labels"],
        prediction_field="prediction",
        probability_fields=ctx.probability_fields,
    )
    assert norm.prediction.tolist() == case["expected"]["prediction"]
    if "probability" in case["expected"]:
        np.testing.assert_allclose(norm.probability, case["expected"]["probability"], atol=1e-12)  # type: ignore[arg-type]


def test_fake_runtime_answers_in_the_documented_shapes(engine: SageMakerEngine, sm_state: SageMakerState) -> None:
    """The fake's own answers to the documented requests have the documented shape and error form."""
    for case in load("sagemaker", "runtime.json")["invoke"]:
        if case["response"]["content_type"] != "application/json" or case["problem_type"] == "regression":
            continue
        model = served_models()["loan-purpose" if case["problem_type"] == "multiclass" else "credit-risk"]
        endpoint = "credit-risk-proba" if "predict_proba" in case["name"] else model.name
        request = rows_for(model, 2)
        native = engine.encode_request(dep(endpoint), request, context_for(model))
        got = orjson.loads(engine.send(dep(endpoint), native, internal=True).body)
        assert differences(got, case["response"]["body"]) == [], case["name"]
    errors = load("sagemaker", "runtime.json")["errors"]
    for code, endpoint in [
        ("ModelError", "fault-model-error"),
        ("ValidationError", "nope"),
        ("InternalFailure", "fault-internal"),
    ]:
        response = asyncio.run(engine.asend(dep(endpoint), NativeRequest(b"1,2\n", "text/csv"), internal=False))
        assert response.status == errors[code]["status"]
        assert response.headers["x-amzn-errortype"].split(":")[0] == errors[code]["header"]
        assert differences(orjson.loads(response.body), errors[code]["body"]) == []


# -- failures ----------------------------------------------------------------------------------


def _names_engine_and_deployment(exc: EngineError, deployment: str) -> None:
    text = str(exc)
    assert "'aws-test' (sagemaker)" in text and f"deployment {deployment!r}" in text
    assert SECRET_KEY not in text and ACCESS_KEY not in text


def test_wrong_secret_is_an_auth_error_naming_the_deployment(sm_servers: tuple[str, str]) -> None:
    e = make_engine(sm_servers, secret_access_key="not-the-secret")
    model = served_models()["credit-risk"]
    with pytest.raises(EngineAuthError) as info:
        e.score(dep("credit-risk"), rows_for(model, 2), context_for(model))
    _names_engine_and_deployment(info.value, "credit-risk")
    assert info.value.context["engine_code"] == "InvalidSignatureException"
    assert "not-the-secret" not in str(info.value)
    with pytest.raises(EngineAuthError, match="list endpoints"):
        make_engine(sm_servers, access_key_id="AKIDUNKNOWN").list_deployments()


def test_a_slow_model_is_a_timeout(sm_servers: tuple[str, str], sm_state: SageMakerState) -> None:
    e = make_engine(sm_servers, read_timeout=0.5)
    before = sm_state.calls.get("InvokeEndpoint", 0)
    # the fake answers after 1.5 s (with a body that would be a shape error): a timeout error
    # proves the 0.5 s read timeout applied, with no wall-clock assertion to trip on a busy machine
    with pytest.raises(EngineTimeout) as info:
        e.score(dep("fault-slow"), rows_for(served_models()["credit-risk"], 1), ModelContext(problem_type="binary"))
    assert sm_state.calls["InvokeEndpoint"] - before == 1  # never retried: the model may have run
    _names_engine_and_deployment(info.value, "fault-slow")
    assert info.value.status == 504


@pytest.mark.parametrize(
    ("endpoint", "code", "attempts"),
    [
        ("fault-internal", "InternalFailure", 1),
        ("fault-unavailable", "ServiceUnavailable", 2),
        ("fault-not-ready", "ModelNotReadyException", 2),
        ("fault-model-error", "ModelError", 1),
    ],
)
def test_server_errors_are_distinct_and_retried_only_when_transient(
    engine: SageMakerEngine, sm_state: SageMakerState, endpoint: str, code: str, attempts: int
) -> None:
    before = sm_state.calls.get("InvokeEndpoint", 0)
    with pytest.raises(EngineServerError) as info:
        engine.score(dep(endpoint), rows_for(served_models()["credit-risk"], 1), ModelContext(problem_type="binary"))
    assert sm_state.calls["InvokeEndpoint"] - before == attempts
    assert info.value.context["engine_code"] == code
    _names_engine_and_deployment(info.value, endpoint)
    if code == "ModelError":
        assert info.value.context["original_status"] == 500
        assert "container status 500" in str(info.value)
        assert info.value.context["log_stream"].startswith("arn:aws:logs:")


def test_unknown_endpoint_is_rejected(engine: SageMakerEngine) -> None:
    with pytest.raises(EngineRejected, match="ValidationError: Endpoint nope") as info:
        engine.send(dep("nope"), NativeRequest(b"1\n", "text/csv"), internal=True)
    _names_engine_and_deployment(info.value, "nope")


@pytest.mark.parametrize(
    ("endpoint", "error", "what"),
    [
        ("fault-garbage", EngineBadResponse, "text/html"),
        ("fault-shape", EngineResponseShape, "no 'predictions' list"),
        ("fault-rows", EngineResponseShape, "1 output rows for 3 input rows"),
    ],
)
def test_malformed_output_is_reported(
    engine: SageMakerEngine, endpoint: str, error: type[EngineError], what: str
) -> None:
    model = served_models()["credit-risk"]
    with pytest.raises(error, match=what) as info:
        engine.score(dep(endpoint), rows_for(model, 3), context_for(model))
    _names_engine_and_deployment(info.value, endpoint)


def test_unreachable_endpoint(sm_servers: tuple[str, str]) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    e = make_engine((dead, dead), retries=2)
    with pytest.raises(EngineUnreachable) as info:
        e.send(dep("credit-risk"), NativeRequest(b"1\n", "text/csv"), internal=True)
    _names_engine_and_deployment(info.value, "credit-risk")
    with pytest.raises(EngineError, match="cannot connect"):
        e.list_deployments()


# -- the proxy's path: raw native bytes in, decoded for logging ----------------------------------


def test_send_forwards_native_bytes_unchanged_and_decoders_read_them(
    engine: SageMakerEngine, sm_state: SageMakerState
) -> None:
    model = served_models()["credit-risk"]
    request = rows_for(model, 4)
    ctx = context_for(model)
    csv_body = "\n".join(",".join(str(v) for v in row) for row in request.values).encode() + b"\n"
    native = NativeRequest(
        csv_body,
        "text/csv",
        headers={"Accept": "application/jsonlines", "X-Amzn-SageMaker-Custom-Attributes": "trace=7"},
    )
    response = engine.send(dep("credit-risk"), native, internal=False)
    sent = sm_state.invocations[-1]
    assert sent["body"] == csv_body and sent["accept"] == "application/jsonlines"
    assert sent["custom_attributes"] == "trace=7"
    assert response.headers["x-amzn-invoked-production-variant"] == "AllTraffic"
    logged = engine.decode_request(dep("credit-risk"), native, ctx)
    assert logged.fields == request.fields and logged.values == request.values  # typed by the schema
    decoded = engine.decode_response(dep("credit-risk"), response, ctx, None)
    assert_matches_model(decoded, model, request, ctx)
    as_json = NativeRequest(orjson.dumps({"instances": [{"features": r} for r in request.values]}), "application/json")
    assert engine.decode_request(dep("credit-risk"), as_json, ctx).values == request.values


def test_decode_request_names_a_bad_csv_row(engine: SageMakerEngine) -> None:
    model = served_models()["credit-risk"]
    good = ",".join(str(v) for v in rows_for(model, 1).values[0])
    with pytest.raises(InvalidInput, match="row 2: CSV row has 2 values for 21 features"):
        engine.decode_request(
            dep("credit-risk"), NativeRequest(f"{good}\n1,2\n".encode(), "text/csv"), context_for(model)
        )


# -- assumed role ------------------------------------------------------------------------------


def test_assumed_role_keys_are_used_and_renewed_before_they_expire(
    sm_servers: tuple[str, str], sm_state: SageMakerState
) -> None:
    sm_state.role_seconds = 304  # renewed 300 s before expiry: 3 to 4 s from now (Expiration has whole seconds)
    try:
        e = make_engine(sm_servers, role=ROLE_ARN, sts_endpoint_url=sm_servers[0])
        before = sm_state.calls.get("AssumeRole", 0)
        assert e.get_deployment("credit-risk").id == "credit-risk"
        model = served_models()["credit-risk"]
        e.score(dep("credit-risk"), rows_for(model, 2), context_for(model))
        assert sm_state.calls["AssumeRole"] - before == 1
        assert e._expires is not None
        time.sleep(max(0.0, e._expires - time.monotonic()) + 0.1)
        e.score(dep("credit-risk"), rows_for(model, 2), context_for(model))
        assert sm_state.calls["AssumeRole"] - before == 2
    finally:
        sm_state.role_seconds = 3600
    refused = make_engine(sm_servers, role="arn:aws:iam::123456789012:role/other", sts_endpoint_url=sm_servers[0])
    with pytest.raises(EngineAuthError, match="assume the role"):
        refused.list_deployments()


@pytest.mark.parametrize(
    ("content_type", "json_format"),
    [
        ("text/csv", "features"),
        ("application/json", "features"),
        ("application/json", "records"),
        ("application/json", "instances"),
        ("application/jsonlines", "features"),
    ],
)
def test_every_cut_body_is_exactly_the_encoding_of_its_rows(content_type: str, json_format: str) -> None:
    """Cutting never splits a row, drops one or reorders them, with quoting and non-ASCII text."""
    from scrutiny.engines.sagemaker import codec

    c = codec.Codec(content_type=content_type, json_format=json_format, max_payload_bytes=3000)
    fields = ["id", "text", "amount"]
    rows = [[i, f'say "hi", {i}\nbye' if i % 7 == 0 else "é" * (i % 5), 1.5 * i] for i in range(1500)]
    spans = []
    for start, stop, body in codec.batches(c, fields, rows, max_rows=10_000):
        assert len(body) <= 3000
        assert body == codec.encode(c, fields, rows[start:stop])
        spans.append((start, stop))
    assert len(spans) > 5 and spans[0][0] == 0 and spans[-1][1] == len(rows)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    if content_type == "text/csv":  # and the quoted CSV reads back to the same rows
        import csv as csv_mod
        import io

        back = [
            r for _, _, b in codec.batches(c, fields, rows, 10_000) for r in csv_mod.reader(io.StringIO(b.decode()))
        ]
        assert [r[1] for r in back] == [str(r[1]) for r in rows]


def test_echoed_inputs_are_dropped(engine: SageMakerEngine) -> None:
    ctx = ModelContext(feature_fields=["Age", "Sex"], labels=["a", "b"], problem_type="binary")
    body = orjson.dumps({"predictions": [{"Age": 31, "Sex": "f", "score": 0.7, "predicted_label": 1.0}]})
    out = engine.decode_response(dep("x"), NativeResponse(200, body, "application/json"), ctx, 1)
    assert out.fields == ["probability", "prediction"] and out.values == [[0.7, "b"]]
