"""Builders for the lake and executor tests: a credit subscription whose rows have nulls, unseen
categories and several hours, its rows as several Parquet files, and partials in a form that
compares exactly (integer counts) or to 1e-12 (floats)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import sqlalchemy as sa

from scrutiny.demo import credit
from scrutiny.ingest.batch import RecordBatch
from scrutiny.ingest.writer import table_columns
from scrutiny.lake.arrow import to_arrow
from scrutiny.monitors import registry
from scrutiny.monitors.builtin.drift.histograms import DriftHistograms
from scrutiny.monitors.builtin.fairness.counting import FairnessCounts
from scrutiny.monitors.executors import ParquetFiles, Shape, Task
from scrutiny.monitors.partials import unpack
from scrutiny.monitors.run.reader import read_batches
from scrutiny.monitors.tables import monitor_configs, monitor_partials
from tests.support.monitors import T0, fit_classifier, log_feedback, log_predictions, spread, subscribe_frame

MONITORS = ["drift", "fairness", "quality", "performance"]
FAIRNESS = {
    "features": [
        {"feature": "Sex", "majority": ["male"], "minority": ["female"]},
        {"feature": "Age", "majority": [[26, 75]], "minority": [[19, 25]]},
    ],
    "favourable_class": ["No Risk"],
    "unfavourable_class": ["Risk"],
    "min_records": 50,
}
CONFIGS: dict[str, dict[str, Any]] = {
    "drift": {"min_samples": 50, "enable_model_drift": False, "enable_data_drift": False},
    "fairness": FAIRNESS,
    "quality": {"max_rows_per_evaluation": None, "min_feedback_data_size": 50},
    "performance": {"window_minutes": 7 * 24 * 60},
}


def lake_subscription(service: Any, engine_url: str, rows: int = 400, hours: int = 7, seed: int = 3) -> Any:
    """A credit subscription with every built-in monitor on, then ``rows`` payload rows over
    ``hours`` hours (nulls in numbers and categories, a category training never saw) and
    feedback for most of them: partials are built at ingest, the in-process path."""
    data = credit.load_german()
    train = data.iloc[:500]
    test = data.iloc[500 : 500 + rows].reset_index(drop=True)
    model = fit_classifier(train, credit.FEATURES, credit.CATEGORICAL_FEATURES, credit.LABEL)
    sub = subscribe_frame(
        service, engine_url, data, name="credit-lake", problem_type="binary", label=credit.LABEL,
        features=credit.FEATURES, categorical=credit.CATEGORICAL_FEATURES,
    )  # fmt: skip
    for name in MONITORS:
        service.monitors.configure(sub.id, name, CONFIGS[name])
    proba = model.predict_proba(test[credit.FEATURES])
    pred = np.asarray(model.classes_, dtype=object)[proba.argmax(axis=1)]
    rng = np.random.default_rng(seed)
    frame = test.astype(object)
    frame.loc[rng.random(rows) < 0.1, "LoanAmount"] = None
    frame.loc[rng.random(rows) < 0.1, "Sex"] = None
    frame.loc[rng.random(rows) < 0.05, "CheckingStatus"] = "never_seen_in_training"
    times = spread(rows, T0, timedelta(hours=hours), seed=seed)
    ids = log_predictions(service, sub, frame, credit.FEATURES, pred, proba, times, prefix="k", batch=70)
    labelled = np.flatnonzero(rng.random(rows) < 0.8)
    fb_times = spread(len(labelled), T0 + timedelta(minutes=30), timedelta(hours=hours), seed=seed + 1)
    log_feedback(
        service,
        sub,
        [ids[i] for i in labelled],
        test[credit.LABEL].to_numpy()[labelled].tolist(),
        fb_times,
        batch=60,
    )
    return service.subscriptions.get(sub.id)


def export_parquet(service: Any, sub: Any, kind: str, directory: Path, files: int = 3) -> ParquetFiles:
    """The table's rows as ``files`` Parquet files, rows dealt round-robin so every hour spans files."""
    with service.store.engine.connect() as conn:
        parts = list(read_batches(conn, sub, kind))
    batch = RecordBatch.concat(parts)
    table = to_arrow(batch, table_columns(sub.layout, kind))
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(files):
        path = directory / f"{kind}-{i}.parquet"
        pq.write_table(table.take(np.arange(i, table.num_rows, files)), path, row_group_size=50)
        paths.append(str(path))
    return ParquetFiles(tuple(paths))


def shape(sub: Any, kind: str) -> Shape:
    return Shape.of(table_columns(sub.layout, kind))


def task(service: Any, sub: Any, monitor: str) -> tuple[Task, str]:
    """The monitor's stored plan as a task, and its plan id."""
    c = monitor_configs.c
    with service.store.engine.connect() as conn:
        row = conn.execute(sa.select(c.plan, c.plan_id).where(c.subscription_id == sub.id, c.monitor == monitor)).one()
    return Task(monitor, row.plan), row.plan_id


def stored_partials(service: Any, sub: Any, monitor: str, plan_id: str) -> dict[np.datetime64, tuple[Any, int]]:
    """The in-process path's partials (built at ingest), merged per bucket, with their rows."""
    mon = registry.get(monitor)
    c = monitor_partials.c
    out: dict[np.datetime64, tuple[Any, int]] = {}
    with service.store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(c.bucket, c.rows, c.state).where(
                c.subscription_id == sub.id, c.monitor == monitor, c.plan_id == plan_id
            )
        ).all()
    for r in rows:
        key = np.datetime64(r.bucket.replace(tzinfo=None), "h")
        p = mon.load_partial(bytes(r.state))
        prev = out.get(key)
        out[key] = (p, int(r.rows)) if prev is None else (prev[0].merge(p), prev[1] + int(r.rows))
    return out


def canonical(partial: Any) -> Any:
    """A partial as plain values that do not depend on merge order (keys sorted)."""
    if isinstance(partial, FairnessCounts):
        return {
            "rows": partial.rows,
            "first": partial.first,
            "last": partial.last,
            "fingerprints": partial.fingerprints,
            "attributes": {
                name: {
                    (repr(r), repr(c)): int(table.counts[i, j])
                    for i, r in enumerate(table.rows)
                    for j, c in enumerate(table.cols)
                    if table.counts[i, j]
                }
                for name, table in partial.attributes.items()
            },
        }
    if isinstance(partial, DriftHistograms):
        return {
            "fingerprint": partial.fingerprint,
            "rows": partial.rows,
            "counts": partial.counts,
            "unseen": partial.unseen,
        }
    return unpack(partial.to_bytes())


def assert_same(a: Any, b: Any, where: str = "") -> None:
    """Integers (and integer arrays) exactly, floats to 1e-12."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), (where, sorted(map(str, a)), sorted(map(str, b)))
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        x, y = np.asarray(a), np.asarray(b)
        assert x.shape == y.shape, (where, x.shape, y.shape)
        if x.dtype.kind == "f" or y.dtype.kind == "f":
            np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12, err_msg=where)
        else:
            assert np.array_equal(x, y), where
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert a == b or abs(a - b) <= 1e-12 * max(1.0, abs(a), abs(b)), (where, a, b)
    else:
        assert a == b, (where, a, b)
