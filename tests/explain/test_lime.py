"""The LIME-style explainer in-process: perturbation from the statistics, determinism, and the
`lime` package as oracle on German credit (classification and regression)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from scrutiny.demo import credit
from scrutiny.explain.features import CategoricalFeature, NumericFeature
from scrutiny.explain.lime import LimeOptions, explain_lime, perturb
from scrutiny.explain.scoring import Scored
from tests.support.explain import LocalScorer, agreement, credit_model, lime_oracle, python_row, space_of

ROWS = list(range(0, 1000, 60))  # German credit rows explained against the oracle


@pytest.fixture(scope="module")
def german() -> pd.DataFrame:
    return credit.load_german()


@pytest.fixture(scope="module")
def space(german: pd.DataFrame):  # type: ignore[no-untyped-def]
    return space_of(german, credit.FEATURES, credit.CATEGORICAL_FEATURES, credit.LABEL, "binary")


def test_perturbations_follow_the_training_statistics(german: pd.DataFrame, space) -> None:  # type: ignore[no-untyped-def]
    record = python_row(german, 3, credit.FEATURES)
    n = 40_000
    hood = perturb(space, record, n, np.random.default_rng(11))
    assert hood.rows[0] == record and hood.binary[0].all()
    sample = pd.DataFrame(hood.rows[1:], columns=credit.FEATURES)
    for j, f in enumerate(space.features):
        col = sample[f.name]
        if isinstance(f, NumericFeature):
            assert all(isinstance(v, int) for v in col.head(200)), "integer features stay integers"
            values = col.to_numpy(np.float64)
            bins = f.bin_of(values)
            shares = np.bincount(bins, minlength=f.bins) / n
            np.testing.assert_allclose(shares, f.freq, atol=0.01, err_msg=f.name)
            for b in range(f.bins):  # clipped to the bin's training min and max
                inside = values[bins == b]
                if inside.size:
                    assert inside.min() >= f.low[b] and inside.max() <= f.high[b], (f.name, b)
            # interpretable representation: 1 exactly where the perturbation is in the record's bin
            own = f.bin_of(float(record[j]))
            np.testing.assert_array_equal(hood.binary[1:, j], (bins == own).astype(float))
            # training data oracle: the share of each LIME quartile bin in the raw column
            raw = german[f.name].to_numpy(np.float64)
            lime_bins = np.searchsorted(np.unique(np.percentile(raw, [25, 50, 75])), raw, side="left")
            np.testing.assert_allclose(np.bincount(lime_bins, minlength=f.bins) / len(raw), f.freq, atol=1e-12)
        else:
            assert isinstance(f, CategoricalFeature)
            expected = german[f.name].value_counts(normalize=True)
            observed = col.value_counts(normalize=True).reindex(expected.index, fill_value=0.0)
            np.testing.assert_allclose(observed.to_numpy(), expected.to_numpy(), atol=0.012, err_msg=f.name)
            np.testing.assert_array_equal(hood.binary[1:, j], (col == record[j]).to_numpy(float))


def test_same_record_and_seed_give_the_same_explanation(german: pd.DataFrame, space) -> None:  # type: ignore[no-untyped-def]
    record = python_row(german, 5, credit.FEATURES)
    model = credit_model()
    first = explain_lime(space, record, LocalScorer(model, credit.LABELS), LimeOptions(), "tx-5-1")
    again = explain_lime(space, record, LocalScorer(model, credit.LABELS), LimeOptions(), "tx-5-1")
    first.pop("timings_ms"), again.pop("timings_ms")
    assert first == again
    other_seed = explain_lime(space, record, LocalScorer(model, credit.LABELS), LimeOptions(seed=1), "tx-5-1")
    other_row = explain_lime(space, record, LocalScorer(model, credit.LABELS), LimeOptions(), "tx-6-1")
    for other in (other_seed, other_row):
        assert other["random_seed"] != first["random_seed"]
        assert [c["coefficient"] for c in other["contributions"]] != [c["coefficient"] for c in first["contributions"]]


def test_one_scoring_call_and_the_result_shape(german: pd.DataFrame, space) -> None:  # type: ignore[no-untyped-def]
    record = python_row(german, 1, credit.FEATURES)
    model = credit_model()
    scorer = LocalScorer(model, credit.LABELS)
    out = explain_lime(space, record, scorer, LimeOptions(), "r1")
    assert scorer.calls == 1 and scorer.rows == 5001
    proba = model.predict_proba(pd.DataFrame([record], columns=credit.FEATURES))[0]
    assert out["prediction"] == credit.LABELS[int(proba.argmax())]
    assert out["probability"] == pytest.approx(proba.max(), abs=1e-12)
    assert out["probabilities"] == pytest.approx(list(proba), abs=1e-12)
    assert len(out["contributions"]) == 10
    assert sum(abs(c["weight"]) for c in out["contributions"]) == pytest.approx(100.0)
    weights = [abs(c["weight"]) for c in out["contributions"]]
    assert weights == sorted(weights, reverse=True)
    assert 0.0 < out["r2"] <= 1.0
    # binary: the other class's surrogate is the mirror image of the predicted one
    predicted, other = out["classes"]
    assert predicted["predicted"] and not other["predicted"]
    mirror = {c["feature"]: c["coefficient"] for c in other["contributions"]}
    for c in predicted["contributions"]:
        assert mirror[c["feature"]] == pytest.approx(-c["coefficient"], abs=1e-9)
    assert out["local_prediction"] == pytest.approx(
        out["intercept"] + sum(c["coefficient"] for c in out["contributions"])
    )


def test_agrees_with_the_lime_package_on_german_credit(german: pd.DataFrame, space) -> None:  # type: ignore[no-untyped-def]
    model = credit_model()
    explainer, X, predict = lime_oracle(german, model, "classification", credit.FEATURES, credit.CATEGORICAL_FEATURES)
    agree = []
    for i in ROWS:
        record = python_row(german, i, credit.FEATURES)
        out = explain_lime(space, record, LocalScorer(model, credit.LABELS), LimeOptions(), f"row-{i}")
        label = credit.LABELS.index(out["prediction"])
        exp = explainer.explain_instance(X[i], predict, labels=(label,), num_features=10, num_samples=5000)
        theirs = [(credit.FEATURES[j], w) for j, w in exp.local_exp[label]]
        ours = [(c["feature"], c["coefficient"]) for c in out["contributions"]]
        agree.append(agreement(ours, theirs, f"German row {i}"))
        assert out["r2"] == pytest.approx(exp.score, abs=0.1)
    assert sum(agree) >= len(ROWS) - 2, agree


def test_regression_agrees_with_the_lime_package(german: pd.DataFrame) -> None:
    model = credit.train_amount_model(german)
    categorical = [c for c in credit.CATEGORICAL_FEATURES if c in credit.AMOUNT_FEATURES]
    space = space_of(german, credit.AMOUNT_FEATURES, categorical, "LoanAmount", "regression")
    explainer, X, predict = lime_oracle(german, model, "regression", credit.AMOUNT_FEATURES, categorical)
    agree = []
    for i in ROWS[:8]:
        record = python_row(german, i, credit.AMOUNT_FEATURES)
        scorer = LocalScorer(model, None, regression=True)
        out = explain_lime(space, record, scorer, LimeOptions(), f"amount-{i}")
        expected = model.predict(pd.DataFrame([record], columns=credit.AMOUNT_FEATURES))[0]
        assert out["prediction"] == pytest.approx(expected)
        assert out["probability"] is None and "classes" not in out
        exp = explainer.explain_instance(X[i], predict, num_features=10, num_samples=5000)
        theirs = [(credit.AMOUNT_FEATURES[j], w) for j, w in exp.local_exp[1]]
        ours = [(c["feature"], c["coefficient"]) for c in out["contributions"]]
        agree.append(agreement(ours, theirs, f"amount row {i}"))
    assert sum(agree) >= len(agree) - 1, agree


def test_multiclass_explains_every_class(german: pd.DataFrame) -> None:
    model = credit.train_purpose_model(german)
    frame = german.assign(LoanPurposeClass=credit.purpose_class(german["LoanPurpose"]))
    categorical = [c for c in credit.CATEGORICAL_FEATURES if c in credit.PURPOSE_FEATURES]
    space = space_of(frame, credit.PURPOSE_FEATURES, categorical, "LoanPurposeClass", "multiclass")
    record = python_row(frame, 2, credit.PURPOSE_FEATURES)
    out = explain_lime(space, record, LocalScorer(model, credit.PURPOSE_CLASSES), LimeOptions(), "p2")
    assert out["classes"][0]["class"] == out["prediction"]
    assert sorted(c["class"] for c in out["classes"]) == credit.PURPOSE_CLASSES
    assert sum(c["probability"] for c in out["classes"]) == pytest.approx(1.0)
    # each class has its own surrogate: the multiclass ones are not mirror images
    first, second = out["classes"][0]["contributions"], out["classes"][1]["contributions"]
    assert [c["feature"] for c in first] != [c["feature"] for c in second] or [c["coefficient"] for c in first] != [
        -c["coefficient"] for c in second
    ]


def test_options_are_checked() -> None:
    from scrutiny.errors import InvalidInput

    assert LimeOptions.parse({"perturbations": 1000, "num_features": 5}).perturbations == 1000
    for bad in ({"perturbations": 10}, {"num_features": 0}, {"feature_selection": "magic"}, {"sample": 3}):
        with pytest.raises(InvalidInput) as err:
            LimeOptions.parse(bad)
        assert err.value.context["field"].startswith("options.")


def test_classifier_without_probabilities_is_a_clear_error(german: pd.DataFrame, space) -> None:  # type: ignore[no-untyped-def]
    from scrutiny.errors import InvalidInput

    class NoProbabilities(LocalScorer):
        def score(self, fields: list[str], values: list[list[Any]], *, min_rows: int | None = None) -> Scored:
            s = super().score(fields, values)
            return Scored(s.prediction, None, s.classes)

    with pytest.raises(InvalidInput, match="class probabilities"):
        explain_lime(
            space,
            python_row(german, 0, credit.FEATURES),
            NoProbabilities(credit_model(), credit.LABELS),
            LimeOptions(),
            "x",
        )
