"""The payload table's queries on both stores: keyset pages visit every row once in order, both
ways; bounded filter scans find exactly the matching rows; counts and exports agree with pandas."""

from __future__ import annotations

import io
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from scrutiny.demo import credit
from scrutiny.errors import InvalidInput
from scrutiny.web.queries import payload as pq
from tests.support.monitors import T0, payload_records, subscribe_credit
from tests.support.web import sign_in

N_RECORDS = 120
ROWS_PER_RECORD = 3  # rows of one record share a timestamp: ties the keyset order must break


@pytest.fixture
def stored(service, engine_server):  # type: ignore[no-untyped-def]
    sub = subscribe_credit(service, engine_server.url)
    frame = credit.load_german().iloc[: N_RECORDS * ROWS_PER_RECORD].reset_index(drop=True)
    rng = np.random.default_rng(4)
    # several records per second, some at the very same instant
    seconds = np.sort(rng.integers(0, 90, N_RECORDS))
    times = [T0 + timedelta(seconds=int(s)) for s in seconds]
    recs = payload_records(
        frame, times, [int(x) for x in rng.integers(5, 50, N_RECORDS)], rows_per_record=ROWS_PER_RECORD
    )
    assert service.payloads.store(sub.id, recs).stored == N_RECORDS * ROWS_PER_RECORD
    table = pd.concat(list(service.payloads.frame_chunks(sub.id)), ignore_index=True)
    table = table.sort_values(["scoring_timestamp", "scoring_id"], ascending=False, ignore_index=True)
    return sub, table


def walk(conn, sub, query: pq.PayloadQuery, direction: str = "older") -> list[list[str]]:  # type: ignore[no-untyped-def]
    pages = []
    for _ in range(1000):
        page = pq.read_page(conn, sub, query)
        pages.append([r["scoring_id"] for r in page.rows])
        cursor = page.older if direction == "older" else page.newer
        if cursor is None:
            return pages
        if direction == "older":
            query = pq.PayloadQuery(query.start, query.end, query.conditions, before=cursor, limit=query.limit)
        else:
            query = pq.PayloadQuery(query.start, query.end, query.conditions, after=cursor, limit=query.limit)
    raise AssertionError("paging does not end")


def test_pages_visit_every_row_once_newest_first_and_back(service, stored) -> None:  # type: ignore[no-untyped-def]
    sub, table = stored
    with service.store.engine.connect() as conn:
        pages = walk(conn, sub, pq.PayloadQuery(limit=7))
        seen = [i for p in pages for i in p]
        assert seen == table["scoring_id"].tolist()
        assert all(len(p) == 7 for p in pages[:-1])
        # from the last page, "newer" walks back to the first page
        last = pq.read_page(
            conn,
            sub,
            pq.PayloadQuery(
                before=pq.Cursor(table["scoring_timestamp"].iloc[-8].to_pydatetime(), table["scoring_id"].iloc[-8]),
                limit=7,
            ),
        )
        assert [r["scoring_id"] for r in last.rows] == table["scoring_id"].iloc[-7:].tolist()
        back = walk(conn, sub, pq.PayloadQuery(after=last.newer, limit=7), direction="newer")
        ids = table["scoring_id"].tolist()
        # each step shows the 7 rows just newer than the page before it...
        expected_end = len(ids) - 7
        for p in back[:-1]:
            assert p == ids[expected_end - 7 : expected_end]
            expected_end -= 7
        # ...and the top of the table is shown as the full first page
        assert back[-1] == pages[0]


def test_window_and_counts_agree_with_pandas(service, stored) -> None:  # type: ignore[no-untyped-def]
    sub, table = stored
    start, end = T0 + timedelta(seconds=20), T0 + timedelta(seconds=60)
    ts = table["scoring_timestamp"]
    inside = table[(ts >= pd.Timestamp(start)) & (ts < pd.Timestamp(end))]
    conds = pq.parse_conditions(sub, ["Age", "Sex"], ["ge", "eq"], ["40", "male"])
    expected = inside[(inside["Age"] >= 40) & (inside["Sex"] == "male")]
    with service.store.engine.connect() as conn:
        query = pq.PayloadQuery(start, end, conds, limit=5)
        page = pq.read_page(conn, sub, query)
        assert page.window_rows == len(inside)
        assert pq.count_matches(conn, sub, query) == len(expected)
        assert [r["scoring_id"] for r in page.rows] == expected["scoring_id"].iloc[:5].tolist()


@pytest.mark.parametrize("scan", [1, 23, 500])
def test_bounded_scans_find_every_match_exactly_once(service, stored, monkeypatch, scan: int) -> None:  # type: ignore[no-untyped-def]
    """However small the scan budget, following "older" finds the filtered rows in order."""
    sub, table = stored
    monkeypatch.setattr(pq, "SCAN_ROWS", scan)
    conds = pq.parse_conditions(sub, ["prediction", "LoanAmount"], ["eq", "gt"], ["Risk", "4000"])
    expected = table[(table["prediction"] == "Risk") & (table["LoanAmount"] > 4000)]["scoring_id"].tolist()
    assert 0 < len(expected) < len(table)
    with service.store.engine.connect() as conn:
        pages = walk(conn, sub, pq.PayloadQuery(conditions=conds, limit=6))
        assert [i for p in pages for i in p] == expected
        if scan == 1:
            assert any(len(p) == 0 for p in pages)  # stretches without a match say so and go on
        else:
            assert len(pages) < 200


def test_a_filter_that_matches_nothing_stops_at_the_end(service, stored, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    sub, table = stored
    monkeypatch.setattr(pq, "SCAN_ROWS", 100)
    conds = pq.parse_conditions(sub, ["Age"], ["gt"], ["500"])
    with service.store.engine.connect() as conn:
        pages = walk(conn, sub, pq.PayloadQuery(conditions=conds, limit=10))
    assert all(p == [] for p in pages)
    assert len(pages) == -(-len(table) // 100)


@pytest.mark.parametrize(
    ("col", "op", "val", "field", "message"),
    [
        ("Age", "gt", "old", "Age", "not a number"),
        ("Nope", "eq", "1", "Nope", "no such payload column"),
        ("Age", "contains", "3", "Age", "text columns"),
        ("probability", "eq", "1", "probability", "cannot be filtered"),
        ("Sex", "like", "x", "Sex", "unknown operator"),
        ("LoanAmount", "lt", "nan", "LoanAmount", "finite"),
    ],
)
def test_bad_filters_name_the_column(service, stored, col, op, val, field, message) -> None:  # type: ignore[no-untyped-def]
    sub, _ = stored
    with pytest.raises(InvalidInput) as e:
        pq.parse_conditions(sub, [col], [op], [val])
    assert e.value.context["field"] == field and message in e.value.message


def test_text_filters_escape_like_wildcards(service, stored) -> None:  # type: ignore[no-untyped-def]
    sub, table = stored
    with service.store.engine.connect() as conn:
        for text, expected in [("%", 0), ("_", int(table["CheckingStatus"].str.contains("_").sum())), ("less", None)]:
            conds = pq.parse_conditions(sub, ["CheckingStatus"], ["contains"], [text])
            n = pq.count_matches(conn, sub, pq.PayloadQuery(conditions=conds))
            want = expected if expected is not None else int(table["CheckingStatus"].str.contains(text).sum())
            assert n == want, text


def test_export_applies_the_window_and_filters(web, service, stored) -> None:  # type: ignore[no-untyped-def]
    import httpx

    sub, table = stored
    srv, _, key = web
    expected = table[(table["Sex"] == "female") & (table["prediction"] == "No Risk")]
    expected = expected.sort_values(["scoring_timestamp", "scoring_id"], ignore_index=True)
    params = {"prediction": "No Risk", "col": "Sex", "op": "eq", "val": "female"}
    with httpx.Client(base_url=srv.url, follow_redirects=False, timeout=30) as c:
        sign_in(c, key)
        csv = c.get(f"/subscriptions/{sub.id}/export", params={**params, "format": "csv"})
        assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
        got = pd.read_csv(io.StringIO(csv.text))
        assert got["scoring_id"].tolist() == expected["scoring_id"].tolist()
        parquet = c.get(f"/subscriptions/{sub.id}/export", params={**params, "format": "parquet"})
        frame = pd.read_parquet(io.BytesIO(parquet.content))
        assert frame["scoring_id"].tolist() == expected["scoring_id"].tolist()
        assert frame["LoanAmount"].tolist() == expected["LoanAmount"].tolist()
        bad = c.get(f"/subscriptions/{sub.id}/export", params={"format": "xlsx"})
        assert bad.status_code == 422 and "csv or parquet" in bad.text
