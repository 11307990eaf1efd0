"""OpenScale's resources over Scrutiny's: ids that map back, the default data mart id, roles,
fields that are ignored (reported, never silent) and what is not supported (a clear error)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from scrutiny._server import BackgroundServer
from scrutiny.demo import credit
from scrutiny.security import Role
from scrutiny.service import DEFAULT_DATA_MART_ID, Service
from tests.support.api import bind_and_subscribe, records

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])  # routing over the service layer: one store suffices
IGNORED = "X-Scrutiny-Ignored-Fields"


def v2(path: str, instance: str = DEFAULT_DATA_MART_ID) -> str:
    return f"/openscale/{instance}/v2/{path}"


@pytest.fixture
def sub(client: httpx.Client, engine_server: BackgroundServer, german: Any) -> str:
    _, sub_id = bind_and_subscribe(client, engine_server.url)
    r = client.post(f"/v1/subscriptions/{sub_id}/payloads", json=records(german, 30))
    assert r.status_code == 200, r.text
    return sub_id


def test_data_mart_answers_to_its_id_and_the_default_id_only(client: httpx.Client, service: Service) -> None:
    for instance in (service.data_mart_id, DEFAULT_DATA_MART_ID):
        r = client.get(v2("data_marts", instance))
        assert r.status_code == 200 and r.json()["data_marts"][0]["metadata"]["id"] == service.data_mart_id
    assert client.get(f"/v1/data_marts/{DEFAULT_DATA_MART_ID}").json()["metadata"]["guid"] == service.data_mart_id
    other = "11111111-1111-1111-1111-111111111111"
    r = client.get(v2("monitor_definitions", other))
    assert r.status_code == 404 and service.data_mart_id in r.json()["error"]["message"]


def test_data_sets_and_monitor_instances_are_a_subscriptions_tables_and_monitors(
    client: httpx.Client, sub: str
) -> None:
    sets = client.get(v2("data_sets"), params={"target.target_id": sub, "type": "payload_logging"}).json()["data_sets"]
    assert [s["metadata"]["id"] for s in sets] == [f"{sub}.payload_logging"]
    page = client.get(v2(f"data_sets/{sub}.payload_logging/records"), params={"limit": 0, "include_total_count": True})
    assert page.json() == {"records": [], "total_count": 30}
    assert client.get(v2(f"data_sets/{sub}.nonsense")).status_code == 404
    assert client.get(v2("data_sets/no-dot-here")).status_code == 404
    # a logged batch is stored before the answer: its request is active at once
    r = client.post(v2(f"data_sets/{sub}.payload_logging/records"), json=records(credit.load_german(), 2, start=40))
    assert r.status_code == 202 and r.json()["stored"] == 2
    status = client.get(httpx.URL(r.headers["Location"]).path)
    assert status.status_code == 200 and status.json()["state"] == "active"
    assert client.get(v2(f"data_sets/{sub}.payload_logging/requests/unknown")).status_code == 404
    # the performance monitor is on from the first payload: it is an instance already
    mis = client.get(v2("monitor_instances"), params={"target.target_id": sub}).json()["monitor_instances"]
    assert [m["metadata"]["id"] for m in mis] == [f"{sub}.performance"]


def test_unknown_fields_are_reported_and_unsupported_requests_refused(client: httpx.Client, sub: str) -> None:
    body = {
        "monitor_definition_id": "quality",
        "target": {"target_type": "subscription", "target_id": sub},
        "parameters": {"min_feedback_data_size": 10},
        "thresholds": [{"metric_id": "accuracy", "type": "lower_limit", "value": 0.7}],
        "schedule": {"repeat_interval": 2, "repeat_unit": "hour", "start_time": {"type": "relative"}},
        "managed_by": "user",
    }
    r = client.post(v2("monitor_instances"), json=body)
    assert r.status_code == 201, r.text
    assert r.headers[IGNORED] == "managed_by,schedule.start_time"
    native = client.get(f"/v1/subscriptions/{sub}/monitors/quality").json()
    assert native["config"]["min_feedback_data_size"] == 10
    assert native["schedule"] == {"repeat_interval": 2, "repeat_unit": "hour"}
    assert {"metric": "accuracy", "type": "lower_limit", "value": 0.7} in native["thresholds"]

    explain = client.post(v2("monitor_instances"), json={**body, "monitor_definition_id": "explainability"})
    assert explain.status_code == 400 and explain.json()["error"]["code"] == "not_supported"
    assert "/explanations" in explain.json()["error"]["message"]
    binding = client.get(f"/v1/subscriptions/{sub}").json()["binding_id"]
    path = f"/v1/data_marts/{DEFAULT_DATA_MART_ID}/service_bindings/{binding}/subscriptions/{sub}/configurations/payload_logging"
    off = client.put(path, json={"enabled": False})
    assert off.status_code == 422 and "cannot be disabled" in off.json()["error"]["message"]
    db = client.put(f"/v1/data_marts/{DEFAULT_DATA_MART_ID}", json={"db_credentials": {"uri": "postgres://elsewhere"}})
    assert db.status_code == 422 and "SCRUTINY_STORE_URL" in db.json()["error"]["message"]
    debiased = client.post(
        path.replace("configurations/payload_logging", "evaluations"), params={"model_type": "debiased"}
    )
    assert debiased.status_code == 400 and debiased.json()["error"]["code"] == "not_supported"


def test_roles_apply_as_on_the_native_api(
    api: tuple[BackgroundServer, str], service: Service, sub: str, german: Any
) -> None:
    srv, _ = api
    logger, _ = service.keys.create("app", Role.LOGGER)
    viewer, _ = service.keys.create("reader", Role.VIEWER)
    ds = f"{srv.url}{v2(f'data_sets/{sub}.payload_logging')}"
    as_logger = {"Authorization": f"Bearer {logger}"}
    as_viewer = {"Authorization": f"Bearer {viewer}"}
    assert (
        httpx.post(f"{ds}/records", headers=as_logger, json=records(german, 1, start=50), timeout=30).status_code == 202
    )
    assert httpx.get(f"{ds}/records", headers=as_logger, timeout=30).status_code == 403
    assert httpx.get(f"{ds}/records", headers=as_viewer, timeout=30).status_code == 200
    assert (
        httpx.post(f"{ds}/records", headers=as_viewer, json=records(german, 1, start=51), timeout=30).status_code == 403
    )
    run = httpx.post(
        f"{srv.url}{v2(f'monitor_instances/{sub}.performance/runs')}", headers=as_viewer, json={}, timeout=30
    )
    assert run.status_code == 403


def test_a_v1_subscription_keeps_the_clients_id(client: httpx.Client, engine_server: BackgroundServer) -> None:
    dm = DEFAULT_DATA_MART_ID
    b = client.post(
        f"/v1/data_marts/{dm}/service_bindings",
        json={
            "name": "engine",
            "service_type": "custom_machine_learning",
            "instance_id": "x",
            "credentials": {"url": engine_server.url},
        },
    )
    assert b.status_code == 201 and b.headers[IGNORED] == "instance_id"
    binding = b.json()["metadata"]["guid"]
    chosen = "6c4c1cbe-4a5e-4e7d-9d1a-0c7f0c2b1c11"
    body = {
        "asset": {"asset_id": "credit-risk", "name": "credit-risk", "asset_type": "model"},
        "asset_properties": {
            "problem_type": "binary",
            "label_column": "Risk",
            "prediction_field": "prediction",
            "probability_fields": ["probability"],
            "feature_fields": credit.FEATURES,
        },
        "deployments": [
            {
                "deployment_id": "credit-risk",
                "name": "credit-risk",
                "scoring_endpoint": {"url": f"{engine_server.url}/v1/deployments/credit-risk/online"},
            }
        ],
    }
    r = client.put(f"/v1/data_marts/{dm}/service_bindings/{binding}/subscriptions/{chosen}", json=body)
    assert r.status_code == 201, r.text
    assert client.get(f"/v1/subscriptions/{chosen}").json()["binding_id"] == binding
    again = client.put(f"/v1/data_marts/{dm}/service_bindings/{binding}/subscriptions/{chosen}", json=body)
    assert again.status_code == 409
    roles = {
        f["metadata"]["modeling_role"] for f in r.json()["entity"]["asset_properties"]["output_data_schema"]["fields"]
    }
    assert {"prediction", "probability"} <= roles
