"""Shapes shared by engines whose native formats are plain JSON lists (MLflow, KServe V1).

Requests: the common table as a list of rows, a list of records or a dict of columns, and
back. Responses: the ``predictions`` list, which is one of

* scalars (``predict``): a prediction per row, or P(second label) when the model serves
  ``predict_proba`` of a binary model through a one-column output;
* vectors (``predict_proba``): a probability vector per row; the prediction is then derived from
  the subscription's label order by ``scrutiny.core.outputs.normalize`` (the row is flagged derived);
* records (a DataFrame returned by a pyfunc or a custom model): the keys are the output fields;
* a dict of columns.

The meaning of a list of numbers is never guessed from its values: ``output_mode`` says it when
the shape alone does not (engines.md §0, §2).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

import numpy as np

from scrutiny.core.scoring_format import ScoringRequest, ScoringResponse, Table
from scrutiny.engines.base import ModelContext
from scrutiny.errors import InvalidInput

OUTPUT_MODES = ("auto", "predict", "predict_proba")

Fail = Callable[[str], Exception]


# -- requests ----------------------------------------------------------------------------------


def ordered(request: ScoringRequest, context: ModelContext) -> tuple[list[str], list[list[Any]]]:
    """Fields and rows in the model's feature order when it is known (tensor models take
    positions, not names); unknown extra fields are kept after the features."""
    feats = context.feature_fields
    if not feats or request.fields == feats:
        return request.fields, request.values
    missing = [f for f in feats if f not in request.fields]
    if missing:
        raise InvalidInput(f"the request lacks feature {missing[0]!r}", field=missing[0])
    order = [request.fields.index(f) for f in feats]
    order += [i for i, f in enumerate(request.fields) if f not in feats]
    return [request.fields[i] for i in order], [[row[i] for i in order] for row in request.values]


def table_from_rows(rows: Any, fields: list[str] | None, what: str) -> ScoringRequest:
    """A list of lists (positional: needs the feature order) or a list of records."""
    if not isinstance(rows, list):
        raise InvalidInput(f"{what} must be a list of rows", field=what)
    if not rows:
        return ScoringRequest(list(fields or []), [])
    if all(isinstance(r, dict) for r in rows):
        return records_table(rows, what)
    if all(isinstance(r, list) for r in rows):
        if not fields:
            raise InvalidInput(
                f"{what} holds positional rows: the subscription needs feature_fields to name them", field=what
            )
        for i, r in enumerate(rows, start=1):
            if len(r) != len(fields):
                raise InvalidInput(f"{what} row has {len(r)} values for {len(fields)} features", row=i, field=what)
        return ScoringRequest(list(fields), [list(r) for r in rows])
    if fields and len(fields) == 1:  # a single feature sent as scalars
        return ScoringRequest(list(fields), [[v] for v in rows])
    raise InvalidInput(f"{what} must hold only lists or only objects", field=what)


def records_table(records: list[Any], what: str) -> ScoringRequest:
    """Records -> table; the fields are the keys in first-seen order (a missing key is null)."""
    names: dict[str, None] = {}
    for i, r in enumerate(records, start=1):
        if not isinstance(r, dict):
            raise InvalidInput(f"{what} row is not an object", row=i, field=what)
        if len(r) != len(names) or any(k not in names for k in r):
            names.update(dict.fromkeys(r))
    fields = list(names)
    return ScoringRequest(fields, [[r.get(f) for f in fields] for r in records])


def columns_table(columns: Any, what: str) -> ScoringRequest:
    """``{"column": [values...]}`` -> table; every column must have the same length."""
    if not isinstance(columns, dict):
        raise InvalidInput(f"{what} must be an object of columns", field=what)
    lengths = {}
    for name, col in columns.items():
        lengths[name] = len(col) if isinstance(col, list) else None
    if any(n is None for n in lengths.values()):
        scalar = [k for k, n in lengths.items() if n is None]
        if len(scalar) == len(lengths):  # one row given as scalars
            return ScoringRequest(list(columns), [list(columns.values())])
        raise InvalidInput(f"{what} column is not a list", field=scalar[0])
    if len(set(lengths.values())) > 1:
        first = next(iter(lengths))
        odd = next(k for k, n in lengths.items() if n != lengths[first])
        raise InvalidInput(
            f"{what} columns differ in length ({odd!r}: {lengths[odd]}, {first!r}: {lengths[first]})", field=odd
        )
    t = Table.from_columns(columns)
    return ScoringRequest(t.fields, t.values)


def to_records(fields: list[str], values: list[list[Any]]) -> list[dict[str, Any]]:
    return [dict(zip(fields, row, strict=True)) for row in values]


def to_columns(fields: list[str], values: list[list[Any]]) -> dict[str, list[Any]]:
    cols = list(zip(*values, strict=True)) if values else [() for _ in fields]
    return {f: list(c) for f, c in zip(fields, cols, strict=True)}


def to_csv(fields: list[str], values: list[list[Any]]) -> bytes:
    """RFC 4180 with a header; null is an empty cell (pandas reads it as missing)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(fields)
    w.writerows(values)
    return buf.getvalue().encode()


_CSV_DTYPES = {"integer": "Int64", "double": "Float64", "string": "string", "boolean": "boolean"}


def from_csv(
    body: bytes, fields: list[str] | None, *, header: bool = True, kinds: dict[str, str] | None = None
) -> ScoringRequest:
    """CSV -> table. Columns of the subscription's schema get its kinds (``kinds``: a code like
    ``007`` stays text); others are typed by their values (integers, else floats, else text).
    An empty cell is null; parsed by pandas' C reader, where ``NA`` or ``null`` stay text."""
    import pandas as pd

    dtypes = {name: _CSV_DTYPES[k] for name, k in (kinds or {}).items() if k in _CSV_DTYPES}

    if not header and not fields:
        raise InvalidInput("a CSV body without header needs the subscription's feature_fields")
    try:
        frame = pd.read_csv(
            io.BytesIO(body),
            header=0 if header else None,
            names=None if header else list(fields or []),
            keep_default_na=False,
            na_values=[""],
            dtype=dtypes or None,
            dtype_backend="numpy_nullable",
            encoding="utf-8-sig",
        )
    except UnicodeDecodeError:
        raise InvalidInput("the CSV body is not UTF-8") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise InvalidInput(f"the CSV body cannot be read: {str(exc).splitlines()[0]}") from None
    columns = [_column_values(frame[c]) for c in frame.columns]
    values = [list(r) for r in zip(*columns, strict=True)] if len(frame) else []
    return ScoringRequest([str(c) for c in frame.columns], values)


def _column_values(series: Any) -> list[Any]:
    """A parsed CSV column as Python values with None for missing (ints stay ints)."""
    return series.to_numpy(dtype=object, na_value=None).tolist()


# -- responses ---------------------------------------------------------------------------------


def predictions_table(
    predictions: Any, context: ModelContext, n_rows: int | None, *, output_mode: str, fail: Fail
) -> ScoringResponse:
    """A ``predictions`` value (list of scalars, vectors or records; or a dict of columns) ->
    output columns named by the subscription's prediction and probability fields."""
    if output_mode not in OUTPUT_MODES:
        raise fail(f"output_mode must be one of {', '.join(OUTPUT_MODES)}, not {output_mode!r}")
    if isinstance(predictions, dict):
        try:
            t = columns_table(predictions, "predictions")
        except InvalidInput as exc:
            raise fail(f"predictions as columns: {exc.reason}") from None
        return ScoringResponse(t.fields, t.values)
    if not isinstance(predictions, list):
        raise fail(f"predictions must be a list, got {type(predictions).__name__}")
    if not predictions:
        return ScoringResponse([context.prediction_field], [])
    kinds = {_shape_of(p) for p in predictions}
    if kinds == {"record"}:
        t = records_table(predictions, "predictions")
        return ScoringResponse(t.fields, t.values)
    if len(kinds) != 1 or "other" in kinds:
        raise fail("predictions mix scalars, lists and objects")
    if kinds == {"vector"}:
        mat = _matrix(predictions, fail)
        if mat is not None and mat.shape[1] == 1:  # [n, 1]: a column vector of scalars
            return _scalars(mat[:, 0].tolist(), context, output_mode)
        if output_mode == "predict":
            raise fail("output_mode is predict, but the engine returned a list per row")
        if mat is None:
            raise fail("a list per row must hold numbers (a probability per class)")
        return _probabilities(mat, context)
    return _scalars(predictions, context, output_mode)


def _shape_of(p: Any) -> str:
    if isinstance(p, dict):
        return "record"
    if isinstance(p, list):
        return "vector"
    if p is None or isinstance(p, (str, int, float, bool)):
        return "scalar"
    return "other"


def _matrix(rows: list[Any], fail: Fail) -> np.ndarray | None:
    lengths = {len(r) for r in rows}
    if len(lengths) != 1:
        raise fail(f"the per-row lists differ in length ({sorted(lengths)[:3]})")
    try:
        mat = np.asarray(rows, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return mat if mat.ndim == 2 else None


def _scalars(values: list[Any], context: ModelContext, output_mode: str) -> ScoringResponse:
    probability = output_mode == "predict_proba" and context.problem_type != "regression"
    name = context.probability_fields[0] if probability and context.probability_fields else context.prediction_field
    return ScoringResponse([name], [[v] for v in values])


def _probabilities(mat: np.ndarray, context: ModelContext) -> ScoringResponse:
    fields = context.probability_fields or ["probability"]
    if len(fields) > 1 and len(fields) == mat.shape[1]:  # one column per class
        return ScoringResponse(list(fields), mat.tolist())
    return ScoringResponse([fields[0]], [[row] for row in mat.tolist()])
