"""Perturbation-augmented fairness (contract §7.1 steps 2, 3 and 6).

For each window row whose attribute is in one group, a twin is made with the attribute moved
to the other group and every other feature kept. The new value is drawn from the training
values of the other group (by frequency), seeded by the row id and the attribute name, so a
run is reproducible. All twins of all attributes are scored through the engine in batched
internal calls (``X-Scrutiny-Internal``; never logged as payload).

The result: counts of "payload + perturbed" (the rows and their twins), and the *biased
transactions*: pairs where the member holding the monitored value is unfavourable and the
member holding the reference value is favourable, listed (up to a cap) with their twin.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scrutiny.core.outputs import normalize_rows
from scrutiny.core.schema import Kind
from scrutiny.core.scoring_format import ScoringRequest, ScoringResponse
from scrutiny.core.subscription import Subscription
from scrutiny.errors import ScrutinyError
from scrutiny.ingest.batch import RecordBatch
from scrutiny.monitors.builtin.fairness.counting import FairnessCounts, attribute_codes, outcome_codes
from scrutiny.monitors.builtin.fairness.crosstab import Crosstab, canonical, factorize
from scrutiny.monitors.builtin.fairness.spec import AttributeSpec, FairnessSpec

Scorer = Callable[[ScoringRequest], ScoringResponse]


@dataclass
class WindowRows:
    """Window rows as columns: ids, features, the outcome, and meta attributes."""

    ids: list[str]
    columns: dict[str, list[Any]]

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class AttributePerturbation:
    feature: str
    perturbed_records: int = 0
    biased_transactions: int = 0
    listed: list[dict[str, Any]] = field(default_factory=list)
    skipped: str | None = None  # why this attribute has no twins

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "perturbed_records": self.perturbed_records,
            "biased_transactions": self.biased_transactions,
            "biased": self.listed,
            "skipped": self.skipped,
        }


@dataclass
class PerturbationResult:
    records: int  # window rows that were perturbed (the most recent ``max_records``)
    counts: FairnessCounts | None  # rows + twins, for the attributes that have twins
    attributes: dict[str, AttributePerturbation]
    scoring_calls: int = 0
    scored_rows: int = 0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "scoring_calls": self.scoring_calls,
            "scored_rows": self.scored_rows,
            "error": self.error,
            "attributes": {k: v.to_dict() for k, v in self.attributes.items()},
        }


def window_rows(batches: Iterable[RecordBatch], sub: Subscription, spec: FairnessSpec) -> WindowRows:
    """Rows (most recent first, as read) as Python values ready for a scoring request: integer
    features as ``int``, numbers as ``float``, null as ``None``."""
    kinds = {c.name: c.kind for c in [*sub.layout.features, *sub.layout.extra]}
    names = list(dict.fromkeys([*sub.feature_fields, spec.outcome.column, *(a.name for a in spec.attributes)]))
    ids: list[str] = []
    columns: dict[str, list[Any]] = {n: [] for n in names}
    for batch in batches:
        ids.extend(str(v) for v in batch.ids.tolist())
        n = len(batch)
        for name in names:
            col = batch.columns.get(name)
            if col is None:
                columns[name].extend([None] * n)
            elif col.dtype == np.float64:
                kind = kinds.get(name, Kind.FLOAT)
                vals = col.tolist()
                if kind is Kind.INT:
                    columns[name].extend(None if v != v else int(v) for v in vals)
                else:
                    columns[name].extend(None if v != v else v for v in vals)
            else:
                columns[name].extend(col.tolist())
    return WindowRows(ids, columns)


def uniforms(ids: Sequence[str], salt: str) -> np.ndarray:
    """One number in [0, 1) per row id: the row's own seed (reproducible, independent per attribute)."""
    out = np.empty(len(ids), dtype=np.float64)
    prefix = salt.encode() + b"\x00"
    for i, rid in enumerate(ids):
        h = hashlib.blake2b(prefix + rid.encode(), digest_size=8).digest()
        out[i] = int.from_bytes(h, "big") / 2.0**64
    return out


def draw(pool: dict[str, Any], u: np.ndarray, integer: bool) -> list[Any]:
    """Values from ``pool`` (``values`` + ``weights``, or ``ranges`` drawn uniformly), one per ``u``."""
    values = pool.get("values") or []
    if values:
        cw = np.cumsum(np.asarray(pool.get("weights") or [1] * len(values), dtype=np.float64))
        idx = np.minimum(np.searchsorted(cw, u * cw[-1], side="right"), len(values) - 1)
        arr = np.empty(len(values), dtype=object)
        arr[:] = values
        return arr[idx].tolist()
    ranges = pool.get("ranges") or []
    if not ranges:
        return [None] * len(u)
    widths = np.array(
        [(math.floor(hi) - math.ceil(lo) + 1) if integer else (hi - lo) for lo, hi in ranges], dtype=float
    )
    widths = np.maximum(widths, 0)
    if widths.sum() == 0:  # point ranges [v, v]
        widths = np.ones(len(ranges))
    cw = np.cumsum(widths)
    t = u * cw[-1]
    k = np.minimum(np.searchsorted(cw, t, side="right"), len(ranges) - 1)
    start = cw[k] - widths[k]
    lo = np.array([ranges[j][0] for j in k], dtype=float)
    hi = np.array([ranges[j][1] for j in k], dtype=float)
    if integer:
        v = np.minimum(np.ceil(lo) + np.floor(t - start), np.floor(hi))
        return [int(x) for x in v]
    return np.minimum(lo + (t - start), hi).tolist()


def _pools(
    attr: AttributeSpec, spec: FairnessSpec, rows: WindowRows, mon: np.ndarray, ref: np.ndarray
) -> dict[str, Any]:
    """Where twins draw from: the training pools, else the configured values or ranges, else the
    values the window itself holds in that group."""
    trained = (spec.training.get(attr.name) or {}).get("pools") or {}
    out: dict[str, Any] = {}
    values = np.empty(len(rows), dtype=object)
    values[:] = rows.columns[attr.name]
    for group, configured, mask in (("monitored", attr.monitored, mon >= 0), ("reference", attr.reference, ref)):
        pool = trained.get(group)
        if pool and pool.get("values"):
            out[group] = pool
        elif configured is not None and attr.categorical:
            out[group] = {"values": list(configured), "weights": [1] * len(configured)}
        elif configured is not None:
            out[group] = {"ranges": list(configured)}
        else:  # "every other value" with no training data: what the window holds
            codes, keys = factorize(values[mask])
            freq = np.bincount(codes[codes >= 0], minlength=len(keys))
            out[group] = {"values": keys, "weights": freq.tolist()}
    return out


def _py(v: Any, kind: Kind) -> Any:
    v = canonical(v)
    if v is None:
        return None
    if kind is Kind.INT:
        return int(v)
    if kind is Kind.FLOAT:
        return float(v)
    return v


def perturb(
    rows: WindowRows,
    sub: Subscription,
    spec: FairnessSpec,
    scorer: Scorer,
    *,
    batch_rows: int = 1000,
    max_listed: int = 100,
) -> PerturbationResult:
    n = len(rows)
    features = sub.feature_fields
    kinds = {c.name: c.kind for c in sub.layout.features}
    result = PerturbationResult(n, None, {})
    twins_fields = list(features)
    plan: list[tuple[AttributeSpec, np.ndarray, np.ndarray, list[Any]]] = []  # attr, row index, row group, new values
    values_out: list[list[Any]] = []
    base_columns = [rows.columns[f] for f in features]
    for attr in spec.attributes:
        info = AttributePerturbation(attr.name)
        result.attributes[attr.name] = info
        if attr.source != "feature":
            info.skipped = "not a model input (a meta column): changing it cannot change the prediction"
            continue
        values = np.empty(n, dtype=object)
        values[:] = rows.columns[attr.name]
        codes, keys = attribute_codes(_attr_array(values, attr), attr, n)
        mon_k, ref_k = attr.membership(keys)
        mon = np.where(codes >= 0, mon_k[np.clip(codes, 0, None)] if len(keys) else -1, -1)
        ref = (codes >= 0) & (ref_k[np.clip(codes, 0, None)] if len(keys) else False)
        pools = _pools(attr, spec, rows, mon, ref)
        idx = np.flatnonzero((mon >= 0) | ref)
        u = uniforms([rows.ids[i] for i in idx], attr.name)
        group = np.where(mon[idx] >= 0, 1, -1)
        new = np.empty(len(idx), dtype=object)
        for g, other in ((1, "reference"), (-1, "monitored")):
            sel = group == g
            if sel.any():
                new[sel] = draw(pools[other], u[sel], attr.integer)
        ok = np.array([v is not None for v in new], dtype=bool)
        if not ok.all():
            idx, group, new = idx[ok], group[ok], new[ok]
        if not len(idx):
            info.skipped = "no window row is in the monitored or the reference group"
            continue
        pos = features.index(attr.name)
        kind = kinds.get(attr.name, Kind.STR)
        new_list = [_py(v, kind) for v in new]
        for k, i in enumerate(idx.tolist()):
            row = [col[i] for col in base_columns]
            row[pos] = new_list[k]
            values_out.append(row)
        plan.append((attr, idx, group, new_list))
        info.perturbed_records = len(idx)
    if not plan:
        return result
    request = ScoringRequest(twins_fields, values_out)
    try:
        outcomes, calls = _score(request, sub, spec, scorer, batch_rows)
    except ScrutinyError as exc:
        result.error = f"scoring the perturbed records failed: {exc.message}"
        return result
    result.scoring_calls, result.scored_rows = calls, len(values_out)
    result.counts = _combine(rows, spec, plan, outcomes, result, max_listed)
    return result


def _attr_array(values: np.ndarray, attr: AttributeSpec) -> np.ndarray:
    if attr.categorical:
        return values
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def _score(
    request: ScoringRequest, sub: Subscription, spec: FairnessSpec, scorer: Scorer, batch_rows: int
) -> tuple[np.ndarray, int]:
    """The outcome column of every twin, scored ``batch_rows`` at a time."""
    props = sub.properties
    parts: list[np.ndarray] = []
    calls = 0
    for start in range(0, len(request), batch_rows):
        chunk = request.slice(start, start + batch_rows)
        response = scorer(chunk)
        calls += 1
        if len(response) != len(chunk):
            raise ScrutinyError(f"the engine returned {len(response)} rows for {len(chunk)} perturbed records")
        if spec.outcome.column == sub.layout.prediction_column:
            out = normalize_rows(
                response.fields,
                response.values,
                classification=sub.problem_type.classification,
                labels=sub.labels,
                prediction_field=props.prediction_field,
                probability_fields=props.probability_columns if sub.problem_type.classification else [],
            )
            parts.append(np.asarray(out.prediction))
        elif spec.outcome.column in response.fields:
            col = np.empty(len(chunk), dtype=object)
            col[:] = response.column(spec.outcome.column)
            parts.append(col)
        else:
            raise ScrutinyError(f"the engine's response has no {spec.outcome.column!r} column to judge")
    return np.concatenate(parts) if parts else np.empty(0, dtype=object), calls


def _combine(
    rows: WindowRows,
    spec: FairnessSpec,
    plan: list[tuple[AttributeSpec, np.ndarray, np.ndarray, list[Any]]],
    outcomes: np.ndarray,
    result: PerturbationResult,
    max_listed: int,
) -> FairnessCounts:
    n = len(rows)
    original = np.empty(n, dtype=object)
    original[:] = rows.columns[spec.outcome.column]
    if spec.outcome.regression:
        original = np.array([np.nan if v is None else float(v) for v in original], dtype=np.float64)
        outcomes = np.asarray(outcomes, dtype=np.float64)
    # one outcome coding for rows and twins, so favourable flags line up
    both = np.concatenate([original, outcomes])
    o_codes, o_keys = outcome_codes(both, spec.outcome, len(both))
    fav_k, unfav_k = spec.outcome.classify(o_keys)
    fav = np.where(o_codes >= 0, fav_k[np.clip(o_codes, 0, None)] if len(o_keys) else False, False)
    unfav = np.where(o_codes >= 0, unfav_k[np.clip(o_codes, 0, None)] if len(o_keys) else False, False)
    row_codes, twin_codes = o_codes[:n], o_codes[n:]
    attributes: dict[str, Crosstab] = {}
    offset = 0
    for attr, idx, group, new in plan:
        m = len(idx)
        tw = slice(offset, offset + m)
        values = np.empty(n + m, dtype=object)
        values[:n] = rows.columns[attr.name]
        values[n:] = new
        a_codes, a_keys = attribute_codes(_attr_array(values, attr), attr, n + m)
        attributes[attr.name] = Crosstab.from_codes(
            a_codes, a_keys, np.concatenate([row_codes, twin_codes[tw]]), o_keys
        )
        f_row, u_row = fav[:n][idx], unfav[:n][idx]
        f_tw, u_tw = fav[n:][tw], unfav[n:][tw]
        biased = ((group == 1) & u_row & f_tw) | ((group == -1) & f_row & u_tw)
        info = result.attributes[attr.name]
        info.biased_transactions = int(biased.sum())
        for k in np.flatnonzero(biased)[:max_listed].tolist():
            i = int(idx[k])
            info.listed.append(
                {
                    "scoring_id": rows.ids[i],
                    "original": {attr.name: canonical(rows.columns[attr.name][i]), "outcome": canonical(original[i])},
                    "altered": {attr.name: new[k], "outcome": canonical(outcomes[offset + k])},
                    "monitored_member": "original" if group[k] == 1 else "altered",
                }
            )
        offset += m
    names = list(attributes)
    prints = spec.fingerprints()
    return FairnessCounts(n + offset, attributes, {k: prints[k] for k in names})


__all__ = ["PerturbationResult", "WindowRows", "draw", "perturb", "uniforms", "window_rows"]
