"""Feedback records (labelled rows) -> columns by name, whatever shape they arrive in.

Accepted bodies (contract §5):

* ``{"fields": [...], "values": [[...], ...]}`` (OpenScale's ``wml`` format; extra keys such as
  ``binding_id``/``subscription_id`` are ignored), or a list of such objects;
* a list of row objects ``[{"Age": 31, ..., "Risk": "No Risk"}, ...]``;
* ``{"data": [[...], ...]}``: rows in training-schema order (the features, then the label);
* CSV text, with a header (columns matched by name, in any order) or without one (columns in
  training-schema order).

Field rules: ``scoring_id`` links a row to the payload row it labels; ``feedback_id`` gives an
unlinked row a client-chosen id (so a retry is not stored twice); ``scoring_timestamp`` is
optional (default: now). With names, columns that are none of these, the features or the label
are ignored and reported.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

from scrutiny.errors import InvalidInput

SCORING_ID = "scoring_id"
FEEDBACK_ID = "feedback_id"
TIMESTAMP = "scoring_timestamp"
_IGNORED_KEYS = {"binding_id", "subscription_id", "data_mart_id", "deployment_id", "asset_revision"}


@dataclass
class FeedbackTable:
    """Rows by column name, as they arrived (values not converted yet)."""

    n: int
    columns: dict[str, list[Any]] = field(default_factory=dict)
    named: bool = True  # the columns came with names (not positional)


def training_order(features: list[str], label: str) -> list[str]:
    return [*features, label]


def from_json(body: Any, features: list[str], label: str) -> FeedbackTable:
    if isinstance(body, dict):
        if "data" in body and "values" not in body:
            rows = body["data"]
            if not isinstance(rows, list):
                raise InvalidInput("'data' must be a list of rows", field="data")
            return _positional(rows, training_order(features, label))
        return _fields_values(body, 0)
    if not isinstance(body, list) or not body:
        raise InvalidInput("the body must hold feedback rows: {fields, values}, a list of row objects, or CSV")
    if all(isinstance(r, dict) and "values" in r for r in body):
        parts = [_fields_values(r, i) for i, r in enumerate(body)]
        return _concat(parts)
    if all(isinstance(r, dict) for r in body):
        names: list[str] = []
        seen: set[str] = set()
        for r in body:
            for k in r:
                if k not in seen:
                    seen.add(k)
                    names.append(k)
        return FeedbackTable(len(body), {k: [r.get(k) for r in body] for k in names})
    raise InvalidInput("a feedback row must be an object, or the body {fields, values}")


def _fields_values(obj: dict[str, Any], record: int) -> FeedbackTable:
    fields = obj.get("fields")
    values = obj.get("values")
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise InvalidInput("'fields' must be a list of column names", record=record, field="fields")
    if len(set(fields)) != len(fields):
        dup = next(f for f in fields if fields.count(f) > 1)
        raise InvalidInput(f"'fields' lists {dup!r} twice", record=record, field=dup)
    if not isinstance(values, list):
        raise InvalidInput("'values' must be a list of rows", record=record, field="values")
    if values and not isinstance(values[0], list):
        values = [values]  # one flat row
    for r, row in enumerate(values, start=1):
        if not isinstance(row, list) or len(row) != len(fields):
            got = len(row) if isinstance(row, list) else "no list"
            raise InvalidInput(f"row has {got} values for {len(fields)} fields", record=record, row=r, field="values")
    cols = list(zip(*values, strict=True)) if values else [() for _ in fields]
    return FeedbackTable(len(values), {f: list(c) for f, c in zip(fields, cols, strict=True)})


def _positional(rows: list[Any], names: list[str]) -> FeedbackTable:
    for r, row in enumerate(rows, start=1):
        if not isinstance(row, list) or len(row) != len(names):
            got = len(row) if isinstance(row, list) else "no list"
            raise InvalidInput(
                f"row has {got} values; without a header a row holds the features then the label"
                f" ({len(names)} values, in training-schema order)",
                row=r,
            )
    cols = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    return FeedbackTable(len(rows), {f: list(c) for f, c in zip(names, cols, strict=True)}, named=False)


def _concat(parts: list[FeedbackTable]) -> FeedbackTable:
    if len(parts) == 1:
        return parts[0]
    names: list[str] = []
    for p in parts:
        names += [c for c in p.columns if c not in names]
    out: dict[str, list[Any]] = {c: [] for c in names}
    for p in parts:
        for c in names:
            out[c].extend(p.columns.get(c, [None] * p.n))
    return FeedbackTable(sum(p.n for p in parts), out)


def from_csv(
    text: str, features: list[str], label: str, *, header: bool | None = None, delimiter: str = ","
) -> FeedbackTable:
    """CSV rows; ``header=None`` detects a header by the label column's name in the first row."""
    if len(delimiter) != 1:
        raise InvalidInput("delimiter must be one character", field="delimiter")
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    rows = [r for r in reader if r]
    if not rows:
        raise InvalidInput("the CSV holds no rows")
    known = {*features, label, SCORING_ID, FEEDBACK_ID, TIMESTAMP}
    if header is None:
        header = label in rows[0] or (sum(c in known for c in rows[0]) >= max(1, len(rows[0]) // 2))
    if header:
        names = [c.strip() for c in rows[0]]
        body = rows[1:]
        for r, row in enumerate(body, start=1):
            if len(row) != len(names):
                raise InvalidInput(f"row has {len(row)} values for {len(names)} header columns", row=r)
        cols = list(zip(*body, strict=True)) if body else [() for _ in names]
        table = FeedbackTable(len(body), {n: [_blank(v) for v in c] for n, c in zip(names, cols, strict=True)})
    else:
        table = _positional([[_blank(v) for v in r] for r in rows], training_order(features, label))
    table.columns = {k: v for k, v in table.columns.items() if k}
    return table


def _blank(v: str) -> str | None:
    return None if v == "" else v


def split_known(table: FeedbackTable, features: list[str], label: str) -> tuple[dict[str, list[Any]], list[str]]:
    """(the columns Scrutiny uses, the names it ignores)."""
    use = {*features, label, SCORING_ID, FEEDBACK_ID, TIMESTAMP}
    kept = {k: v for k, v in table.columns.items() if k in use}
    ignored = [k for k in table.columns if k not in use and k not in _IGNORED_KEYS]
    return kept, ignored
