"""The fairness monitor in the monitor framework (``scrutiny.monitors.base``).

* plan: each attribute's bins and the outcome coding (what stored counts depend on); groups,
  favourable labels and thresholds are applied at evaluation, so changing them keeps the counts;
* build: per hour bucket, counts by (attribute key, outcome) of the ingested rows;
* window: the rows since the previous run, backfilled to ``min_records`` (contract §7.1 step 1);
* evaluate: rates, disparate impact per attribute, training rates, optional perturbed twins
  scored through the engine, label-based metrics from feedback rows.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from datetime import datetime, timedelta
from typing import Any

import orjson

from scrutiny.core.subscription import Subscription
from scrutiny.errors import ScrutinyError
from scrutiny.ingest.batch import RecordBatch
from scrutiny.monitors.base import (
    FEEDBACK,
    PAYLOAD,
    Direction,
    LimitType,
    Metric,
    Monitor,
    Result,
    Run,
    Threshold,
    Window,
)
from scrutiny.monitors.builtin.fairness.config import FairnessConfig, default_thresholds
from scrutiny.monitors.builtin.fairness.counting import FairnessCounts, count_batch
from scrutiny.monitors.builtin.fairness.evaluate import evaluate_attribute
from scrutiny.monitors.builtin.fairness.feedback import METRICS as FEEDBACK_METRICS
from scrutiny.monitors.builtin.fairness.feedback import feedback_metrics
from scrutiny.monitors.builtin.fairness.perturb import perturb, window_rows
from scrutiny.monitors.builtin.fairness.recommend import Recommendation, recommend
from scrutiny.monitors.builtin.fairness.report import FairnessReport
from scrutiny.monitors.builtin.fairness.resolve import resolve
from scrutiny.monitors.builtin.fairness.spec import AttributeSpec, FairnessSpec, OutcomeSpec
from scrutiny.monitors.builtin.fairness.training_profile import training_profile

_RATE = (0.0, 1.0)
METRICS: dict[str, Metric] = {
    "fairness_value": Metric(
        Direction.HIGHER, 0.0, 1.0, "disparate impact: favourable rate of the monitored group / of the reference group"
    ),
    "average_fairness_value": Metric(
        Direction.HIGHER, 0.0, 1.0, "mean of the per-group values (several monitored groups)"
    ),
    "statistical_parity_difference": Metric(Direction.EITHER, -1.0, 1.0, "favourable rate monitored - reference"),
    "monitored_favourable_rate": Metric(Direction.EITHER, *_RATE, "favourable rate of the monitored group"),
    "reference_favourable_rate": Metric(Direction.EITHER, *_RATE, "favourable rate of the reference group"),
    **{m: Metric(Direction.EITHER, -1.0, 1.0, "from feedback labels: monitored - reference") for m in FEEDBACK_METRICS},
}
METRICS["average_abs_odds_difference"] = Metric(Direction.LOWER, 0.0, 1.0, "from feedback labels")

_profiles: OrderedDict[str, dict[str, Any]] = OrderedDict()
_profiles_lock = threading.Lock()


class FairnessMonitor(Monitor):
    name = "fairness"
    table = PAYLOAD
    config_model = FairnessConfig
    default_period = timedelta(hours=1)
    metrics = METRICS
    description = (
        "bias: favourable-outcome rate of monitored vs reference groups (disparate impact) per protected attribute"
    )

    # -- configuration -------------------------------------------------------------------------
    def validate(self, sub: Subscription, config: FairnessConfig, known: Any) -> FairnessConfig:
        resolve(config, sub, known=known)
        return config

    def default_thresholds(self, sub: Subscription, config: FairnessConfig) -> list[Threshold]:
        return [Threshold(metric=m, type=LimitType.LOWER, value=v) for m, v in default_thresholds(config)]

    def recommend(self, sub: Subscription) -> list[Recommendation]:
        """Protected attributes found in the subscription's columns, with suggested groups."""
        return recommend(sub)

    # -- partials --------------------------------------------------------------------------------
    def plan(self, sub: Subscription, config: FairnessConfig) -> dict[str, Any]:
        spec = resolve(config, sub)
        out = spec.outcome
        return {
            "attributes": [
                {k: v for k, v in a.to_dict().items() if k in ("feature", "categorical", "integer", "source", "edges")}
                for a in spec.attributes
            ],
            "outcome": {
                "class_label": out.column,
                "regression": out.regression,
                # labels are matched at evaluation; only regression ranges shape the counts
                "favourable_class": out.favourable if out.regression else [],
                "unfavourable_class": out.unfavourable if out.regression else None,
            },
        }

    def load_plan(self, plan: dict[str, Any]) -> FairnessSpec:
        attrs = [
            AttributeSpec.from_dict({**a, "monitored": [], "reference": None, "threshold": None})
            for a in plan["attributes"]
        ]
        return FairnessSpec(attrs, OutcomeSpec.from_dict(plan["outcome"]), 1)

    def columns(self, plan: FairnessSpec) -> list[str]:
        return [*(a.name for a in plan.attributes), plan.outcome.column]

    def build(self, plan: FairnessSpec, batch: RecordBatch) -> FairnessCounts:
        return count_batch(batch, plan)

    def partials_in_database(self, conn: Any, sub: Subscription, plan: FairnessSpec) -> Any:
        """Backfill on PostgreSQL: every hour bucket's counts from one ``GROUP BY``."""
        from scrutiny.monitors.builtin.fairness import sql

        if conn.dialect.name != "postgresql" or not sql.records.exists(conn, sub.layout.payload_table):
            return None
        return sql.bucket_counts(conn, sql.record_table(sub), plan)

    def empty(self, plan: FairnessSpec) -> FairnessCounts:
        return FairnessCounts()

    def load_partial(self, data: bytes) -> FairnessCounts:
        return FairnessCounts.from_bytes(data)

    # -- runs --------------------------------------------------------------------------------------
    def window(self, config: FairnessConfig, now: datetime, last: dict[str, Any] | None) -> Window:
        """Rows logged since the last run, backfilled from earlier rows up to ``min_records``.
        With no new rows the same most recent rows are judged again: the last value repeats."""
        from scrutiny.monitors.run.reader import parse_iso

        start = None
        end = ((last or {}).get("details") or {}).get("window", {}).get("end")
        if isinstance(end, str):
            start = parse_iso(end)
        return Window(start=start, end=now, min_rows=config.min_records)

    def evaluate(self, run: Run) -> Result:
        config: FairnessConfig = run.config
        sub = run.sub
        if run.records < config.min_records:
            return Result.insufficient(
                f"the payload table holds {run.records} records; fairness needs min_records = {config.min_records}",
                records=run.records,
            )
        spec = resolve(config, sub)
        if spec.fingerprints() != run.plan.fingerprints():
            raise ScrutinyError("the fairness configuration changed while the run started; run it again")
        counts: FairnessCounts = run.partial()
        spec.training = _training(run, spec)
        payload = [evaluate_attribute(counts.attributes[a.name], a, spec.outcome) for a in spec.attributes]
        report = FairnessReport(spec, counts, payload, training=spec.training)
        if config.perturbation.enabled:
            _perturb(run, spec, config, report)
        label = sub.layout.label_column
        if label:
            cols = [*(a.name for a in spec.attributes), label, spec.outcome.column]
            batches = run.batches(cols, table=FEEDBACK, newest_first=True, limit=config.max_feedback_rows)
            report.feedback = feedback_metrics(batches, spec, label) or None
        return Result(values=report.values(), details=report.details())


def _perturb(run: Run, spec: FairnessSpec, config: FairnessConfig, report: FairnessReport) -> None:
    sub = run.sub
    cols = list(dict.fromkeys([*sub.feature_fields, spec.outcome.column, *(a.name for a in spec.attributes)]))
    opts = config.perturbation
    rows = window_rows(run.batches(cols, newest_first=True, limit=opts.max_records), sub, spec)
    if not len(rows):
        return
    p = perturb(rows, sub, spec, run.score, batch_rows=opts.batch_rows, max_listed=opts.max_listed)
    report.perturbation = p
    if p.counts is not None:
        report.perturbed = {
            name: evaluate_attribute(table, spec.attribute(name), spec.outcome)
            for name, table in p.counts.attributes.items()
        }


def _training(run: Run, spec: FairnessSpec) -> dict[str, Any]:
    """Training rates and twin pools, computed once per training data and configuration."""
    sub = run.sub
    stats = orjson.dumps(sub.training_statistics or {}, option=orjson.OPT_SORT_KEYS)
    conf = orjson.dumps(spec.to_dict(), option=orjson.OPT_SORT_KEYS)
    key = hashlib.blake2b(sub.id.encode() + b"\0" + stats + b"\0" + conf, digest_size=16).hexdigest()
    with _profiles_lock:
        hit = _profiles.get(key)
    if hit is not None:
        return hit
    frame = run.training_frame(
        [*(a.name for a in spec.attributes), *([sub.layout.label_column] if sub.layout.label_column else [])]
    )
    if frame is None:
        spec.warnings.append("no training data: training rates are not shown and twins draw from the configuration")
        return {}
    profile = training_profile(spec, frame, sub.layout.label_column)
    with _profiles_lock:
        _profiles[key] = profile
        while len(_profiles) > 256:
            _profiles.popitem(last=False)
    return profile
