"""Data consistency: constraints learned from training data, checked vectorised.

The vectorised check is compared with a plain per-row reading of each rule (the oracle);
learned rules are checked on German credit and Adult census; clean held-out rows rarely break
them, planted inconsistencies always do.
"""

from __future__ import annotations

import numpy as np
import pytest

from scrutiny.demo import credit
from scrutiny.monitors.builtin.drift import constraints as C
from tests.support.drift import ADULT_CATEGORICAL, ADULT_FEATURES, ADULT_NUMERIC, adult, columns_of


def german_cols(df):
    return columns_of(df, credit.NUMERIC_FEATURES, credit.CATEGORICAL_FEATURES)


def adult_cols(df):
    return columns_of(df, ADULT_NUMERIC, ADULT_CATEGORICAL)


def learn_german(df):
    return C.learn(
        german_cols(df), len(df), feature_fields=credit.FEATURES, categorical_fields=credit.CATEGORICAL_FEATURES
    )


def learn_adult(df):
    return C.learn(adult_cols(df), len(df), feature_fields=ADULT_FEATURES, categorical_fields=ADULT_CATEGORICAL)


@pytest.fixture(scope="module")
def adult_model():
    data, test = adult()
    return data, test, learn_adult(data)


def _broken_by_rule(c: C.Constraint, row: dict) -> bool:
    """One rule read literally for one row: the oracle of the vectorised check."""
    f = c.features
    if c.kind == C.RANGE:
        v = row[f[0]]
        return v is not None and not np.isnan(v) and not (c.spec["min"] <= v <= c.spec["max"])
    if c.kind == C.DOMAIN:
        v = row[f[0]]
        return v is not None and v not in {str(x) for x in c.spec["categories"]}
    if c.kind == C.PAIR:
        pair = [row[f[0]], row[f[1]]]
        return pair in [[str(a), str(b)] for a, b in c.spec["forbidden"]]
    cat, x = row[f[0]], row[f[1]]
    for value, lo, hi in c.spec["ranges"]:
        if cat == str(value) and x is not None and not np.isnan(x):
            return not (lo <= x <= hi)
    return False


def test_vectorised_check_equals_the_rules_read_row_by_row(adult_model) -> None:
    _, test, model = adult_model
    sample = test.sample(2000, random_state=0).copy()
    # plant every kind of break
    sample.iloc[0, sample.columns.get_loc("age")] = 150
    sample.iloc[1, sample.columns.get_loc("workclass")] = "Astronaut"
    sample.iloc[2, sample.columns.get_loc("relationship")] = "Husband"
    sample.iloc[2, sample.columns.get_loc("marital_status")] = "Never-married"
    sample.iloc[3, sample.columns.get_loc("education")] = "Bachelors"
    sample.iloc[3, sample.columns.get_loc("education_num")] = 3
    cols = adult_cols(sample)
    check = model.check(cols, len(sample))
    rows = [{k: cols[k][i] for k in cols} for i in range(len(sample))]
    expected = {
        (i, j) for i, row in enumerate(rows) for j, c in enumerate(model.constraints) if _broken_by_rule(c, row)
    }
    got = set(zip(check.violation_rows.tolist(), check.violation_constraints.tolist(), strict=True))
    assert got == expected
    assert {check.constraints[j].id for i, j in got if i < 4} >= {
        "range:age",
        "domain:workclass",
        "pair:marital_status|relationship",
        "range_by_category:education|education_num",
    }


def test_german_rules_are_the_structural_ones() -> None:
    model = learn_german(credit.load_german())
    by_id = {c.id: c for c in model.constraints}
    pair = by_id["pair:Sex|PersonalStatus"]
    # the UCI file encodes sex and status together: these combinations cannot occur
    assert ["female", "single"] in pair.spec["forbidden"] and ["male", "married_or_divorced"] in pair.spec["forbidden"]
    assert by_id["range:Age"].spec == {"min": 19.0, "max": 75.0}
    assert len(by_id["domain:LoanPurpose"].spec["categories"]) == 10
    # 1,000 rows are too few for a numeric range per category to prove itself
    assert not [c for c in model.constraints if c.kind == C.RANGE_BY_CATEGORY]


def test_adult_learns_pairs_and_exact_ranges(adult_model) -> None:
    _, _, model = adult_model
    by_id = {c.id: c for c in model.constraints}
    assert ["Never-married", "Husband"] in by_id["pair:marital_status|relationship"].spec["forbidden"]
    # one 'Husband' in adult.data is female: a rare pair is not a forbidden one
    assert "pair:relationship|sex" not in by_id
    ranges = {r[0]: (r[1], r[2]) for r in by_id["range_by_category:education|education_num"].spec["ranges"]}
    assert ranges["Bachelors"] == (13.0, 13.0) and ranges["HS-grad"] == (9.0, 9.0)


def test_clean_rows_rarely_break_constraints_and_planted_ones_always_do(adult_model) -> None:
    _, test, model = adult_model
    # the other file of the same census
    clean = model.check(adult_cols(test), len(test))
    assert clean.drifted_count / len(test) < 0.005
    # learned on half of German credit, checked on the other half
    for seed in range(5):
        idx = np.random.default_rng(seed).permutation(1000)
        g = credit.load_german()
        half = learn_german(g.iloc[idx[:500]])
        share = half.check(german_cols(g.iloc[idx[500:]]), 500).drifted_count / 500
        assert share < 0.05, seed
    bad = test.sample(500, random_state=1).copy()
    bad["native_country"] = "Atlantis"
    check = model.check(adult_cols(bad), len(bad))
    assert check.drifted.all() and check.feature_counts()["native_country"] == 500


def test_identifier_like_text_gets_no_domain_and_two_column_learning_is_capped() -> None:
    g = credit.load_german().copy()
    g["ApplicationId"] = [f"id-{i}" for i in range(len(g))]
    features = [*credit.FEATURES, "ApplicationId"]
    cols = columns_of(g, credit.NUMERIC_FEATURES, [*credit.CATEGORICAL_FEATURES, "ApplicationId"])
    model = C.learn(
        cols, len(g), feature_fields=features, categorical_fields=[*credit.CATEGORICAL_FEATURES, "ApplicationId"]
    )
    assert not [c for c in model.constraints if "ApplicationId" in c.features]
    capped = C.learn(
        cols, len(g), feature_fields=features, categorical_fields=credit.CATEGORICAL_FEATURES, two_column_limit=8
    )
    window = set(features[:8])
    assert all(set(c.features) <= window for c in capped.constraints if len(c.features) == 2)
    assert not [c for c in capped.constraints if c.id == "pair:Sex|PersonalStatus"]  # beyond the cap


def test_learning_is_deterministic_and_round_trips(adult_model) -> None:
    data, test, model = adult_model
    again = learn_adult(data)
    assert again.to_dict() == model.to_dict()
    back = C.ConsistencyModel.from_dict(model.to_dict())
    cols = adult_cols(test.iloc[:3000])
    a, b = model.check(cols, 3000), back.check(cols, 3000)
    assert np.array_equal(a.violation_rows, b.violation_rows)
    assert a.constraint_counts() == b.constraint_counts()


def test_missing_values_and_absent_columns_break_nothing(adult_model) -> None:
    _, test, model = adult_model
    sample = test.iloc[:100].copy()
    sample["age"] = np.nan
    sample["workclass"] = None
    cols = adult_cols(sample)
    del cols["occupation"]
    baseline = model.check(adult_cols(test.iloc[:100]), 100)
    check = model.check(cols, 100)
    assert check.drifted_count <= baseline.drifted_count
