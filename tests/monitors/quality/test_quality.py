"""The quality monitor against scikit-learn on real data (German credit, Adult census), on both stores.

Tolerances: count- and sum-based metrics and log loss 1e-9; areas under the ROC and PR curves,
computed from 10,000 score bins, 1e-3 (the observed error is printed by the bench and is ~1e-5).
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from scrutiny.demo import credit
from scrutiny.monitors.builtin.quality import metrics as qm
from tests.support.monitors import (
    ADULT_CATEGORICAL,
    ADULT_NUMERIC,
    T0,
    fit_classifier,
    load_adult,
    log_feedback,
    log_predictions,
    spread,
    subscribe_frame,
)

EXACT = 1e-9
AUC_TOL = 1e-3
NOW = T0 + timedelta(days=30)


def sk_binary(y: np.ndarray, pred: np.ndarray, proba: np.ndarray, labels: list, positive: str) -> dict[str, float]:
    pos = labels.index(positive)
    yb, pb = (y == positive).astype(int), (pred == positive).astype(int)
    tn, fp, _, _ = skm.confusion_matrix(yb, pb, labels=[0, 1]).ravel()
    prec, rec, _ = skm.precision_recall_curve(yb, proba[:, pos])
    return {
        "area_under_roc": skm.roc_auc_score(yb, proba[:, pos]),
        "area_under_pr": skm.auc(rec, prec),
        "accuracy": skm.accuracy_score(y, pred),
        "true_positive_rate": skm.recall_score(yb, pb),
        "false_positive_rate": fp / (fp + tn),
        "recall": skm.recall_score(yb, pb),
        "precision": skm.precision_score(yb, pb),
        "f1_measure": skm.f1_score(yb, pb),
        "log_loss": skm.log_loss(y, proba, labels=labels),
    }


def check(values: dict, expected: dict) -> None:
    for k, v in expected.items():
        tol = AUC_TOL if k in ("area_under_roc", "area_under_pr") else EXACT
        assert values[k] == pytest.approx(v, abs=tol), (k, values[k], v)


def credit_setup(service, engine_server):
    data = credit.load_german()
    train, test = data.iloc[:500], data.iloc[500:]
    model = fit_classifier(train, credit.FEATURES, credit.CATEGORICAL_FEATURES, credit.LABEL)
    sub = subscribe_frame(
        service, engine_server.url, data, name="credit-q", problem_type="binary", label=credit.LABEL,
        features=credit.FEATURES, categorical=credit.CATEGORICAL_FEATURES,
    )  # fmt: skip
    proba = model.predict_proba(test[credit.FEATURES])
    pred = np.asarray(model.classes_, dtype=object)[proba.argmax(axis=1)]
    times = spread(len(test), T0, timedelta(hours=6), seed=11)
    ids = log_predictions(service, sub, test, credit.FEATURES, pred, proba, times, prefix="q", batch=120)
    fb_times = spread(len(test), T0 + timedelta(hours=1), timedelta(hours=8), seed=12)
    order = np.random.default_rng(5).permutation(len(test))  # feedback arrives in another order
    log_feedback(
        service,
        sub,
        [ids[i] for i in order],
        test[credit.LABEL].to_numpy()[order].tolist(),
        [fb_times[i] for i in range(len(order))],
        batch=90,
    )
    frame = pd.DataFrame(
        {"y": test[credit.LABEL].to_numpy()[order], "pred": pred[order], "ts": fb_times, "id": [ids[i] for i in order]}
    )
    frame["p0"], frame["p1"] = proba[order, 0], proba[order, 1]
    return sub, frame


def test_binary_metrics_match_scikit_learn_german_credit(service, engine_server) -> None:
    sub, frame = credit_setup(service, engine_server)
    service.monitors.configure(sub.id, "quality", {"max_rows_per_evaluation": None})
    m = service.monitors.run(sub.id, "quality", now=NOW)
    assert m["status"] == "finished" and m["records"] == 500
    y, pred, proba = frame.y.to_numpy(), frame.pred.to_numpy(), frame[["p0", "p1"]].to_numpy()
    check(m["values"], sk_binary(y, pred, proba, credit.LABELS, "Risk"))
    cm = skm.confusion_matrix(y, pred, labels=["No Risk", "Risk"])  # positive class second
    assert m["details"]["confusion_matrix"]["labels"] == ["No Risk", "Risk"]
    assert m["details"]["confusion_matrix"]["matrix"] == cm.tolist()
    assert m["thresholds"] == [{"metric": "area_under_roc", "type": "lower_limit", "value": 0.8}]
    # drill-down: the rows of one cell
    rows = service.monitors.records(sub.id, m["id"], actual="Risk", predicted="No Risk", limit=1000)
    assert len(rows) == cm[1, 0] and {(r[credit.LABEL], r["prediction"]) for r in rows} == {("Risk", "No Risk")}
    # the most recent 150 feedback rows only
    service.monitors.configure(sub.id, "quality", {"max_rows_per_evaluation": 150, "min_feedback_data_size": 50})
    m = service.monitors.run(sub.id, "quality", now=NOW)
    recent = frame.sort_values(["ts", "id"]).iloc[-150:]
    check(
        m["values"],
        sk_binary(recent.y.to_numpy(), recent.pred.to_numpy(), recent[["p0", "p1"]].to_numpy(), credit.LABELS, "Risk"),
    )
    # the other class as positive
    service.monitors.configure(sub.id, "quality", {"max_rows_per_evaluation": None, "positive_class": "No Risk"})
    m = service.monitors.run(sub.id, "quality", now=NOW)
    check(m["values"], sk_binary(y, pred, proba, credit.LABELS, "No Risk"))
    assert m["details"]["confusion_matrix"]["labels"] == ["Risk", "No Risk"]


def test_too_few_feedback_rows_is_insufficient_data(service, engine_server) -> None:
    sub, _ = credit_setup(service, engine_server)
    service.monitors.configure(sub.id, "quality", {"min_feedback_data_size": 600, "max_rows_per_evaluation": None})
    m = service.monitors.run(sub.id, "quality", now=NOW)
    assert m["status"] == "insufficient_data" and m["values"] == {} and "600" in m["message"]


def test_adult_census_binary(service, engine_server) -> None:
    data = load_adult()
    features = [*ADULT_NUMERIC, *ADULT_CATEGORICAL]
    train, test = data.iloc[::2], data.iloc[1::2].iloc[:12_000]
    model = fit_classifier(train, features, ADULT_CATEGORICAL, "income")
    sub = subscribe_frame(
        service,
        engine_server.url,
        train,
        name="adult",
        problem_type="binary",
        label="income",
        features=features,
        categorical=ADULT_CATEGORICAL,
    )
    proba = model.predict_proba(test[features])
    pred = np.asarray(model.classes_, dtype=object)[proba.argmax(axis=1)]
    times = spread(len(test), T0, timedelta(hours=30), seed=2)
    ids = log_predictions(service, sub, test, features, pred, proba, times, prefix="a", batch=3000)
    log_feedback(service, sub, ids, test["income"].tolist(), times, batch=2500)
    service.monitors.configure(sub.id, "quality", {"max_rows_per_evaluation": None})
    m = service.monitors.run(sub.id, "quality", now=NOW)
    assert m["records"] == len(test)
    check(m["values"], sk_binary(test["income"].to_numpy(), pred, proba, sub.labels, ">50K"))


def test_multiclass_metrics_match_scikit_learn(service, engine_server) -> None:
    data = credit.load_german()
    data["LoanPurposeClass"] = credit.purpose_class(data["LoanPurpose"])
    cats = [c for c in credit.CATEGORICAL_FEATURES if c != "LoanPurpose"]
    model = fit_classifier(data.iloc[:600], credit.PURPOSE_FEATURES, cats, "LoanPurposeClass")
    sub = subscribe_frame(
        service, engine_server.url, data, name="purpose", problem_type="multiclass", label="LoanPurposeClass",
        features=credit.PURPOSE_FEATURES, categorical=cats,
    )  # fmt: skip
    test = data.iloc[600:]
    proba = model.predict_proba(test[credit.PURPOSE_FEATURES])
    pred = np.asarray(model.classes_, dtype=object)[proba.argmax(axis=1)]
    times = spread(len(test), T0, timedelta(hours=5), seed=4)
    ids = log_predictions(service, sub, test, credit.PURPOSE_FEATURES, pred, proba, times, prefix="m", batch=150)
    log_feedback(service, sub, ids, test["LoanPurposeClass"].tolist(), times, batch=70)
    service.monitors.configure(sub.id, "quality", {"max_rows_per_evaluation": None})
    m = service.monitors.run(sub.id, "quality", now=NOW)
    y = test["LoanPurposeClass"].to_numpy()
    labels = credit.PURPOSE_CLASSES
    mcm = skm.multilabel_confusion_matrix(y, pred, labels=labels)
    support = np.array([(y == c).sum() for c in labels])
    fpr = np.array([fp / (fp + tn) for (tn, fp), _ in (mcm[i] for i in range(len(labels)))])
    expected = {
        "accuracy": skm.accuracy_score(y, pred),
        "weighted_true_positive_rate": skm.recall_score(y, pred, average="weighted", labels=labels, zero_division=0),
        "weighted_recall": skm.recall_score(y, pred, average="weighted", labels=labels, zero_division=0),
        "weighted_precision": skm.precision_score(y, pred, average="weighted", labels=labels, zero_division=0),
        "weighted_f_measure": skm.f1_score(y, pred, average="weighted", labels=labels, zero_division=0),
        "weighted_false_positive_rate": float(np.dot(support / support.sum(), fpr)),
        "log_loss": skm.log_loss(y, proba, labels=labels),
    }
    check(m["values"], expected)
    assert m["values"]["weighted_true_positive_rate"] == pytest.approx(m["values"]["accuracy"], abs=EXACT)
    assert m["details"]["confusion_matrix"]["matrix"] == skm.confusion_matrix(y, pred, labels=labels).tolist()
    assert set(m["values"]) == set(qm.MULTICLASS)


def test_regression_metrics_match_scikit_learn(service, engine_server) -> None:
    data = credit.load_german()
    data["LoanAmount"] = data["LoanAmount"].astype(float)
    model = credit.train_amount_model(data.iloc[:600])
    sub = subscribe_frame(
        service, engine_server.url, data, name="amount", problem_type="regression", label="LoanAmount",
        features=credit.AMOUNT_FEATURES, categorical=credit.CATEGORICAL_FEATURES,
    )  # fmt: skip
    test = data.iloc[600:]
    pred = model.predict(test[credit.AMOUNT_FEATURES])
    times = spread(len(test), T0, timedelta(hours=5), seed=6)
    ids = log_predictions(service, sub, test, credit.AMOUNT_FEATURES, pred, None, times, prefix="g", batch=130)
    log_feedback(service, sub, ids, test["LoanAmount"].tolist(), times, batch=75)
    service.monitors.configure(sub.id, "quality", {"max_rows_per_evaluation": None})
    m = service.monitors.run(sub.id, "quality", now=NOW)
    y = test["LoanAmount"].to_numpy()
    expected = {
        "mean_absolute_error": skm.mean_absolute_error(y, pred),
        "mean_squared_error": skm.mean_squared_error(y, pred),
        "root_mean_squared_error": np.sqrt(skm.mean_squared_error(y, pred)),
        "r2": skm.r2_score(y, pred),
        "explained_variance": skm.explained_variance_score(y, pred),
    }
    for k, v in expected.items():
        assert m["values"][k] == pytest.approx(v, rel=EXACT), k
    assert m["thresholds"] == [{"metric": "r2", "type": "lower_limit", "value": 0.8}]


def test_partials_merge_like_one_pass_on_adult_census() -> None:
    """Sufficient statistics merged from 97 uneven chunks equal the one-pass statistics."""
    data = load_adult()
    features = [*ADULT_NUMERIC, *ADULT_CATEGORICAL]
    model = fit_classifier(data.iloc[::3], features, ADULT_CATEGORICAL, "income")
    proba = model.predict_proba(data[features])
    labels = list(model.classes_)
    y = np.searchsorted(labels, data["income"].to_numpy())
    p = proba.argmax(axis=1)
    whole = qm.ClassificationStats.of(y, p, proba, 2, 1, 10_000)
    cuts = np.sort(np.random.default_rng(0).choice(len(y), 96, replace=False))
    merged = qm.ClassificationStats.empty(2, 10_000)
    for part in np.split(np.arange(len(y)), cuts):
        merged = merged.merge(
            qm.ClassificationStats.from_bytes(
                qm.ClassificationStats.of(y[part], p[part], proba[part], 2, 1, 10_000).to_bytes()
            )
        )
    a, _ = qm.binary_metrics(whole, 1)
    b, _ = qm.binary_metrics(merged, 1)
    for k in a:
        assert a[k] == pytest.approx(b[k], abs=1e-12), k
    yb = (y == 1).astype(int)
    prec, rec, _ = skm.precision_recall_curve(yb, proba[:, 1])
    assert abs(a["area_under_roc"] - skm.roc_auc_score(yb, proba[:, 1])) < 1e-4
    assert abs(a["area_under_pr"] - skm.auc(rec, prec)) < 1e-3
    ry = data["age"].to_numpy(float)
    rp = ry * 0.9 + data["hours_per_week"].to_numpy(float) * 0.1 + 1e6  # a large offset tests numerical stability
    ry = ry + 1e6
    stats = qm.RegressionStats.empty()
    for part in np.split(np.arange(len(ry)), cuts):
        stats = stats.merge(qm.RegressionStats.from_bytes(qm.RegressionStats.of(ry[part], rp[part]).to_bytes()))
    mets = stats.metrics()
    assert mets["r2"] == pytest.approx(skm.r2_score(ry, rp), rel=1e-9)
    assert mets["explained_variance"] == pytest.approx(skm.explained_variance_score(ry, rp), rel=1e-9)
    assert mets["mean_absolute_error"] == pytest.approx(skm.mean_absolute_error(ry, rp), rel=1e-9)


def test_stored_partials_merge_into_each_other_like_one_pass() -> None:
    """A bucket's stored partials are merged into one another (the first loaded one is the
    accumulator), and the result is stored again by compaction: every count is added once."""
    data = credit.load_german()
    model = fit_classifier(data, credit.FEATURES, credit.CATEGORICAL_FEATURES, credit.LABEL)
    proba = model.predict_proba(data[credit.FEATURES])
    y = np.searchsorted(list(model.classes_), data[credit.LABEL].to_numpy())
    p = proba.argmax(axis=1)
    whole = qm.ClassificationStats.of(y, p, proba, 2, 1, 10_000)

    def stored(part: np.ndarray) -> qm.ClassificationStats:
        return qm.ClassificationStats.from_bytes(
            qm.ClassificationStats.of(y[part], p[part], proba[part], 2, 1, 10_000).to_bytes()
        )

    parts = np.array_split(np.arange(len(y)), 7)
    acc = stored(parts[0])
    for part in parts[1:]:
        acc = acc.merge(stored(part))
    again = qm.ClassificationStats.from_bytes(acc.to_bytes())  # compacted, then merged with a new partial
    assert int(again.confusion.sum()) == len(y)
    np.testing.assert_array_equal(again.confusion, whole.confusion)
    a, _ = qm.binary_metrics(whole, 1)
    b, _ = qm.binary_metrics(again, 1)
    for k in a:
        assert a[k] == pytest.approx(b[k], abs=1e-12), k
    first, rest = stored(parts[0]), stored(np.concatenate(parts[1:]))
    np.testing.assert_array_equal(first.merge(rest).confusion, whole.confusion)
