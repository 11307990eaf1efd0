"""The feature space an explainer works in, read from a subscription's training statistics.

Explainers never touch training rows: numeric features are described by their quartile bins
(moments and bounds per bin), categorical ones by their values and training frequencies, and
both by a base value (median or mode) for contrastive explanations. Values are converted back
to the type the model takes (statistics stored as JSON have string keys).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from scrutiny.core.schema import Kind
from scrutiny.core.subscription import Subscription
from scrutiny.errors import Conflict, InvalidInput


@dataclass(frozen=True)
class NumericFeature:
    name: str
    kind: Kind
    cuts: np.ndarray  # interior bin boundaries
    side: str  # "left": bins (c[b-1], c[b]] as LIME's (statistics v2); "right": [c[b-1], c[b]) (v1)
    freq: np.ndarray  # training share of each bin
    mean: np.ndarray
    std: np.ndarray
    low: np.ndarray  # smallest training value in each bin
    high: np.ndarray  # largest training value in each bin
    median: float
    minimum: float
    maximum: float

    categorical = False

    @property
    def bins(self) -> int:
        return len(self.freq)

    def bin_of(self, values: np.ndarray | float) -> np.ndarray:
        return np.searchsorted(self.cuts, np.asarray(values, dtype=np.float64), side=self.side)  # type: ignore[call-overload]

    def condition(self, b: int) -> str:
        """The bin as a readable condition, e.g. ``12 < LoanDuration <= 18``."""
        if self.bins == 1:
            return f"{_num(self.minimum)} <= {self.name} <= {_num(self.maximum)}"
        lt, le = ("<=", "<") if self.side == "left" else ("<", "<=")
        if b == 0:
            return f"{self.name} {lt} {_num(self.cuts[0])}"
        if b == self.bins - 1:
            return f"{self.name} {'>' if self.side == 'left' else '>='} {_num(self.cuts[-1])}"
        return f"{_num(self.cuts[b - 1])} {le} {self.name} {lt} {_num(self.cuts[b])}"

    def cast(self, values: np.ndarray) -> list[Any]:
        """Model-ready Python numbers (integers stay integers)."""
        if self.kind is Kind.INT:
            return np.rint(values).astype(np.int64).tolist()
        return values.astype(np.float64).tolist()

    def base(self) -> Any:
        return self.cast(np.array([self.median]))[0]


@dataclass(frozen=True)
class CategoricalFeature:
    name: str
    kind: Kind
    values: list[Any]  # training values, most frequent first
    freq: np.ndarray

    categorical = True

    @property
    def varies(self) -> bool:
        return len(self.values) > 1

    def index_of(self, value: Any) -> int:
        """Position of ``value`` among the training values, -1 when the model never saw it."""
        for i, v in enumerate(self.values):
            if _same(v, value):
                return i
        return -1

    def condition(self, value: Any) -> str:
        return f"{self.name} = {value}"

    def base(self) -> Any:
        return self.values[0]


Feature = NumericFeature | CategoricalFeature


@dataclass(frozen=True)
class FeatureSpace:
    features: list[Feature]

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    def __len__(self) -> int:
        return len(self.features)

    def base_values(self) -> list[Any]:
        return [f.base() for f in self.features]

    @classmethod
    def of(cls, sub: Subscription) -> FeatureSpace:
        """The space of a subscription; 409 when it has no training statistics to explain with."""
        stats = sub.training_statistics
        if not stats or not isinstance(stats.get("features"), dict):
            raise Conflict(
                f"subscription {sub.id!r} has no training statistics, and explanations perturb records "
                "from them: upload training data first (PUT /v1/subscriptions/{id}/training_data)",
                subscription_id=sub.id,
            )
        names = sub.feature_fields or list(stats.get("feature_fields") or [])
        if not names:
            raise Conflict(f"subscription {sub.id!r} has no feature fields yet", subscription_id=sub.id)
        kinds = {name: col.kind for name in names if (col := sub.feature(name)) is not None}
        return cls.from_statistics(stats, names, kinds, owner=f"subscription {sub.id!r}")

    @classmethod
    def from_statistics(
        cls, stats: dict[str, Any], names: list[str], kinds: dict[str, Kind], *, owner: str = "the model"
    ) -> FeatureSpace:
        """The space of ``names`` from statistics made by ``scrutiny.core.training_stats.compute_statistics``."""
        features: list[Feature] = []
        for name in names:
            fstats = stats["features"].get(name)
            if fstats is None:
                raise Conflict(
                    f"the training statistics of {owner} do not cover feature {name!r}: "
                    "upload training data with every feature"
                )
            kind = kinds.get(name) or (Kind.FLOAT if fstats.get("type") == "numeric" else Kind.STR)
            features.append(_feature(name, kind, fstats))
        return cls(features)

    def check_row(self, row: list[Any]) -> None:
        """Explanations need a value for every feature: name the first missing one."""
        for f, v in zip(self.features, row, strict=True):
            if v is None or (isinstance(v, float) and math.isnan(v)):
                raise InvalidInput("the record has no value for this feature; it cannot be explained", field=f.name)
            if not f.categorical and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise InvalidInput(f"expected a number, got {v!r}", field=f.name)
            if isinstance(v, int) and not isinstance(v, bool) and not -(2**63) <= v < 2**63:
                raise InvalidInput("the number is out of the 64-bit integer range", field=f.name)


def _feature(name: str, kind: Kind, stats: dict[str, Any]) -> Feature:
    if stats.get("type") == "numeric" and stats.get("quartile_bins"):
        bins = stats["quartile_bins"]
        if "quartile_cuts" in stats:
            cuts, side = np.array(stats["quartile_cuts"], dtype=np.float64), "left"
        else:  # statistics v1: bins [lo, hi)
            cuts, side = np.array([b["lo"] for b in bins[1:]], dtype=np.float64), "right"
        counts = np.array([b["count"] for b in bins], dtype=np.float64)
        lows = np.array([b["lo"] for b in bins], dtype=np.float64)
        highs = np.array([b["hi"] for b in bins], dtype=np.float64)

        def column(key: str, fallback: np.ndarray) -> np.ndarray:
            return np.array(
                [fallback[i] if b.get(key) is None else b[key] for i, b in enumerate(bins)], dtype=np.float64
            )

        mids = (lows + highs) / 2
        return NumericFeature(
            name=name,
            kind=kind if kind.numeric else Kind.FLOAT,
            cuts=cuts,
            side=side,
            freq=counts / counts.sum(),
            mean=column("mean", mids),
            std=column("std", np.zeros(len(bins))),
            low=column("min", lows),
            high=column("max", highs),
            median=float(stats["median"]),
            minimum=float(stats["min"]),
            maximum=float(stats["max"]),
        )
    distinct = stats.get("distinct") or {}
    if stats.get("type") == "numeric" or not distinct:
        raise Conflict(
            f"the training statistics have no values for feature {name!r} (all missing in the training data), "
            "so it cannot be perturbed"
        )
    pairs = sorted(((_coerce(k, kind), int(c)) for k, c in distinct.items()), key=lambda kv: -kv[1])
    counts = np.array([c for _, c in pairs], dtype=np.float64)
    return CategoricalFeature(name=name, kind=kind, values=[v for v, _ in pairs], freq=counts / counts.sum())


def _coerce(key: Any, kind: Kind) -> Any:
    """A value-count key back to the model's type (JSON object keys are always strings)."""
    if kind is Kind.INT and not isinstance(key, bool):
        return int(float(key))
    if kind is Kind.FLOAT and not isinstance(key, bool):
        return float(key)
    if kind is Kind.BOOL:
        return key if isinstance(key, bool) else str(key).lower() in ("true", "1")
    return key


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    return bool(a == b)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.4g}"
