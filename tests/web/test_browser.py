"""End to end in a real browser (Debian's Chromium driven by Playwright): the demo engine scored
over HTTP, payload and feedback logged, monitors run; then a person signs in, reads the tile,
opens the charts and clicks a point, filters the payload table, drills into details, and the
numbers on screen are the API's. Screenshots go to ``test-artifacts/dashboard/``."""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from scrutiny._server import BackgroundServer
from scrutiny.config import Settings
from scrutiny.service import Service
from scrutiny.web import login_link
from scrutiny.web.render import num
from tests.support.dashboard import Scenario, build

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("SCRUTINY_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"


@pytest.fixture(scope="module")
def site(engine_server, tmp_path_factory) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    from scrutiny.api.app import create_app

    service = Service(Settings(data_dir=tmp_path_factory.mktemp("browser"), sqlite_synchronous="OFF"))
    try:
        scenario = build(service, engine_server.url)
        app = create_app(service=service)
        key = service.keys.ensure_admin_key()
        with BackgroundServer(app) as srv:
            yield {"service": service, "scenario": scenario, "url": srv.url, "key": key, "app": app}
    finally:
        service.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM}: run scripts/test-setup.sh (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[test]' installs playwright")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, site, request) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    """A fresh browser context (no cookies); fails the test on any script error, console error or
    failed subresource (a page itself may answer 401/403/404/422 on purpose)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    pg = context.new_page()
    problems: list[str] = []
    pg.on("pageerror", lambda e: problems.append(f"script error: {e}"))
    pg.on(
        "console",
        lambda m: (
            problems.append(f"console: {m.text}")
            if m.type == "error" and not m.text.startswith("Failed to load resource")
            else None
        ),
    )
    pg.on(
        "response",
        lambda r: (
            problems.append(f"{r.status} for {r.url}")
            if r.status >= 400 and r.request.resource_type != "document"
            else None
        ),
    )
    pg.set_default_timeout(20_000)
    yield pg
    context.close()
    assert not problems, problems


@pytest.fixture
def api(site) -> Iterator[httpx.Client]:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=site["url"], headers={"Authorization": f"Bearer {site['key']}"}, timeout=60) as c:
        yield c


def latest(api: httpx.Client, sc: Scenario, monitor: str) -> dict[str, Any]:
    """The newest finished measurement, as the REST API gives it."""
    params = {"monitor": monitor, "status": "finished", "limit": 1}
    return dict(api.get(f"/v1/subscriptions/{sc.sub.id}/measurements", params=params).json()["measurements"][0])


def shot(pg: Any, name: str) -> None:
    pg.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def sign_in(pg: Any, site: dict[str, Any], path: str = "/") -> None:
    pg.goto(site["url"] + path)
    pg.wait_for_url(re.compile(r"/login\?next="))
    pg.fill("input[name=api_key]", site["key"])
    pg.click("form button[type=submit]")
    pg.wait_for_url(site["url"] + path)


def test_sign_in_and_read_the_subscription_tile(page, site, api) -> None:  # type: ignore[no-untyped-def]
    sc: Scenario = site["scenario"]
    pg = page
    pg.goto(site["url"] + "/")
    shot(pg, "01-login")
    pg.fill("input[name=api_key]", "scr_wrong")
    pg.click("form button[type=submit]")
    assert "not valid" in pg.inner_text("p.error")
    pg.fill("input[name=api_key]", site["key"])
    pg.click("form button[type=submit]")
    tile = pg.locator(f"article[data-subscription='{sc.sub.id}']")
    tile.wait_for()
    assert "credit-risk deployment" in tile.locator("h2").inner_text()
    total = api.get(f"/v1/subscriptions/{sc.sub.id}/payloads", params={"limit": 1}).json()["total"]
    assert tile.locator("dd.rows-24h").inner_text() == num(total)
    open_alerts = api.get("/v1/alerts", params={"status": "open", "subscription_id": sc.sub.id}).json()["alerts"]
    assert tile.locator("dd.open-alerts").inner_text() == str(len(open_alerts))
    accuracy = latest(api, sc, "quality")
    row = tile.locator("section[data-monitor=quality] tr[data-metric=accuracy]")
    assert row.locator("td.value").inner_text() == num(accuracy["values"]["accuracy"])
    assert "bad" in (row.get_attribute("class") or "")  # red: below its 0.8 lower limit
    color = row.locator("td.value").evaluate("e => getComputedStyle(e).color")
    assert color == "rgb(179, 38, 30)"
    shot(pg, "02-overview")


def test_charts_then_click_a_point_to_open_its_measurement(page, site, api) -> None:  # type: ignore[no-untyped-def]
    sc: Scenario = site["scenario"]
    pg = page
    sign_in(pg, site)
    pg.click(f"article[data-subscription='{sc.sub.id}'] footer a:has-text('Charts')")
    pg.wait_for_url(f"{site['url']}/subscriptions/{sc.sub.id}")
    fig = pg.locator("figure[data-metric=accuracy]")
    fig.locator(".plot[data-ready='1'] canvas").wait_for()
    assert (
        pg.locator("figure.chart .plot[data-ready='1']").count()
        == pg.locator("figure.chart:not(details:not([open]) figure)").count()
    )
    # folded metrics load their series when opened
    more = pg.locator("section.monitor-charts[data-monitor=fairness] details.more-charts")
    more.locator("summary").click()
    more.locator("figure .plot[data-ready='1']").first.wait_for()
    assert more.locator("figure .plot[data-ready='1']").count() == more.locator("figure").count() > 0
    shot(pg, "03-charts")
    runs = sc.runs["quality"]
    target = runs[2]
    # where the third run's point is drawn, in page pixels
    x, y = fig.evaluate(
        """(f, i) => { const u = f._uplot; const r = u.over.getBoundingClientRect();
           return [r.left + u.valToPos(u.data[0][i], 'x'), r.top + u.valToPos(u.data[1][i], 'y')]; }""",
        2,
    )
    pg.mouse.move(x, y)
    pg.mouse.click(x, y)
    pg.wait_for_url(f"{site['url']}/subscriptions/{sc.sub.id}/measurements/{target['id']}")
    shown = pg.locator("table.metric-table tr[data-metric=accuracy] td.value").inner_text()
    stored = api.get(f"/v1/subscriptions/{sc.sub.id}/measurements/{target['id']}").json()
    assert shown == num(stored["values"]["accuracy"])
    shot(pg, "04-measurement-quality")


def test_time_range_picker_narrows_the_charts(page, site) -> None:  # type: ignore[no-untyped-def]
    sc: Scenario = site["scenario"]
    pg = page
    sign_in(pg, site, f"/subscriptions/{sc.sub.id}")
    pg.click("a[data-range='24h']")
    pg.wait_for_url(re.compile(r"range=24h"))
    start = sc.runs["quality"][3]["timestamp"][:16]  # YYYY-MM-DDTHH:MM
    pg.fill("input[name=from]", start)
    pg.click("form.range-picker button[type=submit]")
    pg.wait_for_url(re.compile(r"from="))
    pg.locator("figure[data-metric=accuracy] .plot[data-ready='1']").wait_for()
    points = pg.locator("figure[data-metric=accuracy]").evaluate("f => f._uplot.data[0].length")
    assert points == len([m for m in sc.runs["quality"] if m["timestamp"][:16] >= start])


def test_filter_the_payload_table_and_export_it(page, site, api) -> None:  # type: ignore[no-untyped-def]
    sc: Scenario = site["scenario"]
    pg = page
    sign_in(pg, site, f"/subscriptions/{sc.sub.id}/payload")
    every = api.get(f"/v1/subscriptions/{sc.sub.id}/payloads", params={"limit": 10_000}).json()
    assert pg.inner_text("span.window-rows b") == num(every["total"])
    pg.select_option("select[name=prediction]", "Risk")
    pg.locator("select[name=col]").last.select_option("Age")
    pg.locator("select[name=op]").last.select_option("gt")
    pg.locator("input[name=val]").last.fill("30")
    pg.click("form.payload-filters button[type=submit]")
    pg.wait_for_url(re.compile(r"prediction=Risk"))
    expected = [r for r in every["rows"] if r["prediction"] == "Risk" and r["Age"] > 30]
    ids = pg.locator("table.payload tbody tr").evaluate_all("rows => rows.map(r => r.dataset.scoringId)")
    assert ids == [r["scoring_id"] for r in expected[:50]]
    ages = pg.locator("table.payload td[data-col=Age]").all_inner_texts()
    assert ages and all(int(a) > 30 for a in ages)
    assert pg.locator("span.chip").inner_text().startswith("Age > 30")
    pg.click("text=count the matches")
    pg.locator("span.match-count").wait_for()
    assert pg.inner_text("span.match-count b") == num(len(expected))
    shot(pg, "05-payload-filtered")
    with pg.expect_download() as dl:
        pg.click("a:has-text('CSV')")
    rows = list(csv.DictReader(io.StringIO(Path(dl.value.path()).read_text())))
    assert sorted(r["scoring_id"] for r in rows) == sorted(r["scoring_id"] for r in expected)
    # the page after this one continues where it stopped
    if len(expected) > 50:
        pg.click("a.older")
        nxt = pg.locator("table.payload tbody tr").evaluate_all("rows => rows.map(r => r.dataset.scoringId)")
        assert nxt == [r["scoring_id"] for r in expected[50:100]]


def test_quality_cell_drills_down_to_its_records(page, site) -> None:  # type: ignore[no-untyped-def]
    sc: Scenario = site["scenario"]
    pg = page
    sign_in(pg, site, f"/subscriptions/{sc.sub.id}/monitors/quality")
    cell = pg.locator("td[data-actual='Risk'][data-predicted='No Risk'] a")
    count = int(cell.inner_text())
    cell.click()
    pg.wait_for_url(re.compile(r"/records\?actual=Risk"))
    assert pg.locator("table.records tbody tr").count() == min(50, count)
    shot(pg, "06-quality-drill-down")


def test_fairness_and_drift_details(page, site, api) -> None:  # type: ignore[no-untyped-def]
    sc: Scenario = site["scenario"]
    pg = page
    sign_in(pg, site, f"/subscriptions/{sc.sub.id}/monitors/fairness")
    fairness = latest(api, sc, "fairness")
    for feature, entry in fairness["details"]["attributes"].items():
        section = pg.locator(f"section[data-feature='{feature}']")
        shown = entry.get("payload_perturbed") or entry["payload"]
        assert section.locator("b.fairness-value").inner_text() == num(shown["fairness_value"])
        section.locator("figure .plot[data-ready='1']").wait_for()
        width = section.locator(".bars .fill").first.evaluate("e => e.getBoundingClientRect().width")
        assert width > 0  # the bars are drawn, not just numbers
    shot(pg, "07-fairness")
    pg.click("nav.subnav a:has-text('Drift details')")
    pg.locator("div.drifted-features article").first.wait_for()
    assert pg.locator("div.drifted-features article svg rect.cur").count() > 0
    shot(pg, "08-drift")


def test_alerts_and_engines_pages(page, site, api) -> None:  # type: ignore[no-untyped-def]
    sc: Scenario = site["scenario"]
    pg = page
    sign_in(pg, site, "/alerts")
    open_ids = {a["id"] for a in api.get("/v1/alerts", params={"status": "open"}).json()["alerts"]}
    shown = set(pg.locator("section.alerts-open tr.alert").evaluate_all("rows => rows.map(r => r.dataset.alert)"))
    assert shown == open_ids and shown
    shot(pg, "09-alerts")
    pg.click("header nav a:has-text('Engines')")
    pg.locator(f"section[data-binding='{sc.sub.binding_id}'] .deployments[data-loaded='ok']").wait_for()
    assert pg.locator("tr[data-deployment='credit-risk']").inner_text().find("subscribed") >= 0
    shot(pg, "10-engines")
    pg.click("tr[data-deployment='loan-purpose'] a.subscribe-link")
    pg.wait_for_url(re.compile(r"/subscribe\?deployment_id=loan-purpose"))
    pg.click("summary:has-text('Propose the columns')")
    pg.fill("textarea[name=sample]", '{"fields": ["Age", "Sex", "Job"], "values": [[30, "male", "skilled"]]}')
    pg.click("button[data-propose-sample]")
    assert pg.input_value("textarea[name=feature_fields]") == "Age\nSex\nJob"
    assert pg.input_value("textarea[name=categorical_fields]") == "Sex\nJob"
    shot(pg, "11-subscribe")


def test_explain_a_row_from_the_payload_table(page, site, api) -> None:  # type: ignore[no-untyped-def]
    sc: Scenario = site["scenario"]
    pg = page
    sign_in(pg, site, f"/subscriptions/{sc.sub.id}/payload")
    row = pg.locator("table.payload tbody tr").nth(2)
    scoring_id = row.get_attribute("data-scoring-id")
    row.locator("a.explain-link").click()
    pg.wait_for_url(re.compile(r"/payload/.+#explain"))
    pg.click("form.explain-form button[type=submit]")
    pg.wait_for_url(re.compile(r"/explanations/"))
    eid = pg.url.rsplit("/", 1)[1]
    stored = api.get(f"/v1/subscriptions/{sc.sub.id}/explanations/{eid}").json()
    assert stored["status"] == "finished" and stored["scoring_id"] == scoring_id
    assert pg.inner_text("dd.prediction b") == stored["prediction"]
    section = pg.locator(f"section.contributions[data-class='{stored['prediction']}']")
    shown = section.locator("span.val").evaluate_all("vs => vs.map(v => Number(v.dataset.value))")
    assert shown == pytest.approx([c["weight"] for c in stored["contributions"]])
    widths = section.locator(".fill").evaluate_all("fs => fs.map(f => f.getBoundingClientRect().width)")
    biggest = max(range(len(shown)), key=lambda i: abs(shown[i]))
    assert widths[biggest] == max(widths) > 0  # the longest bar is the largest contribution
    if stored["pertinent_negative"]["exists"]:
        assert pg.inner_text("b.pn-prediction") == stored["pertinent_negative"]["prediction"]
    shot(pg, "12-explanation")


def test_one_time_login_link(browser, site) -> None:  # type: ignore[no-untyped-def]
    link = login_link(site["app"], site["url"], site["key"])
    first = browser.new_context()
    pg = first.new_page()
    pg.goto(link)
    assert pg.url == site["url"] + "/"
    assert pg.locator("article.tile").count() == 1
    first.close()
    second = browser.new_context()
    pg = second.new_page()
    pg.goto(link)
    assert "expired or was already used" in pg.inner_text("p.error")
    second.close()


def test_sign_out(page, site) -> None:  # type: ignore[no-untyped-def]
    pg = page
    sign_in(pg, site)
    pg.click("header form.who button")
    pg.wait_for_url(site["url"] + "/login")
    pg.goto(site["url"] + "/alerts")
    assert "/login?next=" in pg.url
