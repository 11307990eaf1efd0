"""The drift monitor end to end: configuration, partials at ingest, runs, the archive, alerts.

Real parts: the demo engine on a loopback port scores the training rows (German credit), and an
Adult census model is served the same way; both stores (SQLite, PostgreSQL) where it matters.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from scrutiny._server import BackgroundServer
from scrutiny.demo import credit
from scrutiny.demo.engine import EngineOptions, _Model, create_engine_app
from scrutiny.errors import InvalidInput
from scrutiny.monitors.builtin.drift import archive as archive_mod
from scrutiny.monitors.builtin.drift.data_drift import DataDriftSettings, evaluate
from scrutiny.monitors.builtin.drift.histograms import DriftHistograms
from scrutiny.monitors.builtin.drift.reference import DriftReference
from tests.support.drift import ADULT_CATEGORICAL, ADULT_FEATURES, ADULT_NUMERIC, adult, columns_of
from tests.support.monitors import T0, payload_records, spread, subscribe_credit, subscribe_frame

NOW = T0 + timedelta(days=2)


def _log(service, sub, frame, *, prefix="r", start=T0, hours=10, seed=0):
    frame = frame.reset_index(drop=True)
    recs = payload_records(
        frame, spread(len(frame), start, timedelta(hours=hours), seed=seed), [10] * len(frame), prefix=prefix
    )
    for i in range(0, len(recs), 1000):
        service.payloads.store(sub.id, recs[i : i + 1000])


@pytest.fixture
def engine():
    app = create_engine_app(EngineOptions())
    with BackgroundServer(app) as srv:
        yield srv, app


def test_clean_traffic_is_quiet_and_the_archive_is_learned_once(service, engine) -> None:
    srv, app = engine
    sub = subscribe_credit(service, srv.url)
    g = credit.load_german()
    _log(service, sub, g.sample(1500, replace=True, random_state=1))
    configured = service.monitors.configure(sub.id, "drift", {})
    # the detector is trained at configuration (as OpenScale does), not by the first run
    learned = configured["prepared"]["archive"]
    assert learned["built_now"] and learned["detector"]["train_rows"] == 700 and learned["version"] == 1
    m = service.monitors.run(sub.id, "drift", now=NOW)
    assert m["status"] == "finished", m["message"]
    v, d = m["values"], m["details"]
    assert v["drifted_features"] == 0 and m["violations"] == []
    assert d["feature_drift"]["rows"] == 1500
    assert abs(v["drift_magnitude"]) < 0.1 and v["data_drift_magnitude"] < 0.05
    lo, hi = d["accuracy_drift"]["drift_magnitude_interval"]
    assert lo <= v["drift_magnitude"] <= hi
    assert not d["archive"]["built_now"] and d["archive"]["version"] == 1
    # the training rows were scored in one internal call, never logged as payload
    assert app.state.stats["internal_calls"] == 1 and app.state.stats["rows"] == 1000
    with service.store.engine.connect() as conn:
        logged = conn.exec_driver_sql(f'SELECT COUNT(*) FROM "{sub.layout.payload_table}"').scalar_one()
    assert logged == 1500
    m2 = service.monitors.run(sub.id, "drift", now=NOW + timedelta(hours=1))
    assert m2["details"]["archive"]["built_now"] is False and app.state.stats["internal_calls"] == 1
    assert m2["records"] == 1000  # nothing new since the last run: the latest min_samples rows


def test_planted_drift_raises_alerts_and_lists_transactions(service, engine) -> None:
    srv, _ = engine
    sub = subscribe_credit(service, srv.url)
    g = credit.load_german()
    cur = g[g["LoanDuration"] >= 24].sample(1200, replace=True, random_state=2).reset_index(drop=True)
    cur.loc[:99, "Sex"] = "unknown"  # a category never seen in training
    cur.loc[100:149, "Age"] = 120  # beyond the training range
    _log(service, sub, cur)
    service.monitors.configure(sub.id, "drift", {})
    m = service.monitors.run(sub.id, "drift", now=NOW)
    d = m["details"]
    drifted = d["feature_drift"]["drifted_features"]
    assert drifted[:2] == ["LoanDuration", "LoanAmount"] and "Sex" in drifted
    assert {x["metric"] for x in m["violations"]} >= {"drifted_features", "data_drift_magnitude"}
    cons = d["data_consistency"]
    assert cons["constraints"]["domain:Sex"] == 100 and cons["constraints"]["range:Age"] == 50
    assert m["values"]["data_drift_magnitude"] == pytest.approx(150 / 1200)
    groups = d["transactions"]
    assert groups["both"]["count"] + groups["consistency_only"]["count"] == 150
    bad = set(groups["both"]["scoring_ids"]) | set(groups["consistency_only"]["scoring_ids"])
    assert bad == {f"r{i}-1" for i in range(150)}
    top = next(c for c in groups["clusters"] if c["kind"] == "consistency")
    assert top["constraints"] == ["domain:Sex"] and top["rows"] == 100
    assert top["features"][0] == {"feature": "Sex", "js_distance": 1.0, "impact": "large"}
    alerts = service.monitors.alerts(subscription_id=sub.id)
    assert {a["metric"] for a in alerts} >= {"drifted_features", "data_drift_magnitude"}


def test_feature_drift_from_partials_equals_one_pass_over_the_rows(service, engine, backend) -> None:
    """Rows logged before and after enabling the monitor (backfill, then ingest partials), in
    buckets over 30 hours, cut by the window: the merged partials equal one histogram of the rows."""
    srv, _ = engine
    sub = subscribe_credit(service, srv.url)
    g = credit.load_german()
    before = g.sample(700, random_state=3)
    after = g[g["Age"] > 40].sample(900, replace=True, random_state=4)
    _log(service, sub, before, prefix="b", start=T0, hours=12)
    service.monitors.configure(sub.id, "drift", {"enable_model_drift": False, "enable_data_drift": False})
    _log(service, sub, after, prefix="a", start=T0 + timedelta(hours=12), hours=18, seed=1)
    m = service.monitors.run(sub.id, "drift", now=NOW)
    ref = DriftReference.from_statistics(service.subscriptions.get(sub.id).training_statistics)
    every = pd.concat([before, after])
    hist = DriftHistograms.from_columns(
        ref, columns_of(every, credit.NUMERIC_FEATURES, credit.CATEGORICAL_FEATURES), len(every)
    )
    direct = evaluate(ref, hist, DataDriftSettings()).to_dict()
    assert m["details"]["feature_drift"] == direct
    assert "Age" in direct["drifted_features"]
    # a later run covers only the rows since (at least min_samples): 1000 newest
    m2 = service.monitors.run(sub.id, "drift", now=NOW + timedelta(hours=3))
    assert m2["details"]["feature_drift"]["rows"] == 1000


def test_too_few_rows_is_insufficient_data(service, engine) -> None:
    srv, _ = engine
    sub = subscribe_credit(service, srv.url)
    _log(service, sub, credit.load_german().iloc[:200])
    service.monitors.configure(sub.id, "drift", {})
    m = service.monitors.run(sub.id, "drift", now=NOW)
    assert m["status"] == "insufficient_data" and "min_samples" in m["message"]
    service.monitors.configure(sub.id, "drift", {"min_samples": 150, "max_samples": 150})
    m = service.monitors.run(sub.id, "drift", now=NOW)
    assert m["status"] == "finished" and m["details"]["accuracy_drift"]["analysed"] == 150


def test_configuration_is_validated(service, engine) -> None:
    srv, _ = engine
    sub = subscribe_credit(service, srv.url)
    bad = [
        ({"features": ["Age", "Salary"]}, "features[1]"),
        (
            {"thresholds": [{"metric": "js_distance.Salary", "type": "upper_limit", "value": 0.2}]},
            "thresholds[0].metric",
        ),
        ({"thresholds": [{"metric": "drift_magnitude", "type": "lower_limit", "value": 0.2}]}, "thresholds[0].type"),
        ({"drift_threshold": 2}, "drift_threshold"),
        ({"min_samples": 500, "max_samples": 100}, None),
        ({"surprise": 1}, "surprise"),
    ]
    for body, field in bad:
        with pytest.raises(InvalidInput) as err:
            service.monitors.configure(sub.id, "drift", body)
        if field:
            assert err.value.context.get("field") == field, (body, err.value.to_dict())


def test_the_archive_is_rebuilt_when_training_data_changes_and_is_sealed(service, engine) -> None:
    srv, app = engine
    sub = subscribe_credit(service, srv.url)
    first, built = archive_mod.ensure(service, sub)
    assert built and first.version == 1
    again, built = archive_mod.ensure(service, service.subscriptions.get(sub.id))
    assert not built and again.version == 1
    archive_mod._cache.clear()
    stored, built = archive_mod.ensure(service, service.subscriptions.get(sub.id))
    assert not built and stored.version == 1  # from the store, not relearned
    g = credit.load_german()
    service.subscriptions.set_training_data(sub.id, g.iloc[:800])
    newer, built = archive_mod.ensure(service, service.subscriptions.get(sub.id))
    assert built and newer.version == 2 and newer.summary["training_rows"] == 800
    assert app.state.stats["internal_calls"] == 2
    # a row this server did not seal is refused, never unpickled
    t = archive_mod.drift_archives
    with service.store.write() as conn:
        conn.execute(t.update().where(t.c.subscription_id == sub.id).values(archive=b"gAAAAtampered"))
    archive_mod._cache.clear()
    with pytest.raises(RuntimeError, match="cannot be decrypted"):
        archive_mod.load(service, sub.id)


def test_an_unreachable_engine_degrades_to_what_needs_no_scoring(service, monkeypatch) -> None:
    """The engine is down when drift is configured: feature drift and consistency still run, the
    accuracy part says why it is missing, and a later run retries the detector."""
    from tests.support.monitors import PROPS

    binding, _ = service.bindings.create(name="down", engine_type="custom", credentials={"url": "http://127.0.0.1:9"})
    sub = service.subscriptions.create(
        binding_id=binding.id,
        deployment={"name": "credit", "scoring_url": "http://127.0.0.1:9/score"},
        asset_properties={**PROPS, "labels": credit.LABELS},
        training_frame=credit.load_german(),
    )
    _log(service, sub, credit.load_german().sample(1100, replace=True, random_state=6))
    configured = service.monitors.configure(sub.id, "drift", {})
    assert "scoring the training data failed" in configured["prepared"]["archive"]["detector_error"]
    m = service.monitors.run(sub.id, "drift", now=NOW)
    assert m["status"] == "finished", m["message"]
    assert m["values"]["drifted_features"] == 0 and "data_drift_magnitude" in m["values"]
    assert "drift_magnitude" not in m["values"]
    assert "scoring the training data failed" in m["details"]["accuracy_drift"]["error"]
    assert m["details"]["archive"]["built_now"] is False  # not retried within 15 minutes
    monkeypatch.setattr(archive_mod, "RETRY_AFTER", timedelta(0))
    m = service.monitors.run(sub.id, "drift", now=NOW + timedelta(hours=1))
    assert m["details"]["archive"]["built_now"] is True and m["details"]["archive"]["version"] == 2


def test_regression_models_get_consistency_but_no_accuracy_drift(service, engine) -> None:
    srv, _ = engine
    g = credit.load_german()
    sub = subscribe_frame(
        service,
        srv.url,
        g,
        name="credit-amount",
        problem_type="regression",
        label="LoanAmount",
        features=credit.AMOUNT_FEATURES,
        categorical=credit.CATEGORICAL_FEATURES,
    )
    model = credit.train_amount_model(g)
    cur = g.sample(1100, replace=True, random_state=5).reset_index(drop=True)
    pred = model.predict(cur[credit.AMOUNT_FEATURES])
    from tests.support.monitors import log_predictions

    log_predictions(service, sub, cur, credit.AMOUNT_FEATURES, pred, None, spread(1100, T0, timedelta(hours=5)), "g")
    service.monitors.configure(sub.id, "drift", {})
    m = service.monitors.run(sub.id, "drift", now=NOW)
    assert m["status"] == "finished", m["message"]
    assert "drift_magnitude" not in m["values"] and m["values"]["drifted_features"] == 0
    assert m["values"]["data_drift_magnitude"] < 0.05
    assert "detector" not in m["details"]["archive"]


# -- accuracy drift on Adult census, with the model served on loopback ------------------------------
@pytest.fixture(scope="module")
def adult_engine():
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    data, test = adult()
    train = data.iloc[::2].reset_index(drop=True)  # 16,281 rows
    cats = Pipeline(
        [("fill", SimpleImputer(strategy="constant", fill_value="?")), ("hot", OneHotEncoder(handle_unknown="ignore"))]
    )
    pre = ColumnTransformer([("cat", cats, ADULT_CATEGORICAL), ("num", StandardScaler(), ADULT_NUMERIC)])
    model = Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=3000))]).fit(
        train[ADULT_FEATURES], train["income"]
    )
    served = {"adult": _Model("adult", "binary", ADULT_FEATURES, model, sorted(model.classes_), label_column="income")}
    with BackgroundServer(create_engine_app(EngineOptions(), models=served)) as srv:
        yield srv, model, train, test


def _log_adult(service, sub, model, frame, prefix):
    from tests.support.monitors import log_predictions

    proba = model.predict_proba(frame[ADULT_FEATURES])
    pred = np.asarray(model.classes_, dtype=object)[proba.argmax(axis=1)]
    frame = frame.astype(object).where(frame.notna(), None)
    log_predictions(
        service, sub, frame, ADULT_FEATURES, pred, proba, spread(len(frame), T0, timedelta(hours=8)), prefix, batch=2500
    )
    return float((pred == frame["income"].to_numpy(dtype=object)).mean())


@pytest.mark.parametrize("region", ["clean", "married 35-55"])
def test_accuracy_drift_on_adult_census(service, adult_engine, region) -> None:
    srv, model, train, test = adult_engine
    sub = subscribe_frame(
        service,
        srv.url,
        train,
        name="adult",
        problem_type="binary",
        label="income",
        features=ADULT_FEATURES,
        categorical=ADULT_CATEGORICAL,
    )
    if region == "clean":
        traffic = test.sample(3000, random_state=7)
    else:  # a shifted region where the model is wrong more often
        traffic = test[test["age"].between(35, 55) & (test["marital_status"] == "Married-civ-spouse")]
        traffic = traffic.sample(3000, random_state=7)
    true_accuracy = _log_adult(service, sub, model, traffic, prefix="t")
    service.monitors.configure(sub.id, "drift", {"min_samples": 3000})
    m = service.monitors.run(sub.id, "drift", now=NOW)
    assert m["status"] == "finished", m["message"]
    acc = m["details"]["accuracy_drift"]
    base = acc["base_accuracy"]
    true_drop = base - true_accuracy
    lo, _ = acc["drift_magnitude_interval"]
    violated = "drift_magnitude" in {x["metric"] for x in m["violations"]}
    if region == "clean":
        assert abs(true_drop) < 0.02
        assert abs(acc["drift_magnitude"]) < 0.03 and not violated
        assert lo < 0.03
    else:
        assert true_drop > 0.1  # the planted drop is real
        assert acc["drift_magnitude"] >= 0.1 and violated
        assert abs(acc["drift_magnitude"] - true_drop) < 0.06
        assert abs(acc["expected_accuracy"] - true_accuracy) < 0.03
        assert m["details"]["transactions"]["clusters"][0]["kind"] == "accuracy"
    assert m["details"]["archive"]["detector"]["detector_auc"] > 0.8


def test_training_rows_survive_the_store_round_trip_for_constraints(service, adult_engine) -> None:
    """Constraints learned from the rows read back from the data mart accept the training rows
    themselves (types as live records have them: no false 'unseen category' from a str/int mix)."""
    srv, _, train, _ = adult_engine
    sub = subscribe_frame(
        service, srv.url, train, name="adult", problem_type="binary", label="income",
        features=ADULT_FEATURES, categorical=ADULT_CATEGORICAL,
    )  # fmt: skip
    arch, _ = archive_mod.ensure(service, sub, train_detector=False)
    cols = columns_of(train, ADULT_NUMERIC, ADULT_CATEGORICAL)
    check = arch.consistency.check(cols, len(train))
    assert check.drifted_count == 0
    with service.store.engine.connect() as conn:
        n = conn.execute(sa.select(sa.func.count()).select_from(archive_mod.drift_archives)).scalar_one()
    assert n == 1


def test_the_archive_over_rest(client, service, engine) -> None:
    srv, app = engine
    sub = subscribe_credit(service, srv.url)
    r = client.get(f"/v1/subscriptions/{sub.id}/monitors/drift/archive")
    assert r.status_code == 404 and "configure the drift monitor" in r.json()["error"]["message"]
    service.monitors.configure(sub.id, "drift", {})
    r = client.get(f"/v1/subscriptions/{sub.id}/monitors/drift/archive")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["version"] == 1 and body["current"] is True
    assert body["summary"]["detector"]["train_rows"] == 700
    rules = {c["id"]: c for c in body["constraints"]}
    assert rules["range:Age"]["min"] == 19 and rules["range:Age"]["rule"] == "Age within [19, 75]"
    r = client.post(f"/v1/subscriptions/{sub.id}/monitors/drift/archive")
    assert r.status_code == 201 and r.json()["version"] == 2
    assert app.state.stats["internal_calls"] == 2
    assert client.get("/v1/subscriptions/nope/monitors/drift/archive").status_code == 404
