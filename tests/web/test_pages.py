"""Every page over plain HTTP, on SQLite and PostgreSQL, on a demo-like store: the numbers a page
shows are the ones the REST API and the stored measurements hold."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import timedelta
from typing import Any

import httpx
import pytest

from scrutiny._server import BackgroundServer
from scrutiny.config import Settings
from scrutiny.demo import credit
from scrutiny.monitors.run.reader import parse_iso
from scrutiny.service import Service
from scrutiny.web.render import num
from tests.support.dashboard import Scenario, build
from tests.support.html import Node, parse
from tests.support.postgres import postgres_unavailable, private_schema
from tests.support.web import page_csrf, sign_in


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def site(request, engine_server, tmp_path_factory) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """One demo-like store per backend for the whole module (building it scores and runs monitors)."""
    from scrutiny.api.app import create_app

    with ExitStack() as stack:
        url = None
        if request.param == "postgresql":
            reason = postgres_unavailable()
            if reason:
                pytest.skip(reason)
            url = stack.enter_context(private_schema())
        service = Service(Settings(data_dir=tmp_path_factory.mktemp("web"), database_url=url, sqlite_synchronous="OFF"))
        stack.callback(service.close)
        scenario = build(service, engine_server.url)
        app = create_app(service=service)
        key = service.keys.ensure_admin_key()
        with BackgroundServer(app) as srv:
            yield {"service": service, "scenario": scenario, "srv": srv, "key": key, "app": app}


@pytest.fixture
def c(site) -> Iterator[httpx.Client]:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=site["srv"].url, follow_redirects=False, timeout=60) as client:
        assert sign_in(client, site["key"]).status_code == 303
        yield client


@pytest.fixture
def api(site) -> Iterator[httpx.Client]:  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {site['key']}"}
    with httpx.Client(base_url=site["srv"].url, headers=headers, timeout=60) as client:
        yield client


def get(c: httpx.Client, path: str, **params: Any) -> Node:
    r = c.get(path, params=params) if params else c.get(path)  # params={} would drop the path's query
    assert r.status_code == 200, r.text[:2000]
    return parse(r.text)


def measurements(site: dict[str, Any], api: httpx.Client, monitor: str, **params: Any) -> list[dict[str, Any]]:
    """A monitor's measurements as the REST API gives them, newest first."""
    sc: Scenario = site["scenario"]
    r = api.get(f"/v1/subscriptions/{sc.sub.id}/measurements", params={"monitor": monitor, **params})
    assert r.status_code == 200, r.text
    return list(r.json()["measurements"])


def latest(site: dict[str, Any], api: httpx.Client, monitor: str) -> dict[str, Any]:
    return measurements(site, api, monitor, status="finished", limit=1)[0]


def alerts(api: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    r = api.get("/v1/alerts", params={"limit": 10_000, **params})
    assert r.status_code == 200, r.text
    return list(r.json()["alerts"])


def test_overview_tile_shows_the_api_numbers(site, c, api) -> None:  # type: ignore[no-untyped-def]
    sc: Scenario = site["scenario"]
    doc = get(c, "/")
    tile = doc.one("article", data_subscription=sc.sub.id)
    assert "credit-risk deployment" in tile.one("h2").text()
    total = api.get(f"/v1/subscriptions/{sc.sub.id}/payloads", params={"limit": 1}).json()["total"]
    assert tile.one("dd", "rows-24h").text() == num(total) == num(sc.rows)
    open_alerts = alerts(api, status="open", subscription_id=sc.sub.id)
    assert len(open_alerts) >= 2  # quality accuracy and fairness on Age are below their limits
    assert tile.one("dd", "open-alerts").text() == str(len(open_alerts))
    assert "violated" in tile.attrs["class"]
    for monitor in ("quality", "fairness", "performance", "drift"):
        m = latest(site, api, monitor)
        section = tile.one("section", data_monitor=monitor)
        for row in section.all("tr"):
            metric = row.attrs["data-metric"]
            assert row.one("td", "value").text() == num(m["values"][metric]), (monitor, metric)
            violated = any(v["metric"] == metric for v in m["violations"])
            assert ("bad" in row.attrs.get("class", "")) == violated
    quality = tile.one("section", data_monitor="quality")
    assert "bad" in quality.one("tr", data_metric="accuracy").attrs["class"]


def test_charts_carry_every_measurement_and_its_limits(site, c, api) -> None:  # type: ignore[no-untyped-def]
    sc: Scenario = site["scenario"]
    doc = get(c, f"/subscriptions/{sc.sub.id}", range="all")
    for monitor in ("quality", "fairness", "performance", "drift"):
        stored = list(reversed(measurements(site, api, monitor, status="finished")))
        section = doc.one("section", "monitor-charts", data_monitor=monitor)
        figures = section.all("figure")
        metrics = {f.attrs["data-metric"] for f in figures}
        assert metrics == set().union(*(m["values"] for m in stored)), monitor
        shown = json.loads(section.one("script", "series").text())
        folded = c.get(f"/subscriptions/{sc.sub.id}/series", params={"monitor": monitor, "range": "all"}).json()
        assert shown["ids"] == folded["ids"] == [m["id"] for m in stored]
        assert set(folded["metrics"]) == metrics and set(shown["metrics"]) <= metrics
        for metric, s in folded["metrics"].items():
            assert s["y"] == pytest.approx([m["values"].get(metric) for m in stored], rel=1e-5, abs=5e-7)  # 6 decimals
            assert s["violated"] == [int(any(v["metric"] == metric for v in m["violations"])) for m in stored]
            if metric in shown["metrics"]:
                assert shown["metrics"][metric] == s
    accuracy = json.loads(doc.one("section", "monitor-charts", data_monitor="quality").one("script", "series").text())
    acc = accuracy["metrics"]["accuracy"]
    assert acc["lower"] == [0.8] * len(accuracy["x"]) and acc["upper"] is None
    assert sum(acc["violated"]) >= 1


def test_time_range_limits_the_series(site, c) -> None:  # type: ignore[no-untyped-def]
    sc: Scenario = site["scenario"]
    runs = sc.runs["quality"]
    start = (sc.start + timedelta(minutes=61)).replace(second=0)
    doc = get(c, f"/subscriptions/{sc.sub.id}", **{"from": start.strftime("%Y-%m-%dT%H:%M")})
    data = json.loads(doc.one("section", "monitor-charts", data_monitor="quality").one("script", "series").text())
    expected = [m["id"] for m in runs if parse_iso(m["timestamp"]) >= start]
    assert data["ids"] == expected and 0 < len(expected) < len(runs)
    bad = c.get(f"/subscriptions/{sc.sub.id}", params={"from": "2026-02-30T10:00"})
    assert bad.status_code == 422 and "from" in bad.text


def test_quality_details_confusion_matrix_drills_down_to_its_records(site, c, api) -> None:  # type: ignore[no-untyped-def]
    sc: Scenario = site["scenario"]
    m = latest(site, api, "quality")
    doc = get(c, f"/subscriptions/{sc.sub.id}/monitors/quality")
    assert doc.one("section", data_measurement=m["id"])
    cm = m["details"]["confusion_matrix"]
    labels = cm["labels"]
    for i, actual in enumerate(labels):
        for j, predicted in enumerate(labels):
            cell = doc.one("td", data_actual=actual, data_predicted=predicted)
            assert cell.one("a").text() == num(cm["matrix"][i][j])
    # drill down into the false negatives: every listed row has that label and prediction
    cell = doc.one("td", data_actual="Risk", data_predicted="No Risk")
    records = get(c, cell.one("a").attrs["href"])
    rows = records.one("table", "records").all("tr")[1:]
    assert len(rows) == min(50, cm["matrix"][labels.index("Risk")][labels.index("No Risk")])
    listed = api.get(
        f"/v1/subscriptions/{sc.sub.id}/measurements/{m['id']}/records",
        params={"actual": "Risk", "predicted": "No Risk", "limit": 50},
    ).json()
    assert [r.all("td")[0].text() for r in rows] == [x["scoring_id"] for x in listed["records"]]
    header = [th.text() for th in records.one("table", "records").all("th")]
    for row in rows:
        cells = dict(zip(header, [td.text() for td in row.all("td")], strict=True))
        assert cells[credit.LABEL] == "Risk" and cells["prediction"] == "No Risk"
    metric_rows = {r.attrs["data-metric"]: r for r in doc.one("table", "metric-table").all("tr")[1:]}
    assert set(metric_rows) == set(m["values"])
    assert metric_rows["accuracy"].one("td", "value").text() == num(m["values"]["accuracy"])


def test_fairness_details_rates_twins_and_history(site, c, api) -> None:  # type: ignore[no-untyped-def]
    sc: Scenario = site["scenario"]
    m = latest(site, api, "fairness")
    doc = get(c, f"/subscriptions/{sc.sub.id}/measurements/{m['id']}")
    for feature, entry in m["details"]["attributes"].items():
        section = doc.one("section", data_feature=feature)
        shown = entry.get("payload_perturbed") or entry["payload"]
        assert section.one("b", "fairness-value").text() == num(shown["fairness_value"])
        bars = section.one("div", "grid2").all("span", "val")
        values = [float(v.attrs["data-value"]) for v in bars]
        expected = [g["rate"] for g in shown["groups"]]
        if len(shown["groups"]) != 1:
            expected.append(shown["monitored"]["rate"])
        expected.append(shown["reference"]["rate"])
        training = entry["training"]
        expected += [training["monitored"], training["reference"]]  # the training labels' rates
        assert values == pytest.approx(expected)
        assert section.one("figure").attrs["data-metric"] == f"fairness_value.{feature}"
        history = json.loads(doc.one("div", data_series_scope="").one("script", "series").text())
        assert m["id"] in history["ids"] and f"fairness_value.{feature}" in history["metrics"]
        listed = m["details"]["perturbation"]["attributes"][feature]["biased"]
        if listed:
            table = section.one("table", "biased")
            ids = [r.all("td")[0].text() for r in table.all("tr")[1:]]
            assert ids == [b["scoring_id"] for b in listed]


def test_drift_details_rank_features_with_their_histograms(site, c, api) -> None:  # type: ignore[no-untyped-def]
    sc: Scenario = site["scenario"]
    m = latest(site, api, "drift")
    doc = get(c, f"/subscriptions/{sc.sub.id}/monitors/drift")
    features = m["details"]["feature_drift"]["features"]
    drifted = [f for f in features if f["drifted"]]
    assert drifted, "the scenario's late traffic drifts"
    shown = [a.attrs["data-feature"] for a in doc.one("div", "drifted-features").all("article")]
    assert shown == [f["feature"] for f in sorted(drifted, key=lambda f: f["rank"])]
    first = doc.one("div", "drifted-features").all("article")[0]
    bars = first.all("rect", "cur")
    assert [float(b.attrs["data-share"]) for b in bars] == pytest.approx(
        [b["current_share"] for b in drifted[0]["distribution"]]
    )
    tx = m["details"]["transactions"]
    for key in ("accuracy_only", "both", "consistency_only"):
        assert doc.one("span", "count", data_group=key).text() == num(tx[key]["count"])


def test_payload_table_filters_and_counts(site, c, api) -> None:  # type: ignore[no-untyped-def]
    sc: Scenario = site["scenario"]
    every = api.get(f"/v1/subscriptions/{sc.sub.id}/payloads", params={"limit": 10_000}).json()
    doc = get(c, f"/subscriptions/{sc.sub.id}/payload")
    assert doc.one("span", "window-rows").one("b").text() == num(every["total"])
    expected = [r for r in every["rows"] if r["prediction"] == "Risk" and r["Age"] > 30]
    doc = get(c, f"/subscriptions/{sc.sub.id}/payload", prediction="Risk", col="Age", op="gt", val="30", count="1")
    assert doc.one("span", "match-count").one("b").text() == num(len(expected))
    rows = doc.one("table", "payload").all("tr")[1:]
    assert [r.attrs["data-scoring-id"] for r in rows] == [r["scoring_id"] for r in expected[:50]]
    assert len(doc.all("span", "chip")) == 1  # Age > 30 (the prediction has its own selector)


def test_payload_record_page(site, c, api) -> None:  # type: ignore[no-untyped-def]
    sc: Scenario = site["scenario"]
    row = api.get(f"/v1/subscriptions/{sc.sub.id}/payloads", params={"limit": 1}).json()["rows"][0]
    doc = get(c, f"/subscriptions/{sc.sub.id}/payload/{row['scoring_id']}")
    cells = {td.attrs["data-col"]: td.text() for td in doc.one("table", "record").all("td")}
    assert cells["LoanAmount"] == str(row["LoanAmount"]) and cells["Sex"] == row["Sex"]
    missing = c.get(f"/subscriptions/{sc.sub.id}/payload/nope-1")
    assert missing.status_code == 404 and "no payload row" in missing.text


def test_alerts_page_lists_open_and_past_alerts(site, c, api) -> None:  # type: ignore[no-untyped-def]
    doc = get(c, "/alerts")
    rows = {tr.attrs["data-alert"]: tr for tr in doc.one("section", "alerts-open").all("tr", "alert")}
    expected = alerts(api, status="open")
    assert set(rows) == {a["id"] for a in expected} and expected
    for a in expected:
        cells = [td.text() for td in rows[a["id"]].all("td")]
        assert cells[2] == a["metric"] and cells[3] == num(a["value"]) and cells[8] == num(a["runs"])
    shown_past = {tr.attrs["data-alert"] for tr in doc.one("section", "alerts-closed").all("tr", "alert")}
    assert shown_past == {a["id"] for a in alerts(api, status="closed")}
    only_open = get(c, "/alerts", status="open")
    assert not only_open.all("section", "alerts-closed")


def test_unknown_things_are_html_404s(site, c) -> None:  # type: ignore[no-untyped-def]
    sc: Scenario = site["scenario"]
    for path in (
        "/subscriptions/nope",
        f"/subscriptions/{sc.sub.id}/measurements/nope",
        f"/subscriptions/{sc.sub.id}/monitors/nope",
    ):
        r = c.get(path)
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html"), path
        assert "Not found" in r.text


def test_engines_page_lists_deployments_and_subscribes_with_a_training_file(site, c, api) -> None:  # type: ignore[no-untyped-def]
    service = site["service"]
    sc: Scenario = site["scenario"]
    doc = get(c, "/engines")
    binding = doc.one("section", data_binding=sc.sub.binding_id)
    fragment = get(c, binding.one("div", "deployments").attrs["data-src"])
    ids = [tr.attrs["data-deployment"] for tr in fragment.all("tr")[1:]]
    listed = api.get(f"/v1/bindings/{sc.sub.binding_id}/deployments").json()
    assert ids == [d["id"] for d in listed["deployments"]]
    assert ids[:3] == ["credit-risk", "loan-purpose", "credit-amount"]
    assert "subscribed" in fragment.one("tr", data_deployment="credit-risk").text()
    form = get(c, f"/engines/{sc.sub.binding_id}/subscribe", deployment_id="credit-amount")
    csrf = form.one("form", "subscribe").one("input", name="csrf").attrs["value"]
    data = credit.load_german()
    features = [f for f in credit.FEATURES if f != "LoanAmount"]
    body = {
        "csrf": csrf,
        "deployment_id": "credit-amount",
        "problem_type": "regression",
        "label_column": "LoanAmount",
        "prediction_field": "prediction",
        "probability_field": "",
        "feature_fields": "\n".join(features),
        "categorical_fields": "\n".join(credit.CATEGORICAL_FEATURES),
    }
    csv = data[[*features, "LoanAmount"]].to_csv(index=False).encode()
    # a mistake first: the label among the features is refused, naming the field, nothing stored
    bad = c.post(
        f"/engines/{sc.sub.binding_id}/subscribe",
        data={**body, "feature_fields": body["feature_fields"] + "\nLoanAmount"},
        files={"training_file": ("train.csv", csv, "text/csv")},
    )
    assert bad.status_code == 422 and "label_column" in bad.text
    assert len(service.subscriptions.list()) == 1
    r = c.post(
        f"/engines/{sc.sub.binding_id}/subscribe", data=body, files={"training_file": ("train.csv", csv, "text/csv")}
    )
    assert r.status_code == 303, r.text[:2000]
    sub_id = r.headers["location"].rsplit("/", 1)[1]
    sub = service.subscriptions.get(sub_id)
    assert sub.deployment_id == "credit-amount" and sub.problem_type.value == "regression"
    assert sub.feature_fields == features and sub.training_statistics is not None
    service.subscriptions.delete(sub_id)


def test_binding_form_keeps_credentials_secret(site, c) -> None:  # type: ignore[no-untyped-def]
    service = site["service"]
    html = c.get("/engines").text
    secret = "s3cr3t-" + "x" * 12
    creds = json.dumps({"url": "http://127.0.0.1:9", "username": "u", "password": secret})
    r = c.post(
        "/engines", data={"name": "dead engine", "engine_type": "custom", "credentials": creds, "csrf": page_csrf(html)}
    )
    assert r.status_code == 303
    row = next(b for b in service.bindings.list() if b.name == "dead engine")
    try:
        page = c.get("/engines").text
        assert secret not in page
        fragment = c.get(f"/engines/{row.id}/deployments")
        assert fragment.status_code == 200 and "did not answer" in fragment.text and secret not in fragment.text
        bad = c.post(
            "/engines", data={"name": "x", "engine_type": "custom", "credentials": "{nope", "csrf": page_csrf(html)}
        )
        assert bad.status_code == 422 and "credentials are not JSON" in bad.text
    finally:
        service.bindings.delete(row.id)


def test_subscription_pages_refuse_bad_ranges(site, c) -> None:  # type: ignore[no-untyped-def]
    sc: Scenario = site["scenario"]
    r = c.get(f"/subscriptions/{sc.sub.id}/payload", params={"range": "5y"})
    assert r.status_code == 422 and re.search(r"range is one of", r.text)
    r = c.get(f"/subscriptions/{sc.sub.id}/payload", params={"before": "garbage"})
    assert r.status_code == 422 and "cursor" in r.text


def test_explain_a_transaction_from_its_record_page(site, c, api) -> None:  # type: ignore[no-untyped-def]
    sc: Scenario = site["scenario"]
    row_id = "s5-3-1"
    record = get(c, f"/subscriptions/{sc.sub.id}/payload/{row_id}")
    form = record.one("form", "explain-form")
    csrf = form.one("input", name="csrf").attrs["value"]
    r = c.post(
        f"/subscriptions/{sc.sub.id}/explain", data={"scoring_id": row_id, "method": "lime+contrastive", "csrf": csrf}
    )
    assert r.status_code == 303
    doc = get(c, r.headers["location"])
    eid = r.headers["location"].rsplit("/", 1)[1]
    stored = api.get(f"/v1/subscriptions/{sc.sub.id}/explanations/{eid}").json()
    assert stored["status"] == "finished" and stored["scoring_id"] == row_id
    assert doc.one("dd", "prediction").one("b").text() == stored["prediction"]
    assert doc.one("span", "probability").text() == num(stored["probability"])
    predicted = doc.one("section", "contributions", data_class=stored["prediction"])
    weights = [float(v.attrs["data-value"]) for v in predicted.all("span", "val")]
    assert weights == pytest.approx([c_["weight"] for c_ in stored["contributions"]])
    labels = [s.text() for s in predicted.all("span", "label")]
    assert labels == [c_["condition"] for c_ in stored["contributions"]]
    pn = stored["pertinent_negative"]
    if pn["exists"]:
        section = doc.one("section", "pertinent-negative")
        assert section.one("b", "pn-prediction").text() == pn["prediction"]
        assert [tr.attrs["data-feature"] for tr in section.all("tr")[1:]] == [f["feature"] for f in pn["features"]]
    values = {td.attrs["data-col"]: td.text() for td in doc.one("table", "record").all("td") if "data-col" in td.attrs}
    assert values == {k: str(v) for k, v in zip(stored["record"]["fields"], stored["record"]["values"][0], strict=True)}
    # the record page now lists it, and a viewer cannot ask for a new one
    listed = get(c, f"/subscriptions/{sc.sub.id}/payload/{row_id}")
    assert listed.one("tr", data_explanation=eid)
    bad = c.post(f"/subscriptions/{sc.sub.id}/explain", data={"scoring_id": "nope-1", "csrf": csrf})
    assert bad.status_code == 404 and "no transaction" in bad.text


def test_a_bad_explanation_request_is_refused_up_front(site, c) -> None:  # type: ignore[no-untyped-def]
    """Checked before anything is stored or scored; the page names what is wrong."""
    sc: Scenario = site["scenario"]
    html = c.get(f"/subscriptions/{sc.sub.id}/payload/s5-3-1").text
    r = c.post(
        f"/subscriptions/{sc.sub.id}/explain",
        data={"scoring_id": "s5-3-1", "method": "shap", "csrf": page_csrf(html)},
    )
    assert r.status_code == 422 and "method must be one of" in r.text
