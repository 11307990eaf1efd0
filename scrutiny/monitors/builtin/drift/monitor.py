"""The drift monitor (contract §7.4): feature drift, accuracy drift and data consistency.

* **Feature drift** (per feature, against the training statistics) is computed from partial
  aggregates: histograms on the training bins, kept per hour as records are ingested and
  merged at run time, so it covers every row of the window at the cost of the new rows.
* **Accuracy drift** and **data consistency** are verdicts per transaction: they read the
  window's ``max_samples`` most recent rows and apply the subscription's drift archive (the
  detector and the constraints, learned from the training data on the first run, then reused).

The window is OpenScale's: the rows logged since the previous run, and at least the
``min_samples`` most recent ones.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from scrutiny.core.subscription import Subscription
from scrutiny.errors import InvalidInput
from scrutiny.ingest.batch import RecordBatch
from scrutiny.monitors.base import Direction, Metric, Monitor, MonitorConfig, Result, Run, Threshold, Window
from scrutiny.monitors.builtin.drift import archive as archive_mod
from scrutiny.monitors.builtin.drift.data_drift import ALPHA, JS_THRESHOLD, MIN_ROWS, DataDriftSettings, evaluate
from scrutiny.monitors.builtin.drift.histograms import DriftHistograms
from scrutiny.monitors.builtin.drift.reference import DriftReference
from scrutiny.monitors.builtin.drift.transactions import TransactionDrift
from scrutiny.monitors.run.reader import parse_iso

log = logging.getLogger("scrutiny.monitors.builtin.drift")

_SHARE = (0.0, 1.0)
METRICS: dict[str, Metric] = {
    "drift_magnitude": Metric(Direction.LOWER, *_SHARE, "drop in accuracy: base accuracy - predicted accuracy"),
    "predicted_accuracy": Metric(Direction.HIGHER, *_SHARE, "share of transactions the detector predicts correct"),
    "data_drift_magnitude": Metric(Direction.LOWER, *_SHARE, "share of transactions breaking a training constraint"),
    "drifted_features": Metric(Direction.LOWER, 0.0, None, "features whose distribution drifted from training"),
    "js_distance": Metric(Direction.LOWER, *_SHARE, "Jensen-Shannon distance of a feature from training"),
}


class DriftConfig(MonitorConfig):
    drift_threshold: float = Field(0.1, gt=0, le=1, description="alert when a drop reaches this (both measures)")
    min_samples: int = Field(1000, ge=1, le=10_000_000, description="fewer rows in the store: no measurement")
    max_samples: int = Field(
        10_000, ge=1, le=1_000_000, description="per-transaction verdicts cover at most the N most recent rows"
    )
    train_drift_model: bool = Field(True, description="learn the accuracy drift detector from the training data")
    enable_model_drift: bool = Field(True, description="drop in accuracy (classification)")
    enable_data_drift: bool = Field(True, description="drop in data consistency")
    enable_feature_drift: bool = Field(True, description="per-feature drift against the training statistics")
    features: list[str] | None = Field(None, description="features checked for feature drift (default: all)")
    alpha: float = Field(ALPHA, gt=0, lt=1, description="feature drift: family-wise significance (Holm)")
    js_threshold: float = Field(JS_THRESHOLD, gt=0, le=1, description="feature drift: smallest JS distance")
    min_feature_rows: int = Field(MIN_ROWS, ge=1, description="feature drift: fewer analysed rows, no verdict")
    list_limit: int = Field(1000, ge=0, le=100_000, description="drifted transactions listed per group")

    @model_validator(mode="after")
    def _samples(self) -> DriftConfig:
        if self.max_samples < min(self.min_samples, 1_000_000):
            raise ValueError("max_samples is smaller than min_samples")
        return self


class DriftMonitor(Monitor):
    name = "drift"
    config_model = DriftConfig
    default_period = timedelta(hours=3)
    description = "feature drift against training, drop in accuracy (drift detector), drop in data consistency"
    metrics = METRICS

    # -- configuration ---------------------------------------------------------------------------
    def validate(self, sub: Subscription, config: DriftConfig, known: Any) -> DriftConfig:
        stats = sub.training_statistics
        if stats is None:
            raise InvalidInput(
                "drift needs the subscription's training data (statistics and rows)", field="training_data"
            )
        if int(stats.get("version", 0)) < 2:
            raise InvalidInput(
                "the training statistics predate drift support; upload the training data again", field="training_data"
            )
        for i, f in enumerate(config.features or []):
            if f not in sub.feature_fields:
                raise InvalidInput(f"{f!r} is not a feature of this subscription", field=f"features[{i}]")
        for i, t in enumerate(config.thresholds):
            qualifier = t.metric.partition(".")[2]
            if t.metric.startswith("js_distance.") and qualifier not in sub.feature_fields:
                raise InvalidInput(f"{qualifier!r} is not a feature", field=f"thresholds[{i}].metric")
        return config

    def prepare(self, service: Any, sub: Subscription, config: DriftConfig) -> dict[str, Any] | None:
        """Learn the archive (detector, constraints) now, so runs do not pay for it."""
        if not (config.enable_model_drift or config.enable_data_drift):
            return None
        t0 = time.perf_counter()
        try:
            arch, built = archive_mod.ensure(service, sub, train_detector=self.detector_wanted(sub, config))
        except Exception as exc:  # the configuration stays; the first run tries again and reports
            log.warning("drift archive of %s not learned at configuration", sub.id, exc_info=True)
            return {"archive": {"error": getattr(exc, "message", None) or f"{exc.__class__.__name__}: {exc}"}}
        return {"archive": _archive_details(arch, built, t0)}

    @staticmethod
    def detector_wanted(sub: Subscription, config: DriftConfig) -> bool:
        """Whether the archive includes an accuracy detector for this subscription and configuration."""
        return config.enable_model_drift and sub.problem_type.classification and config.train_drift_model

    def default_thresholds(self, sub: Subscription, config: DriftConfig) -> list[Threshold]:
        limit = config.drift_threshold
        out = [Threshold(metric="drifted_features", type="upper_limit", value=0)]  # type: ignore[arg-type]
        if config.enable_model_drift and sub.problem_type.classification:
            out.append(Threshold(metric="drift_magnitude", type="upper_limit", value=limit))  # type: ignore[arg-type]
        if config.enable_data_drift:
            out.append(Threshold(metric="data_drift_magnitude", type="upper_limit", value=limit))  # type: ignore[arg-type]
        return out

    # -- partials: feature histograms on the training bins ---------------------------------------
    def plan(self, sub: Subscription, config: DriftConfig) -> dict[str, Any] | None:
        if not config.enable_feature_drift or sub.training_statistics is None:
            return None
        ref = DriftReference.from_statistics(sub.training_statistics, config.features or sub.feature_fields)
        return {"reference": ref.to_dict()}

    def load_plan(self, plan: dict[str, Any]) -> DriftReference:
        return DriftReference.from_dict(plan["reference"])

    def columns(self, plan: DriftReference) -> list[str]:
        return plan.names

    def build(self, plan: DriftReference, batch: RecordBatch) -> DriftHistograms:
        return DriftHistograms.from_columns(plan, batch.columns, len(batch))

    def empty(self, plan: DriftReference) -> DriftHistograms:
        return DriftHistograms.empty(plan)

    def load_partial(self, data: bytes) -> DriftHistograms:
        return DriftHistograms.from_bytes(data)

    # -- runs -------------------------------------------------------------------------------------
    def window(self, config: DriftConfig, now: datetime, last: dict[str, Any] | None) -> Window:
        start = None
        if last is not None and last.get("timestamp"):
            start = parse_iso(last["timestamp"])  # the previous run's end: rows logged since
        return Window(start=start, end=now, min_rows=config.min_samples)

    def evaluate(self, run: Run) -> Result:
        config: DriftConfig = run.config
        sub = run.sub
        if run.records < config.min_samples:
            return Result.insufficient(
                f"{run.records} payload rows; drift needs at least {config.min_samples} (min_samples)",
                records=run.records,
            )
        values: dict[str, float | None] = {}
        details: dict[str, Any] = {"records": run.records}
        ref: DriftReference | None = run.plan
        if ref is None and sub.training_statistics is not None:
            ref = DriftReference.from_statistics(sub.training_statistics, config.features or sub.feature_fields)
        if config.enable_feature_drift and ref is not None:
            result = evaluate(
                ref,
                run.partial(),
                DataDriftSettings(config.alpha, config.js_threshold, config.min_feature_rows),
            )
            values["drifted_features"] = float(len(result.drifted))
            for f in result.features:
                if f.status == "ok":
                    values[f"js_distance.{f.feature}"] = f.js_distance
            details["feature_drift"] = result.to_dict()
        if config.enable_model_drift or config.enable_data_drift:
            self._transactions(run, config, ref, values, details)
        return Result(values=values, details=details)

    def _transactions(
        self,
        run: Run,
        config: DriftConfig,
        ref: DriftReference | None,
        values: dict[str, float | None],
        details: dict[str, Any],
    ) -> None:
        sub = run.sub
        model_drift = config.enable_model_drift and sub.problem_type.classification
        t0 = time.perf_counter()
        archive, built = archive_mod.ensure(run.service, sub, train_detector=self.detector_wanted(sub, config))
        details["archive"] = _archive_details(archive, built, t0)
        layout = sub.layout
        columns = [*sub.feature_fields, layout.prediction_column]
        if layout.probability_column:
            columns.append(layout.probability_column)
        parts = list(run.batches(columns, newest_first=True, limit=min(config.max_samples, run.records)))
        if not parts:
            return
        batch = RecordBatch.concat(parts)
        if len(batch) == 0:
            return
        n = len(batch)
        cols = batch.columns
        td = TransactionDrift(batch.ids, prediction=cols.get(layout.prediction_column))
        if model_drift and archive.detector is not None:
            prob = batch.probability
            if prob is None or prob.shape[1] != archive.detector.encoder.classes:
                details["accuracy_drift"] = {"error": "the logged rows carry no class probabilities"}
            else:
                usable = np.isfinite(prob).all(axis=1)
                rows = {k: v[usable] for k, v in cols.items()}
                acc = archive.detector.evaluate(rows, int(usable.sum()), prob[usable], config.drift_threshold)
                drifted = np.zeros(n, dtype=bool)
                drifted[usable] = acc.drifted_mask
                p = np.full(n, np.nan)
                p[usable] = acc.p_correct
                td.accuracy, td.p_correct = drifted, p
                values["drift_magnitude"] = acc.drift_magnitude
                values["predicted_accuracy"] = acc.predicted_accuracy
                details["accuracy_drift"] = {**acc.to_dict(), "without_probabilities": int(n - usable.sum())}
        elif model_drift:
            reason = archive.summary.get("detector_error") or "no drift detector (train_drift_model is off)"
            details["accuracy_drift"] = {"error": reason}
        if config.enable_data_drift and archive.consistency is not None:
            check = archive.consistency.check(cols, n)
            td.consistency, td.check = check.drifted, check
            values["data_drift_magnitude"] = check.drifted_count / n
            details["data_consistency"] = {
                "analysed": n,
                "drifted": check.drifted_count,
                "constraints": check.constraint_counts(),
                "features": check.feature_counts(),
            }
        details["transactions"] = td.summary(ref, cols, config.list_limit)


def _archive_details(arch: archive_mod.DriftArchive, built: bool, t0: float) -> dict[str, Any]:
    out: dict[str, Any] = {"version": arch.version, "built_now": built, **arch.summary}
    if built:
        out["seconds"] = round(time.perf_counter() - t0, 3)
    return out
