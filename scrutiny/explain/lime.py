"""LIME-style local explanations of tabular records, scored in one batched engine call.

The method is LIME's tabular explainer with quartile discretisation (Ribeiro et al. 2016;
OpenScale contract §7.5), written with NumPy only:

1. Perturb the record ``perturbations`` times from the training statistics. A numeric feature
   draws a quartile bin by its training share, then a value from a normal with the bin's mean
   and standard deviation truncated to the bin's smallest and largest training values. A
   categorical feature draws a value by its training frequency. The interpretable
   representation is binary: 1 where a perturbation falls in the record's bin (or has its
   category), 0 elsewhere.
2. Score the record and all perturbations in one call (split only where the engine's batch
   limit forces it).
3. Weight each perturbation by an exponential kernel of its distance to the record in the
   binary space, width 0.75·√(number of features).
4. Select features (forward selection up to 6, else highest Ridge weights) and fit a weighted
   Ridge model (alpha 1) per class (per predicted value for regression). Its coefficients are the
   contributions: the change in the class probability when the feature keeps the record's bin.

The random stream is seeded from the row id and ``seed``, so the same record, seed and
statistics always give the same explanation.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from scrutiny.errors import InvalidInput
from scrutiny.explain.common import check_known, float_option, int_option, plain
from scrutiny.explain.features import CategoricalFeature, FeatureSpace, NumericFeature
from scrutiny.explain.scoring import ScoresRows
from scrutiny.explain.surrogate import LinearFit, WeightedLinear

SELECTIONS = ("auto", "forward_selection", "highest_weights", "none")
MIN_PARTIAL_ROWS = 500  # fewest scored perturbations a time-truncated explanation is fitted on


@dataclass(frozen=True)
class LimeOptions:
    perturbations: int = 5000
    num_features: int = 10
    feature_selection: str = "auto"
    kernel_width: float | None = None  # default 0.75·√(number of features)
    seed: int = 0
    time_budget_s: float = 120.0

    @classmethod
    def parse(cls, options: dict[str, Any] | None) -> LimeOptions:
        o = dict(options or {})
        known = {"perturbations", "num_features", "feature_selection", "kernel_width", "seed", "time_budget_s"}
        check_known(o, known, "LIME")
        out = cls(
            perturbations=int_option(o, "perturbations", cls.perturbations, 100, 100_000),
            num_features=int_option(o, "num_features", cls.num_features, 1, 10_000),
            feature_selection=str(o.get("feature_selection", cls.feature_selection)),
            kernel_width=float_option(o, "kernel_width", None, 1e-6, 1e6),
            seed=int_option(o, "seed", cls.seed, -(2**62), 2**62),
            time_budget_s=float_option(o, "time_budget_s", cls.time_budget_s, 0.01, 86_400.0) or cls.time_budget_s,
        )
        if out.feature_selection not in SELECTIONS:
            raise InvalidInput(f"must be one of {list(SELECTIONS)}", field="options.feature_selection")
        return out


def row_seed(row_id: str, seed: int) -> int:
    """A 63-bit seed from the row id and the user's seed: explanations repeat exactly."""
    digest = hashlib.sha256(f"{row_id}\x00{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


@dataclass
class Neighbourhood:
    binary: np.ndarray  # [n + 1, features]; row 0 is the record (all ones)
    rows: list[list[Any]]  # the same points as model inputs
    record_bins: list[Any]  # the record's bin index (numeric) or value (categorical), per feature


def perturb(space: FeatureSpace, record: list[Any], n: int, rng: np.random.Generator) -> Neighbourhood:
    """``n`` perturbations of ``record`` from the training statistics, plus the record as row 0."""
    d = len(space)
    binary = np.ones((n + 1, d), dtype=np.float64)
    columns: list[list[Any]] = []
    record_bins: list[Any] = []
    for j, (feature, value) in enumerate(zip(space.features, record, strict=True)):
        if isinstance(feature, NumericFeature):
            own = int(feature.bin_of(float(value)))
            bins = rng.choice(feature.bins, size=n, p=feature.freq)
            sampled = _truncated_normal(feature, bins, rng.random(n))
            binary[1:, j] = bins == own
            columns.append([value, *feature.cast(sampled)])
            record_bins.append(own)
        else:
            assert isinstance(feature, CategoricalFeature)
            own = feature.index_of(value)
            idx = rng.choice(len(feature.values), size=n, p=feature.freq)
            binary[1:, j] = idx == own
            values = np.empty(len(feature.values), dtype=object)
            values[:] = feature.values
            columns.append([value, *values[idx].tolist()])
            record_bins.append(value)
    rows = [list(r) for r in zip(*columns, strict=True)]
    return Neighbourhood(binary, rows, record_bins)


def _truncated_normal(feature: NumericFeature, bins: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF draws from N(bin mean, bin std) truncated to [bin min, bin max]. The bin mean
    lies inside its bounds, so the two CDF values straddle 0.5 and the inversion is accurate."""
    from scipy.special import ndtr, ndtri

    mean, std = feature.mean[bins], feature.std[bins]
    low, high = feature.low[bins], feature.high[bins]
    out = mean.copy()
    spread = (std > 0) & (high > low)
    if spread.any():
        s = std[spread]
        pa = ndtr((low[spread] - mean[spread]) / s)
        pb = ndtr((high[spread] - mean[spread]) / s)
        out[spread] = mean[spread] + s * ndtri(pa + u[spread] * (pb - pa))
    return np.clip(out, low, high)


def kernel_weights(binary: np.ndarray, width: float) -> np.ndarray:
    """LIME's kernel ``sqrt(exp(-d²/width²))`` of the Euclidean distance to the record (row 0)."""
    distance_sq = binary.shape[1] - binary.sum(axis=1)  # the record is all ones
    return np.sqrt(np.exp(-distance_sq / width**2))


def explain_lime(
    space: FeatureSpace, record: list[Any], scorer: ScoresRows, options: LimeOptions, row_id: str
) -> dict[str, Any]:
    """Explain one record; the result is plain JSON."""
    t0 = time.perf_counter()
    seed = row_seed(row_id, options.seed)
    hood = perturb(space, record, options.perturbations, np.random.default_rng(seed))
    t1 = time.perf_counter()
    scored = scorer.score(space.names, hood.rows, min_rows=min(len(hood.rows), MIN_PARTIAL_ROWS))
    t2 = time.perf_counter()
    n = len(scored)
    binary = hood.binary[:n]
    width = options.kernel_width or 0.75 * float(np.sqrt(len(space)))
    weights = kernel_weights(binary, width)

    out: dict[str, Any] = {"method": "lime"}
    if scorer.classification:
        if scored.probability is None:
            raise InvalidInput(
                "the engine returned no class probabilities; LIME explanations of a classifier need them"
            )
        target = scored.probability
        predicted = _predicted_class(scored)
        labels = scorer.labels
        out.update(
            prediction=scored.prediction[0],
            probability=float(target[0, predicted]),
            labels=labels,
            probabilities=[float(p) for p in target[0]],
        )
    else:
        target = scored.prediction.astype(np.float64)[:, None]
        predicted = 0
        out.update(prediction=float(target[0, 0]), probability=None)

    model = WeightedLinear(binary, target, weights)
    k = min(options.num_features, len(space))
    fits: list[tuple[int, LinearFit]] = []
    order = [predicted, *[c for c in range(target.shape[1]) if c != predicted]]
    for c in order:
        selected = model.select(c, k, options.feature_selection)
        fits.append((c, model.fit(selected, c, alpha=1.0)))
    t3 = time.perf_counter()

    main = fits[0][1]
    out.update(
        contributions=_contributions(space, record, hood.record_bins, main),
        r2=main.r2,
        intercept=main.intercept,
        local_prediction=main.intercept + float(main.coef.sum()),
    )
    if scorer.classification:
        out["classes"] = [
            {
                "class": scorer.labels[c],
                "probability": float(target[0, c]),
                "predicted": c == predicted,
                "contributions": _contributions(space, record, hood.record_bins, fit),
                "r2": fit.r2,
                "intercept": fit.intercept,
                "local_prediction": fit.intercept + float(fit.coef.sum()),
            }
            for c, fit in fits
        ]
    out.update(
        perturbations=n - 1,
        requested_perturbations=options.perturbations,
        truncated=scorer.truncated,
        seed=options.seed,
        random_seed=seed,
        kernel_width=width,
        num_features=k,
        feature_selection=options.feature_selection,
    )
    out["timings_ms"] = {
        "sampling": _ms(t1 - t0),
        "scoring": _ms(t2 - t1),
        "fitting": _ms(t3 - t2),
    }
    return plain(out)


def _predicted_class(scored: Any) -> int:
    c = int(scored.classes[0]) if scored.classes is not None else -1
    return c if c >= 0 else int(np.argmax(scored.probability[0]))


def _contributions(space: FeatureSpace, record: list[Any], bins: list[Any], fit: LinearFit) -> list[dict[str, Any]]:
    """Signed contributions, sorted by |weight|; ``weight`` is the share of Σ|coefficient| in %."""
    total = float(np.abs(fit.coef).sum())
    out = []
    for col, coef in zip(fit.columns.tolist(), fit.coef.tolist(), strict=True):
        feature = space.features[col]
        if isinstance(feature, NumericFeature):
            condition = feature.condition(int(bins[col]))
        else:
            condition = feature.condition(bins[col])
        out.append(
            {
                "feature": feature.name,
                "value": record[col],
                "weight": 100.0 * coef / total if total else 0.0,
                "coefficient": coef,
                "condition": condition,
            }
        )
    return out


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)
