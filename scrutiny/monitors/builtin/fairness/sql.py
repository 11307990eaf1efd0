"""The same counts as ``counting``, computed from the payload table itself: for backfill, for a
reconfiguration that changed the bins, and for windows that stored partial counts do not cover.

Two strategies, chosen by what each database does fast (measured at 1M rows, see
docs/monitors-fairness.md):

* PostgreSQL groups with a hash aggregate: one ``GROUP BY`` over every attribute key and the
  outcome, numeric attributes binned in SQL by ``width_bucket`` on the same edges (bound as
  doubles, so the comparisons are exactly NumPy's ``searchsorted``).
* SQLite has no hash aggregate (its ``GROUP BY`` sorts: seconds at 1M rows), but scans fast: the
  raw key columns are streamed in chunks and coded and counted with the same NumPy code as
  ingest-time counting, in constant memory.

Either way each attribute's counts are margins of one grouped result (one scan for all).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from scrutiny.core.subscription import SCORING_TIMESTAMP, Subscription
from scrutiny.ingest.writer import PAYLOAD, table_columns, table_name
from scrutiny.monitors.builtin.fairness.binning import bin_index
from scrutiny.monitors.builtin.fairness.counting import FairnessCounts
from scrutiny.monitors.builtin.fairness.crosstab import Crosstab, factorize
from scrutiny.monitors.builtin.fairness.spec import (
    FAVOURABLE,
    NEITHER,
    REGRESSION_KEYS,
    UNFAVOURABLE,
    AttributeSpec,
    FairnessSpec,
    OutcomeSpec,
)
from scrutiny.store import records

CHUNK_ROWS = 200_000
Coder = Callable[[np.ndarray], tuple[np.ndarray, list[Any]]]


def record_table(sub: Subscription, kind: str = PAYLOAD) -> sa.Table:
    return records.table(table_name(sub.layout, kind), records.spec(table_columns(sub.layout, kind)))


def outcome_expression(t: sa.Table, outcome: OutcomeSpec) -> sa.ColumnElement[Any]:
    col = t.c[outcome.column]
    if not outcome.regression:
        return col
    x: sa.ColumnElement[float] = sa.cast(col, sa.Double())

    def inside(ranges: list[Any]) -> sa.ColumnElement[bool]:
        return sa.or_(
            *[
                sa.and_(
                    x >= sa.bindparam(None, float(lo), type_=sa.Double()),
                    x <= sa.bindparam(None, float(hi), type_=sa.Double()),
                )
                for lo, hi in ranges
            ]
        )

    whens: list[tuple[Any, Any]] = [(col.is_(None), sa.null()), (inside(outcome.favourable), sa.literal(FAVOURABLE))]
    if outcome.unfavourable is None:
        return sa.case(*whens, else_=sa.literal(UNFAVOURABLE))
    whens.append((inside(outcome.unfavourable), sa.literal(UNFAVOURABLE)))
    return sa.case(*whens, else_=sa.literal(NEITHER))


@dataclass
class Key:
    """One grouping key: the SQL expression PostgreSQL groups by, and how NumPy codes the raw
    column when the rows are streamed instead."""

    column: str
    expression: sa.ColumnElement[Any]
    code: Coder
    boolean: bool = False  # SQLite returns booleans as 0/1


def attribute_key(t: sa.Table, attr: AttributeSpec, dialect: str) -> Key:
    col = t.c[attr.name]
    boolean = isinstance(col.type, sa.Boolean)
    if attr.categorical:
        return Key(attr.name, col, factorize, boolean)
    edges = attr.edge_array
    n_bins = len(edges) - 1

    def code(values: np.ndarray) -> tuple[np.ndarray, list[Any]]:
        return bin_index(_floats(values), edges), list(range(n_bins))

    if dialect == "postgresql":
        inner: sa.BindParameter[Any] = sa.bindparam(
            None, [float(e) for e in edges[1:-1]], type_=postgresql.ARRAY(sa.Double())
        )
        expr = sa.case((col.is_(None), sa.null()), else_=sa.func.width_bucket(sa.cast(col, sa.Double()), inner))
        return Key(attr.name, expr, code)
    return Key(attr.name, col, code)  # streamed raw and binned in NumPy


def outcome_key(t: sa.Table, outcome: OutcomeSpec) -> Key:
    col = t.c[outcome.column]
    if not outcome.regression:
        return Key(outcome.column, col, factorize, isinstance(col.type, sa.Boolean))

    def code(values: np.ndarray) -> tuple[np.ndarray, list[Any]]:
        return outcome.outcome_codes(_floats(values)), list(REGRESSION_KEYS)

    return Key(outcome.column, outcome_expression(t, outcome), code)


def grouped(
    conn: sa.Connection, t: sa.Table, keys: list[Key], where: list[sa.ColumnElement[bool]]
) -> tuple[list[np.ndarray], np.ndarray]:
    """Distinct key combinations of the matching rows (object arrays, ``None`` = missing) and
    how many rows have each. A combination may appear more than once (once per chunk)."""
    if conn.dialect.name == "postgresql":
        exprs = [k.expression.label(f"k{i}") for i, k in enumerate(keys)]
        q = sa.select(*exprs, sa.func.count()).select_from(t).where(*where).group_by(*exprs)
        rows = conn.execute(q).all()
        cols = list(zip(*rows, strict=True)) if rows else [() for _ in range(len(keys) + 1)]
        return [_objects(c) for c in cols[:-1]], np.asarray(cols[-1], dtype=np.int64)
    q = sa.select(*(t.c[k.column] for k in keys)).select_from(t).where(*where)
    out_cols: list[list[np.ndarray]] = [[] for _ in keys]
    weights: list[np.ndarray] = []
    result = conn.execute(q)
    cursor = result.cursor  # the driver's rows as plain tuples: no per-row SQLAlchemy processing
    while part := cursor.fetchmany(CHUNK_ROWS):
        raw = list(zip(*part, strict=True))
        coded = [k.code(_objects(v, k.boolean)) for k, v in zip(keys, raw, strict=True)]
        radix = [len(ks) + 1 for _, ks in coded]
        flat = np.zeros(len(part), dtype=np.int64)
        for (codes, _), r in zip(coded, radix, strict=True):
            flat = flat * r + (codes + 1)
        combos, counts = np.unique(flat, return_counts=True)
        for i in range(len(keys) - 1, -1, -1):  # decode the mixed radix, last key first
            codes = combos % radix[i]
            combos = combos // radix[i]
            lookup = _objects((None, *coded[i][1]))
            out_cols[i].append(lookup[codes])
        weights.append(counts)
    result.close()
    if not weights:
        return [_objects(()) for _ in keys], np.zeros(0, dtype=np.int64)
    return [np.concatenate(c) for c in out_cols], np.concatenate(weights)


def count_query(
    conn: sa.Connection,
    t: sa.Table,
    spec: FairnessSpec,
    where: list[sa.ColumnElement[bool]],
    *,
    outcome_column: str | None = None,
) -> FairnessCounts:
    """Counts of the rows of ``t`` matching ``where``, in one pass over them."""
    outcome = (
        spec.outcome
        if outcome_column is None
        else OutcomeSpec(outcome_column, spec.outcome.regression, spec.outcome.favourable, spec.outcome.unfavourable)
    )
    dialect = conn.dialect.name
    keys = [attribute_key(t, a, dialect) for a in spec.attributes] + [outcome_key(t, outcome)]
    columns, weights = grouped(conn, t, keys, where)
    out_codes, out_keys = factorize(columns[-1])
    attributes = {}
    for i, attr in enumerate(spec.attributes):
        a_codes, a_keys = factorize(columns[i])
        attributes[attr.name] = weighted(a_codes, a_keys, out_codes, out_keys, weights)
    first = last = None
    ts = t.c.get(SCORING_TIMESTAMP)
    if ts is not None and len(weights):
        lo, hi = conn.execute(sa.select(sa.func.min(ts), sa.func.max(ts)).select_from(t).where(*where)).one()
        first = None if lo is None else np.datetime64(lo.replace(tzinfo=None), "us")
        last = None if hi is None else np.datetime64(hi.replace(tzinfo=None), "us")
    return FairnessCounts(int(weights.sum()), attributes, spec.fingerprints(), first, last)


def _objects(values: Any, boolean: bool = False) -> np.ndarray:
    arr = np.empty(len(values), dtype=object)
    arr[:] = values if not boolean else [None if v is None else bool(v) for v in values]
    return arr


def _floats(values: np.ndarray) -> np.ndarray:
    if values.dtype == np.float64:
        return values
    return np.array(values, dtype=np.float64)  # None becomes NaN


def weighted(
    row_codes: np.ndarray, row_keys: list[Any], col_codes: np.ndarray, col_keys: list[Any], weights: np.ndarray
) -> Crosstab:
    """A crosstab of already-grouped rows, each standing for ``weights[i]`` rows."""
    nr, nc = len(row_keys) + 1, len(col_keys) + 1
    flat = (row_codes + 1) * nc + (col_codes + 1)
    counts = np.bincount(flat, weights=weights, minlength=nr * nc).reshape(nr, nc)
    return Crosstab([None, *row_keys], [None, *col_keys], np.rint(counts).astype(np.int64)).compact()


def bucket_counts(
    conn: sa.Connection, t: sa.Table, spec: FairnessSpec
) -> list[tuple[Any, FairnessCounts, int, Any, Any]] | None:
    """Per hour bucket (UTC), the counts of every stored row, grouped by PostgreSQL in one query
    (the monitor framework's backfill). ``None`` on other databases: reading the rows back and
    counting them in NumPy is faster there than their sorting ``GROUP BY``."""
    if conn.dialect.name != "postgresql":
        return None
    ts = t.c[SCORING_TIMESTAMP]
    epoch_us = sa.cast(sa.func.extract("epoch", ts) * 1_000_000, sa.BigInteger)
    hour = sa.cast(sa.func.floor(sa.func.extract("epoch", ts) / 3600), sa.BigInteger).label("b")  # UTC hours
    keys = [attribute_key(t, a, "postgresql") for a in spec.attributes] + [outcome_key(t, spec.outcome)]
    exprs = [k.expression.label(f"k{i}") for i, k in enumerate(keys)]
    q = (
        sa.select(hour, *exprs, sa.func.count(), sa.func.min(epoch_us), sa.func.max(epoch_us))
        .select_from(t)
        .group_by(hour, *exprs)
        .order_by(hour)
    )
    rows = conn.execute(q).all()
    if not rows:
        return []
    cols = list(zip(*rows, strict=True))
    k = len(keys)
    hours = np.asarray(cols[0], dtype=np.int64)
    weights = np.asarray(cols[k + 1], dtype=np.int64)
    lo = np.asarray(cols[k + 2], dtype=np.int64).astype("datetime64[us]")
    hi = np.asarray(cols[k + 3], dtype=np.int64).astype("datetime64[us]")
    coded = [factorize(_objects(c)) for c in cols[1 : k + 1]]  # once for all buckets
    out_codes, out_keys = coded[-1]
    cuts = np.flatnonzero(hours[1:] != hours[:-1]) + 1
    out = []
    prints = spec.fingerprints()
    for s, e in zip([0, *cuts.tolist()], [*cuts.tolist(), len(hours)], strict=True):
        w = weights[s:e]
        attributes = {
            attr.name: weighted(coded[i][0][s:e], coded[i][1], out_codes[s:e], out_keys, w)
            for i, attr in enumerate(spec.attributes)
        }
        first, last = lo[s:e].min(), hi[s:e].max()
        n = int(w.sum())
        bucket = np.datetime64(int(hours[s]), "h")
        out.append((bucket, FairnessCounts(n, attributes, prints, first, last), n, first, last))
    return out
