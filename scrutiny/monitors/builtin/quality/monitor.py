"""Quality (contract §7.3): how right the model is, from feedback rows (labels beside predictions).

The window is the ``max_rows_per_evaluation`` most recent feedback rows (default 10,000; null
for every row); a run with fewer than ``min_feedback_data_size`` rows stores
``insufficient_data``. Binary models report area under ROC and PR, accuracy, TPR, FPR, recall,
precision, F1 and log loss, with ``positive_class`` (default: the second label) as positive;
multiclass models report accuracy, the class-share-weighted TPR, FPR, recall, precision and F1,
and log loss; regression models report MAE, MSE, RMSE, R² and the proportion of explained
variance. The confusion matrix (actual rows by predicted columns, the positive class second)
is stored in the measurement's details; each cell's rows are listed by
``GET /v1/subscriptions/{id}/measurements/{measurement_id}/records?actual=&predicted=``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field

from scrutiny.core.schema import Kind
from scrutiny.core.subscription import Subscription
from scrutiny.errors import InvalidInput
from scrutiny.ingest.batch import RecordBatch
from scrutiny.monitors.base import (
    FEEDBACK,
    Direction,
    Metric,
    Monitor,
    MonitorConfig,
    Result,
    Run,
    Threshold,
    Window,
)
from scrutiny.monitors.builtin.quality.metrics import (
    BINARY,
    MULTICLASS,
    REGRESSION,
    ClassificationStats,
    RegressionStats,
    binary_metrics,
    multiclass_metrics,
)

PRIMARY = {"binary": "area_under_roc", "multiclass": "accuracy", "regression": "r2"}

_RATE = (0.0, 1.0)
METRICS: dict[str, Metric] = {
    "area_under_roc": Metric(Direction.HIGHER, *_RATE, "area under the ROC curve (binary)"),
    "area_under_pr": Metric(Direction.HIGHER, *_RATE, "area under the precision-recall curve (binary)"),
    "accuracy": Metric(Direction.HIGHER, *_RATE, "share of correct predictions"),
    "true_positive_rate": Metric(Direction.HIGHER, *_RATE, "TP / (TP + FN)"),
    "false_positive_rate": Metric(Direction.LOWER, *_RATE, "FP / (FP + TN)"),
    "recall": Metric(Direction.HIGHER, *_RATE, "TP / (TP + FN)"),
    "precision": Metric(Direction.HIGHER, *_RATE, "TP / (TP + FP)"),
    "f1_measure": Metric(Direction.HIGHER, *_RATE, "harmonic mean of precision and recall"),
    "log_loss": Metric(Direction.LOWER, 0.0, None, "mean negative log probability of the true class"),
    "weighted_true_positive_rate": Metric(Direction.HIGHER, *_RATE, "class-share-weighted TPR (multiclass)"),
    "weighted_false_positive_rate": Metric(Direction.LOWER, *_RATE, "class-share-weighted one-vs-rest FPR"),
    "weighted_recall": Metric(Direction.HIGHER, *_RATE, "class-share-weighted recall"),
    "weighted_precision": Metric(Direction.HIGHER, *_RATE, "class-share-weighted precision"),
    "weighted_f_measure": Metric(Direction.HIGHER, *_RATE, "class-share-weighted F1"),
    "mean_absolute_error": Metric(Direction.LOWER, 0.0, None, "mean |y - ŷ| (regression)"),
    "mean_squared_error": Metric(Direction.LOWER, 0.0, None, "mean (y - ŷ)²"),
    "root_mean_squared_error": Metric(Direction.LOWER, 0.0, None, "√MSE"),
    "r2": Metric(Direction.HIGHER, None, 1.0, "1 - SS_res / SS_tot"),
    "explained_variance": Metric(Direction.HIGHER, None, 1.0, "1 - Var(y - ŷ) / Var(y)"),
}


class QualityConfig(MonitorConfig):
    min_feedback_data_size: int = Field(100, ge=1, le=10_000_000, description="fewer feedback rows: no measurement")
    max_rows_per_evaluation: int | None = Field(
        10_000, ge=1, description="evaluate the most recent N feedback rows; null: every row"
    )
    positive_class: Any = Field(None, description="binary: the positive label (default: the second label)")
    auc_bins: int = Field(10_000, ge=100, le=1_000_000, description="score bins for the areas under curves")


class QualityMonitor(Monitor):
    name = "quality"
    table = FEEDBACK
    config_model = QualityConfig
    description = "how right the model is, from feedback labels: AUC, accuracy, F1, log loss, RMSE, R²..."
    metrics = METRICS

    # -- configuration ---------------------------------------------------------------------------
    def validate(self, sub: Subscription, config: QualityConfig, known: Any) -> QualityConfig:
        if not (sub.layout.label_column or sub.properties.label_column):
            raise InvalidInput(
                "quality needs the subscription's label_column (the feedback label)", field="label_column"
            )
        if config.positive_class is not None:
            if sub.problem_type.value != "binary":
                raise InvalidInput("positive_class applies to binary models only", field="positive_class")
            labels = sub.labels or []
            if _index_of(labels, config.positive_class) is None:
                raise InvalidInput(
                    f"positive_class {config.positive_class!r} is not one of the labels {labels}",
                    field="positive_class",
                )
        if (
            config.max_rows_per_evaluation is not None
            and config.max_rows_per_evaluation < config.min_feedback_data_size
        ):
            raise InvalidInput(
                "max_rows_per_evaluation is smaller than min_feedback_data_size", field="max_rows_per_evaluation"
            )
        for i, t in enumerate(config.thresholds):
            base = t.metric.split(".", 1)[0]
            if base not in metrics_for(sub.problem_type.value):
                raise InvalidInput(
                    f"{t.metric} is not reported for {sub.problem_type.value} models;"
                    f" {', '.join(metrics_for(sub.problem_type.value))} are",
                    field=f"thresholds[{i}].metric",
                )
        return config

    def default_thresholds(self, sub: Subscription, config: Any) -> list[Threshold]:
        return [Threshold(metric=PRIMARY[sub.problem_type.value], type="lower_limit", value=0.8)]  # type: ignore[arg-type]

    # -- partials ---------------------------------------------------------------------------------
    def plan(self, sub: Subscription, config: QualityConfig) -> dict[str, Any]:
        layout = sub.layout
        problem = sub.problem_type.value
        plan: dict[str, Any] = {
            "problem_type": problem,
            "label_column": layout.label_column or sub.properties.label_column,
            "prediction_column": layout.prediction_column,
            "probability_column": layout.probability_column,
        }
        if problem != "regression":
            labels = list(sub.labels or [])
            plan["labels"] = labels
            plan["numeric_labels"] = layout.prediction_kind in (Kind.INT, Kind.FLOAT)
            if problem == "binary" and len(labels) == 2:
                pos = _index_of(labels, config.positive_class) if config.positive_class is not None else 1
                plan["positive"] = pos
                plan["bins"] = config.auc_bins
        return plan

    def load_plan(self, plan: dict[str, Any]) -> dict[str, Any]:
        out = dict(plan)
        if "labels" in plan:
            labels = plan["labels"]
            out["index"] = pd.Index(np.asarray(labels, dtype=np.float64 if plan.get("numeric_labels") else object))
        return out

    def columns(self, plan: dict[str, Any]) -> list[str]:
        cols = [plan["label_column"], plan["prediction_column"]]
        if plan.get("probability_column"):
            cols.append(plan["probability_column"])  # read into batch.probability
        return cols

    def build(self, plan: dict[str, Any], batch: RecordBatch) -> ClassificationStats | RegressionStats:
        y = batch.columns.get(plan["label_column"])
        pred = batch.columns.get(plan["prediction_column"])
        n = len(batch)
        if plan["problem_type"] == "regression":
            return RegressionStats.of(_floats(y, n), _floats(pred, n))
        index: pd.Index = plan["index"]
        actual = _codes(index, y, n)
        predicted = _codes(index, pred, n)
        return ClassificationStats.of(
            actual, predicted, batch.probability, len(index), plan.get("positive"), plan.get("bins")
        )

    def empty(self, plan: dict[str, Any]) -> ClassificationStats | RegressionStats:
        if plan["problem_type"] == "regression":
            return RegressionStats.empty()
        return ClassificationStats.empty(len(plan["labels"]), plan.get("bins"))

    def load_partial(self, data: bytes) -> ClassificationStats | RegressionStats:
        from scrutiny.monitors.partials import unpack

        d = unpack(data)
        return RegressionStats.of_fields(d) if "mean_y" in d else ClassificationStats.of_fields(d)

    # -- runs ---------------------------------------------------------------------------------------
    def window(self, config: QualityConfig, now: datetime, last: dict[str, Any] | None) -> Window:
        return Window(end=now, max_rows=config.max_rows_per_evaluation)

    def evaluate(self, run: Run) -> Result:
        config: QualityConfig = run.config
        plan = run.plan
        if run.records < config.min_feedback_data_size:
            return Result.insufficient(
                f"{run.records} feedback rows; quality needs at least {config.min_feedback_data_size}"
                " (min_feedback_data_size)",
                records=run.records,
            )
        stats = run.partial()
        details: dict[str, Any] = {"model_type": "original", "records": run.records}
        if plan["problem_type"] == "regression":
            values = stats.metrics()
            details.update(n=stats.n, skipped=stats.skipped, label_mean=stats.mean_y)
            return Result(values=values, details=details)
        labels = plan["labels"]
        if plan["problem_type"] == "binary" and "positive" in plan:
            values, extra = binary_metrics(stats, plan["positive"])
            order = [1 - plan["positive"], plan["positive"]]
            details["positive_class"] = labels[plan["positive"]]
        else:
            values, extra = multiclass_metrics(stats)
            order = list(range(len(labels)))
            if "per_class" in extra:
                extra["per_class"]["labels"] = labels
        details.update(extra)
        details["confusion_matrix"] = {
            "labels": [labels[i] for i in order],
            "matrix": stats.confusion[np.ix_(order, order)].tolist(),
            "rows": "actual",
            "columns": "predicted",
        }
        if stats.unmatched:
            details["unmatched_rows"] = stats.unmatched
        return Result(values=values, details=details)

    def cell_filter(self, plan: dict[str, Any], actual: Any, predicted: Any) -> list[tuple[str, Any]]:
        """Column conditions selecting one confusion-matrix cell's rows (drill-down)."""
        out = []
        for column, value in ((plan["label_column"], actual), (plan["prediction_column"], predicted)):
            if value is None:
                continue
            labels = plan.get("labels") or []
            i = _index_of(labels, value)
            if i is None:
                raise InvalidInput(f"{value!r} is not one of the labels {labels}", field=column)
            out.append((column, labels[i]))
        return out


def metrics_for(problem: str) -> list[str]:
    return {"binary": BINARY, "multiclass": MULTICLASS, "regression": REGRESSION}[problem]


def _index_of(labels: list[Any], value: Any) -> int | None:
    for i, lab in enumerate(labels):
        if lab == value or str(lab) == str(value):
            return i
    return None


def _floats(col: np.ndarray | None, n: int) -> np.ndarray:
    if col is None:
        return np.full(n, np.nan)
    return col if col.dtype == np.float64 else np.array(col, dtype=np.float64)


def _codes(index: pd.Index, col: np.ndarray | None, n: int) -> np.ndarray:
    if col is None:
        return np.full(n, -1, dtype=np.int64)
    return np.asarray(index.get_indexer(col), dtype=np.int64)  # type: ignore[arg-type]
