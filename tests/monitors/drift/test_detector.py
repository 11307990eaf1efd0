"""The accuracy drift detector on Adult census: training, the matched cut-off, estimates, margins."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from scrutiny.errors import InvalidInput
from scrutiny.monitors.builtin.drift import detector as D
from tests.support.drift import ADULT_CATEGORICAL, ADULT_FEATURES, ADULT_NUMERIC, adult, columns_of


@pytest.fixture(scope="module")
def setup():
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    data, test = adult()
    cats = Pipeline(
        [("fill", SimpleImputer(strategy="constant", fill_value="?")), ("hot", OneHotEncoder(handle_unknown="ignore"))]
    )
    pre = ColumnTransformer([("cat", cats, ADULT_CATEGORICAL), ("num", StandardScaler(), ADULT_NUMERIC)])
    model = Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=3000))]).fit(
        data[ADULT_FEATURES], data["income"]
    )

    def score(df):
        p = model.predict_proba(df[ADULT_FEATURES])
        return p, np.asarray(model.classes_, dtype=object)[p.argmax(axis=1)]

    p, pred = score(data)
    det = D.train(
        columns_of(data, ADULT_NUMERIC, ADULT_CATEGORICAL),
        len(data),
        truth=data["income"].to_numpy(dtype=object),
        prediction=pred,
        probability=p,
        numeric=ADULT_NUMERIC,
        categorical=ADULT_CATEGORICAL,
        labels=list(model.classes_),
    )
    return data, test, score, det, (p, pred)


def _evaluate(det, score, df):
    p, pred = score(df)
    r = det.evaluate(columns_of(df, ADULT_NUMERIC, ADULT_CATEGORICAL), len(df), p)
    return r, float((pred == df["income"].to_numpy(dtype=object)).mean())


def test_cutoff_makes_training_like_data_estimate_the_base_accuracy(setup) -> None:
    data, _, score, det, (_, pred) = setup
    assert det.train_rows + det.test_rows == len(data) and det.test_rows == pytest.approx(0.3 * len(data), abs=1)
    # the same split as training (seeded): on the held-out part the share called correct is the accuracy
    from sklearn.model_selection import train_test_split

    correct = pred == data["income"].to_numpy(dtype=object)
    _, te = train_test_split(np.arange(len(data)), test_size=0.3, random_state=0, stratify=correct)
    assert det.base_accuracy == pytest.approx(correct[te].mean(), abs=1e-12)
    held = data.iloc[te]
    r, _ = _evaluate(det, score, held)
    assert r.predicted_accuracy == pytest.approx(det.base_accuracy, abs=2 / len(te))
    assert abs(r.drift_magnitude) <= 2 / len(te)
    assert det.detector_auc > 0.85


def test_margin_is_the_wilson_interval(setup) -> None:
    _, test, score, det, _ = setup
    r, _ = _evaluate(det, score, test.sample(1234, random_state=3))
    ok = r.analysed - r.drifted
    ci = stats.binomtest(ok, r.analysed).proportion_ci(method="wilson")
    assert r.predicted_accuracy_interval == (pytest.approx(ci.low, abs=1e-12), pytest.approx(ci.high, abs=1e-12))
    lo, hi = r.drift_magnitude_interval
    assert lo == pytest.approx(det.base_accuracy - ci.high) and hi == pytest.approx(det.base_accuracy - ci.low)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_clean_traffic_is_not_drift_and_planted_drops_are_found(setup, seed) -> None:
    _, test, score, det, _ = setup
    clean, acc = _evaluate(det, score, test.sample(2000, random_state=seed))
    assert abs(det.base_accuracy - acc) < 0.025  # the traffic really is like training
    assert not clean.violated and abs(clean.drift_magnitude) < 0.03
    region = test[test["age"].between(35, 55) & (test["marital_status"] == "Married-civ-spouse")]
    shifted, acc = _evaluate(det, score, region.sample(2000, random_state=seed))
    true_drop = det.base_accuracy - acc
    assert true_drop > 0.1
    assert shifted.violated and abs(shifted.drift_magnitude - true_drop) < 0.07
    assert shifted.drift_magnitude_interval[0] > 0.1
    assert abs(shifted.expected_accuracy - acc) < 0.03
    # the transactions called drifted are those the detector finds least likely right
    assert shifted.p_correct[shifted.drifted_mask].max() < shifted.p_correct[~shifted.drifted_mask].min()


def test_training_is_deterministic_and_the_state_round_trips(setup) -> None:
    data, test, score, det, (p, pred) = setup
    sample = data.iloc[::4]
    kw = dict(numeric=ADULT_NUMERIC, categorical=ADULT_CATEGORICAL, labels=det.labels)
    cols = columns_of(sample, ADULT_NUMERIC, ADULT_CATEGORICAL)
    truth = sample["income"].to_numpy(dtype=object)
    a = D.train(cols, len(sample), truth=truth, prediction=pred[::4], probability=p[::4], **kw)
    b = D.train(cols, len(sample), truth=truth, prediction=pred[::4], probability=p[::4], **kw)
    cur = test.iloc[:3000]
    pa, _ = score(cur)
    ccols = columns_of(cur, ADULT_NUMERIC, ADULT_CATEGORICAL)
    assert a.cutoff == b.cutoff and np.array_equal(a.p_correct(ccols, 3000, pa), b.p_correct(ccols, 3000, pa))
    import pickle

    back = D.AccuracyDetector.from_state(pickle.loads(pickle.dumps(a.to_state())))
    assert np.array_equal(back.p_correct(ccols, 3000, pa), a.p_correct(ccols, 3000, pa))


def test_bad_inputs_are_named(setup) -> None:
    data, _, _, det, (p, pred) = setup
    cols = columns_of(data.iloc[:10], ADULT_NUMERIC, ADULT_CATEGORICAL)
    with pytest.raises(InvalidInput, match="at least 50"):
        D.train(cols, 10, truth=pred[:10], prediction=pred[:10], probability=p[:10], numeric=ADULT_NUMERIC,
                categorical=ADULT_CATEGORICAL, labels=det.labels)  # fmt: skip
    with pytest.raises(InvalidInput) as err:
        det.p_correct(cols, 10, np.ones((10, 3)) / 3)
    assert err.value.context["field"] == "probability"


def test_labels_compare_across_types() -> None:
    truth = np.array([1, 0, "1", 2.0], dtype=object)
    pred = np.array([1.0, 0, 1, "2.0"], dtype=object)
    assert D._equal(truth, pred).tolist() == [True, True, True, True]
    assert D._equal(np.array(["a", "b"], dtype=object), np.array(["a", "c"], dtype=object)).tolist() == [True, False]
