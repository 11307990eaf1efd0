"""Disparate impact and its companions against fairlearn and AIF360, on German credit and Adult
census with real models' predictions (tolerance 1e-9: both sides are ratios of counts)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from scrutiny.demo import credit
from scrutiny.monitors.builtin.fairness.counting import count_frame
from scrutiny.monitors.builtin.fairness.evaluate import evaluate_attribute
from scrutiny.monitors.builtin.fairness.resolve import resolve
from tests.support.fairness import make_subscription

fairlearn_metrics = pytest.importorskip("fairlearn.metrics")
logging.getLogger().setLevel(logging.ERROR)  # aif360 warns about optional extras on import

TOL = 1e-9


def evaluate(df: pd.DataFrame, sub, config: dict):  # type: ignore[no-untyped-def]
    spec = resolve(config, sub)
    counts = count_frame(df, spec)
    return {a.name: evaluate_attribute(counts.attributes[a.name], a, spec.outcome) for a in spec.attributes}


def fairlearn_rates(y_fav: pd.Series, groups: pd.Series) -> pd.Series:
    mf = fairlearn_metrics.MetricFrame(
        metrics=fairlearn_metrics.selection_rate, y_true=y_fav, y_pred=y_fav, sensitive_features=groups
    )
    return mf.by_group


def aif360_metrics(y_fav: pd.Series, reference: pd.Series) -> tuple[float, float]:
    """(disparate impact, statistical parity difference) with the reference group privileged."""
    from aif360.datasets import BinaryLabelDataset
    from aif360.metrics import BinaryLabelDatasetMetric

    frame = pd.DataFrame({"y": y_fav.astype(float).to_numpy(), "ref": reference.astype(float).to_numpy()})
    ds = BinaryLabelDataset(
        df=frame, label_names=["y"], protected_attribute_names=["ref"], favorable_label=1.0, unfavorable_label=0.0
    )
    m = BinaryLabelDatasetMetric(ds, unprivileged_groups=[{"ref": 0.0}], privileged_groups=[{"ref": 1.0}])
    return float(m.disparate_impact()), float(m.statistical_parity_difference())


def check_two_groups(result, y_fav: pd.Series, monitored: pd.Series, reference: pd.Series) -> None:  # type: ignore[no-untyped-def]
    """Our pooled rates, disparate impact and parity difference against both oracles."""
    both = monitored | reference
    groups = pd.Series(np.where(monitored, "monitored", "reference"), index=y_fav.index)[both]
    rates = fairlearn_rates(y_fav[both], groups)
    assert result.monitored.rate == pytest.approx(rates["monitored"], abs=TOL)
    assert result.reference.rate == pytest.approx(rates["reference"], abs=TOL)
    di = result.fairness_value
    assert di == pytest.approx(rates["monitored"] / rates["reference"], abs=TOL)
    dpr = fairlearn_metrics.demographic_parity_ratio(y_fav[both], y_fav[both], sensitive_features=groups)
    assert min(di, 1 / di) == pytest.approx(dpr, abs=TOL)
    aif_di, aif_spd = aif360_metrics(y_fav[both], reference[both])
    assert di == pytest.approx(aif_di, abs=TOL)
    assert result.statistical_parity_difference == pytest.approx(aif_spd, abs=TOL)
    assert result.monitored.records == int(monitored.sum())
    assert result.reference.records == int(reference.sum())


# -- German credit -------------------------------------------------------------------------


def test_german_sex_matches_fairlearn_and_aif360(german_scored: pd.DataFrame, german_sub) -> None:  # type: ignore[no-untyped-def]
    df = german_scored
    res = evaluate(
        df,
        german_sub,
        {
            "features": [{"feature": "Sex", "majority": ["male"], "minority": ["female"], "threshold": 0.95}],
            "favourable_class": ["No Risk"],
            "unfavourable_class": ["Risk"],
        },
    )["Sex"]
    y = df["prediction"] == "No Risk"
    check_two_groups(res, y, df["Sex"] == "female", df["Sex"] == "male")
    assert 0.80 < res.fairness_value < 0.90  # the model favours men on this data
    assert res.biased  # below the 0.95 threshold
    assert res.threshold == 0.95


def test_german_age_ranges_match_oracles(german_scored: pd.DataFrame, german_sub) -> None:  # type: ignore[no-untyped-def]
    df = german_scored
    res = evaluate(
        df,
        german_sub,
        {
            "features": [{"feature": "Age", "majority": [[26, 75]], "minority": [[18, 25]]}],
            "favourable_class": ["No Risk"],
            "unfavourable_class": ["Risk"],
        },
    )["Age"]
    y = df["prediction"] == "No Risk"
    check_two_groups(res, y, df["Age"].between(18, 25), df["Age"].between(26, 75))
    assert res.threshold == 0.8


def test_german_several_monitored_ranges_give_per_group_values_and_their_mean(
    german_scored: pd.DataFrame, german_sub
) -> None:  # type: ignore[no-untyped-def]
    df = german_scored
    res = evaluate(
        df,
        german_sub,
        {
            "features": [{"feature": "Age", "majority": [[36, 75]], "minority": [[19, 25], [26, 30], [31, 35]]}],
            "favourable_class": ["No Risk"],
        },
    )["Age"]
    y = df["prediction"] == "No Risk"
    band = pd.cut(df["Age"], [18, 25, 30, 35, 75], labels=["19-25", "26-30", "31-35", "ref"])
    rates = fairlearn_rates(y, band)
    expected = [rates[g] / rates["ref"] for g in ["19-25", "26-30", "31-35"]]
    assert [g.group for g in res.groups] == ["19-25", "26-30", "31-35"]
    for g, e in zip(res.groups, expected, strict=True):
        assert g.fairness_value == pytest.approx(e, abs=TOL)
        assert g.records == int((band == g.group).sum())
    assert res.average_fairness_value == pytest.approx(np.mean(expected), abs=TOL)
    check_two_groups(res, y, df["Age"].between(19, 35), df["Age"].between(36, 75))


def test_german_multiclass_favourable_sets_leave_other_classes_out(german_scored: pd.DataFrame) -> None:
    df = german_scored.assign(prediction=german_scored["purpose_prediction"])
    sub = make_subscription(
        credit.load_german(),
        credit.PURPOSE_FEATURES,
        [c for c in credit.CATEGORICAL_FEATURES if c != "LoanPurpose"],
        label=None,
        problem_type="multiclass",
        labels=credit.PURPOSE_CLASSES,
    )
    res = evaluate(
        df,
        sub,
        {
            "features": [{"feature": "Sex", "majority": ["male"], "minority": ["female"]}],
            "favourable_class": ["car", "education_business"],
            "unfavourable_class": ["home"],
        },
    )["Sex"]
    judged = df["prediction"].isin(["car", "education_business", "home"])
    assert (~judged).sum() > 0  # "other" predictions exist and are left out
    y = df["prediction"].isin(["car", "education_business"])
    check_two_groups(res, y[judged], (df["Sex"] == "female")[judged], (df["Sex"] == "male")[judged])
    assert res.excluded["outcome_in_neither_set"] == int((~judged).sum())


def test_german_regression_outcome_ranges(german_scored: pd.DataFrame) -> None:
    df = german_scored.assign(prediction=german_scored["amount_prediction"])
    sub = make_subscription(
        credit.load_german(),
        credit.AMOUNT_FEATURES,
        credit.CATEGORICAL_FEATURES,
        label="LoanAmount",
        problem_type="regression",
    )
    res = evaluate(
        df,
        sub,
        {
            "features": [{"feature": "Age", "majority": [[26, 75]], "minority": [[19, 25]]}],
            "favourable_class": [[3000, 100000]],
            "unfavourable_class": [[-100000, 2999.999]],
        },
    )["Age"]
    p = df["prediction"]
    judged = p.between(3000, 100000) | p.between(-100000, 2999.999)
    y = p.between(3000, 100000)
    age = df["Age"]
    check_two_groups(res, y[judged], age.between(19, 25)[judged], age.between(26, 75)[judged])


def test_float_ranges_are_exact_at_closed_boundaries(german_scored: pd.DataFrame) -> None:
    """A real-valued attribute binned around its ranges: values equal to a range end fall inside."""
    df = german_scored.copy()
    df.loc[df.index[:40], "amount_per_month"] = 100.0  # exactly on the boundary
    features = [*credit.FEATURES, "amount_per_month"]
    sub = make_subscription(df, features, credit.CATEGORICAL_FEATURES, label=credit.LABEL, labels=credit.LABELS)
    res = evaluate(
        df,
        sub,
        {
            "features": [{"feature": "amount_per_month", "minority": [[0, 100.0]], "majority": [[100.0000001, 1e6]]}],
            "favourable_class": ["No Risk"],
        },
    )["amount_per_month"]
    x = df["amount_per_month"]
    y = df["prediction"] == "No Risk"
    check_two_groups(res, y, (x >= 0) & (x <= 100.0), (x >= 100.0000001) & (x <= 1e6))


# -- Adult census --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def adult_sub(adult: pd.DataFrame):  # type: ignore[no-untyped-def]
    from tests.support.fairness import ADULT_CATEGORICAL, ADULT_NUMERIC

    return make_subscription(
        adult, ADULT_NUMERIC + ADULT_CATEGORICAL, ADULT_CATEGORICAL, label="income", labels=["<=50K", ">50K"]
    )


def test_adult_sex_matches_oracles(adult: pd.DataFrame, adult_sub) -> None:  # type: ignore[no-untyped-def]
    res = evaluate(
        adult,
        adult_sub,
        {"features": [{"feature": "sex", "minority": ["Female"], "majority": ["Male"]}], "favourable_class": [">50K"]},
    )["sex"]
    y = adult["prediction"] == ">50K"
    check_two_groups(res, y, adult["sex"] == "Female", adult["sex"] == "Male")
    assert res.fairness_value < 0.5 and res.biased  # a strongly biased model on this data


def test_adult_race_with_and_without_a_reference_list(adult: pd.DataFrame, adult_sub) -> None:  # type: ignore[no-untyped-def]
    y = adult["prediction"] == ">50K"
    race = adult["race"]
    res = evaluate(
        adult,
        adult_sub,
        {"features": [{"feature": "race", "minority": ["Black"], "majority": ["White"]}], "favourable_class": [">50K"]},
    )["race"]
    check_two_groups(res, y, race == "Black", race == "White")
    assert res.excluded["in_neither_group"] == int((~race.isin(["Black", "White"])).sum())

    monitored = ["Black", "Amer-Indian-Eskimo", "Other"]
    res = evaluate(
        adult,
        adult_sub,
        {
            "features": [{"feature": "race", "minority": monitored}],
            "favourable_class": [">50K"],
            "unfavourable_class": ["<=50K"],
        },
    )["race"]
    check_two_groups(res, y, race.isin(monitored), ~race.isin(monitored))
    rates = fairlearn_rates(y, race)
    for g in res.groups:
        ref_rate = y[~race.isin(monitored)].mean()
        assert g.fairness_value == pytest.approx(rates[g.group] / ref_rate, abs=TOL)


def test_adult_age_source_of_bias_is_the_lowest_qualifying_bin(adult: pd.DataFrame, adult_sub) -> None:  # type: ignore[no-untyped-def]
    res = evaluate(
        adult,
        adult_sub,
        {
            "features": [{"feature": "age", "minority": [[17, 30]], "majority": [[31, 90]]}],
            "favourable_class": [">50K"],
        },
    )["age"]
    y = adult["prediction"] == ">50K"
    check_two_groups(res, y, adult["age"].between(17, 30), adult["age"].between(31, 90))
    # oracle: per age value (the bins are single years on this span), lowest rate with >= 10 rows
    young = adult[adult["age"].between(17, 30)]
    per_age = young.groupby("age")["prediction"].agg(lambda s: (s == ">50K").mean())
    sizes = young.groupby("age").size()
    lowest = per_age[sizes >= 10].min()
    src = res.source_of_bias
    assert src is not None
    assert src["favourable_rate"] == pytest.approx(lowest, abs=TOL)
    lo, hi = src["value"]
    assert lo == hi and per_age[lo] == pytest.approx(lowest, abs=TOL)


# -- planted bias, clean data, edge cases ---------------------------------------------------


def _synthetic(rng: np.random.Generator, n: int, rate_mon: float, rate_ref: float) -> pd.DataFrame:
    sex = rng.choice(["female", "male"], size=n)
    p = np.where(sex == "female", rate_mon, rate_ref)
    out = np.where(rng.random(n) < p, "No Risk", "Risk")
    df = credit.load_german().sample(n, replace=True, random_state=1).reset_index(drop=True)
    return df.assign(Sex=sex, prediction=out)


def test_planted_bias_is_flagged_and_clean_data_is_not(german_sub, rng: np.random.Generator) -> None:  # type: ignore[no-untyped-def]
    config = {
        "features": [{"feature": "Sex", "minority": ["female"], "majority": ["male"], "threshold": 0.8}],
        "favourable_class": ["No Risk"],
    }
    biased = evaluate(_synthetic(rng, 50_000, 0.45, 0.75), german_sub, config)["Sex"]
    assert biased.fairness_value == pytest.approx(0.6, abs=0.03)
    assert biased.biased
    clean = evaluate(_synthetic(rng, 50_000, 0.7, 0.7), german_sub, config)["Sex"]
    assert clean.fairness_value == pytest.approx(1.0, abs=0.03)
    assert not clean.biased


def test_planted_source_of_bias_in_one_age_band(german_sub, rng: np.random.Generator) -> None:  # type: ignore[no-untyped-def]
    n = 20_000
    df = credit.load_german().sample(n, replace=True, random_state=2).reset_index(drop=True)
    age = rng.integers(19, 76, n)
    p = np.where((age >= 20) & (age <= 21), 0.2, 0.7)
    df = df.assign(Age=age, prediction=np.where(rng.random(n) < p, "No Risk", "Risk"))
    res = evaluate(
        df,
        german_sub,
        {
            "features": [{"feature": "Age", "minority": [[19, 25]], "majority": [[26, 75]]}],
            "favourable_class": ["No Risk"],
        },
    )["Age"]
    assert res.source_of_bias["value"] in ([20, 20], [21, 21])
    assert res.source_of_bias["favourable_rate"] < 0.3


def test_reference_rate_zero_gives_null_with_a_reason(german_sub) -> None:  # type: ignore[no-untyped-def]
    df = credit.load_german().assign(prediction=lambda d: np.where(d["Sex"] == "male", "Risk", "No Risk"))
    res = evaluate(
        df,
        german_sub,
        {
            "features": [{"feature": "Sex", "minority": ["female"], "majority": ["male"]}],
            "favourable_class": ["No Risk"],
        },
    )["Sex"]
    assert res.fairness_value is None
    assert "rate 0" in res.reason
    assert not res.biased
    assert res.monitored.rate == 1.0 and res.reference.rate == 0.0
