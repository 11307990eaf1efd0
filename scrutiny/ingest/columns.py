"""Typed columns from JSON values: vectorised on the happy path, precise on the error path.

Each converter takes one column of a batch (a list of Python values) and returns a NumPy
array: float64 with NaN for null (numbers), object with None for null (everything else).
A value that does not fit raises ``InvalidInput`` naming its batch position; callers map the
position to the record and row.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from scrutiny.core.schema import Kind
from scrutiny.errors import InvalidInput

NoneType = type(None)
_NUMBER_OK = frozenset({int, float, NoneType})
Locate = Callable[[int], tuple[int | None, int | None]]  # batch position -> (record index, row number)
Values = Sequence[Any] | np.ndarray  # one column: JSON values, or an already-typed array (Arrow)


def _fail(message: str, pos: int, field: str, locate: Locate) -> InvalidInput:
    record, row = locate(pos)
    return InvalidInput(message, record=record, row=row, field=field)


def _describe(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, dict)):
        return "a list" if isinstance(v, list) else "an object"
    return repr(v)


def to_numbers(values: Values, field: str, locate: Locate, *, integer: bool = False) -> np.ndarray:
    """float64 array; numbers or numeric strings, null allowed, never NaN/inf, integral if ``integer``."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiu":
        arr = values.astype(np.float64, copy=False)  # columnar input: NaN already means null
        inf = np.flatnonzero(np.isinf(arr))
        if inf.size:
            raise _fail(f"{arr[inf[0]]!r} is not a finite number", int(inf[0]), field, locate)
        if integer:
            frac = np.flatnonzero(np.isfinite(arr) & (arr != np.floor(arr)))
            if frac.size:
                raise _fail(f"expected an integer, got {arr[frac[0]]!r}", int(frac[0]), field, locate)
            _check_int64(arr, arr, field, locate)
        return arr
    if isinstance(values, np.ndarray) and values.dtype.kind == "b":
        raise _fail("expected a number, got a boolean column", 0, field, locate)
    types = set(map(type, values))
    if types <= _NUMBER_OK:
        arr = np.array(values, dtype=np.float64)
    else:
        arr = np.empty(len(values), dtype=np.float64)
        for i, v in enumerate(values):
            t = type(v)
            if t is int or t is float:
                arr[i] = v
            elif v is None:
                arr[i] = np.nan
            elif t is str:
                try:
                    arr[i] = float(v)
                except ValueError:
                    raise _fail(f"expected a number, got {_describe(v)}", i, field, locate) from None
                if not math.isfinite(arr[i]):
                    raise _fail(f"{v!r} is not a finite number", i, field, locate)
            else:
                raise _fail(f"expected a number, got {_describe(v)}", i, field, locate)
    bad = ~np.isfinite(arr)
    if bad.any():
        for pos in np.flatnonzero(bad).tolist():
            if values[pos] is not None:
                raise _fail(f"{values[pos]!r} is not a finite number", pos, field, locate)
    if integer:
        frac = np.flatnonzero(~bad & (arr != np.floor(arr)))
        if frac.size:
            pos = int(frac[0])
            raise _fail(f"expected an integer, got {values[pos]!r}", pos, field, locate)
        _check_int64(arr, values, field, locate)
    return arr


EXACT_INT = 2.0**53  # numbers travel as float64: beyond this an integer would be stored rounded


def _check_int64(arr: np.ndarray, values: Values, field: str, locate: Locate) -> None:
    """An integer beyond 2**53 cannot be carried exactly (numbers are float64 columns on the way
    to the bigint column): refuse it rather than store a neighbouring number."""
    big = np.flatnonzero(np.abs(arr) >= EXACT_INT)  # NaN compares False; 2**53 + 1 arrives as 2**53
    if big.size:
        pos = int(big[0])
        raise _fail(
            f"{values[pos]!r} is beyond ±2**53, the largest integers stored exactly"
            " (declare the field as a string to keep such identifiers)",
            pos,
            field,
            locate,
        )


def to_strings(values: Values, field: str, locate: Locate) -> np.ndarray:
    if isinstance(values, np.ndarray) and values.dtype.kind != "O":
        raise _fail(
            f"expected a string, got {_describe(values[0].item()) if len(values) else 'numbers'}", 0, field, locate
        )
    types = set(map(type, values))
    if not types <= {str, NoneType}:
        for i, v in enumerate(values):
            if v is not None and type(v) is not str:
                raise _fail(f"expected a string, got {_describe(v)}", i, field, locate)
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr


def to_bools(values: Values, field: str, locate: Locate) -> np.ndarray:
    if isinstance(values, np.ndarray) and values.dtype.kind == "b":
        return values.astype(object)
    types = set(map(type, values))
    if not types <= {bool, NoneType}:
        for i, v in enumerate(values):
            if v is not None and type(v) is not bool:
                raise _fail(f"expected true or false, got {_describe(v)}", i, field, locate)
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr


def to_json(values: Values, field: str, locate: Locate) -> np.ndarray:
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr


def convert(values: Values, kind: Kind, field: str, locate: Locate) -> np.ndarray:
    if kind is Kind.FLOAT:
        return to_numbers(values, field, locate)
    if kind is Kind.INT:
        return to_numbers(values, field, locate, integer=True)
    if kind is Kind.STR:
        return to_strings(values, field, locate)
    if kind is Kind.BOOL:
        return to_bools(values, field, locate)
    return to_json(values, field, locate)


def null_count(arr: np.ndarray) -> int:
    if arr.dtype == np.float64:
        return int(np.isnan(arr).sum())
    return int(sum(v is None for v in arr))
