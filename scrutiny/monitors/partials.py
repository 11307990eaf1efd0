"""Partial aggregates per time bucket: serialisation helpers, the ingest listener, backfill, compaction.

See ``scrutiny.monitors.base`` for the contract. Buckets are clock hours (UTC). Each ingest
transaction appends one ``monitor_partials`` row per (monitor, bucket) it touched; runs merge a
bucket's rows and write them back as one row, so the table holds about one row per monitor and
hour of history.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
import struct
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import orjson
import pandas as pd
import sqlalchemy as sa

from scrutiny.core.subscription import Subscription
from scrutiny.ingest import writer
from scrutiny.ingest.batch import RecordBatch
from scrutiny.monitors import registry
from scrutiny.monitors.base import Monitor, Partial
from scrutiny.monitors.run.reader import read_batches, to_datetime
from scrutiny.monitors.tables import monitor_configs, monitor_partials
from scrutiny.store.types import utcnow

log = logging.getLogger("scrutiny.monitors")

BUCKET = np.timedelta64(1, "h")
BUCKET_DELTA = timedelta(hours=1)
FLUSH_BUCKETS = 2_000  # backfill writes partials out when it holds this many buckets

# -- serialisation ---------------------------------------------------------------------------------

_MAGIC = b"SCP1"


def pack(fields: dict[str, Any]) -> bytes:
    """Named NumPy arrays (numeric or bool) and JSON values as compact bytes (no pickle)."""
    header: dict[str, Any] = {"a": {}, "j": {}}
    buffers: list[bytes] = []
    offset = 0
    for name, value in fields.items():
        if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
            arr = np.ascontiguousarray(value)
            raw = arr.tobytes()
            header["a"][name] = [arr.dtype.str, list(arr.shape), offset]
            buffers.append(raw)
            offset += len(raw)
        elif isinstance(value, np.ndarray):
            header["j"][name] = value.tolist()
        else:
            header["j"][name] = value
    head = orjson.dumps(header, option=orjson.OPT_SERIALIZE_NUMPY)
    return _MAGIC + struct.pack("<I", len(head)) + head + b"".join(buffers)


def unpack(data: bytes) -> dict[str, Any]:
    if data[:4] != _MAGIC:
        raise ValueError("not a Scrutiny partial aggregate")
    (n,) = struct.unpack("<I", data[4:8])
    header = orjson.loads(data[8 : 8 + n])
    base = 8 + n
    out: dict[str, Any] = dict(header["j"])
    for name, (dtype, shape, offset) in header["a"].items():
        dt = np.dtype(dtype)
        count = math.prod(shape) if shape else 1
        arr = np.frombuffer(data, dtype=dt, count=count, offset=base + offset)
        out[name] = arr.reshape(shape).copy()
    return out


@dataclass
class KeyedCounts:
    """Counts per value of a column whose values are not known in advance (categories, ages...):
    ``counts[i, j]`` rows have value ``keys[i]`` and outcome column ``j``; ``missing[j]`` rows
    have no value. Merged by key."""

    keys: list[Any]
    counts: np.ndarray  # int64 [len(keys), m]
    missing: np.ndarray  # int64 [m]

    @classmethod
    def empty(cls, m: int) -> KeyedCounts:
        return cls([], np.zeros((0, m), dtype=np.int64), np.zeros(m, dtype=np.int64))

    @classmethod
    def tally(cls, values: np.ndarray, outcome: np.ndarray | None = None, m: int = 1) -> KeyedCounts:
        """Count rows per (value, outcome); ``outcome`` holds column indexes in ``[0, m)``
        (rows with a negative outcome index are left out)."""
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        outcome = np.zeros(len(values), dtype=np.int64) if outcome is None else outcome.astype(np.int64)
        keep = outcome >= 0
        codes, outcome = codes[keep], outcome[keep]
        k = len(uniques)
        known = codes >= 0
        flat = np.bincount(codes[known] * m + outcome[known], minlength=k * m).reshape(k, m)
        missing = np.bincount(outcome[~known], minlength=m)
        keys = [_plain(v) for v in np.asarray(uniques, dtype=object).tolist()]
        return cls(keys, flat.astype(np.int64), missing.astype(np.int64))

    def merge(self, other: KeyedCounts) -> KeyedCounts:
        if not other.keys and not other.missing.any():
            return self
        if not self.keys and not self.missing.any():
            return other
        keys = self.keys + other.keys
        codes, uniques = pd.factorize(np.asarray(keys, dtype=object))
        counts = np.zeros((len(uniques), self.counts.shape[1]), dtype=np.int64)
        np.add.at(counts, codes, np.vstack([self.counts, other.counts]))
        return KeyedCounts([_plain(v) for v in uniques.tolist()], counts, self.missing + other.missing)

    def as_dict(self) -> dict[Any, np.ndarray]:
        return {k: self.counts[i] for i, k in enumerate(self.keys)}

    def fields(self, prefix: str) -> dict[str, Any]:
        """For ``pack``: ``{prefix.keys, prefix.counts, prefix.missing}``."""
        return {f"{prefix}.keys": self.keys, f"{prefix}.counts": self.counts, f"{prefix}.missing": self.missing}

    @classmethod
    def from_fields(cls, d: dict[str, Any], prefix: str) -> KeyedCounts:
        return cls(list(d[f"{prefix}.keys"]), d[f"{prefix}.counts"], d[f"{prefix}.missing"])


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


# -- buckets ----------------------------------------------------------------------------------------


def bucket_of(ts: datetime) -> datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


def split_by_bucket(batch: RecordBatch) -> Iterator[tuple[np.datetime64, RecordBatch]]:
    """The batch's rows grouped by hour bucket (one group, without copying, in the usual case)."""
    b = batch.timestamps.astype("datetime64[h]")
    lo, hi = b.min(), b.max()
    if lo == hi:
        yield lo, batch
        return
    order = np.argsort(b, kind="stable")
    sb = b[order]
    cuts = np.flatnonzero(sb[1:] != sb[:-1]) + 1
    bounds = [0, *cuts.tolist(), len(sb)]
    for s, e in itertools.pairwise(bounds):
        yield sb[s], batch.take(order[s:e])


def partial_row(
    sub_id: str, monitor: str, plan_id: str, bucket: np.datetime64, part: RecordBatch, state: bytes
) -> dict[str, Any]:
    return {
        "subscription_id": sub_id,
        "monitor": monitor,
        "plan_id": plan_id,
        "bucket": to_datetime(bucket),
        "rows": len(part),
        "min_ts": to_datetime(part.timestamps.min()),
        "max_ts": to_datetime(part.timestamps.max()),
        "state": state,
    }


# -- plans ------------------------------------------------------------------------------------------

_plans: OrderedDict[str, Any] = OrderedDict()
_plans_lock = threading.Lock()


def canonical(plan: Any) -> bytes:
    return orjson.dumps(plan, option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY)


def default_plan_id(sub_id: str, monitor: str, plan: Any) -> str:
    """Deterministic, so two first writers racing to create a default configuration agree."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{sub_id}\0{monitor}\0".encode())
    h.update(canonical(plan))
    return h.hexdigest()


def new_plan_id() -> str:
    return uuid.uuid4().hex


def loaded_plan(conn: sa.Connection, sub_id: str, mon: Monitor, plan_id: str, plan: Any = None) -> Any:
    """``mon.load_plan(plan)``, cached per plan id (plans never change under an id)."""
    with _plans_lock:
        hit = _plans.get(plan_id)
        if hit is not None:
            _plans.move_to_end(plan_id)
            return hit
    if plan is None:
        plan = conn.execute(
            sa.select(monitor_configs.c.plan).where(
                monitor_configs.c.subscription_id == sub_id,
                monitor_configs.c.monitor == mon.name,
                monitor_configs.c.plan_id == plan_id,
            )
        ).scalar_one()
    value = mon.load_plan(plan)
    with _plans_lock:
        _plans[plan_id] = value
        while len(_plans) > 1024:
            _plans.popitem(last=False)
    return value


# -- locking ----------------------------------------------------------------------------------------


def lock_key(sub_id: str) -> int:
    digest = hashlib.blake2b(f"scrutiny.monitors:{sub_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def lock_shared(conn: sa.Connection, sub_id: str) -> None:
    """Ingest side: on PostgreSQL, wait while a backfill of this subscription runs (SQLite
    writers are serialised by its write lock already)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock_shared(:k)"), {"k": lock_key(sub_id)})


def lock_exclusive(conn: sa.Connection, sub_id: str) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key(sub_id)})


# -- the ingest listener ------------------------------------------------------------------------------


def on_records_written(conn: sa.Connection, sub: Subscription, kind: str, batch: RecordBatch) -> None:
    """Append the partials of ``batch`` (the rows just inserted) for every enabled monitor of
    the subscription that reads this table. Runs inside the write transaction."""
    if len(batch) == 0:
        return
    lock_shared(conn, sub.id)
    mark = "%s" if conn.dialect.name == "postgresql" else "?"
    rows: list[Any] = list(
        conn.exec_driver_sql(
            f"SELECT monitor, enabled, table_kind, plan_id FROM monitor_configs WHERE subscription_id = {mark}",
            (sub.id,),
        ).all()
    )
    present = {r.monitor for r in rows}
    missing = [m for m in _default_monitors() if m.name not in present]
    if missing:
        from scrutiny.monitors.configs import insert_default

        for mon in missing:
            created = insert_default(conn, sub, mon, kind, len(batch))
            if created is not None:
                rows.append(created)
    out: list[dict[str, Any]] = []
    groups: list[tuple[np.datetime64, RecordBatch]] | None = None
    for r in rows:
        if not r.enabled or r.table_kind != kind or r.plan_id is None:
            continue
        try:
            found = registry.find(r.monitor)
            if found is None:
                continue
            plan = loaded_plan(conn, sub.id, found, r.plan_id)
            if groups is None:
                groups = list(split_by_bucket(batch))
            built = [
                partial_row(sub.id, found.name, r.plan_id, bucket, part, found.build(plan, part).to_bytes())
                for bucket, part in groups
            ]
        except Exception:
            # A monitor must never stop records from being stored: its partials no longer cover
            # every row, so its next run rebuilds them from the table (and reports the error).
            log.exception(
                "monitor %s could not aggregate %d rows of %s; it will rebuild", r.monitor, len(batch), sub.id
            )
            conn.exec_driver_sql(
                f"UPDATE monitor_configs SET plan_ready = {mark} WHERE subscription_id = {mark} AND monitor = {mark}",
                (False, sub.id, r.monitor),
            )
            continue
        out += built
    if out:
        insert_partials(conn, out)


def insert_partials(conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
    """Append partial rows with one driver-level statement (this runs inside every ingest)."""
    pg = conn.dialect.name == "postgresql"
    mark = "%s" if pg else "?"
    names = ("subscription_id", "monitor", "plan_id", "bucket", "rows", "min_ts", "max_ts", "state")
    params = []
    for r in rows:
        if pg:
            params.append(tuple(r[k] for k in names))
        else:
            params.append(tuple(_sqlite_ts(r[k]) if k in ("bucket", "min_ts", "max_ts") else r[k] for k in names))
    conn.exec_driver_sql(
        f"INSERT INTO monitor_partials ({', '.join(names)}) VALUES ({', '.join([mark] * len(names))})", params
    )


def _sqlite_ts(ts: datetime) -> str:
    return ts.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


_defaults: list[Monitor] | None = None


def _default_monitors() -> list[Monitor]:
    """Monitors on by default (performance). One that fails to load is left out: it must never
    fail an ingest."""
    global _defaults
    if _defaults is None:
        found = []
        for name in registry.known_names():
            try:
                mon = registry.find(name)
            except Exception:
                log.exception("monitor %s cannot be loaded", name)
                continue
            if mon is not None and mon.enabled_by_default:
                found.append(mon)
        _defaults = found
    return _defaults


def install() -> None:
    """Register the listener (idempotent). ``scrutiny.monitors`` does this on import."""
    writer.on_write(on_records_written)


# -- backfill ------------------------------------------------------------------------------------------


def rebuild(conn: sa.Connection, sub: Subscription, mon: Monitor, plan: dict[str, Any] | None) -> str | None:
    """Give the monitor a new plan and rebuild its partials from every stored row.

    Call inside a write transaction (``store.write()``): it excludes concurrent writers of the
    subscription until commit, so no row is missed or counted twice. Reads in chunks and
    writes buckets out as it goes: memory stays bounded whatever the table size."""
    lock_exclusive(conn, sub.id)
    mc = monitor_configs.c
    where = (mc.subscription_id == sub.id) & (mc.monitor == mon.name)
    conn.execute(
        monitor_partials.delete().where(
            monitor_partials.c.subscription_id == sub.id, monitor_partials.c.monitor == mon.name
        )
    )
    if plan is None:
        conn.execute(monitor_configs.update().where(where).values(plan=None, plan_id=None, plan_ready=True))
        return None
    plan_id = new_plan_id()
    conn.execute(monitor_configs.update().where(where).values(plan=plan, plan_id=plan_id, plan_ready=False))
    loaded = loaded_plan(conn, sub.id, mon, plan_id, plan)
    columns = mon_columns(mon, loaded)
    held: dict[np.datetime64, tuple[Partial, int, np.datetime64, np.datetime64]] = {}

    def flush(before: np.datetime64 | None) -> None:
        done = [b for b in held if before is None or b < before]
        if not done:
            return
        out = []
        for b in sorted(done):
            part, n, lo, hi = held.pop(b)
            out.append(
                {
                    "subscription_id": sub.id,
                    "monitor": mon.name,
                    "plan_id": plan_id,
                    "bucket": to_datetime(b),
                    "rows": n,
                    "min_ts": to_datetime(lo),
                    "max_ts": to_datetime(hi),
                    "state": part.to_bytes(),
                }
            )
        insert_partials(conn, out)

    in_database = getattr(mon, "partials_in_database", None)
    produced = in_database(conn, sub, loaded) if callable(in_database) else None
    for bucket, p, n, lo, hi in produced or ():  # the database aggregated the buckets itself
        held[bucket] = (p, n, lo, hi)
        if len(held) > FLUSH_BUCKETS:
            flush(None)
    for chunk in read_batches(conn, sub, mon.table, columns=columns) if produced is None else ():
        for bucket, part in split_by_bucket(chunk):
            p = mon.build(loaded, part)
            lo, hi = part.timestamps.min(), part.timestamps.max()
            prev = held.get(bucket)
            if prev is not None:
                p = prev[0].merge(p)
                held[bucket] = (p, prev[1] + len(part), min(prev[2], lo), max(prev[3], hi))
            else:
                held[bucket] = (p, len(part), lo, hi)
        # rows come in timestamp order: buckets before this chunk's last one are complete
        flush(chunk.timestamps.max().astype("datetime64[h]"))
        if len(held) > FLUSH_BUCKETS:
            flush(None)
    flush(None)
    conn.execute(monitor_configs.update().where(where).values(plan_ready=True, updated_at=utcnow()))
    return plan_id


def mon_columns(mon: Monitor, plan: Any) -> list[str] | None:
    cols = getattr(mon, "columns", None)
    return cols(plan) if callable(cols) else None


# -- reading and compacting ---------------------------------------------------------------------------


@dataclass
class BucketInfo:
    bucket: datetime
    rows: int
    min_ts: datetime
    max_ts: datetime
    ids: list[int]


def bucket_infos(
    conn: sa.Connection, sub_id: str, monitor: str, plan_id: str, *, until: datetime | None = None
) -> list[BucketInfo]:
    """Buckets holding partials for this plan, newest first (metadata only, not the states)."""
    mp = monitor_partials.c
    q = sa.select(mp.id, mp.bucket, mp.rows, mp.min_ts, mp.max_ts).where(
        mp.subscription_id == sub_id, mp.monitor == monitor, mp.plan_id == plan_id
    )
    if until is not None:
        q = q.where(mp.bucket <= bucket_of(until))
    infos: dict[datetime, BucketInfo] = {}
    for r in conn.execute(q):
        info = infos.get(r.bucket)
        if info is None:
            infos[r.bucket] = BucketInfo(r.bucket, int(r.rows), r.min_ts, r.max_ts, [int(r.id)])
        else:
            info.rows += int(r.rows)
            info.min_ts = min(info.min_ts, r.min_ts)
            info.max_ts = max(info.max_ts, r.max_ts)
            info.ids.append(int(r.id))
    return sorted(infos.values(), key=lambda i: i.bucket, reverse=True)


def load_states(conn: sa.Connection, ids: list[int]) -> Iterator[tuple[int, bytes]]:
    mp = monitor_partials.c
    for start in range(0, len(ids), 5000):
        chunk = ids[start : start + 5000]
        yield from (
            (int(r.id), bytes(r.state)) for r in conn.execute(sa.select(mp.id, mp.state).where(mp.id.in_(chunk)))
        )


def compact(store: Any, sub_id: str, monitor: str, plan_id: str, merged: list[tuple[BucketInfo, bytes]]) -> int:
    """Replace each bucket's partial rows by the one merged partial (only if nobody changed them
    meanwhile). Returns the number of rows removed."""
    todo = [(info, p) for info, p in merged if len(info.ids) > 1]
    if not todo:
        return 0
    removed = 0
    try:
        with store.write() as conn:
            for info, p in todo:
                res = conn.execute(monitor_partials.delete().where(monitor_partials.c.id.in_(info.ids)))
                if res.rowcount != len(info.ids):
                    raise _Changed()
                conn.execute(
                    monitor_partials.insert().values(
                        subscription_id=sub_id,
                        monitor=monitor,
                        plan_id=plan_id,
                        bucket=info.bucket,
                        rows=info.rows,
                        min_ts=info.min_ts,
                        max_ts=info.max_ts,
                        state=p,
                    )
                )
                removed += len(info.ids) - 1
    except _Changed:
        return 0
    return removed


class _Changed(Exception):
    pass
