"""Payload ingest, end to end: SDK -> REST -> store, beside raw inserts of the same rows.

    python bench/ingest.py [--rows 200000] [--batch 1000] [--backends sqlite,postgresql]

For each backend, a real ``scrutiny serve`` process on loopback receives batches of ``--batch``
records (one row each, 20 numeric + 5 categorical features, prediction and probability: the
peer baselines' shape) from the SDK:

* ``sdk_dataframe``: ``payload_logging.store(inputs_df, outputs_df)`` (Arrow batches);
* ``sdk_records``: ``payload_logging.store([PayloadRecord, ...])`` (Arrow batches built from records);
* ``rest_json``: OpenScale-shaped JSON records posted as-is (what a non-Python client sends).

The baseline, in the same run: the same rows inserted directly into an identical table (same
columns, same primary key) with ``executemany`` in one transaction (SQLite) or ``COPY`` of
CSV text formatted before the clock starts (PostgreSQL), timing only the insert. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import FEATURES, emit, make_frame, make_outputs, peak_rss_mb, pg_available, pg_schema, server

PG_URL = os.environ.get("SCRUTINY_BENCH_PG_URL", "postgresql+psycopg://127.0.0.1:5432/test")


def subscribe(client: Any) -> Any:
    b = client.bindings.create(name="bench", engine_type="custom", credentials={})
    return client.subscriptions.create(
        binding_id=b.id,
        deployment={"name": "bench model", "scoring_url": "http://127.0.0.1:9/score"},
        asset_properties={
            "problem_type": "binary",
            "feature_fields": FEATURES,
            "labels": ["bad", "good"],
            "input_data_schema": [{"name": f, "type": "double" if f.startswith("num") else "string"} for f in FEATURES],
        },
    )


def json_bodies(inputs: Any, outputs: Any, batch: int, prefix: str) -> list[bytes]:
    vals = inputs.values.tolist()
    preds = outputs["prediction"].tolist()
    probs = [p.tolist() for p in outputs["probability"]]
    bodies = []
    for start in range(0, len(vals), batch):
        recs = [
            {
                "scoring_id": f"{prefix}{i}",
                "request": {"fields": FEATURES, "values": [vals[i]]},
                "response": {"fields": ["prediction", "probability"], "values": [[preds[i], probs[i]]]},
            }
            for i in range(start, min(len(vals), start + batch))
        ]
        bodies.append(orjson.dumps(recs))
    return bodies


def run_backend(name: str, url: str | None, rows: int, batch: int) -> dict[str, Any]:
    from scrutiny.sdk import Client, PayloadRecord

    inputs = make_frame(rows, seed=1)
    outputs = make_outputs(rows, seed=1)
    out: dict[str, Any] = {}
    with server(url) as (api, key, pid):
        client = Client(api, key, timeout=120)
        sub = subscribe(client)
        store = sub.payload_logging
        store.store(inputs.head(batch), outputs.head(batch), scoring_ids=[f"warm{i}" for i in range(batch)])  # warm-up

        t0 = time.perf_counter()
        res = store.store(inputs, outputs, scoring_ids=[f"df{i}" for i in range(rows)], batch_size=batch)
        dt = time.perf_counter() - t0
        assert res["stored"] == rows, res
        out["sdk_dataframe"] = {"rows": rows, "seconds": round(dt, 3), "rows_per_s": round(rows / dt)}

        vals = inputs.values.tolist()
        preds = outputs["prediction"].tolist()
        probs = [p.tolist() for p in outputs["probability"]]
        t0 = time.perf_counter()
        recs = [
            PayloadRecord(
                request={"fields": FEATURES, "values": [vals[i]]},
                response={"fields": ["prediction", "probability"], "values": [[preds[i], probs[i]]]},
                scoring_id=f"rec{i}",
            )
            for i in range(rows)
        ]
        res = store.store(recs, batch_size=batch)
        dt = time.perf_counter() - t0
        assert res["stored"] == rows, res
        out["sdk_records"] = {
            "rows": rows,
            "seconds": round(dt, 3),
            "rows_per_s": round(rows / dt),
            "includes_building_records": True,
        }

        json_rows = min(rows, 100_000)
        bodies = json_bodies(inputs.head(json_rows), outputs.head(json_rows), batch, "js")
        path = f"/v1/subscriptions/{sub.id}/payloads"
        t0 = time.perf_counter()
        stored = 0
        for body in bodies:
            stored += client.request("POST", path, content=body, headers={"Content-Type": "application/json"}).json()[
                "stored"
            ]
        dt = time.perf_counter() - t0
        assert stored == json_rows
        out["rest_json"] = {"rows": json_rows, "seconds": round(dt, 3), "rows_per_s": round(json_rows / dt)}
        out["server_peak_rss_mb"] = peak_rss_mb(pid)
        layout = sub.refresh().layout
        client.close()
    out["raw_baseline"] = raw_baseline(name, url, layout, inputs, outputs, batch)
    base = out["raw_baseline"]["rows_per_s"]
    ready = out["raw_baseline"].get("ready_csv_copy", {}).get("rows_per_s")
    for k in ("sdk_dataframe", "sdk_records", "rest_json"):
        out[k]["share_of_raw"] = round(out[k]["rows_per_s"] / base, 3)
        if ready:
            out[k]["share_of_ready_csv_copy"] = round(out[k]["rows_per_s"] / ready, 3)
    return out


def raw_baseline(
    name: str, url: str | None, layout: dict[str, Any], inputs: Any, outputs: Any, batch: int
) -> dict[str, Any]:
    """The same rows straight into an identical table: the driver's fastest path, insert time only."""
    from scrutiny.core.subscription import Layout
    from scrutiny.ingest.writer import table_columns
    from scrutiny.store import records as rec_tables
    from scrutiny.store.database import create_db_engine

    lay = Layout.from_dict(layout)
    lay.payload_table = "raw_baseline"
    cols = table_columns(lay, "payload")
    n = len(inputs)
    ts = np.datetime_as_string(np.datetime64("2026-01-01T00:00:00", "us") + np.arange(n) * 10_000, unit="us")
    p1 = outputs["probability"].map(lambda p: float(p[1])).to_numpy()
    columns: dict[str, list[Any]] = {
        "scoring_id": [f"raw{i}-1" for i in range(n)],
        "deployment_id": ["d"] * n,
        "asset_revision": [None] * n,
        "prediction": outputs["prediction"].tolist(),
        "prediction_probability": np.maximum(p1, 1 - p1).tolist(),
        "response_time": [None] * n,
    }
    for f in FEATURES:
        columns[f] = inputs[f].tolist()
    with tempfile.TemporaryDirectory() as d:
        eng = create_db_engine(url or f"sqlite:///{d}/raw.db", sqlite_synchronous="FULL")
        with eng.begin() as conn:
            rec_tables.create(conn, "raw_baseline", rec_tables.spec(cols))
        if name == "sqlite":
            columns["scoring_timestamp"] = [t.replace("T", " ") for t in ts.tolist()]
            columns["probability"] = [orjson.dumps(p.tolist()).decode() for p in outputs["probability"]]
        else:
            columns["scoring_timestamp"] = [t + "+00" for t in ts.tolist()]
            columns["probability"] = [p.tolist() for p in outputs["probability"]]
        rows = list(zip(*[columns[c] for c, _ in cols], strict=True))
        names = ", ".join(f'"{c}"' for c, _ in cols)
        out: dict[str, Any] = {"rows": n}
        if name == "sqlite":
            sql = f"INSERT INTO raw_baseline ({names}) VALUES ({', '.join('?' * len(cols))})"

            def executemany(raw: Any, cur: Any) -> None:
                raw.execute("BEGIN")
                cur.executemany(sql, rows)
                raw.execute("COMMIT")

            dt = timed_raw(eng, executemany)
            out.update(
                seconds=round(dt, 3), rows_per_s=round(n / dt), method="executemany, one transaction, synchronous=FULL"
            )
        else:

            def copy_rows(raw: Any, cur: Any) -> None:
                with cur.copy(f"COPY raw_baseline ({names}) FROM STDIN") as cp:
                    for r in rows:
                        cp.write_row(r)
                raw.commit()

            dt = timed_raw(eng, copy_rows)
            out.update(seconds=round(dt, 3), rows_per_s=round(n / dt), method="COPY, psycopg write_row per row")
            # a stronger reference: CSV text formatted before the clock starts (insert time only)
            columns["scoring_id"] = [f"csv{i}-1" for i in range(n)]
            columns["probability"] = ["{" + ",".join(map(repr, p)) + "}" for p in columns["probability"]]
            csv_text = pd.DataFrame({c: columns[c] for c, _ in cols}).to_csv(index=False, header=False).encode()

            def copy_text(raw: Any, cur: Any) -> None:
                with cur.copy(f"COPY raw_baseline ({names}) FROM STDIN (FORMAT csv)") as cp:
                    cp.write(csv_text)
                raw.commit()

            dt = timed_raw(eng, copy_text)
            out["ready_csv_copy"] = {"seconds": round(dt, 3), "rows_per_s": round(n / dt)}
        eng.dispose()
    return out


def timed_raw(eng: Any, insert: Any) -> float:
    """Seconds taken by ``insert(driver connection, cursor)`` on a raw DB-API connection."""
    raw = eng.raw_connection()
    try:
        cur = raw.cursor()
        t0 = time.perf_counter()
        insert(raw.driver_connection, cur)
        return time.perf_counter() - t0
    finally:
        raw.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--backends", default="sqlite,postgresql")
    a = ap.parse_args()
    result: dict[str, Any] = {
        "bench": "ingest",
        "rows": a.rows,
        "batch_records": a.batch,
        "targets": {"sqlite_rows_per_s": 100_000, "postgresql_rows_per_s": 70_000, "share_of_raw": 0.4},
    }
    for backend in a.backends.split(","):
        if backend == "sqlite":
            result["sqlite"] = run_backend("sqlite", None, a.rows, a.batch)
        elif backend == "postgresql":
            reason = pg_available(PG_URL)
            if reason:
                result["postgresql"] = {"skipped": reason}
                continue
            with pg_schema(PG_URL) as url:
                result["postgresql"] = run_backend("postgresql", url, a.rows, a.batch)
    emit(result)


if __name__ == "__main__":
    main()
