"""Normalise model outputs: prediction, probability vector in class order, prediction_probability.

One rule set for every engine and every entry point (payload logging, scoring API, proxy),
vectorised over the rows of a batch. The rules are OpenScale's (contract §4.4):

* probabilities are ordered like the subscription's labels, never like the engine says;
* a scalar binary probability ``p`` is P(second label) and becomes ``[1-p, p]``;
* ``prediction_probability`` is the probability of the predicted class, ``max`` only as a fallback;
* a class index (``0.0``/``1.0``) is decoded to its label so the prediction column has one type.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scrutiny.errors import InvalidInput


@dataclass
class Outputs:
    prediction: np.ndarray  # object array of labels (classification) or float64 (regression)
    probability: np.ndarray | None  # float64 [n, n_classes] in label order
    prediction_probability: np.ndarray | None  # float64 [n]
    derived: bool = False  # prediction computed from probabilities (engine returned none)
    errors: list[tuple[int, str, str]] = field(default_factory=list)


Columns = Mapping[str, Sequence[Any] | np.ndarray]


def probability_matrix(
    columns: list[Sequence[Any] | np.ndarray], n_classes: int | None, what: str
) -> tuple[np.ndarray, list[int]]:
    """Stack probability columns into ``[n, C]``. Returns the matrix and the rows that are bad."""
    if len(columns) == 1 and isinstance(columns[0], np.ndarray) and columns[0].dtype == np.float64:
        mat = columns[0]
        if mat.ndim == 1:
            if n_classes not in (None, 2):
                raise InvalidInput(
                    f"a scalar probability needs a binary model, this one has {n_classes} classes", field=what
                )
            mat = np.column_stack([1.0 - mat, mat])
    elif len(columns) > 1:  # one column per class
        try:
            mat = np.array(columns, dtype=np.float64).T
        except (TypeError, ValueError):
            raise InvalidInput(f"{what}: per-class probability columns must hold numbers") from None
    else:
        col = columns[0]
        try:
            mat = np.array(col, dtype=np.float64)
        except (TypeError, ValueError):
            bad = _first_bad_vector(col, n_classes)
            raise InvalidInput(
                f"probability must be a number or a list of numbers, got {col[bad]!r}", row=bad + 1, field=what
            ) from None
        if mat.ndim == 1:  # scalar P(second class)
            if n_classes not in (None, 2):
                raise InvalidInput(
                    f"a scalar probability needs a binary model, this one has {n_classes} classes", field=what
                )
            mat = np.column_stack([1.0 - mat, mat])
        elif mat.ndim != 2:
            raise InvalidInput("probability must be a flat list of numbers per row", field=what)
    bad_rows = np.flatnonzero(~np.isfinite(mat).all(axis=1) | (mat < -1e-9).any(axis=1) | (mat > 1 + 1e-9).any(axis=1))
    return mat, bad_rows.tolist()


def _first_bad_vector(col: Any, n_classes: int | None = None) -> int:
    """The row to blame in a ragged or non-numeric probability column: the first that is not a
    list of numbers of the expected length (the label count, else the most common length)."""
    from collections import Counter

    def numbers(v: Any) -> bool:
        return all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)

    lengths = Counter(len(v) for v in col if isinstance(v, list) and numbers(v))
    expected = n_classes or (lengths.most_common(1)[0][0] if lengths else None)
    scalars = sum(1 for v in col if isinstance(v, (int, float)) and not isinstance(v, bool))
    for i, v in enumerate(col):
        if isinstance(v, list):
            if not numbers(v) or (expected is not None and len(v) != expected) or scalars:
                return i
        elif not isinstance(v, (int, float)) or isinstance(v, bool) or lengths:
            return i
    return 0


def class_indices(prediction: np.ndarray | list[Any], labels: list[Any]) -> np.ndarray:
    """Index of each prediction in ``labels``; -1 where it is not a label."""
    lookup: dict[Any, int] = {}
    for i, label in enumerate(labels):
        lookup[label] = i
        if isinstance(label, (int, float)) and not isinstance(label, bool):
            lookup[float(label)] = i
    return np.fromiter((lookup.get(v, -1) for v in prediction), dtype=np.int64, count=len(prediction))


def decode_predictions(raw: list[Any], labels: list[Any]) -> list[Any]:
    """Map class indices (``1.0``, ``"1"``) to labels when the labels are not numbers themselves."""
    if not labels or all(isinstance(label, (int, float)) and not isinstance(label, bool) for label in labels):
        return raw
    if set(map(type, raw)) <= {str, type(None)}:
        return raw  # already labels
    n = len(labels)
    out = list(raw)
    for i, v in enumerate(raw):
        if isinstance(v, (int, float)) and not isinstance(v, bool) and float(v).is_integer() and 0 <= v < n:
            out[i] = labels[int(v)]
    return out


def normalize(
    columns: Columns,
    n: int,
    *,
    classification: bool,
    labels: list[Any] | None,
    prediction_field: str,
    probability_fields: list[str],
) -> Outputs:
    """Find and normalise the outputs among a response's ``columns`` (by name, never by position)."""
    pred_col = columns.get(prediction_field)
    have_prob = bool(probability_fields) and all(f in columns for f in probability_fields)
    if not classification:
        if pred_col is None:
            raise InvalidInput(f"response has no prediction field {prediction_field!r}", field=prediction_field)
        try:
            pred = np.asarray(pred_col, dtype=np.float64)
        except (TypeError, ValueError):
            bad = next(i for i, v in enumerate(pred_col) if not _is_number(v))
            raise InvalidInput(
                f"a regression prediction must be a number, got {pred_col[bad]!r}", row=bad + 1, field=prediction_field
            ) from None
        if pred.ndim != 1:
            raise InvalidInput("a regression prediction must be one number per row", field=prediction_field)
        nonfinite = np.flatnonzero(~np.isfinite(pred))
        if nonfinite.size:
            r = int(nonfinite[0])
            raise InvalidInput(f"prediction {pred_col[r]!r} is not a finite number", row=r + 1, field=prediction_field)
        return Outputs(pred, None, None)

    n_classes = len(labels) if labels else None
    prob = None
    if have_prob:
        what = probability_fields[0] if len(probability_fields) == 1 else "class probabilities"
        prob, bad_rows = probability_matrix([columns[f] for f in probability_fields], n_classes, what)
        if bad_rows:
            raise InvalidInput("probabilities must be finite numbers between 0 and 1", row=bad_rows[0] + 1, field=what)
        if n_classes is not None and prob.shape[1] != n_classes:
            raise InvalidInput(
                f"probability has {prob.shape[1]} classes but the subscription has {n_classes} labels {labels}",
                field=what,
            )
    derived = False
    if pred_col is not None:
        raw = pred_col.tolist() if isinstance(pred_col, np.ndarray) else list(pred_col)
        types = set(map(type, raw))
        if list in types or dict in types:
            bad = next(i for i, v in enumerate(raw) if isinstance(v, (list, dict)))
            raise InvalidInput("a prediction must be a single label", row=bad + 1, field=prediction_field)
        if type(None) in types and prob is None:
            bad = raw.index(None)
            raise InvalidInput("the prediction is missing", row=bad + 1, field=prediction_field)
        if type(None) in types and prob is not None and labels:  # derive the missing ones
            top = np.asarray(labels, dtype=object)[prob.argmax(axis=1)]
            raw = [top[i] if v is None else v for i, v in enumerate(raw)]
            derived = True
        pred = np.empty(n, dtype=object)
        pred[:] = decode_predictions(raw, labels or [])
    elif prob is not None and labels:
        pred = np.asarray(labels, dtype=object)[prob.argmax(axis=1)] if n else np.empty(0, dtype=object)
        derived = True
    else:
        raise InvalidInput(f"response has no prediction field {prediction_field!r}", field=prediction_field)

    pp = None
    if prob is not None:
        idx = class_indices(pred, labels) if labels else np.full(n, -1, dtype=np.int64)
        fallback = prob.max(axis=1) if n else np.empty(0)
        safe = np.clip(idx, 0, prob.shape[1] - 1)
        pp = np.where(idx >= 0, prob[np.arange(n), safe], fallback)
    return Outputs(pred, prob, pp, derived)


def normalize_rows(fields: list[str], values: list[list[Any]], **kw: Any) -> Outputs:
    """``normalize`` for row-major values (a common-format response)."""
    columns = {f: [row[i] for row in values] for i, f in enumerate(fields)}
    return normalize(columns, len(values), **kw)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)
