"""The same counts as ``counting``, computed by the database: one ``GROUP BY`` over the payload
table, for backfill, for a reconfiguration that changed the bins, and for windows that stored
partial counts do not cover.

Numeric attributes are binned in SQL with a ``CASE`` on the same edges (bound as doubles, so
the comparisons are exactly NumPy's), categorical ones grouped by value. All attributes share
one scan: the query groups by every attribute key and the outcome at once, and each
attribute's counts are the margins of that result, summed in NumPy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import sqlalchemy as sa

from scrutiny.ingest.writer import PAYLOAD, table_columns, table_name
from scrutiny.monitors.fairness.counting import FairnessCounts
from scrutiny.monitors.fairness.crosstab import Crosstab, factorize
from scrutiny.monitors.fairness.spec import FAVOURABLE, NEITHER, UNFAVOURABLE, AttributeSpec, FairnessSpec, OutcomeSpec
from scrutiny.store import records
from scrutiny.subscription import SCORING_TIMESTAMP, Subscription


def record_table(sub: Subscription, kind: str = PAYLOAD) -> sa.Table:
    return records.table(table_name(sub.layout, kind), records.spec(table_columns(sub.layout, kind)))


def _float(col: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    return sa.cast(col, sa.Double())


def attribute_expression(t: sa.Table, attr: AttributeSpec) -> sa.ColumnElement[Any]:
    col = t.c[attr.name]
    if attr.categorical:
        return col
    inner = [float(e) for e in attr.edges[1:-1]] if attr.edges else []
    if not inner:
        return sa.case((col.is_(None), sa.null()), else_=sa.literal(0))
    whens: list[tuple[Any, Any]] = [(col.is_(None), sa.null())]
    whens += [(col < sa.bindparam(None, e, type_=sa.Double()), sa.literal(i)) for i, e in enumerate(inner)]
    return sa.case(*whens, else_=sa.literal(len(inner)))


def outcome_expression(t: sa.Table, outcome: OutcomeSpec) -> sa.ColumnElement[Any]:
    col = t.c[outcome.column]
    if not outcome.regression:
        return col
    x = _float(col)

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


def count_query(
    conn: sa.Connection,
    t: sa.Table,
    spec: FairnessSpec,
    where: list[sa.ColumnElement[bool]],
    *,
    outcome_column: str | None = None,
) -> FairnessCounts:
    """Counts of the rows of ``t`` matching ``where``, grouped in the database."""
    outcome = (
        spec.outcome
        if outcome_column is None
        else OutcomeSpec(outcome_column, spec.outcome.regression, spec.outcome.favourable, spec.outcome.unfavourable)
    )
    keys = [attribute_expression(t, a).label(f"a{i}") for i, a in enumerate(spec.attributes)]
    out = outcome_expression(t, outcome).label("o")
    ts = t.c.get(SCORING_TIMESTAMP)
    cols: list[Any] = [*keys, out, sa.func.count().label("n")]
    if ts is not None:
        cols += [sa.func.min(ts).label("first"), sa.func.max(ts).label("last")]
    q = sa.select(*cols).select_from(t).where(*where).group_by(*keys, out)
    result = conn.execute(q).all()
    n_attr = len(spec.attributes)
    if not result:
        return FairnessCounts(0, {a.name: Crosstab.empty() for a in spec.attributes}, spec.fingerprints())
    columns = list(zip(*result, strict=True))
    weights = np.asarray(columns[n_attr + 1], dtype=np.int64)
    out_codes, out_keys = factorize(_objects(columns[n_attr]))
    attributes = {}
    for i, attr in enumerate(spec.attributes):
        a_codes, a_keys = factorize(_objects(columns[i]))
        attributes[attr.name] = _weighted(a_codes, a_keys, out_codes, out_keys, weights)
    first = last = None
    if ts is not None:
        firsts = [v for v in columns[n_attr + 2] if v is not None]
        lasts = [v for v in columns[n_attr + 3] if v is not None]
        first = np.datetime64(min(firsts).replace(tzinfo=None), "us") if firsts else None
        last = np.datetime64(max(lasts).replace(tzinfo=None), "us") if lasts else None
    return FairnessCounts(int(weights.sum()), attributes, spec.fingerprints(), first, last)


def _objects(values: tuple[Any, ...]) -> np.ndarray:
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr


def _weighted(
    row_codes: np.ndarray, row_keys: list[Any], col_codes: np.ndarray, col_keys: list[Any], weights: np.ndarray
) -> Crosstab:
    nr, nc = len(row_keys) + 1, len(col_keys) + 1
    flat = (row_codes + 1) * nc + (col_codes + 1)
    counts = np.bincount(flat, weights=weights, minlength=nr * nc).reshape(nr, nc)
    return Crosstab([None, *row_keys], [None, *col_keys], np.rint(counts).astype(np.int64)).compact()
