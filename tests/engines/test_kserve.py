"""The KServe adapter against a real KServe 0.21 ``ModelServer`` (engines.md §4, and §3 on KServe).

``kserve.ModelServer`` starts offline, without Kubernetes, from its own venv
(``tests/servers/kserve_server.py``): custom ``kserve.Model`` classes wrap the demo's credit
pipelines and answer the V1 protocol and the Open Inference Protocol on one loopback port.
KServe has no ``/v2/repository/index``, so the V2 binding lists its models by hand.
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

from scrutiny._server import BackgroundServer, free_port
from scrutiny.core.outputs import normalize_rows
from scrutiny.core.scoring_format import ScoringRequest
from scrutiny.demo import credit
from scrutiny.engines import BindingConfig, Deployment, ModelContext, NativeRequest
from scrutiny.engines.errors import DiscoveryUnsupported, EngineAuthError, EngineRejected
from scrutiny.engines.kserve.engine import KServeEngine
from scrutiny.errors import InvalidInput
from tests.servers.gateway import Gateway
from tests.servers.procs import SERVER_TESTS, SERVERS, ServerProcess, report_start, venv_env, venv_python

pytestmark = SERVER_TESTS
MODELS = ["credit", "credit-dict", "purpose", "amount"]


@dataclass
class KServeEnv:
    url: str
    expected: dict[str, Any]


@pytest.fixture(scope="module")
def kserve_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KServeEnv]:
    python = venv_python("kserve")
    tmp = tmp_path_factory.mktemp("kserve")
    port = free_port()
    server = ServerProcess(
        [str(python), str(SERVERS / "kserve_server.py"), str(port), str(tmp / "expected.json")],
        venv_env(python),
        f"http://127.0.0.1:{port}/v1/models/amount",
        tmp / "kserve.log",
        cwd=tmp,
    )
    try:
        server.wait_ready()
        report_start("kserve ModelServer (4 models)", server)
        yield KServeEnv(f"http://127.0.0.1:{port}", json.loads((tmp / "expected.json").read_text()))
    finally:
        server.stop()


def engine_for(url: str, protocol: str, name: str = "kserve-test", **credentials: Any) -> KServeEngine:
    creds = {"url": url, "protocol": protocol, **credentials}
    KServeEngine.check_credentials(creds)
    return KServeEngine(
        BindingConfig(id="b3", name=name, engine_type="kserve", settings={}, credentials=creds, retries=2)
    )


BINARY = ModelContext(feature_fields=credit.FEATURES, labels=credit.LABELS, problem_type="binary")
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


# -- V1 ----------------------------------------------------------------------------------------


def test_v1_discovery_lists_models_with_readiness(kserve_env: KServeEnv) -> None:
    deps = engine_for(kserve_env.url, "v1").list_deployments()
    assert [d.id for d in deps] == MODELS
    assert all(d.status == "ready" for d in deps)
    assert deps[0].scoring_url == f"{kserve_env.url}/v1/models/credit:predict"


def test_v1_lists_of_features_give_probability_vectors(kserve_env: KServeEnv, german) -> None:  # type: ignore[no-untyped-def]
    e = engine_for(kserve_env.url, "v1")
    dep = e.get_deployment("credit")
    shuffled = ScoringRequest(
        list(reversed(credit.FEATURES)), [list(reversed(r)) for r in rows(german, credit.FEATURES, range(500)).values]
    )
    body = orjson.loads(e.encode_request(dep, shuffled, BINARY).body)
    assert body["instances"][0] == rows(german, credit.FEATURES, [0]).values[0]  # sent in feature order
    resp = e.score(dep, shuffled, BINARY)
    assert resp.fields == ["probability"]
    out = normalized(resp, BINARY)
    exp = kserve_env.expected["credit"]
    np.testing.assert_allclose(out.probability, np.asarray(exp["predict_proba"][:500]), rtol=0, atol=1e-9)
    assert out.derived and out.prediction.tolist() == exp["predict"][:500]


def test_v1_dict_instances_and_record_predictions(kserve_env: KServeEnv, german) -> None:  # type: ignore[no-untyped-def]
    e = engine_for(kserve_env.url, "v1", models=[{"name": "credit-dict", "instance_format": "dict"}])
    dep = e.get_deployment("credit-dict")
    request = rows(german, credit.FEATURES, range(300))
    assert isinstance(orjson.loads(e.encode_request(dep, request, BINARY).body)["instances"][0], dict)
    resp = e.score(dep, request, BINARY)
    assert resp.fields == ["prediction", "probability"]
    out = normalized(resp, BINARY)
    exp = kserve_env.expected["credit"]
    assert out.prediction.tolist() == exp["predict"][:300] and not out.derived
    np.testing.assert_allclose(out.probability, np.asarray(exp["predict_proba"][:300]), rtol=0, atol=1e-9)


def test_v1_multiclass_and_regression(kserve_env: KServeEnv, german) -> None:  # type: ignore[no-untyped-def]
    e = engine_for(kserve_env.url, "v1")
    out = normalized(
        e.score(e.get_deployment("purpose"), rows(german, credit.PURPOSE_FEATURES, range(1000)), PURPOSE), PURPOSE
    )
    np.testing.assert_allclose(
        out.probability, np.asarray(kserve_env.expected["purpose"]["predict_proba"]), rtol=0, atol=1e-9
    )
    assert out.prediction.tolist() == kserve_env.expected["purpose"]["predict"]
    resp = e.score(e.get_deployment("amount"), rows(german, credit.AMOUNT_FEATURES, range(1000)), AMOUNT)
    assert resp.fields == ["prediction"]
    np.testing.assert_allclose([v[0] for v in resp.values], kserve_env.expected["amount"]["predict"], rtol=0, atol=1e-9)


def test_v1_errors_name_engine_and_deployment(kserve_env: KServeEnv, german) -> None:  # type: ignore[no-untyped-def]
    e = engine_for(kserve_env.url, "v1")
    ghost = Deployment(id="ghost", name="ghost", scoring_url=f"{kserve_env.url}/v1/models/ghost:predict")
    with pytest.raises(EngineRejected) as err:
        e.score(ghost, rows(german, credit.FEATURES, range(2)), BINARY)
    assert err.value.engine_status == 404 and "kserve-test" in err.value.message and "'ghost'" in err.value.message
    with pytest.raises(EngineRejected) as err:  # a body the model cannot read: KServe's {"error"} 400
        e.send(e.get_deployment("credit"), NativeRequest(b"not json"), internal=True)
    assert err.value.engine_status == 400 and "Unrecognized request format" in (err.value.context["engine_body"] or "")


def test_v1_decode_request_reads_lists_and_records(kserve_env: KServeEnv, german) -> None:  # type: ignore[no-untyped-def]
    e = engine_for(kserve_env.url, "v1")
    dep = e.get_deployment("credit")
    request = rows(german, credit.FEATURES, range(3))
    for fmt in ("list", "dict"):
        dep.options["instance_format"] = fmt
        back = e.decode_request(dep, e.encode_request(dep, request, BINARY), BINARY)
        assert back.fields == credit.FEATURES and back.values == request.values
    with pytest.raises(InvalidInput, match="feature_fields"):
        e.decode_request(dep, NativeRequest(b'{"instances": [[1, 2]]}'), ModelContext())


# -- V2 on KServe ------------------------------------------------------------------------------


def test_v2_without_repository_index_needs_models(kserve_env: KServeEnv) -> None:
    with pytest.raises(DiscoveryUnsupported, match="models"):
        engine_for(kserve_env.url, "v2").list_deployments()
    deps = engine_for(kserve_env.url, "v2", models=["credit", "purpose"]).list_deployments()
    assert [(d.id, d.status) for d in deps] == [("credit", "ready"), ("purpose", "ready")]
    assert deps[0].scoring_url == f"{kserve_env.url}/v2/models/credit/infer"


def test_v2_integer_class_outputs_are_label_indexes(kserve_env: KServeEnv, german) -> None:  # type: ignore[no-untyped-def]
    e = engine_for(kserve_env.url, "v2", models=["credit", "purpose"])
    resp = e.score(e.get_deployment("credit"), rows(german, credit.FEATURES, range(400)), BINARY)
    assert {type(v[0]) for v in resp.values} == {int}  # INT64 indexes on the wire
    out = normalized(resp, BINARY)
    exp = kserve_env.expected["credit"]
    assert out.prediction.tolist() == exp["predict"][:400]
    np.testing.assert_allclose(out.probability, np.asarray(exp["predict_proba"][:400]), rtol=0, atol=1e-9)
    out = normalized(
        e.score(e.get_deployment("purpose"), rows(german, credit.PURPOSE_FEATURES, range(400)), PURPOSE), PURPOSE
    )
    assert out.prediction.tolist() == kserve_env.expected["purpose"]["predict"][:400]


# -- end to end --------------------------------------------------------------------------------


def test_bind_discover_subscribe_score_and_log_through_the_api(
    client: httpx.Client, kserve_env: KServeEnv, german
) -> None:  # type: ignore[no-untyped-def]
    r = client.post(
        "/v1/bindings",
        json={"name": "kserve-v1", "engine_type": "kserve", "credentials": {"url": kserve_env.url, "protocol": "v1"}},
    )
    assert r.status_code == 201, r.text
    binding = r.json()
    assert binding["settings"]["protocol"] == "v1" and binding["settings"]["url"] == kserve_env.url  # non-secret
    deps = client.get(f"/v1/bindings/{binding['id']}/deployments").json()["deployments"]
    assert [d["id"] for d in deps] == MODELS
    r = client.post(
        "/v1/subscriptions",
        json={
            "binding_id": binding["id"],
            "deployment_id": "purpose",
            "asset_properties": {
                "problem_type": "multiclass",
                "feature_fields": credit.PURPOSE_FEATURES,
                "labels": credit.PURPOSE_CLASSES,
            },
        },
    )
    assert r.status_code == 201, r.text
    sub = r.json()
    idx = list(range(200, 240))
    request = rows(german, credit.PURPOSE_FEATURES, idx)
    r = client.post(f"/v1/subscriptions/{sub['id']}/score", json=request.to_dict())
    assert r.status_code == 200, r.text
    scored = r.json()
    assert scored["fields"] == ["prediction", "probability", "prediction_probability"] and scored["prediction_derived"]
    r = client.post(
        f"/v1/subscriptions/{sub['id']}/payloads",
        json=[
            {
                "scoring_id": "ks",
                "request": request.to_dict(),
                "response": {"fields": scored["fields"], "values": scored["values"]},
            }
        ],
    )
    assert r.status_code in (200, 201) and r.json()["stored"] == 40, r.text
    page = client.get(f"/v1/subscriptions/{sub['id']}/payloads", params={"limit": 100}).json()
    assert page["total"] == 40
    exp = kserve_env.expected["purpose"]
    for row in page["rows"]:
        i = idx[int(row["scoring_id"].rsplit("-", 1)[1]) - 1]
        proba = row["probability"] if isinstance(row["probability"], list) else json.loads(row["probability"])
        assert row["prediction"] == exp["predict"][i]
        np.testing.assert_allclose(proba, exp["predict_proba"][i], rtol=0, atol=1e-9)
        assert abs(row["prediction_probability"] - max(exp["predict_proba"][i])) < 1e-9


def test_behind_an_ingress_routed_by_host_header_with_a_token(kserve_env: KServeEnv, german) -> None:  # type: ignore[no-untyped-def]
    gw = Gateway({"credit.default.example.com": kserve_env.url}, token="ingress-token")
    with BackgroundServer(gw.app()) as srv:
        creds = {"url": srv.url, "protocol": "v1", "token": "ingress-token"}
        KServeEngine.check_credentials(creds)
        e = KServeEngine(
            BindingConfig(
                id="b4",
                name="kserve-ingress",
                engine_type="kserve",
                settings={},
                credentials=creds,
                request_headers={"Host": "credit.default.example.com"},
            )
        )
        assert [d.id for d in e.list_deployments()] == MODELS
        out = normalized(e.score(e.get_deployment("credit"), rows(german, credit.FEATURES, range(30)), BINARY), BINARY)
        np.testing.assert_allclose(
            out.probability, kserve_env.expected["credit"]["predict_proba"][:30], rtol=0, atol=1e-9
        )
        assert set(gw.seen_hosts) == {"credit.default.example.com"}
        bad = engine_for(srv.url, "v1", name="kserve-badtoken", token="nope")
        bad.binding.request_headers["Host"] = "credit.default.example.com"
        with pytest.raises(EngineAuthError, match="kserve-badtoken"):
            bad.list_deployments()
