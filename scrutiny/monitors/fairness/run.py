"""One fairness run, independent of how it is scheduled or stored: configure once, then each run
takes its window, counts it (stored partial counts for the new rows when the caller has them,
the database for the rest), evaluates every attribute, optionally adds the perturbed twins,
and returns values, thresholds, violations and details for drill-down.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from scrutiny.common import ScoringRequest, ScoringResponse
from scrutiny.errors import NotFound
from scrutiny.monitors.fairness import sql, window
from scrutiny.monitors.fairness.config import FairnessConfig
from scrutiny.monitors.fairness.counting import FairnessCounts, IncompatibleCounts
from scrutiny.monitors.fairness.evaluate import AttributeResult, evaluate_attribute
from scrutiny.monitors.fairness.feedback import feedback_metrics
from scrutiny.monitors.fairness.perturb import PerturbationResult, perturb, read_rows
from scrutiny.monitors.fairness.resolve import resolve
from scrutiny.monitors.fairness.spec import FairnessSpec
from scrutiny.monitors.fairness.training_profile import training_profile
from scrutiny.store import records
from scrutiny.store.types import utcnow
from scrutiny.subscription import Subscription

if TYPE_CHECKING:
    from scrutiny.service import Service

FINISHED = "finished"
INSUFFICIENT = window.INSUFFICIENT


def configure(service: Service, sub_id: str, config: FairnessConfig | dict[str, Any]) -> FairnessSpec:
    """Check the configuration against the subscription and profile the training data once."""
    sub = service.subscriptions.get(sub_id)
    spec = resolve(config, sub)
    try:
        frame = service.subscriptions.training_frame(sub.id)
    except NotFound:
        spec.warnings.append("no training data: training rates are not shown and twins draw from the configuration")
        return spec
    spec.training = training_profile(spec, frame, sub.layout.label_column)
    return spec


@dataclass
class FairnessRun:
    status: str
    spec: FairnessSpec
    window: window.Window
    payload: list[AttributeResult] = field(default_factory=list)  # the window's own rows
    perturbed: dict[str, AttributeResult] = field(default_factory=dict)  # payload + perturbed, per attribute
    perturbation: PerturbationResult | None = None
    feedback: dict[str, Any] | None = None
    counts: FairnessCounts | None = None

    def headline(self) -> list[AttributeResult]:
        """What is compared with the thresholds: payload + perturbed where twins exist
        (OpenScale's definition), the payload alone otherwise."""
        return [self.perturbed.get(r.feature, r) for r in self.payload]

    def metrics(self) -> list[dict[str, Any]]:
        """OpenScale-shaped metrics (contract §8): numbers plus the ``feature`` tag."""
        out = []
        for r in self.headline():
            m: dict[str, Any] = {"feature": r.feature}
            for key in ("fairness_value", "average_fairness_value", "statistical_parity_difference"):
                v = getattr(r, key)
                if v is not None:
                    m[key] = v
            for key, v in ((self.feedback or {}).get(r.feature) or {}).items():
                if isinstance(v, float):
                    m[key] = v
            out.append(m)
        return out

    def values(self) -> dict[str, float]:
        """Flat ``{metric.attribute: number}``."""
        return {f"{k}.{m['feature']}": v for m in self.metrics() for k, v in m.items() if k != "feature"}

    def thresholds(self) -> dict[str, dict[str, float]]:
        return {f"fairness_value.{a.name}": {"lower_limit": a.threshold} for a in self.spec.attributes}

    def violations(self) -> list[dict[str, Any]]:
        out = []
        for r in self.headline():
            if r.biased and r.fairness_value is not None:
                out.append(
                    {
                        "metric": f"fairness_value.{r.feature}",
                        "feature": r.feature,
                        "value": r.fairness_value,
                        "limit": r.threshold,
                        "type": "lower_limit",
                        "distance": r.threshold - r.fairness_value,
                        "message": f"fairness of {r.feature} is {r.fairness_value:.2%}, "
                        f"{(r.threshold - r.fairness_value) * 100:.2f} points below the {r.threshold:.0%} threshold",
                    }
                )
        return out

    def details(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "status": self.status,
            "window": self.window.to_dict(),
            "records": self.window.rows,
            "outcome": self.spec.outcome.to_dict(),
        }
        if self.counts is not None:
            d["first_record"] = _ts(self.counts.first)
            d["last_record"] = _ts(self.counts.last)
        if self.status != FINISHED:
            d["reason"] = (
                f"the payload table holds {self.window.table_rows} records; fairness needs min_records = {self.window.min_records}"
            )
            return d
        attrs = {}
        for r in self.payload:
            entry = {"payload": r.to_dict(), "training": (self.spec.training.get(r.feature) or {}).get("rates")}
            if r.feature in self.perturbed:
                entry["payload_perturbed"] = self.perturbed[r.feature].to_dict()
            if self.feedback and r.feature in self.feedback:
                entry["feedback"] = self.feedback[r.feature]
            attrs[r.feature] = entry
        d["attributes"] = attrs
        d["metric_rows"] = [row for r in self.headline() for row in r.metric_rows()]
        if self.perturbation is not None:
            d["perturbation"] = self.perturbation.to_dict()
        if self.spec.warnings:
            d["warnings"] = list(self.spec.warnings)
        return d


Scorer = Callable[[ScoringRequest], ScoringResponse]


def run(
    service: Service,
    sub: Subscription,
    spec: FairnessSpec,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    new_counts: FairnessCounts | None = None,
    scorer: Scorer | None = None,
) -> FairnessRun:
    """Evaluate the window ``(since, until]`` (backfilled to ``min_records``).

    ``new_counts``: partial counts the caller already holds for exactly the new rows (merged
    time buckets); the database then only counts the backfill. Without them one ``GROUP BY``
    counts the whole window.
    """
    until = until or utcnow()
    t = sql.record_table(sub)
    with service.store.engine.connect() as conn:
        if not records.exists(conn, t.name):
            w = window.Window(since, until, spec.min_records, 0, table_rows=0)
            return FairnessRun(INSUFFICIENT, spec, w)
        w = window.plan(conn, t, since=since, until=until, min_records=spec.min_records)
        if not w.sufficient:
            return FairnessRun(INSUFFICIENT, spec, w)
        counts = _window_counts(conn, t, spec, w, new_counts)
        feedback = feedback_metrics(conn, sub, spec, until=until)
        rows = None
        options = spec.perturbation or {}
        if options.get("enabled"):
            rows = read_rows(conn, t, sub, spec, w, int(options.get("max_records") or 10_000))
    result = FairnessRun(FINISHED, spec, w, counts=counts, feedback=feedback or None)
    result.payload = [evaluate_attribute(counts.attributes[a.name], a, spec.outcome) for a in spec.attributes]
    if rows is not None and len(rows):
        score = scorer or (lambda req: service.subscriptions.score_request(sub, req, internal=True))
        p = perturb(
            rows,
            sub,
            spec,
            score,
            batch_rows=int(options.get("batch_rows") or 1000),
            max_listed=int(options.get("max_listed") or 100),
        )
        result.perturbation = p
        if p.counts is not None:
            result.perturbed = {
                name: evaluate_attribute(table, spec.attribute(name), spec.outcome)
                for name, table in p.counts.attributes.items()
            }
    return result


def _window_counts(
    conn: Any, t: Any, spec: FairnessSpec, w: window.Window, new_counts: FairnessCounts | None
) -> FairnessCounts:
    if new_counts is not None and new_counts.fingerprints != spec.fingerprints():
        new_counts = None  # made under other bins: count again in the database
    if new_counts is None:
        return sql.count_query(conn, t, spec, w.conditions(t))
    back = w.backfill_conditions(t)
    if back is None:
        return new_counts
    try:
        return new_counts.merge(sql.count_query(conn, t, spec, back))
    except IncompatibleCounts:  # pragma: no cover - fingerprints were checked above
        return sql.count_query(conn, t, spec, w.conditions(t))


def _ts(v: Any) -> str | None:
    return None if v is None else str(v) + "Z"
