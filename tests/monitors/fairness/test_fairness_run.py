"""The fairness monitor run by the framework on a real store (SQLite and PostgreSQL), with payload
scored by the demo engine: values against fairlearn, partials kept at ingest equal to counts
rebuilt from the table and to the database's own GROUP BY, the window rule, perturbed twins
scored through the engine without being logged, feedback metrics against AIF360."""

from __future__ import annotations

import logging
from datetime import timedelta

import httpx
import numpy as np
import pandas as pd
import pytest

from scrutiny.demo import credit
from scrutiny.monitors import registry
from scrutiny.monitors.builtin.fairness import sql
from scrutiny.monitors.builtin.fairness.evaluate import evaluate_attribute
from scrutiny.monitors.builtin.fairness.resolve import resolve
from scrutiny.monitors.run.reader import read_all
from tests.support.fairness import T0, log_frame, score_frame, subscribe_credit

fairlearn_metrics = pytest.importorskip("fairlearn.metrics")
logging.getLogger().setLevel(logging.ERROR)

TOL = 1e-9
NOW = T0 + timedelta(days=1)
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
    y = pd.Series(np.asarray(pred) == "No Risk", index=monitored.index)
    both = monitored | reference
    groups = pd.Series(np.where(monitored, "m", "r"), index=y.index)[both]
    r = fairlearn_metrics.MetricFrame(
        metrics=fairlearn_metrics.selection_rate, y_true=y[both], y_pred=y[both], sensitive_features=groups
    ).by_group
    return float(r["m"] / r["r"])


def test_run_on_logged_payload_matches_fairlearn(service, sub, applicants: pd.DataFrame) -> None:  # type: ignore[no-untyped-def]
    service.monitors.configure(sub.id, "fairness", CONFIG)
    pred = pd.Series(log_frame(service, sub, applicants))
    m = service.monitors.run(sub.id, "fairness", now=NOW)
    assert m["status"] == "finished", m
    assert m["records"] == 1000
    values = m["values"]
    sex = applicants["Sex"]
    age = applicants["Age"]
    assert values["fairness_value.Sex"] == pytest.approx(di(pred, sex == "female", sex == "male"), abs=TOL)
    assert values["fairness_value.Age"] == pytest.approx(di(pred, age.between(19, 25), age.between(26, 75)), abs=TOL)
    fav = pred == "No Risk"
    assert values["monitored_favourable_rate.Sex"] == pytest.approx(fav[sex == "female"].mean(), abs=TOL)
    assert values["statistical_parity_difference.Sex"] == pytest.approx(
        fav[sex == "female"].mean() - fav[sex == "male"].mean(), abs=TOL
    )
    # v1 per-attribute thresholds became limits; violations are the values below them
    limits = {t["metric"]: t["value"] for t in m["thresholds"] if t["metric"].startswith("fairness_value.")}
    assert limits == {"fairness_value.Sex": 0.95, "fairness_value.Age": 0.95}
    flagged = {v["metric"] for v in m["violations"]}
    assert flagged == {k for k in limits if values[k] < 0.95}
    d = m["details"]
    assert d["view"] == "payload"
    rows = [r for r in d["fairness_metrics"] if r["feature"] == "Sex"]
    assert {r["feature_value"] for r in rows} == {"female", "male"}
    female = next(r for r in rows if r["feature_value"] == "female")
    assert female["fairness_value"] == pytest.approx(values["fairness_value.Sex"], abs=TOL)
    assert female["fairness_fav_class"] == pytest.approx(100 * fav[sex == "female"].mean())
    # training-data rates (labels, not predictions) are there for comparison
    training = d["attributes"]["Sex"]["training"]
    labels = applicants[credit.LABEL] == "No Risk"
    assert training["monitored"] == pytest.approx(labels[sex == "female"].mean(), abs=TOL)
    assert training["reference"] == pytest.approx(labels[sex == "male"].mean(), abs=TOL)
    # the source of bias is the age with the lowest rate among those with 10+ records
    young = pd.DataFrame({"age": age, "fav": fav})[age.between(19, 25)]
    per_age = young.groupby("age")["fav"].agg(["mean", "size"])
    lowest = per_age[per_age["size"] >= 10]["mean"].min()
    assert d["attributes"]["Age"]["payload"]["source_of_bias"]["favourable_rate"] == pytest.approx(lowest, abs=TOL)


def test_ingest_partials_equal_rebuilt_counts_and_the_database_group_by(service, sub, applicants: pd.DataFrame) -> None:  # type: ignore[no-untyped-def]
    service.monitors.configure(sub.id, "fairness", CONFIG)  # partials kept from the first row on
    for part in range(4):
        log_frame(service, sub, applicants.iloc[part * 250 : (part + 1) * 250], start=T0 + timedelta(hours=part))
    at_ingest = service.monitors.run(sub.id, "fairness", now=NOW)
    # a new plan (a numeric range moved) rebuilds the partials from the stored rows
    moved = {**CONFIG, "features": [CONFIG["features"][0], {**CONFIG["features"][1], "majority": [[26, 60]]}]}
    service.monitors.configure(sub.id, "fairness", moved)
    service.monitors.configure(sub.id, "fairness", CONFIG)
    rebuilt = service.monitors.run(sub.id, "fairness", now=NOW, start=T0)  # every row again
    assert rebuilt["values"] == at_ingest["values"]
    # the database's own aggregation gives the same counts as the monitor's build on the rows
    mon = registry.get("fairness")
    spec = resolve(CONFIG, service.subscriptions.get(sub.id))
    plan = mon.load_plan(mon.plan(service.subscriptions.get(sub.id), mon.parse_config(CONFIG)))
    t = sql.record_table(sub)
    with service.store.engine.connect() as conn:
        in_db = sql.count_query(conn, t, spec, [])
        rows = read_all(conn, sub, "payload", columns=mon.columns(plan))
    built = mon.build(plan, rows)
    assert in_db.rows == built.rows == 1000
    for name in ("Sex", "Age"):
        assert in_db.attributes[name] == built.attributes[name]
        r = evaluate_attribute(in_db.attributes[name], spec.attribute(name), spec.outcome)
        assert r.fairness_value == pytest.approx(at_ingest["values"][f"fairness_value.{name}"], abs=TOL)
    assert in_db.first == built.first and in_db.last == built.last
    # backfill on PostgreSQL: the database's per-hour counts equal the monitor's build per hour
    with service.store.engine.connect() as conn:
        buckets = mon.partials_in_database(conn, service.subscriptions.get(sub.id), plan)
    if service.store.engine.dialect.name != "postgresql":
        assert buckets is None  # SQLite: the framework reads the rows back and builds
        return
    assert [b for b, *_ in buckets] == [np.datetime64(T0.replace(tzinfo=None), "h") + i for i in range(4)]
    for i, (_, part, n, lo, hi) in enumerate(buckets):
        hour = rows.take((rows.timestamps >= lo) & (rows.timestamps <= hi))
        assert n == len(hour) == 250 and lo == hour.timestamps.min() and hi == hour.timestamps.max(), i
        own = mon.build(plan, hour)
        for name in ("Sex", "Age"):
            assert part.attributes[name] == own.attributes[name]


def test_window_takes_new_rows_and_backfills_to_min_records(service, sub, applicants: pd.DataFrame) -> None:  # type: ignore[no-untyped-def]
    service.monitors.configure(sub.id, "fairness", {**CONFIG, "min_records": 300})
    first = applicants.iloc[:900]
    later = applicants.iloc[900:]
    pred = log_frame(service, sub, first)  # stamped T0 + i s
    m1 = service.monitors.run(sub.id, "fairness", now=T0 + timedelta(hours=2))
    assert m1["records"] == 900
    pred += log_frame(service, sub, later, start=T0 + timedelta(hours=3))  # 100 new rows
    m2 = service.monitors.run(sub.id, "fairness", now=T0 + timedelta(hours=4))
    assert m2["records"] == 300  # 100 new + the 200 most recent earlier ones
    p = pd.Series(pred)
    last = slice(700, 1000)
    sex = applicants["Sex"]
    expected = di(p[last], (sex == "female")[last], (sex == "male")[last])
    assert m2["values"]["fairness_value.Sex"] == pytest.approx(expected, abs=TOL)
    # no new rows: the same most recent rows are judged, the value repeats
    m3 = service.monitors.run(sub.id, "fairness", now=T0 + timedelta(hours=5))
    assert m3["records"] == 300 and m3["values"] == m2["values"]
    # more than the table holds: insufficient data
    service.monitors.configure(sub.id, "fairness", {**CONFIG, "min_records": 5000})
    m4 = service.monitors.run(sub.id, "fairness", now=T0 + timedelta(hours=6))
    assert m4["status"] == "insufficient_data"
    assert "holds 1000 records" in m4["message"] and "min_records = 5000" in m4["message"]
    assert m4["values"] == {} and m4["violations"] == []


def test_backfill_breaks_timestamp_ties_by_row_id(service, sub, applicants: pd.DataFrame) -> None:  # type: ignore[no-untyped-def]
    service.monitors.configure(sub.id, "fairness", {**CONFIG, "min_records": 150})
    log_frame(service, sub, applicants.iloc[:200], rows_per_record=100, step_seconds=0)  # 200 rows, one instant
    m = service.monitors.run(sub.id, "fairness", now=NOW, start=NOW)  # no new rows: all 150 are backfill
    assert m["records"] == 150
    t = sql.record_table(sub)
    with service.store.engine.connect() as conn:
        frame = pd.read_sql_query(t.select(), conn)
    chosen = frame.sort_values("scoring_id", ascending=False).head(150)
    expected = di(chosen["prediction"], chosen["Sex"] == "female", chosen["Sex"] == "male")
    assert m["values"]["fairness_value.Sex"] == pytest.approx(expected, abs=TOL)


def test_perturbed_twins_are_scored_internally_and_not_logged(
    service, sub, engine_server, applicants: pd.DataFrame
) -> None:  # type: ignore[no-untyped-def]
    perturbation = {"enabled": True, "max_records": 200, "batch_rows": 64, "max_listed": 5}
    service.monitors.configure(sub.id, "fairness", {**CONFIG, "perturbation": perturbation})
    log_frame(service, sub, applicants.iloc[:300])
    before = httpx.get(f"{engine_server.url}/_stats").json().get("internal_calls", 0)
    m = service.monitors.run(sub.id, "fairness", now=NOW)
    after = httpx.get(f"{engine_server.url}/_stats").json()["internal_calls"]
    p = m["details"]["perturbation"]
    assert p["error"] is None and p["records"] == 200
    sex, age = p["attributes"]["Sex"], p["attributes"]["Age"]
    assert sex["perturbed_records"] == 200 and age["perturbed_records"] == 200
    assert p["scored_rows"] == 400 and p["scoring_calls"] == int(np.ceil(400 / 64))
    assert after - before == p["scoring_calls"]
    assert service.payloads.read(sub.id)[0] == 300  # the twins were never logged

    # oracle for Sex (the other group has one value, so each twin is known): the 200 most recent
    # rows and their flipped twins, scored by the engine in a separate call
    t = sql.record_table(sub)
    with service.store.engine.connect() as conn:
        q = t.select().order_by(t.c.scoring_timestamp.desc(), t.c.scoring_id.desc()).limit(200)
        frame = pd.read_sql_query(q, conn)
    twins = frame.copy()
    twins["Sex"] = np.where(frame["Sex"] == "female", "male", "female")
    fields, values = score_frame(service, sub, twins)
    twins["prediction"] = [v[fields.index("prediction")] for v in values]
    both = pd.concat([frame, twins], ignore_index=True)
    expected = di(both["prediction"], both["Sex"] == "female", both["Sex"] == "male")
    assert m["details"]["view"] == "payload_perturbed"
    assert m["values"]["fairness_value.Sex"] == pytest.approx(expected, abs=TOL)  # the headline
    with service.store.engine.connect() as conn:
        all_rows = pd.read_sql_query(t.select(), conn)
    payload_only = m["details"]["attributes"]["Sex"]["payload"]["fairness_value"]
    assert payload_only == pytest.approx(
        di(all_rows["prediction"], all_rows["Sex"] == "female", all_rows["Sex"] == "male"), abs=TOL
    )  # the window's 300 rows, beside the twins of its 200 most recent
    # biased pairs: a woman unfavourable while her male twin is favourable, or the reverse
    female = frame["Sex"] == "female"
    fav_o, fav_t = frame["prediction"] == "No Risk", twins["prediction"] == "No Risk"
    biased = (female & ~fav_o & fav_t) | (~female & fav_o & ~fav_t)
    assert sex["biased_transactions"] == int(biased.sum())
    assert len(sex["biased"]) == min(5, int(biased.sum()))
    for item in sex["biased"]:
        row = frame.index[frame["scoring_id"] == item["scoring_id"]][0]
        assert item["original"]["Sex"] == frame.loc[row, "Sex"] and item["altered"]["Sex"] == twins.loc[row, "Sex"]
        assert item["altered"]["outcome"] == twins.loc[row, "prediction"]
    # age twins draw training ages of the other group, seeded by row id: the same every run
    again = service.monitors.run(sub.id, "fairness", now=NOW, start=T0)
    assert again["details"]["perturbation"] == p
    ages = {int(a) for a in applicants["Age"]}
    for item in age["biased"]:
        was, now = item["original"]["Age"], item["altered"]["Age"]
        assert now in ages and (19 <= was <= 25) != (19 <= now <= 25)


def test_a_failing_engine_keeps_the_payload_result(service, engine_server, applicants: pd.DataFrame) -> None:  # type: ignore[no-untyped-def]
    """Twins scored on a deployment that answers 500: the run finishes on the payload alone and
    says why the perturbed view is missing."""
    from tests.support.monitors import PROPS, payload_records

    binding, _ = service.bindings.create(name="demo", engine_type="custom", credentials={"url": engine_server.url})
    broken = service.subscriptions.create(
        binding_id=binding.id,
        deployment={"name": "broken", "scoring_url": f"{engine_server.url}/v1/deployments/fault-500/online"},
        asset_properties=PROPS,
        training_frame=credit.load_german(),
    )
    service.monitors.configure(broken.id, "fairness", {**CONFIG, "perturbation": True})
    frame = applicants.iloc[:150]
    times = [T0 + timedelta(seconds=i) for i in range(len(frame))]
    service.payloads.store(broken.id, payload_records(frame, times, [None] * len(frame)))
    m = service.monitors.run(broken.id, "fairness", now=NOW)
    assert m["status"] == "finished"
    assert "500" in m["details"]["perturbation"]["error"]
    assert m["details"]["view"] == "payload"
    service.monitors.configure(broken.id, "fairness", CONFIG)
    plain = service.monitors.run(broken.id, "fairness", now=NOW, start=T0)
    assert m["values"] == plain["values"]


def test_feedback_metrics_match_aif360(service, sub, applicants: pd.DataFrame) -> None:  # type: ignore[no-untyped-def]
    from aif360.datasets import BinaryLabelDataset
    from aif360.metrics import ClassificationMetric

    from tests.support.monitors import log_feedback

    service.monitors.configure(sub.id, "fairness", CONFIG)
    pred = log_frame(service, sub, applicants)
    ids = [f"r{int((T0 + timedelta(seconds=k)).timestamp())}-{k:06d}-1" for k in range(len(applicants))]
    labels = applicants[credit.LABEL].tolist()
    log_feedback(service, sub, ids, labels, [T0 + timedelta(hours=2)] * len(ids))
    m = service.monitors.run(sub.id, "fairness", now=NOW)

    truth = pd.DataFrame(
        {"y": (applicants[credit.LABEL] == "No Risk").astype(float), "ref": (applicants["Sex"] == "male").astype(float)}
    )
    guess = truth.assign(y=(pd.Series(pred) == "No Risk").astype(float))
    kw = {"label_names": ["y"], "protected_attribute_names": ["ref"], "favorable_label": 1.0, "unfavorable_label": 0.0}
    aif = ClassificationMetric(
        BinaryLabelDataset(df=truth, **kw),
        BinaryLabelDataset(df=guess, **kw),
        unprivileged_groups=[{"ref": 0.0}],
        privileged_groups=[{"ref": 1.0}],
    )
    fb = m["details"]["attributes"]["Sex"]["feedback"]
    assert fb["records"] == len(applicants)
    for name in (
        "average_odds_difference",
        "average_abs_odds_difference",
        "false_negative_rate_difference",
        "false_positive_rate_difference",
        "false_discovery_rate_difference",
        "false_omission_rate_difference",
        "error_rate_difference",
    ):
        expected = float(getattr(aif, name)())
        assert fb[name] == pytest.approx(expected, abs=TOL), name
        assert m["values"][f"{name}.Sex"] == pytest.approx(expected, abs=TOL), name


def test_openscale_v2_instance_configuration_and_clear_errors(service, sub, applicants: pd.DataFrame) -> None:  # type: ignore[no-untyped-def]
    from scrutiny.errors import InvalidInput

    body = {
        "data_mart_id": "dm",
        "monitor_definition_id": "fairness",
        "parameters": {
            "features": [
                {"feature": "Sex", "majority": ["male"], "minority": ["female"]},
                {"feature": "Age", "majority": [[26, 75]], "minority": [[19, 25]]},
            ],
            "favourable_class": ["No Risk"],
            "unfavourable_class": ["Risk"],
            "min_records": 100,
        },
        "thresholds": [
            {
                "metric_id": "fairness_value",
                "type": "lower_limit",
                "value": 90,
                "specific_values": [{"applies_to": [{"type": "tag", "key": "feature", "value": "Age"}], "value": 70}],
            }
        ],
    }
    view = service.monitors.configure(sub.id, "fairness", body)
    limits = {t["metric"]: t["value"] for t in view["thresholds"]}
    assert limits == {"fairness_value": 0.9, "fairness_value.Age": 0.7}
    assert view["config"]["min_records"] == 100 and view["enabled"]
    log_frame(service, sub, applicants.iloc[:200])
    m = service.monitors.run(sub.id, "fairness", now=NOW)
    applied = {t["metric"]: t["value"] for t in m["thresholds"]}
    assert applied["fairness_value.Sex"] == 0.9 and applied["fairness_value.Age"] == 0.7
    # bad configurations are refused with the field named, and change nothing
    for bad, field in (
        ({**CONFIG, "features": [{"feature": "Gender", "minority": ["f"]}]}, "features[0].feature"),
        ({**CONFIG, "features": [{"feature": "Sex", "minority": ["female"], "majority": ["female"]}]}, "features[0]"),
        (
            {**CONFIG, "thresholds": [{"metric": "fairness_value", "type": "lower_limit", "value": 250}]},
            "thresholds[0].value",
        ),
        (
            {**CONFIG, "thresholds": [{"metric": "fairness_value", "type": "upper_limit", "value": 0.9}]},
            "thresholds[0].type",
        ),
    ):
        with pytest.raises(InvalidInput) as err:
            service.monitors.configure(sub.id, "fairness", bad)
        assert err.value.context.get("field") == field, err.value.message
    assert service.monitors.get(sub.id, "fairness")["thresholds"] == view["thresholds"]
