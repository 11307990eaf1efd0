"""IBM's OpenScale SDKs, unchanged, against a live Scrutiny (SQLite and PostgreSQL): the typical
onboarding notebook for a custom ML engine runs green with each SDK, and every number it reads
back equals Scrutiny's own measurement."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from scrutiny._server import BackgroundServer
from scrutiny.api.app import create_app
from scrutiny.demo import credit
from scrutiny.service import Service
from tests.servers.procs import venv_python
from tests.support.openscale_sdk import notebook_input, run_notebook
from tests.support.tls import self_signed


@pytest.fixture
def https_api(service: Service, tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """Scrutiny on https (``scrutiny serve --tls-cert --tls-key``): the v2 SDK's discovery calls
    go to https on the service's host and port whatever its URL says. Also its certificate,
    which the client trusts as a user would (``REQUESTS_CA_BUNDLE``)."""
    cert, key_file = self_signed(tmp_path)
    key = service.keys.ensure_admin_key()
    assert key
    with BackgroundServer(create_app(service=service), ssl_certfile=str(cert), ssl_keyfile=str(key_file)) as srv:
        yield srv.url.replace("http://", "https://"), key, cert


def native(url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30, verify=False)


def measurement(c: httpx.Client, sub_id: str, measurement_id: str) -> dict[str, Any]:
    r = c.get(f"/v1/subscriptions/{sub_id}/measurements/{measurement_id}")
    assert r.status_code == 200, r.text
    return dict(r.json())


def total(c: httpx.Client, sub_id: str, kind: str) -> int:
    r = c.get(f"/v1/subscriptions/{sub_id}/{kind}", params={"limit": 1})
    assert r.status_code == 200, r.text
    return int(r.json()["total"])


def test_current_sdk_notebook_cp4d(
    https_api: tuple[str, str, Path], engine_server: BackgroundServer, service: Service, german: Any, tmp_path: Path
) -> None:
    """Cloud Pak for Data's authenticator (a key as the password) and the SDK's default instance id."""
    current_sdk_notebook("cp4d", https_api, engine_server, service, german, tmp_path)


@pytest.mark.parametrize("backend", ["sqlite"])  # the store's part is the same as above
def test_current_sdk_notebook_bearer(
    https_api: tuple[str, str, Path], engine_server: BackgroundServer, service: Service, german: Any, tmp_path: Path
) -> None:
    """A Scrutiny API key as the bearer token and the data mart id as the instance id."""
    current_sdk_notebook("bearer", https_api, engine_server, service, german, tmp_path)


def current_sdk_notebook(
    auth: str,
    https_api: tuple[str, str, Path],
    engine_server: BackgroundServer,
    service: Service,
    german: Any,
    tmp_path: Path,
) -> None:
    url, key, cert = https_api
    cfg = notebook_input(german, engine_server.url)
    cfg["custom"] = [{"sensitivity": 0.85, "specificity": 0.8}, {"sensitivity": 0.95, "specificity": 0.7}]
    cfg.update(url=url, api_key=key, data_mart_id=service.data_mart_id, auth=auth, discovery=True)
    out = run_notebook(venv_python("openscale-v2"), "notebook_v2", cfg, tmp_path, REQUESTS_CA_BUNDLE=str(cert))

    assert out["monitors"] == {"quality": "quality", "fairness": "fairness", "auc": "area_under_roc"}
    assert out["data_mart_id"] == service.data_mart_id and out["data_mart_state"] == "active"
    assert {"credit-risk", "loan-purpose", "credit-amount"} <= set(out["deployments"])
    assert out["scoring_url"] == f"{engine_server.url}/v1/deployments/credit-risk/online"
    sub_id = out["subscription_id"]
    with native(url, key) as c:
        sub = c.get(f"/v1/subscriptions/{sub_id}").json()
        assert sub["binding_id"] == out["service_provider_id"] and sub["deployment_id"] == "credit-risk"
        assert sub["asset_properties"]["labels"] == credit.LABELS
        # records: what the SDK counts is what Scrutiny stored
        assert out["payload_count"] == total(c, sub_id, "payloads") == 120
        assert out["feedback_count"] == total(c, sub_id, "feedback") == 120
        newest = c.get(f"/v1/subscriptions/{sub_id}/payloads", params={"limit": 5}).json()["rows"]
        assert out["payload_first"] == newest
        # monitors: the SDK's runs are Scrutiny's measurements, value for value
        assert out["monitor_instances"] == ["fairness", "performance", "quality"]
        assert out["quality_run"]["state"] == out["fairness_run"]["state"] == "finished"
        q = out["metrics"]["quality"]
        assert q["measurement_id"] == q["run_id"] == out["quality_run"]["id"]
        mq = measurement(c, sub_id, q["measurement_id"])
        assert mq["monitor"] == "quality" and mq["records"] == 120
        assert {k: v["value"] for k, v in q["values"].items()} == mq["values"]
        assert mq["values"]["area_under_roc"] is not None
        assert q["values"]["area_under_roc"]["lower_limit"] == 0.8
        f = out["metrics"]["fairness"]
        mf = measurement(c, sub_id, f["measurement_id"])
        assert f["run_id"] == out["fairness_run"]["id"]
        for metric, value in mf["values"].items():
            got = f["values"][metric]["value"]
            expected = value * 100 if metric.split(".")[0] in ("fairness_value", "average_fairness_value") else value
            assert got == pytest.approx(expected, rel=1e-12, abs=0), metric
        assert set(f["values"]) == set(mf["values"])
        # v2 thresholds are percentages: 80 on every attribute, 90 on Age (Scrutiny: 0.8, 0.9)
        assert f["values"]["fairness_value.Sex"]["lower_limit"] == pytest.approx(80.0)
        assert f["values"]["fairness_value.Age"]["lower_limit"] == pytest.approx(90.0)
        limits = {t["metric"]: t["value"] for t in mf["thresholds"]}
        assert limits["fairness_value.Age"] == pytest.approx(0.9) and limits["fairness_value.Sex"] == pytest.approx(0.8)
        # a custom monitor: its posted values are measurements with limits (the instance's 0.9 on
        # sensitivity, the definition's 0.75 on specificity) and alerts, as for the built-ins
        custom = out["custom"]
        assert custom["definition_id"] == custom["monitor"] == "model_health"
        assert custom["instance_id"] == f"{sub_id}.model_health"
        posted = c.get(f"/v1/subscriptions/{sub_id}/measurements", params={"monitor": "model_health"}).json()
        native_ms = {m["id"]: m for m in posted["measurements"]}
        assert len(native_ms) == len(custom["measurements"]) == 2
        for got in custom["measurements"]:
            m = native_ms[got["id"]]
            assert {k: v["value"] for k, v in got["values"].items()} == m["values"]
            assert (
                got["values"]["sensitivity"]["lower_limit"] == 0.9
                and got["values"]["specificity"]["lower_limit"] == 0.75
            )
            assert got["issues"] == len(m["violations"]) == 1
            assert got["tags"] == [["region", "us-south"]] and m["details"]["tags"] == [
                {"id": "region", "value": "us-south"}
            ]
        alerts = c.get("/v1/alerts", params={"subscription_id": sub_id, "monitor": "model_health"}).json()["alerts"]
        assert {(a["metric"], a["status"]) for a in alerts} == {("sensitivity", "closed"), ("specificity", "open")}


def test_2020_sdk_notebook_basic(
    api: tuple[BackgroundServer, str], engine_server: BackgroundServer, service: Service, german: Any, tmp_path: Path
) -> None:
    """``APIClient4ICP`` with a user name and a key as the password, the SDK's default data mart id."""
    sdk_2020_notebook("basic", api, engine_server, service, german, tmp_path)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_2020_sdk_notebook_token(
    api: tuple[BackgroundServer, str], engine_server: BackgroundServer, service: Service, german: Any, tmp_path: Path
) -> None:
    """``APIClient4ICP`` with an ``iam_token`` issued by ``validateAuth`` and the data mart id."""
    sdk_2020_notebook("token", api, engine_server, service, german, tmp_path)


def sdk_2020_notebook(
    auth: str,
    api: tuple[BackgroundServer, str],
    engine_server: BackgroundServer,
    service: Service,
    german: Any,
    tmp_path: Path,
) -> None:
    srv, key = api
    cfg = notebook_input(german, engine_server.url)
    training = german.iloc[:800]
    cfg["training"] = {"fields": list(training.columns), "values": training.values.tolist()}
    cfg["custom"] = [{"sensitivity": 0.85, "specificity": 0.8}, {"sensitivity": 0.95, "specificity": 0.7}]
    token = httpx.get(f"{srv.url}/v1/preauth/validateAuth", auth=("admin", key), timeout=30).json()["accessToken"]
    cfg.update(url=srv.url, api_key=key, token=token, data_mart_id=service.data_mart_id, auth=auth)
    out = run_notebook(venv_python("openscale-v1"), "notebook_v1", cfg, tmp_path)

    assert out["data_mart_id"] == service.data_mart_id
    assert out["bindings"] == [out["binding_uid"]]
    assert {"credit-amount", "credit-risk", "loan-purpose"} <= set(out["deployments"])
    sub_id = out["subscription_uid"]
    assert out["subscriptions"] == [sub_id]
    with native(srv.url, key) as c:
        sub = c.get(f"/v1/subscriptions/{sub_id}").json()
        assert sub["binding_id"] == out["binding_uid"] and sub["deployment_id"] == "credit-risk"
        assert sub["layout"]["labels"] == credit.LABELS  # from the training distributions the SDK sent
        assert out["payload_count"] == total(c, sub_id, "payloads") == 120
        assert total(c, sub_id, "feedback") == 120
        assert out["payload_table_rows"] == 5
        assert out["payload_table_columns"][:2] == ["scoring_id", "scoring_timestamp"]
        assert out["fairness_status"] == "FINISHED" and out["quality_status"] == "completed"
        # quality: one row per metric, values and limits as Scrutiny measured them
        mq = measurement(c, sub_id, out["quality_run_id"])
        table = out["quality_table"]
        rows = [dict(zip(table["fields"], v, strict=True)) for v in table["values"]]
        assert {r["id"]: r["value"] for r in rows} == mq["values"]
        assert {r["measurement_id"] for r in rows} == {mq["id"]}
        auc = next(r for r in rows if r["id"] == "area_under_roc")
        assert auc["lower limit"] == 0.7 and auc["value"] == mq["values"]["area_under_roc"] is not None
        # fairness: per attribute and group, as Scrutiny's v1 rows
        mf = c.get(f"/v1/subscriptions/{sub_id}/measurements", params={"monitor": "fairness"}).json()["measurements"][0]
        table = out["fairness_table"]
        rows = [dict(zip(table["fields"], v, strict=True)) for v in table["values"]]
        monitored = [r for r in mf["details"]["fairness_metrics"] if r["group"] == "monitored"]
        assert len(rows) == len(monitored) == 2
        for r, m in zip(rows, monitored, strict=True):
            assert (r["feature"], r["feature_value"], r["fairness_value"], r["fairness_biased"]) == (
                m["feature"],
                m["feature_value"],
                m["fairness_value"],
                m["fairness_biased"],
            )
            assert r["fairness_value"] == mf["values"][f"fairness_value.{r['feature']}"]
        assert [r["fairness_biased"] for r in rows] == [True, True]  # both below the SDK's 0.95
        # a custom monitor: stored values are measurements, read back with their limits
        assert out["custom_monitor"] == "model_health"
        posted = c.get(f"/v1/subscriptions/{sub_id}/measurements", params={"monitor": "model_health"}).json()
        table = out["custom_table"]
        rows = [dict(zip(table["fields"], v, strict=True)) for v in table["values"]]
        assert len(rows) == 4 and {r["tags"] for r in rows} == {"region: us-south"}
        for m in posted["measurements"]:
            got = {r["id"]: (r["value"], r["lower limit"]) for r in rows if r["measurement_id"] == m["id"]}
            assert got == {
                "sensitivity": (m["values"]["sensitivity"], 0.9),
                "specificity": (m["values"]["specificity"], 0.75),
            }
