"""Fairness runs on a real store (SQLite and PostgreSQL) with payload scored by the demo engine:
window rule, database counts equal to ingest-time counts, training rates, perturbed twins
scored through the engine without being logged, feedback metrics against AIF360."""

from __future__ import annotations

import logging
from datetime import timedelta

import httpx
import numpy as np
import pandas as pd
import pytest

from scrutiny.demo import credit
from scrutiny.ingest import writer
from scrutiny.monitors.fairness import sql
from scrutiny.monitors.fairness.counting import FairnessCounts, count_batch, count_frame
from scrutiny.monitors.fairness.run import FINISHED, INSUFFICIENT, configure, run
from tests.fairness.fairness_data import T0, log_frame, subscribe_credit

fairlearn_metrics = pytest.importorskip("fairlearn.metrics")
logging.getLogger().setLevel(logging.ERROR)

TOL = 1e-9
CONFIG = {
    "features": [
        {"feature": "Sex", "majority": ["male"], "minority": ["female"], "threshold": 0.95},
        {"feature": "Age", "majority": [[26, 75]], "minority": [[19, 25]], "threshold": 0.95},
    ],
    "favourable_class": ["No Risk"],
    "unfavourable_class": ["Risk"],
    "min_records": 100,
}


@pytest.fixture
def sub(service, engine_server):  # type: ignore[no-untyped-def]
    return subscribe_credit(service, engine_server.url)


@pytest.fixture(scope="module")
def applicants() -> pd.DataFrame:
    return credit.load_german()


def di(pred: pd.Series, monitored: pd.Series, reference: pd.Series) -> float:
    y = pred == "No Risk"
    both = monitored | reference
    groups = pd.Series(np.where(monitored, "m", "r"), index=y.index)[both]
    r = fairlearn_metrics.MetricFrame(
        metrics=fairlearn_metrics.selection_rate, y_true=y[both], y_pred=y[both], sensitive_features=groups
    ).by_group
    return float(r["m"] / r["r"])


def test_run_on_logged_payload_matches_fairlearn(service, sub, applicants: pd.DataFrame) -> None:  # type: ignore[no-untyped-def]
    pred = pd.Series(log_frame(service, sub, applicants))
    spec = configure(service, sub.id, CONFIG)
    result = run(service, sub, spec, until=T0 + timedelta(days=1))
    assert result.status == FINISHED
    assert result.window.rows == 1000 and result.window.new_rows == 1000
    values = result.values()
    assert values["fairness_value.Sex"] == pytest.approx(
        di(pred, applicants["Sex"] == "female", applicants["Sex"] == "male"), abs=TOL
    )
    assert values["fairness_value.Age"] == pytest.approx(
        di(pred, applicants["Age"].between(19, 25), applicants["Age"].between(26, 75)), abs=TOL
    )
    # thresholds, violations and the v1 FairnessMetrics rows agree with the values
    assert result.thresholds()["fairness_value.Sex"] == {"lower_limit": 0.95}
    flagged = {v["feature"] for v in result.violations()}
    assert flagged == {a for a in ("Sex", "Age") if values[f"fairness_value.{a}"] < 0.95}
    d = result.details()
    assert d["window"]["records"] == 1000
    assert d["first_record"].startswith("2026-03-01T08:00:00") and d["last_record"].startswith("2026-03-01T08:16:39")
    rows = [r for r in d["metric_rows"] if r["feature"] == "Sex"]
    assert {r["feature_value"] for r in rows} == {"female", "male"}
    female = next(r for r in rows if r["feature_value"] == "female")
    assert female["fairness_value"] == pytest.approx(values["fairness_value.Sex"], abs=TOL)
    assert female["fairness_fav_class"] == pytest.approx(
        100 * (pred[applicants["Sex"] == "female"] == "No Risk").mean()
    )
    # the training-data rates (labels, not predictions) are there for comparison
    training = d["attributes"]["Sex"]["training"]
    labels = applicants[credit.LABEL] == "No Risk"
    assert training["monitored"] == pytest.approx(labels[applicants["Sex"] == "female"].mean(), abs=TOL)
    assert training["reference"] == pytest.approx(labels[applicants["Sex"] == "male"].mean(), abs=TOL)


def test_database_counts_equal_the_ingest_listener_counts(service, sub, applicants: pd.DataFrame) -> None:  # type: ignore[no-untyped-def]
    spec = configure(service, sub.id, CONFIG)
    seen: list[FairnessCounts] = []

    def listener(conn, subscription, kind, batch) -> None:  # type: ignore[no-untyped-def]
        if subscription.id == sub.id and kind == writer.PAYLOAD:
            seen.append(count_batch(batch, spec))

    writer.on_write(listener)
    try:
        for part in range(4):  # four separate writes: four partial results
            chunk = applicants.iloc[part * 250 : (part + 1) * 250]
            log_frame(service, sub, chunk, start=T0 + timedelta(hours=part))
    finally:
        writer.remove_listener(listener)
    assert len(seen) == 4
    merged = seen[0]
    for part in seen[1:]:
        merged = merged.merge(part)
    merged = FairnessCounts.from_dict(merged.to_dict())  # as a stored bucket would come back
    t = sql.record_table(sub)
    with service.store.engine.connect() as conn:
        in_db = sql.count_query(conn, t, spec, [])
    assert merged.rows == in_db.rows == 1000
    for name in ("Sex", "Age"):
        assert merged.attributes[name] == in_db.attributes[name]
    assert merged.first == in_db.first and merged.last == in_db.last
    # a run given the stored counts for the new rows gives exactly the database's answer
    until = T0 + timedelta(days=1)
    a = run(service, sub, spec, until=until, new_counts=merged)
    b = run(service, sub, spec, until=until)
    assert a.values() == b.values()


def test_window_takes_new_rows_and_backfills_to_min_records(service, sub, applicants: pd.DataFrame) -> None:  # type: ignore[no-untyped-def]
    pred = pd.Series(log_frame(service, sub, applicants))  # row i stamped T0 + i seconds
    spec = configure(service, sub.id, {**CONFIG, "min_records": 300})
    since = T0 + timedelta(seconds=899)  # rows 900..999 are new
    result = run(service, sub, spec, since=since, until=T0 + timedelta(days=1))
    w = result.window
    assert (w.new_rows, w.backfill_rows, w.rows) == (100, 200, 300)
    last = slice(700, 1000)
    expected = di(pred[last], (applicants["Sex"] == "female")[last], (applicants["Sex"] == "male")[last])
    assert result.values()["fairness_value.Sex"] == pytest.approx(expected, abs=TOL)
    assert result.details()["first_record"].startswith("2026-03-01T08:11:40")  # row 700

    # enough new rows: no backfill
    result = run(service, sub, spec, since=T0 + timedelta(seconds=499), until=T0 + timedelta(days=1))
    assert (result.window.new_rows, result.window.backfill_rows) == (500, 0)
    # more than the table holds: insufficient data, reported with the table's size
    spec = configure(service, sub.id, {**CONFIG, "min_records": 5000})
    result = run(service, sub, spec, since=since)
    assert result.status == INSUFFICIENT and result.window.table_rows == 1000
    assert "insufficient" in result.status and "holds 1000 records" in result.details()["reason"]
    assert result.values() == {} and result.violations() == []


def test_backfill_breaks_timestamp_ties_by_row_id(service, sub, applicants: pd.DataFrame) -> None:  # type: ignore[no-untyped-def]
    # 200 rows in two records of 100 rows each, both stamped at the same instant
    chunk = applicants.iloc[:200]
    log_frame(service, sub, chunk, rows_per_record=100, step_seconds=0)
    spec = configure(service, sub.id, {**CONFIG, "min_records": 150})
    result = run(service, sub, spec, since=T0, until=T0 + timedelta(days=1))
    assert (result.window.new_rows, result.window.backfill_rows) == (0, 150)
    t = sql.record_table(sub)
    with service.store.engine.connect() as conn:
        ids = [r[0] for r in conn.execute(t.select().with_only_columns(t.c.scoring_id))]
        frame = pd.read_sql_query(t.select(), conn)
    chosen = sorted(ids, reverse=True)[:150]
    window_rows = frame[frame["scoring_id"].isin(chosen)]
    expected = count_frame(window_rows, spec)
    assert result.counts is not None
    assert result.counts.attributes["Sex"] == expected.attributes["Sex"]
    assert result.counts.rows == 150


def test_perturbed_twins_are_scored_internally_and_not_logged(
    service, sub, engine_server, applicants: pd.DataFrame
) -> None:  # type: ignore[no-untyped-def]
    log_frame(service, sub, applicants.iloc[:300])
    spec = configure(
        service,
        sub.id,
        {**CONFIG, "perturbation": {"enabled": True, "max_records": 200, "batch_rows": 64, "max_listed": 5}},
    )
    stats = httpx.get(f"{engine_server.url}/_stats").json()
    before_internal = stats.get("internal_calls", 0)
    result = run(service, sub, spec, until=T0 + timedelta(days=1))
    after = httpx.get(f"{engine_server.url}/_stats").json()
    p = result.perturbation
    assert p is not None and p.error is None and p.records == 200
    sex, age = p.attributes["Sex"], p.attributes["Age"]
    assert sex.perturbed_records == 200  # every row is male or female
    assert age.perturbed_records == 200  # every age in 19..75 is in a group
    assert p.scored_rows == 400 and p.scoring_calls == int(np.ceil(400 / 64))
    assert after["internal_calls"] - before_internal == p.scoring_calls
    assert service.payloads.read(sub.id)[0] == 300  # the twins were never logged

    # oracle for Sex (the other group has one value, so each twin is known): the 200 most recent
    # rows plus their flipped twins, scored by the engine in one separate call
    t = sql.record_table(sub)
    with service.store.engine.connect() as conn:
        frame = pd.read_sql_query(
            t.select().order_by(t.c.scoring_timestamp.desc(), t.c.scoring_id.desc()).limit(200), conn
        )
    twins = frame.copy()
    twins["Sex"] = np.where(frame["Sex"] == "female", "male", "female")
    from tests.fairness.fairness_data import score_frame

    fields, values = score_frame(service, sub, twins)
    twins["prediction"] = [v[fields.index("prediction")] for v in values]
    both = pd.concat([frame, twins], ignore_index=True)
    expected = di(both["prediction"], both["Sex"] == "female", both["Sex"] == "male")
    assert result.perturbed["Sex"].fairness_value == pytest.approx(expected, abs=TOL)
    assert result.values()["fairness_value.Sex"] == pytest.approx(expected, abs=TOL)  # the headline
    # biased pairs: female unfavourable while her male twin is favourable, or the reverse
    female = frame["Sex"] == "female"
    fav_o, fav_t = frame["prediction"] == "No Risk", twins["prediction"] == "No Risk"
    biased = (female & ~fav_o & fav_t) | (~female & fav_o & ~fav_t)
    assert sex.biased_transactions == int(biased.sum())
    assert len(sex.listed) == min(5, sex.biased_transactions)
    for item in sex.listed:
        row = frame.index[frame["scoring_id"] == item["scoring_id"]][0]
        assert item["original"]["Sex"] == frame.loc[row, "Sex"] and item["altered"]["Sex"] == twins.loc[row, "Sex"]
        assert item["altered"]["outcome"] == twins.loc[row, "prediction"]
    # age twins draw training ages of the other group, seeded by row id: the same every run
    again = run(service, sub, spec, until=T0 + timedelta(days=1))
    assert again.perturbation.to_dict() == p.to_dict()
    assert all(19 <= i["altered"]["Age"] <= 25 or 26 <= i["altered"]["Age"] <= 75 for i in age.listed)
    ages = {int(a) for a in applicants["Age"]}
    assert all(i["altered"]["Age"] in ages for i in age.listed)


def test_an_engine_failure_keeps_the_payload_result(service, sub, applicants: pd.DataFrame) -> None:  # type: ignore[no-untyped-def]
    from scrutiny.engines.errors import EngineError

    log_frame(service, sub, applicants.iloc[:150])
    spec = configure(service, sub.id, {**CONFIG, "perturbation": True})

    def broken(request):  # type: ignore[no-untyped-def]
        raise EngineError("connection refused", engine="custom", binding="demo engine", deployment="credit-risk")

    result = run(service, sub, spec, until=T0 + timedelta(days=1), scorer=broken)
    assert result.status == FINISHED
    assert "connection refused" in result.perturbation.error
    assert result.perturbed == {}
    plain = run(service, sub, configure(service, sub.id, CONFIG), until=T0 + timedelta(days=1))
    assert result.values() == plain.values()


def test_feedback_metrics_match_aif360(service, sub, applicants: pd.DataFrame) -> None:  # type: ignore[no-untyped-def]
    from aif360.datasets import BinaryLabelDataset
    from aif360.metrics import ClassificationMetric

    from scrutiny.ingest.batch import RecordBatch
    from scrutiny.schema import Kind

    log_frame(service, sub, applicants.iloc[:120])
    pred = credit.train_credit_model().predict(applicants[credit.FEATURES])
    n = len(applicants)
    columns = {
        c: applicants[c].to_numpy(dtype=np.float64)
        if c in credit.NUMERIC_FEATURES
        else applicants[c].astype(object).to_numpy()
        for c in credit.FEATURES
    }
    columns[credit.LABEL] = applicants[credit.LABEL].astype(object).to_numpy()
    columns["prediction"] = np.asarray(pred, dtype=object)
    kinds = {c.name: c.kind for c in sub.layout.features} | {credit.LABEL: Kind.STR, "prediction": Kind.STR}
    batch = RecordBatch(
        ids=np.array([f"fb-{i}" for i in range(n)], dtype=object),
        timestamps=np.full(n, np.datetime64("2026-03-01T09:00:00", "us")),
        columns=columns,
        kinds=kinds,
    )
    writer.write_batch(service.store, sub, batch, kind=writer.FEEDBACK)
    spec = configure(service, sub.id, CONFIG)
    result = run(service, sub, spec, until=T0 + timedelta(days=1))
    assert result.feedback is not None

    def aif(reference: np.ndarray) -> ClassificationMetric:
        truth = pd.DataFrame(
            {"y": (applicants[credit.LABEL] == "No Risk").astype(float), "ref": reference.astype(float)}
        )
        guess = truth.assign(y=(pd.Series(pred) == "No Risk").astype(float))
        kw = {
            "label_names": ["y"],
            "protected_attribute_names": ["ref"],
            "favorable_label": 1.0,
            "unfavorable_label": 0.0,
        }
        return ClassificationMetric(
            BinaryLabelDataset(df=truth, **kw),
            BinaryLabelDataset(df=guess, **kw),
            unprivileged_groups=[{"ref": 0.0}],
            privileged_groups=[{"ref": 1.0}],
        )

    m = aif((applicants["Sex"] == "male").to_numpy())
    got = result.feedback["Sex"]
    assert got["records"] == n
    for name in (
        "average_odds_difference",
        "average_abs_odds_difference",
        "false_negative_rate_difference",
        "false_positive_rate_difference",
        "false_discovery_rate_difference",
        "false_omission_rate_difference",
        "error_rate_difference",
    ):
        assert got[name] == pytest.approx(float(getattr(m, name)()), abs=TOL), name
    assert result.values()["average_odds_difference.Sex"] == got["average_odds_difference"]
