"""Data drift per feature: merged histograms compared with the training bins.

The verdict needs two things at once, so that it means the same at 1,000 rows and at
100 million: the change is **significant** (Holm-adjusted p-value below ``alpha`` over all
features tested, so a run of 25 features raises a false alarm at most 1% of the time) and it is
**material** (Jensen-Shannon distance at least ``js_threshold``). The p-value alone flags
everything at large sizes (every real data set differs a little); the distance alone flags
sampling noise at small sizes. See docs/monitors-drift.md for how the threshold was calibrated.

Tests by type: numeric features, Anderson-Darling on the fine reference bins (percentiles, or
every distinct value when there are at most 100), plus a test of the missing share when values
are missing; categorical features, Pearson's chi-square on categories (rare cells pooled,
values unseen in training counted in their own cell).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from scrutiny.monitors.builtin.drift import measures
from scrutiny.monitors.builtin.drift.histograms import DriftHistograms
from scrutiny.monitors.builtin.drift.reference import CATEGORICAL, DriftReference, FeatureReference

ALPHA = 0.01
JS_THRESHOLD = 0.05
MIN_ROWS = 100
TOP_BINS = 3
MAX_DISTRIBUTION_GROUPS = 60


@dataclass(frozen=True)
class DataDriftSettings:
    alpha: float = ALPHA  # family-wise significance over the features tested (Holm)
    js_threshold: float = JS_THRESHOLD  # smallest Jensen-Shannon distance (base 2) that counts as drift
    min_rows: int = MIN_ROWS  # a feature with fewer analysed rows gets no verdict

    def checked(self) -> DataDriftSettings:
        from scrutiny.errors import InvalidInput

        if not 0 < self.alpha < 1:
            raise InvalidInput("must be between 0 and 1", field="alpha")
        if not 0 < self.js_threshold <= 1:
            raise InvalidInput("must be in (0, 1]", field="js_threshold")
        if self.min_rows < 1:
            raise InvalidInput("must be at least 1", field="min_rows")
        return self


@dataclass
class FeatureDrift:
    feature: str
    kind: str
    test: str  # anderson_darling | chi_square
    statistic: float
    p_value: float
    p_value_adjusted: float
    js_distance: float
    psi: float
    rows: int  # current rows, missing included
    training_rows: int
    missing_share: float
    training_missing_share: float
    outside_share: float  # numeric: beyond the training range; categorical: not a training category
    training_outside_share: float
    ks_statistic: float | None = None  # numeric only: KS distance on the fine bins, for reference
    drifted: bool = False
    status: str = "ok"  # ok | insufficient_data
    rank: int | None = None  # 1 = the most drifted feature
    top_bins: list[dict[str, Any]] = field(default_factory=list)  # the bins whose share moved most
    distribution: list[dict[str, Any]] = field(default_factory=list)  # every group's shares (histograms)
    unseen_examples: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DataDriftResult:
    features: list[FeatureDrift]  # drifted first (by rank), then by JS distance
    rows: int
    settings: DataDriftSettings

    @property
    def drifted(self) -> list[str]:
        return [f.feature for f in self.features if f.drifted]

    @property
    def analysed(self) -> list[FeatureDrift]:
        return [f for f in self.features if f.status == "ok"]

    def values(self) -> dict[str, float]:
        """Headline numbers for a measurement."""
        analysed = self.analysed
        return {
            "data_drift_features": float(len(self.drifted)),
            "data_drift_share": len(self.drifted) / len(analysed) if analysed else 0.0,
            "max_js_distance": max((f.js_distance for f in analysed), default=0.0),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "settings": asdict(self.settings),
            "drifted_features": self.drifted,
            "features": [f.to_dict() for f in self.features],
        }


def evaluate(
    ref: DriftReference, current: DriftHistograms, settings: DataDriftSettings | None = None
) -> DataDriftResult:
    """Compare merged histograms of current records with the training bins, feature by feature."""
    settings = (settings or DataDriftSettings()).checked()
    if current.fingerprint != ref.fingerprint:
        from scrutiny.errors import InvalidInput

        raise InvalidInput("the histograms were built on other training bins than this reference")
    results = [_feature(f, current.feature(ref, f.name), current.unseen.get(f.name, {})) for f in ref.features]
    tested = []
    for r in results:
        if _enough(r, settings):
            tested.append(r)
        else:
            r.status = "insufficient_data"
    adjusted = measures.holm([r.p_value for r in tested])
    for r, padj in zip(tested, adjusted.tolist(), strict=True):
        r.p_value_adjusted = padj
        r.drifted = padj < settings.alpha and r.js_distance >= settings.js_threshold
    drifted = sorted((r for r in results if r.drifted), key=lambda r: (-r.js_distance, r.feature))
    for i, r in enumerate(drifted, 1):
        r.rank = i
    rest = sorted((r for r in results if not r.drifted), key=lambda r: (r.status != "ok", -r.js_distance, r.feature))
    return DataDriftResult([*drifted, *rest], current.rows, settings)


def _enough(r: FeatureDrift, settings: DataDriftSettings) -> bool:
    return r.rows >= settings.min_rows and r.training_rows > 0


def _feature(f: FeatureReference, counts: np.ndarray, unseen: dict[str, int]) -> FeatureDrift:
    train = f.training
    rows, trows = int(counts.sum()), int(train.sum())
    miss, tmiss = int(counts[f.missing_bin]), int(train[f.missing_bin])
    groups = f.effect_groups
    ngroups = int(groups.max()) + 1
    gref = np.bincount(groups, weights=train, minlength=ngroups)
    gcur = np.bincount(groups, weights=counts, minlength=ngroups)
    js = measures.js_distance(gref, gcur) if rows and trows else 0.0
    psi = measures.psi(gref, gcur) if rows and trows else 0.0
    ks = None
    if f.kind == CATEGORICAL:
        outside = int(counts[f.other_bin])
        toutside = int(train[f.other_bin])
        test = "chi_square"
        stat, p, _ = measures.chi_square(train, counts)
    else:
        outside = int(counts[0] + counts[-2])
        toutside = int(train[0] + train[-2])
        test = "anderson_darling"
        values_ref, values_cur = train[:-1], counts[:-1]
        stat, p = measures.anderson_darling_binned(values_ref, values_cur)
        ks = measures.ks_distance(values_ref, values_cur)
        if miss or tmiss:  # a change in how often the value is missing is drift too
            p_missing = measures.two_proportions(tmiss, trows, miss, rows)
            p = min(1.0, 2.0 * min(p, p_missing))
    return FeatureDrift(
        feature=f.name,
        kind=f.kind,
        test=test,
        statistic=float(stat),
        p_value=float(p),
        p_value_adjusted=float(p),
        js_distance=js,
        psi=psi,
        rows=rows,
        training_rows=trows,
        missing_share=miss / rows if rows else 0.0,
        training_missing_share=tmiss / trows if trows else 0.0,
        outside_share=outside / rows if rows else 0.0,
        training_outside_share=toutside / trows if trows else 0.0,
        ks_statistic=ks,
        top_bins=_top_bins(f, gref, gcur) if rows and trows else [],
        distribution=_distribution(f, gref, gcur) if rows and trows else [],
        unseen_examples=dict(unseen),
    )


def _distribution(f: FeatureReference, gref: np.ndarray, gcur: np.ndarray) -> list[dict[str, Any]]:
    """Training and current share of each group the distance is computed on (what the dashboard
    draws as reference vs current histograms); empty groups on both sides are left out."""
    p = gref / gref.sum()
    q = gcur / gcur.sum()
    keep = np.flatnonzero((gref > 0) | (gcur > 0))[:MAX_DISTRIBUTION_GROUPS]
    return [{"bin": f.group_label(int(g)), "training_share": float(p[g]), "current_share": float(q[g])} for g in keep]


def _top_bins(f: FeatureReference, gref: np.ndarray, gcur: np.ndarray) -> list[dict[str, Any]]:
    p = gref / gref.sum()
    q = gcur / gcur.sum()
    diff = q - p
    order = np.lexsort((np.arange(len(diff)), -np.abs(diff)))[:TOP_BINS]
    return [
        {"bin": f.group_label(int(g)), "training_share": float(p[g]), "current_share": float(q[g])}
        for g in order
        if diff[g] != 0
    ]
