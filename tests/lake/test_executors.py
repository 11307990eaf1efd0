"""Every built-in monitor's partials computed by the executors (in this process, and in Spark's
``mapInArrow``) from Parquet files equal the ones the ingest path built, bucket by bucket."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from scrutiny.monitors import registry
from scrutiny.monitors.executors import InProcessExecutor, Scan, merge_partial_rows
from scrutiny.monitors.executors.rows import record_batch
from scrutiny.monitors.partials import mon_columns
from scrutiny.monitors.run.reader import read_all
from tests.support.lake import (
    MONITORS,
    assert_same,
    canonical,
    export_parquet,
    lake_subscription,
    shape,
    stored_partials,
    task,
)


@pytest.fixture
def lake_sub(service, engine_server, tmp_path: Path):  # type: ignore[no-untyped-def]
    sub = lake_subscription(service, engine_server.url)
    files = {kind: export_parquet(service, sub, kind, tmp_path / "lake", files=3) for kind in ("payload", "feedback")}
    return sub, files


def _compare(service, sub, files, executor) -> None:  # type: ignore[no-untyped-def]
    for name in MONITORS:
        mon = registry.get(name)
        t, plan_id = task(service, sub, name)
        scan = Scan(files[mon.table], [t], shape(sub, mon.table), mon_columns(mon, mon.load_plan(t.plan)) or [])
        merged = merge_partial_rows([t], executor.partial_rows(scan))[name]
        expected = stored_partials(service, sub, name, plan_id)
        assert len(expected) >= 7, name  # several hours
        assert sorted(merged) == sorted(expected), name
        for bucket, (partial, rows) in expected.items():
            got = merged[bucket]
            assert got.rows == rows, (name, bucket)
            assert_same(canonical(got.partial), canonical(partial), f"{name}@{bucket}")


def test_in_process_executor_equals_ingest_partials(service, lake_sub) -> None:
    sub, files = lake_sub
    _compare(service, sub, files, InProcessExecutor())


def test_spark_executor_equals_ingest_partials(service, lake_sub, spark_executor) -> None:
    sub, files = lake_sub
    _compare(service, sub, files, spark_executor)
    assert spark_executor.describe()["master"] == "local[2]"


def test_arrow_rows_read_back_as_the_store_reads_them(service, lake_sub) -> None:
    """The lake's Arrow form converts to the same arrays as the store's own reader gives."""
    sub, files = lake_sub
    from scrutiny.monitors.executors.inprocess import scan_batches

    with service.store.engine.connect() as conn:
        stored = read_all(conn, sub, "payload")
    assert stored is not None
    table = pa.Table.from_batches(list(scan_batches(files["payload"], None)))
    got = record_batch(table, shape(sub, "payload"))
    order = np.argsort(got.ids.astype(str))
    want = np.argsort(stored.ids.astype(str))
    assert np.array_equal(got.ids[order], stored.ids[want])
    assert np.array_equal(got.timestamps[order], stored.timestamps[want])
    np.testing.assert_array_equal(got.probability[order], stored.probability[want])
    assert set(got.columns) == set(stored.columns)
    for name, values in stored.columns.items():
        a, b = got.columns[name][order], values[want]
        if a.dtype == np.float64:
            np.testing.assert_array_equal(a, b, err_msg=name)
        else:
            assert a.tolist() == b.tolist(), name
    assert np.isnan(got.columns["LoanAmount"]).any() and (got.columns["Sex"] == None).any()  # noqa: E711
