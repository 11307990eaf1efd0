"""A demo-like store for the dashboard's tests: the demo credit-risk engine scored over HTTP,
payload logged with times over the last hours, feedback for part of it, quality, fairness and
performance monitors run at several moments, so there are time series, violations and alerts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import numpy as np

from scrutiny.demo import credit
from scrutiny.demo.traffic import Applicants
from scrutiny.service import Service
from scrutiny.store.types import utcnow
from tests.support.monitors import subscribe_credit

FAIRNESS = {
    "features": [
        {"feature": "Sex", "majority": ["male"], "minority": ["female"], "threshold": 0.95},
        {"feature": "Age", "majority": [[26, 75]], "minority": [[18, 25]], "threshold": 0.95},
    ],
    "favourable_class": ["No Risk"],
    "unfavourable_class": ["Risk"],
    "min_records": 50,
    "perturbation": {"enabled": True, "max_records": 120, "batch_rows": 120, "max_listed": 20},
}
DRIFT = {"min_samples": 100, "max_samples": 1000}
QUALITY = {
    "min_feedback_data_size": 30,
    "max_rows_per_evaluation": 2000,
    "thresholds": [{"metric": "accuracy", "type": "lower_limit", "value": 0.8}],
}


@dataclass
class Scenario:
    sub: Any
    rows: int
    feedback_rows: int
    start: datetime
    end: datetime
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def build(service: Service, engine_url: str, *, rounds: int = 6, per_round: int = 60, seed: int = 3) -> Scenario:
    """``rounds`` half-hours of traffic ending now; each monitor runs at the end of every round."""
    sub = subscribe_credit(service, engine_url)
    applicants = Applicants(seed=seed)
    truth = credit.train_credit_model(seed=1)
    rng = np.random.default_rng(seed)
    end = utcnow().replace(microsecond=0) - timedelta(minutes=1)
    start = end - timedelta(minutes=30 * rounds)
    rows = feedback_rows = 0
    runs: dict[str, list[dict[str, Any]]] = {"quality": [], "fairness": [], "performance": [], "drift": []}
    service.monitors.configure(sub.id, "quality", QUALITY)
    service.monitors.configure(sub.id, "fairness", FAIRNESS)
    service.monitors.configure(sub.id, "performance", {"window_minutes": 30})
    service.monitors.configure(sub.id, "drift", DRIFT)
    url = f"{engine_url}/v1/deployments/credit-risk/online"
    with httpx.Client(timeout=30) as http:
        for r in range(rounds):
            t0 = start + timedelta(minutes=30 * r)
            if r >= rounds // 2:
                applicants.drift = 0.6  # younger applicants, larger and longer loans
            batch = applicants.sample(per_round)
            resp = http.post(url, json={"fields": credit.FEATURES, "values": batch})
            resp.raise_for_status()
            out = resp.json()
            offsets = np.sort(rng.uniform(0, 1800, per_round))
            records = []
            for i, row in enumerate(batch):
                records.append(
                    {
                        "scoring_id": f"s{r}-{i}",
                        "scoring_timestamp": (t0 + timedelta(seconds=float(offsets[i]))).isoformat(),
                        "response_time": int(rng.integers(5, 60)),
                        "request": {"fields": credit.FEATURES, "values": [row]},
                        "response": {"fields": out["fields"], "values": [out["values"][i]]},
                    }
                )
            rows += service.payloads.store(sub.id, records).stored
            pick = [i for i in range(per_round) if rng.random() < 0.5]
            labels = applicants.labels_for([batch[i] for i in pick], truth)
            fb = {
                "fields": ["scoring_id", credit.LABEL, "scoring_timestamp"],
                "values": [
                    [f"s{r}-{i}-1", lab, (t0 + timedelta(seconds=float(offsets[i]) + 5)).isoformat()]
                    for i, lab in zip(pick, labels, strict=True)
                ],
            }
            feedback_rows += service.feedback.store(sub.id, fb).stored
            now = t0 + timedelta(minutes=30)
            for name in runs:
                runs[name].append(service.monitors.run(sub.id, name, now=now))
    return Scenario(service.subscriptions.get(sub.id), rows, feedback_rows, start, end, runs)
