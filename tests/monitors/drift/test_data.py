"""Data drift verdicts: planted drift found, clean splits not flagged, at every size; deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from scrutiny.core.training_stats import compute_statistics
from scrutiny.demo import credit
from scrutiny.monitors.builtin.drift.data_drift import DataDriftSettings, evaluate
from scrutiny.monitors.builtin.drift.histograms import DriftHistograms
from scrutiny.monitors.builtin.drift.reference import DriftReference
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


def _reference(frame, features, categorical) -> DriftReference:
    stats = compute_statistics(
        frame, feature_fields=features, categorical_fields=categorical, label_column=None, problem_type="binary"
    )
    return DriftReference.from_statistics(stats)


def _run(ref, columns, rows, **kw):
    return evaluate(ref, DriftHistograms.from_columns(ref, columns, rows), DataDriftSettings(**kw) if kw else None)


@pytest.mark.parametrize("n", [1_000, 10_000, 100_000, 1_000_000])
def test_peer_benchmark_exactly_the_ten_drifted_columns(n: int) -> None:
    """The peers' data (NannyML flags 14-25 of these 25 columns when 10 drifted)."""
    ref = _reference(synthetic_frame(n, seed=0), NUM_COLS + CAT_COLS, CAT_COLS)
    drifted = _run(ref, synthetic_columns(n, seed=0, drift=True), n)
    assert set(drifted.drifted) == DRIFTED
    # ranked: the reversed categories move most, then the widened and shifted numbers
    assert drifted.drifted[:2] == ["cat_1", "cat_0"] or set(drifted.drifted[:2]) == {"cat_0", "cat_1"}
    assert [f.rank for f in drifted.features[:10]] == list(range(1, 11))
    clean = _run(ref, synthetic_columns(n, seed=1), n)
    assert clean.drifted == []
    assert clean.values()["data_drift_features"] == 0


def test_peer_benchmark_at_1000_rows_over_many_seeds() -> None:
    """1,000 against 1,000 is where detection and false alarms meet: state how often it is exact."""
    exact = false_alarm_runs = 0
    for s in range(30):
        ref = _reference(synthetic_frame(1000, seed=10 * s), NUM_COLS + CAT_COLS, CAT_COLS)
        exact += set(_run(ref, synthetic_columns(1000, seed=10 * s, drift=True), 1000).drifted) == DRIFTED
        false_alarm_runs += bool(_run(ref, synthetic_columns(1000, seed=10 * s + 1), 1000).drifted)
    assert exact >= 26  # measured: 28 of 30 here, 93 of 100 over 100 seeds
    assert false_alarm_runs <= 1  # family-wise 1% by construction; measured 0 of 100


@pytest.fixture(scope="module")
def adult_ref():
    data, test = adult()
    return data, test, _reference(data, ADULT_FEATURES, ADULT_CATEGORICAL)


def _adult_cols(df):
    return columns_of(df, ADULT_NUMERIC, ADULT_CATEGORICAL)


def test_adult_test_file_is_not_drift_from_the_training_file(adult_ref) -> None:
    _, test, ref = adult_ref
    result = _run(ref, _adult_cols(test), len(test))
    assert result.drifted == []
    assert all(f.status == "ok" for f in result.features)


def test_clean_random_splits_of_real_data_are_not_flagged(adult_ref) -> None:
    data, _, _ = adult_ref
    g = credit.load_german()
    for seed in range(5):
        idx = np.random.default_rng(seed).permutation(len(data))
        half = len(data) // 2
        ref = _reference(data.iloc[idx[:half]], ADULT_FEATURES, ADULT_CATEGORICAL)
        for size in (500, 5000, len(data) - half):
            cur = data.iloc[idx[half : half + size]]
            assert _run(ref, _adult_cols(cur), len(cur)).drifted == [], (seed, size)
        gidx = np.random.default_rng(seed).permutation(len(g))
        gref = _reference(g.iloc[gidx[:500]], credit.FEATURES, credit.CATEGORICAL_FEATURES)
        cur = g.iloc[gidx[500:]]
        cols = columns_of(cur, credit.NUMERIC_FEATURES, credit.CATEGORICAL_FEATURES)
        assert _run(gref, cols, len(cur)).drifted == [], seed


def test_planted_drift_in_real_data_is_found_and_ranked(adult_ref) -> None:
    _, test, ref = adult_ref
    older = test[test["age"] >= 45]
    result = _run(ref, _adult_cols(older), len(older))
    assert result.drifted[0] == "age"
    assert {"age", "marital_status", "relationship"} <= set(result.drifted)
    age = result.features[0]
    assert age.test == "anderson_darling" and age.js_distance > 0.3 and age.p_value_adjusted < 1e-10
    assert age.top_bins and age.top_bins[0]["current_share"] != age.top_bins[0]["training_share"]
    g = credit.load_german()
    gref = _reference(g, credit.FEATURES, credit.CATEGORICAL_FEATURES)
    long_loans = g[g["LoanDuration"] >= 30]
    res = _run(gref, columns_of(long_loans, credit.NUMERIC_FEATURES, credit.CATEGORICAL_FEATURES), len(long_loans))
    assert res.drifted[:2] == ["LoanDuration", "LoanAmount"]


def test_unseen_categories_and_missing_values_are_drift(adult_ref) -> None:
    _, test, ref = adult_ref
    cur = test.sample(3000, random_state=0).copy()
    cur.loc[cur.index[:600], "native_country"] = "Atlantis"
    cur.loc[cur.index[:900], "hours_per_week"] = np.nan
    result = _run(ref, _adult_cols(cur), len(cur))
    by = {f.feature: f for f in result.features}
    assert by["native_country"].drifted and by["native_country"].unseen_examples == {"Atlantis": 600}
    assert by["native_country"].outside_share == pytest.approx(0.2, abs=0.01)
    assert by["hours_per_week"].drifted and by["hours_per_week"].missing_share == pytest.approx(0.3)
    assert by["hours_per_week"].training_missing_share == 0


def test_verdicts_are_deterministic_and_do_not_depend_on_row_order(adult_ref) -> None:
    _, test, ref = adult_ref
    cur = test[test["sex"] == "Female"]
    a = _run(ref, _adult_cols(cur), len(cur)).to_dict()
    b = _run(ref, _adult_cols(cur), len(cur)).to_dict()
    shuffled = cur.sample(frac=1.0, random_state=4)
    c = _run(ref, _adult_cols(shuffled), len(shuffled)).to_dict()
    assert a == b == c
    assert "sex" in a["drifted_features"]


def test_too_few_rows_get_no_verdict(adult_ref) -> None:
    _, test, ref = adult_ref
    cur = test.iloc[:50]
    result = _run(ref, _adult_cols(cur), len(cur))
    assert result.drifted == [] and {f.status for f in result.features} == {"insufficient_data"}
    assert _run(ref, _adult_cols(cur), len(cur), min_rows=20).features[0].status == "ok"


def test_settings_are_validated() -> None:
    from scrutiny.errors import InvalidInput

    for bad in ({"alpha": 0}, {"alpha": 1.5}, {"js_threshold": 0}, {"min_rows": 0}):
        with pytest.raises(InvalidInput):
            DataDriftSettings(**bad).checked()


def test_distribution_is_every_group_the_distance_is_computed_on() -> None:
    """The stored per-group shares (the dashboard's histograms) are complete and give back the
    reported Jensen-Shannon distance (SciPy, base 2) and the top moved bins."""
    from scipy.spatial.distance import jensenshannon

    n = 20_000
    ref = _reference(synthetic_frame(n, seed=0), NUM_COLS + CAT_COLS, CAT_COLS)
    result = _run(ref, synthetic_columns(n, seed=0, drift=True), n)
    for f in result.features:
        shares = f.distribution
        assert shares, f.feature
        p = np.array([b["training_share"] for b in shares])
        q = np.array([b["current_share"] for b in shares])
        assert p.sum() == pytest.approx(1.0, abs=1e-12) and q.sum() == pytest.approx(1.0, abs=1e-12)
        assert jensenshannon(p, q, base=2) == pytest.approx(f.js_distance, abs=1e-9), f.feature
        by_bin = {b["bin"]: b for b in shares}
        for top in f.top_bins:
            assert by_bin[top["bin"]]["current_share"] == pytest.approx(top["current_share"])
