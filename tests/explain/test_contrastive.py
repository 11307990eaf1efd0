"""Contrastive explanations in-process, checked against the model itself: the pertinent positive
keeps the class, the pertinent negative flips it and is minimal, in at most 10 scoring calls."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from scrutiny.demo import credit
from scrutiny.errors import InvalidInput
from scrutiny.explain.contrastive import ContrastiveOptions, explain_contrastive
from tests.support.explain import LocalScorer, credit_model, python_row, space_of

ROWS = list(range(0, 1000, 50))


@pytest.fixture(scope="module")
def german() -> pd.DataFrame:
    return credit.load_german()


@pytest.fixture(scope="module")
def space(german: pd.DataFrame):  # type: ignore[no-untyped-def]
    return space_of(german, credit.FEATURES, credit.CATEGORICAL_FEATURES, credit.LABEL, "binary")


def predict(model: Any, records: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    df = pd.DataFrame(records)[credit.FEATURES]
    proba = model.predict_proba(df)
    return np.asarray(model.classes_)[proba.argmax(axis=1)], proba


def test_pertinent_positive_and_negative_hold_for_the_model(german: pd.DataFrame, space) -> None:  # type: ignore[no-untyped-def]
    model = credit_model()
    medians = german[credit.NUMERIC_FEATURES].median()
    modes = german[credit.CATEGORICAL_FEATURES].mode().iloc[0]
    found_pn = 0
    for i in ROWS:
        record = python_row(german, i, credit.FEATURES)
        scorer = LocalScorer(model, credit.LABELS)
        out = explain_contrastive(space, record, scorer, ContrastiveOptions())
        assert scorer.calls <= 10, (i, scorer.calls)
        assert out["rounds"] == scorer.calls
        (label,), _ = predict(model, [dict(zip(credit.FEATURES, record, strict=True))])
        assert out["prediction"] == label
        # base values: training medians and modes (the oracle is pandas on the raw data)
        for f in credit.NUMERIC_FEATURES:
            assert out["base_values"][f] == round(medians[f])
        for f in credit.CATEGORICAL_FEATURES:
            assert out["base_values"][f] == modes[f]
        pp = out["pertinent_positive"]
        assert pp["complete"]
        (pp_label,), pp_proba = predict(model, [pp["record"]])
        assert pp_label == label and pp["probability"] == pytest.approx(pp_proba[0][credit.LABELS.index(label)])
        for f in pp["features"]:  # the supporting set: features that could not reach their base value
            assert pp["record"][f["feature"]] == f["moved_to"] != f["base"]
            assert f["value"] == record[credit.FEATURES.index(f["feature"])]
        pn = out["pertinent_negative"]
        if pn["exists"]:
            found_pn += 1
            (pn_label,), pn_proba = predict(model, [pn["record"]])
            assert pn_label == pn["prediction"] != label
            assert pn["probability"] == pytest.approx(pn_proba[0][credit.LABELS.index(pn_label)])
            moved = {f["feature"]: f["moved_to"] for f in pn["features"]}
            for name, value in pn["record"].items():  # only the reported features moved
                j = credit.FEATURES.index(name)
                assert value == moved.get(name, record[j]), name
            for f in pn["features"]:  # away from the base value, never toward it
                if f["feature"] in credit.NUMERIC_FEATURES and f["value"] != f["base"]:
                    assert np.sign(f["moved_to"] - f["value"]) == np.sign(f["value"] - f["base"])
                elif f["feature"] in credit.CATEGORICAL_FEATURES and f["value"] != f["base"]:
                    assert f["moved_to"] != f["base"]
            _assert_minimal(model, record, pn, label)
            for alt in pn["alternatives"]:  # other single changes that also flip
                rec = dict(zip(credit.FEATURES, record, strict=True)) | {alt["feature"]: alt["moved_to"]}
                (alt_label,), _ = predict(model, [rec])
                assert alt_label == alt["prediction"] != label
    assert found_pn >= len(ROWS) // 2


def _assert_minimal(model: Any, record: list[Any], pn: dict[str, Any], label: str) -> None:
    """Every reported move is needed: undoing any one of them (several moves) keeps the class; a
    single numeric move is near its threshold: half of it keeps the class (the model is monotone
    in each number)."""
    base = dict(zip(credit.FEATURES, record, strict=True))
    moves = {f["feature"]: f["moved_to"] for f in pn["features"]}
    if len(moves) > 1:
        partial = [base | {k: v for k, v in moves.items() if k != drop} for drop in moves]
        labels, _ = predict(model, partial)
        assert all(lbl == label for lbl in labels), (moves, labels)
    else:
        ((name, value),) = moves.items()
        if name in credit.NUMERIC_FEATURES:
            half = round(base[name] + (value - base[name]) / 2)
            if half not in (base[name], value):
                (lbl,), _ = predict(model, [base | {name: half}])
                assert lbl == label, (name, base[name], half, value)


def test_no_pertinent_negative_is_said_plainly(german: pd.DataFrame, space) -> None:  # type: ignore[no-untyped-def]
    """A model that always predicts the majority class: nothing flips it."""
    from sklearn.dummy import DummyClassifier

    dummy = DummyClassifier(strategy="prior").fit(german[credit.FEATURES], german[credit.LABEL])
    scorer = LocalScorer(dummy, credit.LABELS)
    out = explain_contrastive(space, python_row(german, 4, credit.FEATURES), scorer, ContrastiveOptions())
    pn = out["pertinent_negative"]
    assert pn["exists"] is False and pn["features"] == [] and pn["complete"]
    assert "did not change the prediction 'No Risk'" in pn["reason"]
    assert scorer.calls <= 10
    pp = out["pertinent_positive"]  # the base point has the class already: nothing is needed
    assert pp["features"] == [] and "no feature value of this record is needed" in pp["note"]


def test_no_room_to_move_is_said_plainly() -> None:
    frame = pd.DataFrame({"a": [3, 3, 3], "b": ["x", "x", "x"], "y": ["no", "yes", "no"]})
    space = space_of(frame, ["a", "b"], ["b"], "y", "binary")

    class Constant(LocalScorer):
        def __init__(self) -> None:
            super().__init__(None, ["no", "yes"])

        def score(self, fields, values, *, min_rows=None):  # type: ignore[no-untyped-def]
            from scrutiny.explain.scoring import Scored

            self.calls += 1
            n = len(values)
            return Scored(np.array(["no"] * n, dtype=object), np.tile([0.8, 0.2], (n, 1)), np.zeros(n, dtype=int))

    out = explain_contrastive(space, [3, "x"], Constant(), ContrastiveOptions())
    assert out["pertinent_negative"]["exists"] is False
    assert (
        out["pertinent_negative"]["reason"] == "no feature can move away from its base value within its training range"
    )


def test_call_budget_gives_a_valid_partial_answer(german: pd.DataFrame, space) -> None:  # type: ignore[no-untyped-def]
    model = credit_model()
    record = python_row(german, 1, credit.FEATURES)  # predicted Risk, the base point is No Risk
    full = explain_contrastive(space, record, LocalScorer(model, credit.LABELS), ContrastiveOptions())
    assert full["pertinent_positive"]["complete"] and full["rounds"] > 2
    scorer = LocalScorer(model, credit.LABELS)
    out = explain_contrastive(space, record, scorer, ContrastiveOptions(max_calls=2))
    assert scorer.calls == 2
    pp = out["pertinent_positive"]
    assert not pp["complete"]
    (label,), _ = predict(model, [pp["record"]])
    assert label == out["prediction"]  # still a scored point that keeps the class


def test_multiclass_flips_to_another_class(german: pd.DataFrame) -> None:
    model = credit.train_purpose_model(german)
    frame = german.assign(LoanPurposeClass=credit.purpose_class(german["LoanPurpose"]))
    categorical = [c for c in credit.CATEGORICAL_FEATURES if c in credit.PURPOSE_FEATURES]
    space = space_of(frame, credit.PURPOSE_FEATURES, categorical, "LoanPurposeClass", "multiclass")
    record = python_row(frame, 3, credit.PURPOSE_FEATURES)
    scorer = LocalScorer(model, credit.PURPOSE_CLASSES)
    out = explain_contrastive(space, record, scorer, ContrastiveOptions())
    pn = out["pertinent_negative"]
    assert pn["exists"] and pn["prediction"] in credit.PURPOSE_CLASSES and pn["prediction"] != out["prediction"]
    df = pd.DataFrame([pn["record"]])[credit.PURPOSE_FEATURES]
    assert model.predict(df)[0] == pn["prediction"]
    assert scorer.calls <= 10


def test_deterministic_and_regression_refused(german: pd.DataFrame, space) -> None:  # type: ignore[no-untyped-def]
    record = python_row(german, 9, credit.FEATURES)
    a = explain_contrastive(space, record, LocalScorer(credit_model(), credit.LABELS), ContrastiveOptions())
    b = explain_contrastive(space, record, LocalScorer(credit_model(), credit.LABELS), ContrastiveOptions())
    a.pop("timings_ms"), b.pop("timings_ms")
    assert a == b
    with pytest.raises(InvalidInput, match="classification"):
        explain_contrastive(space, record, LocalScorer(credit_model(), None, regression=True), ContrastiveOptions())


def test_sensitivity_contributions(german: pd.DataFrame, space) -> None:  # type: ignore[no-untyped-def]
    model = credit_model()
    record = python_row(german, 12, credit.FEATURES)
    out = explain_contrastive(space, record, LocalScorer(model, credit.LABELS), ContrastiveOptions())
    label = credit.LABELS.index(out["prediction"])
    p0 = model.predict_proba(pd.DataFrame([record], columns=credit.FEATURES))[0, label]
    for c in out["contributions"][:5]:  # Δp of moving the feature alone to its base value
        rec = dict(zip(credit.FEATURES, record, strict=True)) | {c["feature"]: out["base_values"][c["feature"]]}
        p = model.predict_proba(pd.DataFrame([rec])[credit.FEATURES])[0, label]
        assert c["coefficient"] == pytest.approx(p0 - p, abs=1e-12)
    assert sum(abs(c["weight"]) for c in out["contributions"]) == pytest.approx(100.0)
