"""The MLflow adapter against real MLflow 3.17.2 servers on loopback (engines.md §2).

One tracking server (model registry) and six ``mlflow models serve --env-manager local``
scoring servers run from the MLflow venv for the whole module; the models are the demo's
credit pipelines, trained and saved by that venv (``tests/servers/mlflow_models.py``), which
also writes each model's in-process outputs: the oracle every served output is compared with.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from scrutiny._server import BackgroundServer, free_port
from scrutiny.core.outputs import normalize_rows
from scrutiny.core.scoring_format import ScoringRequest
from scrutiny.demo import credit
from scrutiny.engines import BindingConfig, Deployment, ModelContext, NativeRequest
from scrutiny.engines.errors import EngineAuthError, EngineBadResponse, EngineRejected, EngineTimeout, EngineUnreachable
from scrutiny.engines.mlflow.engine import REQUEST_FORMATS, MlflowEngine
from scrutiny.errors import InvalidInput, NotFound
from tests.servers.gateway import Gateway
from tests.servers.procs import (
    SERVER_TESTS,
    SERVERS,
    ServerProcess,
    report_start,
    run,
    start_all,
    venv_env,
    venv_python,
)
from tests.support.proxy import payload_rows, serve

pytestmark = SERVER_TESTS

MODELS = ["credit-proba", "credit-label", "credit-pyfunc", "purpose-proba", "amount"]


@dataclass
class MlflowEnv:
    urls: dict[str, str]  # server name -> root URL
    tracking_url: str
    expected: dict[str, Any]
    doomed: ServerProcess  # a spare credit-proba server, killed by the unreachable test


@pytest.fixture(scope="module")
def mlflow_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowEnv]:
    python = venv_python("mlflow")
    tmp = tmp_path_factory.mktemp("mlflow")
    mlflow_bin = str(python.parent / "mlflow")
    env = venv_env(python, MLFLOW_TRACKING_URI="")
    tport = free_port()
    tracking = ServerProcess(
        [
            mlflow_bin,
            "server",
            "--backend-store-uri",
            f"sqlite:///{tmp}/registry.db",
            "--artifacts-destination",
            str(tmp / "artifacts"),
            "-h",
            "127.0.0.1",
            "-p",
            str(tport),
            "--workers",
            "1",
        ],
        env,
        f"http://127.0.0.1:{tport}/health",
        tmp / "tracking.log",
        cwd=tmp,
    )
    procs = [tracking]
    try:
        tracking.wait_ready()
        report_start("mlflow tracking server", tracking)
        run(python, str(SERVERS / "mlflow_models.py"), str(tmp / "models"), "--register", tracking.ready_url[:-7])

        def scoring_server(name: str) -> ServerProcess:
            port = free_port()
            model_dir = tmp / "models" / ("credit-proba" if name == "doomed" else name)
            argv = [mlflow_bin, "models", "serve", "-m", str(model_dir), "--env-manager", "local"]
            return ServerProcess(
                [*argv, "-h", "127.0.0.1", "-p", str(port)],
                env,
                f"http://127.0.0.1:{port}/ping",
                tmp / f"{name}.log",
                cwd=tmp,
            )

        servers = start_all({name: partial(scoring_server, name) for name in [*MODELS, "doomed"]}, procs)
        for name, s in servers.items():
            report_start(f"mlflow models serve ({name})", s)
        expected = json.loads((tmp / "models" / "expected.json").read_text())
        urls = {name: s.ready_url.removesuffix("/ping") for name, s in servers.items()}
        yield MlflowEnv(urls, tracking.ready_url.removesuffix("/health"), expected, servers["doomed"])
    finally:
        with ThreadPoolExecutor(len(procs)) as pool:  # the graceful shutdowns at once
            list(pool.map(lambda p: p.stop(), procs))


def engine_for(credentials: dict[str, Any], name: str = "mlflow-test") -> MlflowEngine:
    MlflowEngine.check_credentials(credentials)
    return MlflowEngine(
        BindingConfig(id="b1", name=name, engine_type="mlflow", settings={}, credentials=credentials, retries=2)
    )


@pytest.fixture(scope="module")
def engine(mlflow_env: MlflowEnv) -> Iterator[MlflowEngine]:
    servers = [{"name": n, "url": u} for n, u in mlflow_env.urls.items() if n != "doomed"]
    servers[0]["model_uri"] = "models:/credit@champion"
    e = engine_for({"servers": servers, "tracking_uri": mlflow_env.tracking_url})
    yield e
    e.close()


def rows(german, features: list[str], idx: Any) -> ScoringRequest:  # type: ignore[no-untyped-def]
    df = german.iloc[np.asarray(idx)][features]
    return ScoringRequest(list(features), df.astype(object).values.tolist())


BINARY = ModelContext(feature_fields=credit.FEATURES, labels=credit.LABELS, problem_type="binary")
PURPOSE = ModelContext(feature_fields=credit.PURPOSE_FEATURES, labels=credit.PURPOSE_CLASSES, problem_type="multiclass")
AMOUNT = ModelContext(feature_fields=credit.AMOUNT_FEATURES, problem_type="regression", probability_fields=[])


def outputs(engine: MlflowEngine, dep_id: str, request: ScoringRequest, ctx: ModelContext, **options: Any):  # type: ignore[no-untyped-def]
    dep = engine.get_deployment(dep_id)
    dep.options.update(options)
    resp = engine.score(dep, request, ctx)
    return resp, normalize_rows(
        resp.fields,
        resp.values,
        classification=ctx.problem_type != "regression",
        labels=ctx.labels,
        prediction_field=ctx.prediction_field,
        probability_fields=ctx.probability_fields,
    )


# -- discovery ---------------------------------------------------------------------------------


def test_discovery_lists_servers_with_health_version_and_registry_signature(engine: MlflowEngine) -> None:
    deps = {d.id: d for d in engine.list_deployments()}
    assert set(deps) == {*MODELS, "models:/amount/1"}
    for name in MODELS:
        d = deps[name]
        assert d.status == "ready"
        assert d.asset["runtime_environment"] == "mlflow-3.17.2"
        assert d.scoring_url and d.scoring_url.endswith("/invocations")
    served = deps["credit-proba"]  # bound to models:/credit@champion = version 2
    assert served.asset["name"] == "credit" and served.asset["model_version"] == "2"
    assert served.asset["aliases"] == ["champion"] and served.asset["url"].startswith("models:/m-")
    schema = served.asset_properties["input_data_schema"]["fields"]
    assert [f["name"] for f in schema] == credit.FEATURES
    types = {f["name"]: f["type"] for f in schema}
    assert types["LoanDuration"] == "long" and types["Sex"] == "string"
    assert served.options["output_mode"] == "predict_proba"  # the MLmodel's predict_fn
    assert served.created_at and served.created_at.endswith("Z")
    # a registered version that no server serves is listed, but cannot be scored
    unserved = deps["models:/amount/1"]
    assert unserved.status == "registered" and unserved.scoring_url is None
    assert unserved.asset_properties == {}  # logged without a signature
    with pytest.raises(EngineRejected) as err:
        engine.score(unserved, ScoringRequest(["Age"], [[30]]), AMOUNT)
    assert "models:/amount/1" in err.value.message and "mlflow-test" in err.value.message


def test_registry_versions_and_aliases_resolve(engine: MlflowEngine) -> None:
    v1 = engine.get_deployment("models:/credit/1")
    assert v1.asset["model_version"] == "1" and v1.asset["aliases"] == []
    assert len(v1.asset_properties["feature_fields"]) == 21
    latest = engine.get_deployment("models:/credit/latest")
    assert latest.asset["model_version"] == "2"
    with pytest.raises(NotFound, match="models:/credit/99"):
        engine.get_deployment("models:/credit/99")
    # a server whose model_uri the registry does not know is still listed, and says why
    e = engine_for(
        {
            "servers": [{"name": "odd", "url": engine.servers[0]["url"], "model_uri": "models:/nope/1"}],
            "tracking_uri": engine.binding.credentials["tracking_uri"],
        }
    )
    odd = e.get_deployment("odd")
    assert odd.status == "ready" and "models:/nope/1 not found in the registry" in odd.description
    assert odd.asset_properties == {}


def test_a_down_server_is_listed_unreachable_not_fatal(mlflow_env: MlflowEnv) -> None:
    e = engine_for(
        {"servers": [{"url": mlflow_env.urls["amount"]}, {"name": "gone", "url": f"http://127.0.0.1:{free_port()}"}]}
    )
    deps = {d.id: d for d in e.list_deployments()}
    assert deps["gone"].status == "unreachable"
    default_name = mlflow_env.urls["amount"].removeprefix("http://")
    assert deps[default_name].status == "ready"  # default deployment id = host:port


# -- request formats ---------------------------------------------------------------------------


def test_every_request_format_gives_identical_outputs_equal_to_the_model(
    engine: MlflowEngine, mlflow_env: MlflowEnv, german
) -> None:  # type: ignore[no-untyped-def]
    idx = np.arange(0, 1000, 7)
    request = rows(german, credit.FEATURES, idx)
    want = np.asarray(mlflow_env.expected["credit"]["predict_proba"])[idx]
    got = {}
    for fmt in REQUEST_FORMATS:
        resp, out = outputs(engine, "credit-proba", request, BINARY, request_format=fmt)
        assert resp.fields == ["probability"]  # a vector per row; the prediction is derived
        assert out.derived
        got[fmt] = out.probability
        np.testing.assert_allclose(out.probability, want, rtol=0, atol=1e-9)
        assert out.prediction.tolist() == np.asarray(mlflow_env.expected["credit"]["predict"])[idx].tolist()
    for fmt in REQUEST_FORMATS[1:]:
        np.testing.assert_allclose(got[fmt], got["dataframe_split"], rtol=0, atol=1e-12)


@pytest.mark.parametrize("fmt", REQUEST_FORMATS)
def test_decode_request_reads_every_native_form_back(engine: MlflowEngine, fmt: str, german) -> None:  # type: ignore[no-untyped-def]
    request = rows(german, credit.FEATURES, range(5))
    dep = engine.get_deployment("credit-proba")
    dep.options["request_format"] = fmt
    native = engine.encode_request(dep, request, BINARY)
    back = engine.decode_request(dep, native, BINARY)
    assert back.fields == request.fields
    assert back.values == request.values  # CSV numbers come back as numbers


def test_decode_request_accepts_the_other_documented_shapes(engine: MlflowEngine) -> None:
    dep = engine.get_deployment("credit-proba")
    ctx = ModelContext(feature_fields=["LoanDuration", "Sex", "Age"])
    forms = [
        {
            "dataframe_split": {
                "columns": ["LoanDuration", "Sex", "Age"],
                "index": [7, 8],
                "data": [[13, "female", 29], [24, "male", 41]],
            }
        },
        {"dataframe_split": {"data": [[13, "female", 29], [24, "male", 41]]}},  # columns from the subscription
        {"instances": [[13, "female", 29], [24, "male", 41]]},
        {"instances": {"LoanDuration": [13, 24], "Sex": ["female", "male"], "Age": [29, 41]}},
        {"inputs": [{"LoanDuration": 13, "Sex": "female", "Age": 29}, {"LoanDuration": 24, "Sex": "male", "Age": 41}]},
        {
            "dataframe_records": [
                {"LoanDuration": 13, "Sex": "female", "Age": 29},
                {"LoanDuration": 24, "Sex": "male", "Age": 41},
            ],
            "params": {"x": 1},
        },
    ]
    for body in forms:
        t = engine.decode_request(dep, NativeRequest(orjson.dumps(body)), ctx)
        assert t.fields == ["LoanDuration", "Sex", "Age"], body
        assert t.values == [[13, "female", 29], [24, "male", 41]], body
    with pytest.raises(InvalidInput, match="exactly one of"):
        engine.decode_request(dep, NativeRequest(b'{"fields": ["a"], "values": [[1]]}'), ctx)


def test_openscale_body_gets_mlflows_400_as_a_clear_rejection(engine: MlflowEngine, german) -> None:  # type: ignore[no-untyped-def]
    dep = engine.get_deployment("credit-proba")
    body = orjson.dumps(rows(german, credit.FEATURES, range(2)).to_dict())
    with pytest.raises(EngineRejected) as err:
        engine.send(dep, NativeRequest(body), internal=True)
    e = err.value
    assert e.engine_status == 400 and e.context["engine_code"] == "BAD_REQUEST"
    assert "mlflow-test" in e.message and "credit-proba" in e.message
    assert "exactly one of the input fields" in (e.context["engine_body"] or "")


# -- response shapes ---------------------------------------------------------------------------


def test_label_model_with_output_mode_predict(engine: MlflowEngine, mlflow_env: MlflowEnv, german) -> None:  # type: ignore[no-untyped-def]
    resp, out = outputs(
        engine, "credit-label", rows(german, credit.FEATURES, range(200)), BINARY, output_mode="predict"
    )
    assert resp.fields == ["prediction"] and out.probability is None
    assert out.prediction.tolist() == mlflow_env.expected["credit"]["predict"][:200]


def test_pyfunc_records_carry_prediction_and_probability(engine: MlflowEngine, mlflow_env: MlflowEnv, german) -> None:  # type: ignore[no-untyped-def]
    resp, out = outputs(engine, "credit-pyfunc", rows(german, credit.FEATURES, range(300)), BINARY)
    assert resp.fields == ["prediction", "probability"] and not out.derived
    assert out.prediction.tolist() == mlflow_env.expected["credit"]["predict"][:300]
    want = np.asarray(mlflow_env.expected["credit"]["predict_proba"][:300])
    np.testing.assert_allclose(out.probability, want, rtol=0, atol=1e-9)
    np.testing.assert_allclose(out.prediction_probability, want.max(axis=1), rtol=0, atol=1e-9)


def test_multiclass_probabilities_in_label_order(engine: MlflowEngine, mlflow_env: MlflowEnv, german) -> None:  # type: ignore[no-untyped-def]
    exp = mlflow_env.expected["purpose"]
    assert exp["classes"] == credit.PURPOSE_CLASSES
    _resp, out = outputs(engine, "purpose-proba", rows(german, credit.PURPOSE_FEATURES, range(1000)), PURPOSE)
    assert out.probability is not None and out.probability.shape == (1000, 4)
    np.testing.assert_allclose(out.probability, np.asarray(exp["predict_proba"]), rtol=0, atol=1e-9)
    assert out.prediction.tolist() == exp["predict"]


def test_regression_predictions(engine: MlflowEngine, mlflow_env: MlflowEnv, german) -> None:  # type: ignore[no-untyped-def]
    resp, out = outputs(
        engine, "amount", rows(german, credit.AMOUNT_FEATURES, range(1000)), AMOUNT, request_format="csv"
    )
    assert resp.fields == ["prediction"] and out.probability is None
    np.testing.assert_allclose(out.prediction, np.asarray(mlflow_env.expected["amount"]["predict"]), rtol=0, atol=1e-9)


def test_5001_rows_keep_their_order(engine: MlflowEngine, mlflow_env: MlflowEnv, german) -> None:  # type: ignore[no-untyped-def]
    idx = np.random.default_rng(7).integers(0, 1000, 5001)
    request = rows(german, credit.FEATURES, idx)
    want = np.asarray(mlflow_env.expected["credit"]["predict_proba"])[idx]
    for batch in (None, 999):  # one call (the default limit is 5001 rows), then six chunks
        options = {"max_batch_rows": batch} if batch else {}
        _, out = outputs(engine, "credit-proba", request, BINARY, **options)
        np.testing.assert_allclose(out.probability, want, rtol=0, atol=1e-9)


# -- end to end through the REST API -----------------------------------------------------------


def test_bind_discover_subscribe_score_and_log_through_the_api(
    client: httpx.Client, mlflow_env: MlflowEnv, german
) -> None:  # type: ignore[no-untyped-def]
    r = client.post(
        "/v1/bindings",
        json={
            "name": "mlflow-e2e",
            "engine_type": "mlflow",
            "credentials": {
                "servers": [
                    {"name": "credit", "url": mlflow_env.urls["credit-proba"], "model_uri": "models:/credit/2"},
                    {"name": "purpose", "url": mlflow_env.urls["purpose-proba"], "output_mode": "predict_proba"},
                ],
                "tracking_uri": mlflow_env.tracking_url,
            },
        },
    )
    assert r.status_code == 201, r.text
    binding = r.json()
    assert binding["engine_type"] == "mlflow"
    r = client.get(f"/v1/bindings/{binding['id']}/deployments")
    assert r.status_code == 200, r.text
    deps = {d["id"]: d for d in r.json()["deployments"]}
    assert deps["credit"]["status"] == "ready" and deps["purpose"]["status"] == "ready"
    assert deps["credit"]["asset_properties"]["feature_fields"] == credit.FEATURES

    r = client.post(
        "/v1/subscriptions",
        json={
            "binding_id": binding["id"],
            "deployment_id": "credit",
            "asset_properties": {"problem_type": "binary", "label_column": "Risk", "labels": credit.LABELS},
        },
    )
    assert r.status_code == 201, r.text
    sub = r.json()
    assert [c["name"] for c in sub["layout"]["features"]] == credit.FEATURES  # from the signature

    idx = list(range(40, 80))
    request = rows(german, credit.FEATURES, idx)
    r = client.post(f"/v1/subscriptions/{sub['id']}/score", json=request.to_dict())
    assert r.status_code == 200, r.text
    scored = r.json()
    assert scored["fields"] == ["prediction", "probability", "prediction_probability"]
    assert scored["prediction_derived"] is True
    exp_proba = np.asarray(mlflow_env.expected["credit"]["predict_proba"])[idx]
    exp_pred = [mlflow_env.expected["credit"]["predict"][i] for i in idx]
    np.testing.assert_allclose([v[1] for v in scored["values"]], exp_proba, rtol=0, atol=1e-9)
    assert [v[0] for v in scored["values"]] == exp_pred

    # log that traffic as payload, then read the stored rows back
    record = {
        "scoring_id": "mlflow-e2e-1",
        "request": request.to_dict(),
        "response": {"fields": scored["fields"], "values": scored["values"]},
    }
    r = client.post(f"/v1/subscriptions/{sub['id']}/payloads", json=[record])
    assert r.status_code in (200, 201), r.text
    assert r.json()["stored"] == len(idx)
    r = client.get(f"/v1/subscriptions/{sub['id']}/payloads", params={"limit": 1000})
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["total"] == len(idx)
    stored = {row["scoring_id"]: row for row in page["rows"]}
    for n, i in enumerate(idx, start=1):
        row = stored[f"mlflow-e2e-1-{n}"]
        assert row["prediction"] == mlflow_env.expected["credit"]["predict"][i]
        proba = row["probability"] if isinstance(row["probability"], list) else json.loads(row["probability"])
        np.testing.assert_allclose(proba, exp_proba[n - 1], rtol=0, atol=1e-9)
        k = credit.LABELS.index(row["prediction"])
        assert abs(row["prediction_probability"] - exp_proba[n - 1][k]) < 1e-9
        assert row["Age"] == int(german["Age"].iloc[i])

    # multiclass through the API as well: a second subscription on the same binding
    r = client.post(
        "/v1/subscriptions",
        json={
            "binding_id": binding["id"],
            "deployment_id": "purpose",
            "deployment": {"options": {"request_format": "dataframe_records"}},  # on top of discovery
            "asset_properties": {
                "problem_type": "multiclass",
                "feature_fields": credit.PURPOSE_FEATURES,
                "labels": credit.PURPOSE_CLASSES,
            },
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["deployment"]["options"] == {"output_mode": "predict_proba", "request_format": "dataframe_records"}
    r = client.post(
        f"/v1/subscriptions/{r.json()['id']}/score", json=rows(german, credit.PURPOSE_FEATURES, idx).to_dict()
    )
    assert r.status_code == 200, r.text
    assert [v[0] for v in r.json()["values"]] == [mlflow_env.expected["purpose"]["predict"][i] for i in idx]


def test_native_traffic_decoded_by_the_adapter_is_logged(
    client: httpx.Client, service, mlflow_env: MlflowEnv, german
) -> None:  # type: ignore[no-untyped-def]
    """What the proxy does: a native MLflow exchange, decoded by the adapter, stored as payload."""
    r = client.post(
        "/v1/bindings",
        json={
            "name": "mlflow-native",
            "engine_type": "mlflow",
            "credentials": {"servers": [{"name": "pyfunc", "url": mlflow_env.urls["credit-pyfunc"]}]},
        },
    )
    binding = r.json()
    r = client.post(
        "/v1/subscriptions",
        json={
            "binding_id": binding["id"],
            "deployment_id": "pyfunc",
            "asset_properties": {"problem_type": "binary", "feature_fields": credit.FEATURES, "labels": credit.LABELS},
        },
    )
    assert r.status_code == 201, r.text
    sub_id = r.json()["id"]
    idx = list(range(10))
    df = german.iloc[idx][credit.FEATURES]
    csv_body = df.to_csv(index=False).encode()
    native = httpx.post(
        mlflow_env.urls["credit-pyfunc"] + "/invocations", content=csv_body, headers={"Content-Type": "text/csv"}
    )
    assert native.status_code == 200
    engine = service.bindings.engine(binding["id"])
    dep = engine.get_deployment("pyfunc")
    req = engine.decode_request(dep, NativeRequest(csv_body, "text/csv"), BINARY)
    from scrutiny.engines import NativeResponse

    resp = engine.decode_response(dep, NativeResponse(200, native.content), BINARY, len(idx))
    r = client.post(
        f"/v1/subscriptions/{sub_id}/payloads", json=[{"request": req.to_dict(), "response": resp.to_dict()}]
    )
    assert r.status_code in (200, 201), r.text
    page = client.get(f"/v1/subscriptions/{sub_id}/payloads").json()
    assert page["total"] == 10
    assert sorted(row["prediction"] for row in page["rows"]) == sorted(
        mlflow_env.expected["credit"]["predict"][i] for i in idx
    )


def test_a_killed_server_raises_unreachable_and_nothing_is_logged(
    client: httpx.Client, mlflow_env: MlflowEnv, german
) -> None:  # type: ignore[no-untyped-def]
    url = mlflow_env.urls["doomed"]
    binding = client.post(
        "/v1/bindings",
        json={
            "name": "mlflow-doomed",
            "engine_type": "mlflow",
            "credentials": {"servers": [{"name": "doomed", "url": url}]},
        },
    ).json()
    sub = client.post(
        "/v1/subscriptions",
        json={
            "binding_id": binding["id"],
            "deployment_id": "doomed",
            "asset_properties": {"problem_type": "binary", "feature_fields": credit.FEATURES, "labels": credit.LABELS},
        },
    ).json()
    request = rows(german, credit.FEATURES, range(3)).to_dict()
    if mlflow_env.doomed.proc.poll() is None:  # first of the store backends: it still serves
        assert client.post(f"/v1/subscriptions/{sub['id']}/score", json=request).status_code == 200
        mlflow_env.doomed.kill()
    r = client.post(f"/v1/subscriptions/{sub['id']}/score", json=request)
    assert r.status_code == 502, r.text
    err = r.json()
    text = json.dumps(err)
    assert "engine_unreachable" in text and "mlflow-doomed" in text and "doomed" in text
    assert client.get(f"/v1/subscriptions/{sub['id']}/payloads").json()["total"] == 0
    e = engine_for({"servers": [{"name": "doomed", "url": url}]}, name="direct")
    with pytest.raises(EngineUnreachable, match="deployment 'doomed'"):
        e.score(e.get_deployment("doomed"), ScoringRequest(credit.FEATURES, request["values"]), BINARY)
    assert e.get_deployment("doomed").status == "unreachable"


# -- behind a gateway: auth, timeouts, broken bodies -------------------------------------------


@pytest.fixture(scope="module")
def gateway(mlflow_env: MlflowEnv) -> Iterator[tuple[str, Gateway]]:
    gw = Gateway(
        {"*": mlflow_env.urls["credit-proba"]}, token="gw-token", basic=("svc", "gw-password"), delay_seconds=3
    )
    with BackgroundServer(gw.app()) as srv:
        yield srv.url, gw


@pytest.mark.parametrize(
    ("good", "bad"),
    [
        ({"token": "gw-token"}, {"token": "wrong"}),
        ({"username": "svc", "password": "gw-password"}, {"username": "svc", "password": "wrong"}),
    ],
    ids=["bearer", "basic"],
)
def test_gateway_auth_is_sent_and_a_refusal_names_engine_and_deployment(
    gateway: tuple[str, Gateway], mlflow_env: MlflowEnv, german, good: dict, bad: dict
) -> None:  # type: ignore[no-untyped-def]
    url, _ = gateway
    ok = engine_for({"servers": [{"name": "gw", "url": url}], **good})
    dep = ok.get_deployment("gw")
    assert dep.status == "ready" and dep.asset["runtime_environment"] == "mlflow-3.17.2"
    _, out = outputs(ok, "gw", rows(german, credit.FEATURES, range(20)), BINARY)
    np.testing.assert_allclose(out.probability, mlflow_env.expected["credit"]["predict_proba"][:20], rtol=0, atol=1e-9)
    refused = engine_for({"servers": [{"name": "gw", "url": url}], **bad}, name="mlflow-badkey")
    dep = refused.get_deployment("gw")
    assert dep.status == "unhealthy (HTTP 401)"
    with pytest.raises(EngineAuthError) as err:
        refused.score(dep, rows(german, credit.FEATURES, range(2)), BINARY)
    assert "mlflow-badkey" in err.value.message and "deployment 'gw'" in err.value.message
    assert "wrong" not in err.value.message and "gw-password" not in err.value.message  # no secrets echoed


def test_gateway_timeout_and_truncated_body(gateway: tuple[str, Gateway], german) -> None:  # type: ignore[no-untyped-def]
    url, _ = gateway
    creds = {"servers": [{"name": "gw", "url": url}], "token": "gw-token"}
    MlflowEngine.check_credentials(creds)
    slow = MlflowEngine(
        BindingConfig(
            id="b", name="mlflow-slow", engine_type="mlflow", settings={}, credentials=creds, read_timeout=1.0
        )
    )
    dep = slow.get_deployment("gw")
    dep.request_headers["X-Test-Delay"] = "1"
    t0 = time.monotonic()
    with pytest.raises(EngineTimeout, match="deployment 'gw'"):
        slow.score(dep, rows(german, credit.FEATURES, range(2)), BINARY)
    assert time.monotonic() - t0 < 2.5  # one read timeout, never retried
    broken = engine_for(creds, name="mlflow-broken")
    dep = broken.get_deployment("gw")
    dep.request_headers["X-Test-Truncate"] = "1"
    with pytest.raises(EngineBadResponse, match="not JSON"):
        broken.score(dep, rows(german, credit.FEATURES, range(5)), BINARY)


@pytest.mark.parametrize("fmt", ["dataframe_split", "csv", "common"])
def test_native_traffic_through_the_proxy_is_forwarded_and_logged(
    service, mlflow_env: MlflowEnv, german, fmt: str
) -> None:  # type: ignore[no-untyped-def]
    """An application sends MLflow's own body to /proxy/{id}: it gets MLflow's exact answer, and
    the background writer decodes the exchange with this adapter into payload rows."""
    binding, _ = service.bindings.create(
        name="mlflow-proxy",
        engine_type="mlflow",
        credentials={"servers": [{"name": "credit", "url": mlflow_env.urls["credit-proba"]}]},
    )
    props = {"problem_type": "binary", "feature_fields": credit.FEATURES, "labels": credit.LABELS}
    schema = [{"name": c, "type": "long" if german[c].dtype.kind == "i" else "string"} for c in credit.FEATURES]
    sub = service.subscriptions.create(
        binding_id=binding.id, deployment_id="credit", asset_properties={**props, "input_data_schema": schema}
    )
    idx = list(range(300, 312))
    request = rows(german, credit.FEATURES, idx)
    if fmt == "common":
        body, ctype = orjson.dumps(request.to_dict()), "application/json"
    else:
        native = service.bindings.engine(binding.id).encode_request(
            Deployment(id="credit", name="credit", options={"request_format": fmt}), request, BINARY
        )
        body, ctype = native.body, native.content_type
    for proxied in serve(service):
        with proxied.client() as c:
            r = c.post(f"/proxy/{sub.id}", content=body, headers={"Content-Type": ctype})
        assert r.status_code == 200, r.text
        if fmt == "common":  # converted both ways by the adapter
            assert r.json()["fields"] == ["probability"]
        else:  # MLflow's own answer, untouched
            assert (
                r.content
                == httpx.post(
                    mlflow_env.urls["credit-proba"] + "/invocations", content=body, headers={"Content-Type": ctype}
                ).content
            )
        proxied.flush()
        stored = sorted(payload_rows(service, sub.id), key=lambda row: int(row["scoring_id"].rsplit("-", 1)[1]))
        assert len(stored) == len(idx)
        want = np.asarray(mlflow_env.expected["credit"]["predict_proba"])[idx]
        np.testing.assert_allclose([row["probability"] for row in stored], want, rtol=0, atol=1e-9)
        assert [row["prediction"] for row in stored] == [mlflow_env.expected["credit"]["predict"][i] for i in idx]
        assert [row["Age"] for row in stored] == [int(german["Age"].iloc[i]) for i in idx]
