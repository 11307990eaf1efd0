"""Every value a payload row can hold comes back exactly as it was sent, on both stores.

On PostgreSQL rows are written by ``COPY ... (FORMAT csv)`` from text Arrow formats, so this
pins what that text must preserve: quotes, commas, tabs, newlines and backslashes in strings,
the empty string as distinct from NULL, integers beyond 2**31, shortest round-trip floats,
booleans, JSON meta values and probability vectors. The row-by-row fallback must store the same.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pyarrow as pa
import pytest

from scrutiny.ingest import batch as batch_module
from scrutiny.service import Service

TRICKY = ['plain', 'with "quotes"', "comma, and; semicolon", "tab\there", "line\nbreak\r\nend", "back\\slash", "", "NULL", "\\N", "ünïcödé ✓", " padded "]  # fmt: skip
FLOATS = [
    0.1 + 0.2,
    1e-300,
    5e-324,
    2.5e20,
    -1.5e-7,
    123456789.123456789,
    1 / 3,
    7.0,
    1e16,
    -2.2250738585072014e-308,
    0.5,
]


def subscribe(service: Service) -> Any:
    binding = service.bindings.create(name="values", engine_type="custom", credentials={})
    binding = binding[0] if isinstance(binding, tuple) else binding
    return service.subscriptions.create(
        binding_id=binding.id,
        deployment={"name": "values model", "scoring_url": "http://127.0.0.1:9/score"},
        asset_properties={
            "problem_type": "multiclass",
            "feature_fields": ["x", "n", "s", "flag"],
            "labels": ["a", "b", "c"],
            "input_data_schema": [
                {"name": "x", "type": "double"},
                {"name": "n", "type": "integer"},
                {"name": "s", "type": "string"},
                {"name": "flag", "type": "boolean"},
            ],
        },
    )


def tricky_records() -> list[dict[str, Any]]:
    recs = []
    for i, text in enumerate(TRICKY):
        probs = [[0.1 * (i % 3), 1 - 0.1 * (i % 3) - 1e-12, 1e-12]]
        recs.append(
            {
                "scoring_id": f"v{i}",
                "scoring_timestamp": f"2026-03-0{1 + i % 9}T10:11:12.{i:06d}Z",
                "response_time": 5 + i,
                "request": {
                    "fields": ["x", "n", "s", "flag"],
                    "values": [[FLOATS[i], 2**40 + i if i % 4 else None, text, None if i == 3 else i % 2 == 0]],
                    "meta": {
                        "fields": ["note", "tags", "count"],
                        "values": [[text if i % 2 else None, {"k": text, "l": [1, 2.5, None]}, i]],
                    },
                },
                "response": {"fields": ["prediction", "probability"], "values": [["abc"[i % 3], probs[0]]]},
            }
        )
    return recs


def stored_rows(service: Service, sub_id: str) -> dict[str, dict[str, Any]]:
    total, rows = service.payloads.read(sub_id, limit=1000)
    assert total == len(TRICKY)
    return {r["scoring_id"]: r for r in rows}


def check(rows: dict[str, dict[str, Any]]) -> None:
    for i, text in enumerate(TRICKY):
        row = rows[f"v{i}-1"]
        assert row["s"] == text, i
        assert row["note"] == (text if i % 2 else None), i
        assert row["x"] == FLOATS[i] and repr(row["x"]) == repr(FLOATS[i]), i  # bit-exact
        assert row["n"] == (2**40 + i if i % 4 else None), i
        assert row["flag"] == (None if i == 3 else i % 2 == 0), i
        assert row["tags"] == {"k": text, "l": [1, 2.5, None]}, i
        assert row["count"] == i
        assert row["prediction"] == "abc"[i % 3]
        assert row["probability"] == [0.1 * (i % 3), 1 - 0.1 * (i % 3) - 1e-12, 1e-12], i
        assert row["response_time"] == 5 + i
        sent = f"2026-03-0{1 + i % 9}T10:11:12.{i:06d}+00:00"
        assert datetime.fromisoformat(row["scoring_timestamp"]) == datetime.fromisoformat(sent), i


def test_values_round_trip_exactly(service: Service) -> None:
    sub = subscribe(service)
    result = service.payloads.store(sub.id, tricky_records())
    assert result.stored == len(TRICKY)
    check(stored_rows(service, sub.id))
    # a retry stores nothing more, on either write path
    assert service.payloads.store(sub.id, tricky_records()).stored == 0


def test_row_by_row_fallback_stores_the_same(service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def refuse(*args: Any) -> bytes:
        calls.append(1)
        raise pa.ArrowInvalid("refused for the test")

    monkeypatch.setattr("scrutiny.ingest.writer.csv_for", refuse)
    sub = subscribe(service)
    assert service.payloads.store(sub.id, tricky_records()).stored == len(TRICKY)
    check(stored_rows(service, sub.id))
    assert calls or service.store.dialect != "postgresql"  # PostgreSQL tried COPY CSV first


def test_array_literals_null_a_row_with_nan() -> None:
    import numpy as np

    prob = np.array([[0.25, 0.75], [np.nan, 1.0], [1e-300, 1.0]])
    assert batch_module._array_literals(prob) == ["{0.25,0.75}", None, "{1e-300,1.0}"]
