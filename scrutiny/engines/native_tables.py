"""Native engine outputs -> output columns the subscription can read.

Engines answer in many shapes: lists of records, dicts of columns, bare lists of labels or of
probability vectors. Adapters turn each into ``Columns`` (name -> one list per column), where
casts run a column at a time (NumPy where it can), then rename the engine's default output
columns (SageMaker ``predicted_label``/``score``, Azure ``Scored Labels``/``Scored
Probabilities``) to the names the subscription reads when it kept the generic defaults
(engines.md §0: its own names first, then the engine's), and hand back a ``ScoringResponse``.

Helpers raise ``NativeShapeError``; adapters re-raise it as an ``EngineResponseShape`` naming
the engine and the deployment.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from scrutiny.core.scoring_format import ScoringRequest, ScoringResponse
from scrutiny.engines.base import ModelContext
from scrutiny.errors import InvalidInput

Columns = dict[str, list[Any]]


class NativeShapeError(ValueError):
    """The response decoded, but is not a shape this engine is known to answer with."""


class NativeDecodeError(ValueError):
    """The body cannot be decoded at all (not JSON, not CSV, an HTML error page...)."""


def ordered_rows(request: ScoringRequest, feature_fields: Sequence[str] | None) -> tuple[list[str], list[list[Any]]]:
    """Rows in the model's feature order (CSV and positional JSON bodies depend on it)."""
    if not feature_fields or list(feature_fields) == request.fields:
        return request.fields, request.values
    missing = [f for f in feature_fields if f not in request.fields]
    if missing:
        raise InvalidInput("missing scoring field", field=missing[0])
    index = [request.fields.index(f) for f in feature_fields]
    return list(feature_fields), [[row[i] for i in index] for row in request.values]


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# -- native shapes -> columns -------------------------------------------------------------------


def record_fields(records: Sequence[Any], what: str) -> list[str]:
    """Keys of a list of records, in order of first sight (never by position)."""
    if not all(type(r) is dict for r in records):
        bad = next(i for i, r in enumerate(records) if not isinstance(r, dict))
        raise NativeShapeError(f"{what}[{bad}] is not an object")
    if not records:
        return []
    first = records[0].keys()
    if all(r.keys() == first for r in records):
        return [str(k) for k in first]
    fields: dict[str, None] = {}
    for rec in records:
        fields.update(dict.fromkeys(rec))
    return [str(k) for k in fields]


def from_records(records: Sequence[Any], what: str = "predictions", only: Sequence[str] | None = None) -> Columns:
    """One column per key (or per key in ``only``), one value per record."""
    fields = record_fields(records, what)
    if only is not None:
        wanted = set(only)
        fields = [f for f in fields if f in wanted]
    return {f: [r.get(f) for r in records] for f in fields}


def from_columns(columns: dict[str, Any], what: str = "response") -> Columns:
    """A dict of equally long columns (pandas ``orient="list"``)."""
    if not all(isinstance(c, list) for c in columns.values()):
        raise NativeShapeError(f"{what} is an object whose values are not all lists")
    lengths = {len(c) for c in columns.values()}
    if len(lengths) > 1:
        raise NativeShapeError(f"{what} has columns of different lengths {sorted(lengths)}")
    return {str(k): list(v) for k, v in columns.items()}


def from_rows(fields: Sequence[str], rows: Sequence[Sequence[Any]], only: Sequence[str] | None = None) -> Columns:
    keep = [i for i, f in enumerate(fields) if only is None or f in set(only)]
    return {str(fields[i]): [r[i] for r in rows] for i in keep}


def scalars_are_scores(values: Sequence[Any], context: ModelContext, hint: str = "auto") -> bool:
    """Whether one number per row is a probability (P(second label)) rather than a prediction.

    ``hint`` is the deployment's ``scalar_output`` option: ``score``, ``prediction`` or ``auto``,
    where a classifier's numbers in [0, 1] that are not all whole are read as probabilities.
    """
    if hint in ("score", "probability"):
        return True
    if hint == "prediction" or context.problem_type == "regression" or not values:
        return False
    if not all(_is_number(v) for v in values):
        return False
    arr = np.asarray(values, dtype=np.float64)
    return bool(np.any(arr != np.floor(arr)) and np.all((arr >= 0.0) & (arr <= 1.0)))


def from_list(
    items: Sequence[Any],
    context: ModelContext,
    *,
    prediction: str,
    probability: str,
    scalar_hint: str = "auto",
    what: str = "predictions",
) -> Columns:
    """A bare list, one item per row: records, labels (or numbers), or probability vectors."""
    if not items:
        return {prediction: []}
    kinds = set(map(type, items))
    if kinds == {dict}:
        return from_records(items, what)
    if kinds == {list}:
        for i, v in enumerate(items):
            if not all(_is_number(x) for x in v):
                raise NativeShapeError(f"{what}[{i}] is a list that is not all numbers")
        if context.problem_type == "regression":
            if all(len(v) == 1 for v in items):  # [[314.3], [1200.0]]: a column vector
                return {prediction: [v[0] for v in items]}
            raise NativeShapeError(f"{what} holds vectors, but the model is a regression")
        return {probability: [list(v) for v in items]}
    if kinds & {list, dict}:
        i = next(i for i, v in enumerate(items) if isinstance(v, (list, dict)))
        raise NativeShapeError(f"{what}[{i}] mixes {type(items[i]).__name__}s with single values")
    name = probability if scalars_are_scores(items, context, scalar_hint) else prediction
    return {name: list(items)}


def to_response(columns: Columns, labels: list[Any] | None = None) -> ScoringResponse:
    """Columns -> the common format's row-major response."""
    if not columns:
        return ScoringResponse([], [], labels)
    return ScoringResponse(list(columns), [list(r) for r in zip(*columns.values(), strict=True)], labels)


# -- choosing and naming the outputs ------------------------------------------------------------


def rename_roles(
    columns: Columns, context: ModelContext, *, predictions: Sequence[str], probabilities: Sequence[str] = ()
) -> Columns:
    """Rename the engine's default output columns to the subscription's names, where those are
    absent (engines.md §0: the subscription's names win; the engine defaults come next)."""
    names = {f: f for f in columns}
    target = context.prediction_field
    if target not in columns:
        found = next((n for n in predictions if n in columns), None)
        if found is not None:
            names[found] = target
    probs = context.probability_fields
    if context.problem_type != "regression" and len(probs) == 1 and probs[0] not in columns:
        found = next((n for n in probabilities if n in columns and names[n] == n and n != target), None)
        if found is not None:
            names[found] = probs[0]
    return {names[f]: v for f, v in columns.items()}


def output_names(
    fields: Sequence[str], feature_fields: Sequence[str] | None, *, output_prefix: str = "", also: Sequence[str] = ()
) -> list[str]:
    """Output columns only. Engines that name every output with a prefix (Azure Studio's
    ``"Scored "``) keep those and the columns named in ``also``; others drop the subscription's
    features (echoed inputs)."""
    if output_prefix and any(f.startswith(output_prefix) for f in fields):
        wanted = set(also)
        return [f for f in fields if f.startswith(output_prefix) or f in wanted]
    drop = set(feature_fields or ())
    return [f for f in fields if f not in drop]


def keep_outputs(columns: Columns, feature_fields: Sequence[str] | None, **kw: Any) -> Columns:
    keep = output_names(list(columns), feature_fields, **kw)
    return columns if len(keep) == len(columns) else {f: columns[f] for f in keep}


# Azure Studio (classic and new): 'Scored Probabilities for Class "X"'; Designer: 'Scored Probabilities_X'.
CLASS_COLUMN = re.compile(r'^Scored Probabilities(?: for Class "(?P<quoted>.*)"|_(?P<suffixed>.+))$')


def assemble_class_columns(columns: Columns, labels: Sequence[Any] | None, target: str) -> Columns:
    """One probability column per class -> one vector column ``target``, in the subscription's
    label order (the class is read from each column's name, never from its position)."""
    found: dict[str, str] = {}
    for name in columns:
        m = CLASS_COLUMN.match(name)
        if m:
            found[m.group("quoted") if m.group("quoted") is not None else m.group("suffixed")] = name
    if not found:
        return columns
    order = [str(v) for v in labels] if labels else sorted(found)
    missing = [c for c in order if c not in found]
    if missing:
        raise NativeShapeError(f"no probability column for class {missing[0]!r} (the response has {sorted(found)})")
    unknown = sorted(set(found) - set(order))
    if unknown:
        raise NativeShapeError(f"the response has a probability for class {unknown[0]!r}, not among the labels {order}")
    parts = [floats(columns[found[c]]) for c in order]
    try:
        vectors = np.column_stack([np.asarray(p, dtype=np.float64) for p in parts]).tolist()
    except (TypeError, ValueError):  # a value that is not a number: keep it, the normaliser names the row
        vectors = [list(v) for v in zip(*parts, strict=True)]
    out = {f: v for f, v in columns.items() if f not in set(found.values())}
    out[target] = vectors
    return out


# -- casts, one column at a time ----------------------------------------------------------------


def to_float(v: Any) -> Any:
    """A numeric string -> float; anything else unchanged (the normaliser reports it)."""
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return v
    return v


def floats(column: list[Any]) -> list[Any]:
    """Numbers and numeric strings -> floats, in one NumPy pass; a column NumPy cannot read
    (a null, a word) is converted value by value and keeps what is not a number."""
    if not column or None in column or any(type(v) is bool for v in column):
        return [to_float(v) for v in column]
    try:
        return np.asarray(column, dtype=np.float64).tolist()  # type: ignore[no-any-return]
    except (TypeError, ValueError):
        return [to_float(v) for v in column]


def integers(column: list[Any]) -> list[Any]:
    return [int(v) if isinstance(v, float) and v.is_integer() else v for v in floats(column)]


def booleans(column: list[Any]) -> list[Any]:
    lookup = {"true": True, "false": False}
    return [lookup.get(v.strip().lower(), v) if isinstance(v, str) else v for v in column]


def caster(type_name: str) -> Callable[[list[Any]], list[Any]] | None:
    """The column converter for a declared output type (swagger, ColumnTypes: Double, Int32...)."""
    t = type_name.strip().lower()
    if t in ("number", "double", "float", "numeric", "single", "decimal"):
        return floats
    if t in ("integer", "int", "int32", "int64", "long"):
        return integers
    if t in ("boolean", "bool"):
        return booleans
    return None


def labels_of_index(column: list[Any], labels: Sequence[Any] | None) -> list[Any]:
    """``0.0``/``1.0`` (a class index, as SageMaker's built-ins return it) -> ``labels[i]``."""
    if not labels:
        return column
    lookup = dict(enumerate(labels))  # 1.0 and 1 hash alike, so float indexes find their label
    return [lookup.get(v, v) if type(v) in (int, float) else v for v in column]


def as_labels(column: list[Any], labels: Sequence[Any] | None) -> list[Any]:
    """Labels that arrived as strings (``"1"``, ``"True"``) -> the subscription's label type."""
    kinds = {type(v) for v in labels or ()}
    if not kinds or kinds == {str} or not any(type(v) is str for v in column):
        return column
    if kinds == {bool}:
        return booleans(column)
    lookup = {str(v): v for v in labels or ()}

    def cast(v: Any) -> Any:
        if type(v) is not str:
            return v
        if v in lookup:
            return lookup[v]
        f = to_float(v.strip())
        return int(f) if kinds == {int} and isinstance(f, float) and f.is_integer() else f

    return [cast(v) for v in column]


def type_value(text: str, kind: str | None) -> Any:
    """One untyped (CSV) value with the subscription's kind for its column, or a guess without one."""
    if text == "":
        return None
    if kind == "string":
        return text
    if kind == "boolean":
        return {"true": True, "false": False, "1": True, "0": False}.get(text.strip().lower(), text)
    try:
        f = float(text)
    except ValueError:
        return text
    if not math.isfinite(f) and kind is None:
        return text  # "nan", "inf": more likely a category than a number
    if kind == "double":
        return f
    if f.is_integer() and (kind == "integer" or ("." not in text and "e" not in text.lower())):
        return int(f)
    return f


__all__ = [
    "CLASS_COLUMN",
    "Columns",
    "NativeDecodeError",
    "NativeShapeError",
    "as_labels",
    "assemble_class_columns",
    "caster",
    "floats",
    "from_columns",
    "from_list",
    "from_records",
    "from_rows",
    "keep_outputs",
    "labels_of_index",
    "ordered_rows",
    "output_names",
    "record_fields",
    "rename_roles",
    "scalars_are_scores",
    "to_float",
    "to_response",
    "type_value",
]
