"""From counts to fairness: favourable rate per group, disparate impact, per-group ratios and
their mean, statistical parity difference, and the source of bias (contract §7.1 steps 3-8).

Only rows whose outcome is favourable or unfavourable count (a multiclass prediction in
neither set is left out), and only rows whose attribute is in the monitored or the reference
group. Disparate impact is ``rate(monitored) / rate(reference)``; it is null, with the reason,
when the reference rate is 0 or a group has no rows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from scrutiny.monitors.builtin.fairness.binning import describe_range
from scrutiny.monitors.builtin.fairness.crosstab import Crosstab
from scrutiny.monitors.builtin.fairness.spec import AttributeSpec, OutcomeSpec

MIN_SOURCE_ROWS = 10  # a bin or value qualifies as the source of bias from this many rows
MAX_DISTRIBUTION_KEYS = 500


@dataclass
class GroupRate:
    group: str
    values: list[Any]  # the group's values, or its [lo, hi] ranges
    favourable: int
    records: int  # favourable + unfavourable
    rate: float | None
    fairness_value: float | None = None  # monitored groups: this group's rate / the reference rate

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class AttributeResult:
    feature: str
    threshold: float | None
    fairness_value: float | None
    biased: bool
    monitored: GroupRate
    reference: GroupRate
    groups: list[GroupRate]  # each monitored value or range against the pooled reference
    average_fairness_value: float | None  # mean of the defined per-group values
    statistical_parity_difference: float | None  # rate(monitored) - rate(reference)
    reason: str | None = None  # why fairness_value is null
    source_of_bias: dict[str, Any] | None = None
    excluded: dict[str, int] = field(default_factory=dict)
    distribution: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["monitored"] = self.monitored.to_dict()
        d["reference"] = self.reference.to_dict()
        d["groups"] = [g.to_dict() for g in self.groups]
        return d

    def metric_rows(self) -> list[dict[str, Any]]:
        """The v1 ``FairnessMetrics`` rows (contract §8): one per monitored group and one for
        the reference group."""
        rows = []
        for g in [*self.groups, self.reference]:
            is_ref = g is self.reference
            value = None if is_ref else g.fairness_value
            rows.append(
                {
                    "feature": self.feature,
                    "feature_value": g.values[0] if len(g.values) == 1 else g.values,
                    "group": "reference" if is_ref else "monitored",
                    "fairness_biased": _below(value, self.threshold),
                    "fairness_value": value,
                    "fairness_fav_class": None if g.rate is None else 100.0 * g.rate,
                    "records": g.records,
                }
            )
        return rows


def _below(value: float | None, limit: float | None) -> bool:
    return value is not None and limit is not None and value < limit


def _rate(fav: int, n: int) -> float | None:
    return fav / n if n else None


def evaluate_attribute(table: Crosstab, attr: AttributeSpec, outcome: OutcomeSpec) -> AttributeResult:
    fav_col, unfav_col = outcome.classify(table.cols)
    counts = table.counts
    if counts.size == 0:
        counts = np.zeros((len(table.rows), len(table.cols)), dtype=np.int64)
    fav = counts[:, fav_col].sum(axis=1) if counts.size else np.zeros(len(table.rows), dtype=np.int64)
    unfav = counts[:, unfav_col].sum(axis=1) if counts.size else np.zeros(len(table.rows), dtype=np.int64)
    judged = fav + unfav
    mon, ref = attr.membership(table.rows)
    in_mon = mon >= 0

    labels = attr.group_labels()
    groups = []
    for i, label in enumerate(labels):
        sel = mon == i
        groups.append(GroupRate(label, [attr.monitored[i]], int(fav[sel].sum()), int(judged[sel].sum()), None))
    pooled_mon = GroupRate("monitored", list(attr.monitored), int(fav[in_mon].sum()), int(judged[in_mon].sum()), None)
    ref_values: list[Any] = list(attr.reference) if attr.reference is not None else ["(every other value)"]
    pooled_ref = GroupRate("reference", ref_values, int(fav[ref].sum()), int(judged[ref].sum()), None)
    for g in [*groups, pooled_mon, pooled_ref]:
        g.rate = _rate(g.favourable, g.records)

    value, reason = _ratio(pooled_mon, pooled_ref)
    for g in groups:
        g.fairness_value, _ = _ratio(g, pooled_ref)
    defined = [g.fairness_value for g in groups if g.fairness_value is not None]
    spd = None if pooled_mon.rate is None or pooled_ref.rate is None else float(pooled_mon.rate - pooled_ref.rate)
    missing = np.array([k is None for k in table.rows], dtype=bool)
    total = counts.sum(axis=1) if counts.size else np.zeros(len(table.rows), dtype=np.int64)
    excluded = {
        "missing_attribute": int(total[missing].sum()),
        "in_neither_group": int(total[~missing & ~in_mon & ~ref].sum()),
        "outcome_in_neither_set": int((total - judged)[in_mon | ref].sum()),
    }
    return AttributeResult(
        feature=attr.name,
        threshold=attr.threshold,
        fairness_value=value,
        biased=_below(value, attr.threshold),
        monitored=pooled_mon,
        reference=pooled_ref,
        groups=groups,
        average_fairness_value=float(np.mean(defined)) if defined else None,
        statistical_parity_difference=spd,
        reason=reason,
        source_of_bias=_source_of_bias(table, attr, fav, judged, in_mon),
        excluded=excluded,
        distribution=_distribution(table, attr, fav, judged, mon, ref),
    )


def _ratio(mon: GroupRate, ref: GroupRate) -> tuple[float | None, str | None]:
    if ref.records == 0:
        return None, "no records with a favourable or unfavourable outcome in the reference group"
    if mon.records == 0:
        return None, "no records with a favourable or unfavourable outcome in the monitored group"
    if ref.favourable == 0:
        return None, "the reference group has no favourable outcome (rate 0): disparate impact is undefined"
    return (mon.favourable / mon.records) / (ref.favourable / ref.records), None


def _source_of_bias(
    table: Crosstab, attr: AttributeSpec, fav: np.ndarray, judged: np.ndarray, in_mon: np.ndarray
) -> dict[str, Any] | None:
    """The bin (numeric) or value (categorical) of the monitored group with the lowest
    favourable rate, among those with at least ``MIN_SOURCE_ROWS`` rows."""
    ok = in_mon & (judged >= MIN_SOURCE_ROWS)
    if not ok.any():
        return None
    rates = np.where(ok, fav / np.maximum(judged, 1), np.inf)
    i = int(np.argmin(rates))
    key = attr.key_label(table.rows[i])
    text = describe_range(key) if not attr.categorical else str(key)
    rate = float(rates[i])
    return {
        "feature": attr.name,
        "value": key,
        "favourable_rate": rate,
        "favourable": int(fav[i]),
        "records": int(judged[i]),
        "description": f"{rate:.0%} favourable for {attr.name} {text}",
    }


def _distribution(
    table: Crosstab, attr: AttributeSpec, fav: np.ndarray, judged: np.ndarray, mon: np.ndarray, ref: np.ndarray
) -> list[dict[str, Any]]:
    """Per value or bin: its group and counts (for charts and the training comparison)."""
    rows = []
    order: list[int] = list(range(len(table.rows)))
    if not attr.categorical:
        order = sorted(order, key=lambda j: (table.rows[j] is None, table.rows[j] if table.rows[j] is not None else 0))
    for j in order:
        key = table.rows[j]
        rows.append(
            {
                "value": attr.key_label(key),
                "group": "monitored" if mon[j] >= 0 else "reference" if ref[j] else None,
                "favourable": int(fav[j]),
                "records": int(judged[j]),
            }
        )
    if len(rows) > MAX_DISTRIBUTION_KEYS:  # e.g. zip codes: keep the largest
        rows = sorted(rows, key=lambda r: -r["records"])[:MAX_DISTRIBUTION_KEYS]
    return rows
