"""Fairness metrics that need true labels, from feedback rows (contract §7.1, last list).

A feedback row holds the features, the true label (``label_column``) and the prediction it
judges (``Layout.feedback_columns``). Favourable is the positive class, so per group:
TPR = TP/(TP+FN), FPR = FP/(FP+TN), FNR, FDR = FP/(TP+FP), FOR = FN/(TN+FN), error rate; each
metric is the monitored group's value minus the reference group's (AIF360's convention,
unprivileged minus privileged). Counted like payload rows: per attribute key, a crosstab of
the four confusion cells.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from scrutiny.ingest.batch import RecordBatch
from scrutiny.monitors.builtin.fairness.counting import attribute_codes, outcome_codes
from scrutiny.monitors.builtin.fairness.crosstab import Crosstab
from scrutiny.monitors.builtin.fairness.spec import FairnessSpec, OutcomeSpec

METRICS = (
    "average_odds_difference",
    "average_abs_odds_difference",
    "false_negative_rate_difference",
    "false_positive_rate_difference",
    "false_discovery_rate_difference",
    "false_omission_rate_difference",
    "error_rate_difference",
)
CELLS = ("tp", "fp", "fn", "tn")


def confusion_metrics(mon: np.ndarray, ref: np.ndarray) -> dict[str, float | None]:
    """``mon``/``ref`` are ``[TP, FP, FN, TN]`` counts; returns the seven differences."""

    def rates(c: np.ndarray) -> dict[str, float | None]:
        tp, fp, fn, tn = (float(x) for x in c)

        def div(a: float, b: float) -> float | None:
            return a / b if b else None

        return {
            "tpr": div(tp, tp + fn),
            "fpr": div(fp, fp + tn),
            "fnr": div(fn, fn + tp),
            "fdr": div(fp, fp + tp),
            "for": div(fn, fn + tn),
            "err": div(fp + fn, tp + fp + fn + tn),
        }

    a, b = rates(mon), rates(ref)

    def diff(k: str) -> float | None:
        x, y = a[k], b[k]
        return None if x is None or y is None else x - y

    fpr, tpr = diff("fpr"), diff("tpr")
    return {
        "average_odds_difference": None if fpr is None or tpr is None else 0.5 * (fpr + tpr),
        "average_abs_odds_difference": None if fpr is None or tpr is None else 0.5 * (abs(fpr) + abs(tpr)),
        "false_negative_rate_difference": diff("fnr"),
        "false_positive_rate_difference": fpr,
        "false_discovery_rate_difference": diff("fdr"),
        "false_omission_rate_difference": diff("for"),
        "error_rate_difference": diff("err"),
    }


def _flags(values: np.ndarray | None, outcome: OutcomeSpec, n: int) -> tuple[np.ndarray, np.ndarray]:
    codes, keys = outcome_codes(values, outcome, n)
    fav_k, unfav_k = outcome.classify(keys)
    if not keys:
        return np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    safe = np.clip(codes, 0, None)
    return (codes >= 0) & fav_k[safe], (codes >= 0) & unfav_k[safe]


def count_feedback(batch: RecordBatch, spec: FairnessSpec, label_column: str) -> dict[str, Crosstab]:
    """Per attribute: rows by (attribute key, confusion cell), favourable being positive."""
    n = len(batch)
    truth = OutcomeSpec(label_column, spec.outcome.regression, spec.outcome.favourable, spec.outcome.unfavourable)
    y_fav, y_unfav = _flags(batch.columns.get(label_column), truth, n)
    p_fav, p_unfav = _flags(batch.columns.get(spec.outcome.column), spec.outcome, n)
    cell = np.select([y_fav & p_fav, y_unfav & p_fav, y_fav & p_unfav, y_unfav & p_unfav], [0, 1, 2, 3], -1)
    out = {}
    for attr in spec.attributes:
        codes, keys = attribute_codes(batch.columns.get(attr.name), attr, n)
        out[attr.name] = Crosstab.from_codes(codes, keys, cell, list(CELLS))
    return out


def feedback_metrics(batches: Iterable[RecordBatch], spec: FairnessSpec, label_column: str) -> dict[str, Any]:
    """Per attribute, the seven label-based metrics and the confusion counts of each group."""
    tables: dict[str, Crosstab] = {}
    rows = 0
    for batch in batches:
        rows += len(batch)
        for name, t in count_feedback(batch, spec, label_column).items():
            tables[name] = tables[name].merge(t) if name in tables else t
    if rows == 0:
        return {}
    out: dict[str, Any] = {}
    for attr in spec.attributes:
        table = tables[attr.name]
        mon_k, ref_k = attr.membership(table.rows)
        conf = {}
        for group, sel in (("monitored", mon_k >= 0), ("reference", ref_k)):
            c = np.zeros(4, dtype=np.int64)
            for j, key in enumerate(table.cols):
                if key in CELLS:
                    c[CELLS.index(key)] = int(table.counts[sel, j].sum())
            conf[group] = c
        out[attr.name] = {
            **confusion_metrics(conf["monitored"], conf["reference"]),
            "confusion": {g: dict(zip(CELLS, c.tolist(), strict=True)) for g, c in conf.items()},
            "records": int(conf["monitored"].sum() + conf["reference"].sum()),
            "feedback_rows": rows,
        }
    return out
