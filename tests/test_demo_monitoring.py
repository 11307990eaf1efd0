"""`scrutiny demo` with its monitoring stage: within seconds of traffic a new user has real
measurements and an alert."""

from __future__ import annotations

from pathlib import Path

from scrutiny._server import free_port
from scrutiny.config import Settings
from scrutiny.demo import monitoring
from scrutiny.demo.run import run_demo
from scrutiny.service import Service


def test_demo_shows_measurements_and_an_alert(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(monitoring, "DRIFT_AFTER", 8.0)
    settings = Settings(data_dir=tmp_path / "demo", port=free_port(), sqlite_synchronous="NORMAL")
    ctx = run_demo(settings, duration=25, rate=15)
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
        assert any(a["monitor"] == "quality" and a["metric"] == "accuracy" for a in open_alerts)
        enabled = {m["monitor"] for m in svc.monitors.configs(sub.id) if m["enabled"]}
        assert {"quality", "performance", "fairness"} <= enabled
        fairness = svc.monitors.measurements(sub.id, monitor="fairness", status="finished")
        assert fairness and {"fairness_value.Sex", "fairness_value.Age"} <= set(fairness[0]["values"])
    finally:
        svc.close()
