"""The fairness configuration: both OpenScale shapes, clear errors, bins, recommendations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scrutiny.demo import credit
from scrutiny.errors import InvalidInput
from scrutiny.monitors.builtin.fairness.binning import bin_index, numeric_edges
from scrutiny.monitors.builtin.fairness.recommend import recommend
from scrutiny.monitors.builtin.fairness.resolve import resolve
from scrutiny.monitors.builtin.fairness.spec import FairnessSpec
from tests.support.fairness import ADULT_CATEGORICAL, ADULT_NUMERIC, make_subscription

FAV = {"favourable_class": ["No Risk"], "unfavourable_class": ["Risk"]}


def config(*features: dict, **kw) -> dict:  # type: ignore[no-untyped-def]
    return {"features": list(features), **FAV, **kw}


SEX = {"feature": "Sex", "majority": ["male"], "minority": ["female"]}
AGE = {"feature": "Age", "majority": [[26, 75]], "minority": [[18, 25]]}


def test_openscale_v1_example_resolves(german_sub) -> None:  # type: ignore[no-untyped-def]
    body = {
        "features": [{**SEX, "threshold": 0.95}, {**AGE, "threshold": 0.95}],
        **FAV,
        "min_records": 100,
        "class_label": "prediction",
    }
    spec = resolve(body, german_sub)
    sex, age = spec.attributes
    assert sex.categorical and sex.monitored == ["female"] and sex.reference == ["male"]
    assert not age.categorical and age.integer and age.monitored == [[18, 25]]
    assert sex.threshold == age.threshold == 0.95
    assert spec.min_records == 100 and spec.outcome.column == "prediction"
    # round trip through JSON (what the store keeps)
    again = FairnessSpec.from_dict(spec.to_dict())
    assert again.to_dict() == spec.to_dict()
    assert again.fingerprints() == spec.fingerprints()


def test_v2_percentage_thresholds_with_specific_values(german_sub) -> None:  # type: ignore[no-untyped-def]
    body = config(
        SEX,
        AGE,
        thresholds=[
            {
                "metric_id": "fairness_value",
                "type": "lower_limit",
                "value": 80,
                "specific_values": [{"applies_to": [{"type": "tag", "key": "feature", "value": "Age"}], "value": 95}],
            }
        ],
    )
    spec = resolve(body, german_sub)
    assert [a.threshold for a in spec.attributes] == [0.8, 0.95]
    # a v1 threshold written as a percentage is understood too
    assert resolve(config({**SEX, "threshold": 90}), german_sub).attributes[0].threshold == 0.9
    # the default is 80%
    assert resolve(config(SEX), german_sub).attributes[0].threshold == 0.8


def test_monitored_and_reference_names_are_accepted(german_sub) -> None:  # type: ignore[no-untyped-def]
    spec = resolve(config({"feature": "Sex", "monitored": ["female"], "reference": ["male"]}), german_sub)
    assert spec.attributes[0].reference == ["male"]


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (config({**SEX, "feature": "Gender"}), "features[0].feature", "unknown column 'Gender'"),
        (config({**SEX, "minority": ["femme"]}), "features[0]", "do not occur in the training data"),
        (config({**SEX, "majority": ["male", "female"]}), "features[0]", "both the monitored and the reference"),
        (config({**AGE, "majority": [[25, 75]]}), "features[0]", "overlap"),
        (config({**AGE, "minority": [[18, 25], [20, 22]]}), "features[0]", "overlap inside the monitored group"),
        (config({**AGE, "minority": [[100, 120]]}), "features[0]", "holds no training value"),
        (config({**AGE, "minority": [[30, 20]]}), "features[0].minority", "lower end above"),
        (config({**AGE, "minority": [[18.2, 18.7]]}), "features[0].minority", "holds no integer"),
        (config({**AGE, "minority": ["young"]}), "features[0].minority", "closed ranges"),
        (config({**SEX, "minority": [["a", "b"]]}), "features[0].minority", "list its values, not ranges"),
        (config({**SEX, "minority": []}), "features[0].minority", "empty"),
        (config({**SEX, "threshold": 150}), "features[0].threshold", "out of range"),
        (config({**SEX, "threshold": 0}), "features[0].threshold", "out of range"),
        (config({**SEX, "threshold": -0.5}), "features[0].threshold", "out of range"),
        (config(SEX, SEX), "features[1].feature", "configured twice"),
        ({"features": [SEX], "favourable_class": ["Yes"]}, "favourable_class", "not a label"),
        (
            {"features": [SEX], "favourable_class": ["Risk"], "unfavourable_class": ["Risk"]},
            "unfavourable_class",
            "both favourable",
        ),
        (config(SEX, class_label="score"), "class_label", "not an output column"),
        (config(SEX, min_records=0), "min_records", "greater than or equal to 1"),
        ({"features": [], **FAV}, "features", "at least 1"),
        (config({**SEX, "type": "ordinal"}), "features[0].type", "not one of"),
        (config({**SEX, "type": "integer"}), "features[0].type", "not numbers"),
    ],
)
def test_invalid_configurations_name_the_field(german_sub, body: dict, field: str, words: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInput) as err:
        resolve(body, german_sub)
    assert err.value.context.get("field") == field, err.value.message
    assert words in err.value.message


def test_unknown_column_lists_the_payload_columns(german_sub) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInput) as err:
        resolve(config({**SEX, "feature": "Gender"}), german_sub)
    assert "'Sex'" in err.value.message and "'Region'" in err.value.message


def test_meta_columns_and_integer_coded_categories(german_sub) -> None:  # type: ignore[no-untyped-def]
    # a meta column (not a model input) can be monitored; without statistics its values are not checked
    spec = resolve(config({"feature": "Region", "minority": ["north"]}), german_sub)
    assert spec.attributes[0].source == "meta" and spec.attributes[0].reference is None
    # an integer-coded category (sex 0/1), validated against the training values
    df = credit.load_german().assign(SexCode=lambda d: (d["Sex"] == "female").astype(int))
    feats = [*credit.FEATURES, "SexCode"]
    sub = make_subscription(
        df, feats, [*credit.CATEGORICAL_FEATURES, "SexCode"], label=credit.LABEL, labels=credit.LABELS
    )
    spec = resolve(config({"feature": "SexCode", "minority": [1], "majority": [0]}), sub)
    assert spec.attributes[0].categorical and spec.attributes[0].monitored == [1]
    with pytest.raises(InvalidInput, match="do not occur"):
        resolve(config({"feature": "SexCode", "minority": [2]}), sub)
    with pytest.raises(InvalidInput, match="holds numbers"):
        resolve(config({"feature": "SexCode", "minority": ["1"]}), sub)


def test_no_payload_schema_yet_is_a_clear_error(german_sub) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from scrutiny.core.schema import Schema

    empty = replace(german_sub, layout=replace(german_sub.layout, features=Schema(())))
    with pytest.raises(InvalidInput, match="no payload schema yet"):
        resolve(config(SEX), empty)


def test_regression_outcomes_are_ranges() -> None:
    sub = make_subscription(
        credit.load_german(),
        credit.AMOUNT_FEATURES,
        credit.CATEGORICAL_FEATURES,
        label="LoanAmount",
        problem_type="regression",
    )
    spec = resolve({"features": [SEX], "favourable_class": [[3000, 20000]]}, sub)
    assert spec.outcome.regression and spec.outcome.unfavourable is None
    with pytest.raises(InvalidInput, match="closed ranges"):
        resolve({"features": [SEX], "favourable_class": ["high"]}, sub)
    with pytest.raises(InvalidInput, match="overlap"):
        resolve({"features": [SEX], "favourable_class": [[3000, 20000]], "unfavourable_class": [[0, 3000]]}, sub)


# -- bins ----------------------------------------------------------------------------------


def test_integer_bins_are_one_per_year_and_contain_the_group_boundaries(german_sub) -> None:  # type: ignore[no-untyped-def]
    age = resolve(config(AGE), german_sub).attributes[0]
    edges = np.asarray(age.edges)
    assert edges[0] == -np.inf and edges[-1] == np.inf
    assert 18 in edges and 26 in edges and 76 in edges  # [18, 25] -> [18, 26); training max 75
    assert 45 <= len(edges) - 1 <= 62


def test_real_valued_bins_line_up_with_range_ends() -> None:
    stats = {
        "type": "numeric",
        "count": 1000,
        "min": 0.0,
        "max": 10.0,
        "quantiles": list(np.linspace(0, 10, 101) ** 1.5 / 10**0.5),
    }
    edges = numeric_edges([[0.0, 2.5], [2.6, 10.0]], integer=False, stats=stats)
    assert 45 <= len(edges) - 1 <= 55
    x = np.array([2.5, np.nextafter(2.5, 3), 2.6, 10.0, np.nan, -5.0, 50.0])
    idx = bin_index(x, edges)
    hi = np.searchsorted(edges, np.nextafter(2.5, np.inf))  # the edge just above 2.5
    assert edges[hi] == np.nextafter(2.5, np.inf)
    assert idx[0] == hi - 1 and idx[1] == hi  # 2.5 is inside [0, 2.5], its successor is not
    assert idx[4] == -1 and idx[5] == 0 and idx[6] == len(edges) - 2


def test_wide_integer_attributes_use_training_quantiles(adult: pd.DataFrame) -> None:
    sub = make_subscription(
        adult, ADULT_NUMERIC + ADULT_CATEGORICAL, ADULT_CATEGORICAL, label="income", labels=["<=50K", ">50K"]
    )
    hours = resolve(
        {
            "features": [{"feature": "hours_per_week", "minority": [[1, 39]], "majority": [[40, 99]]}],
            "favourable_class": [">50K"],
        },
        sub,
    )
    edges = np.asarray(hours.attributes[0].edges)
    assert 1 in edges and 40 in edges and 100 in edges
    assert np.all(edges[1:-1] == np.round(edges[1:-1]))  # integer edges only
    assert len(edges) - 1 < 60


# -- recommendations -----------------------------------------------------------------------


def test_recommendations_on_german_credit(german_sub) -> None:  # type: ignore[no-untyped-def]
    recs = {r.feature: r for r in recommend(german_sub)}
    assert set(recs) == {"Sex", "Age", "PersonalStatus"}
    assert recs["Sex"].kind == "sex" and recs["Sex"].detected_by == "name and values"
    assert recs["Sex"].suggestion["minority"] == ["female"] and recs["Sex"].suggestion["majority"] == ["male"]
    assert recs["Age"].suggestion["minority"] == [[19, 25]] and recs["Age"].suggestion["majority"] == [[26, 75]]
    assert recs["PersonalStatus"].kind == "marital_status"
    # every suggestion is a valid configuration as it stands
    entries = [r.suggestion for r in recs.values() if r.suggestion]
    spec = resolve({"features": entries, **FAV}, german_sub)
    assert len(spec.attributes) == len(entries)


def test_recommendations_on_adult_and_by_values(adult: pd.DataFrame) -> None:
    df = adult.rename(columns={"sex": "applicant_s", "race": "origin"})
    rng = np.random.default_rng(0)
    df["residence"] = [f"{z:05d}" for z in rng.integers(10000, 99999, len(df))]
    cats = ["workclass", "marital_status", "occupation", "relationship", "origin", "applicant_s", "residence"]
    sub = make_subscription(df, [*ADULT_NUMERIC, *cats], cats, label="income", labels=["<=50K", ">50K"])
    recs = {r.feature: r for r in recommend(sub)}
    assert recs["applicant_s"].kind == "sex" and recs["applicant_s"].detected_by == "values"
    assert recs["origin"].kind == "race" and recs["origin"].detected_by == "values"
    assert recs["origin"].suggestion["majority"] == ["White"]
    assert recs["marital_status"].kind == "marital_status"
    assert recs["age"].kind == "age"
    assert recs["residence"].kind == "zip_code" and recs["residence"].detected_by == "values"
    assert recs["residence"].suggestion is None and "zip codes" in recs["residence"].note
    assert "hours_per_week" not in recs and "occupation" not in recs
