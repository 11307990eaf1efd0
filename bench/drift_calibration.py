"""How the data drift threshold was calibrated: distances on clean splits of real data, and on
the smallest drift the peer benchmark plants.

    python bench/drift_calibration.py [--seeds 20]

A feature is flagged when its change is significant (Holm-adjusted p < 0.01) *and* material
(Jensen-Shannon distance >= ``js_threshold``). The significance gate controls false alarms on
small samples; at large samples everything is significant, and only the distance threshold
keeps a real-world difference that does not matter from being called drift. So the threshold
must sit above the distances that clean comparisons of real data produce, and below the
smallest drift worth reporting. This prints both sides (one JSON line):

* ``clean``: for Adult census (adult.data against adult.test, two samples of the same census,
  and random halves of adult.data at several sizes) and German credit (random halves), the
  largest JS distance of any feature, and the largest among features whose change was also
  significant (those are the ones the threshold has to stop);
* ``planted``: on the peer benchmark's data, the smallest JS distance of the 10 drifted columns
  (a 0.25-sd mean shift, a 1.3x spread, reversed category weights), at each size.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scrutiny.core.training_stats import compute_statistics
from scrutiny.demo import credit
from scrutiny.monitors.builtin.drift import DriftHistograms, DriftReference, evaluate
from scrutiny.monitors.builtin.drift.data_drift import ALPHA, JS_THRESHOLD
from tests.support.drift import (
    ADULT_CATEGORICAL,
    ADULT_FEATURES,
    ADULT_NUMERIC,
    CAT_COLS,
    DRIFTED,
    NUM_COLS,
    adult,
    columns_of,
    synthetic_columns,
    synthetic_frame,
)


def _ref(frame: Any, features: list[str], cats: list[str]) -> DriftReference:
    stats = compute_statistics(
        frame, feature_fields=features, categorical_fields=cats, label_column=None, problem_type="binary"
    )
    return DriftReference.from_statistics(stats)


def _features(ref: DriftReference, cols: dict[str, np.ndarray], n: int) -> list[Any]:
    return evaluate(ref, DriftHistograms.from_columns(ref, cols, n)).features


def _summary(features: list[Any]) -> dict[str, Any]:
    top = max(features, key=lambda f: f.js_distance)
    significant = [f for f in features if f.p_value_adjusted < ALPHA]
    sig_top = max(significant, key=lambda f: f.js_distance) if significant else None
    return {
        "max_js": round(top.js_distance, 4),
        "max_js_feature": top.feature,
        "max_js_significant": round(sig_top.js_distance, 4) if sig_top else None,
        "significant_feature": sig_top.feature if sig_top else None,
        "flagged": [f.feature for f in features if f.drifted],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=20)
    a = p.parse_args()
    data, test = adult()
    clean: dict[str, Any] = {}
    ref = _ref(data, ADULT_FEATURES, ADULT_CATEGORICAL)
    clean["adult_data_vs_test"] = _summary(
        _features(ref, columns_of(test, ADULT_NUMERIC, ADULT_CATEGORICAL), len(test))
    )
    for size in (1000, 5000, 16000):
        worst: dict[str, Any] = {"max_js": 0.0, "max_js_significant": None, "flagged_runs": 0}
        for seed in range(a.seeds):
            idx = np.random.default_rng(seed).permutation(len(data))
            half = len(data) // 2
            r = _ref(data.iloc[idx[:half]], ADULT_FEATURES, ADULT_CATEGORICAL)
            cur = data.iloc[idx[half : half + size]]
            s = _summary(_features(r, columns_of(cur, ADULT_NUMERIC, ADULT_CATEGORICAL), len(cur)))
            worst["max_js"] = max(worst["max_js"], s["max_js"])
            if s["max_js_significant"] is not None:
                worst["max_js_significant"] = max(worst["max_js_significant"] or 0.0, s["max_js_significant"])
            worst["flagged_runs"] += bool(s["flagged"])
        clean[f"adult_random_halves_{size}"] = {**worst, "runs": a.seeds}
    g = credit.load_german()
    worst = {"max_js": 0.0, "max_js_significant": None, "flagged_runs": 0}
    for seed in range(a.seeds):
        idx = np.random.default_rng(seed).permutation(len(g))
        r = _ref(g.iloc[idx[:500]], credit.FEATURES, credit.CATEGORICAL_FEATURES)
        cur = g.iloc[idx[500:]]
        s = _summary(_features(r, columns_of(cur, credit.NUMERIC_FEATURES, credit.CATEGORICAL_FEATURES), len(cur)))
        worst["max_js"] = max(worst["max_js"], s["max_js"])
        if s["max_js_significant"] is not None:
            worst["max_js_significant"] = max(worst["max_js_significant"] or 0.0, s["max_js_significant"])
        worst["flagged_runs"] += bool(s["flagged"])
    clean["german_random_halves_500"] = {**worst, "runs": a.seeds}
    planted = {}
    for n in (1000, 10_000, 100_000):
        r = _ref(synthetic_frame(n, seed=0), NUM_COLS + CAT_COLS, CAT_COLS)
        feats = _features(r, synthetic_columns(n, seed=0, drift=True), n)
        drifted = [f for f in feats if f.feature in DRIFTED]
        low = min(drifted, key=lambda f: f.js_distance)
        planted[str(n)] = {"min_js_drifted": round(low.js_distance, 4), "feature": low.feature}
    print(
        __import__("json").dumps(
            {
                "bench": "drift_calibration",
                "alpha": ALPHA,
                "js_threshold": JS_THRESHOLD,
                "clean": clean,
                "planted": planted,
            }
        )
    )


if __name__ == "__main__":
    main()
