"""The Open Inference Protocol (KServe V2) adapter against a real MLServer 1.7.1 (engines.md §3).

MLServer runs from its own venv with ``mlserver-sklearn`` serving four of the demo's credit
pipelines (``tests/servers/mlserver_models.py``, which also writes their in-process outputs):
a numeric-only model (tensor layout), the ColumnTransformer model with declared inputs
(columns layout, metadata -> input schema), a multiclass and a regression model.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from scrutiny._server import free_port
from scrutiny.core.outputs import normalize_rows
from scrutiny.core.scoring_format import ScoringRequest
from scrutiny.demo import credit
from scrutiny.engines import BindingConfig, Deployment, ModelContext, NativeRequest, NativeResponse
from scrutiny.engines.errors import EngineRejected, EngineResponseShape, EngineServerError
from scrutiny.engines.kserve.engine import KServeEngine
from scrutiny.errors import InvalidInput
from tests.servers.procs import SERVER_TESTS, SERVERS, ServerProcess, report_start, run, venv_env, venv_python
from tests.support.proxy import payload_rows, serve

pytestmark = SERVER_TESTS


@dataclass
class MLServerEnv:
    url: str
    expected: dict[str, Any]


@pytest.fixture(scope="module")
def mlserver_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MLServerEnv]:
    python = venv_python("mlserver")
    tmp = tmp_path_factory.mktemp("mlserver")
    ports = [free_port() for _ in range(3)]
    run(python, str(SERVERS / "mlserver_models.py"), str(tmp / "repo"), *map(str, ports))
    server = ServerProcess(
        [str(python.parent / "mlserver"), "start", str(tmp / "repo")],
        venv_env(python),
        f"http://127.0.0.1:{ports[0]}/v2/health/ready",
        tmp / "mlserver.log",
        cwd=tmp,
    )
    try:
        server.wait_ready()
        for name in ("credit-numeric", "credit", "purpose", "amount"):
            assert httpx.get(f"http://127.0.0.1:{ports[0]}/v2/models/{name}/ready").status_code == 200
        report_start("mlserver start (4 models)", server)
        yield MLServerEnv(f"http://127.0.0.1:{ports[0]}", json.loads((tmp / "expected.json").read_text()))
    finally:
        server.stop()


def engine_for(url: str, name: str = "oip-test", **credentials: Any) -> KServeEngine:
    creds = {"url": url, "protocol": "v2", **credentials}
    KServeEngine.check_credentials(creds)
    return KServeEngine(
        BindingConfig(id="b2", name=name, engine_type="kserve", settings={}, credentials=creds, retries=2)
    )


@pytest.fixture(scope="module")
def engine(mlserver_env: MLServerEnv) -> Iterator[KServeEngine]:
    e = engine_for(mlserver_env.url)
    yield e
    e.close()


BINARY = ModelContext(feature_fields=credit.FEATURES, labels=credit.LABELS, problem_type="binary")
NUMERIC = ModelContext(feature_fields=credit.NUMERIC_FEATURES, labels=credit.LABELS, problem_type="binary")
PURPOSE = ModelContext(feature_fields=credit.PURPOSE_FEATURES, labels=credit.PURPOSE_CLASSES, problem_type="multiclass")
AMOUNT = ModelContext(feature_fields=credit.AMOUNT_FEATURES, problem_type="regression", probability_fields=[])


def rows(german, features: list[str], idx: Any) -> ScoringRequest:  # type: ignore[no-untyped-def]
    return ScoringRequest(list(features), german.iloc[np.asarray(idx)][features].astype(object).values.tolist())


def normalized(resp, ctx: ModelContext):  # type: ignore[no-untyped-def]
    return normalize_rows(
        resp.fields,
        resp.values,
        classification=ctx.problem_type != "regression",
        labels=ctx.labels,
        prediction_field=ctx.prediction_field,
        probability_fields=ctx.probability_fields,
    )


def test_repository_index_and_metadata_fill_the_input_schema(engine: KServeEngine) -> None:
    deps = {d.id: d for d in engine.list_deployments()}
    assert set(deps) == {"credit-numeric", "credit", "purpose", "amount"}
    assert all(d.status == "ready" for d in deps.values())
    assert deps["credit"].scoring_url.endswith("/v2/models/credit/infer")  # type: ignore[union-attr]
    schema = deps["credit"].asset_properties["input_data_schema"]["fields"]
    assert [f["name"] for f in schema] == credit.FEATURES
    types = {f["name"]: f["type"] for f in schema}
    assert types["Age"] == "long" and types["Sex"] == "string"
    assert deps["credit-numeric"].asset_properties == {}  # MLServer's metadata is empty unless declared


def test_tensor_layout_matches_the_model(engine: KServeEngine, mlserver_env: MLServerEnv, german) -> None:  # type: ignore[no-untyped-def]
    dep = engine.get_deployment("credit-numeric")
    request = rows(german, credit.NUMERIC_FEATURES, range(1000))
    body = orjson.loads(engine.encode_request(dep, request, NUMERIC).body)
    assert [(i["name"], i["shape"], i["datatype"]) for i in body["inputs"]] == [("input-0", [1000, 7], "FP64")]
    assert body["inputs"][0]["data"][:7] == [float(v) for v in request.values[0]]  # row-major
    out = normalized(engine.score(dep, request, NUMERIC), NUMERIC)
    exp = mlserver_env.expected["credit-numeric"]
    assert out.prediction.tolist() == exp["predict"]
    np.testing.assert_allclose(out.probability, np.asarray(exp["predict_proba"]), rtol=0, atol=1e-9)
    assert not out.derived


def test_columns_layout_matches_the_model(engine: KServeEngine, mlserver_env: MLServerEnv, german) -> None:  # type: ignore[no-untyped-def]
    dep = engine.get_deployment("credit")
    request = rows(german, credit.FEATURES, range(1000))
    body = orjson.loads(engine.encode_request(dep, request, BINARY).body)
    assert body["parameters"] == {"content_type": "pd"}
    by_name = {i["name"]: i for i in body["inputs"]}
    assert by_name["Age"]["datatype"] == "INT64" and by_name["Age"]["shape"] == [1000, 1]
    assert by_name["Sex"]["datatype"] == "BYTES" and by_name["Sex"]["parameters"] == {"content_type": "str"}
    assert body["outputs"] == [{"name": "predict"}, {"name": "predict_proba"}]
    resp = engine.score(dep, request, BINARY)
    assert resp.fields == ["prediction", "probability"]
    out = normalized(resp, BINARY)
    exp = mlserver_env.expected["credit"]
    assert out.prediction.tolist() == exp["predict"]  # BYTES labels decoded to str
    np.testing.assert_allclose(out.probability, np.asarray(exp["predict_proba"]), rtol=0, atol=1e-9)


def test_multiclass_and_regression(engine: KServeEngine, mlserver_env: MLServerEnv, german) -> None:  # type: ignore[no-untyped-def]
    out = normalized(
        engine.score(engine.get_deployment("purpose"), rows(german, credit.PURPOSE_FEATURES, range(1000)), PURPOSE),
        PURPOSE,
    )
    exp = mlserver_env.expected["purpose"]
    assert exp["classes"] == credit.PURPOSE_CLASSES
    assert out.prediction.tolist() == exp["predict"]
    np.testing.assert_allclose(out.probability, np.asarray(exp["predict_proba"]), rtol=0, atol=1e-9)
    resp = engine.score(engine.get_deployment("amount"), rows(german, credit.AMOUNT_FEATURES, range(1000)), AMOUNT)
    assert resp.fields == ["prediction"]
    np.testing.assert_allclose(
        [v[0] for v in resp.values], mlserver_env.expected["amount"]["predict"], rtol=0, atol=1e-9
    )


def test_output_roles_pick_the_outputs(engine: KServeEngine, mlserver_env: MLServerEnv, german) -> None:  # type: ignore[no-untyped-def]
    dep = engine.get_deployment("credit")
    dep.options["output_roles"] = {"predict_proba": "probability"}  # ask for probabilities only
    resp = engine.score(dep, rows(german, credit.FEATURES, range(50)), BINARY)
    assert resp.fields == ["probability"]
    out = normalized(resp, BINARY)
    assert out.derived and out.prediction.tolist() == mlserver_env.expected["credit"]["predict"][:50]


def test_nested_and_flat_data_give_the_same_result(engine: KServeEngine, mlserver_env: MLServerEnv, german) -> None:  # type: ignore[no-untyped-def]
    dep = engine.get_deployment("credit-numeric")
    request = rows(german, credit.NUMERIC_FEATURES, range(6))
    flat = orjson.loads(engine.encode_request(dep, request, NUMERIC).body)
    nested = json.loads(json.dumps(flat))
    nested["inputs"][0]["data"] = [list(map(float, r)) for r in request.values]
    answers = []
    for body in (flat, nested):
        r = httpx.post(dep.scoring_url, json=body)  # type: ignore[arg-type]
        assert r.status_code == 200, r.text
        answers.append(r.json()["outputs"])
        back = engine.decode_request(dep, NativeRequest(orjson.dumps(body)), NUMERIC)
        assert back.fields == credit.NUMERIC_FEATURES and back.values == [
            [float(v) for v in row] for row in request.values
        ]
    assert answers[0] == answers[1]
    # nested BYTES/INT64 columns as the proxy may forward them (MLServer 1.7.1 itself answers a
    # nested pd request with a 500, so the adapter always sends flat data)
    cols = engine.decode_request(
        dep,
        NativeRequest(
            orjson.dumps(
                {
                    "parameters": {"content_type": "pd"},
                    "inputs": [
                        {"name": "Age", "shape": [2, 1], "datatype": "INT64", "data": [[29], [41]]},
                        {"name": "Sex", "shape": [2], "datatype": "BYTES", "data": ["female", "male"]},
                    ],
                }
            )
        ),
        ModelContext(feature_fields=["Age", "Sex"]),
    )
    assert cols.fields == ["Age", "Sex"] and cols.values == [[29, "female"], [41, "male"]]


def test_unknown_output_is_a_400_naming_engine_and_deployment(engine: KServeEngine, german) -> None:  # type: ignore[no-untyped-def]
    dep = engine.get_deployment("credit")
    dep.options["outputs"] = ["nope"]
    with pytest.raises(EngineRejected) as err:
        engine.score(dep, rows(german, credit.FEATURES, range(2)), BINARY)
    e = err.value
    assert e.engine_status == 400 and "nope" in (e.context["engine_body"] or "")
    assert "oip-test" in e.message and "deployment 'credit'" in e.message


def test_unknown_model_is_a_404(engine: KServeEngine, mlserver_env: MLServerEnv, german) -> None:  # type: ignore[no-untyped-def]
    ghost = Deployment(id="ghost", name="ghost", scoring_url=mlserver_env.url + "/v2/models/ghost/infer")
    with pytest.raises(EngineRejected) as err:
        engine.score(ghost, rows(german, credit.NUMERIC_FEATURES, range(2)), NUMERIC)
    assert err.value.engine_status == 404 and "ghost" in err.value.message


def test_null_in_a_tensor_names_row_and_field_and_sends_nothing(engine: KServeEngine, german) -> None:  # type: ignore[no-untyped-def]
    request = rows(german, credit.NUMERIC_FEATURES, range(4))
    request.values[2][request.fields.index("Age")] = None
    with pytest.raises(InvalidInput) as err:
        engine.score(engine.get_deployment("credit-numeric"), request, NUMERIC)
    assert err.value.context["row"] == 3 and err.value.context["field"] == "Age"


def test_echoed_id_must_match(engine: KServeEngine, german) -> None:  # type: ignore[no-untyped-def]
    dep = engine.get_deployment("credit-numeric")
    native = engine.encode_request(dep, rows(german, credit.NUMERIC_FEATURES, range(2)), NUMERIC)
    response = engine.send(dep, native, internal=True)
    assert engine.decode_response(dep, response, NUMERIC, 2).fields == ["prediction", "probability"]
    forged = NativeResponse(200, response.body, headers={"x-scrutiny-request-id": "another-id"})
    with pytest.raises(EngineResponseShape, match="is not the request id"):
        engine.decode_response(dep, forged, NUMERIC, 2)
    short = NativeResponse(200, response.body)
    with pytest.raises(EngineResponseShape, match="rows for 3 input rows"):
        engine.decode_response(dep, short, NUMERIC, 3)


def test_bind_discover_subscribe_score_and_log_through_the_api(
    client: httpx.Client, mlserver_env: MLServerEnv, german
) -> None:  # type: ignore[no-untyped-def]
    r = client.post(
        "/v1/bindings",
        json={"name": "mlserver", "engine_type": "kserve", "credentials": {"url": mlserver_env.url, "protocol": "v2"}},
    )
    assert r.status_code == 201, r.text
    binding = r.json()
    deps = {d["id"]: d for d in client.get(f"/v1/bindings/{binding['id']}/deployments").json()["deployments"]}
    assert deps["credit"]["asset_properties"]["feature_fields"] == credit.FEATURES
    r = client.post(
        "/v1/subscriptions",
        json={
            "binding_id": binding["id"],
            "deployment_id": "credit",
            "asset_properties": {"problem_type": "binary", "labels": credit.LABELS},
        },
    )
    assert r.status_code == 201, r.text
    sub = r.json()
    assert [c["name"] for c in sub["layout"]["features"]] == credit.FEATURES  # from the model metadata
    idx = list(range(100, 130))
    request = rows(german, credit.FEATURES, idx)
    r = client.post(f"/v1/subscriptions/{sub['id']}/score", json=request.to_dict())
    assert r.status_code == 200, r.text
    scored = r.json()
    assert (
        scored["fields"] == ["prediction", "probability", "prediction_probability"] and not scored["prediction_derived"]
    )
    exp = mlserver_env.expected["credit"]
    r = client.post(
        f"/v1/subscriptions/{sub['id']}/payloads",
        json=[
            {
                "scoring_id": "oip",
                "request": request.to_dict(),
                "response": {"fields": scored["fields"], "values": scored["values"]},
            }
        ],
    )
    assert r.status_code in (200, 201) and r.json()["stored"] == 30, r.text
    page = client.get(f"/v1/subscriptions/{sub['id']}/payloads", params={"limit": 100}).json()
    assert page["total"] == 30
    for row in page["rows"]:
        i = idx[int(row["scoring_id"].rsplit("-", 1)[1]) - 1]
        proba = row["probability"] if isinstance(row["probability"], list) else json.loads(row["probability"])
        assert row["prediction"] == exp["predict"][i]
        np.testing.assert_allclose(proba, exp["predict_proba"][i], rtol=0, atol=1e-9)
        assert (
            abs(row["prediction_probability"] - exp["predict_proba"][i][credit.LABELS.index(row["prediction"])]) < 1e-9
        )


def test_a_server_error_is_a_5xx_naming_engine_and_deployment(engine: KServeEngine, german) -> None:  # type: ignore[no-untyped-def]
    # MLServer 1.7.1 fails (HTTP 500) on a DataFrame request whose columns are nested lists
    dep = engine.get_deployment("credit")
    body = orjson.loads(engine.encode_request(dep, rows(german, credit.FEATURES, range(2)), BINARY).body)
    for i in body["inputs"]:
        i["data"] = [[v] for v in i["data"]]
    with pytest.raises(EngineServerError) as err:
        engine.send(dep, NativeRequest(orjson.dumps(body)), internal=True)
    assert err.value.engine_status == 500 and "oip-test" in err.value.message and "'credit'" in err.value.message


def test_native_inference_through_the_proxy_is_forwarded_and_logged(service, mlserver_env: MLServerEnv, german) -> None:  # type: ignore[no-untyped-def]
    binding, _ = service.bindings.create(
        name="oip-proxy", engine_type="kserve", credentials={"url": mlserver_env.url, "protocol": "v2"}
    )
    sub = service.subscriptions.create(
        binding_id=binding.id,
        deployment_id="credit",
        asset_properties={"problem_type": "binary", "labels": credit.LABELS},
    )
    idx = list(range(500, 508))
    request = rows(german, credit.FEATURES, idx)
    engine = service.bindings.engine(binding.id)
    native = engine.encode_request(engine.get_deployment("credit"), request, BINARY)
    for proxied in serve(service):
        with proxied.client() as c:
            r = c.post(f"/proxy/{sub.id}", content=native.body, headers={"Content-Type": "application/json"})
        assert r.status_code == 200, r.text
        assert r.json()["id"] == orjson.loads(native.body)["id"]  # MLServer's own answer, forwarded
        proxied.flush()
        stored = sorted(payload_rows(service, sub.id), key=lambda row: int(row["scoring_id"].rsplit("-", 1)[1]))
        exp = mlserver_env.expected["credit"]
        assert [row["prediction"] for row in stored] == [exp["predict"][i] for i in idx]
        np.testing.assert_allclose(
            [row["probability"] for row in stored], [exp["predict_proba"][i] for i in idx], rtol=0, atol=1e-9
        )
        assert [row["Sex"] for row in stored] == [german["Sex"].iloc[i] for i in idx]
