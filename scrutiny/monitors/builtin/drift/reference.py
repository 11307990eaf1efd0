"""The reference a subscription's data drift is measured against, fixed at subscription time.

Built once from the training statistics (``scrutiny.core.training_stats``): per numeric feature its bin
edges and the training count in each bin; per categorical feature its categories (most
frequent first) and their training counts. Every histogram of live records uses exactly these
bins, so histograms of any set of records merge by addition and compare to training directly.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import orjson

from scrutiny.core.training_stats import STATS_VERSION
from scrutiny.errors import InvalidInput
from scrutiny.monitors.builtin.drift.binning import CategoryCoder, NumericBinner

NUMERIC = "numeric"
CATEGORICAL = "categorical"
EFFECT_GROUPS = 10  # numeric effect sizes (JS, PSI) use training deciles of the fine bins


@dataclass(frozen=True)
class FeatureReference:
    """One feature's bins. Numeric layout: ``[below min, k bins on edges, above max, missing]``;
    categorical layout: ``[categories..., other (never seen in training or rare), missing]``."""

    name: str
    kind: str
    training: np.ndarray  # int64 training count per bin, in the layout above
    edges: np.ndarray | None = None  # numeric: sorted distinct edges
    categories: tuple[Any, ...] = ()  # categorical: JSON values, most frequent first
    values: np.ndarray | None = None  # categorical with numeric/boolean values: the categories as float64

    @property
    def size(self) -> int:
        return len(self.training)

    @property
    def missing_bin(self) -> int:
        return self.size - 1

    @property
    def other_bin(self) -> int:
        """Categorical: the bin of values outside the reference categories."""
        return self.size - 2

    @property
    def training_rows(self) -> int:
        return int(self.training.sum())

    @cached_property
    def effect_groups(self) -> np.ndarray:
        """The coarse group of each bin for effect sizes. Numeric: below, ten training deciles of
        the fine bins (a bin never splits), above, missing. Categorical: every bin its own group."""
        if self.kind == CATEGORICAL:
            return np.arange(self.size)
        inner = self.training[1:-2].astype(np.float64)
        total = inner.sum()
        before = np.concatenate([[0.0], np.cumsum(inner)[:-1]]) / (total if total else 1.0)
        deciles = np.minimum((before * EFFECT_GROUPS).astype(np.int64), EFFECT_GROUPS - 1) + 1
        return np.concatenate([[0], deciles, [EFFECT_GROUPS + 1, EFFECT_GROUPS + 2]])

    @cached_property
    def coder(self) -> CategoryCoder:
        return CategoryCoder(self.categories, None if self.values is None else self.values.tolist())

    @cached_property
    def binner(self) -> NumericBinner:
        assert self.edges is not None
        return NumericBinner(self.edges)

    def bin_label(self, b: int) -> str:
        """A readable name of bin ``b`` (for drill-down)."""
        if b == self.missing_bin:
            return "missing"
        if self.kind == CATEGORICAL:
            return "other" if b == self.other_bin else str(self.categories[b])
        assert self.edges is not None
        k = len(self.edges)
        if b == 0:
            return f"< {self.edges[0]:g}"
        if b == k + 1:
            return f"> {self.edges[-1]:g}"
        if b == k:
            return f"= {self.edges[-1]:g}"
        return f"[{self.edges[b - 1]:g}, {self.edges[b]:g})"

    def group_label(self, g: int) -> str:
        """A readable name of effect group ``g`` (a run of fine bins for numbers)."""
        if self.kind == CATEGORICAL:
            return self.bin_label(g)
        bins = np.flatnonzero(self.effect_groups == g)
        if len(bins) == 0:
            return f"group {g}"
        first, last = int(bins[0]), int(bins[-1])
        assert self.edges is not None
        k = len(self.edges)
        if first == last or first == 0 or last >= k + 1:
            return self.bin_label(first)
        hi = f"{self.edges[last]:g})" if last < k else f"{self.edges[-1]:g}]"
        return f"[{self.edges[first - 1]:g}, {hi}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "training": self.training.tolist()}
        if self.edges is not None:
            out["edges"] = self.edges.tolist()
        if self.kind == CATEGORICAL:
            out["categories"] = list(self.categories)
        if self.values is not None:
            out["values"] = self.values.tolist()
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureReference:
        return cls(
            name=d["name"],
            kind=d["kind"],
            training=np.asarray(d["training"], dtype=np.int64),
            edges=np.asarray(d["edges"], dtype=np.float64) if "edges" in d else None,
            categories=tuple(d.get("categories") or ()),
            values=np.asarray(d["values"], dtype=np.float64) if d.get("values") is not None else None,
        )


@dataclass(frozen=True)
class DriftReference:
    """All features' bins, laid out one after another in one flat vector of counts."""

    features: tuple[FeatureReference, ...]

    @cached_property
    def offsets(self) -> dict[str, tuple[int, int]]:
        out: dict[str, tuple[int, int]] = {}
        pos = 0
        for f in self.features:
            out[f.name] = (pos, pos + f.size)
            pos += f.size
        return out

    @property
    def size(self) -> int:
        return sum(f.size for f in self.features)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    def feature(self, name: str) -> FeatureReference:
        for f in self.features:
            if f.name == name:
                return f
        raise InvalidInput("not a feature of the drift reference", field=name)

    @cached_property
    def fingerprint(self) -> str:
        """Identifies the bin layout: histograms are only merged when their fingerprints match."""
        body = orjson.dumps([f.to_dict() for f in self.features], option=orjson.OPT_SERIALIZE_NUMPY)
        return hashlib.sha256(body).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return {"features": [f.to_dict() for f in self.features]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DriftReference:
        return cls(tuple(FeatureReference.from_dict(f) for f in d["features"]))

    @classmethod
    def from_statistics(cls, stats: dict[str, Any], features: list[str] | None = None) -> DriftReference:
        """The reference of training statistics (``scrutiny.core.training_stats.compute_statistics``, version 2+).

        Features without training values (all missing) have nothing to compare with and are left out.
        """
        if int(stats.get("version", 0)) < 2:
            raise InvalidInput(
                f"training statistics version {stats.get('version')} has no reference bins; "
                f"recompute them (version {STATS_VERSION}) from the training data",
                field="training_statistics",
            )
        names = features or list(stats.get("feature_fields") or stats["features"])
        out = []
        for name in names:
            fs = stats["features"].get(name)
            if fs is None:
                raise InvalidInput("the training statistics have no such feature", field=name)
            if fs["type"] == "numeric":
                if "bins" not in fs:
                    continue  # no training value at all
                out.append(
                    FeatureReference(
                        name=name,
                        kind=NUMERIC,
                        edges=np.asarray(fs["bins"]["edges"], dtype=np.float64),
                        training=np.asarray(fs["bins"]["counts"], dtype=np.int64),
                    )
                )
            else:
                ref = fs["reference"]
                cats = tuple(ref["categories"])
                values = ref.get("values")
                if values is None and cats and all(isinstance(c, (bool, int, float)) for c in cats):
                    values = [float(c) for c in cats]
                out.append(
                    FeatureReference(
                        name=name,
                        kind=CATEGORICAL,
                        categories=cats,
                        values=np.asarray(values, dtype=np.float64) if values is not None else None,
                        training=np.asarray(ref["counts"], dtype=np.int64),
                    )
                )
        return cls(tuple(out))
