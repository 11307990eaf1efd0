"""The REST API of explanations and OpenScale's v1 explanation tasks, over HTTP."""

from __future__ import annotations

import time
from typing import Any

import httpx

from scrutiny._server import BackgroundServer
from scrutiny.demo import credit
from scrutiny.explain.service import ExplanationService
from scrutiny.service import Service
from tests.support.explain import Subscribed, python_row

# Wait up to the API's limit before answering 202: on a busy machine an explanation can take
# longer than the default 10 s, and these tests are about the 201 answer.
LONG_WAIT = {"wait": 120}


def poll(client: httpx.Client, url: str, state: Any = lambda b: b["status"], timeout: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(url).json()
        if state(body) != "in_progress" or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def test_post_answers_201_with_the_explanation(client: httpx.Client, credit_sub: Subscribed) -> None:
    sid = credit_sub.sub.id
    before = credit_sub.stats()
    r = client.post(f"/v1/subscriptions/{sid}/explanations", params=LONG_WAIT, json={"scoring_id": "tx-1"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert credit_sub.stats()["calls:credit-risk"] - before.get("calls:credit-risk", 0) == 1
    assert body["status"] == "finished" and body["method"] == "lime" and body["scoring_id"] == "tx-1-1"
    assert body["prediction"] in credit.LABELS and 0.5 <= body["probability"] <= 1
    assert body["scoring_calls"] == 1 and body["scored_rows"] == 5001
    assert {"feature", "value", "weight", "coefficient", "condition"} <= set(body["contributions"][0])
    assert r.headers["location"] == f"/v1/subscriptions/{sid}/explanations/{body['id']}"
    again = client.get(r.headers["location"])
    assert again.status_code == 200 and again.json() == body
    listed = client.get(f"/v1/subscriptions/{sid}/explanations", params={"scoring_id": "tx-1"}).json()
    assert listed["total"] == 1 and listed["explanations"][0] == body
    assert client.get(f"/v1/subscriptions/{sid}/explanations", params={"scoring_id": "tx-2"}).json()["total"] == 0


def test_contrastive_and_inline_record(client: httpx.Client, credit_sub: Subscribed) -> None:
    sid = credit_sub.sub.id
    row = python_row(credit_sub.frame, 1, credit.FEATURES)
    r = client.post(
        f"/v1/subscriptions/{sid}/explanations",
        params=LONG_WAIT,
        json={"record": {"fields": credit.FEATURES, "values": [row]}, "method": "contrastive"},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["scoring_id"] is None and body["record"]["values"] == [row]
    assert 1 <= body["scoring_calls"] <= 10
    pp, pn = body["pertinent_positive"], body["pertinent_negative"]
    assert pp["prediction"] == body["prediction"] and pp["features"]
    assert pn["exists"] and pn["prediction"] != body["prediction"]
    assert {"feature", "value", "moved_to", "base"} <= set(pn["features"][0])


def test_wait_zero_answers_202_and_the_result_is_polled(client: httpx.Client, credit_sub: Subscribed) -> None:
    sid = credit_sub.sub.id
    r = client.post(
        f"/v1/subscriptions/{sid}/explanations",
        params={"wait": 0},
        json={"scoring_id": "tx-2-1", "method": "lime+contrastive"},
    )
    assert r.status_code == 202, r.text
    started = r.json()
    assert started["status"] == "in_progress" and r.headers["location"] == started["location"]
    body = poll(client, started["location"])
    assert body["status"] == "finished" and body["id"] == started["id"]
    assert body["contributions"] and body["pertinent_negative"] and body["pertinent_positive"]
    assert 2 <= body["scoring_calls"] <= 11


def test_errors(client: httpx.Client, credit_sub: Subscribed, service: Service) -> None:
    sid = credit_sub.sub.id
    url = f"/v1/subscriptions/{sid}/explanations"
    r = client.post(url, json={"scoring_id": "nope"})
    assert r.status_code == 404 and "no transaction 'nope'" in r.json()["error"]["message"]
    r = client.post(url, json={"scoring_id": "multi"})
    assert r.status_code == 422 and "3 rows" in r.json()["error"]["message"]
    assert client.post(url, json={"scoring_id": "tx-1", "method": "shap"}).status_code == 422
    r = client.post(url, json={"scoring_id": "tx-1", "options": {"perturbations": "many"}})
    assert r.status_code == 422 and r.json()["error"]["field"] == "options.perturbations"
    assert client.post(url, json={}).status_code == 422
    row = python_row(credit_sub.frame, 0, credit.FEATURES)
    row[credit.FEATURES.index("LoanDuration")] = 2**70
    r = client.post(url, json={"record": {"fields": credit.FEATURES, "values": [row]}})
    assert r.status_code == 422 and r.json()["error"]["field"] == "LoanDuration"
    assert client.post("/v1/subscriptions/nope/explanations", json={"scoring_id": "tx-1"}).status_code == 404
    assert client.get(f"{url}/not-an-id").status_code == 404
    assert client.get(url).json()["total"] == 0  # nothing stored for rejected requests


def test_no_training_statistics_is_409(client: httpx.Client, service: Service, engine_server: BackgroundServer) -> None:
    binding, _ = service.bindings.create(name="e", engine_type="custom", credentials={"url": engine_server.url})
    schema = {
        "fields": [
            {"name": f, "type": "string" if f in credit.CATEGORICAL_FEATURES else "integer"} for f in credit.FEATURES
        ]
    }
    sub = service.subscriptions.create(
        binding_id=binding.id,
        deployment_id="credit-risk",
        asset_properties={"problem_type": "binary", "labels": credit.LABELS, "input_data_schema": schema},
    )
    row = python_row(credit.load_german(), 0, credit.FEATURES)
    r = client.post(
        f"/v1/subscriptions/{sub.id}/explanations", json={"record": {"fields": credit.FEATURES, "values": [row]}}
    )
    assert r.status_code == 409
    assert "no training statistics" in r.json()["error"]["message"]


def test_engine_failure_is_502_and_stored_as_error(
    client: httpx.Client, service: Service, engine_server: BackgroundServer
) -> None:
    german = credit.load_german()
    binding, _ = service.bindings.create(name="e", engine_type="custom", credentials={"url": engine_server.url})
    sub = service.subscriptions.create(
        binding_id=binding.id,
        deployment_id="fault-html",
        asset_properties={"problem_type": "binary", "label_column": credit.LABEL},
        training_frame=german,
    )
    row = python_row(german, 0, credit.FEATURES)
    r = client.post(
        f"/v1/subscriptions/{sub.id}/explanations",
        params=LONG_WAIT,
        json={"record": {"fields": credit.FEATURES, "values": [row]}},
    )
    assert r.status_code == 502, r.text
    err = r.json()["error"]
    assert err["code"] == "engine_invalid_response" and "fault-html" in err["message"]
    stored = client.get(err["location"]).json()
    assert stored["status"] == "error" and stored["error"]["code"] == err["code"]
    assert "contributions" not in stored and stored["scoring_calls"] == 1


def test_openscale_explanation_task(client: httpx.Client, credit_sub: Subscribed, service: Service) -> None:
    dm = service.data_mart_id
    r = client.post(f"/v1/data_marts/{dm}/explanation_tasks", json={"scoring_id": "tx-0-1", "cem": "true"})
    assert r.status_code == 202, r.text
    task_id = r.json()["metadata"]["id"]
    body = poll(client, f"/v1/data_marts/{dm}/explanation_tasks/{task_id}", lambda b: b["entity"]["status"]["state"])
    entity = body["entity"]
    assert entity["status"]["state"] == "finished", entity
    assert entity["subscription_id"] == credit_sub.sub.id and entity["scoring_id"] == "tx-0-1"
    predictions = entity["predictions"]
    assert [p["value"] for p in predictions] in (credit.LABELS, list(reversed(credit.LABELS)))
    assert predictions[0]["probability"] >= predictions[1]["probability"]
    features = predictions[0]["explanation_features"]
    assert {"feature_name", "feature_value", "weight"} <= set(features[0])
    assert abs(sum(abs(f["percentage"]) for f in features) - 100) < 1e-6
    weights = [abs(f["weight"]) for f in features]
    assert weights == sorted(weights, reverse=True)
    ce = entity["contrastive_explanation"]
    assert "pertinent_positive_features" in ce and "pertinent_negative_features" in ce
    # the same explanation through Scrutiny's API
    mine = client.get(f"/v1/subscriptions/{credit_sub.sub.id}/explanations/{task_id}").json()
    assert mine["method"] == "lime+contrastive" and mine["contributions"][0]["feature"] == features[0]["feature_name"]
    plain = client.post(f"/v1/data_marts/{dm}/explanation_tasks", json={"scoring_id": "tx-1-1"})
    body = poll(
        client,
        f"/v1/data_marts/{dm}/explanation_tasks/{plain.json()['metadata']['id']}",
        lambda b: b["entity"]["status"]["state"],
    )
    assert body["entity"]["explanation_types"] == ["lime"] and "contrastive_explanation" not in body["entity"]
    assert client.post("/v1/data_marts/other/explanation_tasks", json={"scoring_id": "tx-0-1"}).status_code == 404
    r = client.post(f"/v1/data_marts/{dm}/explanation_tasks", json={"scoring_id": "missing-1"})
    assert r.status_code == 404


def test_server_start_marks_orphans_interrupted(service: Service, credit_sub: Subscribed) -> None:
    from scrutiny.api.app import create_app

    orphan = ExplanationService(service).create(credit_sub.sub.id, scoring_id="tx-1")
    key = service.keys.ensure_admin_key()
    with BackgroundServer(create_app(service=service)) as srv:
        r = httpx.get(
            f"{srv.url}/v1/subscriptions/{credit_sub.sub.id}/explanations/{orphan.id}",
            headers={"Authorization": f"Bearer {key}"},
        )
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "error" and body["error"]["code"] == "interrupted"


def test_viewer_key_reads_but_cannot_start_explanations(client: httpx.Client, credit_sub: Subscribed) -> None:
    created = client.post("/v1/api_keys", json={"name": "viewer", "role": "viewer"})
    assert created.status_code in (200, 201), created.text
    key = created.json()["key"]
    headers = {"Authorization": f"Bearer {key}"}
    url = f"/v1/subscriptions/{credit_sub.sub.id}/explanations"
    assert client.post(url, json={"scoring_id": "tx-1"}, headers=headers).status_code == 403
    assert client.get(url, headers=headers).status_code == 200


def test_openscale_v2_explanation_tasks(client: httpx.Client, credit_sub: Subscribed) -> None:
    r = client.post(
        "/v2/explanation_tasks",
        json={"scoring_ids": ["tx-0-1", "tx-1"], "explanation_types": ["lime", "contrastive"]},
    )
    assert r.status_code == 202, r.text
    ids = r.json()["metadata"]["explanation_task_ids"]
    assert len(ids) == 2
    for task_id, scoring_id in zip(ids, ["tx-0-1", "tx-1-1"], strict=True):
        body = poll(client, f"/v2/explanation_tasks/{task_id}", lambda b: b["entity"]["status"]["state"])
        entity = body["entity"]
        assert entity["status"]["state"] == "finished" and entity["scoring_id"] == scoring_id
        assert [e["explanation_type"] for e in entity["explanations"]] == ["lime", "contrastive"]
        lime = entity["explanations"][0]["predictions"][0]
        assert lime["explanation_features"] and lime["value"] in credit.LABELS
        assert "pertinent_negative_features" in entity["explanations"][1]
        assert [f["name"] for f in entity["input_features"]] == credit.FEATURES
    only = client.post("/v2/explanation_tasks", json={"scoring_ids": ["tx-2"], "explanation_types": ["contrastive"]})
    body = poll(
        client,
        f"/v2/explanation_tasks/{only.json()['metadata']['explanation_task_ids'][0]}",
        lambda b: b["entity"]["status"]["state"],
    )
    assert [e["explanation_type"] for e in body["entity"]["explanations"]] == ["contrastive"]
    before = client.get(f"/v1/subscriptions/{credit_sub.sub.id}/explanations").json()["total"]
    r = client.post("/v2/explanation_tasks", json={"scoring_ids": ["tx-3", "missing-1"]})
    assert r.status_code == 404  # nothing started: every id is checked first
    assert client.get(f"/v1/subscriptions/{credit_sub.sub.id}/explanations").json()["total"] == before
