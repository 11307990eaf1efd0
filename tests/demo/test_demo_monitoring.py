"""`scrutiny demo` with its monitoring stage: within seconds of traffic a new user has real
measurements and an alert."""

from __future__ import annotations

from pathlib import Path

from scrutiny._server import free_port
from scrutiny.config import Settings
from scrutiny.demo import monitoring
from scrutiny.demo.run import run_demo
from scrutiny.service import Service


def _shown(ctx) -> bool:  # type: ignore[no-untyped-def]
    """What a new user should see: quality, performance and fairness measurements and the
    accuracy alert (the first alert may be another one: wait for this one, do not race it)."""
    svc = ctx.service
    sub_id = ctx.subscription.id
    done = {m["monitor"] for m in svc.monitors.measurements(sub_id, status="finished")}
    alerts = svc.monitors.alerts(subscription_id=sub_id, status="open")
    accuracy_alert = any(a["monitor"] == "quality" and a["metric"] == "accuracy" for a in alerts)
    return {"quality", "performance", "fairness"} <= done and accuracy_alert and ctx.rows_logged >= 200


def test_demo_shows_measurements_and_an_alert(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(monitoring, "DRIFT_AFTER", 8.0)
    settings = Settings(data_dir=tmp_path / "demo", port=free_port(), sqlite_synchronous="NORMAL")
    # typically done in ~20 s; the bound is for a loaded machine, the outcome is what is checked
    ctx = run_demo(settings, duration=150, rate=15, stop_when=_shown)
    assert ctx.elapsed < 149, "the demo showed no measurements and alert within its time"
    assert ctx.rows_logged >= 200
    assert ctx.applicants.drift == monitoring.DRIFT
    svc = Service(settings)
    try:
        sub = svc.subscriptions.list()[0]
        quality = svc.monitors.measurements(sub.id, monitor="quality", status="finished")
        assert quality and quality[0]["records"] >= 30
        assert svc.monitors.measurements(sub.id, monitor="performance", status="finished")
        _, feedback = svc.payloads.read(sub.id, kind="feedback", limit=10_000)
        assert 0.2 * ctx.rows_logged < len(feedback) < 0.6 * ctx.rows_logged
        open_alerts = svc.monitors.alerts(subscription_id=sub.id, status="open")
        assert any(a["monitor"] == "quality" and a["metric"] == "accuracy" for a in open_alerts), open_alerts
        enabled = {m["monitor"] for m in svc.monitors.configs(sub.id) if m["enabled"]}
        assert {"quality", "performance", "fairness"} <= enabled
        fairness = svc.monitors.measurements(sub.id, monitor="fairness", status="finished")
        assert fairness and {"fairness_value.Sex", "fairness_value.Age"} <= set(fairness[0]["values"])
    finally:
        svc.close()
