"""Payload logging: validate and store records, read them back, export them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from scrutiny.core.subscription import SCORING_TIMESTAMP, Subscription
from scrutiny.errors import InvalidInput, NotFound
from scrutiny.ingest.payloads import parse_payloads
from scrutiny.ingest.writer import PAYLOAD, WriteResult, table_columns, table_name, write_batches
from scrutiny.store import records

if TYPE_CHECKING:
    from scrutiny.service import Service

EXPORT_CHUNK = 50_000


class PayloadService:
    def __init__(self, service: Service) -> None:
        self.service = service

    def store(self, sub_id: str | Subscription, body: Any) -> WriteResult:
        """Validate all records, then store them in one transaction (all or nothing)."""
        sub = sub_id if isinstance(sub_id, Subscription) else self.service.subscriptions.get(sub_id)
        parsed = parse_payloads(body, sub)
        result = self.service.writer.write(sub, parsed.batch, parsed.layout, PAYLOAD)
        result.records = parsed.records
        return result

    def store_openscale(self, data_mart_id: str, body: Any) -> WriteResult:
        """OpenScale v1 ``scoring_payloads``: each record names its binding and subscription."""
        self.service.check_data_mart(data_mart_id)
        if isinstance(body, dict):
            body = [body]
        if not isinstance(body, list) or not body:
            raise InvalidInput("the body must be a non-empty JSON array of payload records")
        by_sub: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        subs: dict[str, Subscription] = {}
        for i, rec in enumerate(body):
            if not isinstance(rec, dict):
                raise InvalidInput("a payload record must be an object", record=i)
            sid = rec.get("subscription_id")
            bid = rec.get("binding_id")
            if not isinstance(sid, str) or not sid:
                raise InvalidInput("missing subscription_id", record=i, field="subscription_id")
            if not isinstance(bid, str) or not bid:
                raise InvalidInput("missing binding_id", record=i, field="binding_id")
            sub = subs.get(sid)
            if sub is None:
                found = self.service.store.catalog.find_subscription(sid)
                if found is None:
                    raise NotFound(f"record {i}: subscription {sid!r} not found", record=i, field="subscription_id")
                subs[sid] = sub = found
            if sub.binding_id != bid:
                raise NotFound(f"record {i}: binding {bid!r} has no subscription {sid!r}", record=i, field="binding_id")
            by_sub.setdefault(sid, []).append((i, rec))
        parsed_all = []
        for sid, items in by_sub.items():
            try:
                parsed_all.append((subs[sid], parse_payloads([r for _, r in items], subs[sid])))
            except InvalidInput as exc:
                rec_index = exc.context.get("record")
                original = items[rec_index][0] if isinstance(rec_index, int) else None
                raise InvalidInput(
                    exc.reason, record=original, row=exc.context.get("row"), field=exc.context.get("field")
                ) from None
        total = WriteResult(0, 0, len(body))
        writes = [(sub, parsed.batch, parsed.layout) for sub, parsed in parsed_all]
        for r in write_batches(self.service.store, writes, PAYLOAD):  # one transaction: all or nothing
            total.stored += r.stored
            total.duplicates += r.duplicates
        return total

    # -- reading -----------------------------------------------------------------------------
    def _table(self, sub: Subscription, kind: str = PAYLOAD) -> sa.Table:
        return records.table(table_name(sub.layout, kind), records.spec(table_columns(sub.layout, kind)))

    def _window(self, t: sa.Table, start: datetime | None, end: datetime | None) -> list[Any]:
        conds = []
        if start is not None:
            conds.append(t.c[SCORING_TIMESTAMP] >= start)
        if end is not None:
            conds.append(t.c[SCORING_TIMESTAMP] < end)
        return conds

    def read(
        self,
        sub_id: str,
        *,
        limit: int = 100,
        offset: int = 0,
        start: datetime | None = None,
        end: datetime | None = None,
        kind: str = PAYLOAD,
    ) -> tuple[int, list[dict[str, Any]]]:
        """(rows in the window, one page of rows, newest first)."""
        sub = self.service.subscriptions.get(sub_id)
        with self.service.store.engine.connect() as conn:
            if not records.exists(conn, table_name(sub.layout, kind)):
                return 0, []
            t = self._table(sub, kind)
            conds = self._window(t, start, end)
            total = conn.execute(sa.select(sa.func.count()).select_from(t).where(*conds)).scalar_one()
            q = (
                sa.select(t)
                .where(*conds)
                .order_by(t.c[SCORING_TIMESTAMP].desc(), t.c.scoring_id.desc())
                .limit(limit)
                .offset(offset)
            )
            rows = [_jsonable(dict(r._mapping)) for r in conn.execute(q)]
        return int(total), rows

    def frame_chunks(
        self,
        sub_id: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        kind: str = PAYLOAD,
        where: Callable[[sa.Table], list[Any]] | None = None,
    ) -> Iterator[Any]:
        """The table as pandas DataFrames of ``EXPORT_CHUNK`` rows, oldest first (constant memory);
        ``where(table)`` adds conditions (the dashboard's filters)."""
        import pandas as pd

        sub = self.service.subscriptions.get(sub_id)
        t = self._table(sub, kind)
        with self.service.store.engine.connect() as conn:
            if not records.exists(conn, t.name):
                yield pd.DataFrame(columns=[c.name for c in t.columns])
                return
            conds = self._window(t, start, end) + (where(t) if where is not None else [])
            q = sa.select(t).where(*conds).order_by(t.c[SCORING_TIMESTAMP], t.c.scoring_id)
            result = conn.execution_options(stream_results=True, yield_per=EXPORT_CHUNK).execute(q)
            cols = list(result.keys())
            empty = True
            for part in result.partitions():
                empty = False
                yield pd.DataFrame([tuple(r) for r in part], columns=cols)
            if empty:
                yield pd.DataFrame(columns=cols)

    def export(
        self,
        sub_id: str,
        fmt: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        kind: str = PAYLOAD,
        where: Callable[[sa.Table], list[Any]] | None = None,
    ) -> Iterator[bytes]:
        """CSV or Parquet bytes, produced chunk by chunk."""
        if fmt == "csv":
            first = True
            for df in self.frame_chunks(sub_id, start=start, end=end, kind=kind, where=where):
                df = _flatten_vectors(df)
                yield df.to_csv(index=False, header=first).encode()
                first = False
            return
        if fmt == "parquet":
            import tempfile

            import pyarrow as pa
            import pyarrow.parquet as pq

            # Parquet's footer records absolute offsets, so the file is written whole, then streamed.
            with tempfile.TemporaryFile() as tmp:
                pq_writer = None
                for df in self.frame_chunks(sub_id, start=start, end=end, kind=kind, where=where):
                    table = pa.Table.from_pandas(df, preserve_index=False)
                    if pq_writer is None:
                        pq_writer = pq.ParquetWriter(tmp, table.schema)
                    elif table.schema != pq_writer.schema:
                        table = table.cast(pq_writer.schema)
                    pq_writer.write_table(table)
                if pq_writer is not None:
                    pq_writer.close()
                tmp.seek(0)
                while chunk := tmp.read(1 << 20):
                    yield chunk
            return
        raise InvalidInput("format must be csv or parquet", field="format")


def _flatten_vectors(df: Any) -> Any:
    import orjson

    for c in df.columns:
        if (
            df[c].dtype == object
            and len(df)
            and isinstance(df[c].dropna().iloc[0] if df[c].notna().any() else None, list)
        ):
            df[c] = df[c].map(lambda v: None if v is None else orjson.dumps(v).decode())
    return df


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    for k, v in row.items():
        if isinstance(v, datetime):
            row[k] = v.isoformat().replace("+00:00", "Z")
    return row
