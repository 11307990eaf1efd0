"""The demo's monitoring stage: every monitor on, feedback for part of the traffic, a drift that
appears after a while, and runs every minute, so a new user sees real measurements and alerts
within minutes.

* setup: enable quality (accuracy lower limit 0.8: the demo's noisy labels keep it near 0.7, so
  its alert opens at the first run), performance, and, when installed, fairness on Sex (female
  monitored) and Age (18-25 monitored) and drift; all on a one-minute schedule; start the
  scheduler.
* tick: label ~40% of the new payload rows with plausible true outcomes
  (``Applicants.labels_for``) and log them as feedback by ``scoring_id``; after
  ``DRIFT_AFTER`` seconds the applicants drift (younger, larger and longer loans).
* each new measurement is printed with its violations.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from scrutiny.demo import credit
from scrutiny.demo.run import DemoContext, DemoStage, stages

log = logging.getLogger("scrutiny.demo")

DRIFT_AFTER = 90.0  # seconds of traffic before the applicants start to drift
DRIFT = 0.6
FEEDBACK_SHARE = 0.4
EVERY_MINUTE = {"repeat_interval": 1, "repeat_unit": "minute"}


def monitor_configs() -> dict[str, dict[str, Any]]:
    """What the demo enables (the monitors that are installed)."""
    from scrutiny.monitors import registry

    out: dict[str, dict[str, Any]] = {
        "quality": {
            "min_feedback_data_size": 30,
            "max_rows_per_evaluation": 2000,
            "thresholds": [{"metric": "accuracy", "type": "lower_limit", "value": 0.8}],
            "schedule": EVERY_MINUTE,
        },
        "performance": {"schedule": EVERY_MINUTE},
    }
    if registry.find("fairness") is not None:
        out["fairness"] = {
            "features": [
                {"feature": "Sex", "majority": ["male"], "minority": ["female"], "threshold": 0.95},
                {"feature": "Age", "majority": [[26, 75]], "minority": [[18, 25]], "threshold": 0.95},
            ],
            "favourable_class": ["No Risk"],
            "unfavourable_class": ["Risk"],
            "min_records": 50,
            "schedule": EVERY_MINUTE,
        }
    if registry.find("drift") is not None:
        out["drift"] = {"min_samples": 100, "schedule": EVERY_MINUTE}
    return out


def setup(ctx: DemoContext) -> None:
    sub = ctx.subscription
    enabled = []
    for name, cfg in monitor_configs().items():
        try:
            sub.monitors[name].enable(**cfg)
            enabled.append(name)
        except Exception as exc:  # a monitor whose configuration this version does not accept
            log.warning("demo: could not enable %s: %s", name, exc)
    ctx.state["monitors"] = enabled
    ctx.state["labelled"] = set()
    ctx.state["seen_measurements"] = set()
    ctx.state["truth"] = credit.train_credit_model(seed=1)
    ctx.state["rng"] = np.random.default_rng(3)
    ctx.service.monitors.start_scheduler(tick=1.0)


def tick(ctx: DemoContext) -> None:
    if ctx.elapsed >= DRIFT_AFTER and ctx.applicants.drift == 0.0:
        ctx.applicants.drift = DRIFT
        ctx.state["drift_started"] = ctx.elapsed
        print(f"  {ctx.elapsed:5.0f} s: the applicants start to drift (younger, larger and longer loans)")
    _send_feedback(ctx)
    _kick(ctx)
    _report(ctx)


def _kick(ctx: DemoContext) -> None:
    """Queue runs as soon as there is something to see, instead of waiting for the minute."""
    kicked: set[str] = ctx.state.setdefault("kicked", set())
    enabled = ctx.state.get("monitors", [])
    due = []
    if ctx.state.get("feedback_rows", 0) >= 60:
        due += [m for m in ("quality", "fairness") if m in enabled and m not in kicked]
    started = ctx.state.get("drift_started")
    if started is not None and ctx.elapsed >= started + 30 and "drift" in enabled and "drift" not in kicked:
        due.append("drift")
    for name in due:
        kicked.add(name)
        try:
            ctx.subscription.monitors[name].run(wait=False)
        except Exception as exc:
            log.warning("demo: could not queue a %s run: %s", name, exc)


def _send_feedback(ctx: DemoContext) -> None:
    sub = ctx.subscription
    try:
        recent = sub.payload_logging.get_table_content(limit=200)
    except Exception as exc:
        log.warning("demo: reading payloads failed: %s", exc)
        return
    if recent.empty:
        return
    done: set[str] = ctx.state["labelled"]
    fresh = recent[~recent["scoring_id"].isin(done)]
    if fresh.empty:
        return
    done.update(fresh["scoring_id"])
    pick = ctx.state["rng"].random(len(fresh)) < FEEDBACK_SHARE
    chosen = fresh[pick]
    if chosen.empty:
        return
    labels = ctx.applicants.labels_for(chosen[credit.FEATURES].values.tolist(), ctx.state["truth"])
    import pandas as pd

    try:
        r = sub.feedback_logging.store(
            pd.DataFrame({"scoring_id": chosen["scoring_id"].tolist(), credit.LABEL: labels})
        )
        ctx.state["feedback_rows"] = ctx.state.get("feedback_rows", 0) + int(r["stored"])
    except Exception as exc:
        log.warning("demo: feedback logging failed: %s", exc)


def _report(ctx: DemoContext) -> None:
    """Print each new measurement once, with its violations."""
    seen: set[str] = ctx.state["seen_measurements"]
    try:
        rows = ctx.subscription.measurement_list(limit=20)
    except Exception:
        return
    for m in reversed(rows):
        if m["id"] in seen or (m["monitor"] == "performance" and m["violations"] == []):
            seen.add(m["id"])
            continue
        seen.add(m["id"])
        if m["status"] != "finished":
            print(f"  {ctx.elapsed:5.0f} s: {m['monitor']}: {m['status']} ({m.get('message') or ''})")
            continue
        shown = ", ".join(f"{k} {v:.3g}" for k, v in list(m["values"].items())[:4] if v is not None)
        print(f"  {ctx.elapsed:5.0f} s: {m['monitor']} over {m['records']} records: {shown}")
        for v in m["violations"]:
            print(f"           ALERT {v['message']}")


def summary(ctx: DemoContext) -> list[str]:
    api, sid = ctx.api_url, ctx.subscription.id
    return [
        f"monitors          {', '.join(ctx.state.get('monitors', []))} (every minute; drift appears after {DRIFT_AFTER:.0f} s)",
        f"measurements      {api}/v1/subscriptions/{sid}/measurements",
        f"alerts            {api}/v1/alerts",
        f"Prometheus        {api}/metrics",
    ]


stage = DemoStage("monitoring", setup=setup, tick=tick, summary=summary)


def install() -> None:
    if stage not in stages:
        stages.append(stage)
