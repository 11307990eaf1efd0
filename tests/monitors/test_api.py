"""Monitors through REST and the SDK: configuration and its errors, runs, measurements, drill-down,
alerts per episode, webhooks with retries, the scheduler, Prometheus /metrics."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from datetime import timedelta

import numpy as np
import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from scrutiny._server import BackgroundServer
from scrutiny.demo import credit
from scrutiny.monitors.notify.webhooks import DeliveryPolicy
from scrutiny.monitors.scheduler import Scheduler
from tests.support.monitors import T0, credit_model, log_feedback, log_predictions, spread, subscribe_credit


@pytest.fixture
def labelled(service, engine_server, german):
    """A credit-risk subscription with 300 predictions and their true labels as feedback."""
    sub = subscribe_credit(service, engine_server.url)
    rows = german.iloc[:300]
    model = credit_model()
    proba = model.predict_proba(rows[credit.FEATURES])
    pred = np.asarray(model.classes_, dtype=object)[proba.argmax(axis=1)]
    times = spread(300, T0, timedelta(hours=3), seed=1)
    ids = log_predictions(service, sub, rows, credit.FEATURES, pred, proba, times, prefix="x", batch=100)
    log_feedback(service, sub, ids, rows[credit.LABEL].tolist(), times, batch=100)
    return sub


@pytest.mark.parametrize(
    ("body", "field", "text"),
    [
        (
            {"thresholds": [{"metric": "acuracy", "type": "lower_limit", "value": 0.8}]},
            "thresholds[0].metric",
            "unknown metric",
        ),
        (
            {"thresholds": [{"metric": "false_positive_rate", "type": "lower_limit", "value": 0.2}]},
            "thresholds[0].type",
            "upper_limit",
        ),
        (
            {"thresholds": [{"metric": "accuracy", "type": "lower_limit", "value": 1.5}]},
            "thresholds[0].value",
            "out of range",
        ),
        (
            {"thresholds": [{"metric": "r2", "type": "lower_limit", "value": 0.5}]},
            "thresholds[0].metric",
            "not reported for binary",
        ),
        ({"positive_class": "Maybe"}, "positive_class", "not one of the labels"),
        ({"min_feedback_data_size": 0}, "min_feedback_data_size", "greater than or equal"),
        ({"max_rows": 5}, "max_rows", "Extra inputs"),
    ],
)
def test_configuration_errors_name_the_field(client, labelled, body, field, text) -> None:
    r = client.put(f"/v1/subscriptions/{labelled.id}/monitors/quality", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == field and text in r.json()["error"]["message"]
    assert client.get(f"/v1/subscriptions/{labelled.id}/monitors/quality").json()["enabled"] is False


def test_rest_configure_run_and_read(client, labelled) -> None:
    base = f"/v1/subscriptions/{labelled.id}"
    assert client.put(f"{base}/monitors/nope", json={}).status_code == 404
    listed = {m["monitor"]: m for m in client.get(f"{base}/monitors").json()["monitors"]}
    assert listed["performance"]["enabled"] is True and listed["quality"]["enabled"] is False
    assert client.post(f"{base}/monitors/quality/runs").status_code == 409  # not enabled yet
    r = client.put(
        f"{base}/monitors/quality",
        json={
            "min_feedback_data_size": 50,
            "max_rows_per_evaluation": None,
            "schedule": {"repeat_interval": 2, "repeat_unit": "hour"},
        },
    )
    assert r.status_code == 200, r.text
    cfg = r.json()
    assert cfg["enabled"] and cfg["schedule"] == {"repeat_interval": 2, "repeat_unit": "hour"} and cfg["partials_ready"]
    assert cfg["thresholds"] == [{"metric": "area_under_roc", "type": "lower_limit", "value": 0.8}]
    r = client.post(f"{base}/monitors/quality/runs")
    assert r.status_code == 201, r.text
    m = r.json()
    assert (
        m["status"] == "finished"
        and m["records"] == 300
        and set(m) >= {"id", "monitor", "timestamp", "values", "thresholds", "violations", "details"}
    )
    listed = client.get(f"{base}/measurements", params={"monitor": "quality"}).json()["measurements"]
    assert [x["id"] for x in listed] == [m["id"]]
    assert client.get(
        f"{base}/measurements", params={"monitor": "quality", "start": "2099-01-01T00:00:00Z"}
    ).json() == {"measurements": []}
    assert client.get(f"{base}/measurements/{m['id']}").json()["values"] == m["values"]
    cm = m["details"]["confusion_matrix"]
    cell = client.get(
        f"{base}/measurements/{m['id']}/records", params={"actual": "Risk", "predicted": "Risk", "limit": 1000}
    ).json()["records"]
    assert len(cell) == cm["matrix"][1][1] and all(r[credit.LABEL] == "Risk" == r["prediction"] for r in cell)
    assert client.get(f"{base}/measurements/{m['id']}/records", params={"actual": "Nope"}).status_code == 422
    assert client.get("/v1/monitors").json()["monitors"][0]["config_schema"]["type"] == "object"
    # disabling keeps the history
    assert client.delete(f"{base}/monitors/quality").json()["enabled"] is False
    assert len(client.get(f"{base}/measurements").json()["measurements"]) == 1


def test_sdk_feedback_monitors_and_measurement_frames(api, labelled, german) -> None:
    from scrutiny.sdk import Client

    srv, key = api
    with Client(srv.url, key) as c:
        sub = c.subscriptions.get(labelled.id)
        frame = german.iloc[400:460][[*credit.FEATURES, credit.LABEL]]
        res = sub.feedback_logging.store(frame)
        assert (res["stored"], res["scored"]) == (60, 60)
        assert (
            sub.feedback_logging.store(frame.assign(feedback_id=None).drop(columns=["feedback_id"]))["stored"] == 60
        )  # new ids: new rows
        assert sub.feedback_logging.count() == 420
        cfg = sub.monitors.quality.enable(min_feedback_data_size=10, max_rows_per_evaluation=None,
                                          thresholds=[{"metric": "accuracy", "type": "lower_limit", "value": 0.99}])  # fmt: skip
        assert {"metric": "accuracy", "type": "lower_limit", "value": 0.99} in cfg["thresholds"]
        m = sub.monitors.quality.run()
        assert m["records"] == 420 and any(v["metric"] == "accuracy" for v in m["violations"])
        df = sub.measurements(monitor="quality")
        assert set(df.metric) >= {"accuracy", "area_under_roc", "log_loss"}
        acc = df[df.metric == "accuracy"].iloc[0]
        assert acc.value == pytest.approx(m["values"]["accuracy"]) and acc.lower_limit == 0.99 and bool(acc.violated)
        wide = sub.measurements(monitor="quality", wide=True)
        assert len(wide) == 1 and wide.accuracy.iloc[0] == pytest.approx(m["values"]["accuracy"])
        assert str(df.timestamp.dtype).startswith("datetime64")
        alerts = c.alerts.list(status="open", subscription_id=sub.id)
        assert [a["metric"] for a in alerts] == ["accuracy"]


class Receiver:
    """A webhook endpoint on loopback that fails its first ``fail`` deliveries with 500."""

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.received: list[tuple[dict, bytes]] = []
        self.attempts = 0
        self.lock = threading.Lock()

        async def hook(request: Request) -> JSONResponse:
            body = await request.body()
            with self.lock:
                self.attempts += 1
                if self.attempts <= self.fail:
                    return JSONResponse({"error": "try later"}, status_code=500)
                self.received.append((dict(request.headers), body))
            return JSONResponse({"ok": True})

        self.app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])


def test_alerts_open_once_per_episode_and_reach_webhooks(service, labelled) -> None:
    receiver = Receiver(fail=2)
    with BackgroundServer(receiver.app) as hook_srv:
        hook = service.monitors.webhooks.create(f"{hook_srv.url}/hook", secret="s3cret", monitors=["quality"])
        assert hook["has_secret"] and "secret" not in hook
        service.monitors.webhooks.policy = DeliveryPolicy(base_seconds=0.05, max_attempts=5)
        strict = {"min_feedback_data_size": 10, "max_rows_per_evaluation": None,
                  "thresholds": [{"metric": "accuracy", "type": "lower_limit", "value": 0.99}]}  # fmt: skip
        service.monitors.configure(labelled.id, "quality", strict)
        now = T0 + timedelta(days=1)
        m1 = service.monitors.run(labelled.id, "quality", now=now)
        m2 = service.monitors.run(labelled.id, "quality", now=now + timedelta(hours=1))
        alerts = service.monitors.alerts(subscription_id=labelled.id)
        assert len(alerts) == 1 and alerts[0]["status"] == "open" and alerts[0]["runs"] == 2
        assert alerts[0]["opened_measurement_id"] == m1["id"] and alerts[0]["last_measurement_id"] == m2["id"]
        assert (
            alerts[0]["value"] == pytest.approx(m1["values"]["accuracy"])
            and "below the lower limit" in alerts[0]["message"]
        )
        service.monitors.configure(
            labelled.id,
            "quality",
            {**strict, "thresholds": [{"metric": "accuracy", "type": "lower_limit", "value": 0.1}]},
        )
        m3 = service.monitors.run(labelled.id, "quality", now=now + timedelta(hours=2))
        assert m3["violations"] == []
        service.monitors.configure(labelled.id, "quality", strict)
        service.monitors.run(labelled.id, "quality", now=now + timedelta(hours=3))
        alerts = service.monitors.alerts(subscription_id=labelled.id)
        assert sorted(a["status"] for a in alerts) == ["closed", "open"]
        # deliver: two failures, then retries with backoff until all three events arrive
        import httpx

        deadline = time.monotonic() + 20
        with httpx.Client() as http:
            while len(receiver.received) < 3 and time.monotonic() < deadline:
                service.monitors.webhooks.deliver_due(http)
                time.sleep(0.05)
        events = [orjson.loads(b)["event"] for _, b in receiver.received]
        assert sorted(events) == ["alert.closed", "alert.opened", "alert.opened"]
        for headers, body in receiver.received:
            sig = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
            assert headers["x-scrutiny-signature"] == f"sha256={sig}"
            assert orjson.loads(body)["subscription"]["id"] == labelled.id
        deliveries = service.monitors.webhooks.deliveries(hook["id"])
        assert all(d["delivered_at"] for d in deliveries) and max(d["attempts"] for d in deliveries) >= 2


def test_scheduler_runs_due_monitors_and_survives_restarts(service, labelled) -> None:
    service.monitors.configure(
        labelled.id,
        "quality",
        {"min_feedback_data_size": 10, "schedule": {"repeat_interval": 1, "repeat_unit": "hour"}},
    )
    sched = Scheduler(service, tick=3600)  # passes are driven by hand here
    try:
        started = sched.run_due()
        assert (labelled.id, "quality") in started and (labelled.id, "performance") in started
        sched.wait_idle()
        first = service.monitors.get(labelled.id, "quality")
        assert first["last_status"] == "finished"
        assert sched.run_due() == []  # nothing due until the next period
        # a restart: a fresh scheduler reads the schedule from the store
        sched2 = Scheduler(service, tick=3600)
        assert sched2.run_due() == []
        service.monitors.request_run(labelled.id, "quality")
        assert sched2.run_due() == [(labelled.id, "quality")]
        sched2.wait_idle()
        after = service.monitors.get(labelled.id, "quality")
        assert after["next_run_at"] == first["next_run_at"]  # an on-demand run keeps the schedule
        ms = service.monitors.measurements(labelled.id, monitor="quality")
        assert [m["trigger"] for m in ms] == ["manual", "schedule"]
        sched2.stop()
    finally:
        sched.stop()


def test_scheduler_thread_and_prometheus_metrics(api, client, service, labelled) -> None:
    service.monitors.configure(labelled.id, "quality", {"min_feedback_data_size": 10, "max_rows_per_evaluation": None})
    service.monitors.start_scheduler(tick=0.1)
    try:
        r = client.post(f"/v1/subscriptions/{labelled.id}/monitors/quality/runs", params={"wait": "false"})
        assert r.status_code == 202
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not service.monitors.measurements(labelled.id, monitor="quality"):
            time.sleep(0.1)
        m = service.monitors.measurements(labelled.id, monitor="quality")[0]
    finally:
        service.monitors.stop_scheduler()
    text = client.get("/metrics").text
    acc = m["values"]["accuracy"]
    line = next(
        x
        for x in text.splitlines()
        if x.startswith("scrutiny_monitor_value")
        and f'subscription_id="{labelled.id}"' in x
        and 'metric="accuracy"' in x
    )
    assert float(line.rsplit(" ", 1)[1]) == pytest.approx(acc)
    assert 'monitor="quality"' in line and 'qualifier=""' in line
    assert any(
        x.startswith("scrutiny_monitor_limit") and 'metric="area_under_roc"' in x and 'type="lower_limit"' in x
        for x in text.splitlines()
    )


def test_fairness_through_the_framework_api(client, labelled) -> None:
    """Fairness (its own package) configured, run, thresholded and exposed like every monitor."""
    base = f"/v1/subscriptions/{labelled.id}"
    recs = client.get(f"{base}/monitors/fairness/recommendations").json()["recommendations"]
    assert {"Sex", "Age"} <= {r["feature"] for r in recs}
    assert client.get(f"{base}/monitors/quality/recommendations").status_code == 404
    cfg = {
        "features": [
            {"feature": "Sex", "majority": ["male"], "minority": ["female"], "threshold": 0.99},
            {"feature": "Age", "majority": [[26, 75]], "minority": [[18, 25]]},
        ],
        "favourable_class": ["No Risk"],
        "unfavourable_class": ["Risk"],
        "min_records": 50,
    }
    r = client.put(f"{base}/monitors/fairness", json={**cfg, "features": [{"feature": "Sexx", "minority": ["f"]}]})
    assert r.status_code == 422 and "Sexx" in r.json()["error"]["message"]
    r = client.put(f"{base}/monitors/fairness", json=cfg)
    assert r.status_code == 200, r.text
    m = client.post(f"{base}/monitors/fairness/runs").json()
    assert m["status"] == "finished" and m["records"] == 300
    assert {"fairness_value.Sex", "fairness_value.Age"} <= set(m["values"])
    limits = {(t["metric"], t["type"]): t["value"] for t in m["thresholds"]}
    assert limits[("fairness_value.Sex", "lower_limit")] == 0.99
    if m["values"]["fairness_value.Sex"] < 0.99:
        assert client.get("/v1/alerts", params={"subscription_id": labelled.id, "monitor": "fairness"}).json()["alerts"]
    text = client.get("/metrics").text
    assert any('metric="fairness_value"' in x and 'qualifier="Sex"' in x for x in text.splitlines())
