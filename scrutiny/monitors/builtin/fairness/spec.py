"""The resolved fairness configuration: checked against the subscription, with the bins of
each numeric attribute fixed. It is what counting and evaluation read, and what is stored.

Counting depends only on an attribute's *bins* (numeric) and, for regression, on the outcome
ranges; group membership and favourable labels are applied at evaluation. So changing a
categorical group, a threshold or a favourable label keeps every stored partial count valid;
``fingerprint`` changes only when stored counts would have to be recomputed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from scrutiny.monitors.builtin.fairness import binning
from scrutiny.monitors.builtin.fairness.crosstab import canonical

FAVOURABLE = "favourable"
UNFAVOURABLE = "unfavourable"
NEITHER = "neither"


@dataclass
class AttributeSpec:
    name: str
    categorical: bool
    monitored: list[Any]  # categorical: values; numeric: [[lo, hi], ...]
    reference: list[Any] | None  # None: every present value outside the monitored group
    threshold: float | None  # lower limit of fairness_value (a ratio); None: no limit
    integer: bool = False  # numeric attribute holding integers
    source: str = "feature"  # "feature" (a model input: perturbation possible) or "meta"
    edges: list[float] | None = None  # numeric: bin edges, -inf and +inf included

    @property
    def edge_array(self) -> np.ndarray:
        return np.asarray(self.edges, dtype=np.float64)

    def fingerprint(self) -> str:
        """Identity of the counts this attribute needs (not of its groups)."""
        payload = [self.name, self.categorical, self.integer, None if self.edges is None else list(self.edges)]
        return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)).hexdigest()[:16]

    def group_labels(self) -> list[str]:
        """Display names of the monitored groups, in configuration order."""
        if self.categorical:
            return [str(v) for v in self.monitored]
        return [binning.describe_range(r) for r in self.monitored]

    def membership(self, keys: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        """For crosstab row keys: the monitored group index of each key (-1 if none) and whether
        it is in the reference group. Missing values (``None``) are in neither."""
        n = len(keys)
        mon = np.full(n, -1, dtype=np.int64)
        ref = np.zeros(n, dtype=bool)
        present = np.array([k is not None for k in keys], dtype=bool)
        if self.categorical:
            mon_index = {_hkey(canonical(v)): i for i, v in enumerate(self.monitored)}
            ref_set = None if self.reference is None else {_hkey(canonical(v)) for v in self.reference}
            for j, k in enumerate(keys):
                if k is None:
                    continue
                mon[j] = mon_index.get(_hkey(k), -1)
                ref[j] = (mon[j] < 0) if ref_set is None else (_hkey(k) in ref_set)
            return mon, ref
        edges = self.edge_array
        bin_mon = np.full(len(edges) - 1, -1, dtype=np.int64)
        for i, (lo, hi) in enumerate(self.monitored):
            bin_mon[binning.in_range_mask(edges, lo, hi, self.integer)] = i
        if self.reference is None:
            bin_ref = bin_mon < 0
        else:
            bin_ref = np.zeros(len(edges) - 1, dtype=bool)
            for lo, hi in self.reference:
                bin_ref |= binning.in_range_mask(edges, lo, hi, self.integer)
        idx = np.array([k if k is not None else 0 for k in keys], dtype=np.int64)
        if n:
            mon = np.where(present, bin_mon[idx], -1)
            ref = present & bin_ref[idx]
        return mon, ref

    def key_label(self, key: Any) -> Any:
        """A crosstab row key for display: the value, or the bin as ``[lo, hi]``."""
        if self.categorical or key is None:
            return key
        return binning.bin_label(self.edge_array, int(key), self.integer)

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.name,
            "categorical": self.categorical,
            "integer": self.integer,
            "source": self.source,
            "monitored": self.monitored,
            "reference": self.reference,
            "threshold": self.threshold,
            "edges": None if self.edges is None else [_edge_out(e) for e in self.edges],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AttributeSpec:
        edges = d.get("edges")
        return cls(
            name=d["feature"],
            categorical=bool(d["categorical"]),
            monitored=list(d["monitored"]),
            reference=None if d.get("reference") is None else list(d["reference"]),
            threshold=None if d.get("threshold") is None else float(d["threshold"]),
            integer=bool(d.get("integer")),
            source=d.get("source") or "feature",
            edges=None if edges is None else [_edge_in(e) for e in edges],
        )


@dataclass
class OutcomeSpec:
    """Which outputs are favourable. Classification: label sets (``unfavourable`` None = every
    other label); regression: closed ranges on the prediction."""

    column: str
    regression: bool
    favourable: list[Any]
    unfavourable: list[Any] | None

    def fingerprint(self) -> str:
        payload = [self.column, self.regression, self.favourable if self.regression else None]
        payload.append(self.unfavourable if self.regression else None)
        return hashlib.sha256(orjson.dumps(payload)).hexdigest()[:16]

    def classify(self, keys: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        """For crosstab outcome keys: (favourable mask, unfavourable mask). Keys in neither set,
        and missing outcomes, are left out of every rate."""
        if self.regression:
            fav = np.array([k == FAVOURABLE for k in keys], dtype=bool)
            unfav = np.array([k == UNFAVOURABLE for k in keys], dtype=bool)
            return fav, unfav
        fav_set = {_hkey(canonical(v)) for v in self.favourable}
        unfav_set = None if self.unfavourable is None else {_hkey(canonical(v)) for v in self.unfavourable}
        fav = np.array([k is not None and _hkey(k) in fav_set for k in keys], dtype=bool)
        if unfav_set is None:
            unfav = np.array([k is not None for k in keys], dtype=bool) & ~fav
        else:
            unfav = np.array([k is not None and _hkey(k) in unfav_set for k in keys], dtype=bool)
        return fav, unfav

    def outcome_codes(self, prediction: np.ndarray) -> np.ndarray:
        """Regression: 0 favourable, 1 unfavourable, 2 neither, -1 missing (keys ``REGRESSION_KEYS``)."""
        x = np.asarray(prediction, dtype=np.float64)
        fav = _in_ranges(x, self.favourable)
        unfav = ~np.isnan(x) if self.unfavourable is None else _in_ranges(x, self.unfavourable)
        unfav &= ~fav
        codes = np.full(len(x), 2, dtype=np.int64)
        codes[unfav] = 1
        codes[fav] = 0
        codes[np.isnan(x)] = -1
        return codes

    def to_dict(self) -> dict[str, Any]:
        return {
            "class_label": self.column,
            "regression": self.regression,
            "favourable_class": self.favourable,
            "unfavourable_class": self.unfavourable,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OutcomeSpec:
        return cls(d["class_label"], bool(d["regression"]), list(d["favourable_class"]), d.get("unfavourable_class"))


REGRESSION_KEYS = [FAVOURABLE, UNFAVOURABLE, NEITHER]


@dataclass
class FairnessSpec:
    attributes: list[AttributeSpec]
    outcome: OutcomeSpec
    min_records: int
    perturbation: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)  # per attribute: training-data rates
    warnings: list[str] = field(default_factory=list)

    def attribute(self, name: str) -> AttributeSpec:
        for a in self.attributes:
            if a.name == name:
                return a
        raise KeyError(name)

    def fingerprints(self) -> dict[str, str]:
        """Per attribute, the identity of its stored counts (attribute bins + outcome coding)."""
        out = self.outcome.fingerprint()
        return {a.name: f"{a.fingerprint()}:{out}" for a in self.attributes}

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": [a.to_dict() for a in self.attributes],
            **self.outcome.to_dict(),
            "min_records": self.min_records,
            "perturbation": dict(self.perturbation),
            "training": self.training,
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FairnessSpec:
        return cls(
            attributes=[AttributeSpec.from_dict(a) for a in d["features"]],
            outcome=OutcomeSpec.from_dict(d),
            min_records=int(d["min_records"]),
            perturbation=dict(d.get("perturbation") or {}),
            training=dict(d.get("training") or {}),
            warnings=list(d.get("warnings") or []),
        )


def _in_ranges(x: np.ndarray, ranges: list[Any]) -> np.ndarray:
    m = np.zeros(len(x), dtype=bool)
    for lo, hi in ranges:
        m |= (x >= lo) & (x <= hi)
    return m


def _hkey(k: Any) -> Any:
    return (type(k) is bool, k)


def _edge_out(e: float) -> Any:
    # JSON has no infinity: the open ends are written as strings
    return "-inf" if e == -np.inf else "inf" if e == np.inf else e


def _edge_in(e: Any) -> float:
    return float(e)
