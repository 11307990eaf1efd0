"""What a measurement's details page shows, per monitor: the stored ``details`` of a run turned
into tables, bars and the parameters of its charts. Nothing here recomputes a metric: the
page shows what the run stored, so it always agrees with the API."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scrutiny.web.bars import Bar, diverging_bars, finite, rate_bars


@dataclass
class FairnessAttribute:
    feature: str
    threshold: float | None
    fairness_value: float | None
    biased: bool
    reason: str | None
    bars: list[Bar]
    spd: float | None
    average: float | None
    source_of_bias: dict[str, Any] | None
    excluded: dict[str, int]
    distribution: list[Bar]
    biased_rows: list[dict[str, Any]] = field(default_factory=list)
    biased_total: int = 0
    perturbed_records: int = 0
    twins_skipped: str | None = None
    view: str = "payload"
    feedback: dict[str, Any] | None = None


def _group_note(g: dict[str, Any]) -> str:
    return f"{g.get('favourable', 0):,} of {g.get('records', 0):,} favourable"


def fairness(measurement: dict[str, Any]) -> dict[str, Any]:
    d = measurement.get("details") or {}
    perturbation = d.get("perturbation") or {}
    twins = perturbation.get("attributes") or {}
    attrs = []
    for feature, entry in (d.get("attributes") or {}).items():
        shown = entry.get("payload_perturbed") or entry.get("payload") or {}
        payload = entry.get("payload") or {}
        training = entry.get("training") or {}
        items: list[tuple[str, float | None, str, str]] = []
        for g in shown.get("groups") or []:
            items.append((f"{g['group']} (monitored)", g.get("rate"), "monitored", _group_note(g)))
        mon, ref = shown.get("monitored") or {}, shown.get("reference") or {}
        if len(shown.get("groups") or []) != 1:
            items.append(("all monitored", mon.get("rate"), "monitored", _group_note(mon)))
        ref_label = ", ".join(str(v) for v in ref.get("values") or []) or "reference"
        items.append((f"{ref_label} (reference)", ref.get("rate"), "reference", _group_note(ref)))
        if training:
            items.append(("training: monitored", training.get("monitored"), "training", "training labels"))
            items.append(("training: reference", training.get("reference"), "training", "training labels"))
        dist = [
            (
                str(row["value"]),
                (row["favourable"] / row["records"]) if row.get("records") else None,
                row.get("group") or "",
                f"{row['favourable']:,} of {row['records']:,}",
            )
            for row in (payload.get("distribution") or [])[:40]
        ]
        tw = twins.get(feature) or {}
        attrs.append(
            FairnessAttribute(
                feature=feature,
                threshold=shown.get("threshold"),
                fairness_value=shown.get("fairness_value"),
                biased=bool(shown.get("biased")),
                reason=entry.get("reason") or shown.get("reason"),
                bars=rate_bars(items),
                spd=shown.get("statistical_parity_difference"),
                average=shown.get("average_fairness_value"),
                source_of_bias=payload.get("source_of_bias"),
                excluded=payload.get("excluded") or {},
                distribution=rate_bars([(v, r, g, n) for v, r, g, n in dist]),
                biased_rows=list(tw.get("biased") or []),
                biased_total=int(tw.get("biased_transactions") or 0),
                perturbed_records=int(tw.get("perturbed_records") or 0),
                twins_skipped=tw.get("skipped"),
                view="payload + perturbed" if entry.get("payload_perturbed") else "payload",
                feedback=entry.get("feedback"),
            )
        )
    return {
        "attributes": attrs,
        "outcome": d.get("outcome") or {},
        "perturbation": perturbation,
        "warnings": d.get("warnings") or [],
    }


def quality(measurement: dict[str, Any]) -> dict[str, Any]:
    d = measurement.get("details") or {}
    cm = d.get("confusion_matrix")
    matrix = None
    if cm:
        labels = cm["labels"]
        rows = []
        for i, actual in enumerate(labels):
            cells = []
            total = sum(cm["matrix"][i]) or 0
            for j, predicted in enumerate(labels):
                n = cm["matrix"][i][j]
                cells.append(
                    {
                        "actual": actual,
                        "predicted": predicted,
                        "count": n,
                        "share": n / total if total else None,
                        "diag": i == j,
                    }
                )
            rows.append({"actual": actual, "cells": cells, "total": total})
        col_totals = [sum(cm["matrix"][i][j] for i in range(len(labels))) for j in range(len(labels))]
        matrix = {"labels": labels, "rows": rows, "col_totals": col_totals, "total": sum(col_totals)}
    per_class = d.get("per_class")
    return {
        "matrix": matrix,
        "positive_class": d.get("positive_class"),
        "per_class": per_class,
        "records": d.get("records"),
        "unmatched": d.get("unmatched_rows"),
    }


def performance(measurement: dict[str, Any]) -> dict[str, Any]:
    d = measurement.get("details") or {}
    minutes = d.get("per_minute") or []
    top = max([m["requests"] for m in minutes] + [1])
    bars = [
        Bar(
            m["minute"][11:16],
            m["requests"],
            m["requests"] / top * 100.0,
            0.0,
            "reference",
            f"{m['records']:,} rows",
            f"{m['requests']:,}",
        )
        for m in minutes
    ]
    return {"per_minute": bars, "details": d}


def contributions(items: list[tuple[str, float, str]]) -> tuple[list[Bar], float]:
    """Signed feature contributions (explanations), largest magnitude first."""
    items = sorted(items, key=lambda x: -abs(x[1]))
    return diverging_bars(items)


def number(v: Any) -> float | None:
    return finite(v)


@dataclass
class DriftFeature:
    feature: str
    data: dict[str, Any]
    histogram: Any  # scrutiny.web.bars.Histogram


TRANSACTION_GROUPS = {
    "both": "accuracy and consistency",
    "accuracy_only": "accuracy only",
    "consistency_only": "data consistency only",
}
LISTED = 50


def drift(measurement: dict[str, Any]) -> dict[str, Any]:
    """Drifted features ranked, each with its training vs current histogram; the transaction
    verdicts (accuracy, consistency) with the drifted transactions and their clusters."""
    from scrutiny.web.bars import histogram

    d = measurement.get("details") or {}
    fd = d.get("feature_drift") or {}
    features = []
    for f in fd.get("features") or []:
        dist = f.get("distribution") or []
        hist = None
        if dist:
            hist = histogram(
                [b["bin"] for b in dist], [b["training_share"] for b in dist], [b["current_share"] for b in dist]
            )
        features.append(DriftFeature(f["feature"], f, hist))
    drifted = [f for f in features if f.data.get("drifted")]
    others = [f for f in features if not f.data.get("drifted")]
    tx = d.get("transactions") or {}
    groups = []
    for key, label in TRANSACTION_GROUPS.items():
        g = tx.get(key)
        if g is not None:
            groups.append({"key": key, "label": label, "count": g["count"], "ids": g["scoring_ids"][:LISTED]})
    return {
        "drifted": drifted,
        "others": others,
        "feature_settings": fd.get("settings") or {},
        "feature_rows": fd.get("rows"),
        "accuracy": d.get("accuracy_drift"),
        "consistency": d.get("data_consistency"),
        "analysed": tx.get("analysed"),
        "groups": groups,
        "clusters": tx.get("clusters") or [],
        "archive": d.get("archive") or {},
    }
