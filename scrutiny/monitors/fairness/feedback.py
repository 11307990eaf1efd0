"""Fairness metrics that need true labels, from the feedback table (contract §7.1, last list).

A feedback row holds the features, the true label (``label_column``) and the prediction it
judges (``Layout.feedback_columns``). Favourable is the positive class, so per group:
TPR = TP/(TP+FN), FPR = FP/(FP+TN), FNR, FDR = FP/(TP+FP), FOR = FN/(TN+FN), error rate; each
metric is the monitored group's value minus the reference group's (AIF360's convention,
unprivileged minus privileged). Counted in one pass, like ``sql.count_query``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import sqlalchemy as sa

from scrutiny.ingest.writer import FEEDBACK
from scrutiny.monitors.fairness.crosstab import factorize
from scrutiny.monitors.fairness.spec import FairnessSpec, OutcomeSpec
from scrutiny.monitors.fairness.sql import attribute_key, grouped, outcome_key, record_table
from scrutiny.store import records
from scrutiny.subscription import SCORING_TIMESTAMP, Subscription

METRICS = (
    "average_odds_difference",
    "average_abs_odds_difference",
    "false_negative_rate_difference",
    "false_positive_rate_difference",
    "false_discovery_rate_difference",
    "false_omission_rate_difference",
    "error_rate_difference",
)


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


def feedback_metrics(
    conn: sa.Connection, sub: Subscription, spec: FairnessSpec, *, until: Any = None
) -> dict[str, Any] | None:
    """Per attribute, the seven label-based metrics over the feedback rows (None when the
    subscription has no label column or no feedback table)."""
    label = sub.layout.label_column
    if not label or spec.outcome.column != sub.layout.prediction_column:
        return None
    t = record_table(sub, FEEDBACK)
    if not records.exists(conn, t.name) or any(a.name not in t.c for a in spec.attributes):
        return None
    truth = OutcomeSpec(label, spec.outcome.regression, spec.outcome.favourable, spec.outcome.unfavourable)
    dialect = conn.dialect.name
    keys = [attribute_key(t, a, dialect) for a in spec.attributes] + [
        outcome_key(t, truth),
        outcome_key(t, spec.outcome),
    ]
    where = [] if until is None else [t.c[SCORING_TIMESTAMP] <= until]
    cols, n = grouped(conn, t, keys, where)
    if not len(n):
        return {}
    k = len(spec.attributes)
    y_fav, y_unfav = _flags(cols[k], truth)
    p_fav, p_unfav = _flags(cols[k + 1], spec.outcome)
    judged = (y_fav | y_unfav) & (p_fav | p_unfav)
    cell = np.select([y_fav & p_fav, y_unfav & p_fav, y_fav & p_unfav, y_unfav & p_unfav], [0, 1, 2, 3], -1)
    out: dict[str, Any] = {}
    for i, attr in enumerate(spec.attributes):
        codes, ukeys = factorize(cols[i])
        mon_k, ref_k = attr.membership(ukeys)
        mon = (codes >= 0) & (mon_k[np.clip(codes, 0, None)] >= 0 if ukeys else False)
        ref = (codes >= 0) & (ref_k[np.clip(codes, 0, None)] if ukeys else False)
        conf = {}
        for name, sel in (("monitored", mon & judged), ("reference", ref & judged)):
            conf[name] = np.bincount(cell[sel], weights=n[sel], minlength=4).astype(np.int64)
        out[attr.name] = {
            **confusion_metrics(conf["monitored"], conf["reference"]),
            "confusion": {g: dict(zip(("tp", "fp", "fn", "tn"), c.tolist(), strict=True)) for g, c in conf.items()},
            "records": int(n[judged & (mon | ref)].sum()),
        }
    return out


def _flags(values: np.ndarray, outcome: OutcomeSpec) -> tuple[np.ndarray, np.ndarray]:
    codes, keys = factorize(values)
    fav_k, unfav_k = outcome.classify(keys)
    safe = np.clip(codes, 0, None)
    fav = (codes >= 0) & (fav_k[safe] if keys else False)
    unfav = (codes >= 0) & (unfav_k[safe] if keys else False)
    return fav, unfav
