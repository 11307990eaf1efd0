"""Native engine outputs -> output columns the subscription can read.

Engines answer in many shapes: lists of records, dicts of columns, bare lists of labels or of
probability vectors. Adapters turn each into a ``ScoringResponse`` here, then rename the
engine's default output columns (SageMaker ``predicted_label``/``score``, Azure ``Scored
Labels``/``Scored Probabilities``) to the names the subscription reads, when the subscription
kept the generic defaults (engines.md §0: its own names first, then the engine's).

Helpers raise ``NativeShapeError``; adapters re-raise it as an ``EngineResponseShape`` naming
the engine and the deployment.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from scrutiny.common import ScoringRequest, ScoringResponse
from scrutiny.engines.base import ModelContext
from scrutiny.errors import InvalidInput


class NativeShapeError(ValueError):
    """The response decoded, but is not a shape this engine is known to answer with."""


class NativeDecodeError(ValueError):
    """The body cannot be decoded at all (not JSON, not CSV, an HTML error page...)."""


def ordered_rows(request: ScoringRequest, feature_fields: Sequence[str] | None) -> tuple[list[str], list[list[Any]]]:
    """Rows in the model's feature order (CSV and ``features`` are positional)."""
    if not feature_fields or list(feature_fields) == request.fields:
        return request.fields, request.values
    missing = [f for f in feature_fields if f not in request.fields]
    if missing:
        raise InvalidInput("missing scoring field", field=missing[0])
    index = [request.fields.index(f) for f in feature_fields]
    return list(feature_fields), [[row[i] for i in index] for row in request.values]


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def from_records(records: Sequence[Any], what: str = "predictions") -> ScoringResponse:
    """One row per record; columns are the union of keys in order of first sight (never by position)."""
    fields: list[str] = []
    seen: set[str] = set()
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise NativeShapeError(f"{what}[{i}] is not an object")
        for k in rec:
            if k not in seen:
                seen.add(k)
                fields.append(str(k))
    return ScoringResponse(fields, [[rec.get(f) for f in fields] for rec in records])


def from_columns(columns: dict[str, Any], what: str = "response") -> ScoringResponse:
    """A dict of equally long columns (pandas ``orient="list"``)."""
    fields = [str(k) for k in columns]
    lists = list(columns.values())
    if not all(isinstance(c, list) for c in lists):
        raise NativeShapeError(f"{what} is an object whose values are not all lists")
    lengths = {len(c) for c in lists}
    if len(lengths) > 1:
        raise NativeShapeError(f"{what} has columns of different lengths {sorted(lengths)}")
    return ScoringResponse(fields, [list(row) for row in zip(*lists, strict=True)])


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
    whole = all(float(v).is_integer() for v in values)
    return not whole and all(0.0 <= float(v) <= 1.0 for v in values)


def from_list(
    items: Sequence[Any],
    context: ModelContext,
    *,
    prediction: str,
    probability: str,
    scalar_hint: str = "auto",
    what: str = "predictions",
) -> ScoringResponse:
    """A bare list, one item per row: records, labels (or numbers), or probability vectors."""
    if not items:
        return ScoringResponse([prediction], [])
    if all(isinstance(v, dict) for v in items):
        return from_records(items, what)
    if all(isinstance(v, list) for v in items):
        for i, v in enumerate(items):
            if not all(_is_number(x) for x in v):
                raise NativeShapeError(f"{what}[{i}] is a list that is not all numbers")
        if context.problem_type == "regression":
            if all(len(v) == 1 for v in items):  # [[314.3], [1200.0]]: a column vector
                return ScoringResponse([prediction], [[v[0]] for v in items])
            raise NativeShapeError(f"{what} holds vectors, but the model is a regression")
        return ScoringResponse([probability], [[list(v)] for v in items])
    for i, v in enumerate(items):
        if isinstance(v, (list, dict)):
            raise NativeShapeError(f"{what}[{i}] mixes {type(v).__name__}s with single values")
    name = probability if scalars_are_scores(items, context, scalar_hint) else prediction
    return ScoringResponse([name], [[v] for v in items])


def rename_roles(
    response: ScoringResponse,
    context: ModelContext,
    *,
    predictions: Sequence[str],
    probabilities: Sequence[str] = (),
) -> ScoringResponse:
    """Rename the engine's default output columns to the subscription's names, where those are
    absent (engines.md §0: the subscription's names win; the engine defaults come next)."""
    fields = list(response.fields)
    target = context.prediction_field
    if target not in fields:
        for name in predictions:
            if name in fields and name != target:
                fields[fields.index(name)] = target
                break
    probs = context.probability_fields
    if context.problem_type != "regression" and len(probs) == 1 and probs[0] not in fields:
        for name in probabilities:
            if name in fields and name not in (probs[0], target):
                fields[fields.index(name)] = probs[0]
                break
    if fields == response.fields:
        return response
    return ScoringResponse(fields, response.values, response.labels, response.extra)


def keep_outputs(
    response: ScoringResponse,
    feature_fields: Sequence[str] | None,
    *,
    output_prefix: str = "",
    also: Sequence[str] = (),
) -> ScoringResponse:
    """Output columns only. Engines that name every output with a prefix (Azure Studio's
    ``"Scored "``) keep those and the columns named in ``also``; others drop the subscription's
    features (echoed inputs)."""
    if output_prefix and any(f.startswith(output_prefix) for f in response.fields):
        wanted = set(also)
        keep = [i for i, f in enumerate(response.fields) if f.startswith(output_prefix) or f in wanted]
    elif feature_fields:
        drop = set(feature_fields)
        keep = [i for i, f in enumerate(response.fields) if f not in drop]
    else:
        return response
    if len(keep) == len(response.fields):
        return response
    return ScoringResponse(
        [response.fields[i] for i in keep],
        [[row[i] for i in keep] for row in response.values],
        response.labels,
        response.extra,
    )


# Azure Studio (classic and new): 'Scored Probabilities for Class "X"'; Designer: 'Scored Probabilities_X'.
CLASS_COLUMN = re.compile(r'^Scored Probabilities(?: for Class "(?P<quoted>.*)"|_(?P<suffixed>.+))$')


def assemble_class_columns(response: ScoringResponse, labels: Sequence[Any] | None, target: str) -> ScoringResponse:
    """One probability column per class -> one vector column ``target``, in the subscription's
    label order (the class is read from each column's name, never from its position)."""
    found: dict[str, int] = {}
    for i, name in enumerate(response.fields):
        m = CLASS_COLUMN.match(name)
        if m:
            found[m.group("quoted") if m.group("quoted") is not None else m.group("suffixed")] = i
    if not found:
        return response
    order = [str(v) for v in labels] if labels else sorted(found)
    missing = [c for c in order if c not in found]
    if missing:
        raise NativeShapeError(f"no probability column for class {missing[0]!r} (the response has {sorted(found)})")
    unknown = sorted(set(found) - set(order))
    if unknown:
        raise NativeShapeError(f"the response has a probability for class {unknown[0]!r}, not among the labels {order}")
    index = [found[c] for c in order]
    drop = set(found.values())
    keep = [i for i in range(len(response.fields)) if i not in drop]
    fields = [response.fields[i] for i in keep] + [target]
    values = [[row[i] for i in keep] + [[to_float(row[j]) for j in index]] for row in response.values]
    return ScoringResponse(fields, values, list(labels) if labels else order, response.extra)


def map_column(response: ScoringResponse, name: str, fn: Any) -> None:
    """Apply ``fn`` to every value of one column, in place."""
    if name not in response.fields:
        return
    i = response.fields.index(name)
    for row in response.values:
        row[i] = fn(row[i])


def index_to_label(labels: Sequence[Any] | None) -> Any:
    """``0.0``/``1.0`` (a class index, as SageMaker's built-ins return it) -> ``labels[i]``."""

    def convert(v: Any) -> Any:
        if labels and _is_number(v) and math.isfinite(v) and float(v).is_integer() and 0 <= v < len(labels):
            return labels[int(v)]
        return v

    return convert


def cast_to_labels(labels: Sequence[Any] | None) -> Any:
    """A label that arrived as a string (``"1"``, ``"True"``) -> the subscription's label type."""
    kinds = {type(v) for v in labels or ()}

    def convert(v: Any) -> Any:
        if not isinstance(v, str) or not kinds or kinds == {str}:
            return v
        s = v.strip()
        if kinds == {bool}:
            return {"true": True, "false": False}.get(s.lower(), v)
        try:
            f = float(s)
        except ValueError:
            return v
        if kinds == {int} and f.is_integer():
            return int(f)
        return f

    return convert


def to_float(v: Any) -> Any:
    """A numeric string -> float; anything else unchanged (the normaliser reports it)."""
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return v
    return v


def cast_by_type(type_name: str) -> Any:
    """A converter for one declared output type (swagger/ColumnTypes: Double, Int32, Boolean...)."""
    t = type_name.strip().lower()
    if t in ("number", "double", "float", "numeric", "single", "decimal"):
        return to_float
    if t in ("integer", "int", "int32", "int64", "long"):

        def to_int(v: Any) -> Any:
            f = to_float(v)
            return int(f) if isinstance(f, float) and f.is_integer() else f

        return to_int
    if t in ("boolean", "bool"):
        return lambda v: {"true": True, "false": False}.get(v.strip().lower(), v) if isinstance(v, str) else v
    return None


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
    "NativeDecodeError",
    "NativeShapeError",
    "assemble_class_columns",
    "cast_by_type",
    "cast_to_labels",
    "from_columns",
    "from_list",
    "from_records",
    "index_to_label",
    "keep_outputs",
    "map_column",
    "ordered_rows",
    "rename_roles",
    "scalars_are_scores",
    "to_float",
    "type_value",
]
