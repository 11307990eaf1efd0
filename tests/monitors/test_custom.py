"""Custom monitors: a definition, values posted per subscription, and everything the built-in
monitors get: limits in force, violations, alerts, the dashboard's charts; refusals that name
the field."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from scrutiny._server import BackgroundServer
from scrutiny.service import Service
from tests.support.api import bind_and_subscribe
from tests.support.web import sign_in

DEFINITION = {
    "name": "Business KPIs",
    "description": "what the loan desk computes every night",
    "metrics": [
        {"name": "approval rate", "thresholds": [{"type": "lower_limit", "default": 0.5}]},
        {"name": "cost per loan", "thresholds": [{"type": "upper_limit", "default": 40}]},
        {"name": "loans"},
    ],
    "tags": [{"name": "branch", "required": True}],
}


@pytest.fixture
def sub(client: httpx.Client, engine_server: BackgroundServer) -> str:
    return bind_and_subscribe(client, engine_server.url)[1]


def post(client: httpx.Client, sub: str, metrics: Any, **body: Any) -> httpx.Response:
    return client.post(
        f"/v1/subscriptions/{sub}/monitors/business_kpis/measurements", json={"metrics": metrics, **body}
    )


def test_posted_values_are_measurements_with_limits_alerts_and_charts(
    client: httpx.Client, api: tuple[BackgroundServer, str], sub: str
) -> None:
    r = client.post("/v1/monitors", json=DEFINITION)
    assert r.status_code == 201, r.text
    assert r.json()["id"] == "business_kpis"
    assert [m["id"] for m in r.json()["metrics"]] == ["approval_rate", "cost_per_loan", "loans"]
    info = {m["name"]: m for m in client.get("/v1/monitors").json()["monitors"]}["business_kpis"]
    assert (
        info["metrics"]["approval_rate"]["better"] == "higher" and info["metrics"]["cost_per_loan"]["better"] == "lower"
    )
    # not enabled yet: nothing is stored
    assert post(client, sub, [{"approval_rate": 0.7, "branch": "north"}]).status_code == 409
    cfg = client.put(
        f"/v1/subscriptions/{sub}/monitors/business_kpis",
        json={"thresholds": [{"metric": "approval_rate", "type": "lower_limit", "value": 0.6}]},
    )
    assert cfg.status_code == 200, cfg.text
    assert cfg.json()["next_run_at"] is None  # never scheduled: its values are posted
    limits = {(t["metric"], t["type"]): t["value"] for t in cfg.json()["thresholds"]}
    assert limits == {("approval_rate", "lower_limit"): 0.6, ("cost_per_loan", "upper_limit"): 40}

    first = post(client, sub, [{"approval_rate": 0.55, "cost_per_loan": 38.5, "loans": 120, "branch": "north"}])
    assert first.status_code == 201, first.text
    m = first.json()
    assert m["values"] == {"approval_rate": 0.55, "cost_per_loan": 38.5, "loans": 120}
    assert m["status"] == "finished" and m["details"]["tags"] == [{"id": "branch", "value": "north"}]
    assert [(v["metric"], v["limit"]) for v in m["violations"]] == [("approval_rate", 0.6)]
    second = post(
        client, sub, [{"approval_rate": 0.65, "cost_per_loan": 41, "branch": "north"}], timestamp="2030-01-01T00:00:00Z"
    )
    assert second.json()["timestamp"] == "2030-01-01T00:00:00Z"
    assert [v["metric"] for v in second.json()["violations"]] == ["cost_per_loan"]
    alerts = client.get("/v1/alerts", params={"subscription_id": sub, "monitor": "business_kpis"}).json()["alerts"]
    assert {(a["metric"], a["status"]) for a in alerts} == {("approval_rate", "closed"), ("cost_per_loan", "open")}
    listed = client.get(f"/v1/subscriptions/{sub}/measurements", params={"monitor": "business_kpis"}).json()
    assert [x["id"] for x in listed["measurements"]] == [second.json()["id"], m["id"]]

    # the dashboard charts it like the built-ins
    srv, key = api
    with httpx.Client(base_url=srv.url, follow_redirects=False, timeout=30) as browser:
        assert sign_in(browser, key).status_code == 303
        page = browser.get(f"/subscriptions/{sub}", params={"range": "all"})
        assert page.status_code == 200 and "business_kpis" in page.text
        series = browser.get(f"/subscriptions/{sub}/series", params={"monitor": "business_kpis", "range": "all"})
        assert series.status_code == 200, series.text
        assert "approval_rate" in series.text and "0.55" in series.text


def test_custom_monitors_refuse_what_they_cannot_take(client: httpx.Client, sub: str, service: Service) -> None:
    assert client.post("/v1/monitors", json=DEFINITION).status_code == 201
    again = client.post("/v1/monitors", json={**DEFINITION, "name": "business  KPIs!"})
    assert again.status_code == 409 and again.json()["error"]["field"] == "name"
    assert client.post("/v1/monitors", json={**DEFINITION, "name": "Quality"}).status_code == 409
    bad = client.post(
        "/v1/monitors", json={**DEFINITION, "name": "x", "metrics": [{"name": "a", "thresholds": [{"type": "above"}]}]}
    )
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "metrics[0].thresholds[0].type"
    assert client.put(f"/v1/subscriptions/{sub}/monitors/business_kpis", json={}).status_code == 200
    for metrics, field in (
        ([{"approval_rate": "high", "branch": "n"}], "metrics[0].approval_rate"),
        ([{"approval": 0.5, "branch": "n"}], "metrics[0].approval"),
        ([{"approval_rate": 0.5}], "metrics"),  # branch is required
        ([{"approval_rate": 0.5, "branch": "n"}, {"approval_rate": 0.6, "branch": "s"}], "metrics[1].approval_rate"),
    ):
        r = post(client, sub, metrics)
        assert r.status_code == 422 and r.json()["error"]["field"] == field, r.text
    assert post(client, sub, [{"loans": 1, "branch": "n"}], timestamp="yesterday").status_code == 422
    run = client.post(f"/v1/subscriptions/{sub}/monitors/business_kpis/runs")
    assert run.status_code == 422 and "post its values" in run.json()["error"]["message"]
    assert client.get(f"/v1/subscriptions/{sub}/measurements", params={"monitor": "business_kpis"}).json() == {
        "measurements": []
    }
    assert post(client, sub, [{"approval_rate": 0.7, "branch": "n"}]).status_code == 201  # nothing else was stored
    scheduler_due = service.monitors.get(sub, "business_kpis")["next_run_at"]
    assert scheduler_due is None
