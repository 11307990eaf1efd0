"""The in-process executor: this process reads the Parquet files with Arrow and runs the seam."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from scrutiny.core.subscription import SCORING_ID, SCORING_TIMESTAMP
from scrutiny.monitors.executors.base import ParquetFiles, Progress, Scan
from scrutiny.monitors.executors.rows import PARTIAL_SCHEMA, partial_rows

BATCH_ROWS = 65_536


class InProcessExecutor:
    name = "in-process"

    def partial_rows(self, scan: Scan, progress: Progress | None = None) -> pa.Table:
        if progress:
            progress(f"reading {len(scan.files.paths)} files in this process")
        batches = scan_batches(scan.files, scan.columns, start=scan.start, end=scan.end)
        out = list(partial_rows(scan.tasks, scan.shape, batches))
        return pa.Table.from_batches(out, schema=PARTIAL_SCHEMA)

    def describe(self) -> dict[str, object]:
        return {"name": self.name}

    def close(self) -> None:
        pass


def _dataset(files: ParquetFiles) -> ds.Dataset | None:
    if not files.paths:
        return None
    fs, _ = pafs.FileSystem.from_uri(files.paths[0]) if "://" in files.paths[0] else (pafs.LocalFileSystem(), "")
    paths = [pafs.FileSystem.from_uri(p)[1] if "://" in p else p for p in files.paths]
    schema = pa.unify_schemas([pq.read_schema(p, filesystem=fs) for p in paths], promote_options="permissive")
    return ds.dataset(paths, schema=schema, format="parquet", filesystem=fs)


def scan_batches(
    files: ParquetFiles,
    columns: list[str] | None,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    batch_rows: int = BATCH_ROWS,
) -> Iterator[pa.RecordBatch]:
    """The files' rows with ``start <= ts < end``, columns under their Scrutiny names (columns no
    file has are left out; ``scoring_id`` and the timestamp always come)."""
    dataset = _dataset(files)
    if dataset is None:
        return
    present = set(dataset.schema.names)
    wanted = list(dict.fromkeys([SCORING_ID, SCORING_TIMESTAMP, *(columns or [])]))
    if columns is None:
        inverse = {v: k for k, v in files.rename.items()}
        wanted = list(dict.fromkeys([SCORING_ID, SCORING_TIMESTAMP, *(inverse.get(c, c) for c in present)]))
    pairs = [(name, files.column(name)) for name in wanted if files.column(name) in present]
    ts_col = files.column(SCORING_TIMESTAMP)
    cond = time_filter(ts_col, dataset.schema.field(ts_col).type, start, end)
    scanner = dataset.scanner(columns={name: ds.field(src) for name, src in pairs}, filter=cond, batch_size=batch_rows)
    for batch in scanner.to_batches():
        if batch.num_rows:
            yield batch


def time_filter(column: str, type_: pa.DataType, start: datetime | None, end: datetime | None) -> Any:
    """``start <= column < end`` as an Arrow dataset expression (None: no condition)."""
    cond = None
    for bound, op in ((start, "ge"), (end, "lt")):
        if bound is None:
            continue
        value = pa.scalar(_naive_utc(bound), type=pa.timestamp("us")).cast(type_)
        term = ds.field(column) >= value if op == "ge" else ds.field(column) < value
        cond = term if cond is None else cond & term
    return cond


def _naive_utc(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo else ts
